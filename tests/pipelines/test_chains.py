"""Each domain's Prepare -> Train -> Evaluate chain, built in-process with the local scheduler."""
import os
import re

import numpy as np
import pytest

import pipelines
from pipelines.outputs import read_npz

from .conftest import HAR_SMALL, MEDICAL_SMALL, VISION_SMALL, build, mtimes, ran, read_json

PNG = b"\x89PNG\r\n\x1a\n"
_UMASK = os.umask(0)
os.umask(_UMASK)
_FILE_MODE = 0o666 & ~_UMASK


def check_run_outputs(task):
    """The files of a finished Evaluate task (and its Train, Prepare) agree with each other."""
    folder = task.output_folder()
    for name in ("model.npz", "history.csv", "learning_curve.png", "train.json", "metrics.json",
                 "confusion_matrix.csv", "confusion_matrix.png", "report.md"):
        assert os.path.isfile(os.path.join(folder, name)), name
        # readable by the other users / machines sharing the folder, not private like a temp file
        assert os.stat(os.path.join(folder, name)).st_mode & 0o777 == _FILE_MODE, name
    for png in ("learning_curve.png", "confusion_matrix.png"):
        with open(os.path.join(folder, png), "rb") as handle:
            assert handle.read(8) == PNG
    data = task.data_folder()
    assert os.path.dirname(os.path.dirname(folder)) == data
    prepared = read_json(os.path.join(data, "prepared.json"))
    arrays = read_npz(os.path.join(data, "prepared.npz"))
    metrics = read_json(os.path.join(folder, "metrics.json"))
    train = read_json(os.path.join(folder, "train.json"))
    n_test = len(arrays["y_test"])
    assert prepared["split"]["n_test"] == n_test == metrics["n_test"] == metrics["n_samples"]
    assert prepared["split"]["n_train"] == len(arrays["y_train"]) == train["n_train"]
    cm = np.array(metrics["confusion_matrix"])
    assert cm.sum() == n_test
    assert metrics["accuracy"] == pytest.approx(np.trace(cm) / n_test)
    assert 0 <= metrics["macro_f1"] <= 1
    # history.csv: a header and one line per trained epoch
    with open(os.path.join(folder, "history.csv")) as handle:
        lines = handle.read().strip().splitlines()
    assert lines[0].startswith("epoch,loss")
    assert len(lines) - 1 == train["epochs_trained"] >= 1
    # confusion_matrix.csv holds the same counts as metrics.json
    with open(os.path.join(folder, "confusion_matrix.csv")) as handle:
        rows = [line.split(",") for line in handle.read().strip().splitlines()]
    assert rows[0][1:] == [str(c) for c in metrics["classes"]]
    assert np.array([[int(v) for v in r[1:]] for r in rows[1:]]).tolist() == cm.tolist()
    report = open(os.path.join(folder, "report.md"), encoding="utf-8").read()
    assert f"{metrics['accuracy']:.4f}" in report
    held = train["n_validation"]
    assert (f"{held} of them held out for validation" if held else "none held out for validation") in report
    # the pictures the report shows: first-layer kernels, explanations of test samples, ROC for two classes
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report)
    assert "filters.png" in images and any(i.startswith("explanations/") for i in images)
    assert ("roc_curve.png" in images) == (len(metrics["classes"]) == 2)
    for image in images:
        with open(os.path.join(folder, image), "rb") as handle:
            assert handle.read(8) == PNG, image
    # The saved model reproduces the reported accuracy on the test split.
    clf = task.classifier_class().load(os.path.join(folder, "model.npz"))
    assert clf.evaluate(task.model_inputs(arrays, "test"), arrays["y_test"])["accuracy"] == pytest.approx(
        metrics["accuracy"])
    return prepared, arrays, metrics


def test_vision_chain_runs_then_is_a_no_op_and_reruns_on_a_changed_parameter(out):
    task = pipelines.EvaluateVision(output_dir=out, **VISION_SMALL)
    result, sets = build([task])
    assert result.status.name == "SUCCESS"
    assert ran(sets) == ["EvaluateVision", "PrepareVision", "TrainVision"]
    prepared, arrays, metrics = check_run_outputs(task)
    assert arrays["X_train"].shape[1:] == (8, 8, 1) and prepared["n_samples"] == 200
    assert prepared["split"]["method"].startswith("stratified")

    before = mtimes(out)
    result, sets = build([task])
    assert result.status.name == "SUCCESS"
    assert sets["completed"] == set() and task.task_id in sets["already_done"]
    assert mtimes(out) == before, "a rerun with the same parameters rewrote files"

    changed = pipelines.EvaluateVision(output_dir=out, **{**VISION_SMALL, "learning_rate": 0.01})
    assert changed.data_folder() == task.data_folder()
    assert changed.output_folder() != task.output_folder()
    result, sets = build([changed])
    assert ran(sets) == ["EvaluateVision", "TrainVision"]  # the prepared data is reused
    assert all(mtimes(out)[k] == v for k, v in before.items())  # nothing of the first run touched


def test_medical_chain_and_the_model_reads_raw_scans(out):
    task = pipelines.EvaluateMedical(output_dir=out, **MEDICAL_SMALL)
    result, sets = build([task])
    assert result.status.name == "SUCCESS", result.summary_text
    assert ran(sets) == ["EvaluateMedical", "PrepareMedical", "SyntheticScans", "TrainMedical"]
    prepared, arrays, metrics = check_run_outputs(task)
    assert arrays["X_train"].shape[1:] == (12, 12, 12, 1)
    assert "roc_auc" in metrics and 0 <= metrics["threshold"] <= 1
    folder = task.output_folder()
    for name in ("roc_curve.png", "calibration.png"):                  # binary task: ROC and calibration
        assert open(os.path.join(folder, name), "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    report_md = open(os.path.join(folder, "report.md"), encoding="utf-8").read()
    assert "Decision threshold" in report_md and "calibration.png" in report_md
    # The prepared volumes are exactly what the saved model makes of the raw files.
    clf = task.classifier_class().load(os.path.join(task.output_folder(), "model.npz"))
    raw = list(arrays["paths_test"])
    assert all(p.endswith(".nii.gz") and os.path.isfile(p) for p in raw)
    np.testing.assert_allclose(clf._check_X(raw, fitting=False), arrays["X_test"], rtol=1e-6, atol=1e-6)
    # The synthetic scans were written into the output folder, manifest last.
    manifest = task.synthetic_task().output().path
    assert manifest.startswith(os.path.join(out, "medical")) and os.path.isfile(manifest)

    result, sets = build([task])
    assert sets["completed"] == set()

    # A changed data parameter makes a new prepared data set and a new run.
    other = pipelines.EvaluateMedical(output_dir=out, **{**MEDICAL_SMALL, "normalize": "zscore"})
    assert other.data_folder() != task.data_folder()
    result, sets = build([other])
    assert ran(sets) == ["EvaluateMedical", "PrepareMedical", "TrainMedical"]  # scans reused


def test_har_chain_splits_by_subject(out):
    task = pipelines.EvaluateHAR(output_dir=out, **HAR_SMALL)
    result, sets = build([task])
    assert result.status.name == "SUCCESS", result.summary_text
    assert ran(sets) == ["EvaluateHAR", "PrepareHAR", "TrainHAR"]
    prepared, arrays, metrics = check_run_outputs(task)
    assert arrays["X_train"].shape[1:] == (32, 3)
    assert not set(arrays["groups_train"]) & set(arrays["groups_test"])
    assert prepared["split"]["method"].startswith("by subject")
    assert len(metrics["classes"]) == 8

    result, sets = build([task])
    assert sets["completed"] == set()
    longer = pipelines.EvaluateHAR(output_dir=out, **{**HAR_SMALL, "epochs": 3})
    result, sets = build([longer])
    assert ran(sets) == ["EvaluateHAR", "TrainHAR"]

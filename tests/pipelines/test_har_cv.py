"""CrossValidateHAR: one Luigi task per subject fold, a summary table and plot."""
import os

import numpy as np
import pytest

import pipelines
from pipelines.har_tasks import CrossValidateFoldHAR
from pipelines.outputs import read_npz

from .conftest import HAR_SMALL, build, read_json


@pytest.mark.slow
def test_cross_validate_har_runs_one_task_per_fold(tmp_path):
    task = pipelines.CrossValidateHAR(output_dir=str(tmp_path), cv="loso", **HAR_SMALL)
    result, sets = build([task], workers=1)
    assert result.scheduling_succeeded, sets
    folds = sorted(t for t in sets["completed"] if t.startswith("CrossValidateFoldHAR"))
    assert len(folds) == 4  # four synthetic subjects: four folds, each its own task
    folder = task.output_folder()
    summary = read_json(os.path.join(folder, "summary.json"))
    arrays = read_npz(os.path.join(task.data_folder(), "prepared.npz"))
    n = len(arrays["y_train"]) + len(arrays["y_test"])
    assert summary["n_folds"] == 4 and np.asarray(summary["confusion_matrix"]).sum() == n
    with open(os.path.join(folder, "folds.csv")) as handle:
        rows = handle.read().strip().splitlines()
    assert rows[0].startswith("fold,test_subjects") and len(rows) == 5
    with open(os.path.join(folder, "cv_accuracy.png"), "rb") as handle:
        assert handle.read(8) == b"\x89PNG\r\n\x1a\n"
    held_out = [read_json(os.path.join(folder, f"fold-{i:03d}", "fold.json"))["test_groups"] for i in range(4)]
    assert sorted(g for groups in held_out for g in groups) == sorted(
        np.unique(np.concatenate([arrays["groups_train"], arrays["groups_test"]])).tolist())
    # a rerun finds everything done
    _, again = build([pipelines.CrossValidateHAR(output_dir=str(tmp_path), cv="loso", **HAR_SMALL)])
    assert not again["completed"]


def test_cross_validate_har_bad_cv(tmp_path):
    task = CrossValidateFoldHAR(output_dir=str(tmp_path), cv="lopo", fold=0, **HAR_SMALL)
    with pytest.raises(Exception, match="--cv must be 'loso' or a number"):
        task.cv_value()

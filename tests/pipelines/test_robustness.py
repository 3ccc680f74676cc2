"""Partial outputs are never trusted; sweeps fan out and rank runs."""
import csv
import os
import time

import numpy as np
import pytest

import pipelines
from pipelines.outputs import read_npz, remove_stale_temps, write_npz

from .conftest import HAR_SMALL, VISION_SMALL, build, ran, read_json


def test_a_run_killed_between_outputs_is_redone(out):
    task = pipelines.TrainVision(output_dir=out, **VISION_SMALL)
    build([task])
    assert task.complete()
    folder = task.output_folder()
    # As if killed after the model was replaced but before the marker written last: the model file is
    # truncated garbage and train.json is missing.
    os.unlink(os.path.join(folder, "train.json"))
    with open(os.path.join(folder, "model.npz"), "wb") as handle:
        handle.write(b"PK\x03\x04 truncated")
    # And a temporary file left by a killed atomic write, old enough not to belong to a live writer.
    stale = os.path.join(folder, ".model.npz.abc123.tmp")
    with open(stale, "wb") as handle:
        handle.write(b"partial")
    os.utime(stale, (time.time() - 3600, time.time() - 3600))
    assert not task.complete()
    result, sets = build([task])
    assert ran(sets) == ["TrainVision"]
    assert task.complete() and not os.path.exists(stale)
    clf = task.classifier_class().load(os.path.join(folder, "model.npz"))  # a whole model again
    assert len(clf.classes_) == 10


def test_each_task_writes_its_marker_last(out, monkeypatch):
    """If writing the marker fails, the task is not complete (and the other outputs are whole files)."""
    import pipelines.base as base

    task = pipelines.PrepareVision(output_dir=out, **{k: v for k, v in VISION_SMALL.items() if k == "max_samples"})
    real = base.write_json

    def failing(path, obj):
        if path.endswith("prepared.json"):
            raise OSError("disk full")
        return real(path, obj)

    monkeypatch.setattr(base, "write_json", failing)
    result, sets = build([task])
    assert task.task_id in sets["failed"] and not task.complete()
    assert read_npz(task.output()["prepared.npz"].path)["X_train"].shape[1:] == (8, 8, 1)  # whole, not trusted
    monkeypatch.setattr(base, "write_json", real)
    result, sets = build([task])
    assert ran(sets) == ["PrepareVision"] and task.complete()


def test_writers_leave_no_file_under_the_final_name_on_error(tmp_path):
    path = tmp_path / "a.npz"
    try:
        write_npz(str(path), good=np.zeros(3), bad=np.array([object()], dtype=object))
    except TypeError:
        pass
    assert not path.exists() and os.listdir(tmp_path) == []
    write_npz(str(path), x=np.arange(4))
    assert sorted(os.listdir(tmp_path)) == ["a.npz"]  # no ".npz.npz", no temp file
    young = tmp_path / ".a.npz.xyz.tmp"
    young.write_bytes(b"")
    assert remove_stale_temps(str(tmp_path), ["a.npz"], before=time.time() - 60) == []  # may be a live writer
    assert young.exists()


@pytest.mark.slow
def test_sweep_fans_out_and_ranks_runs(out):
    sweep = pipelines.SweepHAR(output_dir=out, learning_rates=[0.0005, 0.02], seeds=[0], **HAR_SMALL)
    # one worker: Luigi's parallel workers fork, and this pytest process may hold JAX's threads
    # (Keras tests); parallel workers are exercised in a subprocess by the luigid test in test_cli.py
    result, sets = build([sweep], workers=1)
    assert result.status.name == "SUCCESS", result.summary_text
    assert ran(sets).count("TrainHAR") == 2 and ran(sets).count("PrepareHAR") == 1
    with open(sweep.output()["leaderboard.csv"].path) as handle:
        rows = list(csv.DictReader(handle))
    assert [r["rank"] for r in rows] == ["1", "2"]
    assert {float(r["learning_rate"]) for r in rows} == {0.0005, 0.02}
    f1 = [float(r["macro_f1"]) for r in rows]
    assert f1 == sorted(f1, reverse=True)
    for r in rows:
        metrics = read_json(os.path.join(sweep.data_folder(), r["run_folder"], "metrics.json"))
        assert abs(metrics["macro_f1"] - float(r["macro_f1"])) < 1e-5
    # A wider sweep reuses the finished runs and trains only the new one.
    wider = pipelines.SweepHAR(output_dir=out, learning_rates=[0.0005, 0.02], seeds=[0, 1], **HAR_SMALL)
    result, sets = build([wider], workers=1)
    assert ran(sets).count("TrainHAR") == 2 and "PrepareHAR" not in ran(sets)

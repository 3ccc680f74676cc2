"""Prepare tasks on user data in the real formats, format detection, and bad sources."""
import gzip
import os

import nibabel as nib
import numpy as np
import pytest

import pipelines
import vision
from core.exceptions import DataFileNotFoundError, DataFormatError
from pipelines import har_tasks, medical_tasks, vision_tasks
from pipelines.outputs import read_npz

from .conftest import build, ran, read_json

ACTIVITIES = {1: "WALKING", 2: "SITTING", 3: "LAYING"}


# ------------------------------------------------------------------ writers of real formats

def write_wisdm(path, rng, users=(1, 2, 3, 4), n=120):
    """WISDM v1.1 raw text, with its real defects: ';' glued to z, a trailing ',;', two records on
    one line, blank lines, and one record with an empty field (dropped by the reader)."""
    records = []
    t = 1_000_000_000
    for user in users:
        for activity in ("Walking", "Sitting"):
            for i in range(n):
                t += 50_000_000
                x, y, z = rng.normal(size=3) + (3 * np.sin(i / 2.0) if activity == "Walking" else 9.8)
                records.append(f"{user},{activity},{t},{x:.6f},{y:.6f},{z:.6f};")
    records[5] = records[5][:-1] + ",;"
    records[9] = "1,Walking,1000000000,0.5,,;"
    lines = records[:20] + [records[20] + records[21], ""] + records[22:]
    with open(path, "w") as handle:
        handle.write("\n".join(lines) + "\n")


def write_ts(path, rng, n=24, length=20):
    """A UEA/UCR .ts archive file: two channels, class labels a/b."""
    lines = ["# test data", "@problemName Test", "@timeStamps false", "@missing false", "@univariate false",
             "@dimensions 2", "@equalLength true", f"@seriesLength {length}", "@classLabel true a b", "@data"]
    for i in range(n):
        label = "ab"[i % 2]
        dims = [",".join(f"{v:.4f}" for v in rng.normal(size=length) + (i % 2) * 2) for _ in range(2)]
        lines.append(":".join(dims) + ":" + label)
    with open(path, "w") as handle:
        handle.write("\n".join(lines) + "\n")


def write_uci_har(root, rng):
    """A small 'UCI HAR Dataset' folder: whitespace tables in scientific notation, 128-sample windows."""
    with open(os.path.join(root, "activity_labels.txt"), "w") as handle:
        handle.write("".join(f"{k} {v}\n" for k, v in ACTIVITIES.items()))
    for split, subjects in (("train", (1, 3, 5)), ("test", (2, 4))):
        os.makedirs(os.path.join(root, split, "Inertial Signals"))
        ys, ss = [], []
        for s in subjects:
            for a in ACTIVITIES:
                ys += [a] * 3
                ss += [s] * 3
        with open(os.path.join(root, split, f"y_{split}.txt"), "w") as handle:
            handle.write("".join(f"{v}\n" for v in ys))
        with open(os.path.join(root, split, f"subject_{split}.txt"), "w") as handle:
            handle.write("".join(f"{v}\n" for v in ss))
        for sig in ("body_acc", "body_gyro", "total_acc"):
            for axis in "xyz":
                with open(os.path.join(root, split, "Inertial Signals", f"{sig}_{axis}_{split}.txt"), "w") as h:
                    for a in ys:
                        h.write(" " + " ".join(f"{v: .7e}" for v in rng.normal(size=128) + a) + "\n")


def write_nifti_folder(root, rng, per_class=4, shape=(10, 11, 12)):
    for label, offset in (("control", 0.0), ("patient", 2.0)):
        os.makedirs(os.path.join(root, label))
        for i in range(per_class):
            vol = rng.normal(size=shape).astype(np.float32)
            vol[3:7, 3:7, 3:7] += offset + 3
            nib.save(nib.Nifti1Image(vol, np.diag([2.0, 2.0, 2.0, 1.0])),
                     os.path.join(root, label, f"s{i}.nii.gz"))


# ------------------------------------------------------------------ detection

def test_har_formats_are_detected(tmp_path):
    rng = np.random.default_rng(0)
    write_wisdm(tmp_path / "WISDM_raw.txt", rng)
    write_ts(tmp_path / "x.ts", rng)
    (tmp_path / "rec.csv").write_text("subject,time,ax,ay,az,activity\n1,0.0,1,2,3,walk\n")
    (tmp_path / "noext").write_text("@problemName x\n@classLabel true a b\n@data\n")
    uci = tmp_path / "UCI HAR Dataset"
    uci.mkdir()
    write_uci_har(str(uci), rng)
    assert har_tasks.detect_format(str(tmp_path / "WISDM_raw.txt")) == "wisdm"
    assert har_tasks.detect_format(str(tmp_path / "x.ts")) == "ts"
    assert har_tasks.detect_format(str(tmp_path / "rec.csv")) == "csv"
    assert har_tasks.detect_format(str(tmp_path / "noext")) == "ts"
    assert har_tasks.detect_format(str(uci)) == "uci-har"
    assert har_tasks.detect_format(str(tmp_path)) == "uci-har"  # the folder holding "UCI HAR Dataset"
    (tmp_path / "notes.txt").write_text("hello\nworld\n")
    with pytest.raises(DataFormatError, match="notes.txt.*cannot tell its format.*--format"):
        har_tasks.detect_format(str(tmp_path / "notes.txt"))
    with pytest.raises(DataFileNotFoundError, match="does not exist"):
        har_tasks.detect_format(str(tmp_path / "missing.txt"))
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(DataFormatError, match="not a 'UCI HAR Dataset' folder"):
        har_tasks.detect_format(str(tmp_path / "empty_dir"))


def test_vision_and_medical_formats_are_detected(tmp_path):
    images = np.zeros((4, 5, 5), dtype=np.uint8)
    vision.write_idx(tmp_path / "train-images-idx3-ubyte", images)
    with open(tmp_path / "train-images-idx3-ubyte", "rb") as src, gzip.open(tmp_path / "t.gz", "wb") as dst:
        dst.write(src.read())
    assert vision_tasks.detect_format(str(tmp_path / "train-images-idx3-ubyte")) == "idx"
    assert vision_tasks.detect_format(str(tmp_path / "t.gz")) == "idx"
    assert vision_tasks.detect_format(str(tmp_path)) == "idx"
    (tmp_path / "img").mkdir()
    assert vision_tasks.detect_format(str(tmp_path / "img")) == "folder"
    (tmp_path / "photo.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really")
    with pytest.raises(DataFormatError, match="neither an IDX file"):
        vision_tasks.detect_format(str(tmp_path / "photo.jpg"))

    (tmp_path / "m.csv").write_text("path,label\n")
    assert medical_tasks.detect_format(str(tmp_path / "m.csv")) == ("manifest", str(tmp_path / "m.csv"))
    (tmp_path / "scans").mkdir()
    (tmp_path / "scans" / "manifest.csv").write_text("path,label\n")
    manifest = str(tmp_path / "scans" / "manifest.csv")
    assert medical_tasks.detect_format(str(tmp_path / "scans")) == ("manifest", manifest)
    (tmp_path / "one.nii.gz").write_bytes(b"")
    with pytest.raises(DataFormatError, match="single scan"):
        medical_tasks.detect_format(str(tmp_path / "one.nii.gz"))
    with pytest.raises(DataFormatError, match="neither a manifest.csv"):
        medical_tasks.detect_format(str(tmp_path / "img"))


# ------------------------------------------------------------------ Prepare on real formats

def test_prepare_har_from_wisdm_uci_ts_and_csv(tmp_path):
    rng = np.random.default_rng(1)
    out = str(tmp_path / "out")
    write_wisdm(tmp_path / "wisdm.txt", rng)
    write_ts(tmp_path / "x.ts", rng)
    uci = tmp_path / "uci"
    uci.mkdir()
    write_uci_har(str(uci), rng)
    rows = ["user,t,ax,ay,az,activity"]
    for user in (1, 2, 3):
        for k, act in enumerate(("walk", "sit")):
            for i in range(100):
                rows.append(f"{user},{(k * 100 + i) / 20:.2f},{rng.normal():.3f},{rng.normal():.3f},"
                            f"{rng.normal() + k:.3f},{act}")
    (tmp_path / "rec.csv").write_text("\n".join(rows) + "\n")

    tasks = {
        "wisdm": pipelines.PrepareHAR(output_dir=out, source=str(tmp_path / "wisdm.txt"), window=40, step=20),
        "ts": pipelines.PrepareHAR(output_dir=out, source=str(tmp_path / "x.ts")),
        "uci-har": pipelines.PrepareHAR(output_dir=out, source=str(uci), test_size=0.4),
        "csv": pipelines.PrepareHAR(output_dir=out, source=str(tmp_path / "rec.csv"), window=20, step=10),
    }
    result, sets = build(tasks.values())
    assert result.status.name == "SUCCESS", result.summary_text
    for fmt, task in tasks.items():
        desc = read_json(task.output()["prepared.json"].path)
        arrays = read_npz(task.output()["prepared.npz"].path)
        assert desc["format"] == fmt
        assert len(arrays["X_train"]) == desc["split"]["n_train"] and len(arrays["X_test"]) == desc["split"]["n_test"]
        if fmt == "ts":
            assert arrays["X_train"].shape[1:] == (20, 2) and "groups_train" not in arrays
            assert desc["split"]["method"].startswith("stratified")
        else:
            assert not set(arrays["groups_train"]) & set(arrays["groups_test"]), fmt
    wisdm = read_json(tasks["wisdm"].output()["prepared.json"].path)
    assert any("DataQualityWarning" in w for w in wisdm["warnings"])  # the dropped record is reported
    assert read_npz(tasks["wisdm"].output()["prepared.npz"].path)["X_train"].shape[1:] == (40, 3)
    uci_arrays = read_npz(tasks["uci-har"].output()["prepared.npz"].path)
    assert uci_arrays["X_train"].shape[1:] == (128, 9)
    assert len(uci_arrays["y_train"]) + len(uci_arrays["y_test"]) == 5 * 3 * 3  # train and test parts pooled
    csv_desc = read_json(tasks["csv"].output()["prepared.json"].path)
    assert csv_desc["info"]["columns"] == {"axes": ["ax", "ay", "az"], "label": "activity", "subject": "user",
                                           "time": "t"}


def test_prepare_vision_from_idx_and_image_folder(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(2)
    X = rng.integers(0, 256, size=(30, 6, 6), dtype=np.uint8)
    y = np.arange(30, dtype=np.uint8) % 3
    vision.write_idx(tmp_path / "train-images-idx3-ubyte", X)
    vision.write_idx(tmp_path / "train-labels-idx1-ubyte", y)
    folder = tmp_path / "pics"
    for label in ("cat", "dog"):
        (folder / label).mkdir(parents=True)
        for i in range(5):
            Image.fromarray(rng.integers(0, 256, size=(9, 7, 3), dtype=np.uint8)).save(folder / label / f"{i}.png")
    out = str(tmp_path / "out")
    idx = pipelines.PrepareVision(output_dir=out, source=str(tmp_path / "train-images-idx3-ubyte"))
    pics = pipelines.PrepareVision(output_dir=out, source=str(folder), image_size="8x10", color="rgb", test_size=0.4)
    result, sets = build([idx, pics])
    assert result.status.name == "SUCCESS", result.summary_text
    a = read_npz(idx.output()["prepared.npz"].path)
    np.testing.assert_array_equal(np.sort(np.concatenate([a["y_train"], a["y_test"]])), np.sort(y))
    assert a["X_train"].shape[1:] == (6, 6, 1)
    desc = read_json(idx.output()["prepared.json"].path)
    assert desc["format"] == "idx" and desc["info"]["files"][0]["labels"].endswith("train-labels-idx1-ubyte")
    b = read_npz(pics.output()["prepared.npz"].path)
    assert b["X_train"].shape[1:] == (8, 10, 3) and set(b["y_test"]) == {"cat", "dog"}


def test_prepare_medical_from_class_folders(tmp_path):
    write_nifti_folder(str(tmp_path / "scans"), np.random.default_rng(3))
    task = pipelines.PrepareMedical(output_dir=str(tmp_path / "out"), source=str(tmp_path / "scans"), shape=8,
                                    normalize="minmax", test_size=0.5)
    result, sets = build([task])
    assert result.status.name == "SUCCESS", result.summary_text
    assert ran(sets) == ["PrepareMedical"]  # no synthetic scans for a user source
    a = read_npz(task.output()["prepared.npz"].path)
    assert a["X_train"].shape == (4, 8, 8, 8, 1)
    assert 0.0 <= a["X_train"].min() and a["X_train"].max() <= 1.0
    assert set(a["y_test"]) == {"control", "patient"}


# ------------------------------------------------------------------ bad sources

def _assert_failed_cleanly(task, match):
    result, sets = build([task])
    assert result.status.name == "FAILED"
    assert task.task_id in sets["failed"]
    assert not task.complete()
    assert not os.path.exists(task.data_folder()), "a failed Prepare left files behind"
    message = task.on_failure(_last_error(task))
    assert match in message


def _last_error(task):
    try:
        task.run()
    except Exception as exc:  # noqa: BLE001 - the error the failed build raised
        return exc
    raise AssertionError("run() did not fail")


@pytest.mark.parametrize("domain", ["HAR", "Vision", "Medical"])
def test_missing_source_fails_prepare_with_our_message(tmp_path, domain):
    cls = getattr(pipelines, f"Prepare{domain}")
    task = cls(output_dir=str(tmp_path / "out"), source=str(tmp_path / "nope"))
    _assert_failed_cleanly(task, "does not exist")
    assert isinstance(_last_error(task), DataFileNotFoundError)


def test_wrong_format_fails_prepare_with_our_message(tmp_path):
    rng = np.random.default_rng(4)
    write_ts(tmp_path / "x.ts", rng)
    out = str(tmp_path / "out")
    _assert_failed_cleanly(pipelines.PrepareHAR(output_dir=out, source=str(tmp_path / "x.ts"), format="wisdm"),
                           "DataFormatError")
    (tmp_path / "fake-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03" + b"\x00" * 5)  # truncated header
    _assert_failed_cleanly(pipelines.PrepareVision(output_dir=out, source=str(tmp_path / "fake-images-idx3-ubyte")),
                           "truncated")
    (tmp_path / "manifest.csv").write_text("path,label\na.nii.gz,x\nb.nii.gz,y\na.nii.gz,x\nb.nii.gz,y\n")
    _assert_failed_cleanly(pipelines.PrepareMedical(output_dir=out, source=str(tmp_path / "manifest.csv")),
                           "not found")

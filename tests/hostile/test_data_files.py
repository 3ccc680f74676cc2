"""Hostile data files: IDX gzip bombs, NaN float images, manifests that point
outside their folder or contradict themselves, and complex arrays."""
import gzip
import os
import struct

import numpy as np
import pytest

from core.exceptions import DataFormatError, InputError

from .conftest import assert_ours, run_capped


# ------------------------------------------------------------------------- IDX
def _idx_header(dims, code=0x08):
    return bytes([0, 0, code, len(dims)]) + struct.pack(f">{len(dims)}I", *dims)


@pytest.fixture(scope="module")
def idx_bomb(tmp_path_factory):
    """A gzip IDX file of 10 valid 28x28 images followed by 1 GiB of zeros (about 1 MB on disk)."""
    path = tmp_path_factory.mktemp("idx") / "train-images-idx3-ubyte.gz"
    block = gzip.compress(bytes(64 << 20), compresslevel=6)  # one 64 MiB member of zeros
    with open(path, "wb") as handle:
        handle.write(gzip.compress(_idx_header((10, 28, 28)) + bytes(7840)))
        for _ in range(16):
            handle.write(block)
    assert os.path.getsize(path) < 2 << 20
    return str(path)


def test_idx_gzip_bomb_is_not_decompressed(idx_bomb):
    code = f"import vision\nvision.load_idx({idx_bomb!r})"
    result = run_capped(code, preload="import numpy as np\nimport core\nimport vision")
    assert_ours(result, idx_bomb, "trailing data")


def test_idx_declared_size_is_capped_before_reading(tmp_path):
    import vision

    path = tmp_path / "big.idx.gz"
    path.write_bytes(gzip.compress(_idx_header((60000, 28, 28)) + bytes(1000)))
    with pytest.raises(DataFormatError, match=r"big\.idx\.gz.*47,040,000 bytes.*max_bytes=1,000,000"):
        vision.load_idx(path, max_bytes=1_000_000)
    with pytest.raises(DataFormatError, match="truncated"):  # within the cap it is read, and found short
        vision.load_idx(path)


def test_corrupt_gzip_idx_names_the_file(tmp_path):
    import vision

    good = gzip.compress(_idx_header((2, 2)) + bytes(4))
    path = tmp_path / "bad.idx.gz"
    path.write_bytes(good[:12] + bytes(len(good) - 12))  # deflate stream zeroed out
    with pytest.raises(DataFormatError, match=r"bad\.idx\.gz.*gzip"):
        vision.load_idx(path)


# -------------------------------------------------------------- float images
def test_float_tiff_of_nan_pixels_is_refused_not_turned_grey(tmp_path):
    from PIL import Image

    import vision

    for name, value in (("a", np.nan), ("b", 0.5)):
        (tmp_path / name).mkdir()
        Image.fromarray(np.full((6, 6), value, np.float32)).save(tmp_path / name / "x.tif")
    with pytest.raises(DataFormatError) as info:
        vision.load_image_folder(tmp_path, size=(6, 6))
    assert str(tmp_path / "a" / "x.tif") in str(info.value) and "NaN" in str(info.value)
    # skipped on request: class "a" is then left with no image, and the error says why
    with pytest.raises(DataFormatError, match=r"class folder.*NaN"):
        vision.load_image_folder(tmp_path, size=(6, 6), on_error="skip")


# ------------------------------------------------------------------- manifests
@pytest.fixture
def scans(tmp_path):
    folder = tmp_path / "data"
    (folder / "scans").mkdir(parents=True)
    for n in "abcd":
        (folder / "scans" / f"{n}.nii.gz").write_bytes(b"not read here")
    return folder


def test_manifest_path_outside_its_folder_is_refused_without_echo(scans):
    import medical

    csv = scans / "manifest.csv"
    csv.write_text("path,label\n../../../../../../../../etc/passwd,0\nscans/a.nii.gz,0\n"
                   "scans/b.nii.gz,1\nscans/c.nii.gz,1\n")
    with pytest.raises(DataFormatError) as info:
        medical.read_manifest(csv)
    msg = str(info.value)
    assert str(csv) in msg and "line 2" in msg and "allow_outside" in msg
    assert "root:" not in msg
    paths, _ = medical.read_manifest(csv, allow_outside=True)  # the documented way to allow it
    assert paths[0] == "/etc/passwd"


def test_manifest_absolute_path_elsewhere_is_refused(scans, tmp_path):
    import medical

    elsewhere = tmp_path / "other.nii.gz"
    elsewhere.write_bytes(b"x")
    csv = scans / "manifest.csv"
    csv.write_text(f"path,label\n{elsewhere},0\nscans/a.nii.gz,0\nscans/b.nii.gz,1\nscans/c.nii.gz,1\n")
    with pytest.raises(DataFormatError, match="line 2"):
        medical.read_manifest(csv)
    inside = f"path,label\n{scans}/scans/d.nii.gz,0\nscans/a.nii.gz,0\nscans/b.nii.gz,1\nscans/c.nii.gz,1\n"
    csv.write_text(inside)
    assert len(medical.read_manifest(csv)[0]) == 4  # an absolute path inside the folder is fine


def test_manifest_same_scan_with_two_labels_is_a_conflict(scans):
    import medical

    csv = scans / "manifest.csv"
    csv.write_text("path,label\nscans/a.nii.gz,0\nscans/a.nii.gz,1\nscans/b.nii.gz,0\nscans/c.nii.gz,1\n")
    with pytest.raises(DataFormatError) as info:
        medical.read_manifest(csv)
    msg = str(info.value)
    assert str(csv) in msg and "conflicting labels" in msg and "line 2" in msg and "line 3" in msg


def test_manifest_huge_field_is_our_error(scans):
    import medical

    csv = scans / "manifest.csv"
    csv.write_text('path,label\n"' + "x" * 300_000 + '",0\nscans/a.nii.gz,0\n')
    with pytest.raises(DataFormatError) as info:
        medical.read_manifest(csv)
    assert str(csv) in str(info.value) and "xxxx" not in str(info.value)


def test_manifest_that_is_not_a_manifest_is_not_echoed(tmp_path):
    import medical

    fake = tmp_path / "passwd"
    fake.write_text("root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1::/usr/sbin:/bin/false\n")
    with pytest.raises(DataFormatError) as info:
        medical.read_manifest(fake)
    assert str(fake) in str(info.value) and "root" not in str(info.value).replace(str(fake), "")


# --------------------------------------------------------------- engine API
@pytest.mark.parametrize("call", ["predict", "fit", "train_on_batch", "evaluate"])
def test_complex_input_is_refused_not_truncated(call):
    from core import Input, Sequential, layers

    model = Sequential([Input((4,)), layers.Dense(2, activation="softmax")], seed=0)
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    x = np.ones((3, 4)) + 1j
    y = np.array([0, 1, 0])
    with pytest.raises(InputError, match="complex"):
        if call == "predict":
            model.predict(x)
        elif call == "fit":
            model.fit(x, y, epochs=1, verbose=0)
        else:
            getattr(model, call)(x, y)

"""DICOM series and multi-frame files: same RAS data and affine as the NIfTI route; damaged series refused."""
import os

import numpy as np
import pytest

pydicom = pytest.importorskip("pydicom")

import medical  # noqa: E402
from core.exceptions import DataFormatError, InputError  # noqa: E402

from .conftest import write_nifti  # noqa: E402
from .dicom_writer import rewrite, write_multiframe, write_series  # noqa: E402


def _ras(row_lps, col_lps, spacing, origin_lps, tilt=None):
    """RAS affine of a DICOM acquisition given row/column directions (LPS) and voxel sizes."""
    row, col = np.asarray(row_lps, float), np.asarray(col_lps, float)
    normal = np.cross(row, col) if tilt is None else np.asarray(tilt, float)
    lps = np.eye(4)
    lps[:3, 0] = row * spacing[0]
    lps[:3, 1] = col * spacing[1]
    lps[:3, 2] = normal / np.linalg.norm(normal) * spacing[2]
    lps[:3, 3] = origin_lps
    return np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps


def _rotation(angles):
    a, b, c = np.radians(angles)
    rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    rz = np.array([[np.cos(c), -np.sin(c), 0], [np.sin(c), np.cos(c), 0], [0, 0, 1]])
    return rz @ ry @ rx


_ROT = _rotation((12, -20, 31))
ACQUISITIONS = {
    "axial": _ras([1, 0, 0], [0, 1, 0], (0.7, 0.8, 2.5), [-90, -100, 40]),
    "sagittal": _ras([0, 1, 0], [0, 0, -1], (0.9, 1.1, 3.0), [20, -80, 60]),
    "coronal": _ras([1, 0, 0], [0, 0, -1], (0.8, 0.8, 2.0), [-70, 10, 50]),
    "oblique": _ras(_ROT[:, 0], _ROT[:, 1], (1.0, 1.2, 2.2), [5, -15, 25]),
}


def _volume(shape=(10, 12, 7), seed=0):
    rng = np.random.default_rng(seed)
    raw = rng.integers(-900, 1800, size=shape).astype(np.int16)
    raw[2, 3, 1] = 3000                       # a marker: mirrored or swapped axes would move it
    return raw


@pytest.mark.parametrize("name", sorted(ACQUISITIONS))
def test_series_equals_the_same_image_as_nifti(tmp_path, name):
    affine = ACQUISITIONS[name]
    raw = _volume()
    write_series(tmp_path / "series", raw, affine, slope=0.5, inter=-1024.0, seed=len(name))
    nii = write_nifti(tmp_path / "same.nii.gz", raw, affine=affine, slope=0.5, inter=-1024.0)
    a, ia = medical.load_scan(tmp_path / "series", normalize=None, return_info=True)
    b, ib = medical.load_scan(nii, normalize=None, return_info=True)
    assert a.shape == b.shape
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(ia["affine"], ib["affine"], atol=1e-4)
    assert ia["format"] == "dicom" and ia["original_orientation"] == ib["original_orientation"]
    # downstream steps (resampling, normalization, shape) give the same result too
    c = medical.load_scan(tmp_path / "series", spacing=1.5, shape=(8, 8, 8))
    d = medical.load_scan(nii, spacing=1.5, shape=(8, 8, 8))
    np.testing.assert_allclose(c, d, atol=1e-4)


def test_scan_info_on_a_series(tmp_path):
    affine = ACQUISITIONS["sagittal"]
    write_series(tmp_path / "s", _volume(), affine, slope=2.0, inter=-5.0, number=7, description="T1 sag")
    info = medical.scan_info(tmp_path / "s")
    assert info["format"] == "dicom" and info["shape"] == (10, 12, 7)
    assert info["series_number"] == "7" and info["series_description"] == "T1 sag" and info["n_files"] == 7
    assert info["scaling"] == (2.0, -5.0) and info["dtype"] == "int16"
    assert info["orientation"] == medical.preprocessing.axis_codes(affine)
    np.testing.assert_allclose(info["spacing"], (0.9, 1.1, 3.0), atol=1e-6)


def test_multiframe_file(tmp_path):
    affine = ACQUISITIONS["oblique"]
    raw = _volume((9, 8, 6), seed=1)
    path = write_multiframe(str(tmp_path / "enhanced.dcm"), raw, affine, slope=1.5, inter=-3.0, seed=4)
    nii = write_nifti(tmp_path / "same.nii", raw, affine=affine, slope=1.5, inter=-3.0)
    a, ia = medical.load_scan(path, normalize=None, return_info=True)
    b, ib = medical.load_scan(nii, normalize=None, return_info=True)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(ia["affine"], ib["affine"], atol=1e-4)
    assert medical.scan_info(path)["multiframe"] is True


def test_missing_slice_names_the_gap(tmp_path):
    write_series(tmp_path / "s", _volume(), ACQUISITIONS["axial"], drop=(3,))
    with pytest.raises(DataFormatError, match=r"gap of 5 mm.*2 times the spacing of 2.5 mm.*1 slice\(s\) missing"):
        medical.load_scan(tmp_path / "s")


def test_two_series_are_listed_and_one_can_be_chosen(tmp_path):
    raw = _volume()
    write_series(tmp_path / "s", raw, ACQUISITIONS["axial"], number=3, description="T1 axial")
    write_series(tmp_path / "s", raw[:, :, :5] // 2, ACQUISITIONS["coronal"], number=4, description="T2 cor",
                 names=[f"B{k}" for k in range(5)])
    with pytest.raises(DataFormatError, match=r"2 DICOM series.*series=") as err:
        medical.load_scan(tmp_path / "s")
    msg = str(err.value)
    assert "number 3 'T1 axial': 7 file(s)" in msg and "number 4 'T2 cor': 5 file(s)" in msg
    assert medical.load_scan(tmp_path / "s", series=4, normalize=None).shape[:3] == \
        medical.load_scan(write_nifti(tmp_path / "t2.nii", raw[:, :, :5] // 2, affine=ACQUISITIONS["coronal"]),
                          normalize=None).shape[:3]
    assert medical.scan_info(tmp_path / "s", series="3")["n_files"] == 7
    with pytest.raises(InputError, match="series=9 matches 0"):
        medical.load_scan(tmp_path / "s", series=9)


def test_slice_without_position(tmp_path):
    paths = write_series(tmp_path / "s", _volume(), ACQUISITIONS["axial"])
    rewrite(paths[2], ImagePositionPatient=None)
    with pytest.raises(DataFormatError, match=rf"{os.path.basename(paths[2])}.*no ImagePositionPatient"):
        medical.load_scan(tmp_path / "s")


def test_unequal_spacing(tmp_path):
    paths = write_series(tmp_path / "s", _volume(), ACQUISITIONS["axial"])
    ds = pydicom.dcmread(paths[4])
    pos = [float(v) for v in ds.ImagePositionPatient]
    rewrite(paths[4], ImagePositionPatient=[pos[0], pos[1], pos[2] + 0.9])
    with pytest.raises(DataFormatError, match=r"unequal slice spacing: 3.4 mm.*2.5 mm elsewhere"):
        medical.load_scan(tmp_path / "s")


def test_compressed_syntax_without_a_decoder_names_the_packages(tmp_path):
    from pydicom.uid import JPEGLSLossless
    paths = write_series(tmp_path / "s", _volume(), ACQUISITIONS["axial"])
    for p in paths:
        ds = pydicom.dcmread(p)
        ds.file_meta.TransferSyntaxUID = JPEGLSLossless
        ds.PixelData = pydicom.encaps.encapsulate([b"\xff\xd8\xff\xf7not-a-real-stream"])
        ds["PixelData"].VR = "OB"
        ds.save_as(p, enforce_file_format=True)
    if pydicom.pixels.get_decoder(JPEGLSLossless).is_available:
        pytest.skip("a JPEG-LS decoder is installed")
    with pytest.raises(DataFormatError, match=r"JPEG-LS Lossless.*no installed package decodes it.*pylibjpeg"):
        medical.load_scan(tmp_path / "s")


def test_damaged_and_foreign_files(tmp_path):
    paths = write_series(tmp_path / "s", _volume(), ACQUISITIONS["axial"])
    (tmp_path / "s" / "README.txt").write_text("secret-words " * 20)       # not DICOM: ignored
    assert medical.load_scan(tmp_path / "s").shape == (10, 12, 7, 1)
    with open(paths[1], "r+b") as handle:                                  # DICM marker, then garbage
        handle.seek(132)
        handle.write(b"\xff" * 64 + b"secret-words")
    with pytest.raises(DataFormatError, match=os.path.basename(paths[1])) as err:
        medical.load_scan(tmp_path / "s")
    assert "secret" not in str(err.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataFormatError, match="no DICOM files"):
        medical.load_scan(tmp_path / "empty")
    with pytest.raises(DataFormatError, match="single DICOM slice"):
        medical.load_scan(paths[0])


def test_declared_size_is_checked_before_decoding(tmp_path):
    paths = write_series(tmp_path / "s", _volume(), ACQUISITIONS["axial"])
    with pytest.raises(DataFormatError, match="max_bytes=1000"):
        medical.load_scan(tmp_path / "s", max_bytes=1000)
    for p in paths:
        rewrite(p, Rows=60000, Columns=60000)
    with pytest.raises(DataFormatError, match=r"\(60000, 60000, 7\).*max_bytes"):
        medical.load_scan(tmp_path / "s")


def test_series_folders_in_a_manifest_and_the_classifier(tmp_path):
    rows = ["path,label"]
    for i in range(4):
        raw = _volume((8, 8, 6), seed=i)
        write_series(tmp_path / f"sub{i}", raw, ACQUISITIONS["axial"], seed=i)
        rows.append(f"sub{i},{'ab'[i % 2]}")
    (tmp_path / "m.csv").write_text("\n".join(rows) + "\n")
    paths, labels = medical.read_manifest(tmp_path / "m.csv")
    X = medical.load_scans(paths, shape=(8, 8, 8), cache_dir=tmp_path / "cache")
    assert X.shape == (4, 8, 8, 8, 1)
    cache = medical.ScanCache(tmp_path / "cache")
    before = cache.entry_path(paths[0], shape=(8, 8, 8))
    assert os.path.exists(before)
    first = sorted(os.listdir(paths[0]))[0]
    st = os.stat(os.path.join(paths[0], first))
    os.utime(os.path.join(paths[0], first), ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert cache.entry_path(paths[0], shape=(8, 8, 8)) != before       # a rewritten slice misses the cache
    clf = medical.ScanClassifier(shape=(8, 8, 8), filters=(2,), epochs=1).fit(paths, labels)
    assert clf.predict(paths).shape == (4,)


def test_pipeline_source_folder_of_series_folders(tmp_path):
    from pipelines.medical_tasks import _read_folder, detect_format
    for label in ("healthy", "lesion"):
        for i in range(2):
            write_series(tmp_path / "src" / label / f"sub{i}", _volume((6, 6, 5), seed=i), ACQUISITIONS["axial"])
    fmt, where = detect_format(str(tmp_path / "src"))
    paths, labels, _ = _read_folder(where)
    assert fmt == "folder" and len(paths) == 4 and sorted(set(labels)) == ["healthy", "lesion"]
    assert all(os.path.isdir(p) for p in paths)
    assert medical.load_scans(paths, shape=(6, 6, 6), cache_dir=tmp_path / "c").shape == (4, 6, 6, 6, 1)
    # paths given as bytes (as a prepared .npz may hold them) work through the cache too
    assert medical.ScanCache(tmp_path / "c").load(os.fsencode(paths[0]), shape=(6, 6, 6)).shape == (6, 6, 6, 1)

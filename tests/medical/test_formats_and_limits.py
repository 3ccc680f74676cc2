"""Analyze and MGH/MGZ through nibabel, 4-D reductions, and hostile headers (issue 13): sizes refused
before allocating, float64 normalisation, impossible offsets."""
import ast
import os
import pathlib
import struct
import subprocess
import sys
import textwrap
import warnings

import nibabel as nib
import numpy as np
import pytest
from nibabel.testing import data_path as NIB_DATA

import medical
from core.exceptions import DataFormatError, InputError

from .conftest import head_like, nifti_bytes, write_nifti

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _same_as_nifti(tmp_path, path, raw, affine):
    a, ia = medical.load_scan(path, normalize=None, return_info=True)
    b, ib = medical.load_scan(write_nifti(tmp_path / "ref.nii", raw, affine=affine), normalize=None,
                              return_info=True)
    np.testing.assert_allclose(a, b, rtol=1e-6)
    np.testing.assert_allclose(ia["affine"], ib["affine"], atol=1e-5)
    return ia


def test_analyze_pair_round_trip(tmp_path):
    raw = (head_like((9, 10, 8)) * 10).astype(np.int16)
    header = nib.AnalyzeHeader()
    header.set_data_dtype(np.int16)
    header.set_data_shape(raw.shape)
    header.set_zooms((1.5, 2.0, 2.5))
    img = nib.AnalyzeImage(raw, None, header)
    nib.save(img, tmp_path / "scan.hdr")
    affine = nib.AnalyzeImage.from_filename(tmp_path / "scan.hdr").affine      # x flipped: Analyze's LAS
    assert affine[0, 0] == -1.5
    info = _same_as_nifti(tmp_path, tmp_path / "scan.hdr", raw, affine)
    assert info["format"] == "analyze"
    np.testing.assert_array_equal(medical.load_scan(tmp_path / "scan.img", normalize=None),
                                  medical.load_scan(tmp_path / "scan.hdr", normalize=None))
    assert medical.scan_info(tmp_path / "scan.hdr")["spacing"] == (1.5, 2.0, 2.5)
    with open(tmp_path / "scan.img", "r+b") as handle:
        handle.truncate(100)
    with pytest.raises(DataFormatError, match=r"scan.img.*truncated"):
        medical.load_scan(tmp_path / "scan.hdr")
    os.remove(tmp_path / "scan.img")
    with pytest.raises(DataFormatError, match=r"scan.hdr.*\.img file.*missing"):
        medical.load_scan(tmp_path / "scan.hdr")


def test_nifti_pair_round_trip(tmp_path):
    raw = head_like((8, 9, 7))
    affine = np.array([[-1.2, 0, 0, 10], [0, 1.0, 0, -5], [0, 0, 2.0, 3], [0, 0, 0, 1]])
    nib.save(nib.Nifti1Pair(raw, affine), tmp_path / "pair.hdr")
    assert _same_as_nifti(tmp_path, tmp_path / "pair.hdr", raw, affine)["format"] == "nifti1-pair"


@pytest.mark.parametrize("name", ["scan.mgz", "scan.mgh"])
def test_mgh_round_trip(tmp_path, name):
    raw = head_like((8, 10, 9))
    affine = np.array([[-1.0, 0, 0, 5], [0, 0, 1.0, -3], [0, -1.5, 0, 8], [0, 0, 0, 1]])   # FreeSurfer's LIA
    nib.save(nib.MGHImage(raw, affine), tmp_path / name)
    assert _same_as_nifti(tmp_path, tmp_path / name, raw, affine)["format"] == name[-3:]


def test_real_mgz_and_4d_mean_from_nibabel_test_data(tmp_path):
    vol = medical.load_scan(os.path.join(NIB_DATA, "test.mgz"), volume="mean", normalize=None)
    ref = np.asarray(nib.load(os.path.join(NIB_DATA, "test.mgz")).dataobj, dtype=np.float64)
    assert vol.shape[-1] == 1 and np.isclose(vol.sum(), ref.reshape(ref.shape[:3] + (-1,)).mean(-1).sum(), rtol=1e-5)
    four = os.path.join(NIB_DATA, "example4d.nii.gz")
    mean = medical.load_scan(four, volume="mean", normalize=None)
    data = np.asarray(nib.load(four).dataobj, dtype=np.float64)
    assert np.isclose(mean.sum(), data.mean(axis=-1).sum(), rtol=1e-5)


def test_4d_reductions(nifti):
    raw = np.stack([head_like((6, 7, 5), seed=s) for s in range(3)], axis=-1)
    path = nifti("four.nii.gz", raw)
    np.testing.assert_allclose(medical.load_scan(path, volume="mean", normalize=None)[..., 0], raw.mean(-1),
                               rtol=1e-5)
    np.testing.assert_array_equal(medical.load_scan(path, volume="first", normalize=None)[..., 0], raw[..., 0])
    np.testing.assert_array_equal(medical.load_scan(path, volume=-1, normalize=None)[..., 0], raw[..., 2])
    np.testing.assert_array_equal(medical.load_scan(path, channels=True, normalize=None), raw)
    with pytest.raises(InputError, match="'mean'"):
        medical.load_scan(path)
    with pytest.raises(InputError, match="volume must be"):
        medical.load_scan(path, volume="median")
    three = nifti("three.nii", raw[..., 0])
    np.testing.assert_array_equal(medical.load_scan(three, volume="mean", normalize=None),
                                  medical.load_scan(three, normalize=None))


# ------------------------------------------------------------ issue 13
def _capped(code, limit=3 * 1024 ** 3):
    """Run ``code`` in a child process whose address space is capped; return (rc, output)."""
    script = textwrap.dedent(f"""
        import resource
        resource.setrlimit(resource.RLIMIT_AS, ({limit}, {limit}))
    """) + textwrap.dedent(code)
    env = dict(os.environ, PYTHONPATH=str(ROOT), OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120,
                         cwd=str(ROOT))
    return out.returncode, out.stdout + out.stderr


@pytest.mark.parametrize("zoom,spacing", [(50.0, 0.5), (1e6, 0.5), (1e30, 1.0)])
def test_output_grid_is_checked_before_allocating(tmp_path, zoom, spacing):
    path = write_nifti(tmp_path / "big-voxels.nii.gz", head_like((20, 20, 20)), zooms=(zoom,) * 3)
    rc, out = _capped(f"""
        import medical
        from core.exceptions import DataFormatError
        try:
            medical.load_scan({path!r}, spacing={spacing})
        except DataFormatError as exc:
            print("REFUSED", exc)
    """)
    assert rc == 0 and "REFUSED" in out, out
    assert "big-voxels.nii.gz" in out and "max_bytes" in out and "spacing=" in out
    with pytest.raises(DataFormatError, match=r"shape=\(5000, 5000, 5000\).*max_bytes"):
        medical.load_scan(path, shape=5000)


def test_tiny_voxels_do_not_ask_scipy_for_an_endless_kernel(nifti):
    path = nifti("tiny.nii", head_like((10, 10, 10)), zooms=(1e-3,) * 3)
    assert medical.load_scan(path, spacing=1.0, normalize=None).shape == (1, 1, 1, 1)
    with pytest.raises(DataFormatError, match="tiny0.nii.*degenerate"):
        medical.load_scan(nifti("tiny0.nii", head_like((10, 10, 10)), zooms=(1e-30,) * 3), spacing=1.0)


def test_zscore_near_float32_limits_stays_finite(nifti):
    raw = np.full((8, 8, 8), -3e38, np.float32)
    raw[2:6, 2:6, 2:6] = 3e38
    raw[3, 3, 3] = 1e38
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for norm in ("zscore", "minmax", "percentile"):
            vol = medical.load_scan(nifti(f"{norm}.nii", raw), normalize=norm)
            assert np.isfinite(vol).all(), norm
            assert vol.max() > vol.min()


def test_binary_mask_zscore(nifti):
    raw = np.zeros((10, 10, 10), np.uint8)
    raw[3:7, 3:7, 3:7] = 255
    with warnings.catch_warnings():
        warnings.simplefilter("error")                       # no "gives zeros" warning
        vol = medical.load_scan(nifti("mask.nii", raw))[..., 0]
    assert len(np.unique(vol)) == 2
    assert abs(vol.mean()) < 1e-5 and abs(vol.std() - 1) < 1e-5
    assert vol[5, 5, 5] > 0 > vol[0, 0, 0]
    with pytest.warns(medical.ScanQualityWarning, match="constant"):
        assert not medical.load_scan(nifti("flat.nii", np.full((4, 4, 4), 7, np.uint8))).any()


@pytest.mark.parametrize("version,offset", [(1, 0.0), (1, 200.0), (2, 0)])
def test_single_file_offset_inside_the_header_is_refused(tmp_path, version, offset):
    data = bytearray(nifti_bytes(head_like((6, 6, 6)), version=version))
    if version == 1:
        data[108:112] = struct.pack("<f", offset)
    else:
        data[168:176] = struct.pack("<q", offset)
    path = tmp_path / "offset.nii"
    path.write_bytes(bytes(data))
    with pytest.raises(DataFormatError, match=rf"offset.nii.*vox_offset is {offset:g}.*{352 if version == 1 else 544}"):
        medical.load_scan(path)


def test_fifo_is_refused_without_opening(tmp_path):
    fifo = tmp_path / "scan.nii"
    os.mkfifo(fifo)
    with pytest.raises(InputError, match="scan.nii.*FIFO.*expected a regular file"):
        medical.load_scan(fifo)


def test_scans_does_not_import_the_cache():
    for module in ("scans", "preprocessing", "dicom"):
        tree = ast.parse((ROOT / "medical" / f"{module}.py").read_text())
        imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert "cache" not in imported and "medical.cache" not in imported, module

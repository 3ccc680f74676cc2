"""medical.load_scan on NIfTI files written here byte-exact."""
import gzip
import struct
import tracemalloc
import warnings

import nibabel as nib
import numpy as np
import pytest

import medical
from core.exceptions import DataFileNotFoundError, DataFormatError, InputError
from tests.medical.conftest import head_like, nifti_bytes

RAS_AFFINE = np.array([[2.0, 0, 0, -10], [0, 3.0, 0, -20], [0, 0, 4.0, -30], [0, 0, 0, 1]])


def _stored(ras, codes):
    """``(stored array, affine)``: the RAS volume ``ras`` (affine RAS_AFFINE) as a
    scanner would store it in orientation ``codes``; built by explicit index maps."""
    nx, ny, nz = ras.shape
    if codes == "RAS":
        return ras, RAS_AFFINE
    if codes == "LAS":      # stored[i] = ras[nx-1-i]
        m = np.array([[-1, 0, 0, nx - 1], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], float)
        return ras[::-1], RAS_AFFINE @ m
    if codes == "LPS":
        m = np.array([[-1, 0, 0, nx - 1], [0, -1, 0, ny - 1], [0, 0, 1, 0], [0, 0, 0, 1]], float)
        return ras[::-1, ::-1], RAS_AFFINE @ m
    if codes == "PIR":      # stored[i, j, k] = ras[k, ny-1-i, nz-1-j]
        stored = np.empty((ny, nz, nx), ras.dtype)
        for i in range(ny):
            for j in range(nz):
                stored[i, j, :] = ras[:, ny - 1 - i, nz - 1 - j]
        m = np.array([[0, 0, 1, 0], [-1, 0, 0, ny - 1], [0, -1, 0, nz - 1], [0, 0, 0, 1]], float)
        return stored, RAS_AFFINE @ m
    raise ValueError(codes)


# ------------------------------------------------------------- orientation
@pytest.mark.parametrize("codes", ["RAS", "LAS", "LPS", "PIR"])
def test_reorients_to_ras_with_marker_voxel(nifti, codes):
    rng = np.random.default_rng(1)
    ras = rng.uniform(0, 10, size=(6, 7, 8)).astype(np.float32)
    ras[1, 2, 3] = 100.0                       # the marker: right-ish, posterior, inferior corner region
    stored, affine = _stored(ras, codes)
    path = nifti(f"scan_{codes}.nii.gz", stored, affine=affine)
    assert medical.scan_info(path)["orientation"] == codes
    vol, info = medical.load_scan(path, normalize=None, return_info=True)
    assert vol.shape == (6, 7, 8, 1) and vol.dtype == np.float32
    assert np.unravel_index(vol[..., 0].argmax(), ras.shape) == (1, 2, 3)
    np.testing.assert_array_equal(vol[..., 0], ras)
    np.testing.assert_allclose(info["affine"], RAS_AFFINE)
    assert info["original_orientation"] == codes
    # the same voxels as nibabel's own canonical reorientation
    canonical = nib.as_closest_canonical(nib.load(path)).get_fdata()
    np.testing.assert_array_equal(vol[..., 0], canonical.astype(np.float32))


def test_las_marker_lands_on_the_mirrored_index(nifti):
    data = np.zeros((5, 4, 3), np.float32)
    data[0, 1, 2] = 7.0                       # stored index 0 along an L-pointing axis = the rightmost voxel
    affine = np.diag([-1.0, 1.0, 1.0, 1.0])
    vol = medical.load_scan(nifti("las.nii", data, affine=affine), normalize=None)
    assert vol[4, 1, 2, 0] == 7.0 and vol.sum() == 7.0


# --------------------------------------------------------------- resampling
def test_resample_to_spacing_is_trilinear_in_world_coordinates(nifti):
    shape = (8, 6, 5)
    idx = np.meshgrid(*[np.arange(n, dtype=float) for n in shape], indexing="ij")
    world_x = RAS_AFFINE[0, 0] * idx[0] + RAS_AFFINE[0, 3]
    world_z = RAS_AFFINE[2, 2] * idx[2] + RAS_AFFINE[2, 3]
    ramp = (world_x + 0.5 * world_z).astype(np.float32)        # linear in world mm
    path = nifti("ramp.nii.gz", ramp, affine=RAS_AFFINE)
    vol, info = medical.load_scan(path, spacing=1.0, normalize=None, return_info=True)
    assert vol.shape == (16, 18, 20, 1)
    np.testing.assert_allclose(info["spacing"], (1.0, 1.0, 1.0))
    out = np.meshgrid(*[np.arange(n, dtype=float) for n in vol.shape[:3]], indexing="ij")
    aff = info["affine"]
    wx = aff[0, 0] * out[0] + aff[0, 3]
    wz = aff[2, 2] * out[2] + aff[2, 3]
    # inside the input's outermost voxel centres the trilinear sample is the ramp itself
    inside = ((wx >= -10) & (wx <= -10 + 2 * 7) & (wz >= -30) & (wz <= -30 + 4 * 4))
    assert inside.sum() > 0.5 * inside.size
    np.testing.assert_allclose(vol[..., 0][inside], (wx + 0.5 * wz)[inside], atol=1e-4)
    # outside, the edge value is repeated (no dark rim)
    assert vol.min() >= ramp.min() - 1e-4 and vol.max() <= ramp.max() + 1e-4


def test_anisotropic_spacing_and_fov_come_out_on_a_common_grid(nifti):
    a = nifti("a.nii.gz", head_like((20, 20, 10)), zooms=(1.0, 1.0, 2.0))
    b = nifti("b.nii.gz", head_like((10, 10, 20)), zooms=(2.0, 2.0, 1.0))
    va = medical.load_scan(a, spacing=(2.0, 2.0, 2.0), normalize=None)
    vb = medical.load_scan(b, spacing=(2.0, 2.0, 2.0), normalize=None)
    assert va.shape == vb.shape == (10, 10, 10, 1)      # both fields of view are 20 mm cubes


def test_shape_resample_mode_changes_the_voxel_size(nifti):
    path = nifti("s.nii.gz", head_like((10, 12, 8)), zooms=(1.0, 1.0, 1.5))
    vol, info = medical.load_scan(path, shape=(16, 16, 16), normalize=None, return_info=True)
    assert vol.shape == (16, 16, 16, 1)
    np.testing.assert_allclose(info["spacing"], (10 / 16, 12 / 16, 1.5 * 8 / 16))
    # a constant volume stays constant under resizing
    flat = nifti("flat.nii", np.full((5, 6, 7), 3.0, np.float32))
    np.testing.assert_allclose(medical.load_scan(flat, shape=(9, 4, 11), normalize=None), 3.0)


def test_shape_crop_or_pad_keeps_voxels_and_centre(nifti):
    data = np.ones((10, 10, 10), np.float32)
    data[5, 5, 5] = 50.0
    path = nifti("c.nii.gz", data, zooms=(1.5, 1.5, 1.5))
    small, info = medical.load_scan(path, shape=(6, 6, 6), shape_mode="crop_or_pad", normalize=None,
                                    return_info=True)
    assert small.shape == (6, 6, 6, 1) and small[3, 3, 3, 0] == 50.0
    np.testing.assert_allclose(info["spacing"], (1.5, 1.5, 1.5))
    big = medical.load_scan(path, shape=(14, 13, 10), shape_mode="crop_or_pad", normalize=None)
    assert big.shape == (14, 13, 10, 1) and big[7, 7, 5, 0] == 50.0
    assert big[0, 0, 0, 0] == 1.0                 # padded with the scan's minimum (its background)
    np.testing.assert_array_equal(big[2:12, 2:12, :, 0], data)     # odd padding: the extra voxel goes after
    with pytest.raises(InputError, match="shape_mode"):
        medical.load_scan(path, shape=6, shape_mode="pad")


def test_spacing_then_shape(nifti):
    path = nifti("sp.nii.gz", head_like((12, 12, 6)), zooms=(1.0, 1.0, 3.0))
    vol, info = medical.load_scan(path, spacing=1.5, shape=(10, 10, 10), shape_mode="crop_or_pad",
                                  return_info=True)
    assert vol.shape == (10, 10, 10, 1)
    np.testing.assert_allclose(info["spacing"], (1.5, 1.5, 1.5))


# ------------------------------------------------------------ normalization
def test_zscore_over_foreground(nifti):
    raw = head_like((16, 16, 16)) * 7 + 5
    vol = medical.load_scan(nifti("z.nii.gz", raw))[..., 0]
    fg = raw > raw.mean()
    assert 0.1 < fg.mean() < 0.9
    assert abs(vol[fg].mean()) < 1e-4 and abs(vol[fg].std() - 1) < 1e-3
    assert vol[~fg].mean() < -2                        # background is far below the tissue


def test_minmax_and_percentile(nifti):
    raw = head_like((16, 16, 16))
    vol = medical.load_scan(nifti("m.nii.gz", raw), normalize="minmax")
    assert vol.min() == 0.0 and vol.max() == pytest.approx(1.0)
    hot = raw.copy()
    hot[0, 0, 0] = 1e6                                 # one hot voxel
    path = nifti("hot.nii.gz", hot)
    pct = medical.load_scan(path, normalize="percentile")[..., 0]
    lo, hi = np.percentile(hot, [0.5, 99.5])
    np.testing.assert_allclose(pct, np.clip((hot - lo) / (hi - lo), 0, 1), atol=1e-5)
    assert pct.min() == 0.0 and pct.max() == 1.0
    inside = raw > 50
    assert pct[inside].mean() > 0.8                    # not squashed towards 0 by the hot voxel
    assert medical.load_scan(path, normalize="minmax")[..., 0][inside].mean() < 0.01


def test_ct_window_and_none(nifti):
    hu = np.full((4, 4, 4), -1000, np.int16)
    hu[1, 1, :] = [-20, 0, 40, 60]
    hu[2, 2, :] = [80, 100, 1500, 3000]
    path = nifti("ct.nii.gz", hu)
    win = medical.load_scan(path, normalize=("ct", 40, 80))[..., 0]
    np.testing.assert_allclose(win[1, 1], [0.0, 0.0, 0.5, 0.75])
    np.testing.assert_allclose(win[2, 2], [1.0, 1.0, 1.0, 1.0])
    assert win[0, 0, 0] == 0.0
    np.testing.assert_array_equal(medical.load_scan(path, normalize=None)[..., 0], hu.astype(np.float32))
    # the window as JSON gives it back (a list) is accepted too
    np.testing.assert_array_equal(medical.load_scan(path, normalize=["ct", 40, 80])[..., 0], win)


@pytest.mark.parametrize("bad", ["ct", ("ct", 40, 0), ("ct", "a", 1), "z-score", 3])
def test_bad_normalize_is_refused(nifti, bad):
    path = nifti("n.nii", head_like())
    with pytest.raises(InputError, match="normalize"):
        medical.load_scan(path, normalize=bad)


def test_constant_volume_warns_and_gives_zeros(nifti):
    path = nifti("const.nii", np.full((4, 5, 6), 9, np.int16))
    with pytest.warns(medical.ScanQualityWarning, match="constant"):
        vol = medical.load_scan(path, normalize="zscore")
    np.testing.assert_array_equal(vol, 0.0)


# ----------------------------------------------------- storage and headers
@pytest.mark.parametrize("version,endian,name,dtype", [
    (1, "<", "a.nii", np.int16), (1, ">", "b.nii.gz", np.int16), (2, "<", "c.nii.gz", np.float32),
    (2, ">", "d.nii", np.float64), (1, ">", "e.nii", np.uint8), (2, ">", "f.nii.gz", np.int32)])
def test_nifti1_nifti2_and_byte_orders(tmp_path, version, endian, name, dtype):
    raw = (head_like((5, 6, 7)) * 2).astype(dtype)
    data = nifti_bytes(raw, version=version, endian=endian)
    assert data[:4] == struct.pack(endian + "i", 348 if version == 1 else 540)
    path = tmp_path / name
    path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    vol, info = medical.load_scan(path, normalize=None, return_info=True)
    assert info["nifti_version"] == version
    np.testing.assert_array_equal(vol[..., 0], raw.astype(np.float32))
    assert medical.scan_info(path)["byte_order"] == endian


@pytest.mark.parametrize("dtype,slope,inter", [(np.int16, 0.5, -1024.0), (np.uint8, 4.0, 0.0),
                                               (np.int32, 1e-3, 2.0), (np.float32, 2.0, 1.0)])
def test_header_scaling_is_applied(nifti, dtype, slope, inter):
    raw = np.arange(4 * 5 * 6).reshape(4, 5, 6).astype(dtype)
    path = nifti("scaled.nii.gz", raw, slope=slope, inter=inter, endian=">")
    assert medical.scan_info(path)["scaling"] == pytest.approx((slope, inter))      # stored as float32
    vol = medical.load_scan(path, normalize=None)[..., 0]
    assert vol.dtype == np.float32
    np.testing.assert_allclose(vol, raw.astype(np.float64) * slope + inter, rtol=1e-6, atol=1e-5)


def test_volume_is_read_as_float32_without_float64_copies(nifti):
    raw = np.arange(40 * 40 * 40, dtype=np.int32).reshape(40, 40, 40)
    path = nifti("big.nii", raw, slope=0.5, inter=1.0)
    tracemalloc.start()
    vol = medical.load_scan(path, normalize=None)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert vol.nbytes == 4 * raw.size
    assert peak < 2.6 * vol.nbytes           # raw int32 + float32 result; a float64 copy alone would be 2x


# -------------------------------------------------------------------- 4-D
def test_4d_series_needs_a_choice(nifti):
    rng = np.random.default_rng(2)
    series = rng.uniform(0, 5, size=(5, 6, 7, 3)).astype(np.float32)
    path = nifti("series.nii.gz", series)
    with pytest.raises(InputError, match=r"volume=0\.\.2.*channels=True"):
        medical.load_scan(path)
    one = medical.load_scan(path, volume=1, normalize=None)
    np.testing.assert_array_equal(one[..., 0], series[..., 1])
    last = medical.load_scan(path, volume=-1, normalize=None)
    np.testing.assert_array_equal(last[..., 0], series[..., 2])
    stacked = medical.load_scan(path, channels=True, normalize=None)
    assert stacked.shape == (5, 6, 7, 3)
    np.testing.assert_array_equal(stacked, series)
    per_channel = medical.load_scan(path, channels=True, normalize="minmax")
    np.testing.assert_allclose(per_channel.min(axis=(0, 1, 2)), 0.0, atol=1e-6)
    np.testing.assert_allclose(per_channel.max(axis=(0, 1, 2)), 1.0, atol=1e-6)
    assert medical.load_scan(path, channels=True, shape=(4, 4, 4)).shape == (4, 4, 4, 3)
    with pytest.raises(InputError, match="out of range"):
        medical.load_scan(path, volume=3)
    with pytest.raises(InputError, match="not both"):
        medical.load_scan(path, volume=0, channels=True)


def test_long_series_cannot_be_channels(nifti):
    path = nifti("fmri.nii", np.zeros((4, 4, 4, 10), np.int16))
    with pytest.raises(InputError, match=r"volume=0\.\.9") as err:
        medical.load_scan(path)
    assert "channels" not in str(err.value)
    with pytest.raises(InputError, match="at most 4"):
        medical.load_scan(path, channels=True)
    assert medical.load_scan(path, volume=9, normalize=None).shape == (4, 4, 4, 1)


def test_singleton_extra_axes_and_5d_vectors(nifti):
    vol3 = head_like((4, 5, 6))
    single = medical.load_scan(nifti("t1.nii", vol3[..., None]), normalize=None)
    np.testing.assert_array_equal(single[..., 0], vol3)
    vectors = np.stack([vol3, 2 * vol3, 3 * vol3], axis=-1)[:, :, :, None, :]     # NIfTI vector layout
    out = medical.load_scan(nifti("vec.nii.gz", vectors), channels=True, normalize=None)
    np.testing.assert_array_equal(out, vectors[:, :, :, 0, :])
    with pytest.raises(DataFormatError, match="more than one axis"):
        medical.load_scan(nifti("6d.nii", np.zeros((3, 3, 3, 2, 2), np.uint8)))


# -------------------------------------------------------------- bad input
def test_missing_file(tmp_path):
    with pytest.raises(DataFileNotFoundError, match="nope.nii.gz"):
        medical.load_scan(tmp_path / "nope.nii.gz")


def test_truncated_gz_fails_inside_load_scan(tmp_path):
    rng = np.random.default_rng(0)
    data = gzip.compress(nifti_bytes(rng.normal(size=(30, 30, 30)).astype(np.float32)))
    path = tmp_path / "cut.nii.gz"
    path.write_bytes(data[: len(data) * 2 // 3])
    nib.load(path)                                     # nibabel reads the header of it without complaint
    with pytest.raises(DataFormatError, match="cut.nii.gz.*truncated or corrupt"):
        medical.load_scan(path)


def test_corrupt_gz_stream(tmp_path):
    data = bytearray(gzip.compress(nifti_bytes(head_like((20, 20, 20)))))
    for i in range(len(data) // 2, len(data) // 2 + 40):
        data[i] ^= 0x5A
    path = tmp_path / "flipped.nii.gz"
    path.write_bytes(bytes(data))
    with pytest.raises(DataFormatError, match="flipped.nii.gz"):
        medical.load_scan(path)


def test_truncated_uncompressed_is_refused_before_reading(tmp_path):
    data = nifti_bytes(head_like((10, 10, 10)))
    path = tmp_path / "cut.nii"
    path.write_bytes(data[:-100])
    with pytest.raises(DataFormatError, match="cut.nii.*truncated.*4352 bytes.*4252"):
        medical.load_scan(path)


@pytest.mark.parametrize("name,content,what", [
    ("notes.nii", b"subject,age\n1,40\n" * 40, "not a NIfTI"),
    ("picture.nii.gz", gzip.compress(b"\x89PNG\r\n\x1a\n" + b"\0" * 600, mtime=0), "PNG"),
    ("empty.nii", b"", "empty"),
    ("short.nii", struct.pack("<i", 348) + b"\0" * 20, "cut short"),
], ids=["csv", "gzipped-png", "empty", "short"])  # the same ids in every pytest-xdist worker
def test_not_nifti(tmp_path, name, content, what):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DataFormatError, match=what) as err:
        medical.load_scan(path)
    assert name in str(err.value)


def test_compression_and_name_must_agree(tmp_path):
    data = nifti_bytes(head_like())
    (tmp_path / "zipped.nii").write_bytes(gzip.compress(data))
    (tmp_path / "plain.nii.gz").write_bytes(data)
    with pytest.raises(DataFormatError, match="zipped.nii.*gzip-compressed but its name"):
        medical.load_scan(tmp_path / "zipped.nii")
    with pytest.raises(DataFormatError, match="plain.nii.gz.*not gzip-compressed"):
        medical.load_scan(tmp_path / "plain.nii.gz")


@pytest.mark.parametrize("shape,match", [((8, 8), "2-D image"), ((8, 8, 1), "single slice"),
                                         ((1, 8, 8, 3), "single slice")])
def test_2d_images_are_refused(nifti, shape, match):
    path = nifti("flat.nii.gz", np.ones(shape, np.float32))
    with pytest.raises(DataFormatError, match=match) as err:
        medical.load_scan(path)
    assert "flat.nii.gz" in str(err.value)


def test_absurd_header_dimensions_refused_before_allocating(tmp_path):
    header = nib.Nifti1Header()
    header.set_data_shape((30000, 30000, 30000))
    header.set_data_dtype(np.int16)
    path = tmp_path / "huge.nii.gz"
    import io
    buf = io.BytesIO()
    header.write_to(buf)
    path.write_bytes(gzip.compress(buf.getvalue() + b"\0" * 1000))
    tracemalloc.start()
    with pytest.raises(DataFormatError, match=r"huge.nii.gz.*\(30000, 30000, 30000\).*max_bytes"):
        medical.load_scan(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 5e6
    small = tmp_path / "small.nii"
    small.write_bytes(nifti_bytes(head_like((20, 20, 20))))
    with pytest.raises(DataFormatError, match="max_bytes=1000"):
        medical.load_scan(small, max_bytes=1000)


def test_degenerate_affine(nifti):
    path = nifti("zero.nii", head_like(), affine=np.zeros((4, 4)), qform=False)
    with pytest.raises(DataFormatError, match="zero.nii.*affine"):
        medical.load_scan(path)


def test_nan_and_inf_voxels_are_replaced_and_counted(nifti):
    raw = head_like((6, 6, 6))
    raw[0, 0, :3] = np.nan
    raw[1, 1, 1] = np.inf
    raw[2, 2, 2] = -np.inf
    path = nifti("nan.nii.gz", raw)
    with pytest.warns(medical.ScanQualityWarning, match=r"nan.nii.gz.*replaced 5 non-finite"):
        vol, info = medical.load_scan(path, normalize=None, return_info=True)
    assert info["n_nonfinite"] == 5 and np.isfinite(vol).all()
    finite = raw[np.isfinite(raw)]
    assert vol[0, 0, 0, 0] == finite.min() and vol[2, 2, 2, 0] == finite.min()
    assert vol[1, 1, 1, 0] == finite.max()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", medical.ScanQualityWarning)
        assert np.isfinite(medical.load_scan(path, shape=8)).all()
    with pytest.raises(DataFormatError, match="every voxel"):
        medical.load_scan(nifti("allnan.nii", np.full((3, 3, 3), np.nan, np.float32)))


@pytest.mark.parametrize("kwargs,match", [({"spacing": 0}, "spacing"), ({"spacing": (1, 2)}, "spacing"),
                                          ({"shape": (8, 8)}, "shape"), ({"shape": 0}, "shape"),
                                          ({"volume": 1.5}, "volume"), ({"max_bytes": -1}, "max_bytes")])
def test_bad_arguments(nifti, kwargs, match):
    path = nifti("ok.nii", head_like())
    with pytest.raises(InputError, match=match):
        medical.load_scan(path, **kwargs)


def test_folder_and_non_path(tmp_path):
    (tmp_path / "notes.txt").write_text("not a scan")
    with pytest.raises(DataFormatError, match="folder holding no DICOM files"):   # a folder is read as a DICOM series
        medical.load_scan(tmp_path)
    with pytest.raises(InputError, match="path"):
        medical.load_scan(3.5)

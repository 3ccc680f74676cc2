"""medical.make_synthetic, medical.load_scans and medical.ScanCache."""
import os
import time

import nibabel as nib
import numpy as np
import pytest

import medical
from core.exceptions import FileWriteError, InputError
from medical.synthetic import synthesize_scan


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    out = tmp_path_factory.mktemp("synthetic")
    return medical.make_synthetic(out, n=12, shape=(24, 24, 24), seed=3)


def test_files_manifest_and_classes(synthetic):
    paths, labels, subjects = medical.read_manifest(synthetic, return_subjects=True)
    assert len(paths) == 12 and sorted(set(labels)) == ["healthy", "lesion"]
    assert (labels == "lesion").sum() == 6
    assert len(set(subjects)) == 12
    assert all(p.endswith(".nii.gz") for p in paths)
    infos = [medical.scan_info(p) for p in paths]
    assert len({i["orientation"] for i in infos}) >= 3          # several storage orientations
    assert len({i["shape"] for i in infos}) == 12               # different grids / fields of view
    assert any(max(i["spacing"]) / min(i["spacing"]) > 1.25 for i in infos)   # anisotropic voxels
    assert not any(name.endswith(".tmp") for name in os.listdir(os.path.dirname(synthetic)))


def test_same_seed_same_bytes(tmp_path):
    a = medical.make_synthetic(tmp_path / "a", n=4, shape=16, seed=7)
    b = medical.make_synthetic(tmp_path / "b", n=4, shape=16, seed=7)
    c = medical.make_synthetic(tmp_path / "c", n=4, shape=16, seed=8)
    for name in ("sub-000.nii.gz", "sub-003.nii.gz", "manifest.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert (tmp_path / "a" / "sub-000.nii.gz").read_bytes() != (tmp_path / "c" / "sub-000.nii.gz").read_bytes()
    assert medical.read_manifest(a)[1].tolist() == medical.read_manifest(b)[1].tolist()
    assert medical.read_manifest(c)[0]


@pytest.mark.parametrize("seed", [0, 1, 2, 5])
def test_lesion_sits_where_the_world_coordinates_say(tmp_path, seed):
    """Whatever the storage orientation and tilt, the loaded RAS volume shows the
    lesion at its world position: reorientation and affines agree."""
    img, info = synthesize_scan((seed, 1), 1, shape=(32, 32, 32))
    path = tmp_path / "scan.nii.gz"
    nib.save(img, path)
    vol, linfo = medical.load_scan(path, spacing=3.0, return_info=True)
    centre, radius = info["lesion"]
    ijk = np.linalg.solve(linfo["affine"], np.r_[centre, 1.0])[:3]
    i, j, k = np.round(ijk).astype(int)
    assert medical.scan_info(path)["orientation"] == info["orientation"]
    assert medical.preprocessing.axis_codes(linfo["affine"]) == "RAS"
    brain = vol[..., 0] > 0.5                   # white matter and brighter (z-scored)
    assert vol[i, j, k, 0] > np.percentile(vol[..., 0][brain], 90)
    mirrored = medical.load_scan(path, spacing=3.0)[::-1]     # the same spot in the other hemisphere
    assert vol[i, j, k, 0] > mirrored[i, j, k, 0] + 0.3


def test_make_synthetic_bad_arguments(tmp_path):
    with pytest.raises(InputError, match="n must"):
        medical.make_synthetic(tmp_path, n=2)
    with pytest.raises(InputError, match="shape"):
        medical.make_synthetic(tmp_path, shape=(8, 8, 8))
    with pytest.raises(InputError, match="seed"):
        medical.make_synthetic(tmp_path, seed=1.5)
    (tmp_path / "0.png").write_text("x")
    for where in (tmp_path / "0.png", tmp_path / "0.png" / "scans"):  # a file in the way, or as a parent
        with pytest.raises(FileWriteError, match=r"make_synthetic: out_dir: could not create the folder .*0\.png"):
            medical.make_synthetic(where, n=4, shape=16)


def test_load_scans_stacks_one_at_a_time(synthetic):
    paths, _ = medical.read_manifest(synthetic)
    X = medical.load_scans(paths[:5], shape=(16, 16, 16))
    assert X.shape == (5, 16, 16, 16, 1) and X.dtype == np.float32
    np.testing.assert_array_equal(X[3], medical.load_scan(paths[3], shape=(16, 16, 16)))
    with pytest.raises(InputError, match="pass shape="):
        medical.load_scans(paths[:3])
    with pytest.raises(InputError, match="list of paths"):
        medical.load_scans(paths[0])


def test_cache_hits_misses_and_invalidation(synthetic, tmp_path):
    paths, _ = medical.read_manifest(synthetic)
    cache = medical.ScanCache(tmp_path / "cache")
    first = cache.load(paths[0], shape=(16, 16, 16))
    again = cache.load(paths[0], shape=(16, 16, 16))
    assert (cache.hits, cache.misses) == (1, 1)
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(first, medical.load_scan(paths[0], shape=(16, 16, 16)))
    other = cache.load(paths[0], shape=(16, 16, 16), normalize="minmax")     # other settings: a miss
    assert cache.misses == 2 and not np.array_equal(other, first)
    # a damaged entry is recomputed
    entry = cache.entry_path(paths[0], shape=(16, 16, 16))
    with open(entry, "wb") as handle:
        handle.write(b"garbage")
    np.testing.assert_array_equal(cache.load(paths[0], shape=(16, 16, 16)), first)
    assert cache.misses == 3
    # a rewritten scan (new mtime) is not served from the cache
    copy = tmp_path / "copy.nii.gz"
    copy.write_bytes(open(paths[0], "rb").read())
    cache.load(copy, shape=(16, 16, 16))
    copy.write_bytes(open(paths[1], "rb").read())
    os.utime(copy, ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))
    np.testing.assert_array_equal(cache.load(copy, shape=(16, 16, 16)),
                                  medical.load_scan(paths[1], shape=(16, 16, 16)))
    X = medical.load_scans(paths[:3], shape=(16, 16, 16), cache_dir=tmp_path / "cache")
    np.testing.assert_array_equal(X[0], first)


def test_cache_rejects_a_file_as_folder(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(InputError, match="not a folder"):
        medical.ScanCache(tmp_path / "f")


def test_preprocessing_functions_on_arrays():
    vol = np.arange(4 * 6 * 8, dtype=np.float32).reshape(4, 6, 8)
    assert medical.resize_volume(vol, (8, 12, 16)).shape == (8, 12, 16)
    assert medical.resize_volume(vol[..., None].repeat(2, -1), 5).shape == (5, 5, 5, 2)
    assert medical.resample_to_spacing(vol, (1, 1, 1), (2, 2, 2)).shape == (2, 3, 4)
    assert medical.crop_or_pad(vol, (2, 8, 8), value=-1).shape == (2, 8, 8)
    z = medical.normalize_intensity(vol, "zscore")
    assert z.dtype == np.float32 and vol[0, 0, 0] == 0          # the input is not modified
    with pytest.raises(InputError):
        medical.resize_volume(np.zeros((3, 3)), 4)

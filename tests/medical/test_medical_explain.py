"""The scan classifier's maps must point at the lesion, on the network's grid and, written as
NIfTI by save_explanation, in the original scan's own space."""
import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

import medical
from medical.explanation import map_to_scan_space

from .conftest import write_nifti

GRID = 24          # the network's grid (voxels per axis), 2 mm voxels over a 48 mm field of view
VOXEL = 2.0
RADIUS = 2.0       # lesion radius in grid voxels (4 mm)


CENTRAL = (6.0, GRID - 7.0)   # the middle half of the grid, where the brain phantom puts its lesions
                              # (0.15-0.45 of the head's semi-axes from its centre, medical.synthetic)


def lesion_volumes(n, seed, central=False):
    """Smooth noise volumes (GRID^3); half hold a bright ball at a random place (anywhere at least
    RADIUS + 1 voxels from the border, or in the CENTRAL part). Returns X, y, centres."""
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.arange(n) % 2)
    X = ndimage.gaussian_filter(rng.normal(0, 1, (n, GRID, GRID, GRID)), (0, 1, 1, 1)).astype(np.float32) * 2
    centres = rng.uniform(*(CENTRAL if central else (RADIUS + 1, GRID - RADIUS - 2)), (n, 3))
    grid = np.indices((GRID,) * 3, dtype=np.float32)
    for i in np.flatnonzero(y):
        d = np.sqrt(((grid - centres[i][:, None, None, None]) ** 2).sum(0))
        X[i] += 2.5 / (1 + np.exp((d - RADIUS) / 0.4))
    return X, y, centres


@pytest.fixture(scope="module")
def trained():
    X, y, _ = lesion_volumes(64, seed=0)
    # z-scored: on these smooth-noise volumes plain Grad-CAM finds central lesions under "zscore" (the
    # rates below) and 4 in 10 under the default "minmax"; the default guided map finds them under both
    return medical.ScanClassifier(shape=(GRID,) * 3, epochs=12, seed=0, normalize="zscore").fit(
        X, np.where(y, "lesion", "healthy"))


@pytest.mark.slow
def test_map_maximum_falls_in_the_dilated_lesion(trained):
    X, y, centres = lesion_volumes(60, seed=1)
    correct = (trained.predict(X) == np.where(y, "lesion", "healthy")) & (y == 1)
    assert correct.sum() >= 0.9 * y.sum()
    grid = np.indices((GRID,) * 3)
    ball = ndimage.generate_binary_structure(3, 1)
    central = np.all((centres[correct] >= CENTRAL[0]) & (centres[correct] <= CENTRAL[1]), axis=1)
    assert central.sum() >= 8
    rates = {}
    for method in ("guided_grad_cam", "grad_cam"):
        maps = trained.explain(X[correct], method=method)
        assert maps.shape == (correct.sum(), GRID, GRID, GRID)
        hits, dist = [], []
        for m, c in zip(maps, centres[correct]):
            d = np.sqrt(((grid - c[:, None, None, None]) ** 2).sum(0))
            dilated = ndimage.binary_dilation(d <= RADIUS, ball, iterations=2)
            peak = np.unravel_index(int(m.argmax()), m.shape)
            hits.append(bool(dilated[peak]))
            dist.append(d[peak])
        hits = np.array(hits)
        rates[method] = (float(hits.mean()), float(hits[central].mean()))
        print(f"3-D {method}: maximum inside the lesion dilated by 2 voxels for {rates[method][0]:.3f} of "
              f"{len(hits)} correct lesion predictions ({rates[method][1]:.3f} of the {central.sum()} in the "
              f"central part); distance to the centre median {np.median(dist):.2f}, max {np.max(dist):.2f} voxels")
    assert np.array_equal(trained.explain(X[correct][:2]), trained.explain(X[correct][:2], method="guided_grad_cam"))
    assert min(rates["guided_grad_cam"]) >= 0.9          # the default, lesions anywhere
    assert rates["grad_cam"][1] >= 0.9                   # plain Grad-CAM, lesions in the central part
    assert rates["grad_cam"][0] >= 0.8    # near the border the last convolution's 4-voxel cells see the zero padding


def _scan_geometry(rng):
    """An oblique-free but reoriented, anisotropic storage of the 48 mm field of view: array axes
    permuted and flipped relative to RAS, voxels of 1.5, 2 and 3 mm, grid (32, 24, 16) in some order."""
    perm = rng.permutation(3)
    signs = rng.choice([-1.0, 1.0], 3)
    voxel = np.array([1.5, 2.0, 3.0])[rng.permutation(3)]
    shape = np.round(48.0 / voxel).astype(int)
    linear = np.zeros((3, 3))
    for j in range(3):
        linear[perm[j], j] = signs[j] * voxel[j]
    affine = np.eye(4)
    affine[:3, :3] = linear
    affine[:3, 3] = -linear @ ((shape - 1) / 2.0) + rng.uniform(-20, 20, 3)   # field of view off the origin
    return affine, tuple(int(s) for s in shape)


def _write_scan(path, volume, centre_vox, rng):
    """Write a GRID^3 RAS volume (2 mm voxels, centred on the affine's origin) sampled at the voxel
    centres of a reoriented, anisotropic scan; returns (scan affine, lesion centre in world mm)."""
    affine, shape = _scan_geometry(rng)
    model_affine = np.diag([VOXEL] * 3 + [1.0])
    model_affine[:3, 3] = affine[:3, :3] @ ((np.array(shape) - 1) / 2.0) + affine[:3, 3] - VOXEL * (GRID - 1) / 2.0
    idx = np.indices(shape).reshape(3, -1).astype(np.float64)
    world = affine[:3, :3] @ idx + affine[:3, 3:4]
    src = np.linalg.inv(model_affine) @ np.vstack([world, np.ones((1, world.shape[1]))])
    data = ndimage.map_coordinates(volume, src[:3], order=1, mode="nearest").reshape(shape)
    write_nifti(path, (data * 100 + 1000).astype(np.float32), affine=affine)
    return affine, (model_affine @ np.append(centre_vox, 1.0))[:3]


@pytest.mark.slow
def test_save_explanation_writes_the_map_in_the_scans_own_space(trained, tmp_path):
    X, y, centres = lesion_volumes(16, seed=2, central=True)
    rng = np.random.default_rng(3)
    errors = []
    for i in np.flatnonzero(y):
        scan = str(tmp_path / f"scan{i}.nii.gz")
        affine, centre_world = _write_scan(scan, X[i], centres[i], rng)
        assert trained.predict([scan])[0] == "lesion"
        out = str(tmp_path / f"map{i}.nii.gz")
        written = trained.save_explanation(scan, out)
        img = nib.load(out)
        original = nib.load(scan)
        np.testing.assert_allclose(img.affine, original.affine, atol=1e-5)
        assert img.shape == original.shape
        data = np.asarray(img.dataobj)
        np.testing.assert_allclose(data, written)
        peak = np.unravel_index(int(data.argmax()), data.shape)
        peak_world = (affine @ np.append(peak, 1.0))[:3]
        in_voxels = np.linalg.inv(affine[:3, :3]) @ (peak_world - centre_world)   # per axis of the scan
        errors.append(np.abs(in_voxels).max())
    errors = np.array(errors)
    print(f"save_explanation: peak to lesion centre, largest per-axis error in scan voxels: "
          f"{np.round(errors, 2).tolist()}")
    assert len(errors) == 8
    assert (errors <= 1.0).mean() >= 0.85 and errors.max() <= 1.5


def test_map_to_scan_space_inverts_load_scan(tmp_path):
    """A map equal to the preprocessed volume, carried back, matches the stored scan's own voxels."""
    rng = np.random.default_rng(7)
    affine, shape = _scan_geometry(rng)
    path = str(tmp_path / "scan.nii")
    raw = ndimage.gaussian_filter(rng.normal(size=shape), 2.5).astype(np.float32) + 5
    write_nifti(path, raw, affine=affine)
    for mode in ("resample", "crop_or_pad"):
        vol, info = medical.load_scan(path, shape=(20, 22, 18), normalize=None, shape_mode=mode, return_info=True)
        back = map_to_scan_space(vol[..., 0], info["affine"], affine, shape, outside_zero=mode == "crop_or_pad")
        seen = back != 0
        corr = np.corrcoef(back[seen], raw[seen])[0, 1]
        assert corr > 0.97, (mode, corr)


def test_save_explanation_refuses_bad_paths(tmp_path):
    X, y, _ = lesion_volumes(4, seed=4)
    trained = medical.ScanClassifier(shape=(12, 12, 12), filters=(2, 2), epochs=1).fit(X, y)
    scan = str(tmp_path / "s.nii")
    write_nifti(scan, X[0], affine=np.diag([2.0, 2.0, 2.0, 1.0]))
    with pytest.raises(ValueError, match="out_path must end in .nii or .nii.gz"):
        trained.save_explanation(scan, str(tmp_path / "map.png"))
    with pytest.raises(OSError, match="not found"):
        trained.save_explanation(str(tmp_path / "missing.nii"), str(tmp_path / "m.nii"))
    with pytest.raises(ValueError, match="folder"):
        trained.save_explanation(str(tmp_path), str(tmp_path / "m.nii"))
    with pytest.raises(ValueError, match="not a convolution"):
        trained.save_explanation(scan, str(tmp_path / "m.nii"), layer=1)


@pytest.mark.slow
def test_save_explanation_of_a_dicom_series(trained, tmp_path):
    """A DICOM series folder gets its map as NIfTI with the series' own RAS affine, peak at the lesion."""
    from .dicom_writer import write_series

    X, y, centres = lesion_volumes(16, seed=2, central=True)
    i = int(np.flatnonzero(y)[0])
    nifti = str(tmp_path / "scan.nii")
    affine, centre_world = _write_scan(nifti, X[i], centres[i], np.random.default_rng(5))
    raw = np.asarray(nib.load(nifti).dataobj)
    folder = str(tmp_path / "series")
    write_series(folder, np.round(raw).astype(np.int16), affine)
    info = medical.scan_info(folder)
    np.testing.assert_allclose(info["affine"], affine, atol=1e-4)
    out = str(tmp_path / "map.nii.gz")
    written = trained.save_explanation(folder, out)
    img = nib.load(out)
    np.testing.assert_allclose(img.affine, affine, atol=1e-4)
    assert img.shape == tuple(info["shape"][:3]) == written.shape
    peak = np.unravel_index(int(written.argmax()), written.shape)
    offset = np.linalg.inv(affine[:3, :3]) @ ((affine @ np.append(peak, 1.0))[:3] - centre_world)
    assert np.abs(offset).max() <= 1.5


def test_explanations_follow_the_decision_threshold(trained, tmp_path):
    # ``explain`` (no label), ``plot_explanation``'s title and the report pictures name the class
    # ``predict`` gives, which a threshold (validation_split's Youden point) can make other than the argmax
    from core.plots import classifier_figures

    X, y, _ = lesion_volumes(8, seed=3)
    p = trained.predict_proba(X)[:, 1]
    assert (p >= 0.5).any()
    saved = trained.threshold_
    try:
        trained.threshold_ = float(np.nextafter(np.float32(p.max()), np.float32(2)))  # above every scan
        pred = trained.predict(X)
        assert (pred == "healthy").all()
        np.testing.assert_array_equal(trained.explain(X), trained.explain(X, label=pred))
        figures = classifier_figures(trained, X, np.where(y, "lesion", "healthy"), str(tmp_path))
        pictures = [(name, caption) for name, caption in figures if name.startswith("explanations/")]
        assert pictures and all("predicted healthy" in caption for _, caption in pictures)
        assert not any(name.startswith("explanations/lesion-correct") for name, _ in pictures)
        assert any(name.startswith("explanations/lesion-wrong") for name, _ in pictures)
    finally:
        trained.threshold_ = saved

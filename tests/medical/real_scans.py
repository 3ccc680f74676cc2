"""Volumes built from the real scans that ship with nibabel (and dipy, when installed), for the
decision tests and benchmarks: each anatomy is one subject, seen with gain and noise variants, half of
its volumes with an added bright blob (the "lesion" class)."""
import os

import nibabel as nib
import numpy as np
from nibabel.testing import data_path as NIB_DATA

import medical

NIBABEL_SCANS = (("anatomical.nii", None), ("example4d.nii.gz", 0), ("functional.nii", 0),
                 ("example_nifti2.nii.gz", 0), ("reoriented_anat_moved.nii", None), ("small.mnc", None),
                 ("tiny.mnc", None))


def _dipy_scans(limit=4):
    """3-D/4-D NIfTI files shipping inside the dipy package, if it is installed (read from its folder:
    dipy's fetchers would download)."""
    import importlib.util

    spec = importlib.util.find_spec("dipy")
    if spec is None or not spec.submodule_search_locations:
        return []
    folder = os.path.join(list(spec.submodule_search_locations)[0], "data", "files")
    if not os.path.isdir(folder):
        return []
    out = []
    for name in sorted(os.listdir(folder)):
        if name.endswith((".nii", ".nii.gz")) and len(out) < limit:
            try:
                shape = nib.load(os.path.join(folder, name)).shape
            except Exception:
                continue
            if len(shape) >= 3 and min(shape[:3]) >= 8:
                out.append((os.path.join(folder, name), 0))
    return out


def anatomies(shape=(16, 16, 16)):
    """Real volumes, each brought to ``shape`` in RAS: a list of (name, float32 array)."""
    out = []
    for name, vol in list(NIBABEL_SCANS) + _dipy_scans():
        img = nib.load(name if os.path.isabs(name) else os.path.join(NIB_DATA, name))
        data = np.asarray(img.dataobj, dtype=np.float32)
        if data.ndim == 4:
            data = data[..., vol]
        data = data.reshape(data.shape[:3])
        data, _ = medical.reorient_to_ras(data, img.affine)
        data = medical.resize_volume(data, shape)
        data -= data.min()
        out.append((os.path.basename(name), data / data.max()))
    return out


def lesion_set(shape=(16, 16, 16), seed=0, variants=4, amplitude=1.0):
    """``(X (N, D, H, W), y (N,), subjects (N,))``: ``variants`` volumes per anatomy (gain, noise), the
    first half of them with a bright blob at a random place inside the anatomy, peaking at ``amplitude``
    times the anatomy's brightest voxel."""
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1)
    X, y, subjects = [], [], []
    for name, base in anatomies(shape):
        inside = np.argwhere(base > np.percentile(base, 50))
        for v in range(variants):
            gain = rng.uniform(0.6, 1.6)
            vol = base * gain + rng.normal(0, 0.03 * gain, size=shape)
            lesion = v < variants // 2
            if lesion:
                centre = inside[rng.integers(len(inside))]
                r2 = ((grid - centre) ** 2).sum(-1)
                vol = vol + gain * amplitude * np.exp(-r2 / (2 * 1.5 ** 2))
            X.append(vol.astype(np.float32))
            y.append("lesion" if lesion else "healthy")
            subjects.append(name)
    return np.stack(X), np.array(y), np.array(subjects)

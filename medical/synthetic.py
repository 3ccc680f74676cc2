"""Synthetic brain MRI scans written as real NIfTI files, with a manifest.

Each scan is rendered by evaluating an analytic head phantom at the world
coordinates (mm) of every voxel of its own grid, the way a scanner samples
the same anatomy however the subject lies and however the sequence is set
up. So the files differ as real acquisitions do:

- orientation: arrays stored RAS, LAS, LPS, LPI, PIR (sagittal), ASL ...,
  with the affine saying so, plus a small oblique tilt (a few degrees);
- voxel size: anisotropic, one axis with thick slices (1.3-2x);
- field of view and grid size: 10-35 % margin around the head, grid sizes
  varying around ``shape``, head not centred exactly;
- storage: float32, or int16/uint16 with ``scl_slope``/``scl_inter``; some
  files big-endian, some NIfTI-2;
- intensity: arbitrary scanner units (a random gain over 2 decades), a smooth
  multiplicative bias field and Rician noise.

Anatomy (T1-like contrast): scalp, dark skull, CSF, a folded grey-matter
cortex, white matter, deep grey nuclei and two lateral ventricles, with head
and ventricle sizes varying between subjects. The classes:

``"healthy"``
    no lesion;
``"lesion"``
    one round hyperintense mass (9-14 mm radius, 1.5-1.9x the white-matter
    signal) centred at a random place in the white matter, away from the
    ventricles and deep grey nuclei; the largest reach into the cortex. At
    the default 32^3 of the classifier (6-7 mm voxels) it spans 3-4 voxels.
"""
import gzip
import os

import nibabel as nib
import numpy as np

from core.exceptions import InputError
from core.io import atomic_write, make_folder

from .preprocessing import check_shape

CLASSES = ("healthy", "lesion")
"""Class names written by :func:`make_synthetic`, in label order."""

ORIENTATIONS = ("RAS", "LAS", "LPS", "RAS", "LAS", "LPS", "LPI", "RPI", "PIR", "ASL", "LIP", "SAR")
"""Storage orientations drawn from (RAS/LAS/LPS more often, as in practice)."""


def _direction(codes):
    """3x3 matrix whose column j is the world unit vector array axis j points to."""
    axis = {"L": (0, -1), "R": (0, 1), "P": (1, -1), "A": (1, 1), "I": (2, -1), "S": (2, 1)}
    d = np.zeros((3, 3))
    for j, c in enumerate(codes):
        w, s = axis[c]
        d[w, j] = s
    return d


def _rotation(rng, max_degrees):
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    angle = np.deg2rad(rng.uniform(-max_degrees, max_degrees))
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * (k @ k)


def _soft_inside(dist, tau):
    """Partial-volume weight of being inside a surface at signed distance ``dist`` (mm, < 0 inside)."""
    return 1.0 / (1.0 + np.exp(np.clip(dist / tau, -30, 30)))


def _radius(world, centre, axes):
    """Normalized ellipsoidal radius of points ``world`` (a tuple of 3 coordinate arrays)."""
    return np.sqrt(sum(((w - c) / a) ** 2 for w, c, a in zip(world, centre, axes)))


def _ellipsoid_distance(world, centre, axes):
    """Approximate signed distance (mm) to an ellipsoid: (normalized radius - 1) * smallest semi-axis."""
    return (_radius(world, centre, axes) - 1.0) * float(min(axes))


def render_phantom(world, anatomy, tau):
    """Evaluate the head phantom at world points.

    world: 3 arrays (x, y, z) of the same shape, mm, relative to the head centre; anatomy: dict from
    :func:`_draw_anatomy`; tau: edge softness in mm (about a third of a voxel).
    Returns float32 signal of that shape (white matter about 1).
    """
    a = anatomy
    head = np.asarray(a["head_axes"])
    r = _radius(world, (0.0, 0.0, 0.0), head)
    scale = float(head.min())

    def shell(level):
        return _soft_inside((r - level) * scale, tau)

    # cortical folding: a smooth wobble of the grey/white boundary
    fx, fy, fz = a["fold_freq"]
    px, py, pz = a["fold_phase"]
    wobble = 0.035 * np.sin(fx * world[0] + px) * np.sin(fy * world[1] + py) * np.sin(fz * world[2] + pz)
    img = np.zeros(r.shape, dtype=np.float32)
    tissue = a["tissue"]
    layers = [
        (shell(1.0), tissue["scalp"]),
        (shell(0.93), tissue["skull"]),
        (shell(0.86), tissue["csf"]),
        (shell(0.82), tissue["gm"]),
        (_soft_inside((r + wobble - 0.70) * scale, tau), tissue["wm"]),
    ]
    for centre, axes in a["deep_gm"]:
        layers.append((_soft_inside(_ellipsoid_distance(world, centre, axes), tau), tissue["deep_gm"]))
    for centre, axes in a["ventricles"]:
        layers.append((_soft_inside(_ellipsoid_distance(world, centre, axes), tau), tissue["csf"]))
    if a["lesion"] is not None:
        centre, radius, gain = a["lesion"]
        layers.append((_soft_inside((_radius(world, centre, (1.0, 1.0, 1.0)) - radius), tau), tissue["wm"] * gain))
    for w, value in layers:
        img += w * (value - img)
    return img.astype(np.float32)


def _draw_anatomy(rng, lesion):
    head = np.array([68.0, 86.0, 72.0]) * rng.uniform(0.9, 1.1, size=3)
    jitter = rng.uniform(0.95, 1.05, size=5)
    tissue = {"scalp": 0.75 * jitter[0], "skull": 0.08 * jitter[1], "csf": 0.22 * jitter[2],
              "gm": 0.62 * jitter[3], "deep_gm": 0.72 * jitter[4], "wm": 1.0}
    v = rng.uniform(0.8, 1.25)
    ventricles = [(np.array([s * 7.0, -4.0, 10.0]), np.array([4.5, 17.0, 8.0]) * v) for s in (-1, 1)]
    deep_gm = [(np.array([s * 20.0, 0.0, 0.0]), np.array([7.0, 11.0, 9.0])) for s in (-1, 1)]
    found = None
    if lesion:
        while found is None:
            u = rng.normal(size=3)
            u *= rng.uniform(0.15, 0.45) / np.linalg.norm(u)
            centre = u * head
            radius = rng.uniform(9.0, 14.0)
            clear = all(np.sqrt((((centre - c) / (ax + radius)) ** 2).sum()) > 1.1 for c, ax in ventricles + deep_gm)
            if clear:
                found = (centre, radius, rng.uniform(1.5, 1.9))
    return {"head_axes": head, "tissue": tissue, "ventricles": ventricles, "deep_gm": deep_gm, "lesion": found,
            "fold_freq": rng.uniform(0.25, 0.4, size=3), "fold_phase": rng.uniform(0, 2 * np.pi, size=3)}


def _draw_geometry(rng, shape, head_axes):
    codes = ORIENTATIONS[rng.integers(len(ORIENTATIONS))]
    direction = _direction(codes)
    world_axis = np.abs(direction).argmax(axis=0)       # world axis of each array axis
    extent = 2 * head_axes[world_axis] * rng.uniform(1.1, 1.35, size=3)   # field of view per array axis, mm
    n = np.array([max(8, int(round(s * rng.uniform(0.85, 1.15)))) for s in shape])
    thick = rng.integers(3)
    factor = rng.uniform(1.3, 2.0)
    n[thick] = max(8, int(round(n[thick] / factor)))
    voxel = extent / n
    linear = _rotation(rng, 8.0) @ direction @ np.diag(voxel)
    centre = rng.uniform(-6, 6, size=3)                  # head centre offset from the grid centre (mm)
    affine = np.eye(4)
    affine[:3, :3] = linear
    affine[:3, 3] = -centre - linear @ ((n - 1) / 2.0)   # world origin = head centre
    return codes, tuple(int(v) for v in n), affine


def _bias_field(world, rng):
    c = rng.normal(scale=0.12, size=3) / 80.0
    q = rng.normal(scale=0.08, size=3) / 80.0 ** 2
    return np.exp(sum(np.float32(ci) * w + np.float32(qi) * w * w for ci, qi, w in zip(c, q, world)))


def synthesize_scan(seed, label, shape=(40, 40, 40), noise=0.03):
    """One synthetic scan in memory: ``(image, info)``.

    seed: int or sequence of ints for ``numpy.random.default_rng``; label: 0
    (healthy) or 1 (lesion); shape: approximate grid size. ``image`` is a
    ``nibabel`` NIfTI-1 or NIfTI-2 image (storage type and byte order drawn
    at random), ``info`` a dict with ``orientation``, ``spacing``, ``shape``,
    ``dtype``, ``lesion`` (centre mm in world RAS, radius mm; or None).
    """
    rng = np.random.default_rng(seed)
    anatomy = _draw_anatomy(rng, lesion=bool(label))
    codes, n, affine = _draw_geometry(rng, check_shape(shape), anatomy["head_axes"])
    idx = np.meshgrid(*[np.arange(k, dtype=np.float32) for k in n], indexing="ij")
    world = tuple(sum(np.float32(affine[r, c]) * idx[c] for c in range(3)) + np.float32(affine[r, 3]) for r in range(3))
    spacing = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    signal = render_phantom(world, anatomy, tau=0.35 * float(spacing.mean()))
    signal *= _bias_field(world, rng)
    sigma = noise
    real = signal + rng.normal(scale=sigma, size=n).astype(np.float32)
    imag = rng.normal(scale=sigma, size=n).astype(np.float32)
    magnitude = np.sqrt(real * real + imag * imag)            # Rician noise, as in magnitude MR images
    gain = float(np.exp(rng.uniform(np.log(40.0), np.log(4000.0))))
    data = (magnitude * gain).astype(np.float32)

    storage = ("float32", "int16", "uint16")[rng.integers(3)]
    big_endian = rng.random() < 0.25
    nifti2 = rng.random() < 0.2
    header_cls = nib.Nifti2Header if nifti2 else nib.Nifti1Header
    image_cls = nib.Nifti2Image if nifti2 else nib.Nifti1Image
    header = header_cls(endianness=">" if big_endian else "<")
    img = image_cls(data, affine, header=header)
    img.set_data_dtype(np.dtype(storage))                    # integer storage -> nibabel writes scl_slope/inter
    img.header.set_xyzt_units("mm", "sec")
    img.header.set_qform(affine, code=1)
    img.header.set_sform(affine, code=1)
    info = {"orientation": codes, "spacing": tuple(float(s) for s in spacing), "shape": n, "dtype": storage,
            "big_endian": big_endian, "nifti_version": 2 if nifti2 else 1,
            "lesion": None if anatomy["lesion"] is None else
            (anatomy["lesion"][0].tolist(), float(anatomy["lesion"][1]))}
    return img, info


def make_synthetic(out_dir, n=60, shape=(40, 40, 40), seed=0, noise=0.03):
    """Write ``n`` synthetic brain scans as ``.nii.gz`` files and a ``manifest.csv``.

    Half the scans are ``"healthy"``, half ``"lesion"`` (one more healthy
    when ``n`` is odd), in a seeded random order; see the module docstring
    for what varies between scans. Same seed, same files, byte for byte.
    Each file is written atomically and the manifest last, so a folder with a
    manifest is complete. 60 scans of about 40^3 take about a second.

    Parameters
    ----------
    out_dir : str or os.PathLike
        Created if needed; files there with the same names are replaced.
    n : int, >= 4
    shape : int or (3,) ints
        Approximate grid size; each scan's grid varies around it and has one
        axis with thicker, fewer slices.
    seed : int
    noise : float
        Standard deviation of the Rician noise relative to white matter.

    Returns
    -------
    str
        Path of ``manifest.csv`` (columns ``path,label,subject``; paths relative to it).
    """
    try:
        out_dir = os.fspath(out_dir)
    except TypeError:
        raise InputError(f"out_dir must be a path, got {type(out_dir).__name__}") from None
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 4:
        raise InputError(f"n must be an int >= 4 (two scans per class at least), got {n!r}")
    shape = check_shape(shape)
    if min(shape) < 16:
        raise InputError(f"shape must be at least 16 voxels per axis for the anatomy to be visible, got {shape}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise InputError(f"seed must be an int, got {seed!r}")
    if not (isinstance(noise, (int, float)) and 0 <= noise < 1):
        raise InputError(f"noise must be a number in [0, 1), got {noise!r}")
    make_folder(out_dir, "make_synthetic: out_dir")
    labels = np.array([i % 2 for i in range(n)])
    labels = labels[np.random.default_rng(seed).permutation(n)]
    rows = ["path,label,subject"]
    for i in range(n):
        img, _ = synthesize_scan((seed, i), labels[i], shape=shape, noise=noise)
        name = f"sub-{i:03d}.nii.gz"
        with atomic_write(os.path.join(out_dir, name), "wb") as handle:
            with gzip.GzipFile(fileobj=handle, mode="wb", compresslevel=6, mtime=0, filename="") as gz:
                gz.write(img.to_bytes())
        rows.append(f"{name},{CLASSES[labels[i]]},sub-{i:03d}")
    manifest = os.path.join(out_dir, "manifest.csv")
    with atomic_write(manifest, "w") as handle:
        handle.write("\n".join(rows) + "\n")
    return manifest

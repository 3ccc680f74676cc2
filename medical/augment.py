"""Seeded 3-D augmentation of training batches, done on the fly (nothing is stored).

Spatial: random shifts, flips on chosen axes, small rotations and scaling
(one trilinear resampling about the volume's centre, edges repeated).
Intensity: gain (contrast around the mean), gamma (on the volume's range),
additive Gaussian noise. Left-right flips (axis 0 in RAS) are off by default:
many findings are lateralised.

Settings are a dict; every key is optional and 0/empty disables that part::

    {"shift": 2,            # voxels, per axis, uniform in [-shift, shift]
     "flip": (1, 2),        # array axes (0 = left-right, 1 = posterior-anterior, 2 = inferior-superior)
     "rotate": 10,          # degrees, per axis, uniform in [-rotate, rotate]
     "scale": 0.1,          # zoom factor uniform in [1 - scale, 1 + scale]
     "gain": 0.2,           # contrast factor exp(uniform(-gain, gain)) around the volume's mean
     "gamma": 0.3,          # exponent exp(uniform(-gamma, gamma)) applied on the volume's [min, max]
     "noise": 0.05}         # Gaussian noise, std = noise x the volume's std
"""
import numbers

import numpy as np
from scipy import ndimage

from core.exceptions import ConfigError

DEFAULTS = {"shift": 2, "flip": (), "rotate": 0.0, "scale": 0.0, "gain": 0.0, "gamma": 0.0, "noise": 0.0}
"""What ``augment=True`` means: random shifts of up to 2 voxels (see the README for measurements)."""

LIMITS = {"shift": 16, "rotate": 45.0, "scale": 0.5, "gain": 1.0, "gamma": 1.0, "noise": 1.0}


def check_augment(augment, max_shift=2, name="augment"):
    """Canonical settings dict for ``augment`` (False/None -> None; True -> shifts of ``max_shift``)."""
    if augment is None or augment is False or isinstance(augment, np.bool_) and not augment:
        return None
    if augment is True or isinstance(augment, np.bool_):
        return dict(DEFAULTS, shift=int(max_shift))
    if not isinstance(augment, dict):
        raise ConfigError(f"{name} must be True, False or a dict of settings {sorted(DEFAULTS)}, got {augment!r}")
    unknown = sorted(set(augment) - set(DEFAULTS))
    if unknown:
        raise ConfigError(f"{name}: unknown setting(s) {unknown}; known: {sorted(DEFAULTS)}")
    out = {k: DEFAULTS[k] for k in DEFAULTS}
    out["shift"] = 0
    for key, value in augment.items():
        if key == "flip":
            try:
                axes = tuple(sorted({int(a) for a in value}))
            except (TypeError, ValueError):
                axes = (-1,)
            if any(a not in (0, 1, 2) for a in axes):
                raise ConfigError(f"{name}['flip'] must list array axes among 0, 1, 2, got {value!r}")
            out[key] = axes
            continue
        limit = LIMITS[key]
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value <= limit:
            raise ConfigError(f"{name}[{key!r}] must be a number in [0, {limit}], got {value!r}")
        out[key] = int(value) if key == "shift" else float(value)
    return out


def _spatial(vol, rng, settings):
    """Rotation and scaling about the centre, one trilinear resampling per channel."""
    shape = np.array(vol.shape[:3], dtype=np.float64)
    matrix = np.eye(3)
    if settings["rotate"]:
        for a, b in ((1, 2), (0, 2), (0, 1)):
            t = np.radians(rng.uniform(-settings["rotate"], settings["rotate"]))
            r = np.eye(3)
            r[a, a] = r[b, b] = np.cos(t)
            r[a, b], r[b, a] = -np.sin(t), np.sin(t)
            matrix = matrix @ r
    if settings["scale"]:
        matrix = matrix / rng.uniform(1 - settings["scale"], 1 + settings["scale"])
    centre = (shape - 1) / 2
    offset = centre - matrix @ centre
    out = np.empty_like(vol)
    for c in range(vol.shape[-1]):
        ndimage.affine_transform(vol[..., c], matrix, offset=offset, output=out[..., c], order=1, mode="nearest")
    return out


def augment_volume(vol, rng, settings):
    """One augmented copy of ``vol`` ``(D, H, W, C)`` float32; ``rng`` a numpy Generator."""
    out = vol
    k = settings["shift"]
    if k:
        d = rng.integers(-k, k + 1, size=3)
        padded = np.pad(out, [(k, k)] * 3 + [(0, 0)], mode="edge")
        out = padded[k + d[0]:k + d[0] + vol.shape[0], k + d[1]:k + d[1] + vol.shape[1],
                     k + d[2]:k + d[2] + vol.shape[2]]
    for axis in settings["flip"]:
        if rng.random() < 0.5:
            out = np.flip(out, axis=axis)
    if settings["rotate"] or settings["scale"]:
        out = _spatial(np.ascontiguousarray(out), rng, settings)
    out = np.array(out, dtype=np.float32)
    if settings["gain"]:
        mean = out.mean(axis=(0, 1, 2), keepdims=True)
        out = (out - mean) * np.float32(np.exp(rng.uniform(-settings["gain"], settings["gain"]))) + mean
    if settings["gamma"]:
        lo = out.min(axis=(0, 1, 2), keepdims=True)
        span = np.maximum(out.max(axis=(0, 1, 2), keepdims=True) - lo, 1e-6)
        g = np.float32(np.exp(rng.uniform(-settings["gamma"], settings["gamma"])))
        out = ((out - lo) / span) ** g * span + lo
    if settings["noise"]:
        sd = out.std(axis=(0, 1, 2), keepdims=True)
        out = out + rng.normal(0.0, 1.0, size=out.shape).astype(np.float32) * (settings["noise"] * sd)
    return out.astype(np.float32, copy=False)


def augment_batch(xb, rng, settings):
    """Augment every volume of a batch ``(N, D, H, W, C)`` independently."""
    return np.stack([augment_volume(v, rng, settings) for v in xb])

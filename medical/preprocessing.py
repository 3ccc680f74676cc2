"""Array-level preprocessing of 3-D scans: orientation, resampling, intensity.

Every function here works on one volume held as a float32 array of shape
``(X, Y, Z)`` or ``(X, Y, Z, C)`` (channels last) and never makes a float64
copy of a whole volume (intensity arithmetic is done in float64 one slab at a
time). :func:`medical.load_scan` chains them for files; the classifier
applies the last two (shape, intensity) to arrays it is given directly.

Resampling is trilinear (``order=1``) and treats a voxel as a small box, not
a point: the first and last voxel edges of the input and output grids line
up, as when a scanner's field of view is divided into fewer or more voxels.
Samples that fall outside the grid take the value of the nearest edge voxel.
When a grid is made coarser, the volume is first smoothed with a Gaussian
whose width follows the reduction factor (``sigma = (factor - 1) / 2`` voxels,
as scikit-image's ``resize`` does), so that thin bright structures are
averaged rather than dropped or aliased.
"""
import numbers
import warnings

import numpy as np
from nibabel import orientations
from scipy import ndimage

from core.exceptions import InputError, ShapeError

NORMALIZATIONS = ("zscore", "minmax", "percentile", "ct", None)
"""The accepted values of ``normalize`` (``"ct"`` as ``("ct", level, width)``)."""

SHAPE_MODES = ("resample", "crop_or_pad")
"""How ``shape`` is reached: ``"resample"`` interpolates the whole field of view
onto the new grid; ``"crop_or_pad"`` keeps the voxel size and cuts or pads
around the centre."""

PERCENTILES = (0.5, 99.5)
"""Clip limits (percent) of ``normalize="percentile"``."""


class ScanQualityWarning(UserWarning):
    """A scan was repaired or is suspicious: non-finite voxels were replaced,
    or the volume is constant so intensity normalization gives zeros."""


# ----------------------------------------------------------------- arguments
def check_spacing(spacing, name="spacing"):
    """``None``, or a voxel size in mm as a tuple of 3 positive floats.

    A single number means the same size on the three axes.
    """
    if spacing is None:
        return None
    if isinstance(spacing, numbers.Real) and not isinstance(spacing, bool):
        spacing = (spacing,) * 3
    try:
        out = tuple(float(s) for s in spacing)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a positive number or 3 positive numbers (mm), got {spacing!r}") from None
    if len(out) != 3 or not all(np.isfinite(s) and s > 0 for s in out):
        raise InputError(f"{name} must be a positive number or 3 positive numbers (mm), got {spacing!r}")
    return out


def check_shape(shape, name="shape"):
    """``None``, or a grid size as a tuple of 3 positive ints (a single int means a cube)."""
    if shape is None:
        return None
    if isinstance(shape, numbers.Integral) and not isinstance(shape, bool):
        shape = (shape,) * 3
    try:
        out = tuple(shape)
    except TypeError:
        raise InputError(f"{name} must be an int or 3 ints, got {shape!r}") from None
    if len(out) != 3 or not all(isinstance(s, numbers.Integral) and not isinstance(s, bool) and s >= 1 for s in out):
        raise InputError(f"{name} must be an int or 3 positive ints, got {shape!r}")
    return tuple(int(s) for s in out)


def check_shape_mode(shape_mode):
    """Validate ``shape_mode`` (one of :data:`SHAPE_MODES`)."""
    if shape_mode not in SHAPE_MODES:
        raise InputError(f"shape_mode must be one of {list(SHAPE_MODES)}, got {shape_mode!r}")
    return shape_mode


def check_normalize(normalize):
    """Canonical form of a ``normalize`` setting.

    Returns ``None``, ``"zscore"``, ``"minmax"``, ``"percentile"`` or
    ``("ct", level, width)`` with float level and width (HU). Lists (as JSON
    gives back) are accepted for the CT form.
    """
    if normalize is None or (isinstance(normalize, str) and normalize in ("zscore", "minmax", "percentile")):
        return normalize
    if isinstance(normalize, (tuple, list)) and len(normalize) == 3 and normalize[0] == "ct":
        try:
            level, width = float(normalize[1]), float(normalize[2])
        except (TypeError, ValueError):
            level = width = float("nan")
        if np.isfinite(level) and np.isfinite(width) and width > 0:
            return ("ct", level, width)
        raise InputError(f"normalize=('ct', level, width) needs a finite level and a positive width in HU, "
                         f"got {tuple(normalize)!r}")
    if normalize == "ct":
        raise InputError("normalize='ct' needs a window: pass ('ct', level, width) in HU, "
                         "e.g. ('ct', 40, 400) for soft tissue or ('ct', 40, 80) for brain")
    raise InputError(f"normalize must be one of 'zscore', 'minmax', 'percentile', ('ct', level, width) or None, "
                     f"got {normalize!r}")


# ---------------------------------------------------------------- geometry
def voxel_spacing(affine):
    """Voxel size in mm along each array axis: the column norms of ``affine[:3, :3]``.

    affine: ``(4, 4)``. Returns a tuple of 3 floats.
    """
    affine = np.asarray(affine, dtype=np.float64)
    return tuple(float(v) for v in np.sqrt((affine[:3, :3] ** 2).sum(axis=0)))


def axis_codes(affine):
    """The closest orientation of ``affine`` as a string such as ``"RAS"`` or ``"LPS"``:
    the anatomical direction each array axis points to."""
    return "".join(orientations.aff2axcodes(np.asarray(affine, dtype=np.float64)))


def reorient_to_ras(volume, affine):
    """Flip and transpose the first three axes so they point Right, Anterior, Superior.

    Only whole-axis flips and permutations are done (no interpolation), so it
    is exact: the closest canonical orientation, as
    ``nibabel.as_closest_canonical`` gives, without loading anything twice.

    volume: ``(X, Y, Z)`` or ``(X, Y, Z, C)``; affine: ``(4, 4)`` voxel -> world (mm, RAS+).
    Returns ``(volume, affine)``: a C-contiguous array with the first three axes
    reordered, and the affine that maps its voxels to the same world points.
    """
    affine = np.asarray(affine, dtype=np.float64)
    current = orientations.io_orientation(affine)
    transform = orientations.ornt_transform(current, orientations.axcodes2ornt("RAS"))
    if np.array_equal(transform, [[0, 1], [1, 1], [2, 1]]):
        return np.ascontiguousarray(volume), affine
    new_affine = affine @ orientations.inv_ornt_aff(transform, volume.shape[:3])
    return np.ascontiguousarray(orientations.apply_orientation(volume, transform)), new_affine


def _resample3d(vol, out_shape, scale, antialias, order=1):
    """One channel ``(X, Y, Z)`` -> ``out_shape``; ``scale[i]`` input voxels per output voxel.

    Output voxel ``o`` covers input coordinates ``[o * s, (o + 1) * s]`` measured
    from the first voxel's outer edge, so its centre samples the input at
    ``(o + 0.5) * s - 0.5``.
    """
    scale = np.asarray(scale, dtype=np.float64)
    if antialias and np.any(scale > 1):
        # A kernel wider than the axis changes nothing more; capping it keeps an
        # absurd reduction factor (a header claiming 1e30 mm voxels) from asking
        # scipy for a kernel of astronomical length.
        sigma = np.minimum(np.maximum(0.0, (scale - 1.0) / 2.0), np.asarray(vol.shape, dtype=np.float64))
        vol = ndimage.gaussian_filter(vol, sigma=sigma, mode="nearest", output=np.float32)
    return ndimage.affine_transform(vol, scale, offset=0.5 * scale - 0.5, output_shape=tuple(out_shape),
                                    output=np.float32, order=order, mode="nearest", prefilter=False)


def _per_channel(volume, fn):
    if volume.ndim == 3:
        return fn(volume)
    return np.stack([fn(volume[..., c]) for c in range(volume.shape[-1])], axis=-1)


def _check_volume(volume, name="volume"):
    volume = np.asarray(volume)
    if volume.ndim not in (3, 4):
        raise ShapeError(f"{name} must have shape (X, Y, Z) or (X, Y, Z, C), found {volume.shape}")
    return volume.astype(np.float32, copy=False)


def resample_to_spacing(volume, spacing, new_spacing, antialias=True, return_scale=False):
    """Resample a volume from voxel size ``spacing`` to ``new_spacing`` (mm), trilinear.

    The output has ``round(n * spacing / new_spacing)`` voxels per axis (at
    least 1), so the field of view is kept to within half an output voxel.

    volume: ``(X, Y, Z)`` or ``(X, Y, Z, C)``; spacing, new_spacing: 3 floats.
    Returns float32 ``(X', Y', Z'[, C])`` (and, when ``return_scale``, the
    input voxels per output voxel on each axis).
    """
    volume = _check_volume(volume)
    spacing, new_spacing = check_spacing(spacing), check_spacing(new_spacing, "new_spacing")
    out_shape = tuple(max(1, int(round(n * s / t))) for n, s, t in zip(volume.shape[:3], spacing, new_spacing))
    scale = tuple(t / s for s, t in zip(spacing, new_spacing))
    if out_shape == volume.shape[:3] and all(abs(v - 1) < 1e-6 for v in scale):
        out = volume
    else:
        out = _per_channel(volume, lambda v: _resample3d(v, out_shape, scale, antialias))
    return (out, scale) if return_scale else out


def resize_volume(volume, shape, antialias=True):
    """Interpolate a volume onto a grid of ``shape`` voxels covering the same field of view.

    Each axis is stretched or squeezed independently (trilinear), like an
    image resize. volume: ``(X, Y, Z)`` or ``(X, Y, Z, C)``; shape: 3 ints.
    Returns float32 ``(*shape[, C])``.
    """
    volume = _check_volume(volume)
    shape = check_shape(shape)
    if tuple(volume.shape[:3]) == shape:
        return volume
    scale = tuple(n / m for n, m in zip(volume.shape[:3], shape))
    return _per_channel(volume, lambda v: _resample3d(v, shape, scale, antialias))


def crop_or_pad_offsets(in_shape, out_shape):
    """Per axis ``start`` such that output voxel ``o`` is input voxel ``o + start``
    (negative ``start`` means padding before). Centres match to within half a voxel."""
    return tuple((n - m) // 2 for n, m in zip(in_shape, out_shape))


def crop_or_pad(volume, shape, value=None):
    """Cut or pad a volume around its centre to ``shape``, keeping the voxel size.

    volume: ``(X, Y, Z)`` or ``(X, Y, Z, C)``; shape: 3 ints; value: the pad
    value (default: the volume's minimum per channel, i.e. its background).
    Returns float32 ``(*shape[, C])``.
    """
    volume = _check_volume(volume)
    shape = check_shape(shape)
    if tuple(volume.shape[:3]) == shape:
        return volume
    starts = crop_or_pad_offsets(volume.shape[:3], shape)
    src, dst = [], []
    for n, m, s in zip(volume.shape[:3], shape, starts):
        lo = max(s, 0)
        hi = min(s + m, n)
        src.append(slice(lo, hi))
        dst.append(slice(lo - s, hi - s))
    out = np.empty(shape + volume.shape[3:], dtype=np.float32)
    if value is None:
        fill = volume.min(axis=(0, 1, 2)) if volume.size else 0.0
    else:
        fill = np.float32(value)
    out[...] = fill
    out[tuple(dst)] = volume[tuple(src)]
    return out


# --------------------------------------------------------------- intensity
def replace_nonfinite(volume):
    """Replace NaN and infinite voxels in place; return how many there were.

    NaN and -inf become the smallest finite value of the volume (usually the
    background), +inf the largest. A volume with no finite voxel at all is
    left as it is (the caller decides what to do). volume: float32 array.
    """
    finite = np.isfinite(volume)
    n_bad = int(volume.size - np.count_nonzero(finite))
    if n_bad == 0 or n_bad == volume.size:
        return n_bad
    lo = volume[finite].min()
    hi = volume[finite].max()
    volume[np.isposinf(volume)] = hi
    volume[~np.isfinite(volume)] = lo
    return n_bad


def _shift_scale(v, sub, div):
    """``v = (v - sub) / div`` in place, computed in float64 one slab at a time:
    float32 arithmetic overflows for voxels near +/-3e38, and a whole float64
    copy of a large volume would double its memory."""
    for i in range(v.shape[0]):
        v[i] = (v[i].astype(np.float64) - sub) / div


def _zscore(v):
    # Foreground: voxels brighter than the volume's mean. On a head scan the mean
    # lies between the air background and the tissue, so the statistics come
    # from tissue rather than from the (often majority) background. When the
    # foreground is too small or constant (a binary mask: every foreground voxel
    # is 255), the statistics of the whole volume are used instead, so that
    # only a truly constant volume gives zeros.
    mean_all = float(v.mean(dtype=np.float64))
    fg = v[v > mean_all]
    mu = sd = 0.0
    if fg.size >= max(10, v.size // 100):
        mu, sd = float(fg.mean(dtype=np.float64)), float(fg.std(dtype=np.float64))
    del fg
    if not sd > 1e-8 * max(1.0, abs(mu)):
        mu, sd = mean_all, float(v.std(dtype=np.float64))
    if not sd > 1e-8 * max(1.0, abs(mu)):
        v[...] = 0.0
        return False
    _shift_scale(v, mu, sd)
    return True


def _scale_between(v, lo, hi):
    # the limits as float32 values, so that clipped voxels map exactly to 0 and 1
    lo, hi = float(np.float32(lo)), float(np.float32(hi))
    np.clip(v, lo, hi, out=v)
    if hi > lo:
        _shift_scale(v, lo, hi - lo)
        return True
    v[...] = 0.0
    return False


def normalize_intensity(volume, normalize="zscore", copy=True):
    """Intensity normalization of one volume, channel by channel.

    normalize:
        ``"zscore"``: subtract the mean and divide by the standard deviation of
        the foreground (voxels brighter than the volume's mean; all voxels if
        that leaves fewer than 1 %), so tissue has mean 0 and std 1 whatever
        the scanner's units.
        ``"minmax"``: scale to [0, 1] between the minimum and maximum.
        ``"percentile"``: clip to the 0.5th and 99.5th percentiles, then scale
        to [0, 1] (robust to a few hot voxels).
        ``("ct", level, width)``: a Hounsfield window: clip to
        ``level -/+ width / 2`` and scale to [0, 1]; for CT in HU.
        ``None``: unchanged.
    A constant volume (channel) becomes zeros, with a :class:`ScanQualityWarning`.
    The arithmetic is done in float64 (slab by slab), so voxels near the
    float32 limits (+/-3e38) do not overflow to infinity.

    volume: ``(X, Y, Z)`` or ``(X, Y, Z, C)``. Returns float32, same shape.
    """
    normalize = check_normalize(normalize)
    volume = _check_volume(volume)
    if normalize is None:
        return volume
    out = volume.copy() if copy else volume
    channels = [out] if out.ndim == 3 else [out[..., c] for c in range(out.shape[-1])]
    constant = False
    for v in channels:
        if normalize == "zscore":
            ok = _zscore(v)
        elif normalize == "minmax":
            ok = _scale_between(v, v.min(), v.max())
        elif normalize == "percentile":
            lo, hi = np.percentile(v, PERCENTILES)
            ok = _scale_between(v, lo, hi)
        else:
            _, level, width = normalize
            _scale_between(v, level - width / 2.0, level + width / 2.0)
            ok = True
        constant |= not ok
    if constant:
        warnings.warn(f"the volume (or one of its channels) is constant; normalize={normalize!r} gives zeros",
                      ScanQualityWarning, stacklevel=2)
    return out

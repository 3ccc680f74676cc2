"""Helpers shared by the layers: per-axis arguments and convolution geometry."""
import math

import numpy as np

from .exceptions import ConfigError, InputError


def as_tuple(value, ndim, name):
    """Turn an int or a sequence of ``ndim`` ints into a tuple of ``ndim`` positive ints.

    ``as_tuple(3, 2, "kernel_size") -> (3, 3)``; ``as_tuple((1, 2), 2, ...) -> (1, 2)``.
    """
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        out = (int(value),) * ndim
    else:
        try:
            out = tuple(int(v) for v in value)
        except TypeError:
            raise ConfigError(f"{name} must be an int or a tuple of {ndim} ints, got {value!r}") from None
        if len(out) != ndim:
            raise ConfigError(f"{name} must have {ndim} values (one per spatial axis), got {value!r}")
    if any(v < 1 for v in out):
        raise ConfigError(f"{name} must be positive, got {value!r}")
    return out


def check_padding(padding, allowed=("valid", "same")):
    """Lower-case and validate a padding name."""
    if not isinstance(padding, str) or padding.lower() not in allowed:
        raise ConfigError(f"padding must be one of {list(allowed)}, got {padding!r}")
    return padding.lower()


def axis_geometry(size, kernel, stride, dilation, padding):
    """Padding and output length of one spatial axis of a sliding window.

    Follows TensorFlow/Keras: 'valid' pads nothing; 'same' gives ``ceil(size/stride)``
    outputs and pads ``total // 2`` before and the rest after (so the extra
    element goes at the end when the total is odd); 'causal' pads
    ``(kernel - 1) * dilation`` before only.

    Returns ``(pad_before, pad_after, out_length)``; ``out_length`` may be < 1
    when the window does not fit, which callers turn into an error.
    """
    span = (kernel - 1) * dilation + 1
    if padding == "valid":
        before = after = 0
    elif padding == "same":
        out = math.ceil(size / stride)
        total = max((out - 1) * stride + span - size, 0)
        before, after = total // 2, total - total // 2
    elif padding == "causal":
        before, after = span - 1, 0
    else:  # pragma: no cover - validated earlier
        raise ConfigError(f"unknown padding {padding!r}")
    out = (size + before + after - span) // stride + 1
    return before, after, out


def window_slices(offsets, strides, dilations, out_shape):
    """Slices that pick, for one kernel offset, the input element under it for
    every output position: ``start = offset * dilation``, step ``stride``."""
    return tuple(
        slice(o * d, o * d + (n - 1) * s + 1, s)
        for o, s, d, n in zip(offsets, strides, dilations, out_shape)
    )


def check_int(value, name, minimum=1):
    """``value`` as an int after checking it is an integer (not a bool) of at least ``minimum``;
    otherwise ``InputError`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise InputError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def check_array(x, name, ndim=None, allow_nan=False):
    """Convert ``x`` to a float ndarray and check its rank and values."""
    try:
        arr = np.asarray(x)
    except Exception as exc:  # ragged lists and the like
        raise InputError(f"{name} could not be converted to an array: {exc}") from None
    if arr.dtype.kind == "c":
        raise InputError(f"{name} holds complex numbers (dtype {arr.dtype}); the engine computes on real values "
                         f"and will not drop the imaginary part silently: pass np.real({name}) or "
                         f"np.abs({name}) explicitly")
    if arr.dtype.kind not in "biuf":  # bool, ints, floats (complex was refused above)
        raise InputError(f"{name} must hold numbers, found dtype {arr.dtype}")
    if arr.size == 0:
        raise InputError(f"{name} is empty (shape {arr.shape}); at least one sample is needed")
    if ndim is not None and arr.ndim != ndim:
        raise InputError(f"{name} must have {ndim} dimensions, found shape {arr.shape}")
    if not allow_nan:
        check_finite(arr, name)
    return arr


def check_finite(arr, name):
    """Raise ``InputError`` naming ``name`` and the count when a float array holds
    NaN or infinite values (a float32 array also shows values that overflowed)."""
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        extra = " or values too large for float32" if arr.dtype == np.float32 else ""
        raise InputError(f"{name} contains {bad} NaN or infinite values{extra}; clean, impute or rescale them first")


def block_slice(r0, r1, offset, stride, dilation=1):
    """The first-axis slice that window offset ``offset`` reads for output rows ``r0:r1``."""
    start = r0 * stride + offset * dilation
    return slice(start, start + (r1 - r0 - 1) * stride + 1, stride)


#: rows of ``channel_rows`` hold at most this many elements
CHANNEL_ROW_MAX = 1024
#: arrays smaller than this keep their shape in ``channel_rows``: tiling the vectors costs a few
#: Python-level calls, which on HAR's shards (131,072 numbers, two threads taking turns at the
#: GIL) made batch norm's step 11 % slower than it saved
CHANNEL_ROWS_MIN = 1 << 18
#: and arrays with more channels than this too: their rows are long enough already (HAR's FCN,
#: 64-128 channels, trained 3 % slower at two threads with tiled vectors)
CHANNEL_ROWS_MAX_CHANNELS = 32


def channel_rows(shape):
    """``(rows_shape, repeat)`` for a channels-last array of ``shape (..., C)``: a 2-D shape whose
    rows hold ``repeat`` consecutive positions (the trailing axes before the channels, and a
    divisor of the next one, up to ``CHANNEL_ROW_MAX`` elements a row). With the array
    reshaped to ``rows_shape`` and a per-channel vector ``(C,)`` tiled ``repeat`` times,
    ``array op tiled`` is ``array op vector``: NumPy runs an operation with a broadcast
    ``(C,)`` vector one row of ``C`` elements at a time, which with a few channels is 3-4x
    slower than with rows of hundreds (measured 3.1 against 0.8 ms on 2 million float32
    numbers, C=8). ``repeat`` is 1 (the shape unchanged) with more than
    ``CHANNEL_ROWS_MAX_CHANNELS`` channels, no axes to gather or fewer than
    ``CHANNEL_ROWS_MIN`` elements."""
    c = shape[-1] if len(shape) else 1
    repeat = 1
    if c <= CHANNEL_ROWS_MAX_CHANNELS and math.prod(shape) >= CHANNEL_ROWS_MIN:
        for n in reversed(shape[1:-1]):
            if repeat * n * c > CHANNEL_ROW_MAX:  # a part of this axis: its largest divisor that fits
                repeat *= max(d for d in range(1, n + 1) if n % d == 0 and repeat * d * c <= CHANNEL_ROW_MAX)
                break
            repeat *= n
    if repeat == 1:
        return tuple(shape), 1
    return (math.prod(shape) // (repeat * c), repeat * c), repeat


def channel_tiling(shape):
    """``(rows_shape, tile)``: ``channel_rows``'s 2-D shape for ``shape`` and a function that
    repeats a per-channel vector to match its rows. Reshape only contiguous arrays to it when
    writing (reshaping a non-contiguous one copies it, which is fine for reading)."""
    rows, repeat = channel_rows(shape)
    return rows, (lambda v: np.tile(v, repeat)) if repeat > 1 else (lambda v: v)


#: elements summed in one block by ``channel_dots``
CHANNEL_DOTS_BLOCK = 1 << 17


def channel_dots(a, b):
    """``(a * b)`` summed over every axis but the last: ``(C,)`` for two arrays of the same
    channels-last shape ``(..., C)``, without the array of products. NumPy's ``einsum`` reads
    both once and adds each row's products into the sums (the multiply and the ``ones @
    products`` that batch norm used before wrote and read the products again: 2.5 against
    1.1 ms on 100,352 x 32 float32 numbers, 1.1 against 0.5 on 25,088 x 64). It adds one row
    after another, so its float32 sums over 2 million rows were off by 1e-4 relative; it runs
    here in blocks of ``CHANNEL_DOTS_BLOCK`` elements whose sums are then added (4e-7), on
    ``channel_rows``'s long rows (rows of a few channels made it 2x slower). The sums have
    the dtype NumPy gives ``a * b``; a non-contiguous array is copied first."""
    if a.shape != b.shape:
        raise ValueError(f"channel_dots: shapes differ, {a.shape} and {b.shape}")
    c = a.shape[-1]
    _, repeat = channel_rows(a.shape)
    width = repeat * c
    a2, b2 = a.reshape(-1, width), b.reshape(-1, width)
    step = max(1, CHANNEL_DOTS_BLOCK // width)
    parts = np.empty((-(-a2.shape[0] // step), width), np.result_type(a, b))
    for i, start in enumerate(range(0, a2.shape[0], step)):
        np.einsum("ij,ij->j", a2[start:start + step], b2[start:start + step], out=parts[i])
    total = parts.sum(axis=0)
    return total.reshape(repeat, c).sum(axis=0) if repeat > 1 else total


#: ``plane_dots`` sums each channel's products in pieces of this many elements
PLANE_DOTS_PIECE = 1024


def plane_dots(a, b):
    """``(a * b)`` summed over every axis but the first: ``(C,)`` for two C-contiguous arrays of
    the same filters-first shape ``(C, ...)`` (``channel_dots`` for that layout). One
    ``einsum`` sums the products of each channel in pieces of ``PLANE_DOTS_PIECE`` elements
    and NumPy's pairwise sum adds the pieces: on channels of 262,144 float32 numbers near 1,
    8.5e-8 relative off the exact sums of squares, against 1.1e-5 for one ``einsum`` over
    each whole channel."""
    if a.shape != b.shape:
        raise ValueError(f"plane_dots: shapes differ, {a.shape} and {b.shape}")
    c = a.shape[0]
    a2, b2 = a.reshape(c, -1), b.reshape(c, -1)
    n = a2.shape[1]
    whole = n - n % PLANE_DOTS_PIECE
    total = np.einsum("ij,ij->i", a2[:, whole:], b2[:, whole:])
    if whole:
        pieces = np.einsum("ijk,ijk->ij", a2[:, :whole].reshape(c, -1, PLANE_DOTS_PIECE),
                           b2[:, :whole].reshape(c, -1, PLANE_DOTS_PIECE))
        total += pieces.sum(axis=1)
    return total

"""Sliding-window geometry and the pure im2col / col2im kernels that
convolution and pooling share, in any number of spatial dimensions.

A ``WindowGeometry`` is computed once, when a layer is built for an input
shape: the padding of every spatial axis, the output shape, and for each of
the ``K`` window offsets the strided slice that picks, for every output
position, the input element under that offset. The kernels below are plain
functions of arrays and a geometry: they read their inputs, write only the
output buffer they are handed, and keep nothing.

Layouts:

- convolution works channels first: ``xt (C, N, *padded)``; its column
  buffer is ``cols (K, C, N, *out)`` (offsets first: each of the ``K`` copies
  writes one contiguous block); or, for layers with several input channels,
  channels last: one copy of the view ``windows_last`` of the padded input
  ``(N, *padded, C)`` gives ``cols (N, *out, *kernel, C)``, whose rows are
  the column matrix's (no per-offset copies, runs of ``kernel[-1] * C``);
- pooling works on the channels-last input ``(N, *padded, C)`` directly, or on
  a convolution's filters-first output ``(C, N, *spatial)``, where windows that
  tile it and are two wide on the last axis go by pairs (``max_pool_pairs``).

The slices of a geometry cover the spatial axes only; ``slices(lead)``
prefixes ``lead`` full slices for the leading (batch / channel) axes.
"""
import itertools
import math
import sys

import numpy as np

from .. import parallel
from ..utils import axis_geometry, block_slice, window_slices


#: how much longer (as a fraction) the rows of ``out_rows`` may be than the output's for the
#: input gradient to be scattered by whole rows (``WindowGeometry.flat_rows``)
ROWS_MAX_EXTRA = 0.2


def strided(x, shape, strides, writeable=True, offset=0):
    """``np.lib.stride_tricks.as_strided(x[offset:], shape, strides, writeable=writeable)`` (an
    ``offset`` in elements, for a 1-D ``x`` only). A C-contiguous ``x`` serves as the buffer of
    the new array directly, which also checks that the view stays inside it: 1 microsecond where
    ``as_strided`` takes 7.5, time that a shard's thread holds the GIL for (Conv3D's by-rows
    scatter makes 27 views a call)."""
    if x.flags.c_contiguous and x.size:
        view = np.ndarray(shape, x.dtype, buffer=x, offset=offset * x.itemsize, strides=strides)
        if not writeable:
            view.flags.writeable = False
        return view
    return np.lib.stride_tricks.as_strided(x[offset:] if offset else x, shape, strides, writeable=writeable)


def last_axis_first(x):
    """``np.moveaxis(x, -1, 0)`` as a plain transpose (``moveaxis`` spends 5 microseconds
    checking its arguments)."""
    return x.transpose((x.ndim - 1,) + tuple(range(x.ndim - 1)))


def first_axis_last(x):
    """``np.moveaxis(x, 0, -1)`` as a plain transpose."""
    return x.transpose(tuple(range(1, x.ndim)) + (0,))


def bordered(x, pads, ws, tag, fill=0, parallel_bytes=None):
    """``x (N, *spatial, C)`` copied into the interior of an ``(N, *padded, C)`` whose border holds
    ``fill``, borrowed from ``ws`` under ``(tag, fill, pads)`` (``pads``: ``(before, after)`` per
    spatial axis; no borrower of that key writes the border). With ``parallel_bytes``, a buffer
    at least that large is copied by the threads, a share of the samples each."""
    shape = (x.shape[0],) + tuple(n + b + a for n, (b, a) in zip(x.shape[1:-1], pads)) + x.shape[-1:]
    buf = ws.take((tag, fill, pads), shape, x.dtype, init="zeros" if fill == 0 else fill)
    inner = (slice(None),) + tuple(slice(b, b + n) for n, (b, _) in zip(x.shape[1:-1], pads))
    if parallel_bytes is None:
        buf[inner] = x
    else:
        parallel.over_samples(lambda a, b: np.copyto(buf[a:b][inner], x[a:b]), x.shape[0], parallel_bytes,
                              buf.nbytes)
    return buf


def filters_first_view(x):
    """The contiguous filters-first ``(C, N, *spatial)`` array under ``x``, when ``x`` is its
    channels-last ``(N, *spatial, C)`` view (a convolution's output under ``Sequential``'s
    ``filters_first``, and what the layers after it pass on); else ``None``."""
    if x.flags.c_contiguous:
        return None
    xt = last_axis_first(x)
    return xt if xt.flags.c_contiguous else None


class WindowGeometry:
    """Where a window of ``kernel`` (with ``strides``, ``dilation`` and
    ``padding``) reads in an input of spatial shape ``spatial``.

    Attributes: ``pads`` ``((before, after), ...)``, ``out`` (output spatial
    shape), ``padded`` (padded spatial shape), ``interior`` (slices of the
    unpadded input inside the padded one), ``offsets`` (the ``K`` window
    offsets, C order), ``overlap`` (whether two windows can read the same
    input element, so an adjoint must add rather than assign) and ``tiles``
    (windows side by side covering the whole padded input exactly).
    Some axes may give ``out < 1``; ``first_empty_axis`` names the first.
    """

    def __init__(self, spatial, kernel, strides, dilation, padding):
        self.spatial = tuple(int(n) for n in spatial)
        self.kernel, self.strides, self.dilation = tuple(kernel), tuple(strides), tuple(dilation)
        geo = [axis_geometry(n, k, s, d, padding)
               for n, k, s, d in zip(self.spatial, self.kernel, self.strides, self.dilation)]
        self.pads = tuple((b, a) for b, a, _ in geo)
        self.out = tuple(o for _, _, o in geo)
        self.padded = tuple(n + b + a for n, (b, a) in zip(self.spatial, self.pads))
        self.needs_pad = any(b or a for b, a in self.pads)
        self.interior = tuple(slice(b, b + n) for n, (b, _) in zip(self.spatial, self.pads))
        self.offsets = list(itertools.product(*[range(k) for k in self.kernel]))
        spans = [(k - 1) * d + 1 for k, d in zip(self.kernel, self.dilation)]
        self.overlap = any(s < span for s, span in zip(self.strides, spans))
        self.tiles = (all(d == 1 for d in self.dilation) and all(s == span for s, span in zip(self.strides, spans))
                      and all(o * s == n for o, s, n in zip(self.out, self.strides, self.padded)))
        self.first_empty_axis = next((i for i, o in enumerate(self.out) if o < 1), None)
        # the adjoint of im2col by whole rows (``rows_views``): with stride 1 on the last two
        # axes, a window offset moves every output row of a plane by one fixed distance, so
        # an output grid whose rows are as long as the padded input's (``out_rows``) maps each
        # plane of it onto one contiguous run of the padded input. Used where the longer rows
        # add at most ``ROWS_MAX_EXTRA`` to the product and the buffers: measured on 2 cores,
        # LeNet-5's 5x5 'same' conv on 14x14 (rows 18/14 long) trained 5-10 % faster with it on
        # one thread and 8-13 % slower on two; Conv3D 3x3x3 on 15^3 (rows 15/13) 7 % faster
        # on one thread and even on two
        self.flat_rows = (len(self.spatial) >= 2 and self.strides[-2:] == (1, 1) and self.overlap
                          and self.first_empty_axis is None
                          and self.padded[-1] <= (1 + ROWS_MAX_EXTRA) * max(self.out[-1], 1))
        if self.flat_rows:
            self.out_rows = self.out[:-1] + (self.padded[-1],)
            self.row_slack = (self.kernel[-1] - 1) * self.dilation[-1]
            # elements from one index of each spatial axis of the padded input to the next
            self._steps = tuple(math.prod(self.padded[i + 1:]) for i in range(len(self.padded)))
            self._row_starts = [sum(o * d * st for o, d, st in zip(off, self.dilation, self._steps))
                                for off in self.offsets]
        # windows side by side over the unpadded input, two wide on the last axis: max pooling
        # by pairs (``max_pool_pairs``)
        self.pairs = self.tiles and not self.needs_pad and self.kernel[-1] == 2 and self.first_empty_axis is None
        if self.first_empty_axis is None:
            self._spatial_slices = [window_slices(o, self.strides, self.dilation, self.out) for o in self.offsets]
            # for blocks of output rows: each offset's first-axis offset and its slices of the other axes
            self._rest_slices = [(o[0], window_slices(o[1:], self.strides[1:], self.dilation[1:], self.out[1:]))
                                 for o in self.offsets]
        self._with_lead = {}

    @property
    def size(self):
        """``K``, the number of window offsets."""
        return len(self.offsets)

    def slices(self, lead):
        """The ``K`` window slices, each prefixed by ``lead`` full slices (cached)."""
        out = self._with_lead.get(lead)
        if out is None:
            prefix = (slice(None),) * lead
            out = self._with_lead[lead] = [prefix + sl for sl in self._spatial_slices]
        return out

    def pair_slices(self, lead):
        """For a geometry with ``pairs``: one slice per offset of the axes before the last
        (C order), prefixed by ``lead`` full slices, each with the whole last axis: the
        elements those offsets read, rows of ``padded[-1]`` (cached)."""
        out = self._with_lead.get(("pairs", lead))
        if out is None:
            prefix = (slice(None),) * lead
            out = self._with_lead[("pairs", lead)] = [
                prefix + tuple(slice(o, None, k) for o, k in zip(off[:-1], self.kernel[:-1])) + (slice(None),)
                for off in self.offsets if off[-1] == 0]
        return out

    def pair_rows_shape(self, lead, rows=None):
        """For a geometry with ``pairs``: the shape of ``max_pool_pairs``'s scratch (and of each
        offset's winners) for ``rows`` output rows of the first spatial axis (default all),
        after the leading axes ``lead``: those rows over the other axes' outputs, with the
        whole last axis (``2 * rows`` elements in 1-D, where that axis is the first)."""
        rows = self.out[0] if rows is None else rows
        if len(self.out) == 1:
            return lead + (2 * rows,)
        return lead + (rows,) + self.out[1:-1] + self.padded[-1:]

    def interior_with(self, lead, trail=0):
        """``interior`` with ``lead`` full slices before and ``trail`` after."""
        return (slice(None),) * lead + self.interior + (slice(None),) * trail

    def block_slices(self, prefix, r0, r1):
        """The ``K`` window slices for output rows ``r0:r1`` of the first spatial axis,
        each prefixed by ``prefix`` (a tuple of indices or slices for the leading axes)."""
        s0, d0 = self.strides[0], self.dilation[0]
        return [prefix + (block_slice(r0, r1, o0, s0, d0),) + rest for o0, rest in self._rest_slices]

    def row_block(self, row_bytes, block_bytes):
        """How many output rows of the first spatial axis fit in ``block_bytes``."""
        return max(1, block_bytes // max(row_bytes, 1))


def row_blocks(start, stop, rows, block):
    """``(samples, row0, row1)`` covering samples ``start:stop`` (``samples`` a slice) and
    their ``rows`` output rows, in blocks of about ``block`` output rows: the unit in which
    large layers work so that their temporaries stay in the CPU cache. Where a whole sample
    fits, a block holds as many whole samples as fit (blocks of one sample of a small image
    cost more in calls than they save: max pooling of 128 28x28x32 maps, 18 -> 9 ms)."""
    per_block = block // rows
    if per_block >= 1:
        for i in range(start, stop, per_block):
            yield slice(i, min(i + per_block, stop)), 0, rows
        return
    for i in range(start, stop):
        for r0 in range(0, rows, block):
            yield slice(i, i + 1), r0, min(r0 + block, rows)


def to_channels_first(x, geo, out):
    """``x (N, *spatial, C)`` -> ``out (C, N, *padded)``; only the interior is
    written, so ``out``'s border must already be zero. Returns ``out``."""
    out[geo.interior_with(2)] = last_axis_first(x)
    return out


def im2col(xt, geo, cols):
    """Columns of the whole input: ``cols[k] = xt[window k]`` for
    ``xt (C, N, *padded)`` and ``cols (K, C, N, *out)``. Returns ``cols``."""
    np.copyto(_by_offset_axes(cols, geo), windows_first(xt, geo, 2))
    return cols


def _by_offset_axes(cols, geo):
    """``cols (K, ...)`` as a view ``(*kernel, ...)``: the offsets' axis split into the kernel's
    axes (C order), whatever ``cols``'s strides (a reshape would copy a non-contiguous one)."""
    step = cols.strides[0]
    strides = tuple(step * math.prod(geo.kernel[i + 1:]) for i in range(len(geo.kernel)))
    return strided(cols, geo.kernel + cols.shape[1:], strides + cols.strides[1:])


def windows_first(xt, geo, lead, rows=None):
    """A read-only view ``(*kernel, *lead axes, *out)`` of every window of the channels-first
    ``xt (*lead axes, *padded)``: element ``[*k, ..., *o]`` is the input under kernel offset
    ``k`` for output position ``o``. ``rows (r0, r1)``: output rows ``r0:r1`` of the first
    spatial axis only. Copying it builds the channels-first columns in one NumPy call instead of
    one per offset: as fast on one thread, and under two threads each call hands the GIL over
    once more (Conv3D training steps 6-9 % faster on two threads, paired A/B)."""
    out = geo.out
    if rows is not None:
        r0, r1 = rows
        xt = xt[(slice(None),) * lead + (slice(r0 * geo.strides[0], None),)]
        out = (r1 - r0,) + out[1:]
    positions, offsets = _window_strides(xt.strides[lead:], geo)
    return strided(xt, geo.kernel + xt.shape[:lead] + out, offsets + xt.strides[:lead] + positions, writeable=False)


def _window_strides(space, geo):
    """``(positions, offsets)``: the byte strides from one output position to the next and from
    one kernel offset to the next, along each spatial axis whose input stride is ``space``."""
    return (tuple(a * b for a, b in zip(space, geo.strides)), tuple(a * d for a, d in zip(space, geo.dilation)))


def col2im(dcols, geo, dxt):
    """Adjoint of ``im2col``: scatter-add ``dcols (K, C, N, *out)`` into
    ``dxt (C, N, *padded)``, which is fully overwritten. Returns ``dxt``."""
    if geo.tiles:
        for k, sl in enumerate(geo.slices(2)):
            dxt[sl] = dcols[k]
        return dxt
    dxt.fill(0)
    for k, sl in enumerate(geo.slices(2)):
        if geo.overlap:
            dxt[sl] += dcols[k]
        else:
            dxt[sl] = dcols[k]
    return dxt


def rows_views(geo, flat, channels, n):
    """For a geometry with ``flat_rows``: views ``(C, N, *out[:-2], run)`` of ``flat``, the
    padded input gradient ``(C, N, *padded)`` in its front, one per offset of the kernel's
    axes before the last (the last axis's offset 0), into which ``shifted_rows``'s products
    add. A run is one output plane's rows end to end, ``out[-2] * padded[-1]`` elements from
    the offset's start in the plane: with stride 1 on the last two axes a window offset moves
    every output row of a plane by one fixed distance, so an output grid whose rows are as
    long as the padded input's (``out_rows``) maps each plane onto one contiguous run, which
    ends inside the plane."""
    plane = math.prod(geo.padded)
    item = flat.itemsize
    shape = (channels, n) + geo.out[:-2] + (geo.out[-2] * geo.padded[-1],)
    strides = ((n * plane * item, plane * item)
               + tuple(s * st * item for s, st in zip(geo.strides[:-2], geo._steps)) + (item,))
    return [strided(flat, shape, strides, offset=start) for start in geo._row_starts[::geo.kernel[-1]]]


def shifted_rows(dz, geo, z):
    """The output gradient ``dz (*lead, out[-2], out[-1], F)`` (``lead`` any axes) over the
    grid ``out_rows`` (rows ``padded[-1]`` long, zero past ``out[-1]``), filters first, its
    rows end to end (``run`` elements, as in ``rows_views``), once per offset of the kernel's
    last axis, shifted by that offset: ``z (kernel[-1], F, *lead, run)``, with ``z[j, ...,
    j * dilation[-1] + t]`` the grid's position ``t`` and zeros before. (With stride 1 on the
    last axis a grid row ends in ``(kernel[-1] - 1) * dilation[-1]`` zeros, so the shifts
    push only zeros past the run.) The product of the kernel's slice for one offset of the
    other axes, ``(C, kernel[-1] * F)``, with ``z`` viewed as ``(kernel[-1] * F, -1)`` is
    that offset's input gradient summed over the last axis's offsets, added through one view
    of ``rows_views``: one add where one per offset would make ``kernel[-1]``, and a product
    ``kernel[-1]`` times deeper.

    ``dz`` is moved filters first one index of ``lead`` at a time: NumPy's transposing copy
    of a whole array with 32-64 channels is 4-7x slower than in such parts (128 samples of
    14x14x64: 10.4 ms against 1.5-2.6). Returns ``z``."""
    step, width = geo.dilation[-1], geo.padded[-1]
    run = z.shape[-1]
    grid = z[0].reshape(z.shape[1:-1] + dz.shape[-3:-2] + (width,))
    for index in np.ndindex(dz.shape[:-3]):
        part = grid[(slice(None),) + index]
        part[..., :dz.shape[-2]] = last_axis_first(dz[index])
        part[..., dz.shape[-2]:] = 0
    for j in range(1, geo.kernel[-1]):
        z[j, ..., :j * step] = 0
        z[j, ..., j * step:] = z[0, ..., :run - j * step]
    return z


def windows_last(xp, geo, rows=None):
    """A read-only view ``(n, *out, *kernel, C)`` of every window of the channels-last padded
    input ``xp (n, *padded, C)``: element ``[j, *o, *k, c]`` is the input under kernel offset
    ``k`` for output position ``o``. ``rows (r0, r1)``: output rows ``r0:r1`` of the first
    spatial axis only. Copying it gives the column matrix in one pass, channels last, whose
    contiguous runs are ``kernel[-1] * C`` elements long (with no dilation on the last axis)."""
    s = xp.strides
    out = geo.out
    if rows is not None:
        r0, r1 = rows
        xp = xp[:, r0 * geo.strides[0]:]
        out = (r1 - r0,) + out[1:]
    positions, offsets = _window_strides(s[1:-1], geo)
    return strided(xp, xp.shape[:1] + out + geo.kernel + xp.shape[-1:], s[:1] + positions + offsets + s[-1:],
                   writeable=False)


def copy_runs(geo, channels):
    """``(channels-last run, channels-first run)``: the contiguous elements per copied run of an
    im2col by ``windows_last`` and by ``im2col``'s slices (whichever is longer copies faster:
    channels last for layers with several channels, channels first for one channel)."""
    last = channels * (geo.kernel[-1] if geo.dilation[-1] == 1 else 1)
    first = geo.out[-1] if geo.strides[-1] == 1 else 1
    return last, first


def im2col_block(xt, geo, i, r0, r1, cols):
    """Columns of output rows ``r0:r1`` of sample ``i``: ``cols (K, C, r1-r0, *out[1:])``."""
    np.copyto(_by_offset_axes(cols, geo), windows_first(xt[:, i], geo, 1, (r0, r1)))
    return cols


def im2col_rows(xt, geo, a, b, r0, r1, cols):
    """The adjoint of the scatter by whole rows (``rows_views``): the columns of output rows
    ``r0:r1`` (first spatial axis) of samples ``a:b`` over the grid ``out_rows`` (a geometry
    with ``flat_rows``), into
    ``cols (K, C, b-a, r1-r0, *out_rows[1:])`` (C-contiguous), from the C-contiguous
    channels-first ``xt (C, N, *padded)``. Each offset, channel, sample and index of the
    leading output axes copies one contiguous run: ``out_rows[-2]`` rows end to end (the block's
    rows in 2-D), where ``im2col_block`` copies one short output row at a time (Conv3D's
    second layer, 8 channels on 31^3: 1080 runs a block of 5 rows against 31,320, the copy
    about 2x faster). A grid position past ``out[-1]`` holds the input at the start of the next
    row (finite, and multiplied only by zeros of a gradient over the same grid); the last
    ``row_slack`` positions of each run, which would read past its plane, are set to zero.
    Returns ``cols``."""
    if not xt.flags.c_contiguous:
        raise ValueError("im2col_rows reads runs of a C-contiguous input; got a strided view")
    c, item = xt.shape[0], xt.itemsize
    grid = (r1 - r0,) + geo.out_rows[1:]
    lead = grid[:-2]
    run = grid[-2] * grid[-1]
    copied = run - geo.row_slack
    steps = geo._steps
    shape = geo.kernel + (c, b - a) + lead + (copied,)
    strides = (tuple(d * st * item for d, st in zip(geo.dilation, steps)) + xt.strides[:2]
               + tuple(s * st * item for s, st in zip(geo.strides, steps[:len(lead)])) + (item,))
    start = a * xt.strides[1] // item + r0 * geo.strides[0] * steps[0]
    src = strided(xt.reshape(-1), shape, strides, writeable=False, offset=start)
    dst = _by_offset_axes(cols.reshape((geo.size, c, b - a) + lead + (run,)), geo)
    np.copyto(dst[..., :copied], src)
    if copied < run:
        dst[..., copied:] = 0
    return cols


def col2im_block_add(dcols, geo, i, r0, r1, dxt):
    """Adjoint of ``im2col_block``: add ``dcols`` into ``dxt (C, N, *padded)``."""
    for k, sl in enumerate(geo.block_slices((slice(None), i), r0, r1)):
        dxt[sl] += dcols[k]
    return dxt


def max_pool(xp, slices, out, won=None):
    """Max over the window slices ``slices`` of ``xp`` into ``out``. With
    ``won`` (a bool array ``(K, *out.shape)``), also record for each window
    the offset its gradient goes to: the first offset equal to the maximum."""
    np.copyto(out, xp[slices[0]])
    for sl in slices[1:]:
        np.maximum(out, xp[sl], out=out)
    if won is not None:
        free = np.ones(out.shape, bool)
        for k, sl in enumerate(slices):
            np.equal(xp[sl], out, out=won[k])
            won[k] &= free
            free ^= won[k]  # won[k] lies inside free: this removes it
    return out


# Max pooling by pairs, for windows that tile the unpadded input and are two wide on its last
# axis (``WindowGeometry.pairs``: pool 2 on even sizes, the usual case, or pools (k, ..., 2)
# that tile) and an input laid out filters first. ``max_pool`` reads the input once per
# window offset with a stride of 2 on the last axis, and its adjoint writes it so; these read
# and write whole rows of the last axis instead: each offset of the other axes
# (``pair_slices``: 4 in 3-D, 2 in 2-D, 1 in 1-D) reads its rows whole, and the two
# neighbours of a pair are split only once the rows are reduced. The winners and the
# gradient are the same to the bit (ties and signed zeros included), the pooled values equal
# (a window whose maximum is a zero of both signs may give the other sign: the maxima are
# taken in another order). Filters-first pooling of Conv3D 32^3's first layer (8, 8, 30^3),
# one thread, buffers reused as in training: forward with the winners 5.7 -> 3.0 ms,
# backward 2.8 -> 2.0 ms, inference 2.1 -> 1.3 ms.

def pair_up(v, out):
    """``out[..., 2j] = out[..., 2j + 1] = v[..., j]``: every value of ``v`` twice in a row, into
    the C-contiguous ``out (*v.shape[:-1], 2 * v.shape[-1])``. For float32 one integer product
    writes both copies (the 32 bits times ``2**32 + 1``), 2.5x faster than ``np.repeat``.
    Returns ``out``."""
    if v.dtype == np.float32:
        np.multiply(v.view(np.uint32), np.uint64((1 << 32) + 1), out=out.view(np.uint64))
    else:
        np.copyto(out.reshape(v.shape + (2,)), v[..., None])
    return out


def max_pool_pairs(xb, geo, out, won, rows):
    """Max pooling of ``xb (C, n, *spatial)`` (filters first; whole rows of the first spatial
    axis) for a geometry with ``pairs``, into ``out (C, n, *out)``. ``rows`` is C-contiguous
    scratch of ``geo.pair_rows_shape((C, n), out.shape[2])``. With ``won`` (bools of the same
    shape per offset of ``pair_slices``, ``(P, *rows.shape)``), also record where the input
    equals its window's maximum, and keep one winner per window (``first_winners``).
    Returns ``out``."""
    sls = geo.pair_slices(2)
    if len(sls) == 1:  # 1-D: the rows are the input's
        reduced = xb[sls[0]]
    else:
        reduced = np.maximum(xb[sls[0]], xb[sls[1]], out=rows)
        for sl in sls[2:]:
            np.maximum(reduced, xb[sl], out=reduced)
    np.maximum(reduced[..., 0::2], reduced[..., 1::2], out=out)
    if won is not None:
        tops = pair_up(out, rows)  # (the reduced rows are no longer needed)
        for w, sl in zip(won, sls):
            np.equal(xb[sl], tops, out=w)
        first_winners(won)
    return out


def first_winners(won):
    """Keep in each window of ``won`` (``(P, ...)`` bools whose last axis is contiguous, from
    ``max_pool_pairs``) only its first ``True`` in the C order of the window's offsets
    (``pair_slices`` order, then the two neighbours), so each window's gradient goes to its
    first maximum, as ``max_pool``'s does. A pair of neighbours is read as one 2-byte integer,
    a byte each. Returns ``won``."""
    pairs = won.view(np.uint16)
    if len(pairs) < 128:  # (a byte counts up to 255: two per offset)
        count = pairs.sum(axis=0, dtype=np.uint16)  # per window, a count in each byte
        count += count >> 8
        if not (count & 0xFE).any():  # no window has two
            return won
    first = np.left_shift if sys.byteorder == "little" else np.right_shift  # moves the first byte onto the second
    free = np.full(pairs.shape[1:], 0x0101, np.uint16)
    t = np.empty_like(free)
    for u in pairs:
        u &= free
        first(u, 8, out=t)
        t &= u
        u ^= t  # both neighbours won: the second loses
        np.left_shift(u, 8, out=t)
        t |= u
        t |= u >> 8
        free ^= t  # this offset won the window: no later one can
    return won


def max_pool_pairs_adjoint(g, won, geo, dxb, rows):
    """Gradient of ``max_pool_pairs``: the pooled gradient ``g (C, n, *out)`` to the winners of
    ``won``, into ``dxb (C, n, *spatial)``, which is fully overwritten. ``rows`` is scratch as
    in ``max_pool_pairs``. Returns ``dxb``."""
    tops = pair_up(g, rows)
    for w, sl in zip(won, geo.pair_slices(2)):
        np.multiply(tops, w, out=dxb[sl])
    return dxb


def first_epilogue(z, bias, act):
    """``z += bias`` then ``z = act(z)`` in place (either may be ``None``) for ``z`` laid out
    filters first, ``(filters, ...)``: each filter's rows at once."""
    if bias is not None:
        z += bias.reshape((-1,) + (1,) * (z.ndim - 1))
    if act is not None:
        act.forward(z, out=z)


def max_pool_adjoint(grad, won, slices, geo, dxp):
    """Gradient of ``max_pool``: each window's gradient to its winning offset,
    written into ``dxp`` (the padded input's shape), which is fully overwritten."""
    if not geo.tiles:
        dxp.fill(0)
    for w, sl in zip(won, slices):
        if geo.overlap:
            dxp[sl] += grad * w
        else:
            np.multiply(grad, w, out=dxp[sl])
    return dxp


def sum_pool(xp, slices, out):
    """Sum over the window slices of ``xp`` into ``out``."""
    np.copyto(out, xp[slices[0]])
    for sl in slices[1:]:
        out += xp[sl]
    return out


def sum_pool_adjoint(g, slices, geo, dxp):
    """Adjoint of ``sum_pool`` into ``dxp``, which is fully overwritten."""
    if not geo.tiles:
        dxp.fill(0)
    for sl in slices:
        if geo.overlap:
            dxp[sl] += g
        else:
            dxp[sl] = g
    return dxp


def column_bytes(geo, channels, batch, itemsize):
    """Bytes of the whole column matrix of a convolution."""
    return geo.size * channels * batch * math.prod(geo.out) * itemsize

"""One N-dimensional convolution; ``Conv1D``, ``Conv2D`` and ``Conv3D`` fix its rank.

Shapes (channels last, as in Keras):

- input ``(N, *spatial, C_in)``; kernel ``(*kernel_size, C_in // groups, filters)``;
  bias ``(filters,)``; output ``(N, *out, filters)``.

How it computes (im2col): the input is first copied, channels first, into a
zero-bordered buffer ``(C_in, N, *padded)`` (this copy does the padding).
Every kernel offset ``k`` (``K = prod(kernel_size)`` of them) then selects,
with one strided slice of that buffer, the input element each output position
sees under that offset; the ``K`` slices are copied into one preallocated
buffer ``cols`` of shape ``(K, C_in, N, *out)``, reused from call to call, and
the whole layer is one matrix product ``cols.T (M, K*C_in) @ kernel (K*C_in,
filters)`` with ``M = N * prod(out)``. The window geometry and the im2col /
col2im kernels are shared with pooling (``core/layers/windows.py``). Putting the offsets first makes each of
the ``K`` copies write one contiguous block: with channels last in ``cols``
(``(N, *out, K, C_in)``), a layer with few input channels wrote a few bytes
per cache line in each of the ``K`` passes over the whole buffer, which cost
10-30x more than the copy itself on 3-D inputs.

A layer with several input channels copies its columns channels last instead,
when that copies longer contiguous runs (``windows.copy_runs``): the padded
input stays ``(N, *padded, C)`` (``x`` itself without padding), and one copy
of its strided window view (``windows.windows_last``, ``(N, *out, *kernel,
C)``) is the ``(M, K*C)`` column matrix, in runs of ``kernel[-1] * C``
elements with no transpose of the input first. Measured in-process A/B, 150
alternations on one thread: inference 6-12 % faster on LeNet-5 (C=6), HAR
(C=64) and Conv3D (C=8), training 2-5 %. The kernel gradient over such a
matrix is computed as ``(dz.T @ cols).T``, which OpenBLAS runs faster there.

A layer whose column matrix would exceed ``chunk_threshold`` (by default
``core.config.training_column_bytes``: 8 MB, the first layers of 3-D networks,
or 5 MB for channels-last columns where a core's L2 cache is small; in
inference, which keeps nothing, the smaller of 8 MB and one block)
builds it one sample and a few output rows (or a few whole samples) at a time
instead, in a buffer of about one block (``core.config.block_bytes()``: 2 MB, or
half of a core's L2 cache where it holds 2 MB or more) that stays in the CPU
cache, multiplies each block at once, and rebuilds the blocks in the backward
pass rather than keeping the whole matrix: 2-3x faster there, and the memory
of the matrix is saved. (On an AMD EPYC with 1 MB of L2 a core, with the shards
of a batch on threads, 4 MB blocks trained the Conv3D cases 5-11 % faster than
2 MB and predicted 10-18 % faster; 512 KB and 256 KB blocks were 20-70 %
slower. On a later EPYC of that kind, 2 MB blocks predicted LeNet-5 in
0.81-0.98x the time of 4 MB and trained the Conv3D cases in 0.96-1.04x. On an
Intel Xeon with 2 MB of L2 a core, 512 KB blocks trained Conv3D 64^3 in
0.86-0.89x the time of 4 MB ones, and 1 MB blocks predicted Conv3D 32^3 in
0.84-0.87x the time of 512 KB ones: see ``default_block_bytes``.)
A layer's ``chunk_bytes``, where set, overrides the block size. A block with channels-first columns and
stride 1 on its last two axes copies them over the grid ``out_rows`` (``im2col_rows``): rows
as long as the padded input's, so that each offset, channel and plane is one contiguous run;
the product runs over the extra positions too, which are dropped from the output, and the
gradients meet them with zeros. Paired A/B on one thread against a copy per output row:
conv3d_64_b4 training 0.94-0.98x the time, predict 0.93x; conv3d_32_b8 (grid rows 15/13)
0.99-1.01x and 0.95x.

The backward pass is two more products (kernel gradient ``cols @ dz``, column
gradient ``kernel @ dz.T``) and the scatter-add of the column gradient back
through the same ``K`` slices into a channels-first buffer (col2im),
transposed to channels last at the end. With stride 1 on the last two axes the
input gradient is scattered by whole rows instead (``_scatter_shifted``): the
output gradient shifted once per offset of the kernel's last axis, one product
for the offsets of the other axes (several products where that one's output
would exceed twice the block size), one add of a plane's rows end to end each. Its
buffers are borrowed from the workspace; the forward context (the column
matrix, or the padded input for chunked layers) is only read. An ungrouped
stride-1 layer with ``GRAD_FORWARD_MIN_CHANNELS`` (16) input channels or more
and at most twice as many filters computes its input gradient as a forward
convolution instead (``_input_grad_by_forward``): the output gradient, padded by ``(k - 1) * d``
less the forward padding on each side, convolved ('valid', by the forward
pass's code) with the kernel flipped along its spatial axes and its channel
axes swapped. Each input position then gathers its gradient in one product
``K * filters`` deep and is written once, channels last, with no scatter: the
input gradient of 2-D, 1-D and 3-D layers with 16-64 input channels in
0.59-0.75x the time, training steps of the default ``ImageClassifier`` 0.95x
and 0.93x (one and two threads).

Before a max pooling, a layer with channels-first columns and few filters
computes ``kernel.T @ cols``, its output laid out filters first ``(filters,
N, *out)`` (``_output`` with ``first``): in inference the pooling follows in that
layout, and in training ``Sequential`` asks for it (``filters_first``) and the
layer returns the channels-last view of it, which ``MaxPooling`` recognizes.
A 1-D layer with stride 1 and many channels predicts before a max pooling by
one product per kernel offset, without columns (``_shifted_output``).
"""
import math

import numpy as np

from .. import blas, config, parallel
from ..blas import gemm_into
from ..exceptions import ConfigError, InputError, ShapeError
from ..utils import as_tuple, channel_tiling, check_padding
from .base import ActivationMixin, KernelMixin, Layer
from .windows import (WindowGeometry, bordered, col2im, col2im_block_add, column_bytes,
                      copy_runs, first_axis_last, first_epilogue, im2col, im2col_block, im2col_rows, last_axis_first,
                      max_pool, max_pool_pairs, max_pool_pairs_adjoint, rows_views, shifted_rows, to_channels_first,
                      windows_last)

#: layers with at most this many filters whose columns are built channels first (few input
#: channels, see ``copy_runs``) compute their output filters first when a max pooling follows,
#: in inference (``Conv._infer_pooled_first``, ``infer_pooled``) and in training
#: (``Conv.can_run_filters_first``; ``Sequential`` asks for fewer there: ``FIRST_TRAIN_MAX_FILTERS``)
FIRST_MAX_FILTERS = 32
#: in training, where the max pooling after the layer also records its winners and takes the
#: gradient back, at most this many filters (``Conv.can_train_filters_first``): max
#: pooling 2 with its backward pass on ``(C, N, 28, 28)`` (N = 64, 128) and ``(C, 8, 32, 32,
#: 32)``, one thread, filters first against channels last: C = 4 0.45-0.62x the time, 8
#: 0.67-1.07x, 16 0.98-1.21x, 32 1.49-2.58x
FIRST_TRAIN_MAX_FILTERS = 8
#: ... when the batch has at least this many output positions (below, the extra calls cost more
#: than the faster product saves; blocks of a chunked layer in inference have enough)
FIRST_MIN_POSITIONS = 4096
#: 1-D layers with stride 1 and at least this many input channels compute their inference
#: output before a max pooling by one product per kernel offset (``Conv._shifted_output``)
SHIFT_MIN_CHANNELS = 32
#: the input gradient of blocks of at least ``SAMPLES_LAST_MIN`` whole samples is scattered
#: with the samples on the last axis (``Conv._input_grad_samples_last``) where ``col2im``
#: would add runs (output rows) shorter than ``SAMPLES_LAST_MAX_RUN``
SAMPLES_LAST_MAX_RUN = 32
SAMPLES_LAST_MIN = 4
#: arrays smaller than this are copied by one thread (a thread hand-off costs more than it saves)
PARALLEL_BYTES = 8 << 20
#: the input gradient of an ungrouped stride-1 layer with at least this many input channels, and
#: at most ``GRAD_FORWARD_MAX_GROWTH`` times as many filters, is computed as a forward
#: convolution (``Conv._input_grad_by_forward``)
GRAD_FORWARD_MIN_CHANNELS = 16
GRAD_FORWARD_MAX_GROWTH = 2


def _epilogue(z, bias, act):
    """``z += bias`` then ``z = act(z)``, in place (either may be ``None``), for a contiguous
    channels-last ``z`` (the bias added over rows of several positions: ``channel_rows``)."""
    if bias is not None:
        shape, tile = channel_tiling(z.shape)
        if z.flags.c_contiguous:
            z.reshape(shape)[...] += tile(bias)
        else:
            z += bias
    if act is not None:
        act.forward(z, out=z)


def _sum_in_order(partial):
    """The threads' partial kernel gradients summed in thread order, into the first: the same
    result for the same thread count."""
    total = partial[0]
    for p in partial[1:]:
        total += p
    return total


def _columns_times(cols, dz):
    """``cols (K*C, m) @ dz (m, filters)``: the kernel gradient. For columns built channels last
    (``cols`` the transpose of a C-ordered matrix) computed as ``(dz.T @ cols.T).T``, which
    OpenBLAS runs 1.2-1.6x faster with few filters."""
    if cols.flags.c_contiguous:
        return blas.dot(cols, dz)
    return blas.dot(dz.T, cols.T).T


class Conv(ActivationMixin, KernelMixin, Layer):
    """N-d convolution over channels-last input; see the module docstring."""

    rank = None
    #: a column matrix larger than this (in inference: larger than one block) is built in
    #: blocks (a few output rows of a sample, or a few whole samples), which stay in the CPU cache;
    #: ``None``: ``core.config.training_column_bytes`` in training (8 MB, or 5 MB for
    #: channels-last columns where a core's L2 cache is small), ``TRAINING_COLUMNS`` (8 MB) in
    #: inference
    chunk_threshold = None
    #: the size of a block in bytes; ``None``: ``core.config.block_bytes()``
    chunk_bytes = None

    @property
    def block_size(self):
        """The size in bytes of this layer's column blocks: the size it was built with (a later
        ``set_block_bytes`` leaves a built layer as it is); before it is built, the size it would
        take, ``chunk_bytes`` where set, else ``core.config.block_bytes()``."""
        built = self.__dict__.get("_block_bytes")
        return self._configured_block_size() if built is None else built

    def _configured_block_size(self):
        return config.block_bytes() if self.chunk_bytes is None else self.chunk_bytes

    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format=None, dilation_rate=1,
                 groups=1, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None, **kwargs):
        super().__init__(**kwargs)
        if data_format not in (None, "channels_last"):
            raise ConfigError(f"{type(self).__name__}: only data_format='channels_last' is supported, got {data_format!r}")
        if isinstance(filters, bool) or not isinstance(filters, (int, np.integer)) or filters < 1:
            raise ConfigError(f"{type(self).__name__}: filters must be a positive int, got {filters!r}")
        self.filters = int(filters)
        self.kernel_size = as_tuple(kernel_size, self.rank, "kernel_size")
        self.strides = as_tuple(strides, self.rank, "strides")
        self.dilation_rate = as_tuple(dilation_rate, self.rank, "dilation_rate")
        allowed = ("valid", "same", "causal") if self.rank == 1 else ("valid", "same")
        self.padding = check_padding(padding, allowed)
        if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)):
            raise ConfigError(f"{type(self).__name__}: groups must be a positive int, got {groups!r}")
        self.groups = int(groups)
        if self.groups < 1 or self.filters % self.groups:
            raise ConfigError(f"{type(self).__name__}: filters ({self.filters}) must be a multiple of groups ({groups})")
        self._init_activation(activation)
        self._init_kernel(use_bias, kernel_initializer, bias_initializer, kernel_regularizer, bias_regularizer)

    # ------------------------------------------------------------------ build
    def _window_geometry(self, input_shape):
        return WindowGeometry(input_shape[:-1], self.kernel_size, self.strides, self.dilation_rate, self.padding)

    def _plan(self, input_shape):
        """Everything ``_build`` sets up but the weights: the window geometry, the column layout
        and the block sizes for ``input_shape``."""
        if len(input_shape) != self.rank + 1:
            raise ShapeError(f"layer {self.name!r} ({type(self).__name__}) expects input of shape "
                             f"(batch, {', '.join(['steps'] if self.rank == 1 else ['d%d' % i for i in range(self.rank)])}, channels), "
                             f"found (batch, {', '.join(map(str, input_shape))})")
        channels = input_shape[-1]
        if channels % self.groups:
            raise ConfigError(f"layer {self.name!r}: input channels ({channels}) must be a multiple of groups ({self.groups})")
        geo = self._window_geometry(input_shape)
        axis = geo.first_empty_axis
        if axis is not None:
            k, d, n = self.kernel_size[axis], self.dilation_rate[axis], input_shape[axis]
            raise InputError(
                f"layer {self.name!r} ({type(self).__name__}): on spatial axis {axis} the kernel spans "
                f"{(k - 1) * d + 1} (kernel_size {k}, dilation {d}) but the padded input has only "
                f"{geo.padded[axis]} elements (input {n}, padding {self.padding!r}); use a smaller kernel, "
                f"padding='same' or a larger input")
        self.geometry = geo
        # columns copied channels last (one pass over a window view) when that copies longer
        # contiguous runs than the K channels-first slices: layers with several input channels
        last, first = copy_runs(geo, channels)
        self._cols_last = self.groups == 1 and last > first
        # 1-D layers with many channels and stride 1 predict without columns (``_shifted_output``)
        self._shifted = (self.rank == 1 and self.groups == 1 and self.strides == (1,)
                         and channels >= SHIFT_MIN_CHANNELS)
        row_bytes = geo.size * channels * self._block_positions(1, 1) * np.dtype(self.dtype).itemsize
        block = self._block_bytes = self._configured_block_size()
        self._chunk_rows = min(geo.row_block(row_bytes, block), geo.out[0])
        self._sample_column_bytes = column_bytes(geo, channels, 1, np.dtype(self.dtype).itemsize)
        # when a whole sample fits in a block, a block holds as many whole samples as fit: one
        # sample of a small image is too short a matrix product to run BLAS at speed
        self._chunk_samples = (max(1, block // (row_bytes * geo.out[0]))
                               if self._chunk_rows == geo.out[0] else 1)
        # a 3-D layer in blocks of rows scatters its input gradient in blocks of its own
        # (``_backward_chunks``), as many rows as keep the shifted gradient and one kernel
        # slice's product (``_scatter_shifted``) in twice the block size: Conv3D 3x3x3 on 15^3x8
        # (13 rows against the columns' 3 with 512 KB blocks, 7 with 1 MB) and on 31^3x8 (5
        # against 1, 10 with 1 MB); larger than the columns' blocks, the backward took 0.75-0.85x
        # the time (one thread, 512 KB blocks, with the scatter it replaced)
        self._grad_rows = self._chunk_rows
        if geo.flat_rows and self.rank == 3:
            self._grad_rows = min(geo.out[0], max(self._chunk_rows, 2 * block // self._scatter_row_bytes()))

    def _build(self, input_shape, rng):
        self._plan(input_shape)
        channels = input_shape[-1]
        self.add_weight("kernel", self.kernel_size + (channels // self.groups, self.filters), self.kernel_initializer,
                        rng)
        if self.use_bias:
            self.add_weight("bias", (self.filters,), self.bias_initializer, rng)

    @property
    def _grid_columns(self):
        """Whether the blocks of a chunked layer build their columns over the grid ``out_rows``
        (``im2col_rows``: one contiguous run per plane instead of one per output row): an
        ungrouped layer with channels-first columns and a geometry with ``flat_rows``."""
        return not self._cols_last and self.groups == 1 and self.geometry.flat_rows

    def _block_positions(self, samples, rows):
        """Columns of the matrix of a block of ``rows`` output rows of ``samples`` samples: over
        the grid ``out_rows`` for a layer with ``_grid_columns``."""
        geo = self.geometry
        return samples * rows * math.prod((geo.out_rows if self._grid_columns else geo.out)[1:])

    def _grid_valid(self, zg, first, samples, rows):
        """The output positions of a block's product over the grid ``out_rows`` (flat ``zg``), as
        ``(filters, samples, rows, *out[1:])`` (``first``) or ``(samples, rows, *out[1:], filters)``."""
        geo = self.geometry
        grid = (samples, rows) + geo.out_rows[1:]
        if first:
            return zg.reshape((self.filters,) + grid)[..., :geo.out[-1]]
        return zg.reshape(grid + (self.filters,))[..., :geo.out[-1], :]

    def compute_output_shape(self, input_shape):
        return self._window_geometry(tuple(input_shape)).out + (self.filters,)

    # ------------------------------------------------------------- im2col
    def _channels_first(self, x, ws):
        """``(N, *spatial, C)`` -> ``(C, N, *padded)``, zero border (a view when there is nothing to do)."""
        geo = self.geometry
        if not geo.needs_pad and x.shape[-1] == 1:
            return x.reshape((1,) + x.shape[:-1])  # the same view as moveaxis, for less overhead
        buf = ws.take(("conv.pad", geo.pads), (x.shape[-1], x.shape[0]) + geo.padded, x.dtype, init="zeros")
        parallel.over_samples(lambda a, b: to_channels_first(x[a:b], geo, buf[:, a:b]), x.shape[0],
                              PARALLEL_BYTES, buf.nbytes)
        return buf

    def _source(self, x, ws):
        """The padded input the columns are copied from: ``(N, *padded, C)`` (``x`` itself when
        there is no padding) for a layer whose columns are built channels last, else the
        channels-first ``(C, N, *padded)`` of ``_channels_first``."""
        if not self._cols_last:
            xt = self._channels_first(x, ws)
            # (``im2col_rows`` reads runs of a C-contiguous buffer)
            return np.ascontiguousarray(xt) if self._grid_columns else xt
        return self._padded_last(x, ws)

    def _padded_last(self, x, ws):
        """The padded input channels last, ``(N, *padded, C)`` (``x`` itself without padding)."""
        geo = self.geometry
        return bordered(x, geo.pads, ws, "conv.pad_last", parallel_bytes=PARALLEL_BYTES) if geo.needs_pad else x

    def _columns(self, src, ws, n):
        """The whole ``(K*C, M)`` column matrix of the ``n`` samples of ``src`` (``_source``), in
        the workspace (a transposed view when built channels last)."""
        geo = self.geometry
        c = self.input_shape[-1]
        if self._cols_last:
            cols = ws.take("conv.cols_last", (n,) + geo.out + geo.kernel + (c,), src.dtype)
            np.copyto(cols, windows_last(src, geo))
            return cols.reshape(n * math.prod(geo.out), -1).T
        cols = ws.take("conv.cols", (geo.size, c, n) + geo.out, src.dtype)
        return im2col(src, geo, cols).reshape(geo.size * c, -1)

    def _block_columns(self, src, flat, a, b, r0, r1):
        """The ``(K*C, m)`` column matrix of output rows ``r0:r1`` (first spatial axis) of
        samples ``a:b`` of ``src`` (``_source``), built in the front of the flat buffer ``flat``;
        a block of several samples holds them whole."""
        geo = self.geometry
        c = self.input_shape[-1]
        if self._grid_columns:
            shape = (geo.size, c, b - a, r1 - r0) + geo.out_rows[1:]
            cols = im2col_rows(src, geo, a, b, r0, r1, flat[:math.prod(shape)].reshape(shape))
            return cols.reshape(geo.size * c, -1)
        rows = (b - a, r1 - r0) + geo.out[1:]
        if self._cols_last:
            shape = rows + geo.kernel + (c,)
            cols = flat[:math.prod(shape)].reshape(shape)
            np.copyto(cols, windows_last(src[a:b], geo, (r0, r1)))
            return cols.reshape(math.prod(rows), -1).T
        if b - a > 1:
            shape = (geo.size, c, b - a) + geo.out
            return im2col(src[:, a:b], geo, flat[:math.prod(shape)].reshape(shape)).reshape(geo.size * c, -1)
        shape = (geo.size, c, r1 - r0) + geo.out[1:]
        return im2col_block(src, geo, a, r0, r1, flat[:math.prod(shape)].reshape(shape)).reshape(geo.size * c, -1)

    def _group_rows(self, cols2, g):
        """Rows of group ``g`` from the ``(K*C, M)`` column matrix, as ``(K*C/groups, M)``."""
        c = self.input_shape[-1]
        cg = c // self.groups
        return cols2.reshape(self.geometry.size, c, -1)[:, g * cg:(g + 1) * cg].reshape(-1, cols2.shape[1])

    def _use_chunks(self, x, keep=True):
        """Chunk when the whole column matrix would be large (and for 2-D/3-D, ungrouped layers):
        above ``chunk_threshold`` (by default ``config.training_column_bytes``) where the backward
        pass needs the input kept (``keep``: it rebuilds the blocks), above one block
        (``block_size`` when built) in inference, where nothing is kept: LeNet-5's predict at one
        thread took 0.957-0.976x the time with its second layer (7.2 MB of columns at batch 64)
        in blocks of 35 whole samples (paired A/B)."""
        if self.groups != 1 or self.rank == 1:
            return False
        threshold = self.chunk_threshold
        if threshold is None:
            threshold = config.training_column_bytes(self._cols_last) if keep else config.TRAINING_COLUMNS
        limit = threshold if keep else min(threshold, self._block_bytes)
        return self._sample_column_bytes * x.shape[0] > limit

    def _block_plan(self, n, ws, channels, dtype, extra=0):
        """Samples split into one group per thread, and a column buffer for each group, with
        ``extra`` elements more at its end."""
        geo = self.geometry
        sample_groups = parallel.groups(list(range(n)), parallel.block_threads())
        size = geo.size * channels * self._block_positions(self._chunk_samples, self._chunk_rows) + extra
        buffers = [ws.take("conv.chunk", (size,), dtype) for _ in sample_groups]
        return list(zip(buffers, sample_groups))

    def _blocks(self, src, flat, samples, step=None):
        """Yield ``(a, b, r0, r1, cols)`` for the blocks of ``samples`` (consecutive sample
        indices): output rows ``r0:r1`` (first spatial axis) of samples ``a:b``, where a block
        holds either several whole samples or a few rows of one (``step`` rows, at most
        ``_chunk_rows``; by default that many). ``cols`` is the block's
        ``(K*C, (b-a) * (r1-r0) * prod(out[1:]))`` column matrix (``_block_columns``; over the
        grid ``out_rows`` for a layer with ``_grid_columns``), built in the front of the flat
        buffer ``flat`` (reused from block to block)."""
        rows = self.geometry.out[0]
        step = self._chunk_rows if step is None else step
        if self._chunk_samples > 1:
            for s0 in range(0, len(samples), self._chunk_samples):
                a, b = samples[s0], samples[min(s0 + self._chunk_samples, len(samples)) - 1] + 1
                yield a, b, 0, rows, self._block_columns(src, flat, a, b, 0, rows)
            return
        for i in samples:
            for r0 in range(0, rows, step):
                r1 = min(r0 + step, rows)
                yield i, i + 1, r0, r1, self._block_columns(src, flat, i, i + 1, r0, r1)

    # ------------------------------------------------------------ forward
    def forward(self, x, training=False, rng=None, *, context=None, workspace=None, activation=True,
                filters_first=False, pool=None, after=None):
        """``filters_first`` (``Sequential`` asks it before a max pooling, see ``can_run_filters_first``;
        batches with ``FIRST_MIN_POSITIONS`` output positions or more): the output is the ``(N,
        *out, filters)`` view of a contiguous ``(filters, N, *out)`` array, computed as
        ``kernel.T @ cols``; the pooling reads it in that layout.

        ``pool`` (with ``filters_first``; a ``MaxPooling`` layer that takes this layer's output,
        and ``after`` the activation it would apply): where ``can_pool_blocks`` allows, the
        output is that pooling's output, each block pooled right after its product
        (``_forward_pooled``), and the pooling passes it on (``MaxPooling.forward(fused=True)``).
        Whether it was pooled: ``pooled(ctx)``."""
        keep = self._keep(training, context)
        if pool is not None and filters_first and self.can_run_filters_first(activation) \
                and self.can_pool_blocks(pool, x, keep):
            return self._forward_pooled(x, self._workspace(workspace), keep, pool, after)
        if filters_first and self.can_run_filters_first(activation) and self._enough_positions(x):
            z, saved = self._output(x, self._workspace(workspace), self.params["kernel"], self.params.get("bias"), None,
                                    first=True, keep=keep)
            return first_axis_last(z), self._context(keep, batch=x.shape[0], act=False, first=True, **saved)
        act = self.activation
        # an activation whose backward needs only its output runs in place, block by block, with the bias
        fuse = activation and not act.identity and act.output_only
        z, saved = self._output(x, self._workspace(workspace), self.params["kernel"], self.params.get("bias"),
                                act if fuse else None, keep=keep)
        if fuse:
            y, parts = z, ({"act": True, "a": z} if keep else {})
        else:
            y, parts = self._activate(z, activation, keep, owned=True)
        return y, self._context(keep, batch=x.shape[0], first=False, **saved, **parts)

    def can_run_filters_first(self, activation=True):
        """Whether ``forward(filters_first=True)`` lays the output out filters first: an ungrouped
        layer whose columns are built channels first (few input channels), with few filters and
        no activation to apply (none, or one ``Sequential`` moved after the pooling)."""
        return (not self._cols_last and self.groups == 1 and self.filters <= FIRST_MAX_FILTERS
                and (not activation or self.activation.identity))

    def can_train_filters_first(self):
        """Whether ``Sequential`` may run this layer filters first in training, before its max
        pooling (``Sequential._convolutions_filters_first``): ``can_run_filters_first`` for a
        layer whose activation is moved or absent, with at most ``FIRST_TRAIN_MAX_FILTERS``
        filters (there the pooling also records its winners and takes the gradient back,
        which runs faster channels last with more)."""
        return self.can_run_filters_first(False) and self.filters <= FIRST_TRAIN_MAX_FILTERS

    def can_pool_blocks(self, pool, x, keep=True):
        """Whether ``forward(filters_first=True, pool=pool)`` pools each block of this layer's
        output as it is computed (``_forward_pooled``): a layer that runs filters first
        (``can_train_filters_first``) in blocks (``_use_chunks``) on the batch ``x``, and a max
        pooling by pairs whose windows tile the output (``WindowGeometry.pairs``, stride = pool
        size, no padding) and never straddle two blocks."""
        if not (self.can_train_filters_first() and self._enough_positions(x) and self._use_chunks(x, keep)):
            return False
        pgeo = pool.geometry
        return (getattr(pool, "mode", None) == "max" and pgeo.pairs and not pgeo.needs_pad
                and tuple(pool.strides) == tuple(pool.pool_size) and pool.rank == self.rank
                and pgeo.padded == self.geometry.out and self.geometry.out[0] % pool.pool_size[0] == 0
                and (self._chunk_samples > 1 or self._chunk_rows >= pool.pool_size[0]))

    @staticmethod
    def pooled(ctx):
        """Whether ``ctx``, a context of this layer's ``forward``, is of one that also pooled."""
        return ctx is not None and "pool" in ctx

    def _forward_pooled(self, x, ws, keep, pool, after):
        """``pool.forward_first(forward(x, filters_first=True))`` with ``after`` applied to the
        pooled output, for a chunked layer (``can_pool_blocks``): each block's product, plus the
        bias, is pooled by pairs while it is in the cache, winners and all, so the layer's whole
        output is never written; nor, in ``backward``, its gradient (``_grads_pooled``). The
        values, winners and kernel gradient are those of the two layers run one after the other,
        to the bit (the same blocks, products and comparisons); the bias gradient is summed over
        the pooled gradient instead, equal up to float rounding. The pooling's part of the
        context is ``ctx["pool"]``. Conv3D 32^3's first layer and pooling in training, one
        thread: forward 0.89x the time of the two; the bias goes on each contiguous product,
        over the grid too (on the output positions' strided view it took 0.8 ms of the pair's 6)."""
        geo, pgeo = self.geometry, pool.geometry
        n, f, c, p0 = x.shape[0], self.filters, x.shape[-1], pool.pool_size[0]
        kmat = self.params["kernel"].reshape(-1, f)
        bias = self.params.get("bias")
        src = self._source(x, ws)
        pooled = ws.take("pool.out_first", (f, n) + pgeo.out, x.dtype)
        won = ws.take("pool.won_pairs", (len(pgeo.pair_slices(2)),) + pgeo.pair_rows_shape((f, n)), bool) \
            if keep else None
        grid = f * self._block_positions(self._chunk_samples, self._chunk_rows) if self._grid_columns else 0
        plan = self._block_plan(n, ws, c, x.dtype, grid)
        rows, samples, scratch = self._pooled_blocks(pool)
        z_size = 0 if grid else f * samples * rows * math.prod(geo.out[1:])
        buffers = [(ws.take("conv.zblock" + f".{g}", (z_size,), x.dtype),
                    ws.take("pool.pair_rows" + f".{g}", (scratch,), x.dtype)) for g in range(len(plan))]

        def work(chunk):  # each thread: whole samples, whose pooled rows and winners are its own
            for (flat, group), (zflat, rflat) in chunk:
                for a, b, r0, r1, cols in self._blocks(src, flat, group, rows):
                    # the product, plus the bias on the whole contiguous block (over the grid too)
                    z2 = (flat[flat.size - f * cols.shape[1]:] if grid else zflat[:f * cols.shape[1]]).reshape(f, -1)
                    blas.matmul(kmat.T, cols, out=z2)
                    first_epilogue(z2, bias, None)
                    zb = self._grid_valid(z2.reshape(-1), True, b - a, r1 - r0) if grid else \
                        z2.reshape((f, b - a, r1 - r0) + geo.out[1:])
                    q0, q1 = r0 // p0, r1 // p0
                    shape = pgeo.pair_rows_shape((f, b - a), q1 - q0)
                    max_pool_pairs(zb, pgeo, pooled[:, a:b, q0:q1], None if won is None else won[:, :, a:b, q0:q1],
                                   rflat[:math.prod(shape)].reshape(shape))
        parallel.run(work, list(zip(plan, buffers)), blas=True)
        first_epilogue(pooled, None, after)
        out = ws.take("pool.out", (n,) + pgeo.out + (f,), x.dtype)
        np.copyto(out, first_axis_last(pooled))
        ctx = self._context(keep, batch=n, act=False, first=True, src=src, cols=None)
        if ctx is not None:
            ctx["pool"] = pool._context(keep, won=won, xshape=(f, n) + geo.out, after=after, a=pooled, first=True)
        return out, ctx

    def _enough_positions(self, x):
        """Whether the batch ``x`` has the ``FIRST_MIN_POSITIONS`` output positions the
        filters-first layout needs."""
        return x.shape[0] * math.prod(self.geometry.out) >= FIRST_MIN_POSITIONS

    def infer(self, x, workspace, kernel, bias, activation):
        """Inference output for a given ``kernel`` and ``bias`` (``None``: none), with ``activation``
        applied in place (``core.inference`` passes batch norm folded into them): no context."""
        return self._output(x, self._workspace(workspace), kernel, bias, activation, keep=False)[0]

    def infer_then_pool(self, x, workspace, kernel, bias, activation, pool):
        """``pool(infer(x, ...))`` for a ``MaxPooling`` layer ``pool``: block by block
        (``infer_pooled``) where that applies, else channels first (``_infer_pooled_first``)
        where that applies; a 1-D layer with many channels computes its output by shifted
        products (``_shifted_output``). With no activation or a ``monotone`` one (relu), the
        bias and the activation are applied after the pooling, to the smaller pooled array:
        both commute exactly with a maximum (``fl(z + b)`` never decreases as ``z`` grows), so
        with the product computed as in ``infer`` the result is the same to the bit; the
        channels-first and shifted products round their sums differently (float32 rounding)."""
        if self.can_pool_in_blocks(pool, x):
            return self.infer_pooled(x, workspace, kernel, bias, activation, pool)
        if self._pool_channels_first(pool, x, activation):
            return self._infer_pooled_first(x, self._workspace(workspace), kernel, bias, activation, pool)
        late = activation is None or activation.monotone
        if self._shifted:
            z = self._shifted_output(x, self._workspace(workspace), kernel)
            if not late:
                _epilogue(z, bias, activation)
        else:
            z = self.infer(x, workspace, kernel, None if late else bias, None if late else activation)
        out = pool.forward(z, False, None, context=False, workspace=workspace)[0]
        if late:
            _epilogue(out, bias, activation)
        return out

    def _pool_channels_first(self, pool, x, activation):
        """Whether ``infer_then_pool`` computes this layer channels first (``_infer_pooled_first``):
        an unchunked, ungrouped layer whose columns are built channels first (few input channels),
        few filters, a batch with enough output positions, no activation or a monotone one, and a
        pooling without padding."""
        return (self.can_run_filters_first(False) and self._enough_positions(x) and not self._use_chunks(x, keep=False)
                and (activation is None or activation.monotone) and pool.mode == "max"
                and not pool.geometry.needs_pad)

    def _shifted_output(self, x, ws, kernel):
        """The convolution of ``x`` with ``kernel`` (no bias) for a 1-D layer with stride 1, without
        a column matrix: with the padded input channels last, ``(N, Lp, C)`` (``_padded_last``,
        whatever layout the layer's columns use), read as one ``(N*Lp, C)`` matrix,
        kernel offset ``k`` moves every output row by the same ``k * dilation`` rows, so the
        output over the grid of all ``N*Lp`` positions is the sum over offsets of one product
        ``rows[k*d : k*d + M] @ kernel[k]``, accumulated in place by BLAS
        (``core.blas.gemm_into``: NumPy's ``matmul`` cannot add into its output). The rows past
        each sample's last output hold sums across two samples and are never read: the result
        is the ``(N, out, filters)`` view of the valid rows. It skips copying the columns, 3x
        the input for a kernel of 3: HAR's predict (64 channels in its second layer, batch 64)
        8-17 % faster on one thread, 1-2 % on two (paired A/B). Sums in another order than
        ``infer``'s: the same up to float32 rounding."""
        geo = self.geometry
        src = self._padded_last(x, ws)  # channels last, whatever layout the layer's columns use
        if not src.flags.c_contiguous:
            src = np.ascontiguousarray(src)
        n, lp, c = src.shape
        f, d = self.filters, self.dilation_rate[0]
        rows = src.reshape(n * lp, c)
        m = n * lp - (geo.kernel[0] - 1) * d
        zf = ws.take("conv.z_shifted", (n * lp, f), x.dtype)
        kernels = np.ascontiguousarray(kernel, x.dtype).reshape(geo.kernel[0], c, f)
        for k in range(geo.kernel[0]):
            gemm_into(zf[:m], rows[k * d:k * d + m], kernels[k], 1.0 if k else 0.0)
        return zf.reshape(n, lp, f)[:, :geo.out[0]]

    def _infer_pooled_first(self, x, ws, kernel, bias, activation, pool):
        """``infer_then_pool`` channels first: the product ``kernel.T (filters, K*C) @ cols (K*C, M)``
        gives the output as ``(filters, N, *out)`` (``_output`` with ``first``), which OpenBLAS computes 1.5x
        faster than ``cols.T @ kernel`` with few filters; the pooling then reads rows of the
        output's last axis, the bias and the activation are applied to the pooled ``(filters, N,
        *pooled)`` (long rows per channel) and only that smaller array is moved to channels last
        (``MaxPooling.forward_first``). LeNet-5's first layer with its pooling: 1.9-2.0 ms ->
        1.3-1.4 ms at batch 64 on one thread. The product sums in another order than ``infer``'s:
        the same up to float32 rounding."""
        zt = self._output(x, ws, kernel, None, None, first=True, keep=False)[0]
        return pool.forward_first(zt, ws, False, activation, bias)[0]

    def infer_pooled(self, x, workspace, kernel, bias, activation, pool):
        """``pool(infer(x, ...))`` for a chunked layer followed by a ``MaxPooling`` layer whose
        windows tile its output (stride = pool size, no padding; see ``can_pool_in_blocks``):
        each block (a few output rows of a sample, or several whole samples) is pooled right
        after its product, while it is in the cache, and the whole convolution output is never
        written. The bias and a ``monotone`` activation are applied to the pooled block (see
        ``infer_then_pool``), others before. A layer with channels-first columns, few filters
        and a monotone activation computes each block's product filters first, as
        ``_infer_pooled_first`` does for a whole layer (Conv3D first layers: predict 5-11 %
        faster at one thread, 2-10 % at two), and pools it by pairs where the windows allow
        (``max_pool_pairs``: Conv3D predict 0.93-0.97x the time at one thread, paired A/B)."""
        ws = self._workspace(workspace)
        late = activation is None or activation.monotone
        geo, pgeo = self.geometry, pool.geometry
        n, c, p0, f = x.shape[0], x.shape[-1], pool.pool_size[0], self.filters
        whole = self._chunk_rows == geo.out[0]  # blocks of whole samples, their rows all computed
        per_block = pgeo.out[0] if whole else max(1, self._chunk_rows // p0)  # pooled rows per block
        samples = min(self._chunk_samples, n) if whole else 1
        rows = geo.out[0] if whole else per_block * p0
        kmat = kernel.reshape(-1, f)
        out = ws.take("pool.out", (n,) + pgeo.out + (f,), x.dtype)
        src = self._source(x, ws)
        # channels first, as in _infer_pooled_first: each block's product as (filters, samples, rows, ...)
        first = self.can_run_filters_first(False) and late
        # (over the grid ``out_rows`` for a layer with ``_grid_columns``: the pooling windows
        # read the output positions only)
        rest = (geo.out_rows if self._grid_columns else geo.out)[1:]
        lead = (slice(None),) * (2 if first else 1)  # the leading axes the pooling windows keep whole
        pooled_slices = {}

        def blocks(group):  # (a, b, q0, q1): pooled rows q0:q1 of samples a:b
            if whole:
                for s0 in range(0, len(group), samples):
                    yield group[s0], group[min(s0 + samples, len(group)) - 1] + 1, 0, pgeo.out[0]
                return
            for i in group:
                for q0 in range(0, pgeo.out[0], per_block):
                    yield i, i + 1, q0, min(q0 + per_block, pgeo.out[0])

        pairs = first and pgeo.pairs  # (pooled by pairs: each block's rows of the pooling's input)
        pair_rows = math.prod(pgeo.pair_rows_shape((f, samples), per_block)) if pairs else 0

        def work(chunk):  # each thread: whole samples, its own buffers
            for (flat, zflat, pflat, rflat), group in chunk:
                for a, b, q0, q1 in blocks(group):
                    r0, r1 = (0, geo.out[0]) if whole else (q0 * p0, q1 * p0)
                    cols = self._block_columns(src, flat, a, b, r0, r1)
                    zb = zflat[:cols.shape[1] * f]
                    block = (b - a, r1 - r0) + rest
                    sl = pooled_slices.get(q1 - q0)
                    if sl is None:  # (the filters' axis,) the samples' axis, then the pooled rows' windows
                        sl = pooled_slices[q1 - q0] = pgeo.block_slices(lead, 0, q1 - q0)
                    if first:
                        zb = zb.reshape((f,) + block)
                        blas.matmul(kmat.T, cols, out=zb.reshape(f, -1))
                        pooled = pflat[:(b - a) * (q1 - q0) * math.prod(pgeo.out[1:]) * f]
                        pooled = pooled.reshape((f, b - a, q1 - q0) + pgeo.out[1:])
                        if pairs:  # (the output over the grid ``out_rows`` is wider than the pooling's input)
                            rows_shape = pgeo.pair_rows_shape((f, b - a), q1 - q0)
                            max_pool_pairs(zb[..., :pgeo.padded[-1]], pgeo, pooled,
                                           None, rflat[:math.prod(rows_shape)].reshape(rows_shape))
                        else:
                            max_pool(zb, sl, pooled)
                        first_epilogue(pooled, bias, activation)
                        np.copyto(out[a:b, q0:q1], first_axis_last(pooled))
                        continue
                    zb = zb.reshape(block + (f,))
                    blas.matmul(cols.T, kmat, out=zb.reshape(-1, f))
                    if not late:
                        _epilogue(zb, bias, activation)
                    pooled = max_pool(zb, sl, out[a:b, q0:q1])
                    if late:
                        _epilogue(pooled, bias, activation)
        groups = parallel.groups(list(range(n)), parallel.block_threads())
        col_size = geo.size * c * self._block_positions(samples, rows)
        z_size = self._block_positions(samples, rows) * f
        pooled_size = samples * per_block * math.prod(pgeo.out[1:]) * f if first else 0
        plan = [((ws.take("conv.chunk", (col_size,), x.dtype), ws.take("conv.zblock", (z_size,), x.dtype),
                  ws.take("pool.block_first", (pooled_size,), x.dtype), ws.take("pool.pair_rows", (pair_rows,), x.dtype)),
                 g) for g in groups]
        parallel.run(work, plan, blas=True)
        return out

    def can_pool_in_blocks(self, pool, x):
        """Whether ``infer_pooled`` applies to this layer, ``pool`` and the batch ``x``."""
        pgeo = pool.geometry
        return (self._use_chunks(x, keep=False) and pool.mode == "max" and not pgeo.needs_pad
                and tuple(pool.strides) == tuple(pool.pool_size))

    def _output(self, x, ws, kernel, bias, act, first=False, keep=True):
        """``(z, saved)``: the convolution of ``x`` with ``kernel``, plus ``bias``, then ``act`` (or
        ``None``) in place; a chunked layer applies both to each block right after its product, while
        the block is in the cache (applying them in cache-sized blocks of a whole product measured no
        faster); ``saved`` is what backward needs (the column matrix or the padded input).
        ``first`` (ungrouped layers with channels-first columns): ``z`` laid out filters first,
        a contiguous ``(filters, N, *out)`` computed as ``kernel.T @ cols``."""
        geo = self.geometry
        n, f = x.shape[0], self.filters
        kmat = kernel.reshape(-1, f)
        if first:
            z = ws.take("conv.z_first", (f, n) + geo.out, x.dtype)

            def product(cols, zb):
                blas.matmul(kmat.T, cols, out=zb.reshape(f, -1))
            epilogue = first_epilogue
        else:
            z = ws.take("conv.z", (n,) + geo.out + (f,), x.dtype)

            def product(cols, zb):
                blas.matmul(cols.T, kmat, out=zb.reshape(-1, f))
            epilogue = _epilogue
        src = self._source(x, ws)
        if self._use_chunks(x, keep):
            # a product over the grid ``out_rows`` goes to the end of the thread's buffer first
            grid = f * self._block_positions(self._chunk_samples, self._chunk_rows) if self._grid_columns else 0

            def work(chunk):  # each thread: whole samples, so the blocks it writes are its own
                for flat, samples in chunk:
                    for a, b, r0, r1, cols in self._blocks(src, flat, samples):
                        zb = z[:, a:b, r0:r1] if first else z[a:b, r0:r1]
                        if grid:
                            zg = flat[flat.size - f * cols.shape[1]:]
                            product(cols, zg)
                            np.copyto(zb, self._grid_valid(zg, first, b - a, r1 - r0))
                        else:
                            product(cols, zb)
                        epilogue(zb, bias, act)
            parallel.run(work, self._block_plan(n, ws, x.shape[-1], x.dtype, grid), blas=True)
            return z, {"src": src, "cols": None}
        cols2 = self._columns(src, ws, n)
        if self.groups == 1:
            product(cols2, z)
        else:
            fg = f // self.groups
            z2 = z.reshape(-1, f)
            for g in range(self.groups):
                np.matmul(self._group_rows(cols2, g).T, kernel[..., g * fg:(g + 1) * fg].reshape(-1, fg),
                          out=z2[:, g * fg:(g + 1) * fg])
        epilogue(z, bias, act)
        return z, {"src": None, "cols": cols2}

    # ----------------------------------------------------------- backward
    def backward(self, ctx, dy, need_input_grad=True, *, workspace=None):
        ctx = self._require_context(ctx)
        ws = self._workspace(workspace)
        if self.pooled(ctx):  # dy is the pooling's output gradient (``_forward_pooled``)
            pool = ctx["pool"].layer
            if not need_input_grad:
                return None, self._grads_pooled(ctx, pool.pooled_grad_first(ctx["pool"], dy, ws), pool, ws)
            dy = pool.backward(ctx["pool"], dy, workspace=ws)[0]  # the two layers' backward, one after the other
            ctx = self._context(True, **{k: v for k, v in ctx.items() if k != "pool"})
        if ctx["first"] and not need_input_grad:
            dzt = last_axis_first(dy)
            if dzt.flags.c_contiguous:  # filters first from the pooling too (MaxPooling.backward)
                return None, self._grads_first(ctx, dzt, ws)
        dz2 = self._activation_backward(ctx, dy).reshape(-1, self.filters)
        grads = {}
        if self.use_bias:
            # a product with ones: dz2.sum(axis=0) over a tall (M, filters) array is 10-20x slower
            grads["bias"] = blas.dot(ws.take("conv.ones", (dz2.shape[0],), dz2.dtype, init=1), dz2)
        by_forward = need_input_grad and self._grad_by_forward()
        scatter = need_input_grad and not by_forward
        if ctx["cols"] is None:  # the forward pass ran in chunks
            dx = self._backward_chunks(ctx["src"], ctx["batch"], dz2, scatter, grads, ws)
        else:
            dx = self._backward_whole(ctx["cols"], ctx["batch"], dz2, scatter, grads, ws)
        if by_forward:
            dx = self._input_grad_by_forward(dz2.reshape((ctx["batch"],) + self.geometry.out + (self.filters,)), ws)
        return dx, grads

    def _grad_by_forward(self):
        """Whether ``backward`` computes the input gradient as a forward convolution
        (``_input_grad_by_forward``): an ungrouped layer with stride 1, at least
        ``GRAD_FORWARD_MIN_CHANNELS`` input channels (that convolution's filters: with fewer its
        product is too narrow, LeNet-5's 6 channels took 1.6x the time of the scatter, Conv3D's
        8 1.5x, 12 the same) and at most ``GRAD_FORWARD_MAX_GROWTH`` times as many filters (that
        convolution's input channels: its columns are ``K * filters`` wide, and 1-D layers build
        them whole; Conv1D 32 -> 128 took 1.2x the time, 16 -> 256 3x and 16x the memory)."""
        channels = self.input_shape[-1]
        return (self.groups == 1 and all(s == 1 for s in self.strides) and channels >= GRAD_FORWARD_MIN_CHANNELS
                and self.filters <= GRAD_FORWARD_MAX_GROWTH * channels)

    def _input_grad_by_forward(self, dz, ws):
        """The input gradient ``(N, *spatial, C)`` of a stride-1 ungrouped layer from its output
        gradient ``dz (N, *out, filters)``: a 'valid' convolution, run by the forward pass
        (``_output``: a 2-D or 3-D one in blocks where its columns are large), of ``dz`` padded by ``(k - 1) * d``
        less the forward pass's padding on each side, with the kernel flipped along every
        spatial axis and its channel axes swapped. Each input position gathers its gradient in
        one product (depth ``K * filters``) and is written once, channels last, where the
        scatters add ``K`` shifted parts into a padded buffer and copy it channels last.
        Backward of 3x3 'same' layers, one thread: 32 -> 64 channels on 14x14 (the
        ``ImageClassifier``'s second) 0.75x the input gradient's time, 32 -> 32 on 28x28
        0.63x, 64 -> 64 on 7x7 0.59x, Conv1D 64 -> 64 (``har_conv1d_b64``'s second) 0.59x,
        Conv3D 16 -> 32 on 8^3 0.75x."""
        twin = self._gradient_twin()
        padded = bordered(dz, twin._input_pads, ws, "conv.dz_padded", parallel_bytes=PARALLEL_BYTES)
        kernel = ws.take("conv.flipped_kernel", self.kernel_size + (self.filters, self.input_shape[-1]), dz.dtype)
        np.copyto(kernel, np.flip(self.params["kernel"], axis=tuple(range(self.rank))).swapaxes(-1, -2))
        return twin._output(padded, ws, kernel, None, None, keep=False)[0]

    def _gradient_twin(self):
        """The 'valid' convolution of ``_input_grad_by_forward``: a layer of this class planned
        (``_plan``) for the padded output gradient, without weights of its own (the flipped kernel
        is passed at each call), made again when this layer's input shape, dtype or block size
        changes. Its ``_input_pads`` are the output gradient's ``(before, after)`` padding per
        axis."""
        key = (self.input_shape, self.dtype, self._block_bytes)
        twin = self.__dict__.get("_twin")
        if twin is None or twin._twin_key != key:
            geo = self.geometry
            spans = [(k - 1) * d for k, d in zip(self.kernel_size, self.dilation_rate)]
            pads = tuple((span - b, span - a) for span, (b, a) in zip(spans, geo.pads))
            twin = type(self)(self.input_shape[-1], self.kernel_size, dilation_rate=self.dilation_rate,
                              use_bias=False, dtype=self.dtype, name=f"{self.name or type(self).__name__}/input_gradient")
            twin.chunk_bytes = self._block_bytes
            twin.input_shape = tuple(o + b + a for o, (b, a) in zip(geo.out, pads)) + (self.filters,)
            twin._plan(twin.input_shape)
            twin._input_pads, twin._twin_key = pads, key
            self._twin = twin
        return twin

    def _grads_first(self, ctx, dzt, ws):
        """Bias and kernel gradients from a contiguous ``(filters, N, *out)`` output gradient:
        ``dzt @ ones`` and ``cols @ dzt.T``, the columns rebuilt block by block for a chunked layer
        (the layer's input gradient is not asked for: ``backward`` handles that case)."""
        f = self.filters
        dz2t = dzt.reshape(f, -1)
        grads = {}
        if self.use_bias:
            grads["bias"] = blas.dot(dz2t, ws.take("conv.ones", (dz2t.shape[1],), dzt.dtype, init=1))
        kernel = self.params["kernel"]
        if ctx["cols"] is not None:
            grads["kernel"] = blas.dot(ctx["cols"], dz2t.T).reshape(kernel.shape)
            return grads
        src, n = ctx["src"], ctx["batch"]
        geo = self.geometry
        plan = self._block_plan(n, ws, self.input_shape[-1], dzt.dtype)
        grids = self._dzt_grids(len(plan), ws, dzt.dtype)  # (columns over the grid: the gradient too)

        def work(chunk):  # each thread: whole samples, its own partial sum
            dk = np.zeros((kernel.size // f, f), dzt.dtype)
            for (flat, samples), grid in chunk:
                for a, b, r0, r1, cols in self._blocks(src, flat, samples):
                    d = dzt[:, a:b, r0:r1]
                    if grid is not None:
                        g = grid.reshape(-1)[:f * cols.shape[1]]
                        np.copyto(self._grid_valid(g, True, b - a, r1 - r0), d)
                        d = g
                    dk += blas.dot(cols, d.reshape(f, -1).T)
            return dk
        partial = parallel.run(work, list(zip(plan, grids)), blas=True)
        grads["kernel"] = _sum_in_order(partial).reshape(kernel.shape)
        return grads

    def _dzt_grids(self, groups, ws, dtype):
        """One buffer per thread's group for a block's output gradient over the grid ``out_rows``,
        filters first, zero past each row's end (every borrower writes only the rows' output
        positions); ``None`` each for a layer without ``_grid_columns``. Its shape holds the
        grid's row length and its tag the output width, so that only layers with the same
        padding positions share it."""
        if not self._grid_columns:
            return [None] * groups
        geo = self.geometry
        shape = (self.filters * self._block_positions(self._chunk_samples, self._chunk_rows) // geo.out_rows[-1],
                 geo.out_rows[-1])
        return [ws.take(("conv.dzt_grid" + f".{g}", geo.out[-1]), shape, dtype, init="zeros") for g in range(groups)]

    def _pooled_blocks(self, pool):
        """``(rows, samples, scratch)`` for ``_forward_pooled`` and ``_grads_pooled``: the output
        rows and the samples of the largest block, and the elements of ``max_pool_pairs``'s
        scratch for it. Blocks of rows hold a multiple of the pooling's rows: ``_chunk_rows``
        rounded down (Conv3D 64^3's first layer gets 9 rows from 4 MB blocks, which no pair of
        rows would tile, and pools its blocks of 8)."""
        whole = self._chunk_samples > 1
        p0 = pool.pool_size[0]
        rows = self.geometry.out[0] if whole else self._chunk_rows - self._chunk_rows % p0
        samples = self._chunk_samples if whole else 1
        scratch = math.prod(pool.geometry.pair_rows_shape((self.filters, samples), rows // p0))
        return rows, samples, scratch

    def _grads_pooled(self, ctx, dyt, pool, ws):
        """``_grads_first`` after ``_forward_pooled``, from ``dyt``, the pooled output gradient
        filters first (``MaxPooling.pooled_grad_first``): each block's output gradient is taken
        back through the pooling's winners into a buffer of the block's size (over the grid
        ``out_rows`` where the columns are, whose extra positions stay zero) and goes straight
        into the kernel gradient's product with the block's columns, rebuilt as ``_grads_first``
        does; the bias gradient is the sum of ``dyt`` (each window's gradient goes to one
        winner)."""
        f, geo, pgeo = self.filters, self.geometry, pool.geometry
        p0, won = pool.pool_size[0], ctx["pool"]["won"]
        grads = {}
        if self.use_bias:
            dy2t = dyt.reshape(f, -1)
            grads["bias"] = blas.dot(dy2t, ws.take("conv.ones", (dy2t.shape[1],), dyt.dtype, init=1))
        kernel = self.params["kernel"]
        src, n = ctx["src"], ctx["batch"]
        plan = self._block_plan(n, ws, self.input_shape[-1], dyt.dtype)
        rows, samples, size = self._pooled_blocks(pool)
        blocks = self._dzt_grids(len(plan), ws, dyt.dtype) if self._grid_columns else \
            [ws.take("conv.dzblock" + f".{g}", (f * samples * rows * math.prod(geo.out[1:]),), dyt.dtype)
             for g in range(len(plan))]
        scratch = [ws.take("pool.pair_rows" + f".{g}", (size,), dyt.dtype) for g in range(len(plan))]

        def work(chunk):  # each thread: whole samples, its own partial sum
            dk = np.zeros((kernel.size // f, f), dyt.dtype)
            for (flat, group), block, rflat in chunk:
                for a, b, r0, r1, cols in self._blocks(src, flat, group, rows):
                    d = block.reshape(-1)[:f * cols.shape[1]]
                    view = self._grid_valid(d, True, b - a, r1 - r0) if self._grid_columns else \
                        d.reshape((f, b - a, r1 - r0) + geo.out[1:])
                    q0, q1 = r0 // p0, r1 // p0
                    shape = pgeo.pair_rows_shape((f, b - a), q1 - q0)
                    max_pool_pairs_adjoint(dyt[:, a:b, q0:q1], won[:, :, a:b, q0:q1], pgeo, view,
                                           rflat[:math.prod(shape)].reshape(shape))
                    dk += blas.dot(cols, d.reshape(f, -1).T)
            return dk
        partial = parallel.run(work, list(zip(plan, blocks, scratch)), blas=True)
        grads["kernel"] = _sum_in_order(partial).reshape(kernel.shape)
        return grads

    def _backward_whole(self, cols2, n, dz2, need_input_grad, grads, ws):
        geo = self.geometry
        kernel = self.params["kernel"]
        c = self.input_shape[-1]
        by_rows = self.groups == 1 and geo.flat_rows
        samples_last = self.groups == 1 and not by_rows and self._samples_last(n)
        dcols = (ws.take("conv.dcols", cols2.shape, cols2.dtype)
                 if need_input_grad and not by_rows and not samples_last else None)
        if self.groups == 1:
            grads["kernel"] = _columns_times(cols2, dz2).reshape(kernel.shape)
            dz = dz2.reshape((n,) + geo.out + (self.filters,))
            if samples_last and need_input_grad:
                dx = ws.take("conv.dx", (n,) + self.input_shape, dz2.dtype)
                return self._input_grad_samples_last(dz, dx, *self._samples_last_buffers(n, ws, dz2.dtype))
            if by_rows and need_input_grad:
                buffers = self._samples_scatter_buffers(n, ws, dz2.dtype)
                return self._channels_last(self._input_grad_by_rows(dz, self._kernel_groups(), *buffers), ws)
            if need_input_grad:
                blas.matmul(kernel.reshape(-1, self.filters), dz2.T, out=dcols)
        else:
            fg = self.filters // self.groups
            cg = c // self.groups
            dk = np.empty_like(kernel)
            for g in range(self.groups):
                dzg = dz2[:, g * fg:(g + 1) * fg]
                dk[..., g * fg:(g + 1) * fg] = blas.dot(self._group_rows(cols2, g), dzg).reshape(
                    kernel.shape[:-1] + (fg,))
                if need_input_grad:
                    kg = kernel[..., g * fg:(g + 1) * fg].reshape(-1, fg)
                    dcols.reshape(geo.size, c, -1)[:, g * cg:(g + 1) * cg] = (kg @ dzg.T).reshape(geo.size, cg, -1)
            grads["kernel"] = dk
        if not need_input_grad:
            return None
        dxt = ws.take("conv.dxt", (c, n) + geo.padded, dcols.dtype)
        col2im(dcols.reshape((geo.size, c, n) + geo.out), geo, dxt)
        return self._channels_last(dxt, ws)

    def _samples_last(self, n):
        """Whether the input gradient of blocks of ``n`` whole samples is scattered samples last
        (``_input_grad_samples_last``): a 2-D or 3-D layer whose output rows are shorter than
        ``SAMPLES_LAST_MAX_RUN`` (``col2im`` would add them one short run at a time), with
        stride 1 on the last axis and at least ``SAMPLES_LAST_MIN`` samples to lengthen the runs."""
        geo = self.geometry
        return (self.rank > 1 and n >= SAMPLES_LAST_MIN and geo.strides[-1] == 1
                and geo.out[-1] < SAMPLES_LAST_MAX_RUN)

    def _samples_last_buffers(self, n, ws, dtype, tag=""):
        """Flat workspace buffers for ``_input_grad_samples_last`` on up to ``n`` samples."""
        geo = self.geometry
        c, f, m = self.input_shape[-1], self.filters, n * math.prod(geo.out)
        return (ws.take("conv.dz_samples_last" + tag, (f * m,), dtype),
                ws.take("conv.dx_samples_last" + tag, (c * n * math.prod(geo.padded),), dtype),
                ws.take("conv.dcols_samples_last" + tag, (geo.size // geo.kernel[0] * c * m,), dtype))

    def _input_grad_samples_last(self, dz, dx, dzt, dxt, part):
        """The input gradient ``dx (n, *spatial, C)`` of ``n`` whole samples from their output
        gradient ``dz (n, *out, filters)``, with the samples on the last axis, in the front of the
        flat buffers of ``_samples_last_buffers``: ``dz`` is copied to ``dzt (filters, *out, n)``,
        each row of the kernel's first axis multiplies it into the column gradient of its
        offsets, ``part (K/kernel[0], C, *out, n)``, and each offset adds that into the padded
        ``dxt (C, *padded, n)`` in runs of ``out[-1] * n`` elements, where ``col2im`` adds runs of
        ``out[-1]``. Measured on one thread, backward of whole layers: LeNet-5's second conv
        (5x5 'same' on 14x14x6) 0.77x the time at 64 samples, 0.82x at 8; 3x3 'same' on 7x7x64
        0.75x; even to 1.2x slower at 2 samples, hence ``SAMPLES_LAST_MIN``."""
        geo = self.geometry
        c, f, n = self.input_shape[-1], self.filters, dz.shape[0]
        m = n * math.prod(geo.out)
        per_row = geo.size // geo.kernel[0]
        dzm = dzt[:f * m].reshape(f, m)
        np.copyto(dzm.reshape((f,) + geo.out + (n,)), dz.swapaxes(0, -1))
        dxt = dxt[:c * n * math.prod(geo.padded)].reshape((c,) + geo.padded + (n,))
        part = part[:per_row * c * m].reshape(per_row * c, m)
        dxt.fill(0)
        slices = geo.slices(1)
        for i, kernel_row in enumerate(self.params["kernel"].reshape(geo.kernel[0], -1, f)):
            d = blas.matmul(kernel_row, dzm, out=part).reshape((per_row, c) + geo.out + (n,))
            for r in range(per_row):
                dxt[slices[i * per_row + r]] += d[r]
        np.copyto(dx, dxt[geo.interior_with(1)].swapaxes(0, -1))
        return dx

    def _input_grad_by_rows(self, dz, kgroups, shifted, product, flat):
        """The padded input gradient ``(C, n, *padded)`` of ``n`` whole samples from their output
        gradient ``dz (n, *out, filters)``, scattered by whole rows (``_scatter_shifted``) into
        ``flat``, a few samples at a time (``_scatter_samples``; buffers: ``_scatter_buffers``;
        ``kgroups``: ``_kernel_groups``)."""
        geo = self.geometry
        c, n = self.input_shape[-1], dz.shape[0]
        flat.fill(0)
        views = rows_views(geo, flat, c, n)
        step = self._scatter_samples()
        for a in range(0, n, step):
            self._scatter_shifted(dz[a:a + step], kgroups, [v[:, a:a + step] for v in views], shifted, product)
        return flat[:c * n * math.prod(geo.padded)].reshape((c, n) + geo.padded)

    def _dz_grid(self, dz, dz_rows):
        """The output gradient ``dz (n, rows, *out[1:], filters)`` (whole samples, or a block of
        output rows of one) over the grid ``out_rows``, as an ``(m, filters)`` matrix: copied into
        the front of ``dz_rows`` (``(>= n, >= rows, *out_rows[1:], filters)``, zero past each
        row's end, kept so by every borrower)."""
        grid = dz_rows[:dz.shape[0], :dz.shape[1]]
        grid[..., :self.geometry.out[-1], :] = dz
        return grid.reshape(-1, self.filters)

    def _kernel_groups(self):
        """The kernel's slices for the offsets of the axes before the last, each with the last
        axis's offsets side by side: ``(K / kernel[-1], C, kernel[-1] * filters)``, for
        ``_scatter_shifted``."""
        k, c, f = self.geometry.kernel[-1], self.input_shape[-1], self.filters
        return self.params["kernel"].reshape((-1, k, c, f)).transpose(0, 2, 1, 3).reshape(-1, c, k * f)

    def _scatter_row_bytes(self):
        """Bytes of the shifted gradient and of one kernel slice's product (``_scatter_shifted``)
        per output row of the first spatial axis (a geometry with ``flat_rows``): what
        ``_grad_rows`` and ``_scatter_samples`` keep in twice the block size."""
        geo = self.geometry
        return ((geo.kernel[-1] * self.filters + self.input_shape[-1]) * math.prod(geo.out_rows[1:])
                * np.dtype(self.dtype).itemsize)

    def _scatter_samples(self):
        """Whole samples scattered at a time by ``_input_grad_by_rows``: as many as keep the
        shifted gradient and one kernel slice's product (``_scatter_shifted``) in twice the
        block size."""
        return max(1, 2 * self._block_bytes // (self._scatter_row_bytes() * self.geometry.out_rows[0]))

    def _samples_scatter_buffers(self, n, ws, dtype, tag=""):
        """``_scatter_buffers`` for ``_input_grad_by_rows`` on ``n`` whole samples."""
        planes = min(n, self._scatter_samples()) * math.prod(self.geometry.out[:-2])
        return self._scatter_buffers(n, planes, ws, dtype, tag)

    def _scatter_buffers(self, n, lead, ws, dtype, tag=""):
        """Flat workspace buffers for ``_scatter_shifted`` on ``lead`` output planes at a time
        (``lead`` as in ``shifted_rows``: whole samples' planes, or a block of rows of one) into
        the padded input gradient of ``n`` samples: the shifted output gradient, its product
        with as many of the kernel's slices as fit in twice the block size, and the padded
        gradient (``rows_views``). The blocks are sized (``_scatter_row_bytes``) as if the
        product held one slice: counting them all made the blocks smaller, and the backward
        pass 0.95-1.04x the time of one product per slice where these blocks gave 0.92-1.03x
        (512 KB blocks, one thread)."""
        geo = self.geometry
        c, f = self.input_shape[-1], self.filters
        run = lead * geo.out[-2] * geo.padded[-1]
        # as many of the kernel's slices in one product as keep its output in twice the block size
        # (a layer with many more channels than filters would otherwise take tens of MB)
        one = c * run * np.dtype(dtype).itemsize
        slices = max(1, min(geo.size // geo.kernel[-1], 2 * self._block_bytes // one))
        return (ws.take("conv.dz_shifted" + tag, (geo.kernel[-1] * f * run,), dtype),
                ws.take("conv.dx_shifted" + tag, (slices * c * run,), dtype),
                ws.take("conv.dx_rows" + tag, (c * n * math.prod(geo.padded),), dtype))

    def _scatter_shifted(self, dz, kgroups, views, shifted, product):
        """Add the input gradient of the output gradient ``dz (*lead, out[-2], out[-1],
        filters)`` (whole samples, or a block of rows of one) through ``views``, one per slice
        of ``kgroups`` (``rows_views``, cut to the planes of ``dz``: ``(C,
        *lead, run)``): the gradient shifted once per offset of the kernel's last
        axis (``shifted_rows``, in the front of the flat ``shifted``), multiplied by as many
        slices at once as the flat ``product`` holds (all of them, unless that would take more
        than twice the block size) and each slice's part added through its view. The product is
        ``kernel[-1]`` times as deep as one per offset and there is one add where there was one
        per offset: Conv3D 3x3x3's input gradient on 15^3x8 0.63x the time in a standalone
        test, on 31^3x8 in blocks of 8 rows 0.80x; the layers' backward 9.5 -> 7.1 ms and 41
        -> 34 ms in conv3d_32_b8 and conv3d_64_b4 (one thread). One product
        of all the slices rather than one per slice (a taller kernel matrix, which OpenBLAS runs
        faster): 0.68x the products' time on the default ImageClassifier's second layer; its
        backward 0.92-0.93x, Conv3D 'same' on 16^3x8 and conv3d_64_b4's second layer 0.92-0.97x,
        conv3d_32_b8's 1.00-1.03x (paired A/B, one thread)."""
        geo = self.geometry
        k = geo.kernel[-1]
        shape = (k, self.filters) + dz.shape[:-3] + (geo.out[-2] * geo.padded[-1],)
        z = shifted_rows(dz, geo, shifted[:math.prod(shape)].reshape(shape)).reshape(k * self.filters, -1)
        groups, c = kgroups.shape[:2]
        stacked = kgroups.reshape(groups * c, -1)
        m = z.shape[1]
        per = max(1, min(groups, product.size // (c * m)))  # slices a product (``_scatter_buffers``)
        for g0 in range(0, groups, per):
            g1 = min(g0 + per, groups)
            out = blas.matmul(stacked[g0 * c:g1 * c], z, out=product[:(g1 - g0) * c * m].reshape(-1, m))
            for view, part in zip(views[g0:g1], out.reshape(g1 - g0, c, -1)):
                view += part.reshape(view.shape)

    def _backward_chunks(self, src, n, dz2, need_input_grad, grads, ws):
        geo = self.geometry
        kernel = self.params["kernel"]
        kmat = kernel.reshape(-1, self.filters)
        c = self.input_shape[-1]
        dz = dz2.reshape((n,) + geo.out + (self.filters,))
        dxt = dx = None
        by_rows = need_input_grad and geo.flat_rows and self._chunk_rows == geo.out[0]
        # 3-D layers cut into blocks of rows scatter them by rows too (``rows_views`` with a
        # block): each thread into a padded buffer of its own samples, whose interior it then
        # copies channels last into dx (no channels-first dxt for the whole batch)
        block_rows = (need_input_grad and geo.flat_rows and not by_rows and self.rank == 3
                      and self._chunk_samples == 1)
        # blocks of several whole samples with short output rows: samples last, each thread
        # straight into its samples of dx
        samples_last = need_input_grad and not by_rows and self._samples_last(min(self._chunk_samples, n))
        if block_rows or samples_last:
            dx = ws.take("conv.dx", (n,) + self.input_shape, dz2.dtype)
        elif need_input_grad:
            dxt = ws.take("conv.dxt", (c, n) + geo.padded, dz2.dtype)
            if not by_rows:  # (by rows, every thread overwrites its samples)
                parallel.over_samples(lambda a, b: dxt[:, a:b].fill(0), n, PARALLEL_BYTES, dxt.nbytes)

        plan = self._block_plan(n, ws, c, dz2.dtype)
        # blocks of whole samples scatter their input gradient by whole rows, each thread into
        # buffers of its own, then copied into dxt;
        # blocks of rows, into a padded buffer of the thread's samples, in blocks of ``_grad_rows``
        samples = min(self._chunk_samples, n)
        rows_buffers = [self._samples_scatter_buffers(samples, ws, dz2.dtype, f".{g}") if by_rows else
                        self._scatter_buffers(len(group), self._grad_rows * math.prod(geo.out[1:-2]), ws, dz2.dtype,
                                              f".{g}") if block_rows else
                        self._samples_last_buffers(samples, ws, dz2.dtype, f".{g}") if samples_last else None
                        for g, (_, group) in enumerate(plan)]
        kgroups = self._kernel_groups() if by_rows or block_rows else None
        # the output gradient over the grid ``out_rows`` (``_dz_grid``), for the kernel gradient
        # over columns built on that grid (``_grid_columns``)
        grids = [ws.take(("conv.dz_grid" + f".{g}", geo.out[-1]),
                         (self._chunk_samples, self._chunk_rows) + geo.out_rows[1:] + (self.filters,), dz2.dtype,
                         init="zeros") if self._grid_columns else None
                 for g in range(len(plan))]

        def work(chunk):  # each thread: whole samples (their input gradients do not overlap), its own dk
            dk = np.zeros_like(kmat)
            for (flat, samples), buffers, grid in chunk:
                if block_rows:
                    buffers[2].fill(0)
                    views = rows_views(geo, buffers[2], c, len(samples))
                for a, b, r0, r1, cols in self._blocks(src, flat, samples):
                    dzc = dz[a:b, r0:r1].reshape(-1, self.filters)
                    dk += _columns_times(cols, dzc if grid is None else self._dz_grid(dz[a:b, r0:r1], grid))
                    if not need_input_grad or block_rows:  # (by rows: in blocks of their own below)
                        continue
                    if samples_last:
                        self._input_grad_samples_last(dz[a:b], dx[a:b], *buffers)
                        continue
                    if by_rows:  # whole samples
                        np.copyto(dxt[:, a:b], self._input_grad_by_rows(dz[a:b], kgroups, *buffers))
                        continue
                    dcols = blas.matmul(kmat, dzc.T)
                    if b - a > 1 or (r0, r1) == (0, geo.out[0]):  # whole samples: theirs alone
                        col2im(dcols.reshape((geo.size, -1, b - a) + geo.out), geo, dxt[:, a:b])
                    else:
                        col2im_block_add(dcols.reshape((geo.size, -1, r1 - r0) + geo.out[1:]), geo, a, r0, r1, dxt)
                if block_rows:
                    # in blocks of ``_grad_rows`` rows, after the thread's kernel-gradient blocks.
                    # By rows against col2im one row at a time (both in the columns' blocks, then
                    # 5 of 29 rows on Conv3D 64^3's second layer): its backward 8-17 % faster, the
                    # conv3d_64_b4 training step 7 % faster on one thread and 11 % on two
                    for i in samples:
                        for r0 in range(0, geo.out[0], self._grad_rows):
                            r1 = min(r0 + self._grad_rows, geo.out[0])
                            self._scatter_shifted(dz[i, r0:r1], kgroups, [v[:, i - samples[0], r0:r1] for v in views],
                                                  *buffers[:2])
                    a, b = samples[0], samples[-1] + 1
                    padded = buffers[2][:c * (b - a) * math.prod(geo.padded)].reshape((c, b - a) + geo.padded)
                    np.copyto(dx[a:b], first_axis_last(padded[geo.interior_with(2)]))
            return dk
        partial = parallel.run(work, list(zip(plan, rows_buffers, grids)), blas=True)
        grads["kernel"] = _sum_in_order(partial).reshape(kernel.shape)
        return dx if dxt is None else self._channels_last(dxt, ws)

    def _channels_last(self, dxt, ws):
        """The interior of ``(C, N, *padded)`` as a new ``(N, *spatial, C)`` array."""
        inner = dxt[self.geometry.interior_with(2)]
        dx = ws.take("conv.dx", (inner.shape[1],) + inner.shape[2:] + (inner.shape[0],), dxt.dtype)
        parallel.over_samples(lambda a, b: np.copyto(dx[a:b], first_axis_last(inner[:, a:b])), dx.shape[0],
                              PARALLEL_BYTES, dx.nbytes)
        return dx

    # ------------------------------------------------------------- config
    def get_config(self):
        cfg = super().get_config()
        cfg.update({
            "filters": self.filters, "kernel_size": list(self.kernel_size), "strides": list(self.strides),
            "padding": self.padding, "dilation_rate": list(self.dilation_rate), "groups": self.groups,
            "activation": self.activation.serialize(),
        })
        cfg.update(self._kernel_config())
        return cfg


class Conv1D(Conv):
    """1-D convolution over ``(N, steps, channels)``; padding may also be 'causal'."""
    rank = 1


class Conv2D(Conv):
    """2-D convolution over ``(N, height, width, channels)``."""
    rank = 2


class Conv3D(Conv):
    """3-D convolution over ``(N, depth, height, width, channels)``."""
    rank = 3


__all__ = ["Conv", "Conv1D", "Conv2D", "Conv3D"]

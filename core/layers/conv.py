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
filters)`` with ``M = N * prod(out)``. Putting the offsets first makes each of
the ``K`` copies write one contiguous block: with channels last in ``cols``
(``(N, *out, K, C_in)``), a layer with few input channels wrote a few bytes
per cache line in each of the ``K`` passes over the whole buffer, which cost
10-30x more than the copy itself on 3-D inputs.

A layer whose column matrix would exceed ``chunk_threshold`` (8 MB: the first
layers of 3-D networks) builds it one sample and a few output rows at a time
instead, in a buffer of about ``chunk_bytes`` (2 MB) that stays in the CPU
cache, multiplies each block at once, and rebuilds the blocks in the backward
pass rather than keeping the whole matrix: 2-3x faster there, and the memory
of the matrix is saved.

The backward pass is two more products (kernel gradient ``cols @ dz``, column
gradient ``kernel @ dz.T``, written into the ``cols`` buffer, whose content is
no longer needed) and the scatter-add of the column gradient back through the
same ``K`` slices into a channels-first buffer (col2im), transposed to
channels last at the end.
"""
import itertools
import math

import numpy as np

from ..exceptions import ConfigError, InputError, ShapeError
from ..utils import as_tuple, axis_geometry, block_slice, check_padding, row_blocks, window_slices
from .base import ActivationMixin, KernelMixin, Layer


class BufferCache:
    """Reusable scratch arrays, keyed by a name; reallocated only when the
    requested shape or dtype changes (for example a smaller last batch)."""

    def __init__(self):
        self._arrays = {}

    def get(self, key, shape, dtype, zero_fill=False, fill=None):
        """The array ``key``; a new one is empty, or filled with zeros or ``fill``."""
        arr = self._arrays.get(key)
        if arr is None or arr.shape != shape or arr.dtype != dtype:
            arr = np.zeros(shape, dtype) if zero_fill else np.empty(shape, dtype)
            if fill is not None:
                arr.fill(fill)
            self._arrays[key] = arr
        return arr

    def clear(self):
        self._arrays.clear()


class Conv(ActivationMixin, KernelMixin, Layer):
    """N-d convolution over channels-last input; see the module docstring."""

    rank = None
    #: a column matrix larger than this is built in chunks of about ``chunk_bytes``
    #: (one sample, a few output rows at a time), which stay in the CPU cache
    chunk_threshold = 8 << 20
    chunk_bytes = 2 << 20

    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format=None, dilation_rate=1,
                 groups=1, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None, **kwargs):
        super().__init__(**kwargs)
        if data_format not in (None, "channels_last"):
            raise ConfigError(f"{type(self).__name__}: only data_format='channels_last' is supported, got {data_format!r}")
        if not isinstance(filters, (int, np.integer)) or filters < 1:
            raise ConfigError(f"{type(self).__name__}: filters must be a positive int, got {filters!r}")
        self.filters = int(filters)
        self.kernel_size = as_tuple(kernel_size, self.rank, "kernel_size")
        self.strides = as_tuple(strides, self.rank, "strides")
        self.dilation_rate = as_tuple(dilation_rate, self.rank, "dilation_rate")
        allowed = ("valid", "same", "causal") if self.rank == 1 else ("valid", "same")
        self.padding = check_padding(padding, allowed)
        self.groups = int(groups)
        if self.groups < 1 or self.filters % self.groups:
            raise ConfigError(f"{type(self).__name__}: filters ({self.filters}) must be a multiple of groups ({groups})")
        self._init_activation(activation)
        self._init_kernel(use_bias, kernel_initializer, bias_initializer, kernel_regularizer, bias_regularizer)
        self._buffers = BufferCache()

    # ------------------------------------------------------------------ build
    def _geometry(self, input_shape):
        spatial = input_shape[:-1]
        geo = [axis_geometry(n, k, s, d, self.padding)
               for n, k, s, d in zip(spatial, self.kernel_size, self.strides, self.dilation_rate)]
        return geo

    def _build(self, input_shape):
        if len(input_shape) != self.rank + 1:
            raise ShapeError(f"layer {self.name!r} ({type(self).__name__}) expects input of shape "
                             f"(batch, {', '.join(['steps'] if self.rank == 1 else ['d%d' % i for i in range(self.rank)])}, channels), "
                             f"found (batch, {', '.join(map(str, input_shape))})")
        channels = input_shape[-1]
        if channels % self.groups:
            raise ConfigError(f"layer {self.name!r}: input channels ({channels}) must be a multiple of groups ({self.groups})")
        geo = self._geometry(input_shape)
        for axis, ((before, after, out), n, k, d) in enumerate(zip(geo, input_shape[:-1], self.kernel_size, self.dilation_rate)):
            if out < 1:
                span = (k - 1) * d + 1
                raise InputError(
                    f"layer {self.name!r} ({type(self).__name__}): on spatial axis {axis} the kernel spans {span} "
                    f"(kernel_size {k}, dilation {d}) but the padded input has only {n + before + after} elements "
                    f"(input {n}, padding {self.padding!r}); use a smaller kernel, padding='same' or a larger input")
        self._pads = tuple((b, a) for b, a, _ in geo)
        self._out = tuple(o for _, _, o in geo)
        self._padded = tuple(n + b + a for n, (b, a) in zip(input_shape[:-1], self._pads))
        # channels-first buffers (C, N, *spatial): the interior, and one slice per kernel offset
        self._interior = (slice(None), slice(None)) + tuple(
            slice(b, b + n) for n, (b, _) in zip(input_shape[:-1], self._pads))
        self._needs_pad = any(b or a for b, a in self._pads)
        offsets = list(itertools.product(*[range(k) for k in self.kernel_size]))
        self._slices = [(slice(None), slice(None)) + window_slices(o, self.strides, self.dilation_rate, self._out)
                        for o in offsets]
        # for chunked im2col: each offset's first-axis position and its slices of the other axes
        self._chunk_slices = [(o[0], window_slices(o[1:], self.strides[1:], self.dilation_rate[1:], self._out[1:]))
                              for o in offsets]
        row_bytes = len(offsets) * channels * math.prod(self._out[1:]) * np.dtype(self.dtype).itemsize
        self._chunk_rows = max(1, self.chunk_bytes // max(row_bytes, 1))
        self.add_weight("kernel", self.kernel_size + (channels // self.groups, self.filters), self.kernel_initializer)
        if self.use_bias:
            self.add_weight("bias", (self.filters,), self.bias_initializer)
        self._buffers.clear()

    def compute_output_shape(self, input_shape):
        geo = self._geometry(tuple(input_shape))
        return tuple(o for _, _, o in geo) + (self.filters,)

    # ------------------------------------------------------------- im2col
    def _channels_first(self, x, tag):
        """``(N, *spatial, C)`` -> ``(C, N, *padded)``, zero border (a view when there is nothing to do)."""
        if not self._needs_pad and x.shape[-1] == 1:
            return np.moveaxis(x, -1, 0)
        xt = self._buffers.get("input" + tag, (x.shape[-1], x.shape[0]) + self._padded, x.dtype, zero_fill=True)
        xt[self._interior] = np.moveaxis(x, -1, 0)  # the border is zero from allocation and never written
        return xt

    def _im2col(self, x, tag):
        """``(N, *spatial, C)`` -> the buffer ``(K*C, M)``: rows (offset, channel), columns (sample, *out)."""
        xt = self._channels_first(x, tag)
        c, n = xt.shape[:2]
        cols = self._buffers.get("cols" + tag, (len(self._slices), c, n) + self._out, x.dtype)
        for k, sl in enumerate(self._slices):
            cols[k] = xt[sl]
        return cols.reshape(len(self._slices) * c, -1)

    def _col2im(self, dcols):
        """Adjoint of ``_im2col``: ``(K*C, M)`` -> ``(N, *spatial, C)``."""
        c, n = self.input_shape[-1], self._batch
        dcols = dcols.reshape((len(self._slices), c, n) + self._out)
        dxt = np.zeros((c, n) + self._padded, dcols.dtype)
        non_overlapping = all(s >= (k - 1) * d + 1 for s, k, d in zip(self.strides, self.kernel_size, self.dilation_rate))
        for k, sl in enumerate(self._slices):
            if non_overlapping:
                dxt[sl] = dcols[k]
            else:
                dxt[sl] += dcols[k]
        return np.ascontiguousarray(np.moveaxis(dxt[self._interior], 0, -1))

    def _group_rows(self, cols2, g):
        """Rows of group ``g`` from the ``(K*C, M)`` column matrix, as ``(K*C/groups, M)``."""
        c = self.input_shape[-1]
        cg = c // self.groups
        return cols2.reshape(len(self._slices), c, -1)[:, g * cg:(g + 1) * cg].reshape(-1, cols2.shape[1])

    # ------------------------------------------------------------ forward
    def _use_chunks(self, x):
        """Chunk when the whole column matrix would be large (and for 2-D/3-D, ungrouped layers)."""
        if self.groups != 1 or self.rank == 1:
            return False
        size = len(self._slices) * x.shape[-1] * x.shape[0] * math.prod(self._out) * x.dtype.itemsize
        return size > self.chunk_threshold

    def _chunk_cols(self, xt):
        """Yield ``(sample, row0, row1, cols)`` for blocks of output rows (first spatial axis) of one
        sample; ``cols`` is the ``(K*C, rows * prod(out[1:]))`` column matrix of that block, in a
        small reused buffer (rebuilt on every call: the backward pass calls this again)."""
        c, n = xt.shape[:2]
        s0, d0 = self.strides[0], self.dilation_rate[0]
        for i, r0, r1 in row_blocks(n, self._out[0], self._chunk_rows):
            cols = self._buffers.get(f"chunk{r1 - r0}", (len(self._slices), c, r1 - r0) + self._out[1:], xt.dtype)
            for k, (o0, rest) in enumerate(self._chunk_slices):
                cols[k] = xt[(slice(None), i, block_slice(r0, r1, o0, s0, d0)) + rest]
            yield i, r0, r1, cols.reshape(len(self._slices) * c, -1)

    def _forward_chunks(self, x, training):
        xt = self._channels_first(x, "train" if training else "infer")
        z = np.empty((x.shape[0],) + self._out + (self.filters,), x.dtype)
        kmat = self.params["kernel"].reshape(-1, self.filters)
        for i, r0, r1, cols in self._chunk_cols(xt):
            np.matmul(cols.T, kmat, out=z[i, r0:r1].reshape(-1, self.filters))
        if self.use_bias:
            z += self.params["bias"]
        if training:
            self._xt, self._cols, self._batch = xt, None, x.shape[0]
        return self._activate(z, owned=True)

    def _backward_chunks(self, dz, need_input_grad):
        kernel = self.params["kernel"]
        kmat = kernel.reshape(-1, self.filters)
        dk = np.zeros_like(kmat)
        dxt = np.zeros_like(self._xt) if need_input_grad else None
        s0, d0 = self.strides[0], self.dilation_rate[0]
        for i, r0, r1, cols in self._chunk_cols(self._xt):
            dzc = dz[i, r0:r1].reshape(-1, self.filters)
            dk += cols @ dzc
            if need_input_grad:
                dcols = (kmat @ dzc.T).reshape((len(self._slices), -1, r1 - r0) + self._out[1:])
                for k, (o0, rest) in enumerate(self._chunk_slices):
                    dxt[(slice(None), i, block_slice(r0, r1, o0, s0, d0)) + rest] += dcols[k]
        self.grads["kernel"] = dk.reshape(kernel.shape)
        if not need_input_grad:
            return None
        return np.ascontiguousarray(np.moveaxis(dxt[self._interior], 0, -1))

    def forward(self, x, training=False):
        if self._use_chunks(x):
            return self._forward_chunks(x, training)
        n = x.shape[0]
        cols2 = self._im2col(x, "train" if training else "infer")
        m = cols2.shape[1]
        kernel = self.params["kernel"]
        if self.groups == 1:
            z = cols2.T @ kernel.reshape(-1, self.filters)
        else:
            fg = self.filters // self.groups
            z = np.empty((m, self.filters), x.dtype)
            for g in range(self.groups):
                z[:, g * fg:(g + 1) * fg] = self._group_rows(cols2, g).T @ kernel[..., g * fg:(g + 1) * fg].reshape(-1, fg)
        if self.use_bias:
            z += self.params["bias"]
        if training:
            self._cols = cols2
            self._batch = n
        return self._activate(z.reshape((n,) + self._out + (self.filters,)), owned=True)

    def backward(self, grad, need_input_grad=True, pre_activation=False):
        dz = self._activation_backward(grad, pre_activation)
        cols2 = self._cols
        if cols2 is None:  # the forward pass ran in chunks
            if self.use_bias:
                dz2 = dz.reshape(-1, self.filters)
                self.grads["bias"] = self._buffers.get("ones", (dz2.shape[0],), dz2.dtype, fill=1) @ dz2
            return self._backward_chunks(dz, need_input_grad)
        dz2 = dz.reshape(cols2.shape[1], self.filters)
        kernel = self.params["kernel"]
        if self.use_bias:
            # a product with ones: dz2.sum(axis=0) over a tall (M, filters) array is 10-20x slower
            self.grads["bias"] = self._buffers.get("ones", (dz2.shape[0],), dz2.dtype, fill=1) @ dz2
        if self.groups == 1:
            self.grads["kernel"] = (cols2 @ dz2).reshape(kernel.shape)
            if not need_input_grad:
                return None
            # the columns are not needed any more: their buffer takes the column gradient
            dcols = np.matmul(kernel.reshape(-1, self.filters), dz2.T, out=cols2)
        else:
            fg = self.filters // self.groups
            dk = np.empty_like(kernel)
            dcols = np.empty_like(cols2) if need_input_grad else None
            kc = len(self._slices)
            for g in range(self.groups):
                kg = kernel[..., g * fg:(g + 1) * fg].reshape(-1, fg)
                dzg = dz2[:, g * fg:(g + 1) * fg]
                dk[..., g * fg:(g + 1) * fg] = (self._group_rows(cols2, g) @ dzg).reshape(kernel.shape[:-1] + (fg,))
                if need_input_grad:
                    cg = kg.shape[0] // kc
                    dcols.reshape(kc, -1, cols2.shape[1])[:, g * cg:(g + 1) * cg] = (kg @ dzg.T).reshape(kc, cg, -1)
            self.grads["kernel"] = dk
            if not need_input_grad:
                return None
        return self._col2im(dcols)

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


__all__ = ["Conv", "Conv1D", "Conv2D", "Conv3D", "BufferCache"]

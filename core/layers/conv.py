"""One N-dimensional convolution; ``Conv1D``, ``Conv2D`` and ``Conv3D`` fix its rank.

Shapes (channels last, as in Keras):

- input ``(N, *spatial, C_in)``; kernel ``(*kernel_size, C_in // groups, filters)``;
  bias ``(filters,)``; output ``(N, *out, filters)``.

How it computes (im2col): every kernel offset ``k`` (``K = prod(kernel_size)``
of them) selects, with one strided slice of the padded input, the input
element each output position sees under that offset. Those ``K`` slices are
copied into one preallocated buffer ``cols`` of shape ``(N, *out, K, C_in)``,
reused from call to call, and the whole layer is then one matrix product
``cols (M, K*C_in) @ kernel (K*C_in, filters)`` with ``M = N * prod(out)``.
The backward pass is two more products (kernel gradient ``cols.T @ dz``,
column gradient ``dz @ kernel.T``) and the scatter-add of the column gradient
back through the same ``K`` slices (col2im).
"""
import itertools
import math

import numpy as np

from ..exceptions import ConfigError, InputError, ShapeError
from ..utils import as_tuple, axis_geometry, check_padding, window_slices
from .base import ActivationMixin, KernelMixin, Layer


class BufferCache:
    """Reusable scratch arrays, keyed by a name; reallocated only when the
    requested shape or dtype changes (for example a smaller last batch)."""

    def __init__(self):
        self._arrays = {}

    def get(self, key, shape, dtype, zero_fill=False):
        arr = self._arrays.get(key)
        if arr is None or arr.shape != shape or arr.dtype != dtype:
            arr = np.zeros(shape, dtype) if zero_fill else np.empty(shape, dtype)
            self._arrays[key] = arr
        return arr

    def clear(self):
        self._arrays.clear()


class Conv(ActivationMixin, KernelMixin, Layer):
    """N-d convolution over channels-last input; see the module docstring."""

    rank = None

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
        self._interior = (slice(None),) + tuple(slice(b, b + n) for n, (b, _) in zip(input_shape[:-1], self._pads))
        self._needs_pad = any(b or a for b, a in self._pads)
        offsets = itertools.product(*[range(k) for k in self.kernel_size])
        self._slices = [(slice(None),) + window_slices(o, self.strides, self.dilation_rate, self._out)
                        for o in offsets]
        self.add_weight("kernel", self.kernel_size + (channels // self.groups, self.filters), self.kernel_initializer)
        if self.use_bias:
            self.add_weight("bias", (self.filters,), self.bias_initializer)
        self._buffers.clear()

    def compute_output_shape(self, input_shape):
        geo = self._geometry(tuple(input_shape))
        return tuple(o for _, _, o in geo) + (self.filters,)

    # ------------------------------------------------------------- im2col
    def _padded_input(self, x, tag):
        if not self._needs_pad:
            return x
        xp = self._buffers.get("pad" + tag, (x.shape[0],) + self._padded + (x.shape[-1],), x.dtype, zero_fill=True)
        xp[self._interior] = x  # the border is zero from allocation and never written
        return xp

    def _im2col(self, x, tag):
        """``(N, *spatial, C)`` -> view of the buffer ``(N, *out, K, C)``."""
        n, c = x.shape[0], x.shape[-1]
        xp = self._padded_input(x, tag)
        cols = self._buffers.get("cols" + tag, (n,) + self._out + (len(self._slices), c), x.dtype)
        for k, sl in enumerate(self._slices):
            cols[..., k, :] = xp[sl]
        return cols

    def _col2im(self, dcols):
        """Adjoint of ``_im2col``: ``(N, *out, K, C)`` -> ``(N, *spatial, C)``."""
        n, c = dcols.shape[0], dcols.shape[-1]
        dxp = np.zeros((n,) + self._padded + (c,), dcols.dtype)
        non_overlapping = all(s >= (k - 1) * d + 1 for s, k, d in zip(self.strides, self.kernel_size, self.dilation_rate))
        for k, sl in enumerate(self._slices):
            if non_overlapping:
                dxp[sl] = dcols[..., k, :]
            else:
                dxp[sl] += dcols[..., k, :]
        return dxp[self._interior] if self._needs_pad else dxp

    def _group_view(self, mat2d, g):
        """Columns of group ``g`` from a ``(M, K*C)`` matrix, as ``(M, K*C/groups)``."""
        m = mat2d.shape[0]
        c = self.input_shape[-1]
        cg = c // self.groups
        return mat2d.reshape(m, -1, c)[:, :, g * cg:(g + 1) * cg].reshape(m, -1)

    # ------------------------------------------------------------ forward
    def forward(self, x, training=False):
        n = x.shape[0]
        tag = "train" if training else "infer"
        cols = self._im2col(x, tag)
        m = n * math.prod(self._out)
        cols2 = cols.reshape(m, -1)
        kernel = self.params["kernel"]
        if self.groups == 1:
            z = cols2 @ kernel.reshape(-1, self.filters)
        else:
            fg = self.filters // self.groups
            z = np.empty((m, self.filters), x.dtype)
            for g in range(self.groups):
                z[:, g * fg:(g + 1) * fg] = self._group_view(cols2, g) @ kernel[..., g * fg:(g + 1) * fg].reshape(-1, fg)
        if self.use_bias:
            z += self.params["bias"]
        if training:
            self._cols = cols2
            self._batch = n
        return self._activate(z.reshape((n,) + self._out + (self.filters,)))

    def backward(self, grad, need_input_grad=True, pre_activation=False):
        dz = self._activation_backward(grad, pre_activation)
        cols2 = self._cols
        m = cols2.shape[0]
        dz2 = dz.reshape(m, self.filters)
        kernel = self.params["kernel"]
        if self.use_bias:
            self.grads["bias"] = dz2.sum(axis=0)
        if self.groups == 1:
            kmat = kernel.reshape(-1, self.filters)
            self.grads["kernel"] = (cols2.T @ dz2).reshape(kernel.shape)
            if not need_input_grad:
                return None
            dcols = dz2 @ kmat.T
        else:
            fg = self.filters // self.groups
            c = self.input_shape[-1]
            cg = c // self.groups
            dk = np.empty_like(kernel)
            dcols = np.empty((m, len(self._slices), c), dz.dtype) if need_input_grad else None
            for g in range(self.groups):
                kg = kernel[..., g * fg:(g + 1) * fg].reshape(-1, fg)
                dzg = dz2[:, g * fg:(g + 1) * fg]
                dk[..., g * fg:(g + 1) * fg] = (self._group_view(cols2, g).T @ dzg).reshape(kernel.shape[:-1] + (fg,))
                if need_input_grad:
                    dcols[:, :, g * cg:(g + 1) * cg] = (dzg @ kg.T).reshape(m, -1, cg)
            self.grads["kernel"] = dk
            if not need_input_grad:
                return None
        n = self._batch
        return self._col2im(dcols.reshape((n,) + self._out + (len(self._slices), self.input_shape[-1])))

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

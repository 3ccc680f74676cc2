"""Max and average pooling in 1, 2 and 3 dimensions, and their global forms.

Shapes: input ``(N, *spatial, C)``, output ``(N, *out, C)``; global pooling
gives ``(N, C)`` (or ``(N, 1.., C)`` with ``keepdims=True``).

Windows are read with one strided slice per window offset and combined with
``np.maximum`` / ``+`` (much faster than reshaping into windows). In training,
max pooling then records, per offset, the windows whose maximum sits at that
offset (a boolean mask per offset, from ``==`` against the maximum), so its
gradient goes to exactly one input per window, the first maximum when
several are equal, like Keras.
"""
import itertools
import math

import numpy as np

from ..exceptions import ConfigError, InputError, ShapeError
from ..utils import as_tuple, axis_geometry, block_slice, check_padding, row_blocks, window_slices
from .base import Layer


class Pooling(Layer):
    rank = None
    mode = None  # "max" or "average"
    #: inputs larger than this are pooled in blocks of about ``block_bytes`` (max pooling)
    block_threshold = 8 << 20
    block_bytes = 2 << 20

    def __init__(self, pool_size=2, strides=None, padding="valid", data_format=None, **kwargs):
        super().__init__(**kwargs)
        if data_format not in (None, "channels_last"):
            raise ConfigError(f"{type(self).__name__}: only data_format='channels_last' is supported")
        self.pool_size = as_tuple(pool_size, self.rank, "pool_size")
        self.strides = as_tuple(strides if strides is not None else self.pool_size, self.rank, "strides")
        self.padding = check_padding(padding)

    def _geometry(self, input_shape):
        return [axis_geometry(n, k, s, 1, self.padding)
                for n, k, s in zip(input_shape[:-1], self.pool_size, self.strides)]

    def _build(self, input_shape):
        if len(input_shape) != self.rank + 1:
            raise ShapeError(f"layer {self.name!r} ({type(self).__name__}) expects input of rank {self.rank + 2} "
                             f"(batch, {self.rank} spatial axes, channels), found (batch, {', '.join(map(str, input_shape))})")
        geo = self._geometry(input_shape)
        for axis, ((b, a, out), n, k) in enumerate(zip(geo, input_shape[:-1], self.pool_size)):
            if out < 1:
                raise InputError(f"layer {self.name!r} ({type(self).__name__}): pool_size {k} on spatial axis {axis} "
                                 f"is larger than the input ({n}); use padding='same' or a smaller pool")
        self._pads = tuple((b, a) for b, a, _ in geo)
        self._out = tuple(o for _, _, o in geo)
        self._needs_pad = any(b or a for b, a in self._pads)
        self._padded = tuple(n + b + a for n, (b, a) in zip(input_shape[:-1], self._pads))
        self._interior = (slice(None),) + tuple(slice(b, b + n) for n, (b, _) in zip(input_shape[:-1], self._pads))
        self._slices = [(slice(None),) + window_slices(o, self.strides, (1,) * self.rank, self._out)
                        for o in itertools.product(*[range(k) for k in self.pool_size])]
        self._overlap = any(s < k for s, k in zip(self.strides, self.pool_size))
        # large inputs are pooled one sample and a few output rows at a time (cache-sized blocks)
        offsets = list(itertools.product(*[range(k) for k in self.pool_size]))
        self._block_slices = [(o[0], window_slices(o[1:], self.strides[1:], (1,) * (self.rank - 1), self._out[1:]))
                              for o in offsets]
        row_bytes = self.strides[0] * math.prod(self._padded[1:]) * input_shape[-1] * np.dtype(self.dtype).itemsize
        self._block_rows = max(1, self.block_bytes // max(row_bytes, 1))
        # windows side by side covering the whole (padded) input: backward writes every element once
        self._tiles = (self.strides == self.pool_size
                       and all(o * s == n for o, s, n in zip(self._out, self.strides, self._padded)))
        if self.mode == "average":
            if self._needs_pad:  # divide by the number of real (unpadded) elements in each window
                ones = np.zeros((1,) + self._padded + (1,), self.dtype)
                ones[self._interior] = 1
                self._count = sum(ones[sl] for sl in self._slices)
                self._scale = (1.0 / self._count).astype(self.dtype)
            else:
                self._scale = np.asarray(1.0 / len(self._slices), self.dtype)

    def compute_output_shape(self, input_shape):
        return tuple(o for _, _, o in self._geometry(tuple(input_shape))) + (input_shape[-1],)

    def _pad(self, x, fill):
        if not self._needs_pad:
            return x
        xp = np.full((x.shape[0],) + self._padded + (x.shape[-1],), fill, x.dtype)
        xp[self._interior] = x
        return xp

    def _unpad(self, dxp):
        return dxp[self._interior] if self._needs_pad else dxp

    def get_config(self):
        cfg = super().get_config()
        cfg.update({"pool_size": list(self.pool_size), "strides": list(self.strides), "padding": self.padding})
        return cfg


class MaxPooling(Pooling):
    mode = "max"

    def forward(self, x, training=False):
        xp = self._pad(x, -np.inf)
        out = np.empty((x.shape[0],) + self._out + (x.shape[-1],), x.dtype)
        won = np.empty((len(self._slices),) + out.shape, bool) if training else None
        if x.nbytes > self.block_threshold:
            s0 = self.strides[0]
            for i, r0, r1 in row_blocks(x.shape[0], self._out[0], self._block_rows):
                slices = [(i, block_slice(r0, r1, o0, s0)) + rest for o0, rest in self._block_slices]
                self._pool_block(xp, slices, out[i, r0:r1], None if won is None else won[:, i, r0:r1])
        else:
            self._pool_block(xp, self._slices, out, won)
        if training:
            self._won = won
            self._xshape = xp.shape
        return out

    @staticmethod
    def _pool_block(xp, slices, out, won):
        """Max over the window offsets ``slices`` of ``xp`` into ``out``; with ``won``,
        also ``won[k]``: the windows whose gradient goes to offset k, the first offset
        equal to the maximum."""
        np.copyto(out, xp[slices[0]])
        for sl in slices[1:]:
            np.maximum(out, xp[sl], out=out)
        if won is not None:
            free = np.ones(out.shape, bool)
            for k, sl in enumerate(slices):
                np.equal(xp[sl], out, out=won[k])
                won[k] &= free
                free ^= won[k]  # won[k] lies inside free: this removes it

    def backward(self, grad, need_input_grad=True):
        if not need_input_grad:
            return None
        dxp = (np.empty if self._tiles else np.zeros)(self._xshape, grad.dtype)
        for won, sl in zip(self._won, self._slices):
            if self._overlap:
                dxp[sl] += grad * won
            else:
                np.multiply(grad, won, out=dxp[sl])
        return self._unpad(dxp)


class AveragePooling(Pooling):
    mode = "average"

    def forward(self, x, training=False):
        xp = self._pad(x, 0)
        out = xp[self._slices[0]].copy()
        for sl in self._slices[1:]:
            out += xp[sl]
        out *= self._scale
        if training:
            self._xshape = xp.shape
        return out

    def backward(self, grad, need_input_grad=True):
        if not need_input_grad:
            return None
        g = grad * self._scale
        dxp = np.zeros(self._xshape, grad.dtype)
        for sl in self._slices:
            if self._overlap:
                dxp[sl] += g
            else:
                dxp[sl] = g
        return self._unpad(dxp)


class GlobalPooling(Layer):
    rank = None

    def __init__(self, data_format=None, keepdims=False, **kwargs):
        super().__init__(**kwargs)
        if data_format not in (None, "channels_last"):
            raise ConfigError(f"{type(self).__name__}: only data_format='channels_last' is supported")
        self.keepdims = bool(keepdims)

    def _build(self, input_shape):
        if len(input_shape) != self.rank + 1:
            raise ShapeError(f"layer {self.name!r} ({type(self).__name__}) expects input of rank {self.rank + 2}, "
                             f"found (batch, {', '.join(map(str, input_shape))})")

    def compute_output_shape(self, input_shape):
        return (1,) * self.rank + (input_shape[-1],) if self.keepdims else (input_shape[-1],)

    def get_config(self):
        cfg = super().get_config()
        cfg["keepdims"] = self.keepdims
        return cfg


class GlobalAveragePooling(GlobalPooling):
    def forward(self, x, training=False):
        self._xshape = x.shape
        return x.mean(axis=tuple(range(1, self.rank + 1)), keepdims=self.keepdims, dtype=x.dtype)

    def backward(self, grad, need_input_grad=True):
        if not need_input_grad:
            return None
        n, c = grad.shape[0], grad.shape[-1]
        size = math.prod(self._xshape[1:-1])
        g = (grad.reshape((n,) + (1,) * self.rank + (c,)) / grad.dtype.type(size))
        return np.broadcast_to(g, self._xshape).copy()


class GlobalMaxPooling(GlobalPooling):
    def forward(self, x, training=False):
        n, c = x.shape[0], x.shape[-1]
        flat = x.reshape(n, -1, c)
        idx = flat.argmax(axis=1)  # first maximum per (sample, channel)
        out = np.take_along_axis(flat, idx[:, None, :], axis=1)[:, 0, :]
        if training:
            self._idx, self._xshape = idx, x.shape
        return out.reshape((n,) + self.compute_output_shape(x.shape[1:]))

    def backward(self, grad, need_input_grad=True):
        if not need_input_grad:
            return None
        n, c = self._xshape[0], self._xshape[-1]
        d = np.zeros((n, math.prod(self._xshape[1:-1]), c), grad.dtype)
        np.put_along_axis(d, self._idx[:, None, :], grad.reshape(n, 1, c), axis=1)
        return d.reshape(self._xshape)


def _make(base, rank, name, doc):
    return type(name, (base,), {"rank": rank, "__doc__": doc})


MaxPooling1D = _make(MaxPooling, 1, "MaxPooling1D", "Max over windows of ``pool_size`` steps: ``(N, steps, C)``.")
MaxPooling2D = _make(MaxPooling, 2, "MaxPooling2D", "Max over ``pool_size`` windows of ``(N, H, W, C)``.")
MaxPooling3D = _make(MaxPooling, 3, "MaxPooling3D", "Max over ``pool_size`` windows of ``(N, D, H, W, C)``.")
AveragePooling1D = _make(AveragePooling, 1, "AveragePooling1D", "Mean over windows of ``(N, steps, C)``; "
                         "with padding='same' padded positions are not counted.")
AveragePooling2D = _make(AveragePooling, 2, "AveragePooling2D", "Mean over windows of ``(N, H, W, C)``.")
AveragePooling3D = _make(AveragePooling, 3, "AveragePooling3D", "Mean over windows of ``(N, D, H, W, C)``.")
GlobalAveragePooling1D = _make(GlobalAveragePooling, 1, "GlobalAveragePooling1D", "``(N, steps, C) -> (N, C)`` mean.")
GlobalAveragePooling2D = _make(GlobalAveragePooling, 2, "GlobalAveragePooling2D", "``(N, H, W, C) -> (N, C)`` mean.")
GlobalAveragePooling3D = _make(GlobalAveragePooling, 3, "GlobalAveragePooling3D", "``(N, D, H, W, C) -> (N, C)`` mean.")
GlobalMaxPooling1D = _make(GlobalMaxPooling, 1, "GlobalMaxPooling1D", "``(N, steps, C) -> (N, C)`` max.")
GlobalMaxPooling2D = _make(GlobalMaxPooling, 2, "GlobalMaxPooling2D", "``(N, H, W, C) -> (N, C)`` max.")
GlobalMaxPooling3D = _make(GlobalMaxPooling, 3, "GlobalMaxPooling3D", "``(N, D, H, W, C) -> (N, C)`` max.")

"""Max and average pooling in 1, 2 and 3 dimensions, and their global forms.

Shapes: input ``(N, *spatial, C)``, output ``(N, *out, C)``; global pooling
gives ``(N, C)`` (or ``(N, 1.., C)`` with ``keepdims=True``).

Windows are read with one strided slice per window offset (the geometry and
kernels of ``core/layers/windows.py``, shared with convolution) and combined
with ``np.maximum`` / ``+`` (much faster than reshaping into windows). In training,
max pooling then records, per offset, the windows whose maximum sits at that
offset (a boolean mask per offset, from ``==`` against the maximum), so its
gradient goes to exactly one input per window, the first maximum when
several are equal, like Keras.
"""
import math

import numpy as np

from .. import parallel
from ..exceptions import ConfigError, InputError, ShapeError
from ..utils import as_tuple, check_padding
from .base import Layer
from .windows import (WindowGeometry, bordered, filters_first_view, first_axis_last, first_epilogue, last_axis_first,
                      max_pool, max_pool_adjoint, max_pool_pairs, max_pool_pairs_adjoint, row_blocks, sum_pool,
                      sum_pool_adjoint)


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

    def _window_geometry(self, input_shape):
        return WindowGeometry(input_shape[:-1], self.pool_size, self.strides, (1,) * self.rank, self.padding)

    def _build(self, input_shape, rng):
        if len(input_shape) != self.rank + 1:
            raise ShapeError(f"layer {self.name!r} ({type(self).__name__}) expects input of rank {self.rank + 2} "
                             f"(batch, {self.rank} spatial axes, channels), found (batch, {', '.join(map(str, input_shape))})")
        geo = self._window_geometry(input_shape)
        axis = geo.first_empty_axis
        if axis is not None:
            raise InputError(f"layer {self.name!r} ({type(self).__name__}): pool_size {self.pool_size[axis]} on "
                             f"spatial axis {axis} is larger than the input ({input_shape[axis]}); use "
                             f"padding='same' or a smaller pool")
        self.geometry = geo
        # large inputs are pooled one sample and a few output rows at a time (cache-sized blocks)
        row_bytes = self.strides[0] * math.prod(geo.padded[1:]) * input_shape[-1] * np.dtype(self.dtype).itemsize
        self._block_rows = geo.row_block(row_bytes, self.block_bytes)
        if self.mode == "average":
            if geo.needs_pad:  # divide by the number of real (unpadded) elements in each window
                ones = np.zeros((1,) + geo.padded + (1,), self.dtype)
                ones[geo.interior_with(1)] = 1
                self._scale = (1.0 / sum(ones[sl] for sl in geo.slices(1))).astype(self.dtype)
            else:
                self._scale = np.asarray(1.0 / geo.size, self.dtype)

    def compute_output_shape(self, input_shape):
        return self._window_geometry(tuple(input_shape)).out + (input_shape[-1],)

    def _pad(self, x, fill, ws):
        geo = self.geometry
        if not geo.needs_pad:
            return x
        return bordered(x, geo.pads, ws, "pool.pad", fill)

    def _unpad(self, dxp):
        return dxp[self.geometry.interior_with(1)] if self.geometry.needs_pad else dxp

    def get_config(self):
        cfg = super().get_config()
        cfg.update({"pool_size": list(self.pool_size), "strides": list(self.strides), "padding": self.padding})
        return cfg


class MaxPooling(Pooling):
    mode = "max"

    def forward(self, x, training=False, rng=None, *, context=None, workspace=None, after=None, fused=False):
        """``after``: an activation of the layer before (a ReLU the model moved here, see
        ``Sequential.run_forward``) applied to the pooled output in place; ``backward``
        applies its derivative first. ``fused``: the convolution before already pooled its
        output for this layer (``Conv.forward(pool=...)``): ``x`` is passed on, and so is the
        gradient in ``backward``."""
        keep = self._keep(training, context)
        if fused:
            return x, self._context(keep, fused=True)
        ws = self._workspace(workspace)
        geo = self.geometry
        xt = None if geo.needs_pad else filters_first_view(x)
        if xt is not None:  # laid out filters first
            return self.forward_first(xt, ws, keep, after)
        xp = self._pad(x, -np.inf, ws)
        out = ws.take("pool.out", (x.shape[0],) + geo.out + (x.shape[-1],), x.dtype)
        won = ws.take("pool.won", (geo.size,) + out.shape, bool) if keep else None
        if x.nbytes > self.block_threshold:
            def blocks(a, b):  # samples a:b, in blocks of whole samples or of a few rows of one
                for s, r0, r1 in row_blocks(a, b, geo.out[0], self._block_rows):
                    max_pool(xp, geo.block_slices((s,), r0, r1), out[s, r0:r1],
                             None if won is None else won[:, s, r0:r1])
            parallel.over_samples(blocks, x.shape[0])
        else:
            max_pool(xp, geo.slices(1), out, won)
        if after is not None:
            after.forward(out, out=out)
        return out, self._context(keep, won=won, xshape=xp.shape, after=after, a=out, first=False)

    def forward_first(self, xt, ws, keep, after, bias=None):
        """``forward`` of an input laid out filters first (``xt``, contiguous ``(C, N, *spatial)``:
        a convolution's output under ``Sequential``'s ``filters_first``, or ``Conv.infer_then_pool``):
        the windows are read along rows of the last spatial axis, ``bias`` (a ``(C,)`` vector that
        commutes with the maximum; inference only) and ``after`` run on the pooled ``(C, N,
        *out)``, and only that is copied to a channels-last output. ``backward`` returns the
        input gradient in the same layout. Conv3D 32^3 or LeNet-5's first convolution with its
        pooling: 12-19 % faster in training than channels last (paired A/B, one thread)."""
        geo = self.geometry
        pooled = ws.take("pool.out_first", xt.shape[:2] + geo.out, xt.dtype)
        if geo.pairs:  # windows two wide on the last axis: by pairs, whole rows at a time
            won = ws.take("pool.won_pairs", (len(geo.pair_slices(2)),) + geo.pair_rows_shape(xt.shape[:2]), bool) \
                if keep else None
            for s, inputs, outputs, at, rows in self._pair_blocks(xt.shape[:2], xt.dtype, ws):
                max_pool_pairs(xt[:, s, inputs], geo, pooled[:, s, outputs],
                               None if won is None else won[:, :, s, at], rows)
        else:
            won = ws.take("pool.won_first", (geo.size,) + pooled.shape, bool) if keep else None
            if xt.nbytes > self.block_threshold:  # a sample and a few output rows at a time, as forward
                for s, r0, r1 in row_blocks(0, xt.shape[1], geo.out[0], self._block_rows):
                    max_pool(xt, geo.block_slices((slice(None), s), r0, r1), pooled[:, s, r0:r1],
                             None if won is None else won[:, :, s, r0:r1])
            else:
                max_pool(xt, geo.slices(2), pooled, won)
        first_epilogue(pooled, bias, after)
        out = ws.take("pool.out", (xt.shape[1],) + geo.out + (xt.shape[0],), xt.dtype)
        np.copyto(out, first_axis_last(pooled))
        return out, self._context(keep, won=won, xshape=xt.shape, after=after, a=pooled, first=True)

    def backward(self, ctx, dy, need_input_grad=True, *, workspace=None):
        ctx = self._require_context(ctx)
        if not need_input_grad:
            return None, {}
        if ctx.get("fused"):
            return dy, {}
        if ctx["first"]:
            return self._backward_first(ctx, dy, self._workspace(workspace)), {}
        if ctx["after"] is not None:
            dy = ctx["after"].backward(None, ctx["a"], dy)
        dxp = self._workspace(workspace).take("pool.dx", ctx["xshape"], dy.dtype)
        won, geo = ctx["won"], self.geometry
        parallel.over_samples(lambda a, b: max_pool_adjoint(dy[a:b], won[:, a:b], geo.slices(1), geo, dxp[a:b]),
                              dy.shape[0], self.block_threshold, dxp.nbytes)
        return self._unpad(dxp), {}

    def _backward_first(self, ctx, dy, ws):
        """``backward`` after ``forward_first``: the gradient moved filters first (the pooled
        size), the activation's derivative there, and the windows' gradients scattered into a
        contiguous ``(C, N, *spatial)``, returned as its ``(N, *spatial, C)`` view."""
        geo = self.geometry
        dyt = self.pooled_grad_first(ctx, dy, ws)
        dxt = ws.take("pool.dx_first", ctx["xshape"], dy.dtype)
        if geo.pairs:
            won = ctx["won"]
            for s, inputs, outputs, at, rows in self._pair_blocks(dxt.shape[:2], dxt.dtype, ws):
                max_pool_pairs_adjoint(dyt[:, s, outputs], won[:, :, s, at], geo, dxt[:, s, inputs], rows)
        else:
            max_pool_adjoint(dyt, ctx["won"], geo.slices(2), geo, dxt)
        return first_axis_last(dxt)

    def pooled_grad_first(self, ctx, dy, ws):
        """The output gradient ``dy (N, *out, C)`` of a filters-first forward (``forward_first``),
        moved filters first ``(C, N, *out)``, with the derivative of ``after`` applied."""
        dyt = ws.take("pool.dy_first", ctx["a"].shape, dy.dtype)
        np.copyto(dyt, last_axis_first(dy))
        if ctx["after"] is not None:
            dyt = ctx["after"].backward(None, ctx["a"], dyt)
        return dyt

    def _pair_blocks(self, lead, dtype, ws):
        """``(samples, inputs, outputs, at, rows)`` for max pooling by pairs of a filters-first
        input with leading axes ``lead`` ``(C, N)``: the slices of the first spatial axis of a
        block's input, of its output, and of the winners and ``rows`` (the output's rows, but in
        1-D, where that axis is the last, the input's), and ``rows`` scratch of the block's shape.
        The whole input at once where it is at most ``block_threshold`` bytes, else blocks of
        whole samples or of a few output rows of one."""
        geo = self.geometry
        rows, k0 = geo.out[0], geo.kernel[0]
        if math.prod(lead) * math.prod(geo.padded) * np.dtype(dtype).itemsize <= self.block_threshold:
            whole = slice(None)
            yield whole, whole, whole, whole, ws.take("pool.pair_rows", geo.pair_rows_shape(lead), dtype)
            return
        most = geo.pair_rows_shape((lead[0], 1), min(lead[1] * rows, self._block_rows))  # (as one sample)
        flat = ws.take("pool.pair_rows", (math.prod(most),), dtype)
        for s, r0, r1 in row_blocks(0, lead[1], rows, self._block_rows):
            block = geo.pair_rows_shape((lead[0], s.stop - s.start), r1 - r0)
            inputs, outputs = slice(r0 * k0, r1 * k0), slice(r0, r1)
            yield s, inputs, outputs, inputs if self.rank == 1 else outputs, flat[:math.prod(block)].reshape(block)


class AveragePooling(Pooling):
    mode = "average"

    def forward(self, x, training=False, rng=None, *, context=None, workspace=None):
        ws = self._workspace(workspace)
        geo = self.geometry
        xp = self._pad(x, 0, ws)
        out = sum_pool(xp, geo.slices(1), ws.take("pool.out", (x.shape[0],) + geo.out + (x.shape[-1],), x.dtype))
        out *= self._scale
        return out, self._context(self._keep(training, context), xshape=xp.shape)

    def backward(self, ctx, dy, need_input_grad=True, *, workspace=None):
        ctx = self._require_context(ctx)
        if not need_input_grad:
            return None, {}
        dxp = self._workspace(workspace).take("pool.dx", ctx["xshape"], dy.dtype)
        return self._unpad(sum_pool_adjoint(dy * self._scale, self.geometry.slices(1), self.geometry, dxp)), {}


class GlobalPooling(Layer):
    rank = None

    def __init__(self, data_format=None, keepdims=False, **kwargs):
        super().__init__(**kwargs)
        if data_format not in (None, "channels_last"):
            raise ConfigError(f"{type(self).__name__}: only data_format='channels_last' is supported")
        self.keepdims = bool(keepdims)

    def _build(self, input_shape, rng):
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
    def forward(self, x, training=False, rng=None, *, context=None, workspace=None):
        out = x.mean(axis=tuple(range(1, self.rank + 1)), keepdims=self.keepdims, dtype=x.dtype)
        return out, self._context(self._keep(training, context), xshape=x.shape)

    def backward(self, ctx, dy, need_input_grad=True, *, workspace=None):
        ctx = self._require_context(ctx)
        if not need_input_grad:
            return None, {}
        xshape = ctx["xshape"]
        n, c = dy.shape[0], dy.shape[-1]
        g = dy.reshape((n,) + (1,) * self.rank + (c,)) / dy.dtype.type(math.prod(xshape[1:-1]))
        dx = self._workspace(workspace).take("gpool.dx", xshape, dy.dtype)
        np.copyto(dx, g)
        return dx, {}


class GlobalMaxPooling(GlobalPooling):
    def forward(self, x, training=False, rng=None, *, context=None, workspace=None):
        n, c = x.shape[0], x.shape[-1]
        flat = x.reshape(n, -1, c)
        idx = flat.argmax(axis=1)  # first maximum per (sample, channel)
        out = np.take_along_axis(flat, idx[:, None, :], axis=1)[:, 0, :]
        return (out.reshape((n,) + self.compute_output_shape(x.shape[1:])),
                self._context(self._keep(training, context), idx=idx, xshape=x.shape))

    def backward(self, ctx, dy, need_input_grad=True, *, workspace=None):
        ctx = self._require_context(ctx)
        if not need_input_grad:
            return None, {}
        xshape = ctx["xshape"]
        n, c = xshape[0], xshape[-1]
        d = self._workspace(workspace).take("gpool.dx", (n, math.prod(xshape[1:-1]), c), dy.dtype)
        d.fill(0)
        np.put_along_axis(d, ctx["idx"][:, None, :], dy.reshape(n, 1, c), axis=1)
        return d.reshape(xshape), {}


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

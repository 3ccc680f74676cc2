"""Batch normalization over the last (channel) axis, with Keras 3 defaults.

Weights, in Keras order: ``gamma (C,)``, ``beta (C,)``, ``moving_mean (C,)``,
``moving_variance (C,)``; the last two are state, not trained. In training the
batch mean and (biased) variance over every axis but the last normalize the
input and update the moving statistics:
``moving = moving * momentum + batch * (1 - momentum)``. At inference the
moving statistics are used.

In training, an input laid out filters first under a channels-last view (the output
of a convolution that ``Sequential`` runs filters first before a max pooling:
``Sequential._convolutions_filters_first``) is normalized in that layout, each
channel one contiguous run, and the output and the input gradient keep it, so the
pooling after it reads long rows and the convolution before it takes its kernel
gradient from it directly (``_FiltersFirst``).
"""
import math

import numpy as np

from .. import blas, initializers, parallel
from ..exceptions import ConfigError
from ..registry import serialize
from ..utils import channel_dots, channel_tiling, plane_dots
from .base import Layer
from .windows import filters_first_view, first_axis_last, last_axis_first


class BatchNormalization(Layer):
    non_trainable = ("moving_mean", "moving_variance")

    def __init__(self, axis=-1, momentum=0.99, epsilon=1e-3, center=True, scale=True,
                 beta_initializer="zeros", gamma_initializer="ones", moving_mean_initializer="zeros",
                 moving_variance_initializer="ones", **kwargs):
        super().__init__(**kwargs)
        if axis not in (-1,):
            raise ConfigError(f"BatchNormalization: only axis=-1 (channels last) is supported, got {axis!r}")
        self.axis = axis
        self.momentum, self.epsilon = float(momentum), float(epsilon)
        self.center, self.scale = bool(center), bool(scale)
        self.beta_initializer = initializers.get(beta_initializer)
        self.gamma_initializer = initializers.get(gamma_initializer)
        self.moving_mean_initializer = initializers.get(moving_mean_initializer)
        self.moving_variance_initializer = initializers.get(moving_variance_initializer)

    def _build(self, input_shape, rng):
        c = (input_shape[-1],)
        if self.scale:
            self.add_weight("gamma", c, self.gamma_initializer, rng)
        if self.center:
            self.add_weight("beta", c, self.beta_initializer, rng)
        self.add_weight("moving_mean", c, self.moving_mean_initializer, rng)
        self.add_weight("moving_variance", c, self.moving_variance_initializer, rng)

    def _affine(self):
        c = self.input_shape[-1]
        gamma = self.params["gamma"] if self.scale else np.ones(c, self.dtype)
        beta = self.params["beta"] if self.center else np.zeros(c, self.dtype)
        return gamma, beta

    def forward(self, x, training=False, rng=None, *, context=None, workspace=None):
        keep = self._keep(training, context)
        ws = self._workspace(workspace)
        gamma, beta = self._affine()
        if training and self.trainable:  # a frozen layer normalizes with its moving statistics, as in Keras
            xt = filters_first_view(x)
            if xt is None:
                lay = _ChannelsLast(x.shape)
            else:
                x, lay = xt, _FiltersFirst(xt.shape)
            # when the batch is split into shards run by separate threads (``core.parallel``),
            # the sums are over the whole batch: each shard adds its part (``allreduce``)
            total = x.dtype.type(_batch_rows(lay.rows, lay.samples))
            mean = parallel.allreduce(lay.sums(x, ws)) / total
            # the centered input is what the backward pass needs (xhat = xc * inv_std, with
            # inv_std applied to the per-channel factors instead of to every element)
            xc = ws.take("bn.xc", x.shape, x.dtype)
            np.subtract(lay.flat(x), lay.vec(mean), out=lay.flat(xc))
            var = parallel.allreduce(lay.dots(xc, xc)) / total
            inv_std = (1.0 / np.sqrt(var + self.epsilon)).astype(x.dtype)
            if parallel.is_first_shard():  # the statistics are the batch's, the same in every shard
                m_ = x.dtype.type(self.momentum)
                p = self.params  # state, not a trained weight: the forward pass of training updates it
                p["moving_mean"] = p["moving_mean"] * m_ + mean * (1 - m_)
                p["moving_variance"] = p["moving_variance"] * m_ + var * (1 - m_)
            y = ws.take("bn.y", x.shape, x.dtype)
            np.multiply(lay.flat(xc), lay.vec(gamma * inv_std), out=lay.flat(y))
            lay.flat(y)[...] += lay.vec(beta)
            return lay.out(y), self._context(keep, xc=xc, inv_std=inv_std, batch_stats=True, first=xt is not None)
        inv_std = (1.0 / np.sqrt(self.params["moving_variance"] + self.epsilon)).astype(x.dtype)
        scale = gamma * inv_std
        rows, tile = channel_tiling(x.shape)  # per-channel operations over rows of positions
        y = ws.take("bn.y", x.shape, x.dtype)
        np.multiply(x.reshape(rows), tile(scale), out=y.reshape(rows))
        y.reshape(rows)[...] += tile(beta - self.params["moving_mean"] * scale)
        if not keep:
            return y, None
        xc = x - self.params["moving_mean"]
        return y, self._context(keep, xc=xc, inv_std=inv_std, batch_stats=False)

    def backward(self, ctx, dy, need_input_grad=True, *, workspace=None):
        ctx = self._require_context(ctx)
        ws = self._workspace(workspace)
        gamma, _ = self._affine()
        xc, inv_std = ctx["xc"], ctx["inv_std"]
        if ctx.get("first"):  # the forward pass ran filters first (see the module docstring)
            dyt = last_axis_first(dy)
            if not dyt.flags.c_contiguous:  # (a gradient that came back channels last)
                buf = ws.take("bn.dy_first", dyt.shape, dy.dtype)
                np.copyto(buf, dyt)
                dyt = buf
            dy, lay = dyt, _FiltersFirst(dyt.shape)
        else:
            lay = _ChannelsLast(dy.shape)
        grads = {}
        if ctx["batch_stats"] or (self.trainable and (self.scale or self.center)):
            # the sums of dy * xhat and of dy (in dy's dtype, which the context's may exceed)
            dgamma = (lay.dots(dy, xc) * inv_std).astype(dy.dtype, copy=False)
            dbeta = lay.sums(dy, ws)
            if self.trainable and self.scale:
                grads["gamma"] = dgamma
            if self.trainable and self.center:
                grads["beta"] = dbeta
        if not need_input_grad:
            return None, grads
        k = gamma * inv_std
        dx = ws.take("bn.dx", dy.shape, dy.dtype)
        flat = lay.flat(dx)
        if not ctx["batch_stats"]:
            np.multiply(lay.flat(dy), lay.vec(k), out=flat)
            return lay.out(dx), grads
        m = dy.dtype.type(_batch_rows(lay.rows, lay.samples))
        # the means over the whole batch (a sharded batch adds the parts of every shard; the
        # gradients returned stay this shard's part, which the model adds up)
        sums = parallel.allreduce(np.concatenate([dgamma, dbeta]))
        dgamma_all, dbeta_all = sums[:lay.c], sums[lay.c:]
        # dx = gamma * inv_std * (dy - mean(dy) - xhat * mean(dy * xhat)), xhat = xc * inv_std:
        # one operation into dx, then three in place (an operation writing to another array
        # than it reads took 1.5-2x as long as one in place on 12.8 MB)
        np.multiply(lay.flat(xc), lay.vec(inv_std * (dgamma_all / m)), out=flat)
        np.subtract(lay.flat(dy), flat, out=flat)
        flat -= lay.vec(dbeta_all / m)
        flat *= lay.vec(k)
        return lay.out(dx), grads

    def get_config(self):
        cfg = super().get_config()
        cfg.update({"axis": self.axis, "momentum": self.momentum, "epsilon": self.epsilon, "center": self.center,
                    "scale": self.scale, "beta_initializer": serialize(self.beta_initializer),
                    "gamma_initializer": serialize(self.gamma_initializer),
                    "moving_mean_initializer": serialize(self.moving_mean_initializer),
                    "moving_variance_initializer": serialize(self.moving_variance_initializer)})
        return cfg


def _batch_rows(rows, samples):
    """Rows (samples times positions) of the whole batch, given this pass's ``rows`` of
    ``samples`` samples: more when the pass is one shard of a batch."""
    shard = parallel.shard_rows()
    if shard is None:
        return rows
    start, stop, total = shard
    return rows // samples * total


class _ChannelsLast:
    """Batch normalization's per-channel sums and operations on a contiguous channels-last
    ``(N, *spatial, C)`` array: the sums as products with ones (NumPy's reductions over the
    leading axes of a (rows, few channels) array run several times slower than BLAS here)
    and ``channel_dots``, which needs no array of products; the element-wise operations over
    ``channel_tiling``'s rows of positions, with the per-channel vectors tiled to match."""

    def __init__(self, shape):
        self.c, self.rows, self.samples = shape[-1], math.prod(shape[:-1]), shape[0]
        self.shape, self.tile = channel_tiling(shape)

    def sums(self, a, ws):
        return blas.dot(ws.take("bn.ones", (self.rows,), a.dtype, init=1), a.reshape(-1, self.c))

    dots = staticmethod(channel_dots)

    def flat(self, a):  # (reshaping a non-contiguous array copies it: for reading only)
        return a.reshape(self.shape)

    def vec(self, v):
        return self.tile(v)

    def out(self, a):
        return a


class _FiltersFirst:
    """The same on a contiguous filters-first ``(C, N, *spatial)`` array, each channel one run:
    the sums are one matrix-vector product with ones and ``plane_dots``, the per-channel
    vectors broadcast along the runs, and results go back as the channels-last view. On the
    default ``ScanClassifier`` network's first block (8 channels on 32^3, batch 8, one
    thread) batch norm, ReLU and pooling, forward and backward, took 17.5-18.3 ms against
    21.7-23.0 ms channels last."""

    def __init__(self, shape):
        self.c, self.rows, self.samples = shape[0], math.prod(shape[1:]), shape[1]

    def sums(self, a, ws):
        return blas.dot(a.reshape(self.c, -1), ws.take("bn.ones", (self.rows,), a.dtype, init=1))

    dots = staticmethod(plane_dots)

    def flat(self, a):  # (as above)
        return a.reshape(self.c, -1)

    def vec(self, v):
        return v[:, None]

    def out(self, a):
        return first_axis_last(a)

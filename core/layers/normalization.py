"""Batch normalization over the last (channel) axis, with Keras 3 defaults.

Weights, in Keras order: ``gamma (C,)``, ``beta (C,)``, ``moving_mean (C,)``,
``moving_variance (C,)``; the last two are state, not trained. In training the
batch mean and (biased) variance over every axis but the last normalize the
input and update the moving statistics:
``moving = moving * momentum + batch * (1 - momentum)``. At inference the
moving statistics are used.
"""
import numpy as np

from .. import blas, initializers, parallel
from ..exceptions import ConfigError
from ..registry import serialize
from ..utils import channel_dots, channel_tiling
from .base import Layer


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
            x2 = x.reshape(-1, x.shape[-1])
            m = x2.shape[0]
            # the mean as a product with ones: NumPy's reductions over the leading axes of a
            # (rows, few channels) array run several times slower than BLAS here; the variance
            # with ``channel_dots``, which needs no array of squares;
            # when the batch is split into shards run by separate threads (``core.parallel``),
            # the sums are over the whole batch: each shard adds its part (``allreduce``)
            ones = ws.take("bn.ones", (m,), x.dtype, init=1)
            total = x.dtype.type(_batch_rows(m, x.shape[0]))
            mean = parallel.allreduce(blas.dot(ones, x2)) / total
            rows, tile = channel_tiling(x.shape)  # per-channel operations over rows of positions
            # the centered input is what the backward pass needs (xhat = xc * inv_std, with
            # inv_std applied to the per-channel factors instead of to every element)
            xc = ws.take("bn.xc", x.shape, x.dtype)
            np.subtract(x.reshape(rows), tile(mean), out=xc.reshape(rows))
            var = parallel.allreduce(channel_dots(xc, xc)) / total
            inv_std = (1.0 / np.sqrt(var + self.epsilon)).astype(x.dtype)
            if parallel.is_first_shard():  # the statistics are the batch's, the same in every shard
                m_ = x.dtype.type(self.momentum)
                p = self.params  # state, not a trained weight: the forward pass of training updates it
                p["moving_mean"] = p["moving_mean"] * m_ + mean * (1 - m_)
                p["moving_variance"] = p["moving_variance"] * m_ + var * (1 - m_)
            y = ws.take("bn.y", x.shape, x.dtype)
            np.multiply(xc.reshape(rows), tile(gamma * inv_std), out=y.reshape(rows))
            y.reshape(rows)[...] += tile(beta)
            return y, self._context(keep, xc=xc, inv_std=inv_std, batch_stats=True)
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
        c = dy.shape[-1]
        xc, inv_std = ctx["xc"], ctx["inv_std"]
        grads = {}
        if ctx["batch_stats"] or (self.trainable and (self.scale or self.center)):
            # the sums of dy * xhat and of dy (in dy's dtype, which the context's may exceed)
            dgamma = (channel_dots(dy, xc) * inv_std).astype(dy.dtype, copy=False)
            dbeta = blas.dot(ws.take("bn.ones", (dy.size // c,), dy.dtype, init=1), dy.reshape(-1, c))
            if self.trainable and self.scale:
                grads["gamma"] = dgamma
            if self.trainable and self.center:
                grads["beta"] = dbeta
        if not need_input_grad:
            return None, grads
        k = gamma * inv_std
        rows, tile = channel_tiling(dy.shape)
        dx = ws.take("bn.dx", dy.shape, dy.dtype)
        if not ctx["batch_stats"]:
            np.multiply(dy.reshape(rows), tile(k), out=dx.reshape(rows))
            return dx, grads
        m = dy.dtype.type(_batch_rows(dy.size // c, dy.shape[0]))
        # the means over the whole batch (a sharded batch adds the parts of every shard; the
        # gradients returned stay this shard's part, which the model adds up)
        sums = parallel.allreduce(np.concatenate([dgamma, dbeta]))
        dgamma_all, dbeta_all = sums[:c], sums[c:]
        # dx = gamma * inv_std * (dy - mean(dy) - xhat * mean(dy * xhat)), xhat = xc * inv_std:
        # one operation into dx, then three in place (an operation writing to another array
        # than it reads took 1.5-2x as long as one in place on 12.8 MB)
        flat = dx.reshape(rows)
        np.multiply(xc.reshape(rows), tile(inv_std * (dgamma_all / m)), out=flat)
        np.subtract(dy.reshape(rows), flat, out=flat)
        flat -= tile(dbeta_all / m)
        flat *= tile(k)
        return dx, grads

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

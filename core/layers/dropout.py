"""Inverted dropout: during training each element is zeroed with probability
``rate`` and the survivors are scaled by ``1 / (1 - rate)``; at inference the
layer is the identity. The mask is drawn from the generator the caller passes
to ``forward`` (``Sequential`` derives it from the model seed, the layer and
the optimizer step, so a resumed run draws the masks an uninterrupted one
would)."""
import numpy as np

from .. import parallel
from ..exceptions import ConfigError
from .base import Layer


class Dropout(Layer):
    stochastic = True

    def __init__(self, rate, noise_shape=None, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        try:
            rate = float(rate)
        except (TypeError, ValueError):
            raise ConfigError(f"Dropout: rate must be a number in [0, 1), got {rate!r}") from None
        if not 0.0 <= rate < 1.0:
            raise ConfigError(f"Dropout: rate must be in [0, 1), got {rate!r}")
        self.rate = rate
        self.noise_shape = tuple(noise_shape) if noise_shape is not None else None

    def forward(self, x, training=False, rng=None, *, context=None, workspace=None):
        keep = self._keep(training, context)
        if not training or self.rate == 0.0:
            return x, self._context(keep, mask=None)
        rng = self._require_rng(rng)
        shape = x.shape if self.noise_shape is None else tuple(
            x.shape[i] if d is None else d for i, d in enumerate(self.noise_shape))
        shard = parallel.shard_rows()
        if shard is not None and (self.noise_shape is None or self.noise_shape[0] is None):
            # one shard of a batch split over threads: draw the whole batch's mask, keep our
            # rows, so the masks do not depend on how the batch was split
            start, stop, total = shard
            mask = rng.random((total,) + shape[1:], dtype=np.float32)[start:stop] >= self.rate
        else:
            mask = rng.random(shape, dtype=np.float32) >= self.rate  # True: kept
        scale = x.dtype.type(1.0 / (1.0 - self.rate))
        out = x * mask
        out *= scale
        return out, self._context(keep, mask=mask, scale=scale)

    def backward(self, ctx, dy, need_input_grad=True, *, workspace=None):
        ctx = self._require_context(ctx)
        if not need_input_grad:
            return None, {}
        if ctx["mask"] is None:
            return dy, {}
        g = dy * ctx["mask"]
        g *= ctx["scale"]
        return g, {}

    def get_config(self):
        cfg = super().get_config()
        cfg["rate"] = self.rate
        if self.noise_shape is not None:
            cfg["noise_shape"] = list(self.noise_shape)
        return cfg

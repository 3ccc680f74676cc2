"""Inverted dropout: during training each element is zeroed with probability
``rate`` and the survivors are scaled by ``1 / (1 - rate)``; at inference the
layer is the identity. The mask is drawn from the generator the caller passes
to ``forward`` (``Sequential`` derives it from the model seed, the layer and
the optimizer step, so a resumed run draws the masks an uninterrupted one
would)."""
import math

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
        shard = parallel.shard_rows()  # (start, stop, total) when x is rows of a larger batch
        batch = x.shape if shard is None else (shard[2],) + x.shape[1:]
        shape = batch if self.noise_shape is None else tuple(
            batch[i] if d is None else d for i, d in enumerate(self.noise_shape))
        if shard is not None and shape[0] == batch[0] and batch[0] != x.shape[0]:
            # one shard of a batch split over threads: this shard's rows of the batch's mask
            noise = _rows_of_draw(rng, shape, shard[0], shard[1])
        else:
            noise = rng.random(shape, dtype=np.float32)
        mask = noise >= self.rate  # True: kept
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


def _rows_of_draw(rng, shape, start, stop):
    """Rows ``start:stop`` of ``rng.random(shape, dtype=float32)``, drawing only those rows.

    A float32 draw takes one 32-bit word of the generator's stream per number, and PCG64
    (NumPy's default) hands out the two halves of each 64-bit output in turn, so the draw
    skips ahead ``start * row`` words with ``advance`` (which counts 64-bit outputs) plus one
    word when that count is odd. A generator of another kind, or one holding a spare half
    word, draws the whole batch and keeps the rows (the same numbers, more work)."""
    row = math.prod(shape[1:])
    bits = rng.bit_generator
    if isinstance(bits, np.random.PCG64) and not bits.state["has_uint32"]:
        words = start * row
        bits.advance(words // 2)
        if words % 2:
            rng.random(1, dtype=np.float32)
        return rng.random((stop - start,) + tuple(shape[1:]), dtype=np.float32)
    return rng.random(shape, dtype=np.float32)[start:stop]

"""Inverted dropout: during training each element is zeroed with probability
``rate``, rounded to the nearest of 65,536 levels (``MASK_LEVELS``), and the
survivors are scaled by the inverse of the probability they are kept, about
``1 / (1 - rate)``; at inference the layer is the identity. The mask is drawn
from the generator the caller passes to ``forward`` (``Sequential`` derives it
from the model seed, the layer and the optimizer step, so a resumed run draws
the masks an uninterrupted one would)."""
import math

import numpy as np

from .. import parallel
from ..exceptions import ConfigError
from .base import Layer

#: the levels of an element's draw: 16 random bits each, four elements to each 64-bit output of
#: the generator. An element is dropped where its draw is below ``rate`` of them, rounded to the
#: nearest level (to within 1/131,072; at most 65,535 levels, so a rate above 1 - 1/131,072
#: keeps 1/65,536, and a rate under 1/131,072 drops nothing), and the survivors are scaled by
#: exactly the inverse of the fraction kept. Drawn so, a mask costs half the generator's
#: outputs of a float32 draw (a quarter of an output per element) and no float conversion:
#: HAR's mask of 64 x 124 x 64 took 0.33 ms against 1.0 ms as ``rng.random(dtype=float32)``
#: on an AMD EPYC (Zen 4), whose PCG64 outputs cost 2.4 ns each
MASK_LEVELS = 1 << 16


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
            noise = _draw(rng, shape)
        dropped = _dropped_levels(self.rate)
        mask = noise >= dropped  # True: kept
        scale = x.dtype.type(MASK_LEVELS / (MASK_LEVELS - dropped))
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


def _dropped_levels(rate):
    """How many of the ``MASK_LEVELS`` values of an element's draw drop it: ``rate`` rounded to
    the nearest level (keeping at least one)."""
    return min(round(rate * MASK_LEVELS), MASK_LEVELS - 1)


def _quarters(bits, n):
    """The 16-bit quarters of ``n`` outputs of the bit generator ``bits``, the low quarter of
    each output first, whatever the machine's byte order."""
    return bits.random_raw(n).astype("<u8", copy=False).view("<u2")


def _draw(rng, shape):
    """``prod(shape)`` random 16-bit integers, four to each 64-bit output of ``rng``'s bit
    generator, in ``shape``."""
    n = math.prod(shape)
    return _quarters(rng.bit_generator, -(-n // 4))[:n].reshape(shape)


def _rows_of_draw(rng, shape, start, stop):
    """Rows ``start:stop`` of ``_draw(rng, shape)``, drawing only the 64-bit outputs that hold
    them: a PCG64 generator (NumPy's default) skips the outputs before them with ``advance``,
    which counts 64-bit outputs; one of another kind draws the whole batch and keeps the rows
    (the same numbers, more work: Philox's ``advance`` counts blocks of four outputs)."""
    bits = rng.bit_generator
    if not isinstance(bits, (np.random.PCG64, np.random.PCG64DXSM)):
        return _draw(rng, shape)[start:stop]
    row = math.prod(shape[1:])
    first, skip = divmod(start * row, 4)
    n = (stop - start) * row
    bits.advance(first)
    return _quarters(bits, -(-(skip + n) // 4))[skip:skip + n].reshape((stop - start,) + tuple(shape[1:]))

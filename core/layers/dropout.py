"""Inverted dropout: during training each element is zeroed with probability
``rate`` and the survivors are scaled by ``1 / (1 - rate)``; at inference the
layer is the identity. The mask comes from the layer's own seeded generator."""
import numpy as np

from ..exceptions import ConfigError
from .base import Layer


class Dropout(Layer):
    def __init__(self, rate, noise_shape=None, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        if not 0.0 <= float(rate) < 1.0:
            raise ConfigError(f"Dropout: rate must be in [0, 1), got {rate!r}")
        self.rate = float(rate)
        self.noise_shape = tuple(noise_shape) if noise_shape is not None else None

    def forward(self, x, training=False):
        if not training or self.rate == 0.0:
            self._mask = None
            return x
        shape = x.shape if self.noise_shape is None else tuple(
            x.shape[i] if d is None else d for i, d in enumerate(self.noise_shape))
        self._mask = self._generator().random(shape, dtype=np.float32) >= self.rate  # True: kept
        self._scale = x.dtype.type(1.0 / (1.0 - self.rate))
        out = x * self._mask
        out *= self._scale
        return out

    def _generator(self):
        """Inside ``Sequential.fit`` the mask depends only on the layer's seed and the
        optimizer step, so a model saved and reloaded draws the masks an
        uninterrupted run would; called on its own the layer uses its own stream."""
        step = getattr(self, "_step", None)
        if step is None:
            return self._rng
        if not hasattr(self, "_base_seed"):
            self._base_seed = int(self._rng.integers(2**31 - 1))
        return np.random.default_rng([self._base_seed, step])

    def backward(self, grad, need_input_grad=True):
        if not need_input_grad:
            return None
        if self._mask is None:
            return grad
        g = grad * self._mask
        g *= self._scale
        return g

    def get_config(self):
        cfg = super().get_config()
        cfg["rate"] = self.rate
        if self.noise_shape is not None:
            cfg["noise_shape"] = list(self.noise_shape)
        return cfg

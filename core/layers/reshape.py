"""Layers that only change the shape: ``Flatten`` and ``Reshape``."""
import math

from ..exceptions import ConfigError, ShapeError
from .base import Layer


class Flatten(Layer):
    """``(N, d1, ..., dk) -> (N, d1 * ... * dk)``, in C order (as Keras, channels last)."""

    def __init__(self, data_format=None, **kwargs):
        super().__init__(**kwargs)
        if data_format not in (None, "channels_last"):
            raise ConfigError(f"Flatten: only data_format='channels_last' is supported, got {data_format!r}")

    def compute_output_shape(self, input_shape):
        return (math.prod(input_shape),)

    def forward(self, x, training=False, rng=None, *, context=None, workspace=None):
        return x.reshape(x.shape[0], -1), self._context(self._keep(training, context), xshape=x.shape)

    def backward(self, ctx, dy, need_input_grad=True, *, workspace=None):
        ctx = self._require_context(ctx)
        return (dy.reshape(ctx["xshape"]) if need_input_grad else None), {}


class Reshape(Layer):
    """``(N, *input_shape) -> (N, *target_shape)``; one entry of ``target_shape`` may be -1."""

    def __init__(self, target_shape, **kwargs):
        super().__init__(**kwargs)
        self.target_shape = tuple(int(d) for d in target_shape)
        if sum(d == -1 for d in self.target_shape) > 1:
            raise ConfigError(f"Reshape: at most one -1 in target_shape, got {target_shape}")

    def compute_output_shape(self, input_shape):
        total = math.prod(input_shape)
        known = math.prod(d for d in self.target_shape if d != -1)
        shape = tuple(total // known if d == -1 else d for d in self.target_shape)
        if math.prod(shape) != total:
            raise ShapeError(f"layer {self.name!r}: cannot reshape input {tuple(input_shape)} "
                             f"({total} values) to {self.target_shape}")
        return shape

    def forward(self, x, training=False, rng=None, *, context=None, workspace=None):
        return (x.reshape((x.shape[0],) + self.output_shape),
                self._context(self._keep(training, context), xshape=x.shape))

    def backward(self, ctx, dy, need_input_grad=True, *, workspace=None):
        ctx = self._require_context(ctx)
        return (dy.reshape(ctx["xshape"]) if need_input_grad else None), {}

    def get_config(self):
        cfg = super().get_config()
        cfg["target_shape"] = list(self.target_shape)
        return cfg

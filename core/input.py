"""``Input``: the declaration of a model's input shape (the first entry of a
``Sequential``). A module of its own, so that layers can recognise it without
importing the model."""
import numpy as np

from .exceptions import ConfigError


class Input:
    """Declares the input shape (without the batch axis) as the first entry of a ``Sequential``.

    ``dtype`` ('float32' or 'float64') sets the float type of the model's
    layers; ``name`` names the input in ``summary``. Models accept any batch
    size, so a fixed ``batch_size`` is refused."""

    def __init__(self, shape, batch_size=None, dtype=None, name=None):
        try:
            self.shape = tuple(int(d) for d in shape)
        except (TypeError, ValueError):
            raise ConfigError(f"Input: shape must be a tuple of ints (without the batch axis), got {shape!r}") from None
        if not self.shape or any(d < 1 for d in self.shape):
            raise ConfigError(f"Input: shape must be positive sizes without the batch axis, got {shape!r}")
        if batch_size is not None:
            raise ConfigError(f"Input: batch_size={batch_size!r} is not supported: models here take any batch "
                              f"size; pass batch_size to fit, evaluate or predict instead")
        if dtype is not None:
            try:
                dtype = np.dtype(dtype).name
            except TypeError:
                dtype = repr(dtype)
            if dtype not in ("float32", "float64"):
                raise ConfigError(f"Input: dtype must be 'float32' or 'float64', got {dtype}")
        if name is not None and not isinstance(name, str):
            raise ConfigError(f"Input: name must be a string, got {name!r}")
        self.dtype, self.name = dtype, name

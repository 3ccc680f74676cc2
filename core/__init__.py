"""A convolutional neural network engine written from scratch in NumPy.

>>> from core import Sequential, Input, layers, optimizers
>>> model = Sequential([Input(shape=(28, 28, 1)), layers.Conv2D(8, 3, activation="relu"),
...                     layers.MaxPooling2D(2), layers.Flatten(), layers.Dense(10, activation="softmax")])
"""
from . import allocator  # noqa: F401  (keeps freed memory for reuse: see core/allocator.py)
from . import activations, callbacks, config, initializers, layers, losses, metrics, optimizers, regularizers
from .config import set_random_seed
from .exceptions import (CNNError, ConfigError, DataFileNotFoundError, DataFormatError, InputError,
                         ModelFileError, NotFittedError, ShapeError, TrainingError)
from .model import Input, Sequential
from .serialization import load_model

__version__ = "0.1.0"

__all__ = ["Sequential", "Input", "layers", "optimizers", "losses", "callbacks", "load_model", "activations",
           "initializers", "regularizers", "metrics", "config", "set_random_seed", "CNNError", "ConfigError",
           "DataFileNotFoundError", "DataFormatError", "InputError", "ModelFileError", "NotFittedError",
           "ShapeError", "TrainingError"]

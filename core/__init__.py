"""A convolutional neural network engine written from scratch in NumPy.

>>> from core import Sequential, Input, layers, optimizers
>>> model = Sequential([Input(shape=(28, 28, 1)), layers.Conv2D(8, 3, activation="relu"),
...                     layers.MaxPooling2D(2), layers.Flatten(), layers.Dense(10, activation="softmax")])
"""
from . import activations, callbacks, config, initializers, keras_compat, layers, losses, metrics, optimizers, regularizers
from .config import set_random_seed
from .exceptions import (CNNError, ConfigError, DataFileNotFoundError, DataFormatError, InputError,
                         ModelFileError, NotFittedError, ShapeError, TrainingError)
from .model import Input, Sequential
from .serialization import load_model

__version__ = "0.1.0"

__all__ = ["Sequential", "Input", "layers", "optimizers", "losses", "callbacks", "load_model", "activations",
           "initializers", "regularizers", "metrics", "config", "keras_compat", "set_random_seed", "CNNError", "ConfigError",
           "DataFileNotFoundError", "DataFormatError", "InputError", "ModelFileError", "NotFittedError",
           "ShapeError", "TrainingError"]

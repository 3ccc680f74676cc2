"""Metrics reported during training: each maps ``(y_true, y_pred)`` of one
batch to a number; ``fit`` averages them over the epoch weighted by batch size."""
import numpy as np

from .exceptions import ConfigError


def sparse_categorical_accuracy(y_true, y_pred):
    return float(np.mean(np.asarray(y_true).reshape(-1) == y_pred.argmax(axis=-1)))


def categorical_accuracy(y_true, y_pred):
    return float(np.mean(np.asarray(y_true).argmax(axis=-1) == y_pred.argmax(axis=-1)))


def binary_accuracy(y_true, y_pred, threshold=0.5):
    return float(np.mean(np.asarray(y_true).reshape(y_pred.shape) == (y_pred > threshold)))


def mean_absolute_error(y_true, y_pred):
    return float(np.mean(np.abs(np.asarray(y_true).reshape(y_pred.shape) - y_pred)))


def mean_squared_error(y_true, y_pred):
    return float(np.mean(np.square(np.asarray(y_true).reshape(y_pred.shape) - y_pred)))


_FUNCTIONS = {
    "sparse_categorical_accuracy": sparse_categorical_accuracy,
    "categorical_accuracy": categorical_accuracy,
    "binary_accuracy": binary_accuracy,
    "mae": mean_absolute_error, "mean_absolute_error": mean_absolute_error,
    "mse": mean_squared_error, "mean_squared_error": mean_squared_error,
}


def get(name, loss_name):
    """``(display_name, function)`` for a metric name; ``"accuracy"`` picks the
    variant that matches the loss, as Keras does."""
    if callable(name):
        return getattr(name, "__name__", "metric"), name
    if name in ("accuracy", "acc"):
        if "sparse" in loss_name:
            return "accuracy", sparse_categorical_accuracy
        if "binary" in loss_name:
            return "accuracy", binary_accuracy
        return "accuracy", categorical_accuracy
    fn = _FUNCTIONS.get(name)
    if fn is None:
        raise ConfigError(f"unknown metric {name!r}; valid names: {['accuracy'] + sorted(_FUNCTIONS)}")
    return name, fn

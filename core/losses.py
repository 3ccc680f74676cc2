"""Losses with Keras names; each returns its value and its gradient.

``loss.value_and_grad(y_true, y_pred, sample_weight)`` gives the batch loss
(``sum(w_i * l_i) / N``, Keras' "sum_over_batch_size") and its gradient with
respect to ``y_pred``. Cross-entropies also implement
``value_and_grad_logits``: when the network ends in softmax (or sigmoid) the
model hands over the pre-activation logits instead, and the loss is computed
as ``logsumexp(z) - z_y`` whose gradient is simply ``softmax(z) - onehot``,
finite for logits of any magnitude.
"""
import numpy as np
from scipy import special

from .exceptions import ConfigError, InputError, ShapeError
from .registry import resolve

EPSILON = 1e-7


def _weights(sample_weight, n, dtype):
    if sample_weight is None:
        return None
    w = np.asarray(sample_weight, dtype=dtype).reshape(-1)
    if w.shape[0] != n:
        raise ShapeError(f"sample_weight has {w.shape[0]} entries for a batch of {n} samples")
    return w


def _reduce(per_sample, grad, sample_weight):
    """Weight per-sample losses ``(N,)`` and their gradients ``(N, ...)``, divide by N."""
    n = per_sample.shape[0]
    w = _weights(sample_weight, n, grad.dtype)
    if w is not None:
        per_sample = per_sample * w
        grad = grad * w.reshape((n,) + (1,) * (grad.ndim - 1))
    return float(per_sample.sum() / n), grad / grad.dtype.type(n)


class Loss:
    #: activation whose output this loss can take as logits instead
    fuses_with = None

    def __init__(self, from_logits=False, name=None, reduction="sum_over_batch_size"):
        if reduction != "sum_over_batch_size":
            raise ConfigError(f"{type(self).__name__}: only reduction='sum_over_batch_size' (Keras' default: the "
                              f"weighted sum divided by the batch size) is supported, got {reduction!r}")
        if not isinstance(from_logits, (bool, np.bool_)):
            raise ConfigError(f"{type(self).__name__}: from_logits must be True or False, got {from_logits!r}")
        self.from_logits = bool(from_logits)
        self.name = name or type(self).__name__

    def __call__(self, y_true, y_pred, sample_weight=None):
        return self.value_and_grad(y_true, np.asarray(y_pred), sample_weight)[0]

    def value_and_grad(self, y_true, y_pred, sample_weight=None):
        raise NotImplementedError

    def check_targets(self, y, n_outputs):
        """Validate a whole target array against the model's output width."""
        return y

    def get_config(self):
        return {"from_logits": self.from_logits}


def _log_softmax_and_softmax(z):
    """``log(softmax(z))`` and ``softmax(z)`` over the last axis, sharing one ``exp``
    (plain NumPy: scipy's logsumexp costs ~0.1 ms a call in array-API dispatch)."""
    shifted = z - z.max(axis=-1, keepdims=True)
    e = np.exp(shifted)
    total = e.sum(axis=-1, keepdims=True)
    return shifted - np.log(total), e / total


class CategoricalCrossentropy(Loss):
    """Cross-entropy against one-hot (or soft) targets ``(N, K)``."""
    fuses_with = "softmax"

    def _onehot(self, y_true, shape, dtype):
        y = np.asarray(y_true, dtype=dtype)
        if y.shape != shape:
            raise ShapeError(f"{self.name}: targets must have the shape of the predictions {shape}, found {y.shape}")
        return y

    def value_and_grad_logits(self, y_true, z, sample_weight=None):
        y = self._onehot(y_true, z.shape, z.dtype)
        log_p, p = _log_softmax_and_softmax(z)
        per = -(y * log_p).sum(axis=-1)
        grad = p * y.sum(axis=-1, keepdims=True) - y
        per = per.reshape(per.shape[0], -1)
        positions = per.shape[1]  # > 1 only for outputs with extra axes, averaged like Keras
        return _reduce(per.mean(axis=1), grad / grad.dtype.type(positions), sample_weight)

    def value_and_grad(self, y_true, y_pred, sample_weight=None):
        if self.from_logits:
            return self.value_and_grad_logits(y_true, y_pred, sample_weight)
        y = self._onehot(y_true, y_pred.shape, y_pred.dtype)
        s = y_pred.sum(axis=-1, keepdims=True)
        p = np.clip(y_pred / s, EPSILON, 1 - EPSILON)
        per = -(y * np.log(p)).sum(axis=-1)
        # d/dp_j of -sum_k y_k log(p_k / S) = -y_j / p_j + sum_k y_k / S
        grad = -y / (p * s) + y.sum(axis=-1, keepdims=True) / s
        return _reduce(per, grad, sample_weight)

    def check_targets(self, y, n_outputs):
        y = np.asarray(y)
        if y.ndim != 2 or y.shape[1] != n_outputs:
            raise ShapeError(f"categorical_crossentropy expects one-hot targets of shape (N, {n_outputs}), found "
                             f"{y.shape}; for integer labels use loss='sparse_categorical_crossentropy'")
        return y


class SparseCategoricalCrossentropy(CategoricalCrossentropy):
    """Cross-entropy against integer class labels ``(N,)`` in ``[0, K)``."""

    def _onehot(self, y_true, shape, dtype):
        labels = np.asarray(y_true).reshape(-1).astype(np.int64)
        y = np.zeros(shape, dtype)
        y[np.arange(shape[0]), labels] = 1
        return y

    def check_targets(self, y, n_outputs):
        y = np.asarray(y)
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if y.ndim != 1:
            raise ShapeError(f"sparse_categorical_crossentropy expects integer labels of shape (N,), found {y.shape}; "
                             f"for one-hot targets use loss='categorical_crossentropy'")
        if not np.issubdtype(y.dtype, np.integer):
            if not np.issubdtype(y.dtype, np.floating) or not np.all(np.mod(y, 1) == 0):
                raise InputError(f"sparse_categorical_crossentropy expects integer labels, found dtype {y.dtype}")
            y = y.astype(np.int64)
        bad = (y < 0) | (y >= n_outputs)
        if bad.any():
            raise InputError(f"labels must be integers in [0, {n_outputs}) for a model with {n_outputs} outputs; "
                             f"found {int(bad.sum())} outside, e.g. {y[bad][0]}")
        return y


class BinaryCrossentropy(Loss):
    """Cross-entropy of independent binary targets, averaged over the last axis."""
    fuses_with = "sigmoid"

    def _targets(self, y_true, shape, dtype):
        y = np.asarray(y_true, dtype=dtype)
        if y.shape != shape:
            y = y.reshape(shape) if y.size == np.prod(shape) else None
        if y is None:
            raise ShapeError(f"{self.name}: targets must have the shape of the predictions {shape}, found {np.shape(y_true)}")
        return y

    def value_and_grad_logits(self, y_true, z, sample_weight=None):
        y = self._targets(y_true, z.shape, z.dtype)
        k = z.shape[-1] if z.ndim > 1 else 1
        per = np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))
        per = per.reshape(z.shape[0], -1).mean(axis=1)
        grad = (special.expit(z) - y) / z.dtype.type(k)
        return _reduce(per, grad, sample_weight)

    def value_and_grad(self, y_true, y_pred, sample_weight=None):
        if self.from_logits:
            return self.value_and_grad_logits(y_true, y_pred, sample_weight)
        y = self._targets(y_true, y_pred.shape, y_pred.dtype)
        k = y_pred.shape[-1] if y_pred.ndim > 1 else 1
        p = np.clip(y_pred, EPSILON, 1 - EPSILON)
        per = -(y * np.log(p) + (1 - y) * np.log(1 - p)).reshape(y.shape[0], -1).mean(axis=1)
        grad = (p - y) / (p * (1 - p)) / y_pred.dtype.type(k)
        inside = (y_pred > EPSILON) & (y_pred < 1 - EPSILON)
        return _reduce(per, grad * inside, sample_weight)

    def check_targets(self, y, n_outputs):
        y = np.asarray(y)
        if np.any((y < 0) | (y > 1)):
            raise InputError("binary_crossentropy expects targets in [0, 1]")
        return y


class MeanSquaredError(Loss):
    """Mean over the last axis of ``(y_pred - y_true) ** 2``."""

    def value_and_grad(self, y_true, y_pred, sample_weight=None):
        y = np.asarray(y_true, dtype=y_pred.dtype)
        if y.shape != y_pred.shape:
            if y.size != y_pred.size:
                raise ShapeError(f"mean_squared_error: targets of shape {y.shape} do not match predictions {y_pred.shape}")
            y = y.reshape(y_pred.shape)
        diff = y_pred - y
        k = diff[0].size
        per = np.square(diff).reshape(diff.shape[0], -1).mean(axis=1)
        return _reduce(per, diff * diff.dtype.type(2.0 / k), sample_weight)

    def get_config(self):
        return {}

    def __init__(self, name=None, reduction="sum_over_batch_size"):
        super().__init__(False, name, reduction)


_REGISTRY = {c.__name__: c for c in (CategoricalCrossentropy, SparseCategoricalCrossentropy,
                                     BinaryCrossentropy, MeanSquaredError)}


def get(identifier):
    """A loss from a name (``"sparse_categorical_crossentropy"``, ``"mse"``...), config dict or instance."""
    return resolve(identifier, _REGISTRY, "loss", aliases={"mse": MeanSquaredError})

"""Build the Keras 3 twin of a ``core`` model, and move weights both ways.

Layer names, arguments and weight layouts follow Keras, so the twin is built
from the very description (``Sequential.get_config``) that defines the NumPy
model: the two cannot drift apart. Keras is imported only when these
functions are called; it is an optional dependency (the ``test`` extra).

>>> twin = to_keras(model)                  # same layers, same initial weights
>>> model.set_weights(twin.get_weights())   # and back again after training it
"""
import os

from .exceptions import ConfigError


def import_keras():
    """Import Keras, choosing the JAX backend unless the user chose one."""
    os.environ.setdefault("KERAS_BACKEND", "jax")
    try:
        import keras
    except ImportError as exc:
        raise ImportError("Keras is not installed; install the test extra: pip install -e \".[test]\"") from exc
    return keras


def _object(keras_module, spec, kind):
    if spec is None:
        return None
    if isinstance(spec, str):
        return spec
    cls = getattr(keras_module, spec["class_name"], None)
    if cls is None:
        raise ConfigError(f"Keras has no {kind} {spec['class_name']!r}")
    return cls(**spec.get("config", {}))


def _activation(keras, spec):
    if spec is None or isinstance(spec, str):
        return spec or "linear"
    fn = getattr(keras.activations, spec["class_name"])
    cfg = spec.get("config", {})
    return lambda x: fn(x, **cfg)


_INITIALIZER_KEYS = ("kernel_initializer", "bias_initializer", "beta_initializer", "gamma_initializer",
                     "moving_mean_initializer", "moving_variance_initializer")


def keras_layer(keras, class_name, cfg):
    """The Keras layer for one entry of ``Sequential.get_config()["layers"]``."""
    cfg = dict(cfg)
    seed = cfg.pop("seed", None)
    cfg.pop("dtype", None)
    for key in _INITIALIZER_KEYS:
        if key in cfg:
            cfg[key] = _object(keras.initializers, cfg[key], "initializer")
    for key in ("kernel_regularizer", "bias_regularizer"):
        if key in cfg:
            cfg[key] = _object(keras.regularizers, cfg[key], "regularizer")
    if "activation" in cfg:
        cfg["activation"] = _activation(keras, cfg["activation"])
    for key in ("kernel_size", "strides", "dilation_rate", "pool_size", "target_shape", "noise_shape"):
        if isinstance(cfg.get(key), list):
            cfg[key] = tuple(cfg[key])
    if class_name == "Dropout" and seed is not None:
        cfg["seed"] = seed
    cls = getattr(keras.layers, class_name, None)
    if cls is None:
        raise ConfigError(f"Keras has no layer {class_name!r}")
    return cls(**cfg)


def to_keras(model, copy_weights=True):
    """A ``keras.Sequential`` with the same layers as ``model`` (built), and
    with the same weights when ``copy_weights``."""
    keras = import_keras()
    model._require_built("to_keras")
    cfg = model.get_config()
    twin = keras.Sequential([keras.Input(shape=tuple(cfg["input_shape"]))] +
                            [keras_layer(keras, spec["class_name"], spec["config"]) for spec in cfg["layers"]],
                            name=cfg["name"])
    if copy_weights:
        twin.set_weights(model.get_weights())
    return twin


def keras_optimizer(optimizer):
    """The Keras optimizer with the same class and settings as a ``core`` optimizer."""
    keras = import_keras()
    cfg = dict(optimizer.get_config())
    cfg.pop("name", None)
    lr = cfg.get("learning_rate")
    if isinstance(lr, dict):
        cfg["learning_rate"] = _object(keras.optimizers.schedules, lr, "learning-rate schedule")
    cfg = {k: v for k, v in cfg.items() if v is not None}
    return getattr(keras.optimizers, type(optimizer).__name__)(**cfg)


class KerasTwin:
    """Trains the Keras twin of a ``core`` model through the calls
    ``BaseClassifier.fit`` makes (``compile``, ``fit``, ``predict``), so a
    domain classifier runs unchanged on Keras (``engine="keras"``): same
    network, same initial weights, same data, splits and settings. After
    ``fit`` the trained weights are copied back into the ``core`` model
    (``self.core``), which is what gets saved."""

    def __init__(self, model):
        self.core = model
        self.keras = to_keras(model)

    @property
    def input_shape(self):
        return self.core.input_shape

    def compile(self, optimizer, loss, metrics=None):
        from . import losses, optimizers
        self._loss = losses.get(loss)
        self.keras.compile(optimizer=keras_optimizer(optimizers.get(optimizer)), loss=loss, metrics=metrics)

    def fit(self, x, y, batch_size=32, epochs=1, verbose=0, callbacks=None, validation_data=None, shuffle=True,
            batch_transform=None, class_weight=None, sample_weight=None):
        from . import callbacks as core_callbacks
        keras = import_keras()
        mapped = []
        for cb in callbacks or []:
            if not isinstance(cb, core_callbacks.EarlyStopping):
                raise ConfigError(f"KerasTwin: no Keras equivalent wired for callback {type(cb).__name__}")
            mapped.append(keras.callbacks.EarlyStopping(monitor=cb.monitor, patience=cb.patience,
                                                        min_delta=cb.min_delta, mode=cb.mode,
                                                        restore_best_weights=cb.restore_best_weights))
        data = x
        if batch_transform is not None:
            data = _AugmentedBatches(keras, x, y, batch_size, batch_transform, seed=self.core._seed)
            y = None
        if batch_transform is not None and sample_weight is not None:
            raise ConfigError("KerasTwin.fit: sample_weight together with batch_transform is not wired; "
                              "use class_weight, or train without augmentation")
        history = self.keras.fit(data, y, batch_size=None if y is None else batch_size, epochs=epochs,
                                 verbose=verbose, callbacks=mapped, validation_data=validation_data,
                                 shuffle=shuffle, class_weight=class_weight, sample_weight=sample_weight)
        self.core.set_weights(self.keras.get_weights())
        return history

    def predict(self, x, batch_size=32, verbose=0):
        return self.keras.predict(x, batch_size=batch_size, verbose=verbose)


def _AugmentedBatches(keras, x, y, batch_size, transform, seed):
    """A Keras ``PyDataset`` that applies ``transform(batch, rng)`` to each shuffled batch."""
    import math

    import numpy as np

    class Batches(keras.utils.PyDataset):
        def __init__(self):
            super().__init__()
            self.epoch = 0
            self.order = np.random.default_rng([seed, 0]).permutation(len(x))

        def __len__(self):
            return math.ceil(len(x) / batch_size)

        def __getitem__(self, i):
            idx = self.order[i * batch_size:(i + 1) * batch_size]
            rng = np.random.default_rng([seed, self.epoch, i])
            return np.asarray(transform(x[idx], rng), np.float32), y[idx]

        def on_epoch_end(self):
            self.epoch += 1
            self.order = np.random.default_rng([seed, self.epoch]).permutation(len(x))

    return Batches()

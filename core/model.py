"""``Sequential``: a stack of layers with Keras' compile / fit / evaluate /
predict / save API.

Shapes: ``x`` is ``(N, *input_shape)`` channels last; for classification
``y`` holds integer labels ``(N,)`` (sparse cross-entropy) or one-hot rows
``(N, K)``; ``predict`` returns ``(N, *output_shape)``.
"""
import math
import sys

import numpy as np
from tqdm.auto import tqdm

from . import callbacks as callbacks_module
from . import config, losses, metrics as metrics_module, optimizers
from .exceptions import ConfigError, InputError, NotFittedError, ShapeError, TrainingError
from .layers import LAYER_CLASSES
from .layers.base import ActivationMixin, Layer
from .registry import serialize, snake_case
from .utils import check_array, check_int


class Input:
    """Declares the input shape (without the batch axis) as the first entry of a ``Sequential``."""

    def __init__(self, shape, batch_size=None, dtype=None, name=None):
        try:
            self.shape = tuple(int(d) for d in shape)
        except (TypeError, ValueError):
            raise ConfigError(f"Input: shape must be a tuple of ints (without the batch axis), got {shape!r}") from None
        if not self.shape or any(d < 1 for d in self.shape):
            raise ConfigError(f"Input: shape must be positive sizes without the batch axis, got {shape!r}")
        self.dtype, self.name = dtype, name


class Sequential:
    """A linear stack of layers.

    ``seed`` fixes every random choice the model makes: the initial weights of
    layers built without their own ``seed``, dropout masks and the shuffling
    in ``fit``. Without it a seed is drawn from ``core.config`` (see
    ``set_random_seed``).
    """

    def __init__(self, layers=None, name=None, seed=None):
        self.name = name or "sequential"
        self.seed = seed
        self._seed = int(seed) if seed is not None else config.draw_seed()
        self.layers = []
        self._input_shape = None
        self._input_dtype = None
        self.built = False
        self.optimizer = self.loss = None
        self.compiled = False
        self.stop_training = False
        self.history = None
        for layer in layers or []:
            self.add(layer, _build=False)
        if self._input_shape is not None and self.layers:
            self.build()

    # ----------------------------------------------------------------- layers
    def add(self, layer, _build=True):
        """Append a layer (or an ``Input`` as the very first entry)."""
        if isinstance(layer, Input):
            if self.layers or self._input_shape is not None:
                raise ConfigError("Input must be the first entry of a Sequential model")
            self._input_shape = layer.shape
            self._input_dtype = layer.dtype
            return
        if not isinstance(layer, Layer):
            raise ConfigError(f"Sequential accepts layers from core.layers, got {type(layer).__name__}")
        if layer.name is None:
            base = snake_case(type(layer).__name__)
            taken = {lay.name for lay in self.layers}
            i = 0
            while (f"{base}_{i}" if i else base) in taken:
                i += 1
            layer.name = f"{base}_{i}" if i else base
        if not self.layers and self._input_shape is None and layer.input_shape is not None:
            self._input_shape = layer.input_shape
        self.layers.append(layer)
        if _build and self._input_shape is not None:
            self.build()

    def _layer_rng(self, index):
        return np.random.default_rng([self._seed, index])

    def _build_layer(self, index, shape):
        layer = self.layers[index]
        if layer.dtype is None and self._input_dtype is not None:
            layer.dtype = self._input_dtype
        layer.build(shape, rng=self._layer_rng(index))

    def build(self, input_shape=None):
        """Create all weights. ``input_shape`` includes the batch axis, as in
        Keras (``model.build((None, 28, 28, 1))``); it may be omitted when the
        model starts with ``Input``."""
        if input_shape is not None:
            shape = tuple(input_shape)[1:]
            if self._input_shape is not None and shape != self._input_shape:
                raise ShapeError(f"build: model declares input shape {self._input_shape}, got {shape} (batch axis removed)")
            self._input_shape = tuple(int(d) for d in shape)
        if self._input_shape is None:
            raise NotFittedError("the model has no input shape: start it with Input(shape=...), call build(), "
                                 "or pass data to fit/predict")
        if not self.layers:
            raise ConfigError("the model has no layers")
        shape = self._input_shape
        for i, layer in enumerate(self.layers):
            try:
                if not (layer.built and layer.input_shape == tuple(shape)):
                    self._build_layer(i, shape)
            except (ShapeError, InputError, ConfigError) as exc:
                raise type(exc)(f"while building layer {i} ({layer.name!r}) for input shape {shape}: {exc}") from None
            shape = layer.output_shape
        self.built = True
        # only layers after the first trainable one need the gradient of their input
        self._first_trainable = next((i for i, lay in enumerate(self.layers) if lay.params), len(self.layers))

    @property
    def input_shape(self):
        return None if self._input_shape is None else (None,) + tuple(self._input_shape)

    @property
    def output_shape(self):
        return (None,) + tuple(self.layers[-1].output_shape) if self.built else None

    @property
    def dtype(self):
        return self.layers[0].dtype if self.built else (self._input_dtype or config.floatx())

    # ---------------------------------------------------------------- compile
    def compile(self, optimizer="rmsprop", loss=None, metrics=None, loss_weights=None):
        """Choose the optimizer, the loss and the metrics reported during training."""
        if loss is None:
            raise ConfigError("compile: a loss is required, e.g. loss='sparse_categorical_crossentropy'")
        self.optimizer = optimizers.get(optimizer)
        self.loss = losses.get(loss)
        loss_name = snake_case(type(self.loss).__name__)
        self._metrics = [metrics_module.get(m, loss_name) for m in (metrics or [])]
        self.compiled = True
        self._fused = None

    def _fused_output(self):
        """Whether the loss is computed from the last layer's pre-activation
        (softmax + cross-entropy or sigmoid + binary cross-entropy)."""
        if self._fused is None:
            last = self.layers[-1]
            self._fused = (isinstance(last, ActivationMixin) and not self.loss.from_logits
                           and self.loss.fuses_with is not None
                           and last.activation.name == self.loss.fuses_with)
        return self._fused

    def _require_compiled(self, what):
        if not self.compiled:
            raise NotFittedError(f"{what}: the model must be compiled first (model.compile(optimizer=..., loss=...))")

    # ------------------------------------------------------------ validation
    def _check_x(self, x, what):
        arr = check_array(x, f"{what}: x")
        if not self.built:
            self._input_shape = self._input_shape or tuple(arr.shape[1:])
            self.build()
        expected = self._input_shape
        if arr.ndim != len(expected) + 1 or tuple(arr.shape[1:]) != tuple(expected):
            first = self.layers[0]
            raise ShapeError(f"{what}: the model expects x of shape (batch, {', '.join(map(str, expected))}) "
                             f"(input of layer {first.name!r}, {type(first).__name__}), found x of shape {arr.shape}")
        return arr.astype(self.dtype, copy=False)

    def _check_y(self, y, n, what):
        if y is None:
            raise InputError(f"{what}: y (the targets) is required")
        y = np.asarray(y)
        if y.ndim == 0 or y.shape[0] != n:
            raise ShapeError(f"{what}: x has {n} samples but y has {y.shape[0] if y.ndim else 'no'} entries")
        if np.issubdtype(y.dtype, np.floating) and not np.isfinite(y).all():
            raise InputError(f"{what}: y contains NaN or infinite values")
        return self.loss.check_targets(y, self.layers[-1].output_shape[-1])

    def _check_batch_size(self, batch_size, default=32):
        if batch_size is None:
            return default
        return check_int(batch_size, "batch_size")

    # ------------------------------------------------------------- computing
    def _forward(self, x, training):
        for layer in self.layers:
            x = layer.forward(x, training=training)
        return x

    def _loss_and_backward(self, y, out, sample_weight):
        last = self.layers[-1]
        if self._fused_output():
            value, grad = self.loss.value_and_grad_logits(y, last._z, sample_weight)
        else:
            value, grad = self.loss.value_and_grad(y, out, sample_weight)
        value += sum(layer.regularization_loss() for layer in self.layers)
        for i in range(len(self.layers) - 1, -1, -1):
            layer = self.layers[i]
            need = i > self._first_trainable
            if i == len(self.layers) - 1 and isinstance(layer, ActivationMixin):
                grad = layer.backward(grad, need_input_grad=need, pre_activation=self._fused_output())
            else:
                grad = layer.backward(grad, need_input_grad=need)
            if not need:
                break
        for layer in self.layers:
            layer.add_regularization_grads()
        return value

    def _trainable_triples(self):
        return [(f"{i}/{name}", layer.params[name], layer.grads[name])
                for i, layer in enumerate(self.layers) for name in layer.trainable_names()]

    def _train_step(self, x, y, sample_weight, where):
        # state that the forward pass replaces (batch-norm statistics), restored if the step fails
        state = [(layer, name, layer.params[name]) for layer in self.layers for name in layer.non_trainable]
        for layer in self.layers:
            layer._step = self.optimizer.iterations  # random layers draw per optimizer step (resumable)
        try:
            out = self._forward(x, training=True)
            value = self._loss_and_backward(y, out, sample_weight)
        finally:
            for layer in self.layers:
                layer._step = None
        if not math.isfinite(value):
            for layer, name, value_before in state:
                layer.params[name] = value_before
            raise TrainingError(f"the loss became {value} {where}; the weights and batch-norm statistics were left "
                                f"as they were before this batch. Lower the learning rate, scale the inputs, or use clipnorm")
        self.optimizer.apply(self._trainable_triples())
        return value, out

    def _metric_values(self, y, out):
        return {name: fn(y, out) for name, fn in self._metrics}

    # ------------------------------------------------------------------- fit
    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None, validation_split=0.0,
            validation_data=None, shuffle=True, class_weight=None, sample_weight=None, initial_epoch=0,
            batch_transform=None):
        """Train for ``epochs`` passes over ``(x, y)``; returns a ``History``.

        As in Keras: ``validation_split`` holds out the *last* fraction of the
        samples (before shuffling); ``validation_data=(x_val, y_val)``
        overrides it; ``class_weight`` maps a class index to a loss weight;
        ``initial_epoch`` resumes counting epochs (training resumed from a
        saved model). ``verbose=1`` (or "auto") shows a tqdm progress bar per
        epoch, 2 one line per epoch, 0 nothing. ``batch_transform(x_batch, rng)``,
        if given, transforms each training batch (data augmentation).
        """
        self._require_compiled("fit")
        x = self._check_x(x, "fit")
        y = self._check_y(y, len(x), "fit")
        batch_size = self._check_batch_size(batch_size)
        check_int(epochs, "fit: epochs", minimum=0)
        if verbose not in ("auto", 0, 1, 2):
            raise InputError(f"fit: verbose must be 'auto', 0, 1 or 2, got {verbose!r}")
        verbose = 1 if verbose == "auto" else int(verbose)
        check_int(initial_epoch, "fit: initial_epoch", minimum=0)
        if callbacks is not None and (not isinstance(callbacks, (list, tuple))
                                      or not all(isinstance(cb, callbacks_module.Callback) for cb in callbacks)):
            raise InputError(f"fit: callbacks must be a list of core.callbacks.Callback objects, got {callbacks!r}")
        sw = self._check_sample_weight(sample_weight, len(x), "fit")
        if class_weight:
            sw = (sw if sw is not None else np.ones(len(x))) * self._class_weights(y, class_weight)
        if validation_data is None and validation_split:
            if not 0 < validation_split < 1:
                raise InputError(f"fit: validation_split must be in (0, 1), got {validation_split}")
            cut = int(len(x) * (1 - validation_split))
            if cut < 1 or cut >= len(x):
                raise InputError(f"fit: validation_split={validation_split} leaves no training or no validation "
                                 f"samples out of {len(x)}")
            validation_data = (x[cut:], y[cut:])
            x, y = x[:cut], y[:cut]
            sw = None if sw is None else sw[:cut]
        if validation_data is not None:
            if len(validation_data) not in (2, 3):
                raise InputError("fit: validation_data must be (x_val, y_val) or (x_val, y_val, sample_weight)")
            xv = self._check_x(validation_data[0], "fit (validation_data)")
            yv = self._check_y(validation_data[1], len(xv), "fit (validation_data)")
            swv = self._check_sample_weight(validation_data[2] if len(validation_data) == 3 else None, len(xv),
                                            "fit (validation_data)")

        history = callbacks_module.History()
        cbs = [history] + list(callbacks or [])
        for cb in cbs:
            cb.set_model(self)
        n = len(x)
        steps = math.ceil(n / batch_size)
        self.stop_training = False
        for cb in cbs:
            cb.on_train_begin()
        for epoch in range(initial_epoch, epochs):
            for cb in cbs:
                cb.on_epoch_begin(epoch)
            # one generator per epoch, so a run resumed at initial_epoch=k shuffles as an uninterrupted one
            rng = np.random.default_rng([self._seed, 2**20, epoch])
            order = rng.permutation(n) if shuffle else np.arange(n)
            totals, seen = {}, 0
            bar = tqdm(total=steps, desc=f"Epoch {epoch + 1}/{epochs}", unit="batch", disable=verbose != 1,
                       leave=True, file=sys.stderr, dynamic_ncols=True)
            with bar:
                for b in range(steps):
                    idx = order[b * batch_size:(b + 1) * batch_size]
                    if shuffle:
                        xb, yb = x[idx], y[idx]
                    else:
                        xb, yb = x[b * batch_size:(b + 1) * batch_size], y[b * batch_size:(b + 1) * batch_size]
                    if batch_transform is not None:
                        xb = np.asarray(batch_transform(xb, rng), dtype=self.dtype)
                    swb = None if sw is None else sw[idx]
                    value, out = self._train_step(xb, yb, swb, f"at epoch {epoch + 1}, batch {b + 1} of {steps}")
                    k = len(xb)
                    seen += k
                    for name, v in {"loss": value, **self._metric_values(yb, out)}.items():
                        totals[name] = totals.get(name, 0.0) + v * k
                    logs = {name: v / seen for name, v in totals.items()}
                    if verbose == 1:
                        bar.set_postfix({k2: f"{v:.4f}" for k2, v in logs.items()}, refresh=False)
                        bar.update(1)
                    for cb in cbs:
                        cb.on_train_batch_end(b, logs)
                if validation_data is not None:
                    val = self.evaluate(xv, yv, batch_size=batch_size, sample_weight=swv, return_dict=True, _checked=True)
                    logs.update({f"val_{k2}": v for k2, v in val.items()})
                    if verbose == 1:
                        bar.set_postfix({k2: f"{v:.4f}" for k2, v in logs.items()}, refresh=True)
            logs["learning_rate"] = self.optimizer.learning_rate
            for cb in cbs:
                cb.on_epoch_end(epoch, logs)
            if verbose == 2:
                print(f"Epoch {epoch + 1}/{epochs} - " + " - ".join(f"{k2}: {v:.4f}" for k2, v in logs.items()))
            if self.stop_training:
                break
        for cb in cbs:
            cb.on_train_end()
        self.history = history
        return history

    def _check_sample_weight(self, sample_weight, n, what):
        if sample_weight is None:
            return None
        try:
            sw = np.asarray(sample_weight, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            raise InputError(f"{what}: sample_weight must be numbers, got {sample_weight!r:.80}") from None
        if len(sw) != n:
            raise ShapeError(f"{what}: sample_weight has {len(sw)} entries for {n} samples")
        if not np.isfinite(sw).all() or (sw < 0).any():
            raise InputError(f"{what}: sample_weight must be finite and non-negative")
        return sw

    def _class_weights(self, y, class_weight):
        n_classes = self.layers[-1].output_shape[-1]
        if not isinstance(class_weight, dict):
            raise InputError(f"class_weight must be a dict {{class index: weight}}, got {type(class_weight).__name__}")
        labels = y if y.ndim == 1 else y.argmax(axis=-1)
        w = np.ones(len(labels))
        for cls, weight in class_weight.items():
            if not isinstance(cls, (int, np.integer)) or not 0 <= cls < max(n_classes, 2):
                raise InputError(f"class_weight keys must be class indices in [0, {max(n_classes, 2)}), got {cls!r}")
            if not isinstance(weight, (int, float, np.number)) or not np.isfinite(weight) or weight < 0:
                raise InputError(f"class_weight[{cls!r}] must be a finite non-negative number, got {weight!r}")
            w[labels == int(cls)] = float(weight)
        return w

    # --------------------------------------------------------------- batches
    def train_on_batch(self, x, y, sample_weight=None, class_weight=None, return_dict=False):
        """One optimizer step on one batch; returns the loss (and metrics), as Keras."""
        self._require_compiled("train_on_batch")
        x = self._check_x(x, "train_on_batch")
        y = self._check_y(y, len(x), "train_on_batch")
        sw = self._check_sample_weight(sample_weight, len(x), "train_on_batch")
        if class_weight:
            sw = (sw if sw is not None else np.ones(len(x))) * self._class_weights(y, class_weight)
        value, out = self._train_step(x, y, sw, f"in train_on_batch (optimizer step {self.optimizer.iterations + 1})")
        return self._format_result({"loss": value, **self._metric_values(y, out)}, return_dict)

    def test_on_batch(self, x, y, sample_weight=None, return_dict=False):
        return self.evaluate(x, y, batch_size=len(x), sample_weight=sample_weight, return_dict=return_dict)

    def predict_on_batch(self, x):
        return self._forward(self._check_x(x, "predict_on_batch"), training=False)

    def _format_result(self, result, return_dict):
        if return_dict:
            return result
        return result["loss"] if len(result) == 1 else list(result.values())

    # -------------------------------------------------------- evaluate / predict
    def evaluate(self, x=None, y=None, batch_size=None, verbose=0, sample_weight=None, return_dict=False, _checked=False):
        """Loss (plus regularization) and metrics over ``(x, y)``, computed in batches."""
        self._require_compiled("evaluate")
        if not _checked:
            x = self._check_x(x, "evaluate")
            y = self._check_y(y, len(x), "evaluate")
        batch_size = self._check_batch_size(batch_size)
        sw = sample_weight if _checked else self._check_sample_weight(sample_weight, len(x), "evaluate")
        reg = sum(layer.regularization_loss() for layer in self.layers)
        totals = {}
        last = self.layers[-1]
        for start in tqdm(range(0, len(x), batch_size), disable=verbose != 1, desc="evaluate", unit="batch"):
            xb, yb = x[start:start + batch_size], y[start:start + batch_size]
            swb = None if sw is None else sw[start:start + batch_size]
            out = self._forward(xb, training=False)
            if self._fused_output():
                value = self.loss.value_and_grad_logits(yb, last._z, swb)[0]
            else:
                value = self.loss.value_and_grad(yb, out, swb)[0]
            for name, v in {"loss": value + reg, **self._metric_values(yb, out)}.items():
                totals[name] = totals.get(name, 0.0) + v * len(xb)
        return self._format_result({k: v / len(x) for k, v in totals.items()}, return_dict)

    def predict(self, x, batch_size=None, verbose=0):
        """Model outputs for ``x`` ``(N, *input_shape)``, in batches, inference mode."""
        x = self._check_x(x, "predict")
        batch_size = self._check_batch_size(batch_size)
        outs = [self._forward(x[s:s + batch_size], training=False).copy()
                for s in tqdm(range(0, len(x), batch_size), disable=verbose != 1, desc="predict", unit="batch")]
        return np.concatenate(outs, axis=0)

    def __call__(self, x, training=False):
        return self._forward(self._check_x(x, "call"), training=training)

    # ---------------------------------------------------------------- weights
    def _require_built(self, what):
        if not self.built:
            raise NotFittedError(f"{what}: the model is not built yet; start it with Input(shape=...) or call build()")

    def get_weights(self):
        """All weights, layer by layer, each layer's in Keras order."""
        self._require_built("get_weights")
        return [w for layer in self.layers for w in layer.get_weights()]

    def set_weights(self, weights):
        """Set all weights from a list shaped like ``get_weights()``."""
        self._require_built("set_weights")
        weights = list(weights)
        counts = [len(layer.weight_names()) for layer in self.layers]
        if len(weights) != sum(counts):
            per = ", ".join(f"{lay.name}: {c}" for lay, c in zip(self.layers, counts) if c)
            raise InputError(f"set_weights: the model has {sum(counts)} weight arrays ({per}), got {len(weights)}")
        pos = 0
        for layer, c in zip(self.layers, counts):
            layer.set_weights(weights[pos:pos + c])
            pos += c

    def count_params(self):
        self._require_built("count_params")
        return sum(layer.count_params() for layer in self.layers)

    def summary(self, print_fn=None):
        """Print one row per layer (name, type, output shape, parameters) and the totals."""
        self._require_built("summary")
        print_fn = print_fn or print
        rows = [(f"{lay.name} ({type(lay).__name__})", str((None,) + tuple(lay.output_shape)), f"{lay.count_params():,}")
                for lay in self.layers]
        w = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(("Layer (type)", "Output Shape", "Param #"))]
        line = "-" * (sum(w) + 6)
        print_fn(f'Model: "{self.name}"')
        print_fn(line)
        print_fn(f"{'Layer (type)':<{w[0]}}   {'Output Shape':<{w[1]}}   {'Param #':>{w[2]}}")
        print_fn("=" * len(line))
        for r in rows:
            print_fn(f"{r[0]:<{w[0]}}   {r[1]:<{w[1]}}   {r[2]:>{w[2]}}")
        print_fn("=" * len(line))
        total = self.count_params()
        frozen = sum(layer.params[n].size for layer in self.layers for n in layer.params
                     if n not in layer.trainable_names())
        print_fn(f"Total params: {total:,}")
        print_fn(f"Trainable params: {total - frozen:,}")
        print_fn(f"Non-trainable params: {frozen:,}")

    # ----------------------------------------------------------------- config
    def get_config(self):
        return {"name": self.name, "seed": self._seed,
                "input_shape": list(self._input_shape) if self._input_shape else None,
                "layers": [serialize(layer) for layer in self.layers]}

    @classmethod
    def from_config(cls, cfg):
        layers = []
        for spec in cfg["layers"]:
            klass = LAYER_CLASSES.get(spec.get("class_name"))
            if klass is None:
                raise ConfigError(f"unknown layer {spec.get('class_name')!r}; valid names: {sorted(LAYER_CLASSES)}")
            layers.append(klass.from_config(dict(spec.get("config", {}))))
        model = cls(layers, name=cfg.get("name"), seed=cfg.get("seed"))
        if cfg.get("input_shape"):
            model._input_shape = tuple(cfg["input_shape"])
            model.build()
        return model

    def compile_config(self):
        if not self.compiled:
            return None
        return {"optimizer": serialize(self.optimizer), "loss": serialize(self.loss),
                "metrics": [name for name, _ in self._metrics]}

    def save(self, filepath, include_optimizer=True):
        """Write the model (architecture, weights, optimizer state) to one ``.npz`` file, atomically."""
        from .serialization import save_model
        save_model(self, filepath, include_optimizer=include_optimizer)

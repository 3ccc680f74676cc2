"""The layer protocol every layer follows.

A layer is built once for an input shape (without the batch axis), then
``forward(x, training)`` computes its output and remembers what its
``backward(grad)`` needs; ``backward`` stores the gradients of its weights in
``self.grads`` (same keys as ``self.params``) and returns the gradient with
respect to its input. ``Sequential`` calls the first layer's backward with
``need_input_grad=False`` so it skips work nobody uses.
"""
import numpy as np

from .. import activations, config, initializers, limits, regularizers
from ..exceptions import InputError, NotFittedError, ShapeError
from ..registry import serialize


class Layer:
    #: names of weights that are state, not trained (e.g. batch norm statistics)
    non_trainable = ()

    def __init__(self, name=None, trainable=True, dtype=None, input_shape=None, seed=None):
        self.name = name
        self.trainable = trainable
        self.dtype = dtype
        self.seed = seed
        self.params = {}
        self.grads = {}
        self.built = False
        self.input_shape = tuple(input_shape) if input_shape is not None else None
        self.output_shape = None
        self._rng = None

    # ------------------------------------------------------------------ build
    def build(self, input_shape, rng=None):
        """Create weights for ``input_shape`` (no batch axis). ``rng`` supplies
        randomness when the layer was not given its own ``seed``."""
        self.input_shape = tuple(int(d) for d in input_shape)
        self.dtype = np.dtype(self.dtype or config.floatx()).name
        self._rng = np.random.default_rng(self.seed) if self.seed is not None else (
            rng if rng is not None else np.random.default_rng(config.draw_seed()))
        self._build(self.input_shape)
        self.output_shape = tuple(self.compute_output_shape(self.input_shape))
        self.built = True

    def _build(self, input_shape):
        """Create ``self.params``; layers without weights need not override."""

    def add_weight(self, name, shape, initializer):
        shape = limits.check_weight(self, name, shape, existing=self.count_params())
        value = initializers.get(initializer)(shape, self.dtype, self._rng)
        self.params[name] = value
        return value

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    # -------------------------------------------------------------- compute
    def forward(self, x, training=False):
        raise NotImplementedError

    def backward(self, grad, need_input_grad=True):
        raise NotImplementedError

    def __call__(self, x, training=False):
        x = np.asarray(x)
        if not self.built:
            self.build(x.shape[1:])
        self.check_input(x)
        return self.forward(x.astype(self.dtype, copy=False), training=training)

    def check_input(self, x):
        if x.ndim != len(self.input_shape) + 1 or tuple(x.shape[1:]) != self.input_shape:
            raise ShapeError(
                f"layer {self.name!r} ({type(self).__name__}) expects input of shape "
                f"(batch, {', '.join(map(str, self.input_shape))}), found {tuple(x.shape)}")

    # -------------------------------------------------------------- weights
    def weight_names(self):
        """Weight names in Keras order (the order of ``get_weights``)."""
        return list(self.params)

    def trainable_names(self):
        if not self.trainable:
            return []
        return [n for n in self.params if n not in self.non_trainable]

    def get_weights(self):
        return [self.params[n].copy() for n in self.weight_names()]

    def set_weights(self, weights):
        names = self.weight_names()
        if not self.built:
            raise NotFittedError(f"layer {self.name!r} is not built yet; build the model before set_weights")
        if len(weights) != len(names):
            raise InputError(f"layer {self.name!r} ({type(self).__name__}) has {len(names)} weights "
                             f"{names}, got {len(weights)} arrays")
        for n, w in zip(names, weights):
            w = np.asarray(w)
            if w.shape != self.params[n].shape:
                raise ShapeError(f"layer {self.name!r} weight {n!r} has shape {self.params[n].shape}, "
                                 f"got an array of shape {w.shape}")
            self.params[n] = w.astype(self.dtype, copy=True)

    def regularization_loss(self):
        return 0.0

    def add_regularization_grads(self):
        """Add the penalty gradients to ``self.grads`` (after ``backward``)."""

    def count_params(self):
        return int(sum(p.size for p in self.params.values()))

    # -------------------------------------------------------------- config
    def get_config(self):
        cfg = {"name": self.name, "trainable": self.trainable}
        if self.dtype is not None:
            cfg["dtype"] = self.dtype
        if self.seed is not None:
            cfg["seed"] = self.seed
        return cfg

    @classmethod
    def from_config(cls, cfg):
        return cls(**cfg)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name!r}>"


class ActivationMixin:
    """For layers that end in an activation (conv, dense): keeps the
    pre-activation ``z`` so a fused softmax + cross-entropy can start from it."""

    def _init_activation(self, activation):
        self.activation = activations.get(activation)

    def _activate(self, z, owned=False):
        """``owned``: ``z`` is a new array of this layer's own, which ReLU then
        overwrites with its output (ReLU's derivative needs only the output, and
        the pre-activation is read only by a fused softmax/sigmoid loss)."""
        if owned and type(self.activation) is activations.ReLU:
            self._z = None
            self._a = np.maximum(z, 0, out=z)
            return self._a
        self._z = z
        a = self.activation.forward(z)
        self._a = a
        return a

    def _activation_backward(self, grad, pre_activation):
        if pre_activation or isinstance(self.activation, activations.Linear):
            return grad
        return self.activation.backward(self._z, self._a, grad)


class KernelMixin:
    """Initializers and regularizers of a kernel + bias layer."""

    def _init_kernel(self, use_bias, kernel_initializer, bias_initializer, kernel_regularizer, bias_regularizer):
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)

    def _regularizers(self):
        return (("kernel", self.kernel_regularizer), ("bias", self.bias_regularizer))

    def regularization_loss(self):
        return sum(r(self.params[n]) for n, r in self._regularizers() if r is not None and n in self.params)

    def add_regularization_grads(self):
        for n, r in self._regularizers():
            if r is not None and n in self.grads:
                self.grads[n] = self.grads[n] + r.gradient(self.params[n]).astype(self.grads[n].dtype)

    def _kernel_config(self):
        return {
            "use_bias": self.use_bias,
            "kernel_initializer": serialize(self.kernel_initializer),
            "bias_initializer": serialize(self.bias_initializer),
            "kernel_regularizer": serialize(self.kernel_regularizer) if self.kernel_regularizer else None,
            "bias_regularizer": serialize(self.bias_regularizer) if self.bias_regularizer else None,
        }

"""The layer contract every layer follows.

A layer is built once for an input shape (without the batch axis), which
creates its weights in ``self.params``. Then:

``y, ctx = layer.forward(x, training=False, rng=None, context=None, workspace=None)``
    computes the output ``y``. ``ctx`` is a ``Context`` holding exactly what
    the backward pass needs (chainer's ``retain_inputs`` idea), or ``None``
    when no context was asked for: ``context`` defaults to ``training``, so
    an inference forward keeps nothing. ``rng`` (a ``numpy.random.Generator``)
    is required in training by layers that draw random numbers
    (``stochastic = True``: dropout); no layer keeps a generator of its own.
    When the model splits a batch over threads (``core.parallel.ShardGroup``)
    ``x`` holds rows ``start:stop`` of the batch (``parallel.shard_rows()``):
    such a layer draws those rows of what it would draw for the whole batch,
    and a layer that couples the samples (batch norm) adds its sums over the
    shards with ``parallel.allreduce``.
    ``workspace`` (``core.workspace.Workspace``) lends reusable buffers; the
    output and the context may live in them until the owner reclaims it.
    Forward never writes into ``x``.

``dx, grads = layer.backward(ctx, dy, need_input_grad=True, workspace=None)``
    returns the gradient with respect to the input (``None`` when
    ``need_input_grad`` is False) and a dict of parameter gradients, with
    the keys of ``params`` that are trained. It changes nothing it was
    given: calling it twice with the same context gives the same result.
    Without a context (no forward, or an inference forward) it raises
    ``InputError``.

``layer(x, training=False)`` is the convenience form for a layer used on its
own: it builds the layer if needed, checks and casts ``x`` and returns ``y``.
The forward pass may update state that is not a trained weight (batch-norm
moving statistics) in ``params``; nothing else about a layer changes after
``build``.
"""
import numpy as np

from .. import activations, config, initializers, limits, regularizers
from ..exceptions import ConfigError, InputError, NotFittedError, ShapeError
from ..input import Input
from ..registry import serialize
from ..workspace import UNPOOLED

#: layer class name -> class, for rebuilding saved models; filled by ``core.layers``
LAYER_CLASSES = {}


class Context(dict):
    """What a layer's forward pass kept for its backward pass (a dict), and
    the layer it belongs to (``ctx.layer``). Backward only reads it."""

    __slots__ = ("layer",)


class Layer:
    #: names of weights that are state, not trained (e.g. batch norm statistics)
    non_trainable = ()
    #: whether ``forward(training=True)`` draws random numbers (and so needs ``rng``)
    stochastic = False

    def __init__(self, name=None, trainable=True, dtype=None, input_shape=None, seed=None, input_dim=None):
        if name is not None and not isinstance(name, str):
            raise ConfigError(f"{type(self).__name__}: name must be a string, got {name!r}")
        self.name = name
        self.trainable = bool(trainable)
        if dtype is not None:
            try:
                dtype = np.dtype(dtype).name
            except TypeError:
                raise ConfigError(f"{type(self).__name__}: dtype must be 'float32' or 'float64', got {dtype!r}") from None
            if dtype not in ("float32", "float64"):
                raise ConfigError(f"{type(self).__name__}: dtype must be 'float32' or 'float64', got {dtype!r}")
        self.dtype = dtype
        self.seed = seed
        self.params = {}
        self.built = False
        if input_dim is not None:
            if input_shape is not None:
                raise ConfigError(f"{type(self).__name__}: give input_shape or input_dim, not both")
            input_shape = (input_dim,)
        self.input_shape = tuple(input_shape) if input_shape is not None else None
        self.output_shape = None
        self._call_rng = None

    # ------------------------------------------------------------------ build
    def build(self, input_shape, rng=None):
        """Create weights for ``input_shape`` (no batch axis). ``rng`` draws the
        initial weights when the layer was not given its own ``seed``."""
        self.input_shape = tuple(int(d) for d in input_shape)
        self.dtype = np.dtype(self.dtype or config.floatx()).name
        if self.seed is not None:
            rng = np.random.default_rng(self.seed)
        elif rng is None:
            rng = np.random.default_rng(config.draw_seed())
        self.params = {}
        self._build(self.input_shape, rng)
        self.output_shape = tuple(self.compute_output_shape(self.input_shape))
        self.built = True

    def _build(self, input_shape, rng):
        """Create ``self.params`` with ``add_weight``; layers without weights need not override."""

    def add_weight(self, name, shape, initializer, rng):
        shape = limits.check_weight(self, name, shape, existing=self.count_params())
        value = initializers.get(initializer)(shape, self.dtype, rng)
        self.params[name] = value
        return value

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    # -------------------------------------------------------------- compute
    def forward(self, x, training=False, rng=None, *, context=None, workspace=None):
        """``(y, ctx)``; see the module docstring."""
        raise NotImplementedError

    def backward(self, ctx, dy, need_input_grad=True, *, workspace=None):
        """``(dx, grads)``; see the module docstring."""
        raise NotImplementedError

    def _keep(self, training, context):
        return training if context is None else bool(context)

    def _context(self, keep, **parts):
        if not keep:
            return None
        ctx = Context(parts)
        ctx.layer = self
        return ctx

    def _require_context(self, ctx):
        if ctx is None:
            raise InputError(
                f"layer {self.name!r} ({type(self).__name__}): backward needs the context returned by a forward "
                f"pass that kept one (forward(x, training=True), or context=True); got None: was there no "
                f"forward pass, or an inference forward?")
        if not isinstance(ctx, Context) or ctx.layer is not self:
            owner = getattr(getattr(ctx, "layer", None), "name", None)
            raise InputError(f"layer {self.name!r} ({type(self).__name__}): backward was given a context that is "
                             f"not from this layer's forward pass (it is from {owner!r})")
        return ctx

    def _require_rng(self, rng):
        if not isinstance(rng, np.random.Generator):
            raise InputError(f"layer {self.name!r} ({type(self).__name__}) draws random numbers in training: "
                             f"forward(x, training=True, rng=...) needs a numpy.random.Generator, got {rng!r}")
        return rng

    @staticmethod
    def _workspace(workspace):
        return UNPOOLED if workspace is None else workspace

    def __call__(self, x, training=False):
        if isinstance(x, Input):
            raise ConfigError(f"layer {self.name!r} ({type(self).__name__}) was called on an Input: the functional "
                              f"API is not supported; put the Input first in a Sequential instead: "
                              f"Sequential([Input(shape={x.shape}), {type(self).__name__}(...), ...])")
        from ..utils import check_array
        x = check_array(x, f"layer {self.name!r} ({type(self).__name__}) input", allow_nan=True)
        if not self.built:
            self.build(x.shape[1:])
        self.check_input(x)
        rng = None
        if training and self.stochastic:
            if self._call_rng is None:  # a layer called on its own draws from a stream of its own seed
                self._call_rng = np.random.default_rng(self.seed if self.seed is not None else config.draw_seed())
            rng = self._call_rng
        return self.forward(x.astype(self.dtype, copy=False), training=training, rng=rng, context=False)[0]

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

    def regularization_grads(self):
        """Gradients of the weight penalties, by weight name (empty without regularizers)."""
        return {}

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
    """For layers that end in an activation (conv, dense, activation).

    ``forward(..., activation=False)`` returns the pre-activation instead
    (the logits a fused softmax/sigmoid + cross-entropy loss starts from);
    the context records it, and ``backward`` then takes the gradient with
    respect to the pre-activation."""

    def _init_activation(self, activation):
        self.activation = activations.get(activation)

    def _activate(self, z, apply, keep, owned):
        """``(a, ctx parts)``. ``owned``: ``z`` is a new array of this layer's, which
        an activation whose derivative needs only its output may overwrite."""
        act = self.activation
        if not apply or act.identity:
            return z, {"act": False}
        if act.output_only and owned:
            a = act.forward(z, out=z)
            return a, ({"act": True, "a": a} if keep else {})
        a = act.forward(z)
        return a, ({"act": True, "a": a, "z": None if act.output_only else z} if keep else {})

    def _activation_backward(self, ctx, dy):
        if not ctx["act"]:
            return dy
        return self.activation.backward(ctx.get("z"), ctx["a"], dy)


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

    def regularization_grads(self):
        if not self.trainable or (self.kernel_regularizer is None and self.bias_regularizer is None):
            return {}
        return {n: r.gradient(self.params[n]) for n, r in self._regularizers() if r is not None and n in self.params}

    def _kernel_config(self):
        return {
            "use_bias": self.use_bias,
            "kernel_initializer": serialize(self.kernel_initializer),
            "bias_initializer": serialize(self.bias_initializer),
            "kernel_regularizer": serialize(self.kernel_regularizer) if self.kernel_regularizer else None,
            "bias_regularizer": serialize(self.bias_regularizer) if self.bias_regularizer else None,
        }

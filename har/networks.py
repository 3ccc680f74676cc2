"""Networks for time-series classification from the literature, on the core engine.

Every network here takes ``(N, steps, channels)`` and ends in global average
pooling and a softmax ``Dense`` layer, so its weights do not depend on the
series length: a model trained on one length can be rebuilt for another with
:func:`for_length` and the same weights.

* :func:`fcn` - the fully convolutional network of Wang, Yan and Oates (2017),
  "Time series classification from scratch with deep neural networks: a strong
  baseline" (IJCNN): three Conv1D (kernels 8, 5, 3) + batch norm + ReLU blocks.
* :func:`resnet` - the residual network of the same paper: three residual
  blocks of three convolutions each, with a 1x1 convolution shortcut.
* :func:`inception_time` - one network of InceptionTime (Fawaz et al. 2020,
  "InceptionTime: finding AlexNet for time series classification", DMKD):
  inception modules (bottleneck, three long kernels and a max-pool branch,
  concatenated) with a residual shortcut every third module.
* :func:`conv1d_network` (in :mod:`har.classifier`) - the small pooled
  network ActivityClassifier used before, kept for accelerometer windows.

Residual and inception connections are not a plain stack of layers; they are
written with :class:`Branches`, a layer that runs several stacks of layers on
the same input and adds or concatenates their outputs. ``Sequential`` sees it
as one layer.
"""
import numpy as np

from core import Input, Sequential, layers
from core.exceptions import ConfigError, ShapeError
from core.layers import LAYER_CLASSES, Layer
from core.registry import serialize

__all__ = ["Branches", "fcn", "resnet", "inception_time", "NETWORKS", "build", "for_length"]


class _Flat:
    """A dict-like view ``"branch/index/name" -> array`` over the sub-layers'
    ``params`` (or ``grads``), so optimizers and ``set_weights`` write through."""

    def __init__(self, owner, attr):
        self._owner, self._attr = owner, attr

    def _split(self, key):
        b, i, name = key.split("/", 2)
        return getattr(self._owner.branches[int(b)][int(i)], self._attr), name

    def __getitem__(self, key):
        table, name = self._split(key)
        return table[name]

    def __setitem__(self, key, value):
        table, name = self._split(key)
        table[name] = value

    def __contains__(self, key):
        try:
            table, name = self._split(key)
        except (ValueError, IndexError):
            return False
        return name in table

    def keys(self):
        return [f"{b}/{i}/{n}" for b, stack in enumerate(self._owner.branches)
                for i, lay in enumerate(stack) for n in getattr(lay, self._attr)]

    def __iter__(self):
        return iter(self.keys())

    def __len__(self):
        return len(self.keys())

    def values(self):
        return [self[k] for k in self.keys()]

    def items(self):
        return [(k, self[k]) for k in self.keys()]


class Branches(Layer):
    """Run several stacks of layers on one input and merge their outputs.

    Parameters
    ----------
    branches : list of lists of core layers
        Each inner list is applied in order to the layer's input. An empty
        list is the identity (a plain residual shortcut).
    merge : {"add", "concat"}
        ``"add"``: the outputs (all of one shape) are summed (residual
        connection). ``"concat"``: the outputs (same steps) are joined along
        the channel axis (inception module).

    Input ``(N, steps, C)``; output ``(N, steps', C')`` as the branches give.
    Weights are named ``"<branch>/<index>/<weight>"``.
    """

    def __init__(self, branches, merge="add", **kwargs):
        super().__init__(**kwargs)
        if merge not in ("add", "concat"):
            raise ConfigError(f"Branches: merge must be 'add' or 'concat', found {merge!r}")
        if not isinstance(branches, (list, tuple)) or not branches:
            raise ConfigError("Branches: branches must be a non-empty list of lists of layers")
        self.branches = []
        for stack in branches:
            stack = [LAYER_CLASSES[s["class_name"]].from_config(dict(s.get("config", {})))
                     if isinstance(s, dict) else s for s in stack]
            if not all(isinstance(s, Layer) for s in stack):
                raise ConfigError("Branches: every branch must be a list of core layers")
            self.branches.append(stack)
        self.merge = merge
        self.params = _Flat(self, "params")
        self.grads = _Flat(self, "grads")

    @property
    def non_trainable(self):
        return tuple(f"{b}/{i}/{n}" for b, stack in enumerate(self.branches)
                     for i, lay in enumerate(stack) for n in lay.non_trainable)

    def _build(self, input_shape):
        seed = int(self._rng.integers(2**31 - 1))
        shapes = []
        for b, stack in enumerate(self.branches):
            shape = tuple(input_shape)
            for i, lay in enumerate(stack):
                if lay.dtype is None:
                    lay.dtype = self.dtype
                if lay.name is None:
                    lay.name = f"{self.name}/{b}/{i}"
                lay.build(shape, rng=np.random.default_rng([seed, b, i]))
                shape = lay.output_shape
            shapes.append(tuple(shape))
        if self.merge == "add" and len(set(shapes)) != 1:
            raise ShapeError(f"Branches {self.name!r}: merge='add' needs branches of one output shape, "
                             f"found {shapes}")
        if self.merge == "concat" and len({s[:-1] for s in shapes}) != 1:
            raise ShapeError(f"Branches {self.name!r}: merge='concat' needs branches with the same steps, "
                             f"found {shapes}")
        self._shapes = shapes

    def compute_output_shape(self, input_shape):
        first = self._shapes[0]
        if self.merge == "add":
            return first
        return first[:-1] + (sum(s[-1] for s in self._shapes),)

    def forward(self, x, training=False):
        step = getattr(self, "_step", None)
        outs = []
        for stack in self.branches:
            h = x
            for lay in stack:
                lay._step = step
                h = lay.forward(h, training=training)
            outs.append(h)
        if self.merge == "add":
            total = outs[0] + outs[1] if len(outs) > 1 else outs[0].copy()
            for h in outs[2:]:
                total += h
            return total
        self._widths = [h.shape[-1] for h in outs]
        return np.concatenate(outs, axis=-1)

    def backward(self, grad, need_input_grad=True):
        if self.merge == "concat":
            cuts = np.cumsum(self._widths)[:-1]
            parts = np.split(grad, cuts, axis=-1)
        else:
            parts = [grad] * len(self.branches)
        dx = None
        for stack, g in zip(self.branches, parts):
            for i in range(len(stack) - 1, -1, -1):
                need = need_input_grad or i > 0
                if not stack[i].params and not need:
                    break
                g = stack[i].backward(g, need_input_grad=need)
            if need_input_grad:
                dx = g.copy() if dx is None else dx + g
        return dx

    def trainable_names(self):
        if not self.trainable:
            return []
        return [f"{b}/{i}/{n}" for b, stack in enumerate(self.branches)
                for i, lay in enumerate(stack) for n in lay.trainable_names()]

    def weight_names(self):
        return [f"{b}/{i}/{n}" for b, stack in enumerate(self.branches)
                for i, lay in enumerate(stack) for n in lay.weight_names()]

    def regularization_loss(self):
        return sum(lay.regularization_loss() for stack in self.branches for lay in stack)

    def add_regularization_grads(self):
        for stack in self.branches:
            for lay in stack:
                lay.add_regularization_grads()

    def count_params(self):
        return int(sum(lay.count_params() for stack in self.branches for lay in stack))

    def get_config(self):
        cfg = super().get_config()
        cfg["merge"] = self.merge
        cfg["branches"] = [[serialize(lay) for lay in stack] for stack in self.branches]
        return cfg


# a saved model holding Branches is rebuilt by name, as the core layers are
LAYER_CLASSES.setdefault("Branches", Branches)


#: batch-norm momentum of these networks: 0.9, not Keras' 0.99, because a fit on tens of series takes
#: only hundreds of steps, too few for 0.99's moving statistics to forget their initial values
BN_MOMENTUM = 0.9


def _bn():
    return layers.BatchNormalization(momentum=BN_MOMENTUM)


def _conv_bn(filters, kernel, relu=True):
    out = [layers.Conv1D(filters, kernel, padding="same", use_bias=False), _bn()]
    return out + [layers.Activation("relu")] if relu else out


def _head(stack, n_classes, seed):
    stack += [layers.GlobalAveragePooling1D(), layers.Dense(n_classes, activation="softmax")]
    return Sequential(stack, seed=seed)


def fcn(input_shape, n_classes, seed=0, filters=(128, 256, 128), kernel_sizes=(8, 5, 3)):
    """Wang et al. (2017) FCN: Conv1D -> BN -> ReLU blocks, global average pooling, softmax.

    ``filters``/``kernel_sizes`` default to the paper's (128, 256, 128) and
    (8, 5, 3). Returns an uncompiled ``core.Sequential``.
    """
    stack = [Input(shape=tuple(int(v) for v in input_shape))]
    for f, k in zip(filters, kernel_sizes):
        stack += _conv_bn(int(f), int(k))
    return _head(stack, n_classes, seed)


def resnet(input_shape, n_classes, seed=0, filters=(64, 128, 128), kernel_sizes=(8, 5, 3)):
    """Wang et al. (2017) ResNet: residual blocks of three Conv1D/BN layers
    (kernels 8, 5, 3, ReLU between) added to a 1x1 Conv1D/BN shortcut (a BN
    alone when the channel count does not change), then ReLU; global average
    pooling and softmax. Paper widths (64, 128, 128)."""
    stack = [Input(shape=tuple(int(v) for v in input_shape))]
    channels = int(input_shape[-1])
    for f in filters:
        f = int(f)
        main = _conv_bn(f, kernel_sizes[0]) + _conv_bn(f, kernel_sizes[1]) + _conv_bn(f, kernel_sizes[2], relu=False)
        short = ([_bn()] if channels == f
                 else [layers.Conv1D(f, 1, use_bias=False), _bn()])
        stack += [Branches([main, short], merge="add"), layers.Activation("relu")]
        channels = f
    return _head(stack, n_classes, seed)


def _inception_module(filters, kernel_sizes, bottleneck, in_channels):
    pre = [layers.Conv1D(bottleneck, 1, use_bias=False)] if in_channels > 1 and bottleneck else []
    convs = Branches([[layers.Conv1D(filters, k, padding="same", use_bias=False)] for k in kernel_sizes],
                     merge="concat")
    pooled = [layers.MaxPooling1D(3, strides=1, padding="same"), layers.Conv1D(filters, 1, use_bias=False)]
    return [Branches([pre + [convs], pooled], merge="concat"), _bn(),
            layers.Activation("relu")]


def inception_time(input_shape, n_classes, seed=0, filters=32, depth=6, kernel_sizes=(39, 19, 9), bottleneck=32):
    """One InceptionTime network (Fawaz et al. 2020): ``depth`` inception
    modules of ``4 * filters`` channels (a 1x1 bottleneck, three convolutions
    of ``kernel_sizes`` and a max-pool + 1x1 branch, concatenated, BN, ReLU),
    a residual shortcut (1x1 Conv1D + BN) around every three modules, global
    average pooling and softmax. The paper's kernels are 40, 20, 10; odd
    sizes keep "same" padding symmetric."""
    stack = [Input(shape=tuple(int(v) for v in input_shape))]
    channels = int(input_shape[-1])
    width = 4 * int(filters)
    block = []
    block_in = channels
    for d in range(int(depth)):
        block += _inception_module(int(filters), kernel_sizes, int(bottleneck), channels)
        channels = width
        if d % 3 == 2:
            short = [layers.Conv1D(width, 1, use_bias=False), _bn()] if block_in != width \
                else [_bn()]
            block[-1:] = []  # the ReLU comes after the addition
            stack += [Branches([block, short], merge="add"), layers.Activation("relu")]
            block, block_in = [], width
    stack += block
    return _head(stack, n_classes, seed)


NETWORKS = {"fcn": fcn, "resnet": resnet, "inception": inception_time}
"""Network name -> builder ``(input_shape, n_classes, seed=..., **options)``."""


def build(name, input_shape, n_classes, seed=0, **options):
    """The network ``name`` (a key of :data:`NETWORKS`) for ``input_shape``."""
    if name not in NETWORKS:
        raise ConfigError(f"unknown network {name!r}; valid names: {sorted(NETWORKS)}")
    return NETWORKS[name](input_shape, n_classes, seed=seed, **options)


def for_length(model, steps):
    """``model`` (ending in global pooling) rebuilt for series of ``steps`` samples, same weights.

    Raises :class:`core.exceptions.ShapeError` when the network's weights
    depend on the length (a ``Flatten`` before a ``Dense``) or ``steps`` is
    too short for its pooling.
    """
    steps = int(steps)
    if model.input_shape[1] == steps:
        return model
    cfg = model.get_config()
    cfg = dict(cfg, input_shape=[steps] + list(cfg["input_shape"][1:]))
    try:
        other = Sequential.from_config(cfg)
        other.set_weights(model.get_weights())
    except (ShapeError, ConfigError, ValueError) as exc:
        raise ShapeError(f"the network trained on series of {model.input_shape[1]} steps cannot take "
                         f"{steps} steps: {exc}") from None
    return other

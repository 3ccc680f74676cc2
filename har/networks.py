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
written with :class:`core.layers.Branches`, a layer that runs several stacks
of layers on the same input and adds or concatenates their outputs.
``Sequential`` sees it as one layer.
"""
from core import Input, Sequential, layers
from core.exceptions import ConfigError, ShapeError
from core.layers import Branches

__all__ = ["fcn", "resnet", "inception_time", "NETWORKS", "build", "for_length"]


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

"""Default Conv2D networks for image classification, adapted to the input size."""
from core import Input, Sequential, layers
from core.exceptions import ConfigError, ShapeError

ARCHITECTURES = ("lenet5", "tiny")


def _pool_size(h, w):
    """2 along each spatial axis that is at least 4 long (so it stays >= 2), else 1."""
    return (2 if h >= 4 else 1, 2 if w >= 4 else 1)


def lenet5(input_shape, n_classes, seed=0, dropout=0.25):
    """LeCun's LeNet-5 layout with ReLU and max pooling, sized to the input.

    Conv(6, 5x5) -> pool -> Conv(16, 5x5) -> pool -> Dense(120) -> Dense(84)
    -> Dense(n_classes, softmax). Convolutions use padding "same", so any
    image size works; a pooling step halves an axis only while it is at least
    4 long (8x8 digits: 8 -> 4 -> 2; 28x28 MNIST: 28 -> 14 -> 7), and larger
    images get extra pooling steps until the feature map is under 14 pixels a
    side, which keeps the dense part small. Dropout (rate ``dropout``) before
    the two hidden dense layers regularises small data sets.

    Parameters
    ----------
    input_shape : (H, W, C)
    n_classes : int
    seed : int
        Seeds weight initialisation and dropout.

    Returns
    -------
    core.Sequential, uncompiled; input (N, H, W, C), output (N, n_classes).
    """
    h, w, _ = input_shape
    stack = [Input(shape=tuple(input_shape))]
    for filters in (6, 16):
        stack.append(layers.Conv2D(filters, 5, padding="same", activation="relu"))
        pool = _pool_size(h, w)
        if pool != (1, 1):
            stack.append(layers.MaxPooling2D(pool, padding="same"))
            h, w = -(-h // pool[0]), -(-w // pool[1])
    while max(h, w) >= 14:
        pool = _pool_size(h, w)
        stack.append(layers.MaxPooling2D(pool, padding="same"))
        h, w = -(-h // pool[0]), -(-w // pool[1])
    stack.append(layers.Flatten())
    for units in (120, 84):
        if dropout:
            stack.append(layers.Dropout(dropout))
        stack.append(layers.Dense(units, activation="relu"))
    stack.append(layers.Dense(n_classes, activation="softmax"))
    return Sequential(stack, seed=seed)


def tiny(input_shape, n_classes, seed=0):
    """The classic tutorial network: Conv2D(8, 3x3, valid) -> MaxPooling2D(2) -> Flatten -> Dense softmax.

    Parameters
    ----------
    input_shape : (H, W, C), H and W at least 4
    n_classes : int
    seed : int

    Returns
    -------
    core.Sequential, uncompiled; input (N, H, W, C), output (N, n_classes).
    """
    h, w, _ = input_shape
    if h < 4 or w < 4:
        raise ShapeError(f"architecture 'tiny' needs images of at least 4x4 pixels, found {h}x{w}; "
                         f"use architecture='lenet5'")
    return Sequential([Input(shape=tuple(input_shape)),
                       layers.Conv2D(8, 3, padding="valid", activation="relu"),
                       layers.MaxPooling2D(2),
                       layers.Flatten(),
                       layers.Dense(n_classes, activation="softmax")], seed=seed)


def build(architecture, input_shape, n_classes, seed=0):
    """The network called ``architecture`` ("lenet5" or "tiny") for ``input_shape`` (H, W, C)."""
    if architecture == "lenet5":
        return lenet5(input_shape, n_classes, seed=seed)
    if architecture == "tiny":
        return tiny(input_shape, n_classes, seed=seed)
    raise ConfigError(f"architecture must be one of {list(ARCHITECTURES)}, found {architecture!r}")

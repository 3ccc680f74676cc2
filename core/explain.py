"""What the network saw: Grad-CAM, saliency (SmoothGrad) and integrated gradients,
for any ``Sequential`` built from ``core.layers``, with convolutions of any rank.

Every function here takes a batch ``x`` of shape ``(N, *input_shape)`` (the
network's input: channels last, already preprocessed) and computes exact
gradients through the layer contract: one inference forward pass that keeps
its contexts (``context=True``: batch normalization uses its moving
statistics, dropout is off) and one backward pass from the class score. The
class score is the last layer's *pre-activation* (the logit before softmax),
as in Selvaraju et al. (2017): the softmax couples the classes and saturates.

``grad_cam(model, x)``
    Gradient-weighted class activation maps: the gradient of the class score
    with respect to the feature maps of a convolution, averaged over the
    positions of each channel, weights those channels; the ReLU of the
    weighted sum is the map. The feature maps are those the next layer sees:
    the convolution's output after the batch normalization and activation
    that directly follow it (Keras users pick the activation layer for the
    same reason). The map, on the convolution's output grid, is carried back
    to the input grid through the window geometry of every layer in between
    (strides, padding, dilation and kernel span of each convolution and
    pooling): output position ``o`` of a window layer is centred on input
    coordinate ``o * stride - pad_before + (span - 1) / 2``. Chaining these
    gives, per axis, the input coordinate of every feature cell's receptive
    field centre; the map at each input position is interpolated between the
    centres around it (a cubic B-spline by default, or linearly), and held
    constant beyond the outermost ones. ``weighting="elementwise"`` gives
    HiResCAM instead (gradient times feature map, position by position).

``guided_grad_cam(model, x)``
    Grad-CAM times the (smoothed) input-gradient magnitude: Grad-CAM's region,
    sharpened to the input elements the score is most sensitive to.

``saliency(model, x)``
    The gradient of the class score with respect to the input, ``(N,
    *input_shape)``; with ``smooth=n``, SmoothGrad (Smilkov et al. 2017): the
    mean gradient over ``n`` copies of each input with Gaussian noise added,
    drawn from ``seed``.

``integrated_gradients(model, x)``
    Sundararajan et al. (2017): ``(x - baseline)`` times the mean gradient
    along the straight path from ``baseline`` (zeros) to ``x`` (midpoint rule
    with ``steps`` points). The attributions of a sample add up to
    ``score(x) - score(baseline)`` up to the quadrature error.

``class_index``: None (each sample's predicted class), one int for every
sample, or one int per sample. A model with a single output unit (sigmoid)
has two classes: 1 is the unit's logit, 0 its negative.
"""
import math
import numbers

import numpy as np

from .exceptions import ConfigError, InputError, ShapeError
from .layers.activation import Activation
from .layers.base import ActivationMixin
from .layers.branches import Branches
from .layers.conv import Conv
from .layers.dropout import Dropout
from .layers.normalization import BatchNormalization
from .utils import check_array, check_int
from .workspace import Workspace

__all__ = ["grad_cam", "guided_grad_cam", "saliency", "integrated_gradients", "conv_layers", "first_convolution", "find_conv_layer",
           "receptive_field_centres", "feature_maps"]

#: layers that act on each position (and channel) alone: they keep a convolution's grid
_POINTWISE = (BatchNormalization, Activation, Dropout)


# ------------------------------------------------------------------ arguments
def _check_model(model, what):
    from .model import Sequential

    if not isinstance(model, Sequential):
        raise InputError(f"{what}: model must be a core.Sequential, got {type(model).__name__}")
    if not model.built:
        raise InputError(f"{what}: the model is not built yet (give it an Input or train it first)")
    out = model.layers[-1].output_shape
    if len(out) != 1:
        raise ShapeError(f"{what}: the model's output must be class scores of shape (batch, classes), "
                         f"found (batch, {', '.join(map(str, out))}); explanations need a classifier")
    return model


def _check_x(model, x, what):
    arr = check_array(x, f"{what}: x")
    expected = tuple(model.input_shape[1:])
    if arr.ndim == len(expected) and tuple(arr.shape) == expected:
        raise ShapeError(f"{what}: x must be a batch of shape (N, {', '.join(map(str, expected))}); found one "
                         f"sample of shape {arr.shape}: add the batch axis (x[None])")
    if arr.ndim != len(expected) + 1 or tuple(arr.shape[1:]) != expected:
        raise ShapeError(f"{what}: x must have shape (N, {', '.join(map(str, expected))}) (the model's input), "
                         f"found {arr.shape}")
    return np.ascontiguousarray(arr, dtype=model.dtype)


def n_classes(model):
    """The number of classes a classifier ``model`` scores (2 for one sigmoid unit)."""
    k = int(model.layers[-1].output_shape[-1])
    return 2 if k == 1 else k


def _check_class_index(model, class_index, n, what):
    """None (predicted class) or an int array ``(n,)`` of class indices in range."""
    if class_index is None:
        return None
    k = n_classes(model)
    arr = np.asarray(class_index)
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer):
        raise InputError(f"{what}: class_index must be None, an int or one int per sample, got {class_index!r:.80}")
    if arr.ndim == 0:
        arr = np.full(n, int(arr))
    if arr.shape != (n,):
        raise ShapeError(f"{what}: class_index must be one int or {n} ints (one per sample), found shape {arr.shape}")
    bad = arr[(arr < 0) | (arr >= k)]
    if bad.size:
        raise InputError(f"{what}: class_index {int(bad[0])} is out of range: the model scores {k} classes "
                         f"(valid: 0..{k - 1})")
    return arr.astype(np.int64)


def _check_batch_size(batch_size, what):
    return check_int(batch_size, f"{what}: batch_size")


def _convolutions(layer):
    """The convolutions inside ``layer``: itself, or those of a ``Branches`` block, in order."""
    if isinstance(layer, Conv):
        return [layer]
    if isinstance(layer, Branches):
        return [c for stack in layer.branches for lay in stack for c in _convolutions(lay)]
    return []


def conv_layers(model):
    """Indices of the layers of ``model`` that convolve: convolutions, and blocks of
    parallel branches (residual, inception) holding convolutions; first to last."""
    return [i for i, layer in enumerate(model.layers) if _convolutions(layer)]


def first_convolution(model):
    """The first convolution layer of ``model``, inside a block of branches if need be (or None)."""
    for layer in model.layers:
        found = _convolutions(layer)
        if found:
            return found[0]
    return None


def find_conv_layer(model, layer=None, what="grad_cam"):
    """The index of a convolution layer of ``model``.

    ``layer``: None (the last convolution), an index into ``model.layers``
    (negative counts from the end), a layer name or the layer itself.
    Raises ``ConfigError`` naming ``layer`` when it is not a convolution of
    the model.
    """
    convs = conv_layers(model)
    names = [f"{i}: {model.layers[i].name!r}" for i in convs]
    if layer is None:
        if not convs:
            raise ConfigError(f"{what}: the model has no convolution layer (Conv1D/2D/3D) to explain")
        return convs[-1]
    if isinstance(layer, (numbers.Integral,)) and not isinstance(layer, bool):
        count = len(model.layers)
        if not -count <= int(layer) < count:
            raise ConfigError(f"{what}: layer={layer} is out of range: the model has {count} layers; "
                              f"its convolutions are {names}")
        index = int(layer) % count
    elif isinstance(layer, str):
        matches = [i for i, lay in enumerate(model.layers) if lay.name == layer]
        if not matches:
            raise ConfigError(f"{what}: the model has no layer named {layer!r}; its convolutions are {names}")
        index = matches[0]
    else:
        matches = [i for i, lay in enumerate(model.layers) if lay is layer]
        if not matches:
            raise ConfigError(f"{what}: layer must be an index, a name or a layer of this model, got {layer!r:.80}")
        index = matches[0]
    if index not in convs:
        found = model.layers[index]
        raise ConfigError(f"{what}: layer={layer!r} is {found.name!r} ({type(found).__name__}), not a convolution "
                          f"(or a block holding convolutions); the model's convolutions are {names}")
    return index


def _block_end(model, index):
    """The last layer of the block a convolution heads: itself and the pointwise
    layers (batch normalization, activation, dropout) right after it."""
    end = index
    while end + 1 < len(model.layers) - 1 and isinstance(model.layers[end + 1], _POINTWISE):
        end += 1
    return end


# ------------------------------------------------------------------ geometry
def receptive_field_centres(model, index):
    """Per spatial axis, ``(scale, offset, size)``: the output position ``o`` of layer
    ``index`` is centred on input coordinate ``scale * o + offset`` (in input
    elements, 0 = the first one) and sees ``size`` input elements.

    Walks back through the layers before it: convolutions and poolings
    through their window geometry; layers that keep the spatial grid
    (normalization, activation, dropout, a ``Dense`` on the last axis) leave
    it unchanged. Raises ``ConfigError`` when a layer in between has no grid
    to map through (``Flatten``, global pooling...).
    """
    rank = len(model.input_shape) - 2
    field = ([1.0] * rank, [0.0] * rank, [1] * rank)
    for i in range(index, -1, -1):
        field = _through(model.layers[i], field, f"layer {i}")
    return list(zip(*field))


def _through(layer, field, where):
    """``(scale, offset, size)`` per axis of a position after ``layer``, in terms of its input."""
    scale, offset, size = (list(f) for f in field)
    geo = getattr(layer, "geometry", None)
    if geo is not None:
        for a in range(len(scale)):
            span = (geo.kernel[a] - 1) * geo.dilation[a] + 1
            stride, before = geo.strides[a], geo.pads[a][0]
            offset[a] = stride * offset[a] - before + (span - 1) / 2.0
            scale[a] *= stride
            size[a] = (size[a] - 1) * stride + span
        return scale, offset, size
    if isinstance(layer, Branches):  # every branch ends on the same grid: follow the one that sees the most
        best = None
        for b, stack in enumerate(layer.branches):
            branch = (scale, offset, size)
            for j in range(len(stack) - 1, -1, -1):
                branch = _through(stack[j], branch, f"{where} ({layer.name!r}), branch {b}")
            if best is None or sum(branch[2]) > sum(best[2]):
                best = branch
        return best
    if tuple(layer.output_shape[:-1]) != tuple(layer.input_shape[:-1]):
        raise ConfigError(f"{where} ({layer.name!r}, {type(layer).__name__}) changes the spatial grid "
                          f"{tuple(layer.input_shape[:-1])} -> {tuple(layer.output_shape[:-1])} without a "
                          f"window geometry: a map after it cannot be carried back to the input")
    return scale, offset, size


def to_input_grid(maps, model, index, interpolation="linear"):
    """Carry maps on the output grid of layer ``index`` ``(N, *out)`` back to the
    model's input grid ``(N, *spatial)`` through the layers' geometry (see the
    module docstring): interpolation between receptive-field centres, linear
    or cubic (a cubic B-spline through the cells, clipped at zero)."""
    spatial = tuple(model.input_shape[1:-1])
    centres = receptive_field_centres(model, index)
    if interpolation == "cubic":
        from scipy import ndimage

        matrix = [1.0 / s for s, _, _ in centres]
        offset = [-o / s for s, o, _ in centres]
        out = np.stack([ndimage.affine_transform(m.astype(np.float64), matrix, offset=offset, output_shape=spatial,
                                                 order=3, mode="nearest") for m in maps])
        return np.maximum(out, 0).astype(maps.dtype)
    out = maps
    for axis, ((scale, offset, _), n) in enumerate(zip(centres, spatial), start=1):
        m = out.shape[axis]
        pos = (np.arange(n, dtype=np.float64) - offset) / scale   # each input position, in feature cells
        pos = np.clip(pos, 0.0, m - 1)
        lo = np.floor(pos).astype(np.int64)
        hi = np.minimum(lo + 1, m - 1)
        w = (pos - lo).astype(out.dtype)
        shape = [1] * out.ndim
        shape[axis] = n
        w = w.reshape(shape)
        out = np.take(out, lo, axis=axis) * (1 - w) + np.take(out, hi, axis=axis) * w
    return out


# ------------------------------------------------------------------ passes
def _score_grad(scores, class_index):
    """``(chosen classes, d score / d logits)`` for logits ``scores (N, K)``."""
    n, k = scores.shape
    if class_index is None:
        class_index = (scores[:, 0] > 0).astype(np.int64) if k == 1 else scores.argmax(axis=1)
    grad = np.zeros_like(scores)
    if k == 1:
        grad[:, 0] = np.where(class_index == 1, 1.0, -1.0)
    else:
        grad[np.arange(n), class_index] = 1.0
    return class_index, grad


def _forward(model, xb, ws):
    logits = isinstance(model.layers[-1], ActivationMixin)
    return model.run_forward(xb, training=False, context=True, logits=logits, workspace=ws)


def _batches(n, batch_size):
    for start in range(0, n, batch_size):
        yield slice(start, min(start + batch_size, n))


def grad_cam(model, x, class_index=None, layer=None, batch_size=32, return_classes=False, interpolation="cubic",
             weighting="mean"):
    """Grad-CAM maps of ``x`` on the input grid.

    Parameters
    ----------
    model : core.Sequential
        A classifier: output ``(N, classes)``, with at least one convolution.
    x : array ``(N, *input_shape)``
        The network's input (preprocessed, channels last).
    class_index : None, int or ``(N,)`` ints
        The class explained: None for each sample's predicted class.
    layer : None, int, str or Layer
        The convolution whose feature maps are weighted; None for the last one.
    batch_size : int
        Samples per forward/backward pass (bounds memory).
    return_classes : bool
        Also return the class index explained for each sample.
    interpolation : {"cubic", "linear"}
        How the map is interpolated between receptive-field centres on the
        input grid. "cubic" (a cubic B-spline through the cells, clipped at
        zero) lets the peak fall between two cells; "linear" puts it on a
        cell centre. Measured on 24^3 synthetic lesion volumes (default
        Conv3D network, 27 correct lesion predictions): peak inside the
        lesion dilated by 2 voxels for 96 % (cubic) vs 93 % (linear), median
        distance to the lesion centre 1.24 vs 1.55 voxels.
    weighting : {"mean", "elementwise"}
        "mean": Grad-CAM, each channel weighted by its gradient averaged over
        the positions. "elementwise": HiResCAM (Draelos & Carin 2020), the
        gradient times the feature map position by position, summed over the
        channels. The two agree when a global average pooling follows the
        block; with a ``Flatten`` + ``Dense`` head the channel average mixes
        the weights of every position and can point away from the object
        (measured: a digit in one quadrant of a 16x16 canvas, the "tiny"
        network: 17 % of the Grad-CAM mass in the digit's quadrant, 93 % with
        HiResCAM); with a global *max* pooling, the gradient reaches only the
        strongest position of each channel and "mean" localizes better.

    Returns
    -------
    maps : ndarray ``(N, *spatial)`` (the input's spatial shape), non-negative,
        in the model's float type; a sample whose class evidence is nowhere
        positive gets a map of zeros.
    classes : ndarray ``(N,)`` of int, when ``return_classes``.
    """
    what = "grad_cam"
    if interpolation not in ("cubic", "linear"):
        raise InputError(f"{what}: interpolation must be 'cubic' or 'linear', got {interpolation!r}")
    if weighting not in ("mean", "elementwise"):
        raise InputError(f"{what}: weighting must be 'mean' (Grad-CAM) or 'elementwise' (HiResCAM), "
                         f"got {weighting!r}")
    model = _check_model(model, what)
    index = find_conv_layer(model, layer, what)
    receptive_field_centres(model, index)  # refuse an unmappable layer before computing anything
    x = _check_x(model, x, what)
    classes = _check_class_index(model, class_index, len(x), what)
    batch_size = _check_batch_size(batch_size, what)
    end = _block_end(model, index)
    spatial_axes = tuple(range(1, len(model.input_shape) - 1))
    maps, chosen = [], []
    ws = Workspace()
    for sl in _batches(len(x), batch_size):
        ws.reclaim()
        outputs, contexts = _forward(model, x[sl], ws)
        cls, grad = _score_grad(outputs[-1], None if classes is None else classes[sl])
        features = outputs[end]
        if end == len(model.layers) - 1:
            dfeat = grad
        else:
            dfeat, _ = model.run_backward(contexts, grad, down_to=end + 1, workspace=ws)
        if weighting == "elementwise":
            cam = np.maximum((features * dfeat).sum(axis=-1), 0)
        else:
            weights = dfeat.mean(axis=spatial_axes, keepdims=True)
            cam = np.maximum((features * weights).sum(axis=-1), 0)
        maps.append(to_input_grid(cam, model, index, interpolation))
        chosen.append(np.asarray(cls))
    ws.clear()
    maps = np.concatenate(maps).astype(model.dtype, copy=False)
    return (maps, np.concatenate(chosen)) if return_classes else maps


def guided_grad_cam(model, x, class_index=None, layer=None, smoothing=1.0, batch_size=32):
    """Grad-CAM sharpened by the input gradient: ``(N, *spatial)``, non-negative.

    Selvaraju et al. (2017) multiply the Grad-CAM map, carried to the input
    grid, by a gradient image to get maps both class-discriminative and
    fine-grained ("Guided Grad-CAM"). Here the gradient image is the plain
    input gradient of the class score (its largest magnitude over the
    channels), smoothed by a Gaussian of ``smoothing`` input elements (0:
    none) so that a single noisy element cannot make the peak. Grad-CAM says
    which region; the gradient says where in it. Measured on 24^3 synthetic
    lesion volumes with the default Conv3D network (4-voxel cells at its last
    convolution): the peak lies within one voxel of the lesion centre along
    every axis for 93-100 % of lesions, against 20-25 % for Grad-CAM alone.
    """
    from scipy import ndimage

    what = "guided_grad_cam"
    if isinstance(smoothing, bool) or not isinstance(smoothing, numbers.Real) or not 0 <= smoothing < math.inf:
        raise InputError(f"{what}: smoothing must be a number >= 0 (input elements), got {smoothing!r}")
    cam, classes = grad_cam(model, x, class_index, layer=layer, batch_size=batch_size, return_classes=True)
    grads = np.abs(saliency(model, x, classes, batch_size=batch_size)).max(axis=-1)
    if smoothing:
        grads = ndimage.gaussian_filter(grads.astype(np.float64), (0,) + (float(smoothing),) * (grads.ndim - 1),
                                        mode="nearest")
    return (cam * grads).astype(cam.dtype)


def _input_gradients(model, x, classes, batch_size, ws):
    """d score / d x for each sample ``(N, *input_shape)`` and the classes explained."""
    grads, chosen = [], []
    for sl in _batches(len(x), batch_size):
        ws.reclaim()
        outputs, contexts = _forward(model, x[sl], ws)
        cls, grad = _score_grad(outputs[-1], None if classes is None else classes[sl])
        dx, _ = model.run_backward(contexts, grad, down_to=0, need_input_grad=True, workspace=ws)
        grads.append(np.array(dx, copy=True))
        chosen.append(np.asarray(cls))
    return np.concatenate(grads), np.concatenate(chosen)


def _predicted(model, x, batch_size, ws):
    out = []
    for sl in _batches(len(x), batch_size):
        ws.reclaim()
        outputs, _ = model.run_forward(x[sl], training=False, context=False, logits=False, workspace=ws)
        scores = outputs[-1]
        out.append((scores[:, 0] > 0.5).astype(np.int64) if scores.shape[1] == 1 else scores.argmax(axis=1))
    return np.concatenate(out)


def saliency(model, x, class_index=None, smooth=0, noise=0.15, seed=0, batch_size=32):
    """Input gradients of the class score (SmoothGrad with ``smooth`` > 0).

    Parameters
    ----------
    model, x, class_index, batch_size : as :func:`grad_cam`.
    smooth : int
        0: the plain gradient. n > 0: the mean gradient over n noisy copies of
        each sample (SmoothGrad); the class explained is that of the clean
        sample.
    noise : float
        Standard deviation of SmoothGrad's Gaussian noise, as a fraction of each
        sample's value range (max - min); 0.1-0.2 is usual.
    seed : int
        Seeds the noise: same seed, same map.

    Returns
    -------
    ndarray ``(N, *input_shape)``: d score / d input (signed, channels kept).
    """
    what = "saliency"
    model = _check_model(model, what)
    x = _check_x(model, x, what)
    classes = _check_class_index(model, class_index, len(x), what)
    batch_size = _check_batch_size(batch_size, what)
    smooth = check_int(smooth, f"{what}: smooth", minimum=0)
    if isinstance(noise, bool) or not isinstance(noise, numbers.Real) or not 0 <= noise < math.inf:
        raise InputError(f"{what}: noise must be a number >= 0 (a fraction of the value range), got {noise!r}")
    ws = Workspace()
    if not smooth:
        grads, _ = _input_gradients(model, x, classes, batch_size, ws)
        ws.clear()
        return grads
    rng = np.random.default_rng(check_int(seed, f"{what}: seed", minimum=0))
    if classes is None:
        classes = _predicted(model, x, batch_size, ws)
    axes = tuple(range(1, x.ndim))
    sigma = (noise * (x.max(axis=axes, keepdims=True) - x.min(axis=axes, keepdims=True))).astype(x.dtype)
    total = np.zeros(x.shape, np.float64)
    for _ in range(smooth):
        noisy = x + sigma * rng.standard_normal(x.shape).astype(x.dtype)
        g, _ = _input_gradients(model, noisy, classes, batch_size, ws)
        total += g
    ws.clear()
    return (total / smooth).astype(x.dtype)


def integrated_gradients(model, x, class_index=None, baseline=None, steps=32, batch_size=32):
    """Integrated gradients of the class score, ``(N, *input_shape)``.

    ``baseline``: None (zeros: for standardized inputs, the training mean),
    a number, or an array of one sample's shape or of ``x``'s shape.
    ``steps``: points of the midpoint rule along the path. The class explained
    is that of ``x`` (not of the points on the path).
    """
    what = "integrated_gradients"
    model = _check_model(model, what)
    x = _check_x(model, x, what)
    classes = _check_class_index(model, class_index, len(x), what)
    batch_size = _check_batch_size(batch_size, what)
    steps = check_int(steps, f"{what}: steps")
    if baseline is None:
        base = np.zeros_like(x)
    else:
        base = check_array(baseline, f"{what}: baseline").astype(x.dtype)
        try:
            base = np.broadcast_to(base, x.shape)
        except ValueError:
            raise ShapeError(f"{what}: baseline of shape {base.shape} does not fit x of shape {x.shape}; give a "
                             f"number, one sample {x.shape[1:]} or one per sample {x.shape}") from None
    ws = Workspace()
    if classes is None:
        classes = _predicted(model, x, batch_size, ws)
    total = np.zeros(x.shape, np.float64)
    for j in range(steps):
        alpha = x.dtype.type((j + 0.5) / steps)
        g, _ = _input_gradients(model, base + alpha * (x - base), classes, batch_size, ws)
        total += g
    ws.clear()
    return ((x - base) * (total / steps)).astype(x.dtype)


def feature_maps(model, x, layer=None):
    """The feature maps of a convolution block for a batch ``x``: ``(N, *out, filters)``,
    after the normalization and activation that follow the convolution
    (``layer`` as in :func:`grad_cam`; None: the first convolution)."""
    what = "feature_maps"
    model = _check_model(model, what)
    if layer is None:
        convs = conv_layers(model)
        if not convs:
            raise ConfigError(f"{what}: the model has no convolution layer")
        layer = convs[0]
    index = find_conv_layer(model, layer, what)
    x = _check_x(model, x, what)
    ws = Workspace()
    outputs, _ = model.run_forward(x, training=False, context=False, workspace=ws)
    out = np.array(outputs[_block_end(model, index)], copy=True)
    ws.clear()
    return out

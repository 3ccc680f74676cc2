"""Pictures of what a network saw and learned, drawn with matplotlib's Agg
backend: no display, and no pyplot global state (each figure is an object of
its own, safe in threads and Luigi workers).

- :func:`plot_signal_relevance`: a signal's channels over time, relevance as
  shading behind them and as a curve below;
- :func:`plot_image_relevance`: an image beside the same image with a
  heat-map overlay;
- :func:`plot_volume_relevance`: a volume in three planes (axial, coronal,
  sagittal) through the relevance peak, without and with the overlay;
- :func:`plot_kernels`: the learned kernels of a convolution: 1-D kernels as
  curves, 2-D as tiles, 3-D as rows of slices;
- :func:`plot_feature_maps`: the feature maps of one input at a layer;
- :func:`plot_roc`: the ROC curve of a binary classifier.

Each function returns the ``matplotlib.figure.Figure`` and, given ``path``,
writes it there as a PNG, atomically (``core.io.atomic_write``). Relevance
maps are shown scaled to [0, 1] by their own maximum ("inferno": dark is
none, yellow the most); kernels on a diverging scale symmetric around zero
("RdBu_r": red positive, blue negative).

:func:`classifier_figures` writes the set a report shows for a fitted
``core.estimator.BaseClassifier``: explanations of a few test samples per
class (correctly and wrongly classified), the first layer's kernels and,
for two classes, the ROC curve.
"""
import math
import os
import textwrap

import numpy as np

from .exceptions import InputError, ShapeError
from .io import atomic_write

__all__ = ["new_figure", "save_figure", "plot_signal_relevance", "plot_image_relevance", "plot_volume_relevance",
           "plot_kernels", "plot_feature_maps", "plot_roc", "classifier_figures"]

RELEVANCE_CMAP = "inferno"
KERNEL_CMAP = "RdBu_r"
OVERLAY_ALPHA = 0.85


# ------------------------------------------------------------------ figures
def new_figure(width, height, dpi=100):
    """A matplotlib Figure on an Agg canvas, outside pyplot (no global state, no display)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


#: the margin kept around what a figure draws, in inches (matplotlib's ``pad_inches``)
MARGIN_INCHES = 0.1


def save_figure(fig, path):
    """Write ``fig`` to ``path`` as a PNG, atomically, cropped to what it draws plus a margin of
    ``MARGIN_INCHES``, as ``savefig(bbox_inches="tight")`` crops it.

    ``bbox_inches="tight"`` draws a figure twice: once to find the extent of every artist, once
    to render it there. Here the figure is drawn once, the extent of its artists read from that
    drawing (``Figure.get_tightbbox``, what savefig reads) and the pixels cut to it; the
    report's pictures took 0.68-0.91x the time (``benchmarks/experiments/pictures.py``). A
    figure that draws past its canvas (a title wider than the figure, say) is saved by
    ``savefig(bbox_inches="tight")``, which widens the picture to take it in; so is a figure
    on a canvas other than Agg's, or where matplotlib's ``savefig.*`` settings ask for another
    resolution or background than the figure's."""
    crop = _tight_crop(fig)
    if crop is None:
        _savefig_tight(fig, path)
        return
    from matplotlib.image import imsave

    with atomic_write(os.fspath(path), "wb") as handle:
        imsave(handle, crop, format="png", dpi=fig.dpi)


def _savefig_tight(fig, path):
    """Write ``fig`` to ``path`` as a PNG, atomically, the way matplotlib crops it:
    ``savefig(bbox_inches="tight")`` with a margin of ``MARGIN_INCHES`` (two drawings)."""
    with atomic_write(os.fspath(path), "wb") as handle:
        fig.savefig(handle, format="png", bbox_inches="tight", pad_inches=MARGIN_INCHES)


def _tight_crop(fig):
    """The pixels of ``fig``, drawn once, within the extent of its artists widened by
    ``MARGIN_INCHES`` (past the canvas edge: the figure's background); None where
    ``save_figure`` leaves the figure to ``savefig``."""
    from matplotlib import colors, rcParams
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    plain = (rcParams["savefig.dpi"] in ("figure", fig.dpi) and rcParams["savefig.facecolor"] == "auto"
             and rcParams["savefig.edgecolor"] == "auto" and not rcParams["savefig.transparent"])
    if not (plain and isinstance(fig.canvas, FigureCanvasAgg) and getattr(fig.canvas, "device_pixel_ratio", 1) == 1):
        return None
    fig.canvas.draw()
    box = fig.get_tightbbox(fig.canvas.get_renderer())  # inches, from the bottom left
    width, height = fig.get_size_inches()
    if box is None or box.x0 < 0 or box.y0 < 0 or box.x1 > width or box.y1 > height:
        return None
    dpi = fig.dpi
    pixels = np.asarray(fig.canvas.buffer_rgba())
    rows, cols = pixels.shape[:2]
    # the picture savefig makes: the padded box's size in whole pixels (truncated, as Agg's canvas
    # is), here from the pixel nearest to its corner rather than drawn again at a fraction of one
    left, top = round((box.x0 - MARGIN_INCHES) * dpi), rows - round((box.y1 + MARGIN_INCHES) * dpi)
    right, bottom = left + int((box.width + 2 * MARGIN_INCHES) * dpi), top + int((box.height + 2 * MARGIN_INCHES) * dpi)
    inside = pixels[max(top, 0):bottom, max(left, 0):right]
    past = ((max(-top, 0), max(bottom - rows, 0)), (max(-left, 0), max(right - cols, 0)))
    if not any(past[0] + past[1]):
        return inside
    background = np.round(np.asarray(colors.to_rgba(fig.get_facecolor())) * 255).astype(np.uint8)
    return np.stack([np.pad(inside[..., c], past, constant_values=background[c]) for c in range(4)], axis=-1)


def _finish(fig, path):
    if path is not None:
        save_figure(fig, path)
    return fig


def _nice_ticks(lo, hi, integer=False):
    """Tick positions inside the range ``lo..hi`` from matplotlib's ``MaxNLocator`` (at most 5
    bins; whole numbers only where ``integer``), found once for all the panels of a grid."""
    from matplotlib.ticker import MaxNLocator

    ticks = MaxNLocator(nbins=5, integer=integer, steps=[1, 2, 2.5, 5, 10]).tick_values(lo, hi)
    return ticks[(ticks >= lo - 1e-12 * abs(hi - lo)) & (ticks <= hi + 1e-12 * abs(hi - lo))]


def _same_scale(ax, xlim, ylim, x_labels, y_labels, ticks=None):
    """Give ``ax`` fixed limits (and, given ``ticks``, fixed ``(x, y)`` tick positions), and tick
    labels only where asked (the outer panels of a grid).

    A grid of panels on one scale, without matplotlib's shared axes: a group of shared axes
    passes every limit change on to all its members, which made a figure of 32 panels take
    seconds to build and save; fixed ticks spare each panel its own search for them."""
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    if ticks is not None:
        ax.set_xticks(ticks[0])
        ax.set_yticks(ticks[1])
    ax.tick_params(labelbottom=x_labels, labelleft=y_labels)


def _title(ax, text, fontsize):
    """``ax.set_title`` at a fixed height: matplotlib then skips placing the title clear of
    ticks on top (none here), about a fifth of the profiled time of saving a grid of 32 panels."""
    ax.set_title(text, fontsize=fontsize, y=1.0)


def _array(value, name, ndims):
    arr = np.asarray(value)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise InputError(f"{name} must hold numbers, found dtype {arr.dtype}")
    if arr.ndim not in ndims:
        raise ShapeError(f"{name} must have {' or '.join(map(str, ndims))} dimensions, found shape {arr.shape}")
    arr = arr.astype(np.float64)
    if not np.isfinite(arr).all():
        raise InputError(f"{name} contains NaN or infinite values")
    return arr


def _unit(relevance):
    """Relevance scaled to [0, 1] by its maximum (negative parts dropped)."""
    r = np.maximum(relevance, 0)
    top = r.max() if r.size else 0.0
    return r / top if top > 0 else r


def _overlay(ax, relevance, **kwargs):
    """Draw ``relevance`` (in [0, 1]) over what ``ax`` shows: colour from the relevance colour map,
    opacity growing with the relevance, so that what is irrelevant stays visible underneath.
    Returns a mappable for the colour bar."""
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    cmap = colormaps[RELEVANCE_CMAP]
    rgba = cmap(relevance)
    rgba[..., 3] = OVERLAY_ALPHA * np.clip(relevance, 0, 1) ** 0.7
    ax.imshow(rgba, interpolation="bilinear", **kwargs)
    return ScalarMappable(norm=Normalize(0, 1), cmap=cmap)


def _colorbar(fig, mappable, ax, label):
    bar = fig.colorbar(mappable, ax=ax, fraction=0.046, pad=0.03)
    bar.set_label(label)
    return bar


# ------------------------------------------------------------------ signals
def plot_signal_relevance(signal, relevance, path=None, title=None, channel_names=None, sample_rate=None,
                          units=None):
    """A window of a multichannel signal with the relevance over time.

    signal: ``(steps, channels)`` (or ``(steps,)``); relevance: ``(steps,)``.
    One panel per channel (at most 12) with the relevance as shading behind
    the curve, and a last panel with the relevance itself. ``sample_rate``
    (Hz) labels the time axis in seconds, otherwise in samples.
    """
    signal = _array(signal, "signal", (1, 2))
    if signal.ndim == 1:
        signal = signal[:, None]
    relevance = _array(relevance, "relevance", (1,))
    steps, channels = signal.shape
    if relevance.shape != (steps,):
        raise ShapeError(f"relevance must have one value per step of the signal ({steps}), found shape "
                         f"{relevance.shape}")
    shown = min(channels, 12)
    names = list(channel_names) if channel_names is not None else [f"channel {c}" for c in range(channels)]
    rel = _unit(relevance)
    t = np.arange(steps) / sample_rate if sample_rate else np.arange(steps, dtype=np.float64)
    dt = 1.0 / sample_rate if sample_rate else 1.0
    edges = (t[0] - dt / 2, t[-1] + dt / 2)
    fig = new_figure(8.0, 1.3 * shown + 1.6)
    axes = fig.subplots(shown + 1, 1, squeeze=False)[:, 0]
    image = None
    for c, ax in enumerate(axes[:-1]):
        lo, hi = signal[:, c].min(), signal[:, c].max()
        pad = 0.08 * (hi - lo) if hi > lo else 1.0
        image = ax.imshow(rel[None, :], aspect="auto", cmap=RELEVANCE_CMAP, vmin=0, vmax=1, alpha=0.55,
                          extent=(edges[0], edges[1], lo - pad, hi + pad), origin="lower", interpolation="nearest")
        ax.plot(t, signal[:, c], color="#1f4e99", linewidth=1.2)
        _same_scale(ax, edges, (lo - pad, hi + pad), False, True)
        ax.set_ylabel(f"{names[c]}" + (f"\n({units})" if units else ""), fontsize=8)
        ax.grid(True, alpha=0.25)
    ax = axes[-1]
    ax.fill_between(t, rel, color="#c0392b", alpha=0.35, step="mid")
    ax.plot(t, rel, color="#c0392b", linewidth=1.2, drawstyle="steps-mid")
    _same_scale(ax, edges, (0, 1.05), True, True)
    ax.set_ylabel("relevance\n(of max)", fontsize=8)
    ax.set_xlabel("time (s)" if sample_rate else "time (samples)")
    ax.grid(True, alpha=0.25)
    if image is not None:
        _colorbar(fig, image, list(axes), "relevance (shading)")
    if title:
        fig.suptitle(title, fontsize=10)
    return _finish(fig, path)


# ------------------------------------------------------------------ images
def _display_image(image):
    """``(H, W)`` or ``(H, W, C)`` -> what imshow shows: grey, or RGB scaled to [0, 1]."""
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    if image.ndim == 3:
        if image.shape[-1] >= 3:
            rgb = image[..., :3]
            lo, hi = rgb.min(), rgb.max()
            return (rgb - lo) / (hi - lo) if hi > lo else np.zeros_like(rgb), None
        image = image.mean(axis=-1)
    return image, "gray"


def plot_image_relevance(image, relevance, path=None, title=None):
    """An image, and the image with the relevance as a heat-map overlay.

    image: ``(H, W)`` or ``(H, W, C)``; relevance: ``(H, W)``.
    """
    image = _array(image, "image", (2, 3))
    relevance = _array(relevance, "relevance", (2,))
    if relevance.shape != image.shape[:2]:
        raise ShapeError(f"relevance must have the image's height and width {image.shape[:2]}, found "
                         f"{relevance.shape}")
    shown, cmap = _display_image(image)
    fig = new_figure(7.4, 3.6)
    ax1, ax2 = fig.subplots(1, 2)
    ax1.imshow(shown, cmap=cmap, interpolation="nearest")
    _title(ax1, "input", 9)
    ax2.imshow(shown, cmap=cmap, interpolation="nearest")
    over = _overlay(ax2, _unit(relevance))
    _title(ax2, "relevance overlay", 9)
    for ax in (ax1, ax2):
        ax.set_xlabel("x (pixels)")
        ax.set_ylabel("y (pixels)")
    _colorbar(fig, over, ax2, "relevance (of max)")
    if title:
        fig.suptitle(title, fontsize=10)
    return _finish(fig, path)


# ------------------------------------------------------------------ volumes
_PLANES = (("axial", 2, (0, 1), ("R", "A")),       # fixed axis, shown axes (horizontal, vertical)
           ("coronal", 1, (0, 2), ("R", "S")),
           ("sagittal", 0, (1, 2), ("A", "S")))


def _plane(volume, fixed, index):
    """The slice of ``volume (X, Y, Z)`` at ``index`` on axis ``fixed``, transposed for imshow
    (rows: the second remaining axis, shown upwards with origin='lower')."""
    return np.take(volume, index, axis=fixed).T


def plot_volume_relevance(volume, relevance, path=None, title=None, spacing=None, point=None):
    """A volume in three planes through the relevance peak, without and with the overlay.

    volume: ``(X, Y, Z)`` or ``(X, Y, Z, C)`` (the first channel is shown),
    axes running towards Right, Anterior, Superior (as ``medical.load_scan``
    gives); relevance: ``(X, Y, Z)``; spacing: voxel size per axis (mm), for
    the aspect ratio; point: the voxel the planes pass through (default: the
    relevance maximum), marked with a cross.
    """
    volume = _array(volume, "volume", (3, 4))
    if volume.ndim == 4:
        volume = volume[..., 0]
    relevance = _array(relevance, "relevance", (3,))
    if relevance.shape != volume.shape:
        raise ShapeError(f"relevance must have the volume's shape {volume.shape}, found {relevance.shape}")
    spacing = (1.0, 1.0, 1.0) if spacing is None else tuple(float(s) for s in spacing)
    if point is None:
        point = np.unravel_index(int(np.argmax(relevance)), relevance.shape)
    point = tuple(int(p) for p in point)
    rel = _unit(relevance)
    lo, hi = np.percentile(volume, 0.5), volume.max()   # the top not clipped: a bright finding stays visible
    fig = new_figure(10.5, 7.0)
    axes = fig.subplots(2, 3)
    over = None
    for col, (name, fixed, (h, v), (hname, vname)) in enumerate(_PLANES):
        img = _plane(volume, fixed, point[fixed])
        heat = _plane(rel, fixed, point[fixed])
        aspect = spacing[v] / spacing[h]
        for row in (0, 1):
            ax = axes[row, col]
            ax.imshow(img, cmap="gray", vmin=lo, vmax=hi, origin="lower", aspect=aspect, interpolation="nearest")
            if row == 1:
                over = _overlay(ax, heat, origin="lower", aspect=aspect)
            ax.axvline(point[h], color="#2ecc71", linewidth=0.7, alpha=0.8)
            ax.axhline(point[v], color="#2ecc71", linewidth=0.7, alpha=0.8)
            ax.set_xlabel(f"voxel -> {hname}", fontsize=8)
            ax.set_ylabel(f"voxel -> {vname}", fontsize=8)
            ax.tick_params(labelsize=7)
        _title(axes[0, col], f"{name} (voxel {point[fixed]} on axis {fixed})", 9)
    _colorbar(fig, over, list(axes[1]), "relevance (of max)")
    if title:
        fig.suptitle(title, fontsize=10)
    return _finish(fig, path)


# ------------------------------------------------------------------ kernels
def _kernel_array(kernel):
    from .layers.conv import Conv

    name = "kernel"
    if isinstance(kernel, Conv):
        if not kernel.built:
            raise InputError(f"layer {kernel.name!r} is not built yet: it has no kernels to draw")
        name = f"layer {kernel.name!r}"
        kernel = kernel.params["kernel"]
    arr = _array(kernel, "kernel", (3, 4, 5))
    return arr, name


def plot_kernels(kernel, path=None, title=None, max_filters=32):
    """The learned kernels of a convolution.

    kernel: a built ``Conv1D``/``Conv2D``/``Conv3D`` layer or its kernel array
    ``(*kernel_size, in_channels, filters)`` (Keras layout). 1-D: one panel
    per filter with a curve per input channel. 2-D: one tile per filter and
    input channel (rows: input channels, at most 3; RGB tiles for 3 input
    channels). 3-D: one row per filter, its depth slices side by side (the
    first input channel). At most ``max_filters`` filters are drawn.
    """
    k, name = _kernel_array(kernel)
    rank = k.ndim - 2
    filters = min(k.shape[-1], int(max_filters))
    cin = k.shape[-2]
    limit = float(np.abs(k[..., :filters]).max()) or 1.0
    if rank == 1:
        cols = min(filters, 8)
        rows = math.ceil(filters / cols)
        fig = new_figure(1.7 * cols + 0.6, 1.4 * rows + 0.8)
        axes = fig.subplots(rows, cols, squeeze=False)
        taps = np.arange(k.shape[0])
        span = len(taps) - 1
        xlim = (-0.05 * span, 1.05 * span) if span else (-0.5, 0.5)  # one tap: centred
        ylim = (-1.05 * limit, 1.05 * limit)
        ticks = (_nice_ticks(*xlim, integer=True) if span else np.zeros(1), _nice_ticks(*ylim))
        for f in range(rows * cols):
            ax = axes.flat[f]
            if f >= filters:
                ax.set_axis_off()
                continue
            for c in range(min(cin, 6)):
                ax.plot(taps, k[:, c, f], marker="o", markersize=2, linewidth=1, label=f"in {c}")
            ax.axhline(0, color="grey", linewidth=0.5)
            _title(ax, f"filter {f}", 7)
            bottom = f // cols == rows - 1 or f + cols >= filters  # no panel below this one
            _same_scale(ax, xlim, ylim, bottom, f % cols == 0, ticks=ticks)
            ax.tick_params(labelsize=6)
            if bottom:
                ax.set_xlabel("tap", fontsize=7)
        for ax in axes[:, 0]:
            ax.set_ylabel("weight", fontsize=7)
        if cin > 1:
            axes.flat[0].legend(fontsize=6, loc="best")
    elif rank == 2:
        rgb = cin == 3
        channel_rows = 1 if rgb else min(cin, 3)
        cols = min(filters, 16)
        blocks = math.ceil(filters / cols)
        rows = blocks * channel_rows
        fig = new_figure(0.8 * cols + 1.4, 0.85 * rows + 0.9)
        axes = fig.subplots(rows, cols, squeeze=False)
        image = None
        for b in range(blocks):
            for j in range(cols):
                f = b * cols + j
                for c in range(channel_rows):
                    ax = axes[b * channel_rows + c, j]
                    ax.set_xticks([])
                    ax.set_yticks([])
                    if f >= filters:
                        ax.set_axis_off()
                        continue
                    if rgb:
                        tile = k[:, :, :, f]
                        ax.imshow(0.5 + 0.5 * tile / limit, interpolation="nearest")
                    else:
                        image = ax.imshow(k[:, :, c, f], cmap=KERNEL_CMAP, vmin=-limit, vmax=limit,
                                          interpolation="nearest")
                    if c == 0:
                        _title(ax, f"{f}", 7)
                    if j == 0 and not rgb:
                        ax.set_ylabel(f"in {c}", fontsize=7)
        if image is not None:
            _colorbar(fig, image, list(axes.flat), "weight")
    else:
        depth = k.shape[0]
        rows = min(filters, 16)
        fig = new_figure(0.9 * depth + 2.2, 0.8 * rows + 1.1)
        axes = fig.subplots(rows, depth, squeeze=False)
        image = None
        for f in range(rows):
            for d in range(depth):
                ax = axes[f, d]
                image = ax.imshow(k[d, :, :, 0, f], cmap=KERNEL_CMAP, vmin=-limit, vmax=limit,
                                  interpolation="nearest")
                ax.set_xticks([])
                ax.set_yticks([])
                if f == 0:
                    _title(ax, f"slice {d} of axis 0", 7)
                if d == 0:
                    ax.set_ylabel(f"filter {f}", fontsize=7)
        # room for a title of two lines, and for the colour bar's ticks and label on the right
        fig.subplots_adjust(top=1 - 0.95 / fig.get_figheight(), right=1 - 0.9 / fig.get_figwidth())
        _colorbar(fig, image, list(axes.flat), "weight")
    shape = f"{k.shape[0]}-tap" if rank == 1 else "x".join(map(str, k.shape[:-2]))
    text = title or (f"{name}: {k.shape[-1]} learned {shape} kernels over {cin} input channel(s)"
                     + (f" (first {filters} shown)" if filters < k.shape[-1] else ""))
    if rank == 3:  # a narrow figure with room for two lines: wrapped to its width (about 0.6 em a
        # character at 10 points), so that save_figure draws it once (see save_figure)
        text = "\n".join(textwrap.fill(line, max(20, int(fig.get_figwidth() * 72 / 6))) for line in text.splitlines())
    fig.suptitle(text, fontsize=10)
    return _finish(fig, path)


# ------------------------------------------------------------------ feature maps
def plot_feature_maps(maps, path=None, title=None, max_maps=32):
    """The feature maps of one input at one layer.

    maps: ``(*spatial, channels)`` (one sample: see ``core.explain.feature_maps``).
    1-D: a heat map, channels by time. 2-D: one tile per channel. 3-D: one
    tile per channel, the axial slice (last axis) where the channel is
    strongest.
    """
    maps = _array(maps, "maps", (2, 3, 4))
    rank = maps.ndim - 1
    channels = min(maps.shape[-1], int(max_maps))
    if rank == 1:
        fig = new_figure(8.0, 0.18 * channels + 1.6)
        ax = fig.subplots()
        image = ax.imshow(maps[:, :channels].T, aspect="auto", cmap="viridis", interpolation="nearest",
                          origin="lower")
        ax.set_xlabel("position (feature-map steps)")
        ax.set_ylabel("channel")
        _colorbar(fig, image, ax, "activation")
    else:
        cols = min(channels, 8)
        rows = math.ceil(channels / cols)
        fig = new_figure(1.35 * cols + 1.0, 1.35 * rows + 0.9)
        axes = fig.subplots(rows, cols, squeeze=False)
        for c in range(rows * cols):
            ax = axes.flat[c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c >= channels:
                ax.set_axis_off()
                continue
            m = maps[..., c]
            label = f"{c}"
            if rank == 3:
                z = int(np.argmax(m.max(axis=(0, 1))))
                m = m[:, :, z].T
                label = f"{c} (z={z})"
            ax.imshow(m, cmap="viridis", interpolation="nearest", origin="lower" if rank == 3 else "upper")
            _title(ax, label, 7)
    shape = "x".join(map(str, maps.shape[:-1]))
    fig.suptitle(title or f"feature maps {shape}, {maps.shape[-1]} channels"
                 + (f" (first {channels} shown)" if channels < maps.shape[-1] else ""), fontsize=10)
    return _finish(fig, path)


# ------------------------------------------------------------------ ROC
def plot_roc(y_true, scores, path=None, title=None, positive=None, threshold=None):
    """ROC curve of a binary classifier: ``y_true`` ``(N,)`` booleans (True: the
    positive class), ``scores`` ``(N,)`` its probability; the AUC in the legend,
    and the operating point of a decision ``threshold`` on the scores when given."""
    from sklearn import metrics as skm

    y = np.asarray(y_true).astype(bool).reshape(-1)
    s = _array(scores, "scores", (1,))
    if len(y) != len(s):
        raise ShapeError(f"y_true has {len(y)} entries but scores has {len(s)}")
    if y.all() or not y.any():
        raise InputError("plot_roc needs samples of both classes in y_true")
    fpr, tpr, _ = skm.roc_curve(y, s)
    auc = skm.auc(fpr, tpr)
    fig = new_figure(4.6, 4.4)
    ax = fig.subplots()
    ax.plot(fpr, tpr, color="#c0392b", linewidth=1.8, label=f"ROC (AUC {auc:.3f})")
    ax.plot([0, 1], [0, 1], "--", color="grey", linewidth=0.8, label="chance")
    if threshold is not None:
        decided = s >= threshold
        sensitivity = (decided & y).sum() / max(1, y.sum())
        false_positive = (decided & ~y).sum() / max(1, (~y).sum())
        ax.plot([false_positive], [sensitivity], "s", color="black", label=f"threshold {threshold:.3f}")
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.01)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel(f"true positive rate{f' ({positive})' if positive is not None else ''}")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right")
    ax.set_title(title or "ROC curve", fontsize=10)
    return _finish(fig, path)


# ------------------------------------------------------------------ a classifier's set
def _take(X, idx):
    if isinstance(X, (list, tuple)):
        return [X[i] for i in idx]
    return np.asarray(X)[idx]


def classifier_figures(clf, X, y, folder, per_class=None, wrong_per_class=1, method=None):
    """Write the pictures a report shows for a fitted classifier, into ``folder``.

    The first convolution's kernels (``filters.png``); the feature maps of the
    first sample after the first convolution block (``feature_maps.png``); for two classes the
    ROC curve (``roc_curve.png``); for every class, the first ``per_class``
    samples it classified correctly and the first ``wrong_per_class`` it got
    wrong (explained for the class it predicted), each drawn by
    ``clf.plot_explanation`` into ``explanations/<class>-<correct|wrong>-<index>.png``.

    ``per_class`` None: 2 for up to 4 classes, else 1 (each picture takes a
    second or two to draw on a 2-core machine: most of a small pipeline run's evaluation).

    Returns a list of ``(file name relative to folder, caption)``, in the
    order a report should show them.
    """
    from .explain import conv_layers, first_convolution
    from .explain import feature_maps as explain_feature_maps

    from .io import make_folder

    make_folder(os.path.join(folder, "explanations"), "classifier_figures: folder")
    y = np.asarray(y)
    proba = clf.predict_proba(X)
    classes = clf.classes_
    if classes.dtype.kind in "US":
        y = y.astype(str)
    pred = clf._decide(proba)  # as ``predict`` decides (a binary classifier's threshold), not the argmax
    if per_class is None:
        per_class = 2 if len(classes) <= 4 else 1
    figures = []
    model = clf.model_
    convs = conv_layers(model)
    if convs:
        name = "filters.png"
        layer = first_convolution(model)
        plot_kernels(layer, os.path.join(folder, name))
        figures.append((name, f"Learned kernels of the first convolution ({layer.name})"))
    if convs and len(y):
        name = "feature_maps.png"
        first = _take(X, [0])
        xt = clf._network_input(clf._checked_X(first, fitting=False))
        layer = model.layers[convs[0]]
        plot_feature_maps(explain_feature_maps(clf._model_for_input(xt), xt, convs[0])[0], os.path.join(folder, name),
                          title=f"Feature maps of test sample 0 (true {y[0]}) after {layer.name} and its activation")
        figures.append((name, f"Feature maps of test sample 0 after the first convolution block ({layer.name})"))
    if len(classes) == 2 and len(np.unique(y)) == 2:
        name = "roc_curve.png"
        plot_roc(y == classes[1], proba[:, 1], os.path.join(folder, name),
                 title=f"ROC curve, positive class {classes[1]}", positive=classes[1],
                 threshold=getattr(clf, "threshold_", None))
        figures.append((name, f"ROC curve (positive class: {classes[1]})"))
    chosen = []
    for k, label in enumerate(classes):
        true_k = np.flatnonzero(y == label)
        right = true_k[pred[true_k] == k][:per_class]
        wrong = true_k[pred[true_k] != k][:wrong_per_class]
        chosen += [(i, "correct") for i in right] + [(i, "wrong") for i in wrong]
    if chosen:
        idx = [i for i, _ in chosen]
        names = []
        for (i, kind) in chosen:
            stem = f"explanations/{_slug(y[i])}-{kind}-{i}.png"
            names.append(stem)
        clf.plot_explanation(_take(X, idx), [os.path.join(folder, n) for n in names], method=method,
                             true_labels=y[idx])
        for n, (i, kind) in zip(names, chosen):
            p = classes[pred[i]]
            figures.append((n, f"Test sample {i}, true {y[i]}, predicted {p} ({proba[i, pred[i]]:.2f}): "
                               f"{'correct' if kind == 'correct' else 'misclassified'}; "
                               f"relevance for {p}"))
    return figures


def _slug(value):
    text = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in str(value))
    return text.strip("._")[:30] or "class"

"""The picture functions run headless (Agg, no pyplot) and write non-empty PNGs; bad input gets our errors."""
import os
import subprocess
import sys

import numpy as np
import pytest

from core import Input, Sequential, layers
from core.exceptions import InputError, ShapeError
from core.explain import feature_maps
from core.plots import (plot_feature_maps, plot_image_relevance, plot_kernels, plot_roc, plot_signal_relevance,
                        plot_volume_relevance)

PNG = b"\x89PNG\r\n\x1a\n"
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _png(path):
    with open(path, "rb") as handle:
        head = handle.read(8)
    return head == PNG and os.path.getsize(path) > 2000


def test_pictures_are_written_headless(tmp_path):
    rng = np.random.default_rng(0)
    steps = 64
    rel = np.exp(-0.5 * ((np.arange(steps) - 20) / 4.0) ** 2)
    paths = {
        "signal": plot_signal_relevance(rng.normal(size=(steps, 3)), rel, tmp_path / "signal.png", title="walking",
                                        sample_rate=50),
        "image": plot_image_relevance(rng.uniform(0, 16, (8, 8)), rng.uniform(size=(8, 8)), tmp_path / "image.png"),
        "rgb": plot_image_relevance(rng.uniform(0, 255, (12, 10, 3)), rng.uniform(size=(12, 10)),
                                    tmp_path / "rgb.png"),
        "volume": plot_volume_relevance(rng.normal(size=(10, 12, 9, 1)), rng.uniform(size=(10, 12, 9)),
                                        tmp_path / "volume.png", spacing=(1, 1, 2)),
        "roc": plot_roc(rng.integers(0, 2, 40), rng.uniform(size=40), tmp_path / "roc.png"),
    }
    for rank, shape in ((1, (5, 3, 6)), (2, (3, 3, 1, 12)), (2, (3, 3, 3, 4)), (3, (3, 3, 3, 1, 5))):
        name = f"kernels{rank}-{shape[-2]}"
        plot_kernels(rng.normal(size=shape), tmp_path / f"{name}.png")
        paths[name] = None
    model = Sequential([Input((6, 6, 5, 1)), layers.Conv3D(4, 3, padding="same", activation="relu"),
                        layers.GlobalMaxPooling3D(), layers.Dense(2, activation="softmax")], seed=0)
    plot_kernels(model.layers[0], tmp_path / "layer.png")
    for rank, x in ((1, rng.normal(size=(16, 7))), (2, rng.normal(size=(9, 9, 5))),
                    (3, feature_maps(model, rng.normal(size=(1, 6, 6, 5, 1)))[0])):
        plot_feature_maps(x, tmp_path / f"maps{rank}.png")
    written = sorted(p.name for p in tmp_path.iterdir())
    assert len(written) == 13, written
    for name in written:
        assert _png(tmp_path / name), name
    assert paths["signal"].get_axes()                 # the figure is returned for further use


def test_panels_of_a_grid_share_one_scale_and_label_only_the_outer_ones():
    """1-D kernels and a signal's channels are drawn on common axes: every kernel panel spans
    the same symmetric weight range holding all weights drawn, and the signal panels the same
    time range; only the bottom row's time axes and the first column's weight axes are labelled."""
    rng = np.random.default_rng(1)
    k = rng.normal(size=(5, 2, 11))
    k[2, 1, 7] = 4.0                                        # the largest weight, in one panel
    axes = [ax for ax in plot_kernels(k).get_axes() if ax.axison]
    assert len(axes) == 11
    ylims = {ax.get_ylim() for ax in axes}
    xlims = {ax.get_xlim() for ax in axes}
    assert len(ylims) == 1 and len(xlims) == 1
    lo, hi = ylims.pop()
    assert lo == -hi and hi >= 4.0 and hi < 4.5
    assert 4.0 in axes[0].get_yticks() and len(axes[0].get_yticks()) <= 7  # a tick at the largest weight
    x0, x1 = xlims.pop()
    assert x0 < 0 and x1 > 4 and list(axes[0].get_xticks()) == [0, 1, 2, 3, 4]

    def labelled(axis):
        return axis.get_major_ticks()[0].label1.get_visible()

    assert [i for i, ax in enumerate(axes) if labelled(ax.yaxis)] == [0, 8]  # 8 panels a row
    bottom = [i for i, ax in enumerate(axes) if labelled(ax.xaxis)]
    assert bottom == [3, 4, 5, 6, 7, 8, 9, 10]                # the last row, and those with no panel below
    assert [i for i, ax in enumerate(axes) if ax.get_xlabel() == "tap"] == bottom
    one_tap = [ax for ax in plot_kernels(rng.normal(size=(1, 1, 2))).get_axes() if ax.axison]
    assert one_tap[0].get_xlim() == (-0.5, 0.5) and list(one_tap[0].get_xticks()) == [0]
    t = np.arange(40)
    sig = plot_signal_relevance(np.c_[np.sin(t), 10 * np.cos(t)], np.ones(40), sample_rate=20)
    panels = [ax for ax in sig.get_axes() if ax.get_label() != "<colorbar>"]
    assert len(panels) == 3 and len({ax.get_xlim() for ax in panels}) == 1
    assert [labelled(ax.xaxis) for ax in panels] == [False, False, True]
    assert panels[1].get_ylim()[1] > 10 > panels[0].get_ylim()[1]  # each channel keeps its own range


def _saved_pixels(path):
    from matplotlib.image import imread

    return (imread(path) * 255).round().astype(np.uint8)


def test_a_picture_is_saved_as_tight_bbox_saves_it_from_one_drawing(tmp_path, monkeypatch):
    """``save_figure`` writes the picture ``savefig(bbox_inches="tight")`` writes, of the same
    size and up to anti-aliasing (no second drawing, so no shift by a fraction of a pixel),
    without calling ``savefig``; a figure drawn past its canvas is left to ``savefig``."""
    from matplotlib.figure import Figure

    from core.plots import new_figure, save_figure

    def both(fig, name, once=True):
        if once:
            monkeypatch.setattr(Figure, "savefig", lambda *a, **k: pytest.fail(f"{name}: drawn twice"))
        save_figure(fig, tmp_path / f"{name}.png")
        monkeypatch.undo()
        fig.savefig(tmp_path / f"{name}-tight.png", bbox_inches="tight")
        ours, theirs = _saved_pixels(tmp_path / f"{name}.png"), _saved_pixels(tmp_path / f"{name}-tight.png")
        assert ours.shape == theirs.shape, name
        assert np.abs(ours.astype(float) - theirs).mean() < 0.03 * 255, name
        return ours

    roc = plot_roc(np.arange(40) % 2, np.linspace(0, 1, 40), title="ROC")
    assert both(roc, "roc").shape[1] < roc.canvas.get_width_height()[0]  # cropped
    full = new_figure(2.0, 1.5)  # drawn to 0.02 inch from the edges: the margin goes past the canvas
    ax = full.add_axes([0.01, 0.01, 0.98, 0.98])
    ax.plot([0, 1], [0, 1], color="black")
    ax.set_axis_off()
    pixels = both(full, "full")
    assert pixels.shape[0] > 150 and pixels.shape[1] > 200  # larger than the canvas...
    assert (pixels[:3] == 255).all() and (pixels[:, -3:] == 255).all()  # ...by a white margin
    wide = new_figure(2.0, 1.5)  # a title wider than the figure, on both sides of it
    wide.add_subplot().plot([0, 1])
    wide.suptitle("a title far wider than the two inches of this figure, on both sides of it")
    assert both(wide, "wide", once=False).shape[1] > 200  # widened to take the whole title in
    outside = new_figure(2.0, 1.5)  # a note placed wholly right of the canvas
    outside.add_subplot().plot([0, 1])
    outside.text(1.05, 0.5, "a note")
    assert both(outside, "outside", once=False).shape[1] > 200


def test_every_report_picture_fits_its_canvas_and_is_drawn_once(tmp_path, monkeypatch):
    """Titles, labels and colour bars stay inside the figure, so that ``save_figure`` needs no
    second drawing by ``savefig(bbox_inches="tight")``, for the sizes the classifiers use."""
    from matplotlib.figure import Figure

    monkeypatch.setattr(Figure, "savefig", lambda *a, **k: pytest.fail("a picture drew past its canvas"))
    rng = np.random.default_rng(2)
    plot_signal_relevance(rng.normal(size=(128, 9)), rng.random(128), tmp_path / "s.png", title="walking: upstairs",
                          sample_rate=50)
    plot_image_relevance(rng.random((28, 28)), rng.random((28, 28)), tmp_path / "i.png", title="digit 3")
    plot_volume_relevance(rng.random((32, 32, 32)), rng.random((32, 32, 32)), tmp_path / "v.png", title="lesion")
    for name, conv, shape in (("1", layers.Conv1D(32, 8), (128, 9)), ("2", layers.Conv2D(32, 3), (28, 28, 1)),
                              ("3", layers.Conv3D(16, 3), (32, 32, 32, 1))):
        plot_kernels(Sequential([Input(shape=shape), conv], seed=0).layers[0], tmp_path / f"k{name}.png")
    plot_feature_maps(rng.random((26, 26, 32)), tmp_path / "f.png")
    plot_roc(np.arange(50) % 2, rng.random(50), tmp_path / "r.png", title="ROC curve, positive class lesion",
             positive="lesion", threshold=0.5)
    assert len(list(tmp_path.iterdir())) == 8


def test_pictures_need_no_pyplot_and_no_display(tmp_path):
    """In a fresh process without a display, drawing leaves pyplot (global figure state) unimported."""
    code = ("import sys, numpy as np; from core.plots import plot_image_relevance; "
            f"plot_image_relevance(np.ones((4, 4)), np.eye(4), {str(tmp_path / 'a.png')!r}); "
            "print('matplotlib.pyplot' in sys.modules)")
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "MPLBACKEND")}
    env["PYTHONPATH"] = os.pathsep.join([ROOT] + [p for p in [env.get("PYTHONPATH")] if p])
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "False"
    assert _png(tmp_path / "a.png")


def test_pictures_refuse_bad_input(tmp_path):
    with pytest.raises(ShapeError, match="relevance must have one value per step"):
        plot_signal_relevance(np.zeros((10, 3)), np.zeros(9))
    with pytest.raises(ShapeError, match="relevance must have the image's height and width"):
        plot_image_relevance(np.zeros((8, 8)), np.zeros((4, 4)))
    with pytest.raises(ShapeError, match="relevance must have the volume's shape"):
        plot_volume_relevance(np.zeros((4, 4, 4)), np.zeros((4, 4, 3)))
    with pytest.raises(InputError, match="relevance contains NaN"):
        plot_image_relevance(np.zeros((8, 8)), np.full((8, 8), np.nan))
    with pytest.raises(ShapeError, match="kernel must have 3 or 4 or 5 dimensions"):
        plot_kernels(np.zeros((3, 3)))
    with pytest.raises(InputError, match="both classes"):
        plot_roc(np.ones(5), np.linspace(0, 1, 5))
    assert not list(tmp_path.iterdir())

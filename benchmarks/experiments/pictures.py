"""What a report picture costs to write: each kind drawn by ``core.plots`` and saved by
``core.plots.save_figure`` (one drawing, cropped) and by matplotlib's
``savefig(bbox_inches="tight")`` (two drawings), timed by turns.

``python -m benchmarks.experiments.pictures [--rounds R]``

Each round builds every picture twice, once saved each way, in alternating order, so that the
machine's drift falls on both alike. Prints, per picture, the median seconds of each and the
median over rounds of their ratio (``save_figure`` / ``savefig``).
"""
import argparse
import os
import tempfile
import time

import numpy as np

from core import Input, Sequential, layers, plots


def pictures(seed=0):
    """``{name: draw(path)}``: the pictures a report of each domain shows, on random data of
    the sizes the classifiers use (9 HAR channels of 128 steps, a 28x28 digit, a 32^3 scan)."""
    rng = np.random.default_rng(seed)
    signal, relevance = rng.normal(size=(128, 9)), rng.random(128)
    image = rng.random((28, 28))
    volume = rng.random((32, 32, 32))
    kernels = {rank: Sequential([Input(shape=shape), conv], seed=seed).layers[0] for rank, shape, conv in (
        (1, (128, 9), layers.Conv1D(32, 8)), (2, (28, 28, 1), layers.Conv2D(32, 3)),
        (3, (32, 32, 32, 1), layers.Conv3D(8, 3)))}
    labels = rng.integers(0, 2, 200)
    return {
        "signal relevance": lambda p: plots.plot_signal_relevance(signal, relevance, p, title="walking",
                                                                  sample_rate=50),
        "image relevance": lambda p: plots.plot_image_relevance(image, rng.random((28, 28)), p, title="3"),
        "volume relevance": lambda p: plots.plot_volume_relevance(volume, rng.random((32, 32, 32)), p),
        "1-D kernels": lambda p: plots.plot_kernels(kernels[1], p),
        "2-D kernels": lambda p: plots.plot_kernels(kernels[2], p),
        "3-D kernels": lambda p: plots.plot_kernels(kernels[3], p),
        "feature maps": lambda p: plots.plot_feature_maps(rng.random((26, 26, 32)), p),
        "ROC curve": lambda p: plots.plot_roc(labels, rng.random(200) + 0.3 * labels, p, threshold=0.6),
    }


def compare(rounds):
    """``{name: {"save_figure": [seconds], "savefig": [seconds]}}`` over ``rounds`` rounds."""
    draw = pictures()
    ways = {"save_figure": plots.save_figure, "savefig": plots._savefig_tight}
    times = {name: {way: [] for way in ways} for name in draw}
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "picture.png")
        for name in draw:  # fonts and colour maps loaded once, before any timing
            draw[name](path)
        for r in range(rounds):
            order = list(ways) if r % 2 == 0 else list(ways)[::-1]
            for name, make in draw.items():
                for way in order:
                    plots.save_figure = ways[way]  # the module's functions look it up at each call
                    try:
                        start = time.perf_counter()
                        make(path)
                        times[name][way].append(time.perf_counter() - start)
                    finally:
                        plots.save_figure = ways["save_figure"]
    return times


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    times = compare(args.rounds)
    print("| picture | save_figure (s) | savefig tight (s) | ratio, median of rounds |")
    print("|---|---|---|---|")
    for name, t in times.items():
        ratio = np.median(np.array(t["save_figure"]) / np.array(t["savefig"]))
        print(f"| {name} | {np.median(t['save_figure']):.3f} | {np.median(t['savefig']):.3f} | {ratio:.2f} |")


if __name__ == "__main__":
    main()

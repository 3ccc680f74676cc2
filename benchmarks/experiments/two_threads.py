"""What a second thread can give on this machine, for the kinds of work a training step does.

``python -m benchmarks.experiments.two_threads [--repeats 5]`` times each piece of work
twice in a row on one thread, then once on each of two Python threads at the same time
(each on its own arrays, BLAS held to one thread), and prints the speed-up
``serial / parallel``, the best and the median of ``--repeats`` tries. The pieces have the
shapes of the Conv3D 32^3 case:

- a contiguous copy of 4 M floats;
- a strided copy (a window of a channels-first volume, rows of 30 floats): im2col;
- an element-wise ufunc on the same window;
- a strided maximum with 8 channels innermost: max pooling;
- matrix products: the first layer's tall, thin product (27,000 x 27 by 27 x 8) and the
  second layer's (8,788 x 216 by 216 x 16).

NumPy releases the GIL in all of them (a pure-Python thread beside them keeps its pace), so
a speed-up below 2 here is the hardware's: two cores sharing a memory system and caches, or
virtual cores of one physical core. The sharded training step of ``core.parallel`` cannot
scale better than the mix of these pieces it runs.
"""
import argparse
import statistics

from ..machine import speed_up


def _pieces(np):
    rng = np.random.default_rng(0)

    def volume():
        return rng.random((8, 32, 32, 32), dtype=np.float32)

    def channels_last():
        return rng.random((8, 30, 30, 30, 8), dtype=np.float32)

    k1 = rng.random((27, 8), dtype=np.float32)
    k2 = rng.random((216, 16), dtype=np.float32)
    return {
        "contiguous copy 4M": (lambda: (rng.random(4_000_000, dtype=np.float32), np.empty(4_000_000, np.float32)),
                               lambda a, b: np.copyto(b, a), 20),
        "strided copy (im2col)": (lambda: (volume(), np.empty((8, 30, 30, 30), np.float32)),
                                  lambda a, b: np.copyto(b, a[:, 1:31, 1:31, 1:31]), 40),
        "ufunc on a window": (lambda: (volume(), np.empty((8, 30, 30, 30), np.float32)),
                              lambda a, b: np.multiply(a[:, 1:31, 1:31, 1:31], 2.0, out=b), 40),
        "strided max, 8 channels (pooling)": (
            lambda: (channels_last(), np.empty((8, 15, 15, 15, 8), np.float32)),
            lambda a, b: np.maximum(a[:, 0::2, 0::2, 0::2], a[:, 1::2, 1::2, 1::2], out=b), 40),
        "product 27000x27 @ 27x8": (lambda: (rng.random((27000, 27), dtype=np.float32), np.empty((27000, 8), np.float32)),
                                    lambda a, b: np.matmul(a, k1, out=b), 40),
        "product 8788x216 @ 216x16": (lambda: (rng.random((8788, 216), dtype=np.float32),
                                               np.empty((8788, 16), np.float32)),
                                      lambda a, b: np.matmul(a, k2, out=b), 20),
    }


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.experiments.two_threads",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args(argv)
    import numpy as np
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1, user_api="blas"):
        print("| work | speed-up, best | median |")
        print("|---|---|---|")
        for name, (make, fn, calls) in _pieces(np).items():
            runs = [speed_up(make, fn, calls) for _ in range(args.repeats)]
            print(f"| {name} | {max(runs):.2f} | {statistics.median(runs):.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Which block size suits this machine: the training step and ``predict`` of the benchmark
cases with their large convolutions built in blocks of each size (``core.config.set_block_bytes``).

``python -m benchmarks.experiments.blocks [--cases conv3d_64_b4 ...] [--sizes 512K 4M ...]
[--threads N] [--rounds R]``

One model per size, all in this process, timed by turns (each round: the best of three
training steps after an untimed one, then the same for predict, for every size), so that the
machine's drift falls on all of them alike. Prints, per case and size, the median time and the
median over rounds of its ratio to the first size's time in the same round. The engine's default for this machine is
``core.config.default_block_bytes()``; set another with ``NUMPY_CNN_BLOCK_BYTES``.
"""
import argparse

import numpy as np

from core import config

from ..cases import CASES
from .layer_times import best
from .profile_cases import setup

DEFAULT_CASES = ("conv3d_64_b4", "conv3d_32_b8", "lenet5_b64", "tutorial_b64")
DEFAULT_SIZES = ("4M", "2M", "1M", "512K")


def compare(case_name, sizes, rounds):
    """``{size: (train seconds per round, predict seconds per round)}`` for ``case_name``."""
    models = {}
    x = y = None
    try:
        for size in sizes:
            config.set_block_bytes(size)
            model, x, y = setup(CASES[case_name])
            model.train_on_batch(x, y)
            model.predict(x, batch_size=len(x))
            models[size] = model
    finally:
        config.set_block_bytes(None)
    times = {size: ([], []) for size in sizes}
    for _ in range(rounds):
        for size, model in models.items():
            times[size][0].append(best(lambda: model.train_on_batch(x, y), reps=3))
            times[size][1].append(best(lambda: model.predict(x, batch_size=len(x)), reps=3))
    return times


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.experiments.blocks", description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", nargs="+", default=list(DEFAULT_CASES), choices=sorted(CASES))
    p.add_argument("--sizes", nargs="+", default=list(DEFAULT_SIZES),
                   help="block sizes, in bytes or with a K/M suffix; ratios are to the first")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=9)
    args = p.parse_args(argv)
    for size in args.sizes:  # a bad size fails here, before any timing
        config._parse_bytes(size, "--sizes")
    config.set_num_threads(args.threads)
    print(f"L2 cache a CPU: {config.l2_cache_bytes() or 'unknown'} bytes; default block here: "
          f"{config.default_block_bytes()} bytes; in effect (NUMPY_CNN_BLOCK_BYTES): {config.block_bytes()} bytes; "
          f"{args.threads} thread(s), {args.rounds} rounds")
    print(f"{'case':16s} {'block':>6s} {'train ms':>9s} {'ratio':>6s} {'predict ms':>11s} {'ratio':>6s}")
    for name in args.cases:
        times = compare(name, args.sizes, args.rounds)
        base_train, base_predict = (np.array(t) for t in times[args.sizes[0]])
        for size, (train, predict) in times.items():
            train, predict = np.array(train), np.array(predict)
            print(f"{name:16s} {size:>6s} {np.median(train) * 1e3:9.2f} {np.median(train / base_train):6.3f} "
                  f"{np.median(predict) * 1e3:11.2f} {np.median(predict / base_predict):6.3f}")


if __name__ == "__main__":
    main()

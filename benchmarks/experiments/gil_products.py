"""Whether a matrix product lets a partner thread run: ``matmul`` against ``core.blas.dot``.

``python -m benchmarks.experiments.gil_products [--seconds S]`` runs each product over and over
on the main thread (BLAS at one thread) while a second thread counts in a pure-Python loop, and
prints the partner's pace relative to its pace beside a sleeping main thread. A product that
releases the GIL leaves the partner most of its pace; one that holds it leaves a fraction.

On this project's 2-core machine (2026-11-30), NumPy 2.4's ``matmul`` held the GIL for the
whole product whenever the result had 500 elements or fewer, however long it took. Two
runs: the partner kept 0.29-0.36 of its pace during LeNet-5's first kernel gradient ``(25,
25088) @ (25088, 6)``, a batch-norm sum ``ones @ (100000, 16)`` or a ``(20, 5000) @ (5000,
25)`` product, and 0.64-0.87 during ``np.dot`` of the same operands; ``matmul`` with a result
of 529 elements left it 0.97-1.12 (the pace is noisy: read the columns against each other).
That is why the engine's weight gradients and sums go through ``blas.dot``.
"""
import argparse
import sys
import threading
import time

import numpy as np

from core import blas


def partner_pace(fn, seconds):
    """Iterations per second of a pure-Python counting loop on a second thread while ``fn``
    runs over and over on this one."""
    stop, count = [False], [0]

    def spin():
        c = 0
        while not stop[0]:
            c += 1
        count[0] = c

    thread = threading.Thread(target=spin)
    t0 = time.perf_counter()
    thread.start()
    while time.perf_counter() - t0 < seconds:
        fn()
    elapsed = time.perf_counter() - t0
    stop[0] = True
    thread.join()
    return count[0] / elapsed


# (label, shape of a, shape of b): a weight gradient, a sum over rows, and products whose
# results fall either side of 500 elements
PRODUCTS = [
    ("LeNet-5 conv 1 kernel gradient", (25, 25088), (25088, 6)),
    ("sum over rows (batch norm)", (100000,), (100000, 16)),
    ("result 500 elements", (20, 5000), (5000, 25)),
    ("result 529 elements", (23, 5000), (5000, 23)),
    ("LeNet-5 dense 1 weight gradient", (400, 32), (32, 120)),
]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=0.5, help="time per measurement")
    args = p.parse_args(argv)
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-4)  # the partner asks for the GIL often, as a shard's NumPy calls do
    try:
        rng = np.random.default_rng(0)
        base = partner_pace(lambda: time.sleep(0.001), args.seconds)
        print(f"{'product':34s} {'result':>7s}  partner's pace: matmul   blas.dot")
        for label, sa, sb in PRODUCTS:
            a = rng.standard_normal(sa, dtype=np.float32)
            b = rng.standard_normal(sb, dtype=np.float32)
            held = partner_pace(lambda: np.matmul(a, b), args.seconds) / base
            free = partner_pace(lambda: blas.dot(a, b), args.seconds) / base
            print(f"{label:34s} {np.matmul(a, b).size:7d}  {held:20.2f} {free:10.2f}")
    finally:
        sys.setswitchinterval(switch)


if __name__ == "__main__":
    main()

"""What a second core gives on this machine at the moment, for memory-bound and compute-bound work.

``probe()`` times each of two pieces of work twice in a row on one thread, then once on each
of two Python threads at the same time (each on its own arrays, BLAS held to one thread, and
NumPy releasing the GIL in both), and returns the speed-up ``serial / parallel`` of each, the
median of ``repeats`` tries:

- ``copy``: a contiguous copy of 4 M floats (16 MB, past any core's L2): how the two cores
  share the memory system;
- ``product``: a ``(256, 256) @ (256, 256)`` float32 product, whose operands and result
  (768 KB) stay in a core's L2: how the cores compute side by side.

A speed-up of 2 is two cores that do not slow each other down. On this project's 2-core VMs
the product gave 1.8-2.0 while the copy gave 1.2-1.5, and both moved from minute to minute
(benchmarks/RESULTS.md): the engine's sharded steps (``core.parallel``) cannot scale better
than the mix of such work they run, whatever they do. ``python -m benchmarks`` prints a probe
at the start and at the end of a run, so that its speed-ups can be read against the machine's.
``benchmarks.experiments.two_threads`` times more kinds of work the same way.
"""
import statistics
import threading
import time


def speed_up(make, fn, calls):
    """``serial / parallel`` seconds of ``calls`` calls of ``fn(*make())`` on each of two sets of
    arrays: one set after the other on this thread, then both at once on two threads."""
    data = [make(), make()]

    def work(i):
        for _ in range(calls):
            fn(*data[i])

    work(0)
    work(1)
    start = time.perf_counter()
    work(0)
    work(1)
    serial = time.perf_counter() - start
    other = threading.Thread(target=work, args=(1,))
    start = time.perf_counter()
    other.start()
    work(0)
    other.join()
    return serial / (time.perf_counter() - start)


def pieces(np):
    """``{name: (make, fn, calls)}`` of the two pieces of ``probe``."""
    rng = np.random.default_rng(0)
    kernel = rng.random((256, 256), dtype=np.float32)
    return {
        "copy": (lambda: (rng.random(4_000_000, dtype=np.float32), np.empty(4_000_000, np.float32)),
                 lambda a, b: np.copyto(b, a), 50),
        "product": (lambda: (rng.random((256, 256), dtype=np.float32), np.empty((256, 256), np.float32)),
                    lambda a, b: np.matmul(a, kernel, out=b), 200),
    }


def probe(repeats=3):
    """``{"copy": speed-up, "product": speed-up}``, each the median of ``repeats`` tries (see the
    module docstring); ``None`` on a machine with fewer than two cores for this process."""
    import numpy as np
    from threadpoolctl import threadpool_limits

    from core import parallel

    if parallel.available_cores() < 2:
        return None
    with threadpool_limits(1, user_api="blas"):
        return {name: statistics.median(speed_up(make, fn, calls) for _ in range(repeats))
                for name, (make, fn, calls) in pieces(np).items()}


def describe(result):
    """One header line for ``probe``'s ``result``."""
    if result is None:
        return "fewer than two cores: no speed-up to measure"
    return f"copy {result['copy']:.2f}x, product {result['product']:.2f}x"

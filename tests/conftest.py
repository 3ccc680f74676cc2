import os

# Keras (the reference implementation in tests) runs on JAX's CPU backend unless the user chose one.
os.environ.setdefault("KERAS_BACKEND", "jax")

# The block size of large convolutions follows the machine's L2 cache (core.config.block_bytes).
# The suite runs with 4 MB blocks on every machine unless NUMPY_CNN_BLOCK_BYTES asks for another
# size, so that it runs the same code paths everywhere (tests/core/test_blocks.py covers the
# default); the tests that expect a layer whole or in blocks set their own sizes.
os.environ.setdefault("NUMPY_CNN_BLOCK_BYTES", str(4 << 20))

# The suite runs in one pytest-xdist worker process per core (``-n auto`` in pyproject.toml).
# Each worker's engine takes its share of the cores (one each on 2 cores), so that workers x
# engine threads never exceed them, unless NUMPY_CNN_THREADS asks for another number; the tests
# of the threaded paths set their own thread counts.
_workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _workers > 1:
    _cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    os.environ.setdefault("NUMPY_CNN_THREADS", str(max(1, _cores // _workers)))

import os

# Keras (the reference implementation in tests) runs on JAX's CPU backend unless the user chose one.
os.environ.setdefault("KERAS_BACKEND", "jax")

# The block size of large convolutions follows the machine's L2 cache (core.config.block_bytes).
# The suite runs with 4 MB blocks on every machine unless NUMPY_CNN_BLOCK_BYTES asks for another
# size, so that it runs the same code paths everywhere (tests/core/test_blocks.py covers the
# default); the tests that expect a layer whole or in blocks set their own sizes.
os.environ.setdefault("NUMPY_CNN_BLOCK_BYTES", str(4 << 20))

# Where a convolution keeps its whole column matrix in training follows the L2 cache too
# (core.config.training_column_bytes): in the test processes, layers keep it up to 8 MB on
# every machine (the subprocesses some tests start use the machine's default);
# tests/core/test_blocks.py covers the default.
from core.layers.conv import Conv  # noqa: E402

Conv.chunk_threshold = 8 << 20

from core.parallel import available_cores  # noqa: E402  (reads no setting at import)


def pytest_xdist_auto_num_workers(config):
    """``-n auto``: one worker per core this process may run on, as the engine counts them
    (pytest-xdist's own count takes the machine's physical cores where psutil is installed,
    whatever the affinity)."""
    return available_cores()


# The suite runs in one pytest-xdist worker per core (``-n auto`` in pyproject.toml). Each
# worker's engine takes its share of the cores (one thread each on 2 cores), so that workers x
# engine threads never exceed them, unless NUMPY_CNN_THREADS asks for another number. So the
# tests, and the subprocesses they start, run the engine on one thread there, where a user's
# default is all cores; the tests of the threaded and sharded paths set their own thread counts
# (tests/core/test_threads.py, test_shardprocs.py). Every worker collects the whole suite and must
# find the same test ids: a parameter's id may not depend on the time or on the process (give
# such parameters ``ids=``, as tests/medical/test_load_scan.py::test_not_nifti does).
_workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _workers > 1:
    os.environ.setdefault("NUMPY_CNN_THREADS", str(max(1, available_cores() // _workers)))

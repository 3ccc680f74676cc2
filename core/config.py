"""Global settings of the engine: the default float type and the seed source."""
import contextlib

import numpy as np

from .exceptions import ConfigError
from .parallel import get_num_threads, set_num_threads  # noqa: F401  (part of the config API)
from .shardprocs import set_shard_processes  # noqa: F401  (part of the config API)

_FLOATX = "float32"
_GLOBAL_RNG = np.random.default_rng()


def floatx():
    """Return the default float type of new weights and computations ('float32')."""
    return _FLOATX


def set_floatx(value):
    """Set the default float type: 'float32' (default) or 'float64' (gradient checks)."""
    global _FLOATX
    if value not in ("float32", "float64"):
        raise ConfigError(f"floatx must be 'float32' or 'float64', got {value!r}")
    _FLOATX = value


@contextlib.contextmanager
def floatx_scope(value):
    """Temporarily build new layers with float type ``value``."""
    old = floatx()
    set_floatx(value)
    try:
        yield
    finally:
        set_floatx(old)


def set_random_seed(seed):
    """Seed the generator that supplies seeds to layers and models built
    without an explicit ``seed`` argument (like ``keras.utils.set_random_seed``)."""
    global _GLOBAL_RNG
    _GLOBAL_RNG = np.random.default_rng(seed)


def draw_seed():
    """A fresh integer seed from the global generator."""
    return int(_GLOBAL_RNG.integers(0, 2**31 - 1))

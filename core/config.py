"""Global settings of the engine: the default float type, the seed source and the block size
of large convolutions."""
import contextlib
import os

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


# ------------------------------------------------------------------ block size
#: the block size where the core's own (L2) cache is small: blocks then live in the shared cache
#: (4 MB until the nineteenth round: see ``default_block_bytes``)
SHARED_CACHE_BLOCK = 2 << 20
#: a core with at least this much L2 cache of its own gets blocks of half of it
LARGE_L2 = 2 << 20
_BLOCK_ENV = "NUMPY_CNN_BLOCK_BYTES"
_block = {"set": None, "detected": None, "l2": "unread"}


def _parse_bytes(raw, what):
    """``raw`` (an int, or a string of digits with an optional K/M/G suffix) as a positive
    number of bytes; ``ConfigError`` naming ``what`` otherwise."""
    if isinstance(raw, str):
        text = raw.strip().upper().removesuffix("B")
        scale = 1
        if text[-1:] in ("K", "M", "G"):
            scale = 1 << {"K": 10, "M": 20, "G": 30}[text[-1]]
            text = text[:-1]
        if not (text.isascii() and text.isdigit()) or int(text) < 1:
            raise ConfigError(f"{what} must be a positive number of bytes (for example 524288, 512K or 4M), "
                              f"got {raw!r}")
        return int(text) * scale
    if isinstance(raw, bool) or not isinstance(raw, (int, np.integer)) or raw < 1:
        raise ConfigError(f"{what} must be a positive int (bytes), got {raw!r}")
    return int(raw)


def _cpu_count_in(cpu_list):
    """The number of CPUs in a Linux CPU list such as ``0-3,8``; ``None`` if it does not parse."""
    count = 0
    for part in cpu_list.strip().split(","):
        first, _, last = part.partition("-")
        if not (first.isascii() and first.isdigit()) or (last and not (last.isascii() and last.isdigit())):
            return None
        count += int(last or first) - int(first) + 1
    return count if count > 0 else None


def _cache_entry(base, entry, name):
    with open(os.path.join(base, entry, name)) as f:
        return f.read().strip()


def l2_cache_bytes(base="/sys/devices/system/cpu/cpu0/cache"):
    """The level-2 cache one CPU has, in bytes: the size Linux reports for the first CPU under
    ``base``, divided among the CPUs that share it (``shared_cpu_list``: a cluster of cores,
    or a core's hyperthreads). ``None`` where it is not known (another system, a container
    that hides it)."""
    try:
        entries = sorted(os.listdir(base))
    except OSError:
        return None
    for entry in entries:
        try:
            if (_cache_entry(base, entry, "level") != "2"
                    or _cache_entry(base, entry, "type") not in ("Unified", "Data")):
                continue
            size = _parse_bytes(_cache_entry(base, entry, "size"), "cache size")
        except (OSError, ConfigError):
            return None
        try:
            sharing = _cpu_count_in(_cache_entry(base, entry, "shared_cpu_list")) or 1
        except OSError:
            sharing = 1
        return size // sharing
    return None


def _detected_l2():
    """``l2_cache_bytes()`` of this machine, read once."""
    if _block["l2"] == "unread":
        _block["l2"] = l2_cache_bytes()
    return _block["l2"]


def default_block_bytes(l2=None):
    """The block size the engine picks for a CPU with ``l2`` bytes of L2 cache of its own (this
    machine's, ``l2_cache_bytes()``, where ``None``): half of it where it holds 2 MB or
    more, else ``SHARED_CACHE_BLOCK``.

    A large convolution builds its column matrix one block at a time and multiplies each
    block while it is still in a cache. Where a core's own cache is large, the block, its
    product and OpenBLAS's packed panels fit there together, and that beats a block in the
    shared cache; where it is small, blocks are better sized to the shared cache. Measured,
    a Conv3D 64^3 training step at one thread: on an Intel Xeon with 2 MB of L2 a core
    (Emerald Rapids), 512 KB blocks took 0.89x the time of 4 MB blocks (0.86x at two
    threads; Conv3D 32^3 0.98x and 0.92x), and 1 MB blocks against 512 KB (twelfth round,
    ``benchmarks.experiments.blocks``, 9-11 rounds a run): training 0.97-1.03x on the Conv3D
    cases, LeNet-5 and the tutorial network (0.956-0.978x on the default ImageClassifier's and
    the Conv3D cases' steps timed by turns), predict 0.84-0.87x on Conv3D 32^3 and 0.91-0.97x
    on LeNet-5 and the tutorial network at one and two threads, Conv3D 64^3 0.98-1.04x; 2 MB
    blocks (the whole L2) trained 1.03-1.07x. On the AMD EPYC this project measured before
    (AVX-512, so Zen 4 or later, 1 MB a core), 512 KB blocks took 1.26x and 1 MB 1.14x. On an
    Intel Xeon with 1 MB a core (Skylake-SP), 2 MB, 1 MB and 512 KB blocks trained the Conv3D
    cases, LeNet-5 and the tutorial network in 0.985-1.05x the time of 4 MB blocks, and
    predicted in 0.90-1.22x (sixteenth round, nine rounds). On an AMD EPYC with 1 MB a core
    (Zen 4, nineteenth round), 2 MB blocks against 4 MB, the models by turns in one process
    (7-11 rounds, two runs at one thread, two at two; then turns of 20-30 calls): LeNet-5
    predicted in 0.81-0.92x the time at one thread and 0.83-0.98x at two, Conv3D 32^3 in
    0.97-1.00x and 0.88-0.97x, the default ImageClassifier's network at batch 128 trained in
    0.97x at one thread and 0.86x at two and predicted in 0.94x and 0.82x; the Conv3D cases
    trained in 0.96-1.04x and the tutorial network in 1.00-1.04x. (Conv3D 64^3 first seemed to
    train in 0.90-0.95x: its first layer's 4 MB blocks of 9 rows kept it from pooling its
    blocks, fixed since, ``Conv._pooled_blocks``.) Why 4 MB had won on the first EPYC (with the
    shards of a batch on threads) and no longer does is not known. 1 MB blocks trained Conv3D
    32^3 1.08x slower at one thread. Four machines are all this rule
    rests on: set the size with ``set_block_bytes`` or
    ``NUMPY_CNN_BLOCK_BYTES`` where it does not fit (``python -m benchmarks.experiments.blocks``
    times the choices)."""
    if l2 is None:
        l2 = _detected_l2()
    if l2 is not None and l2 >= LARGE_L2:
        return l2 // 2
    return SHARED_CACHE_BLOCK


#: in training, a convolution keeps its whole column matrix for the backward pass up to this many
#: bytes and builds a larger one in blocks, rebuilt in the backward pass (``Conv._use_chunks``);
#: in inference, which keeps nothing, the smaller of this and one block
TRAINING_COLUMNS = 8 << 20
#: the same in training for a layer whose columns are built channels last, where a core's L2
#: cache is small: see ``training_column_bytes``
SMALL_L2_TRAINING_COLUMNS = 5 << 20


def training_column_bytes(channels_last, l2=None):
    """The largest column matrix, in bytes, a convolution keeps whole in training:
    ``SMALL_L2_TRAINING_COLUMNS`` (5 MB) for a layer whose columns are built channels last
    (``channels_last``: ``Conv._cols_last``, where a run of input channels across the kernel's
    last axis is longer than an output row, as in LeNet-5's second layer) on a CPU with less
    than ``LARGE_L2`` of L2 cache a core (``l2``; by default this machine's), else
    ``TRAINING_COLUMNS`` (8 MB; also where the L2 is not known). It follows the L2 cache, not
    the block size: it was measured with the 2 MB blocks such CPUs get by default, and a block
    size set by hand (``set_block_bytes``) leaves it as it is.

    Measured on an AMD EPYC with 1 MB of L2 a core and 2 MB blocks (twentieth round, two
    models by turns in one process, one thread; the same code timed against itself this way
    gave 0.98-1.10x): LeNet-5's second convolution (6 -> 16 channels, 5x5 on 14x14) in blocks
    rather than whole trained the network in 0.85-0.93x the time at batch 64 (7.2 MB of
    columns; its forward 1.7 against 2.5 ms, its backward the same), the one result clear of
    that spread. Below it, less clearly: 0.95x at 5.8 MB and 0.96x at 4.9 MB, 1.07x at 4.0 MB
    and 1.09x at 3.6 MB; the default ``ImageClassifier``'s network at batch 32, whose second
    convolution has 6.9 MB of columns, 0.96x. Any threshold from about 4.5 to 7 MB fits these
    figures. A first layer of one channel (columns channels first, no input gradient to
    compute) gained nothing (LeNet-5's, 4.8 MB, 0.99x) or lost (the ``ImageClassifier``'s at
    batch 256, 6.9 MB, 1.04x), and keeps 8 MB. On an Intel Xeon with 2 MB of L2 a core and 1 MB
    blocks, LeNet-5's second convolution in blocks had taken 5.4-6.1 ms backward against
    3.7-3.9 whole (twelfth round): larger caches keep 8 MB."""
    if l2 is None:
        l2 = _detected_l2()
    if channels_last and l2 is not None and l2 < LARGE_L2:
        return SMALL_L2_TRAINING_COLUMNS
    return TRAINING_COLUMNS


def block_bytes():
    """The size in bytes of the blocks a large convolution builds its columns in:
    ``set_block_bytes``, else the environment variable ``NUMPY_CNN_BLOCK_BYTES``, else
    ``default_block_bytes()``. A layer reads it when it is built."""
    if _block["set"] is not None:
        return _block["set"]
    raw = os.environ.get(_BLOCK_ENV, "").strip()
    if raw:
        return _parse_bytes(raw, _BLOCK_ENV)
    if _block["detected"] is None:
        _block["detected"] = default_block_bytes()
    return _block["detected"]


def set_block_bytes(nbytes):
    """Set the block size of large convolutions (``block_bytes``) for layers built from now
    on (a model built before keeps its blocks; loading a model file builds it anew): a
    positive int of bytes, or a string such as ``"512K"``; ``None`` goes back to the default.
    Blocks change the order of some sums, so results move at float rounding."""
    _block["set"] = None if nbytes is None else _parse_bytes(nbytes, "set_block_bytes")

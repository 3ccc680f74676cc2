"""Run independent blocks of a layer's work on several cores.

NumPy releases the GIL inside copies, ufuncs and BLAS calls on large arrays,
so Python threads working on disjoint blocks of a large layer (samples,
rows) run on all cores at once. ``run(fn, parts)`` calls ``fn(part)`` for
each part, spread over the threads in contiguous groups: thread ``t`` always
gets the same parts for the same number of parts and threads, so a
reduction summed per thread and then over threads in thread order is
deterministic. During a region that calls BLAS (``blas=True``) every BLAS
call is limited to one thread, so threads times BLAS threads never exceed
the cores; outside regions the matrix products use all the BLAS threads.

The number of threads is ``core.config.set_num_threads(n)`` or the
environment variable ``NUMPY_CNN_THREADS``; by default all the cores this
process may run on. Two kinds of parallel work use them:

- **Shards of a batch** (``ShardGroup``): ``Sequential`` splits a batch with
  enough work into one contiguous shard of samples per thread, and each
  thread runs the whole forward and backward pass (or the inference path) of
  its shard, with its own workspace and one BLAS thread. Everything a layer
  does (copies, products, pooling, activations) then runs on every core,
  with one hand-off per batch. The layers that couple the samples of a batch
  take part: batch normalization adds the shards' sums with ``allreduce``
  (one barrier per call, summed in shard order), dropout draws the whole
  batch's mask and keeps its rows (``shard_rows``). This is on by default. On
  Linux the shards after the first run in forked worker processes instead
  (``core.shardprocs``), with their own GIL; the layers see the same
  ``allreduce`` and ``shard_rows`` there (``membership``).
- **Blocks of one layer** (``run``, ``over_samples``): large convolutions and
  pooling cut into whole samples. Used only when a number was set explicitly
  (``block_threads``) and the layer is not already inside a shard, nor in a
  batch that ``Sequential`` runs whole for holding too little work to split
  (``serial``): a batch it does not split though it holds that much (a
  single sample, small layer outputs), or layers called directly. On the
  2-core machine of benchmarks/RESULTS.md they had not measured faster than
  one thread with a two-thread BLAS.
"""
import concurrent.futures
import os
import threading

from .exceptions import ConfigError

_lock = threading.Lock()
_state = {"threads": None, "pool": None, "controller": None}
_local = threading.local()


def available_cores():
    """The cores this process may run on (its CPU affinity where the system has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def _from_environment():
    raw = os.environ.get("NUMPY_CNN_THREADS")
    if raw is None or raw.strip() == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"NUMPY_CNN_THREADS must be a positive integer, got {raw!r}") from None
    if value < 1:
        raise ConfigError(f"NUMPY_CNN_THREADS must be a positive integer, got {raw!r}")
    return value


def get_num_threads():
    """Threads the engine uses: ``set_num_threads``, else ``NUMPY_CNN_THREADS``, else all cores."""
    if _state["threads"] is None:
        return _from_environment() or available_cores()
    return _state["threads"]


def block_threads():
    """Threads for the engine's own block parallelism: the number set with ``set_num_threads``
    or ``NUMPY_CNN_THREADS``; 1 when none was set, inside a ``serial`` block, or in a part of a
    parallel region (a shard, a group of ``run``), where nested regions run serially: the
    layers then plan their blocks as one group, in one set of buffers, not one per thread run
    one after the other (Conv3D 32^3's first layer in a shard of a two-thread training step,
    AMD EPYC: forward 4.96 ms and backward 4.93 with two groups, 4.44 and 4.32 with one, as in
    a one-thread step)."""
    if getattr(_local, "serial", False) or getattr(_local, "inside", False):
        return 1
    if _state["threads"] is not None:
        return _state["threads"]
    return _from_environment() or 1


def apply_environment():
    """Apply ``NUMPY_CNN_THREADS`` to the BLAS libraries, once, unless ``set_num_threads`` was
    called. Training and prediction call this on entry, not the import: importing the engine
    changes nothing in the process."""
    if _state.get("environment_applied"):
        return
    _state["environment_applied"] = True
    threads = _from_environment()
    if _state["threads"] is None and threads is not None:
        _blas_controller().limit(limits=threads, user_api="blas")


def set_num_threads(n):
    """Use ``n`` threads for the engine's own parallel work and for BLAS (NumPy's matrix
    products, through threadpoolctl). ``None`` goes back to the default."""
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise ConfigError(f"set_num_threads: n must be a positive int (or None for the default), got {n!r}")
    with _lock:
        _state["threads"] = n
        _state["blas_libs"] = None
        pool, _state["pool"] = _state["pool"], None
    if pool is not None:
        pool.shutdown(wait=True)
    threads = get_num_threads()
    _blas_controller().limit(limits=threads, user_api="blas")
    return threads


def _blas_controller():
    if _state["controller"] is None:
        from threadpoolctl import ThreadpoolController
        _state["controller"] = ThreadpoolController()
    return _state["controller"]


class _OneBlasThread:
    """Limit the BLAS libraries to one thread inside a ``with`` block, and restore them after
    (threadpoolctl's per-library controllers, found once: a few microseconds a region)."""

    def __enter__(self):
        libs = _state.get("blas_libs")
        if libs is None:
            libs = _state["blas_libs"] = list(_blas_controller().select(user_api="blas").lib_controllers)
        self.saved = [(lib, lib.num_threads) for lib in libs]
        for lib, n in self.saved:
            if n != 1:
                lib.set_num_threads(1)
        return self

    def __exit__(self, *exc):
        for lib, n in self.saved:
            if n != 1:
                lib.set_num_threads(n)


def _pool(threads):
    with _lock:
        pool = _state["pool"]
        if pool is None or pool._max_workers < threads - 1:  # a larger pool serves fewer groups too
            if pool is not None:
                pool.shutdown(wait=False)
            reset_after_fork()  # POSIX; once, not at import
            pool = _state["pool"] = concurrent.futures.ThreadPoolExecutor(
                max_workers=threads - 1, thread_name_prefix="numpy-cnn")
        return pool


def _after_fork_in_child():
    """A forked child has none of its parent's worker threads: it forgets the pool (a new one
    starts on first use) and the locks some other thread of the parent may have held at the
    fork. Without this, a process forked after the parent had used the pool (a
    ``multiprocessing`` worker, a Luigi worker) waited forever in its first parallel region.
    Registered when the first pool starts (importing the engine registers nothing)."""
    global _lock, _shard_lock
    _lock = threading.Lock()
    _shard_lock = threading.Lock()
    _state["pool"] = None


def groups(parts, threads):
    """Split the list ``parts`` into at most ``threads`` contiguous groups of near-equal size."""
    return [parts[a:b] for a, b in sample_ranges(len(parts), threads)]


def run(fn, parts, threads=None, blas=False):
    """``[fn(group) for group in groups(parts, threads)]``, the groups run at the same time
    (the calling thread takes the first). ``fn`` receives a list of parts. ``blas``: ``fn``
    calls BLAS, which is then limited to one thread per thread for the region. Every group
    has finished when ``run`` returns or raises; an error is raised from the first group that
    failed for a reason of its own (not because a ``ShardGroup`` partner failed)."""
    threads = block_threads() if threads is None else threads
    if threads <= 1 or len(parts) < 2 or inside_region():
        return [fn(list(parts))]
    chunks = groups(list(parts), threads)
    pool = _pool(len(chunks))
    with (one_blas_thread() if blas else NO_LIMIT):
        futures = [pool.submit(_inside, fn, c) for c in chunks[1:]]
        results, errors = [], []
        try:
            results.append(_inside(fn, chunks[0]))
        except BaseException as exc:  # noqa: B036 - re-raised below, after the other groups finished
            errors.append(exc)
        for f in futures:
            try:
                results.append(f.result())
            except BaseException as exc:  # noqa: B036
                errors.append(exc)
    if errors:
        own = [e for e in errors if not isinstance(e, threading.BrokenBarrierError)]
        raise (own or errors)[0]
    return results


class _NoLimit:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass


NO_LIMIT = _NoLimit()


def one_blas_thread():
    """A context manager holding BLAS to one thread inside its ``with`` block."""
    return _OneBlasThread()


class serial:
    """Context manager: everything inside its ``with`` block runs on the calling thread alone,
    BLAS held to one thread and the layers' blocks (``block_threads``) one after the other. For
    work too small to gain from a second thread: the hand-off to the pool and back costs more
    than it saves. Unlike a region's part, the thread has no partners (``beside_partners``).

    ``blas=False`` leaves BLAS as it is, for products so small that the library runs them on
    one thread anyway: holding it there and back costs 4-10 us, a sixth of the tutorial
    network's predict of one image."""

    def __init__(self, blas=True):
        self.blas = one_blas_thread() if blas else NO_LIMIT

    def __enter__(self):
        self.blas.__enter__()  # (first: if it raises, the flag is left as it was)
        self.saved = getattr(_local, "serial", False)
        _local.serial = True
        return self

    def __exit__(self, *exc):
        self.blas.__exit__(*exc)
        _local.serial = self.saved


def inside_region():
    """Whether the calling thread is running a part of a parallel region (where nested
    regions run serially)."""
    return getattr(_local, "inside", False)


def _inside(fn, chunk):
    with inside():  # nested regions run serially in their thread
        return fn(chunk)


class inside:
    """Context manager: the calling thread runs a part of parallel work (a group of ``run``,
    or a shard run by a process of ``core.shardprocs``), so regions inside it run serially."""

    def __enter__(self):
        self.saved = getattr(_local, "inside", False)
        _local.inside = True
        return self

    def __exit__(self, *exc):
        _local.inside = self.saved


def reset_after_fork():
    """Register, once, the hook that gives a forked child fresh locks and no pool
    (``_after_fork_in_child``). The pool registers it when it starts; the shard processes
    (``core.shardprocs``) hold ``pass_lock`` without a pool, so they register it too."""
    if not _state.get("fork_hook") and hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_after_fork_in_child)
        _state["fork_hook"] = True


def sample_ranges(n, threads=None):
    """``[(start, stop), ...]``: ``range(n)`` in at most ``threads`` contiguous pieces."""
    threads = block_threads() if threads is None else threads
    k = max(1, min(threads, n))
    bounds = [round(i * n / k) for i in range(k + 1)]
    return [(bounds[i], bounds[i + 1]) for i in range(k)]


def over_samples(fn, n, min_bytes=0, nbytes=0):
    """``fn(start, stop)`` for contiguous sample ranges covering ``range(n)``, in parallel
    when the work (``nbytes``) is at least ``min_bytes``; serially otherwise."""
    if nbytes < min_bytes or n < 2:
        fn(0, n)
        return
    ranges = sample_ranges(n, block_threads())
    run(lambda chunk: [fn(a, b) for a, b in chunk], ranges, threads=len(ranges))


_shard_lock = threading.Lock()


def pass_lock():
    """The lock that lets one sharded pass run at a time in the process (``run_shards``;
    ``core.shardprocs`` takes it too)."""
    return _shard_lock


def run_shards(fn, ranges):
    """``[fn((start, stop)) for (start, stop) in ranges]``, each shard of a batch on its own
    thread at the same time (the calling thread takes the first), inside a ``ShardGroup`` so
    that ``allreduce`` and ``shard_rows`` work in ``fn``, with BLAS at one thread per thread.

    One sharded pass runs at a time in the process: the shards of a pass wait for each other
    in ``allreduce``, so two passes sharing the pool's threads could each hold a thread the
    other waits for."""
    group = ShardGroup(ranges)

    def member(parts):
        (index, rows), = parts
        with group.member(index):
            return fn(rows)

    with pass_lock():
        return run(member, list(enumerate(group.ranges)), threads=len(group.ranges), blas=True)


class ShardGroup:
    """The shards of one batch, each run by its own thread through a whole forward (and, in
    training, backward) pass: ``Sequential`` splits the batches of ``fit``, ``evaluate`` and
    ``predict`` this way (``run_shards``). Layers that couple the samples of a batch (batch
    normalization) combine their shard's partial sums with ``allreduce``; layers that draw
    random numbers for the batch ask ``shard_rows`` which rows of the batch's draw are theirs.

    ``ranges``: the ``(start, stop)`` rows of each shard, in order."""

    def __init__(self, ranges):
        self.ranges = list(ranges)
        self.total = self.ranges[-1][1] - self.ranges[0][0]
        self._slots = [None] * len(self.ranges)
        self._results = []
        self._calls = [0] * len(self.ranges)
        self._barrier = threading.Barrier(len(self.ranges), action=self._reduce)

    def _reduce(self):  # run by one thread once all have arrived: the sum in shard order
        total = self._slots[0].copy()
        for part in self._slots[1:]:
            total += part
        self._results.append(total)

    def allreduce(self, index, part):
        """The sum over the shards of ``part`` (the same array shape in every shard), added in
        shard order so the result does not depend on which thread arrives first. Every shard
        must call it the same number of times."""
        self._slots[index] = part
        try:
            self._barrier.wait()
        except threading.BrokenBarrierError:
            raise threading.BrokenBarrierError("another shard of the batch failed") from None
        k = self._calls[index]
        self._calls[index] = k + 1
        return self._results[k]

    def member(self, index):
        """Context manager: the calling thread works on shard ``index`` (``allreduce`` and
        ``shard_rows`` refer to it); an error inside breaks the group, so partners waiting in
        ``allreduce`` raise instead of waiting for ever."""
        return membership(self, index)

    def abort(self):
        self._barrier.abort()


def membership(group, index):
    """Context manager: the calling thread works on shard ``index`` of ``group`` (anything
    with ``ranges``, ``total``, ``allreduce(index, part)`` and ``abort()``: a ``ShardGroup``,
    or a shard process's view of its batch, ``core.shardprocs``); ``abort`` is called when
    the block raises."""
    return _Membership(group, index)


class _Membership:
    def __init__(self, group, index):
        self.group, self.index = group, index

    def __enter__(self):
        self.saved = getattr(_local, "shard", None)
        _local.shard = (self.group, self.index)
        return self

    def __exit__(self, exc_type, exc, tb):
        _local.shard = self.saved
        if exc_type is not None:
            self.group.abort()


def allreduce(part):
    """``part`` summed over the shards of the batch this thread works on (``ShardGroup``);
    ``part`` itself outside a sharded pass."""
    member = getattr(_local, "shard", None)
    if member is None:
        return part
    group, index = member
    return group.allreduce(index, part)


def shard_rows():
    """``(start, stop, total)``: the rows of the batch this thread works on, or ``None`` outside
    a sharded pass (the whole batch)."""
    member = getattr(_local, "shard", None)
    if member is None:
        return None
    group, index = member
    a, b = group.ranges[index]
    return a, b, group.total


def beside_partners():
    """Whether the calling thread runs beside other threads of the engine in its process, which
    wait whenever it holds the GIL: a shard of a batch split over several threads, or a part of
    a parallel region. A shard of a batch split over processes (``core.shardprocs``, whose
    group has ``processes`` true) has the GIL of its process to itself, and runs no region
    beside it (regions inside a shard run serially)."""
    member = getattr(_local, "shard", None)
    if member is not None and getattr(member[0], "processes", False):
        return False
    return (member is not None and len(member[0].ranges) > 1) or inside_region()


def is_first_shard():
    """Whether this thread works on the first shard of a batch, or on a whole batch: the one
    that updates state shared by the shards (batch-norm moving statistics)."""
    member = getattr(_local, "shard", None)
    return member is None or member[1] == 0

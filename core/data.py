"""Where the batches of ``Sequential.fit`` come from: arrays in memory, or a
data source read batch by batch.

A data source follows Keras' ``PyDataset`` habits: ``len(source)`` batches,
``source[i]`` returns the batch ``(x, y)`` or ``(x, y, sample_weight)``, and
an optional ``source.on_epoch_end()`` is called after every epoch. Its
optional attributes ``workers`` (threads reading ahead, default 1) and
``max_queue_size`` (batches read ahead, default 2) set the prefetching:
background threads read the next batches while the current one trains.
Batches are consumed in index order whatever the thread timing, so a source
gives the same result for a given seed as the same batches from memory.
"""
import collections
import concurrent.futures
import math

import numpy as np

from .exceptions import InputError


def is_source(obj):
    """Whether ``obj`` is a PyDataset-like data source rather than an array."""
    return (hasattr(obj, "__getitem__") and hasattr(obj, "__len__")
            and not isinstance(obj, (np.ndarray, list, tuple, str, bytes, dict)))


def prefetched(read, indices, workers=1, depth=2):
    """``read(i)`` for each ``i`` of ``indices``, in order, with up to ``depth``
    reads running ahead on ``workers`` threads (none when either is 0)."""
    indices = iter(indices)
    if workers <= 0 or depth <= 0:
        for i in indices:
            yield read(i)
        return
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="numpy-cnn-prefetch")
    pending = collections.deque()
    try:
        for i in indices:
            pending.append(pool.submit(read, i))
            if len(pending) > depth:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


class ArrayBatches:
    """Shuffled (or ordered) batches of in-memory arrays."""

    def __init__(self, x, y, sample_weight, batch_size, shuffle):
        self.x, self.y, self.sw = x, y, sample_weight
        self.batch_size, self.shuffle = batch_size, shuffle
        self.steps = math.ceil(len(x) / batch_size)

    def epoch(self, rng=None):
        """The epoch's batches ``(x, y, sample_weight)``; ``rng`` draws the shuffling."""
        n, bs = len(self.x), self.batch_size
        order = rng.permutation(n) if self.shuffle else None
        for b in range(self.steps):
            if order is None:
                sl = slice(b * bs, (b + 1) * bs)
                yield self.x[sl], self.y[sl], None if self.sw is None else self.sw[sl]
            else:
                idx = order[b * bs:(b + 1) * bs]
                yield self.x[idx], self.y[idx], None if self.sw is None else self.sw[idx]

    def end_epoch(self):
        pass


class SourceBatches:
    """Batches read from a data source, prefetched by background threads.

    ``steps`` batches make an epoch (``len(source)`` by default); with more
    steps than the source has batches the indices wrap around."""

    def __init__(self, source, steps_per_epoch, check_batch, what="fit"):
        self.source = source
        self.what = what
        try:
            n = len(source)
        except TypeError as exc:
            raise InputError(f"{what}: the data source must have a length (number of batches): {exc}") from None
        if steps_per_epoch is None:
            if n < 1:
                raise InputError(f"{what}: the data source has no batches (len() is {n})")
            self.steps = int(n)
        else:
            self.steps = int(steps_per_epoch)
        self.n = int(n)
        self._check = check_batch
        self.workers = _attribute(source, "workers", 1, what)
        self.depth = _attribute(source, "max_queue_size", 2, what)

    def _read(self, i):
        return self.source[i % self.n] if self.n else self.source[i]

    def epoch(self, rng=None):
        for b, item in enumerate(prefetched(self._read, range(self.steps), self.workers, self.depth)):
            yield self._check(item, b)

    def end_epoch(self):
        hook = getattr(self.source, "on_epoch_end", None)
        if callable(hook):
            hook()


def _attribute(source, name, default, what):
    value = getattr(source, name, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise InputError(f"{what}: the data source's {name} must be an int >= 0, got {value!r}")
    return int(value)


def unpack_batch(item, b, what):
    """``(x, y, sample_weight)`` from a source's batch ``item``."""
    if not isinstance(item, (tuple, list)) or len(item) not in (2, 3):
        raise InputError(f"{what}: batch {b} of the data source must be a tuple (x, y) or (x, y, sample_weight), "
                         f"got {type(item).__name__}{'' if not isinstance(item, (tuple, list)) else f' of {len(item)}'}")
    return item[0], item[1], item[2] if len(item) == 3 else None

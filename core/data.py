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
A source with a ``shuffle_from(rng)`` method is handed fit's generator as each
epoch starts, to draw its order from it exactly as fit shuffles arrays.

:class:`OnDemand` stands for an array of samples kept in files (read a batch
at a time) and :class:`SampleBatches` is the data source over it; the domains
subclass ``OnDemand`` for their files (scans, images), and
``core.estimator.BaseClassifier`` trains on one through ``SampleBatches``.
"""
import collections
import concurrent.futures
import copy
import math

import numpy as np

from .exceptions import InputError, ShapeError


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
        shuffle_from = getattr(self.source, "shuffle_from", None)
        if rng is not None and callable(shuffle_from):  # the source shuffles with fit's generator, as arrays do
            shuffle_from(rng)
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


class OnDemand:
    """Samples that stay where they are (files) until a batch of them is needed.

    It stands for the float32 array ``(N, *sample_shape)`` a loader would
    return, without holding it: ``len``, ``shape``, ``ndim`` and ``dtype`` are
    the array's, indexing with sample indices (a list, an index array or a
    slice) gives a smaller ``OnDemand`` of the same kind, and only
    :meth:`read` (or ``np.asarray``, or :meth:`batches`) reads data.
    :meth:`map` attaches an element-wise step (such as scaling) applied to
    every batch as it is read.

    A subclass implements ``read_one(item)`` -> one sample, an array of
    ``sample_shape`` (safe to call from several threads), and may override
    ``mismatch_hint`` (what the user can do when samples differ in shape).
    ``items`` are whatever ``read_one`` takes (file paths); when
    ``sample_shape`` is None the first item is read to learn it.
    """

    dtype = np.dtype(np.float32)
    mismatch_hint = ""

    def __init__(self, items, sample_shape=None):
        self.items = list(items)
        self.transforms = ()
        if sample_shape is None:
            if not self.items:
                raise InputError(f"{type(self).__name__}: there are no samples to read")
            sample_shape = np.shape(self.read_one(self.items[0]))
        self.sample_shape = tuple(int(s) for s in sample_shape)

    def read_one(self, item):
        raise NotImplementedError

    @property
    def shape(self):
        return (len(self.items),) + self.sample_shape

    @property
    def ndim(self):
        return len(self.shape)

    def __len__(self):
        return len(self.items)

    def _copy(self, items):
        out = copy.copy(self)
        out.items = list(items)
        return out

    def __getitem__(self, index):
        """The selected samples (a list, an index array or a slice), still unread."""
        if isinstance(index, (int, np.integer)):
            raise InputError(f"{type(self).__name__}: index with a list, an array or a slice of samples "
                             f"(read() reads them)")
        picked = np.arange(len(self.items))[index]
        return self._copy([self.items[i] for i in np.atleast_1d(picked)])

    def map(self, step):
        """The same samples with ``step(batch) -> batch`` (shape-preserving) applied after every read."""
        out = self._copy(self.items)
        out.transforms = self.transforms + (step,)
        return out

    def read(self, indices=None):
        """The samples of ``indices`` (all when None) as one float32 array, every ``map`` step applied."""
        indices = range(len(self.items)) if indices is None else indices
        out = np.empty((len(indices),) + self.sample_shape, np.float32)
        for k, i in enumerate(indices):
            sample = np.asarray(self.read_one(self.items[i]))
            if sample.shape != self.sample_shape:
                raise ShapeError(f"{self.items[i]!r} gives a sample of shape {sample.shape} but {self.items[0]!r} "
                                 f"gave {self.sample_shape}{self.mismatch_hint}")
            out[k] = sample
        for step in self.transforms:
            out = step(out)
        return out

    def __array__(self, dtype=None, copy=None):
        arr = self.read()
        return arr if dtype is None else arr.astype(dtype, copy=False)

    def batches(self, batch_size):
        """The samples in order, ``batch_size`` at a time."""
        for start in range(0, len(self.items), batch_size):
            yield self.read(range(start, min(start + batch_size, len(self.items))))


class SampleBatches:
    """The data source ``Sequential.fit`` reads: batches ``(x, y)`` of an :class:`OnDemand` and labels ``y``.

    With ``shuffle`` the order of epoch ``e`` is ``default_rng([seed, 2**20, e])``'s
    permutation, the one ``fit`` draws for arrays in memory with model seed
    ``seed``. Inside ``Sequential.fit`` the order is drawn instead from fit's
    own generator (:meth:`shuffle_from`), exactly as for arrays, so that the
    draws after it (augmentation) are the same too: the same data and seed
    train the same weights from memory and from files. ``workers`` threads
    read up to ``max_queue_size`` batches ahead."""

    def __init__(self, samples, y, batch_size, seed=0, shuffle=True, workers=1, max_queue_size=2):
        self.samples, self.y = samples, np.asarray(y)
        if len(self.y) != len(samples):
            raise InputError(f"{type(self).__name__}: {len(samples)} samples but {len(self.y)} labels")
        self.batch_size, self.seed, self.shuffle = int(batch_size), int(seed), bool(shuffle)
        self.workers, self.max_queue_size = workers, max_queue_size
        self.epoch = 0
        self._order = self._draw(np.random.default_rng([self.seed, 2**20, self.epoch]))

    def _draw(self, rng):
        n = len(self.samples)
        return rng.permutation(n) if self.shuffle else np.arange(n)

    def shuffle_from(self, rng):
        """Draw this epoch's order from ``rng`` (``Sequential.fit`` calls it as an epoch starts)."""
        self._order = self._draw(rng)

    def __len__(self):
        return math.ceil(len(self.samples) / self.batch_size)

    def __getitem__(self, i):
        idx = self._order[i * self.batch_size:(i + 1) * self.batch_size]
        return self.samples.read(idx), self.y[idx]

    def on_epoch_end(self):
        self.epoch += 1
        self._order = self._draw(np.random.default_rng([self.seed, 2**20, self.epoch]))

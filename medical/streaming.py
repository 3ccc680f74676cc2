"""Scans that stay on disk while a network trains on them.

``ScanVolumes`` stands for the preprocessed volumes of a list of scans
without holding them: it has the ``len``, ``shape`` and indexing of the
array ``load_scans`` would return, but indexing with sample indices gives a
smaller ``ScanVolumes``, and only ``read(indices)`` (or ``np.asarray``)
loads voxels, through a ``ScanCache``, so each scan is read and resampled
once and then comes from its cache file.

``ScanBatches`` is the data source ``core.Sequential.fit`` reads (Keras'
``PyDataset`` habits: ``len``, ``source[i] -> (x, y)``, ``on_epoch_end``):
shuffled batches of a ``ScanVolumes`` and its labels, read ahead by
background threads while the previous batch trains. Memory holds a few
batches, not the data set. Its shuffling is the one ``fit`` gives arrays in
memory for the same seed, so both routes train the same weights.
"""
import math

import numpy as np

from core.exceptions import InputError

from .cache import ScanCache
from .scans import load_scan


class ScanVolumes:
    """The preprocessed volumes of ``paths`` (``(N, D, H, W, C)`` float32), read on demand
    through a ``ScanCache`` in ``cache_dir`` with the ``load_scan`` keyword ``settings``."""

    def __init__(self, paths, cache_dir, settings, _sample_shape=None):
        self.paths = list(paths)
        if not self.paths and _sample_shape is None:
            raise InputError("ScanVolumes: the list of paths is empty")
        # without a cache folder every read loads and preprocesses the scan again
        self.cache = cache_dir if isinstance(cache_dir, ScanCache) or cache_dir is None else ScanCache(cache_dir)
        self.settings = dict(settings)
        if _sample_shape is None:  # the first scan fixes the shape (and fills its cache entry)
            _sample_shape = self._load(self.paths[0]).shape
        self.sample_shape = tuple(_sample_shape)

    def _load(self, path):
        if self.cache is None:
            return load_scan(path, **self.settings)
        return self.cache.load(path, **self.settings)

    # the array-like surface BaseClassifier.fit uses
    @property
    def shape(self):
        return (len(self.paths),) + self.sample_shape

    @property
    def ndim(self):
        return len(self.shape)

    dtype = np.dtype(np.float32)

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, index):
        """A ``ScanVolumes`` of the selected samples (an index array, a list or a slice)."""
        if isinstance(index, (int, np.integer)):
            raise InputError("ScanVolumes: index with a list, array or slice of samples (read() loads voxels)")
        picked = np.arange(len(self.paths))[index]
        return ScanVolumes([self.paths[i] for i in picked], self.cache, self.settings, self.sample_shape)

    def read(self, indices=None):
        """The volumes of ``indices`` (all when None) as one float32 array."""
        indices = range(len(self.paths)) if indices is None else indices
        out = np.empty((len(indices),) + self.sample_shape, np.float32)
        for k, i in enumerate(indices):
            vol = self._load(self.paths[i])
            if vol.shape != self.sample_shape:
                raise InputError(f"{self.paths[i]!r} gives a volume of shape {vol.shape} but {self.paths[0]!r} gave "
                                 f"{self.sample_shape}; pass shape=(D, H, W) so that every scan comes out the same")
            out[k] = vol
        return out

    def __array__(self, dtype=None, copy=None):
        arr = self.read()
        return arr if dtype is None else arr.astype(dtype, copy=False)

    def batches(self, batch_size):
        """The volumes in order, ``batch_size`` at a time (for predictions)."""
        for start in range(0, len(self.paths), batch_size):
            yield self.read(range(start, min(start + batch_size, len(self.paths))))


class ScanBatches:
    """Batches ``(x, y)`` of a ``ScanVolumes`` and labels ``y`` for ``Sequential.fit``.

    With ``shuffle`` the order of epoch ``e`` is ``default_rng([seed, 2**20, e])``'s
    permutation, the one ``fit`` draws for arrays in memory with model seed
    ``seed``; ``workers`` threads read up to ``max_queue_size`` batches ahead."""

    def __init__(self, volumes, y, batch_size, seed=0, shuffle=True, workers=1, max_queue_size=2):
        self.volumes, self.y = volumes, np.asarray(y)
        if len(self.y) != len(volumes):
            raise InputError(f"ScanBatches: {len(volumes)} scans but {len(self.y)} labels")
        self.batch_size, self.seed, self.shuffle = int(batch_size), int(seed), bool(shuffle)
        self.workers, self.max_queue_size = workers, max_queue_size
        self.epoch = 0
        self._order = self._draw()

    def _draw(self):
        n = len(self.volumes)
        if not self.shuffle:
            return np.arange(n)
        return np.random.default_rng([self.seed, 2**20, self.epoch]).permutation(n)

    def __len__(self):
        return math.ceil(len(self.volumes) / self.batch_size)

    def __getitem__(self, i):
        idx = self._order[i * self.batch_size:(i + 1) * self.batch_size]
        return self.volumes.read(idx), self.y[idx]

    def on_epoch_end(self):
        self.epoch += 1
        self._order = self._draw()

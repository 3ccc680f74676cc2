"""Scans that stay on disk while a network trains on them.

``ScanVolumes`` stands for the preprocessed volumes of a list of scans
without holding them: it has the ``len``, ``shape`` and indexing of the
array ``load_scans`` would return, but indexing with sample indices gives a
smaller ``ScanVolumes``, and only ``read(indices)`` (or ``np.asarray``)
loads voxels, through a ``ScanCache``, so each scan is read and resampled
once and then comes from its cache file. It is a :class:`core.data.OnDemand`,
so ``BaseClassifier`` trains on it through :class:`core.data.SampleBatches`
(here also named ``ScanBatches``): shuffled batches read ahead by background
threads while the previous batch trains, in the order ``fit`` gives arrays
in memory for the same seed, so both routes train the same weights.
"""
from core.data import OnDemand, SampleBatches
from core.exceptions import InputError

from .cache import ScanCache
from .scans import load_scan

#: the data source over scans (the shared one of core)
ScanBatches = SampleBatches


class ScanVolumes(OnDemand):
    """The preprocessed volumes of ``paths`` (``(N, D, H, W, C)`` float32), read on demand
    through a ``ScanCache`` in ``cache_dir`` with the ``load_scan`` keyword ``settings``."""

    mismatch_hint = "; pass shape=(D, H, W) so that every scan comes out the same"

    def __init__(self, paths, cache_dir, settings, _sample_shape=None):
        paths = list(paths)
        if not paths and _sample_shape is None:
            raise InputError("ScanVolumes: the list of paths is empty")
        # without a cache folder every read loads and preprocesses the scan again
        self.cache = cache_dir if isinstance(cache_dir, ScanCache) or cache_dir is None else ScanCache(cache_dir)
        self.settings = dict(settings)
        super().__init__(paths, _sample_shape)  # the first scan fixes the shape (and fills its cache entry)

    @property
    def paths(self):
        return self.items

    def read_one(self, path):
        if self.cache is None:
            return load_scan(path, **self.settings)
        return self.cache.load(path, **self.settings)

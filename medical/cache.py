"""An on-disk cache of preprocessed scans (:class:`ScanCache`), and :func:`load_scans`, which reads many
scans through it.

``scans`` knows nothing of the cache (it imports nothing from here), so the two
modules do not import each other."""
import hashlib
import json
import os
import warnings
import zipfile

import numpy as np

from core.exceptions import InputError
from core.io import atomic_write

from . import preprocessing as pp
from .preprocessing import ScanQualityWarning
from .scans import DEFAULT_MAX_BYTES, _as_path, load_scan

CACHE_VERSION = 2
"""Bumped whenever preprocessing changes in a way that makes old entries wrong."""


def _fingerprint(path):
    """Size and modification time (ns) of a scan file, or of every file of a DICOM folder
    (a folder's own time does not change when a file in it is rewritten)."""
    if not os.path.isdir(path):
        st = os.stat(path)
        return [st.st_size, st.st_mtime_ns]
    out = []
    with os.scandir(path) as entries:
        for entry in entries:
            if entry.is_file():
                st = entry.stat()
                out.append([os.fsdecode(entry.name), st.st_size, st.st_mtime_ns])
    return sorted(out)


class ScanCache:
    """Preprocessed volumes kept as ``.npz`` files in ``cache_dir``.

    An entry is keyed by the scan's absolute path, size and modification time
    (nanoseconds; for a DICOM folder, those of every file in it) and by every preprocessing setting, hashed together
    (SHA-256), so editing or replacing a file, or changing a setting, misses
    the cache instead of returning stale data. Entries are written atomically
    and read without pickle; an unreadable entry is recomputed and rewritten.
    Nothing is ever deleted: remove the folder to clear it.

    >>> cache = ScanCache("cache/")
    >>> vol = cache.load("sub-01.nii.gz", shape=(32, 32, 32))   # (32, 32, 32, 1) float32
    """

    def __init__(self, cache_dir):
        try:
            self.cache_dir = os.fspath(cache_dir)
        except TypeError:
            raise InputError(f"cache_dir must be a path, got {type(cache_dir).__name__}") from None
        if os.path.exists(self.cache_dir) and not os.path.isdir(self.cache_dir):
            raise InputError(f"cache_dir {self.cache_dir!r} exists and is not a folder")
        self.hits = 0
        self.misses = 0

    @staticmethod
    def settings_key(spacing=None, shape=None, normalize="zscore", volume=None, shape_mode="resample",
                     channels=False, antialias=True, max_bytes=DEFAULT_MAX_BYTES, series=None):
        """The canonical, JSON-serializable form of the preprocessing settings."""
        norm = pp.check_normalize(normalize)
        return {"version": CACHE_VERSION, "spacing": pp.check_spacing(spacing), "shape": pp.check_shape(shape),
                "normalize": list(norm) if isinstance(norm, tuple) else norm,
                "volume": volume if volume is None or isinstance(volume, str) else int(volume),
                "series": None if series is None else str(series), "shape_mode": pp.check_shape_mode(shape_mode),
                "channels": bool(channels), "antialias": bool(antialias)}

    def entry_path(self, path, **settings):
        """Where the cached volume for ``path`` under ``settings`` lives (it may not exist yet)."""
        path = _as_path(path)
        ident = {"path": os.path.abspath(path), "files": _fingerprint(path), "settings": self.settings_key(**settings)}
        digest = hashlib.sha256(json.dumps(ident, sort_keys=True).encode("utf-8")).hexdigest()
        return os.path.join(self.cache_dir, digest[:40] + ".npz")

    def load(self, path, **settings):
        """Like :func:`medical.load_scan` (same keyword settings), through the cache.

        Returns float32 ``(D, H, W, C)``. A scan whose non-finite voxels were
        replaced warns again when read from the cache.
        """
        entry = self.entry_path(path, **settings)
        if os.path.exists(entry):
            try:
                with np.load(entry, allow_pickle=False) as data:
                    vol = np.asarray(data["volume"], dtype=np.float32)
                    n_bad = int(data["n_nonfinite"])
                self.hits += 1
                if n_bad:
                    warnings.warn(f"{os.fspath(path)!r}: replaced {n_bad} non-finite voxel(s) (cached result)",
                                  ScanQualityWarning, stacklevel=2)
                return vol
            except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
                pass  # a damaged entry: recompute it below
        self.misses += 1
        vol, info = load_scan(path, return_info=True, **settings)
        with atomic_write(entry, "wb") as handle:
            np.savez(handle, volume=vol, n_nonfinite=np.int64(info["n_nonfinite"]))
        return vol


def load_scans(paths, spacing=None, shape=None, normalize="zscore", volume=None, shape_mode="resample",
               channels=False, antialias=True, max_bytes=DEFAULT_MAX_BYTES, cache_dir=None, progress=False):
    """Load many scans, one at a time, into one float32 array ``(N, D, H, W, C)``.

    Every scan must come out with the same shape, so pass ``shape`` unless all
    files share a grid. The result is allocated once, after the first scan;
    each scan is read, preprocessed and copied in, so memory holds one raw
    volume besides the result. With ``cache_dir``, preprocessed volumes are
    kept as ``.npz`` files keyed by the file (path, size, modification time)
    and the settings (see :class:`medical.ScanCache`), and read from there next
    time. Other arguments as :func:`load_scan`. Errors name the offending file.
    """
    if isinstance(paths, (str, os.PathLike)):
        raise InputError("load_scans expects a list of paths; use load_scan for a single file")
    paths = list(paths)
    if not paths:
        raise InputError("load_scans: the list of paths is empty")
    settings = dict(spacing=spacing, shape=shape, normalize=normalize, volume=volume, shape_mode=shape_mode,
                    channels=channels, antialias=antialias, max_bytes=max_bytes)
    cache = ScanCache(cache_dir) if cache_dir is not None else None
    out = None
    iterator = paths
    if progress:
        from tqdm import tqdm
        iterator = tqdm(paths, desc="scans", unit="scan")
    for i, p in enumerate(iterator):
        vol = cache.load(p, **settings) if cache is not None else load_scan(p, **settings)
        if out is None:
            out = np.empty((len(paths),) + vol.shape, dtype=np.float32)
        elif vol.shape != out.shape[1:]:
            raise InputError(f"{os.fspath(p)!r} gives a volume of shape {vol.shape} but {os.fspath(paths[0])!r} gave "
                             f"{out.shape[1:]}; pass shape=(D, H, W) so that every scan comes out the same")
        out[i] = vol
    return out

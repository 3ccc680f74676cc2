"""An on-disk cache of preprocessed scans, so a second run does not re-read and resample every file."""
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

CACHE_VERSION = 1
"""Bumped whenever preprocessing changes in a way that makes old entries wrong."""


class ScanCache:
    """Preprocessed volumes kept as ``.npz`` files in ``cache_dir``.

    An entry is keyed by the scan's absolute path, size and modification time
    (nanoseconds) and by every preprocessing setting, hashed together
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
                     channels=False, antialias=True, max_bytes=DEFAULT_MAX_BYTES):
        """The canonical, JSON-serializable form of the preprocessing settings."""
        norm = pp.check_normalize(normalize)
        return {"version": CACHE_VERSION, "spacing": pp.check_spacing(spacing), "shape": pp.check_shape(shape),
                "normalize": list(norm) if isinstance(norm, tuple) else norm,
                "volume": None if volume is None else int(volume), "shape_mode": pp.check_shape_mode(shape_mode),
                "channels": bool(channels), "antialias": bool(antialias)}

    def entry_path(self, path, **settings):
        """Where the cached volume for ``path`` under ``settings`` lives (it may not exist yet)."""
        path = _as_path(path)
        st = os.stat(path)
        ident = {"path": os.path.abspath(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns,
                 "settings": self.settings_key(**settings)}
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

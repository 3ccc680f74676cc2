"""Small helpers shared by the har modules (not public)."""
import gzip
import warnings
import zlib

import numpy as np

from core.exceptions import DataFormatError, InputError
from core.io import check_path
from core.utils import check_int


TIME_UNITS = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}
"""Seconds per unit of a time column."""


class DataQualityWarning(UserWarning):
    """Records or samples were dropped, interpolated or otherwise repaired.

    Raised through :func:`warnings.warn` by the readers and by
    :func:`har.segment`, so that nothing is ever repaired silently. Filter it
    with ``warnings.simplefilter("ignore", har.DataQualityWarning)`` once the
    counts are known and accepted.
    """


def warn_quality(message):
    """Emit a :class:`DataQualityWarning` pointing at the caller's caller."""
    warnings.warn(message, DataQualityWarning, stacklevel=3)


def check_file(path, what="file"):
    """Return ``path`` as a string, raising DataFileNotFoundError if it is not a file."""
    return check_path(path, what, kind="file")


def read_text(path):
    """Read a text file (optionally gzip-compressed, by its ``.gz`` suffix) as str.

    Bytes that are not UTF-8 are replaced rather than failing: they only ever
    occur in comments of the formats read here.
    """
    if path.endswith(".gz"):
        try:
            with gzip.open(path, "rb") as handle:
                raw = handle.read()
        except (gzip.BadGzipFile, EOFError, zlib.error) as err:
            kind = ("it ends before the compressed stream does (truncated)" if isinstance(err, EOFError)
                    else f"its compressed data are damaged ({type(err).__name__})" if isinstance(err, zlib.error)
                    else "it is not gzip data")
            raise DataFormatError(f"{path}: the name ends in .gz but {kind}; give the file its real name, "
                                  "or download it again") from None
    else:
        with open(path, "rb") as handle:
            raw = handle.read()
    return raw.decode("utf-8", errors="replace")


def check_positive_int(value, name):
    """Return ``value`` as int if it is an integer >= 1, else raise InputError."""
    return check_int(value, name, minimum=1)


def check_rate(value, name):
    """Return ``value`` as a positive finite float, else raise InputError."""
    try:
        rate = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a positive number (Hz), got {value!r}") from None
    if not np.isfinite(rate) or rate <= 0:
        raise InputError(f"{name} must be a positive number (Hz), got {value!r}")
    return rate

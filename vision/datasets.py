"""Image data sets: the digits bundled with scikit-learn and the IDX format.

IDX is the binary format of MNIST and Fashion-MNIST. A file is a 4-byte magic
number, then one big-endian unsigned 32-bit size per dimension, then the data
in C order, big-endian::

    byte 0, 1   zero
    byte 2      type code: 0x08 ubyte, 0x09 byte, 0x0B short, 0x0C int,
                0x0D float, 0x0E double
    byte 3      number of dimensions (rank)
    4 * rank    the dimensions, big-endian uint32
    ...         prod(dims) values of the type, big-endian

The files are often distributed gzip-compressed (``train-images-idx3-ubyte.gz``);
:func:`load_idx` recognises gzip by its magic bytes, whatever the file is called.
"""
import gzip
import os
import struct
import zlib

import numpy as np

from core.exceptions import DataFileNotFoundError, DataFormatError, InputError
from core.filecheck import peek, regular_file

#: IDX type code -> (name, big-endian dtype as stored, native dtype returned)
IDX_TYPES = {
    0x08: ("unsigned byte", np.dtype(">u1"), np.dtype(np.uint8)),
    0x09: ("signed byte", np.dtype(">i1"), np.dtype(np.int8)),
    0x0B: ("short", np.dtype(">i2"), np.dtype(np.int16)),
    0x0C: ("int", np.dtype(">i4"), np.dtype(np.int32)),
    0x0D: ("float", np.dtype(">f4"), np.dtype(np.float32)),
    0x0E: ("double", np.dtype(">f8"), np.dtype(np.float64)),
}

_GZIP_MAGIC = b"\x1f\x8b"


def load_digits():
    """The 1797 handwritten digits (8x8 pixels) that ship with scikit-learn.

    This is the project's embedded image data set: it is read from the copy
    installed with scikit-learn, with no download. The images are the UCI
    "Optical Recognition of Handwritten Digits" set: each pixel counts the
    "on" pixels in a 4x4 block of a 32x32 bitmap, so it is an integer from
    0 to 16.

    Returns
    -------
    X : ndarray of shape (1797, 8, 8, 1), float32
        The images, channels last, values in [0, 16] (not rescaled; the
        classifier learns its own input scaling).
    y : ndarray of shape (1797,), int64
        The digit shown, 0 to 9.
    """
    from sklearn.datasets import load_digits as _sk_load_digits

    bunch = _sk_load_digits()
    X = np.asarray(bunch.images, dtype=np.float32)[..., np.newaxis]
    y = np.asarray(bunch.target, dtype=np.int64)
    return X, y


#: the most :func:`read_idx` returns unless told otherwise (MNIST's training images take 47 MB)
DEFAULT_MAX_BYTES = 2 << 30


def _read_full(handle, buf):
    """Fill ``buf`` from ``handle``; returns the number of bytes read (less at the end of the data)."""
    view, got = memoryview(buf), 0
    while got < len(buf):
        n = handle.readinto(view[got:])
        if not n:
            break
        got += n
    return got


def read_idx(path, what="IDX", max_bytes=DEFAULT_MAX_BYTES):
    """Read one IDX file (plain or gzip) into an array of its stored shape.

    The file is streamed: the header is read first and the declared size
    checked against ``max_bytes`` before the data is read (or decompressed),
    and nothing beyond the declared size is ever decompressed, so a gzip bomb
    costs neither time nor memory.

    Parameters
    ----------
    path : str or path-like
        The file. Gzip compression is detected from the content.
    what : str
        How the file is called in error messages ("images", "labels").
    max_bytes : int or None
        Refuse a file whose header declares more data than this (default
        ``DEFAULT_MAX_BYTES``, 2 GiB); ``None`` for no limit.

    Returns
    -------
    array : ndarray of shape ``dims`` declared in the header
        Values in native byte order, dtype given by the type code: uint8
        (0x08), int8 (0x09), int16 (0x0B), int32 (0x0C), float32 (0x0D) or
        float64 (0x0E).

    Raises
    ------
    DataFileNotFoundError
        The path does not exist or is a folder.
    InputError
        The path is not a regular file (a FIFO, a device), or a bad ``max_bytes``.
    DataFormatError
        Bad magic number, unknown type code, rank 0, a declared size above
        ``max_bytes``, a data size that does not match the declared
        dimensions (truncated file or trailing bytes), or a corrupt gzip stream.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise DataFileNotFoundError(f"{what} file {path!r} does not exist")
    if os.path.isdir(path):
        raise DataFileNotFoundError(f"{what} path {path!r} is a folder; expected an IDX file")
    regular_file(path, f"{what} file")
    if max_bytes is not None and (isinstance(max_bytes, bool) or not isinstance(max_bytes, (int, np.integer))
                                  or max_bytes < 1):
        raise InputError(f"max_bytes must be a positive int or None, got {max_bytes!r}")
    was_gzip = peek(path, 2) == _GZIP_MAGIC
    try:
        with (gzip.open if was_gzip else open)(path, "rb") as handle:
            return _read_idx_stream(handle, path, what, was_gzip, max_bytes)
    except (OSError, EOFError, zlib.error) as exc:
        if not was_gzip:
            raise DataFormatError(f"{what} file {path!r} could not be read ({type(exc).__name__})") from None
        raise DataFormatError(
            f"{what} file {path!r} starts with the gzip magic bytes but could not be "
            f"decompressed ({type(exc).__name__}); the file may be truncated or corrupt") from None


def _read_idx_stream(handle, path, what, was_gzip, max_bytes):
    size_note = " (after gzip decompression)" if was_gzip else ""
    data = handle.read(4)
    if len(data) < 4:
        raise DataFormatError(
            f"{what} file {path!r}: expected an IDX header of at least 4 bytes, "
            f"found {len(data)} byte(s){size_note}")
    zero0, zero1, code, ndim = data[0], data[1], data[2], data[3]
    if zero0 != 0 or zero1 != 0:
        raise DataFormatError(
            f"{what} file {path!r} is not an IDX file: its magic number must start with two "
            f"zero bytes, found 0x{data[:4].hex()}")
    if code not in IDX_TYPES:
        known = ", ".join(f"0x{c:02X} ({IDX_TYPES[c][0]})" for c in IDX_TYPES)
        raise DataFormatError(
            f"{what} file {path!r}: unknown IDX type code 0x{code:02X} in byte 2 of the "
            f"magic number; expected one of {known}")
    if ndim == 0:
        raise DataFormatError(
            f"{what} file {path!r}: IDX header declares 0 dimensions; expected at least 1")
    header = 4 + 4 * ndim
    dims_raw = handle.read(4 * ndim)
    if len(dims_raw) < 4 * ndim:
        raise DataFormatError(
            f"{what} file {path!r} is truncated inside its header: {ndim} dimensions need "
            f"{header} header bytes, found {4 + len(dims_raw)}{size_note}")
    dims = struct.unpack(f">{ndim}I", dims_raw)
    name, stored, native = IDX_TYPES[code]
    count = 1
    for d in dims:
        count *= d
    nbytes = count * stored.itemsize
    expected = header + nbytes
    shape = " x ".join(str(d) for d in dims)
    if max_bytes is not None and nbytes > max_bytes:
        raise DataFormatError(
            f"{what} file {path!r}: header declares {shape} values of type {name}, {nbytes:,} bytes, "
            f"more than max_bytes={max_bytes:,}; pass a larger max_bytes if the file is genuine")
    if not was_gzip:  # the size on disk tells at once
        found = os.fstat(handle.fileno()).st_size
        if found != expected:
            problem = "is truncated" if found < expected else "has trailing data"
            raise DataFormatError(
                f"{what} file {path!r} {problem}: header declares {shape} values of type {name} "
                f"({stored.itemsize} byte(s) each), so expected {expected} bytes in total, found {found}")
    buf = bytearray(nbytes)
    got = _read_full(handle, buf)
    if got < nbytes or handle.read(1):
        problem, found = ("is truncated", f"{header + got}") if got < nbytes else \
            ("has trailing data", f"more than {expected}")
        raise DataFormatError(
            f"{what} file {path!r} {problem}: header declares {shape} values of type {name} "
            f"({stored.itemsize} byte(s) each), so expected {expected} bytes in total, "
            f"found {found}{size_note}")
    array = np.frombuffer(buf, dtype=stored, count=count)
    return array.astype(native).reshape(dims)


def load_idx(images_path, labels_path=None, max_bytes=DEFAULT_MAX_BYTES):
    """Load MNIST-style IDX files (images and, optionally, labels).

    Parameters
    ----------
    images_path : str or path-like
        IDX file of images, plain or gzip-compressed (detected from the
        content, not the file name). Any IDX type code and any rank >= 1.
    labels_path : str or path-like, optional
        IDX file of labels, rank 1, with one label per image.
    max_bytes : int or None
        Refuse a file that declares more data than this (default 2 GiB), checked
        from its header before anything is read or decompressed; see :func:`read_idx`.

    Returns
    -------
    X : ndarray
        The images in their stored dtype (uint8 for MNIST; see
        :func:`read_idx` for the other type codes), native byte order.
        A rank-3 file (N, H, W) is returned channels last as (N, H, W, 1);
        any other rank is returned as stored (rank 4 files are taken to be
        (N, H, W, C) already).
    y : ndarray of shape (N,) or None
        The labels, int64 when the labels file holds integers (its stored
        float dtype otherwise); None when ``labels_path`` is None.

    Raises
    ------
    DataFileNotFoundError
        A path does not exist.
    DataFormatError
        A file is not valid IDX (see :func:`read_idx`), the labels file is not
        rank 1, or the number of labels differs from the number of images.
    """
    X = read_idx(images_path, "images", max_bytes=max_bytes)
    if X.ndim == 3:
        X = X[..., np.newaxis]
    if labels_path is None:
        return X, None
    y = read_idx(labels_path, "labels", max_bytes=max_bytes)
    if y.ndim != 1:
        raise DataFormatError(
            f"labels file {os.fspath(labels_path)!r}: expected a rank-1 IDX file (one label per "
            f"image), found rank {y.ndim} with shape {y.shape}")
    if y.shape[0] != X.shape[0]:
        raise DataFormatError(
            f"images file {os.fspath(images_path)!r} holds {X.shape[0]} images but labels file "
            f"{os.fspath(labels_path)!r} holds {y.shape[0]} labels; expected the same count")
    if np.issubdtype(y.dtype, np.integer):
        y = y.astype(np.int64)
    return X, y


def write_idx(path, array):
    """Write ``array`` to ``path`` as an (uncompressed) IDX file, atomically.

    The inverse of :func:`read_idx`, for preparing data sets and tests.

    Parameters
    ----------
    path : str or path-like
        Destination; a name ending in ``.gz`` is written gzip-compressed.
    array : array_like of rank >= 1
        dtype uint8, int8, int16, int32, float32 or float64.
    """
    from core.io import atomic_write

    array = np.asarray(array)
    codes = {native: code for code, (_, _, native) in IDX_TYPES.items()}
    if array.dtype.newbyteorder("=") not in codes:
        raise InputError(
            f"write_idx: array dtype must be one of uint8, int8, int16, int32, float32, float64; "
            f"found {array.dtype}")
    if array.ndim < 1 or array.ndim > 255:
        raise InputError(f"write_idx: array rank must be 1 to 255, found {array.ndim}")
    code = codes[array.dtype.newbyteorder("=")]
    payload = (bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
               + np.ascontiguousarray(array, dtype=IDX_TYPES[code][1]).tobytes())
    if os.fspath(path).endswith(".gz"):
        payload = gzip.compress(payload, mtime=0)
    with atomic_write(path, "wb") as handle:
        handle.write(payload)

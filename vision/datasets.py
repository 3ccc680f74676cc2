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


def _read_bytes(path, what):
    """Whole content of ``path``, gunzipped when it starts with the gzip magic.

    Returns (bytes, was_gzip).
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise DataFileNotFoundError(f"{what} file {path!r} does not exist")
    if os.path.isdir(path):
        raise DataFileNotFoundError(f"{what} path {path!r} is a folder; expected an IDX file")
    with open(path, "rb") as handle:
        raw = handle.read()
    if raw[:2] != _GZIP_MAGIC:
        return raw, False
    try:
        return gzip.decompress(raw), True
    except (OSError, EOFError, zlib.error) as exc:
        raise DataFormatError(
            f"{what} file {path!r} starts with the gzip magic bytes but could not be "
            f"decompressed ({exc}); the file may be truncated or corrupt") from None


def read_idx(path, what="IDX"):
    """Read one IDX file (plain or gzip) into an array of its stored shape.

    Parameters
    ----------
    path : str or path-like
        The file. Gzip compression is detected from the content.
    what : str
        How the file is called in error messages ("images", "labels").

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
    DataFormatError
        Bad magic number, unknown type code, rank 0, or a data size that does
        not match the declared dimensions (truncated file or trailing bytes).
    """
    path = os.fspath(path)
    data, was_gzip = _read_bytes(path, what)
    size_note = " (after gzip decompression)" if was_gzip else ""
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
    if len(data) < header:
        raise DataFormatError(
            f"{what} file {path!r} is truncated inside its header: {ndim} dimensions need "
            f"{header} header bytes, found {len(data)}{size_note}")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    name, stored, native = IDX_TYPES[code]
    count = 1
    for d in dims:
        count *= d
    expected = header + count * stored.itemsize
    if len(data) != expected:
        problem = "is truncated" if len(data) < expected else "has trailing data"
        shape = " x ".join(str(d) for d in dims)
        raise DataFormatError(
            f"{what} file {path!r} {problem}: header declares {shape} values of type {name} "
            f"({stored.itemsize} byte(s) each), so expected {expected} bytes in total, "
            f"found {len(data)}{size_note}")
    array = np.frombuffer(data, dtype=stored, count=count, offset=header)
    return array.astype(native).reshape(dims)


def load_idx(images_path, labels_path=None):
    """Load MNIST-style IDX files (images and, optionally, labels).

    Parameters
    ----------
    images_path : str or path-like
        IDX file of images, plain or gzip-compressed (detected from the
        content, not the file name). Any IDX type code and any rank >= 1.
    labels_path : str or path-like, optional
        IDX file of labels, rank 1, with one label per image.

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
    X = read_idx(images_path, "images")
    if X.ndim == 3:
        X = X[..., np.newaxis]
    if labels_path is None:
        return X, None
    y = read_idx(labels_path, "labels")
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

"""Checks for files that come from elsewhere: is it a path, is it a regular
file, and reads of its first bytes that can never grow without bound.

Every reader of an untrusted file starts with :func:`regular_file`: it looks
at the path with ``os.stat`` (which opens nothing), so a FIFO, a character
device such as ``/dev/zero`` or a socket is refused before any ``open`` could
block or stream forever.
"""
import os
import stat

from .exceptions import DataFileNotFoundError, InputError

#: the most any format-detection "peek" reads from the start of a file
PEEK_BYTES = 64 * 1024


def as_path(path, what):
    """``path`` as a ``str``; ``InputError`` naming ``what`` when it is not a path at all
    (``None``, a number...)."""
    try:
        out = os.fspath(path)
    except TypeError:
        raise InputError(f"{what}: expected a path (str or os.PathLike), got {type(path).__name__}") from None
    if isinstance(out, bytes):
        out = os.fsdecode(out)
    if not out or "\x00" in out:
        raise InputError(f"{what}: expected a path, got {out!r}")
    return out


def _kind(mode):
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def regular_file(path, what="file", allow_dir=False):
    """``path`` as a ``str`` after checking, without opening it, that it exists
    and is a regular file (or a folder, when ``allow_dir``).

    Raises ``InputError`` for a non-path or a path of the wrong kind (folder,
    FIFO, device, socket), ``DataFileNotFoundError`` for a missing path.
    """
    path = as_path(path, what)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise DataFileNotFoundError(f"{what} {path!r} does not exist") from None
    except OSError as exc:
        raise InputError(f"{what} {path!r} cannot be examined ({exc.strerror or type(exc).__name__})") from None
    if stat.S_ISREG(mode) or (allow_dir and stat.S_ISDIR(mode)):
        return path
    expected = "a regular file or a folder" if allow_dir else "a regular file"
    raise InputError(f"{what} {path!r} is {_kind(mode)}; expected {expected}")


def peek(path, n=PEEK_BYTES):
    """The first ``min(n, PEEK_BYTES)`` bytes of the regular file ``path``."""
    with open(path, "rb") as handle:
        return handle.read(min(int(n), PEEK_BYTES))


def writable_target(path, what="output file"):
    """``path`` as a ``str`` after checking it can be the name of a new file:
    not an existing folder or other non-regular file."""
    path = as_path(path, what)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return path
    except OSError:
        return path  # let the write itself report what is wrong
    if not stat.S_ISREG(mode):
        raise InputError(f"{what} {path!r} is {_kind(mode)}; expected the name of a file to write")
    return path

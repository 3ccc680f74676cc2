"""Small file helpers shared by every package: atomic writes."""
import contextlib
import os
import secrets

from .exceptions import CNNError, FileWriteError


def _create_temporary(path):
    """A new file beside ``path``: ``(fd, name)``. It is created with mode 0o666, which
    the kernel reduces by the process umask: the permissions a plain ``open(path, "w")``
    gives, without reading or changing the umask (which other threads share)."""
    directory, base = os.path.split(os.path.abspath(path))
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        tmp = os.path.join(directory, f".{base}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"could not create a temporary file beside {path!r}")


@contextlib.contextmanager
def atomic_write(path, mode="wb"):
    """Open a temporary file beside ``path``; on success rename it over ``path``.

    A crash or exception inside the ``with`` block removes the temporary file,
    so ``path`` is either the complete new content or whatever was there
    before, never a half-written file. Yields an open file object.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(directory, exist_ok=True)
        fd, tmp = _create_temporary(path)
    except OSError as exc:
        raise _write_error(path, exc) from None
    try:
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and not isinstance(exc, CNNError):
            raise _write_error(path, exc) from None
        raise


def _reason(exc):
    """The system's reason for the ``OSError`` ``exc`` (disk full, read-only, permission...)."""
    return exc.strerror or str(exc) or type(exc).__name__


def _write_error(path, exc):
    """Our ``FileWriteError`` for a failed write of ``path``: the file and the
    system's reason (disk full, read-only, permission...), keeping ``errno``."""
    err = FileWriteError(f"could not write {path!r}: {_reason(exc)}"
                         + (f" ({exc.filename!r})" if exc.filename and exc.filename != path else ""))
    err.errno, err.path = exc.errno, path  # (strerror/filename left unset: they would replace the message)
    return err


def make_folder(path, what="folder"):
    """Create the folder ``path`` and its parents where missing; returns ``path`` as a ``str``.
    ``FileWriteError`` naming ``what`` and the path when it cannot be (a file in the way, a
    parent that is not a folder, no permission) or when it exists but cannot be written in."""
    path = os.fspath(path)
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as exc:
        reason = ("a file of that name is in the way" if os.path.exists(path) and not os.path.isdir(path)
                  else _reason(exc))
        err = FileWriteError(f"{what}: could not create the folder {path!r}: {reason}")
        err.errno, err.path = exc.errno, path
        raise err from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise FileWriteError(f"{what}: the folder {path!r} exists but this process may not write in it")
    return path


def check_path(path, what="file", kind="file"):
    """``path`` as a ``str`` after checking it names an existing file (``kind="file"``)
    or folder (``kind="dir"``); ``what`` names it in the messages ("scan file",
    "manifest"...). Raises ``InputError`` for a non-path or the wrong kind and
    ``DataFileNotFoundError`` for a missing path."""
    from .exceptions import DataFileNotFoundError, InputError

    try:
        path = os.fspath(path)
    except TypeError:
        raise InputError(f"{what}: expected a path (str or os.PathLike), got {type(path).__name__}") from None
    if not os.path.exists(path):
        raise DataFileNotFoundError(f"{what} not found: {path!r}")
    if kind == "file" and os.path.isdir(path):
        raise InputError(f"{what}: expected a file, got the folder {path!r}")
    if kind == "file":  # a FIFO or a device would block or stream forever: refuse it unopened
        from .filecheck import regular_file
        regular_file(path, what)
    if kind == "dir" and not os.path.isdir(path):
        raise InputError(f"{what}: expected a folder, got the file {path!r}")
    return path

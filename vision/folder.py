"""Read a folder of images laid out one sub-folder per class."""
import os
import warnings

import numpy as np

from core.data import OnDemand
from core.exceptions import DataFileNotFoundError, DataFormatError, InputError, ShapeError
from core.filecheck import as_path, regular_file

#: Files written by operating systems into image folders; never treated as images.
IGNORED_FILES = frozenset({"thumbs.db", "desktop.ini"})

_COLOR_MODES = {"grayscale": ("L", 1), "rgb": ("RGB", 3)}


def _check_size(size, what="load_image_folder"):
    if size is None:
        return None
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        size = (size, size)
    try:
        h, w = size
        ok = all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v > 0
                 for v in (h, w))
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise InputError(
            f"{what}: size must be (height, width) with two positive integers, "
            f"an integer, or None; found {size!r}")
    return int(h), int(w)


def _visible(name):
    return not name.startswith(".") and name.lower() not in IGNORED_FILES


def _class_files(folder):
    """Every visible file under ``folder`` (recursing into visible sub-folders), sorted."""
    found = []
    for here, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found.extend(os.path.join(here, f) for f in sorted(files) if _visible(f))
    return found


def _read_image(path, mode, size):
    """One image file -> uint8 array (H, W) or (H, W, 3). Raises on any failure."""
    from PIL import Image, ImageOps

    with Image.open(path) as img:
        img.load()
        img = ImageOps.exif_transpose(img)
        if img.mode == "F":  # 32-bit float pixels: Pillow would turn NaN into an ordinary grey value
            values = np.asarray(img)
            if not np.isfinite(values).all():
                bad = int(values.size - np.count_nonzero(np.isfinite(values)))
                raise DataFormatError(f"{bad} of its {values.size} float pixels are NaN or infinite")
        if img.mode.startswith("I;16"):
            # 16-bit grey: Pillow's own conversion to 8 bits clips at 255, so map
            # 0..65535 onto 0..255 here instead.
            values = np.asarray(img, dtype=np.float64) / 257.0
            img = Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8), "L")
        elif img.mode == "P" or img.mode in ("PA", "LA", "La", "RGBa"):
            img = img.convert("RGBA")
        img = img.convert(mode)
        if size is not None and img.size != (size[1], size[0]):
            img = img.resize((size[1], size[0]), Image.Resampling.BILINEAR)
        return np.asarray(img, dtype=np.uint8).copy()


def _try_read(path, mode, size):
    """``(uint8 array (H, W) or (H, W, 3), None)``, or ``(None, reason)`` when ``path`` is not a
    readable image (missing, not a regular file, not an image, corrupt, truncated)."""
    try:
        regular_file(path, "image file")  # a FIFO or a device would block Pillow's open
        return _read_image(path, mode, size), None
    except DataFileNotFoundError:
        return None, "the file does not exist"
    except Exception as exc:  # Pillow raises many types for bad files
        return None, f"{type(exc).__name__}: {exc}"


def read_image_file(path, color="grayscale", size=None):
    """One image file -> uint8 array ``(H, W, C)``, read exactly as :func:`load_image_folder` reads
    the files of a folder (EXIF orientation, 16-bit grey, alpha dropped, bilinear resize to ``size``).

    Raises ``DataFileNotFoundError`` when ``path`` does not exist and
    ``DataFormatError`` (naming the file) when it is not a readable image."""
    size = _check_size(size, "read_image_file")
    mode, channels = _color_mode(color)
    path = as_path(path, "image file")
    arr, reason = _try_read(path, mode, size)
    if arr is None:
        if not os.path.lexists(path):
            raise DataFileNotFoundError(f"image file {path!r} does not exist")
        raise DataFormatError(f"image file {path!r} could not be read as an image ({reason})")
    return arr.reshape(arr.shape[:2] + (channels,))


def _color_mode(color, what="read_image_file"):
    if color not in _COLOR_MODES:
        raise InputError(f"{what}: color must be 'grayscale' or 'rgb', found {color!r}")
    return _COLOR_MODES[color]


def _check_on_error(on_error, what):
    if on_error not in ("raise", "skip"):
        raise InputError(f"{what}: on_error must be 'raise' or 'skip', found {on_error!r}")


def list_image_folder(root):
    """``(paths, labels)`` of the files of an image folder laid out one sub-folder per class,
    without reading any image (the listing :func:`load_image_folder` and :class:`ImageFolder` share)."""
    root = os.fspath(root)
    if not os.path.exists(root):
        raise DataFileNotFoundError(f"image folder {root!r} does not exist")
    if not os.path.isdir(root):
        raise DataFileNotFoundError(
            f"image folder {root!r} is a file; expected a folder with one sub-folder per class")
    classes = sorted(d for d in os.listdir(root)
                     if not d.startswith(".") and os.path.isdir(os.path.join(root, d)))
    if not classes:
        loose = [f for f in os.listdir(root) if _visible(f)]
        found = f"found {len(loose)} file(s) and no sub-folder" if loose else "found it empty"
        raise DataFormatError(
            f"image folder {root!r}: expected one sub-folder per class holding that class's "
            f"images, {found}")
    paths, labels = [], []
    for name in classes:
        files = _class_files(os.path.join(root, name))
        if not files:
            raise DataFormatError(f"class folder {os.path.join(root, name)!r}: expected at least one image, "
                                  f"but it holds no files")
        paths.extend(files)
        labels.extend([name] * len(files))
    return paths, labels


def _no_image_left(folder, n_files, first_reason):
    return DataFormatError(f"class folder {folder!r}: expected at least one image, but none of its {n_files} "
                           f"file(s) could be read as an image (first: {first_reason})")


def load_image_folder(root, size=(28, 28), color="grayscale", on_error="raise", return_info=False):
    """Load images stored one sub-folder per class (``root/<class>/<image>``).

    Class names are the sub-folder names in sorted order. Every visible file
    inside a class folder (sub-folders included, in sorted order) is read
    with Pillow, so PNG, JPEG, BMP, GIF, TIFF, WebP... all work; animated
    files give their first frame, the EXIF orientation of photos is applied,
    alpha is dropped, 16-bit greyscale is mapped onto 0..255. Images of
    different sizes are all resized (bilinear) to ``size``.

    Ignored: files and folders whose name starts with a dot, ``Thumbs.db`` and
    ``desktop.ini``, and plain files lying directly in ``root``.

    Parameters
    ----------
    root : str or path-like
        Folder holding one sub-folder per class.
    size : (int, int), int or None
        Output (height, width); an int means a square. None keeps each
        image's own size, which must then be the same for all images.
    color : {"grayscale", "rgb"}
        "grayscale" gives 1 channel, "rgb" gives 3.
    on_error : {"raise", "skip"}
        What to do with a file Pillow cannot read (not an image, corrupt or
        truncated): "raise" a DataFormatError naming it, or "skip" it and
        emit one UserWarning listing every skipped file.
    return_info : bool
        Also return a dict ``{"paths": [...], "skipped": [{"path", "reason"}...]}``:
        the file of every image, and every file skipped with why.

    Returns
    -------
    X : ndarray of shape (N, H, W, C), uint8
        The images, channels last; C is 1 for "grayscale", 3 for "rgb".
    y : ndarray of shape (N,), str
        The class (sub-folder name) of each image; images are ordered by
        class, then by path.
    info : dict
        Only with ``return_info=True`` (see above).

    Raises
    ------
    DataFileNotFoundError
        ``root`` does not exist or is not a folder.
    DataFormatError
        ``root`` has no class sub-folders, a class folder holds no readable
        image, or (with on_error="raise") a file is not a readable image.
    ShapeError
        ``size=None`` and the images do not all have the same size.
    InputError
        A bad ``size``, ``color`` or ``on_error`` argument.
    """
    size = _check_size(size)
    mode, _ = _color_mode(color, "load_image_folder")
    _check_on_error(on_error, "load_image_folder")
    paths, labels = list_image_folder(root)
    images, kept, skipped = [], [], []
    first_shape = None
    for path, label in zip(paths, labels):
        arr, reason = _try_read(path, mode, size)
        if arr is None:
            if on_error == "raise":
                raise DataFormatError(
                    f"image file {path!r} could not be read as an image ({reason}); "
                    f"remove it or pass on_error='skip'")
            skipped.append({"path": path, "reason": reason})
            continue
        if first_shape is None:
            first_shape = (arr.shape, path)
        elif size is None and arr.shape != first_shape[0]:
            raise ShapeError(
                f"image file {path!r} is {arr.shape[1]}x{arr.shape[0]} pixels but "
                f"{first_shape[1]!r} is {first_shape[0][1]}x{first_shape[0][0]}; with "
                f"size=None all images must have the same size (pass size=(H, W) to resize)")
        images.append(arr)
        kept.append((path, label))
    _check_every_class_kept(os.fspath(root), paths, labels, kept, skipped)
    if skipped:
        warnings.warn(
            f"load_image_folder: skipped {len(skipped)} file(s) that could not be read as "
            f"images: " + "; ".join(f"{s['path']} ({s['reason']})" for s in skipped), UserWarning, stacklevel=2)
    X = np.stack(images)
    if X.ndim == 3:
        X = X[..., np.newaxis]
    y = np.array([label for _, label in kept], dtype=str)
    if return_info:
        return X, y, {"paths": [path for path, _ in kept], "skipped": skipped}
    return X, y


def _check_every_class_kept(root, paths, labels, kept, skipped):
    """A class folder none of whose files could be read is an error, whatever ``on_error`` says."""
    left = {label for _, label in kept}
    for label in dict.fromkeys(labels):
        if label not in left:
            files = [p for p, lab in zip(paths, labels) if lab == label]
            first = next(s for s in skipped if s["path"] in set(files))
            raise _no_image_left(os.path.join(root, label), len(files), f"{first['path']} ({first['reason']})")


class ImageFiles(OnDemand):
    """Image files read on demand as float32 ``(N, H, W, C)`` (see :class:`core.data.OnDemand`),
    each read as :func:`read_image_file` reads it (``mode`` "L" or "RGB", resized to ``size``)."""

    mismatch_hint = "; pass size=(H, W) so that every image comes out the same"

    def __init__(self, paths, color="grayscale", size=(28, 28)):
        self.size = _check_size(size, "ImageFiles")
        self.color = color
        _color_mode(color, "ImageFiles")
        super().__init__(paths)

    def read_one(self, path):
        return read_image_file(path, self.color, self.size).astype(np.float32)


class ImageFolder:
    """An image folder (one sub-folder per class) too large for memory: listed now, read on demand.

    The files and their labels are listed up front, as :func:`load_image_folder`
    lists them, and each file's header is opened (cheap: no pixels are
    decoded) so that files that are not images are found at once; the pixels
    are read a batch at a time, with the same preprocessing as
    ``load_image_folder`` (so both give the same numbers). ``ImageClassifier``
    takes it wherever it takes images: ``fit(folder)`` (its labels are the
    folder's), ``predict(folder)``, ``evaluate(folder)``; memory then holds a
    few batches, not the data set, and the scaling is learned in one pass.

    Parameters
    ----------
    root, size, color
        As for :func:`load_image_folder`; ``size=None`` keeps the first
        image's size, and an image of another size raises ``ShapeError`` when read.
    on_error : {"raise", "skip"}
        A file whose header Pillow cannot read: raise a ``DataFormatError``
        naming it, or leave it out (listed in ``skipped``). A file that is
        damaged beyond its header is found only when read, and then raises a
        ``DataFormatError`` naming it.

    Attributes
    ----------
    images : ImageFiles
        The images ``(N, H, W, C)``, read on demand.
    labels : ndarray (N,) of str
        The class (sub-folder name) of each image, in the order of ``images``.
    paths : list of str
    classes : list of str
    skipped : list of {"path": ..., "reason": ...}
    """

    def __init__(self, root, size=(28, 28), color="grayscale", on_error="raise"):
        size = _check_size(size, "ImageFolder")
        _color_mode(color, "ImageFolder")
        _check_on_error(on_error, "ImageFolder")
        self.root, self.size, self.color, self.on_error = os.fspath(root), size, color, on_error
        paths, labels = list_image_folder(root)
        kept, skipped = [], []
        for path, label in zip(paths, labels):
            reason = _header_problem(path)
            if reason is None:
                kept.append((path, label))
            elif on_error == "raise":
                raise DataFormatError(f"image file {path!r} could not be read as an image ({reason}); "
                                      f"remove it or pass on_error='skip'")
            else:
                skipped.append({"path": path, "reason": reason})
        _check_every_class_kept(self.root, paths, labels, kept, skipped)
        if skipped:
            warnings.warn(f"ImageFolder: skipped {len(skipped)} file(s) that could not be read as images: "
                          + "; ".join(f"{s['path']} ({s['reason']})" for s in skipped), UserWarning, stacklevel=2)
        self.paths = [p for p, _ in kept]
        self.labels = np.array([label for _, label in kept], dtype=str)
        self.classes = sorted(set(self.labels.tolist()))
        self.skipped = skipped
        self.images = ImageFiles(self.paths, color, size)

    @property
    def shape(self):
        return self.images.shape

    def __len__(self):
        return len(self.paths)

    def __array__(self, dtype=None, copy=None):
        return self.images.__array__(dtype)

    def __repr__(self):
        return (f"ImageFolder({self.root!r}, size={self.size}, color={self.color!r}: {len(self)} images, "
                f"{len(self.classes)} classes, {len(self.skipped)} skipped)")


def _header_problem(path):
    """Why ``path`` is not an image, judged from its header only (no pixels decoded); None if it looks fine."""
    from PIL import Image

    try:
        regular_file(path, "image file")
        with Image.open(path) as img:
            if img.size[0] < 1 or img.size[1] < 1:
                return f"it declares {img.size[0]}x{img.size[1]} pixels"
    except Exception as exc:  # Pillow raises many types for bad files
        return f"{type(exc).__name__}: {exc}"
    return None

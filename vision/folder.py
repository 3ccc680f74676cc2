"""Read a folder of images laid out one sub-folder per class."""
import os
import warnings

import numpy as np

from core.exceptions import DataFileNotFoundError, DataFormatError, InputError, ShapeError

#: Files written by operating systems into image folders; never treated as images.
IGNORED_FILES = frozenset({"thumbs.db", "desktop.ini"})

_COLOR_MODES = {"grayscale": ("L", 1), "rgb": ("RGB", 3)}


def _check_size(size):
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
            f"load_image_folder: size must be (height, width) with two positive integers, "
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


def load_image_folder(root, size=(28, 28), color="grayscale", on_error="raise"):
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

    Returns
    -------
    X : ndarray of shape (N, H, W, C), uint8
        The images, channels last; C is 1 for "grayscale", 3 for "rgb".
    y : ndarray of shape (N,), str
        The class (sub-folder name) of each image; images are ordered by
        class, then by path.

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
    if color not in _COLOR_MODES:
        raise InputError(
            f"load_image_folder: color must be 'grayscale' or 'rgb', found {color!r}")
    if on_error not in ("raise", "skip"):
        raise InputError(
            f"load_image_folder: on_error must be 'raise' or 'skip', found {on_error!r}")
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

    mode, _ = _COLOR_MODES[color]
    images, labels, skipped = [], [], []
    first_shape = None
    for name in classes:
        folder = os.path.join(root, name)
        files = _class_files(folder)
        n_read = n_bad = 0
        for path in files:
            try:
                arr = _read_image(path, mode, size)
            except Exception as exc:  # Pillow raises many types for bad files
                reason = f"{type(exc).__name__}: {exc}"
                if on_error == "raise":
                    raise DataFormatError(
                        f"image file {path!r} could not be read as an image ({reason}); "
                        f"remove it or pass on_error='skip'") from None
                skipped.append(f"{path} ({reason})")
                n_bad += 1
                continue
            if first_shape is None:
                first_shape = (arr.shape, path)
            elif size is None and arr.shape != first_shape[0]:
                raise ShapeError(
                    f"image file {path!r} is {arr.shape[1]}x{arr.shape[0]} pixels but "
                    f"{first_shape[1]!r} is {first_shape[0][1]}x{first_shape[0][0]}; with "
                    f"size=None all images must have the same size (pass size=(H, W) to resize)")
            images.append(arr)
            labels.append(name)
            n_read += 1
        if n_read == 0:
            what = (f"none of its {len(files)} file(s) could be read as an image "
                    f"(first: {skipped[-n_bad]})" if files else "it holds no files")
            raise DataFormatError(
                f"class folder {folder!r}: expected at least one image, but {what}")
    if skipped:
        warnings.warn(
            f"load_image_folder: skipped {len(skipped)} file(s) that could not be read as "
            f"images: " + "; ".join(skipped), UserWarning, stacklevel=2)
    X = np.stack(images)
    if X.ndim == 3:
        X = X[..., np.newaxis]
    return X, np.array(labels, dtype=str)

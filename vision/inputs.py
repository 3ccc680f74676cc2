"""What a user has -> the batch of images an ``ImageClassifier`` works on.

One function, :func:`as_images`, serves ``fit``, ``predict``,
``predict_proba``, ``evaluate``, ``score`` and ``explain``. It accepts:

* a batch: an array ``(N, H, W)`` (one channel) or ``(N, H, W, C)``;
* one image (after fit only): an array ``(H, W)``, or ``(H, W, C)`` (see
  the rule below); the result holds one image;
* a path (``str`` or ``os.PathLike``) to one image file, or a list / tuple
  of them (after fit only): each file is read as :func:`vision.load_image_folder`
  reads a folder's files (EXIF orientation, 16-bit grey, alpha dropped), in
  the training colour (1 channel: grayscale, 3: RGB) and resized (bilinear)
  to the training height and width;
* an :class:`vision.ImageFolder` or :class:`vision.folder.ImageFiles`:
  images read on demand, a batch at a time.

The rule for a 3-D array after fit, with the model trained on ``(H, W, C)``
images: it is a batch ``(N, H, W)`` of one-channel images when the model has
one channel and the array's last two axes are the trained ``(H, W)``;
otherwise it is one image when its last axis equals ``C`` or its first two
axes are the trained ``(H, W)``; otherwise a batch of one-channel images.
So for a grayscale model, ``(N, H, W)`` is a batch and ``(H, W, 1)`` one
image; for an RGB model, ``(h, w, 3)`` is one image; ``(H, W, 3)`` given to a
grayscale model is one image with the wrong number of channels (an error).
A 2-D array is always one image. Before fit, arrays are always batches.
"""
import os

import numpy as np

from core.exceptions import InputError, ShapeError

from .folder import ImageFiles, ImageFolder, read_image_file

#: the colour files are read in, by the number of channels the model was trained on
COLORS = {1: "grayscale", 3: "rgb"}


def is_path(x):
    return isinstance(x, (str, os.PathLike))


def _paths(X):
    """The paths in ``X`` (one path, or a list / tuple / string array of them), or None if ``X`` holds none."""
    if is_path(X):
        return [X]
    if isinstance(X, np.ndarray) and X.dtype.kind == "U" and X.ndim <= 1:
        return X.reshape(-1).tolist()
    if isinstance(X, (list, tuple)) and any(is_path(x) for x in X):
        if not all(is_path(x) for x in X):
            kinds = sorted({type(x).__name__ for x in X})
            raise InputError(f"X mixes paths and other things ({', '.join(kinds)}); give a list of image file "
                             f"paths, or one array of images")
        return list(X)
    return None


def read_images(paths, input_shape):
    """Image files -> float32 ``(N, H, W, C)`` for a model trained on ``input_shape`` ``(H, W, C)``."""
    h, w, c = input_shape
    if c not in COLORS:
        raise InputError(f"the model was trained on images with {c} channels; image files can be read as 1 "
                         f"(grayscale) or 3 (RGB) channels only, so give it arrays")
    out = np.empty((len(paths), h, w, c), np.float32)
    for i, path in enumerate(paths):
        out[i] = read_image_file(path, COLORS[c], (h, w))
    return out


def as_images(X, input_shape=None, name="X"):
    """``X`` (see the module docstring) -> float32 ``(N, H, W, C)``, or an ``ImageFiles`` read on demand.

    ``input_shape`` is the trained ``(H, W, C)``, or None before fit (when
    paths and single images are refused). Checks the rank, the dtype and
    emptiness; the caller checks the size and channels against the model.
    """
    if isinstance(X, ImageFolder):
        return X.images
    if isinstance(X, ImageFiles):
        return X
    paths = _paths(X)
    if paths is not None:
        if not paths:
            raise InputError(f"{name} is an empty list of image files")
        if input_shape is None:
            raise InputError(f"{name}: to train on image files, read them with vision.load_image_folder or "
                             f"vision.ImageFolder (which also give their labels); paths are taken after fit")
        return read_images(paths, input_shape)
    try:
        arr = np.asarray(X)
    except Exception as exc:  # ragged lists of images
        raise InputError(f"{name} could not be converted to an array of images ({exc}); images of different "
                         f"sizes must be resized first (vision.load_image_folder does it)") from None
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise InputError(f"{name} must hold real numbers (uint8 or float images) or be image file paths, "
                         f"found dtype {arr.dtype}")
    if input_shape is not None and arr.ndim in (2, 3):
        arr = _as_batch(arr, input_shape)
    elif arr.ndim == 3:
        arr = arr[..., np.newaxis]
    if arr.ndim != 4:
        single = "" if input_shape is None else ", one image (H, W) or (H, W, C), image file paths"
        raise ShapeError(f"{name} must be images of shape (N, H, W) or (N, H, W, C){single}; "
                         f"found shape {arr.shape}")
    if arr.shape[0] == 0 or 0 in arr.shape[1:]:
        raise InputError(f"{name} is empty (shape {arr.shape}); at least one image of at least 1x1 pixel is needed")
    return arr.astype(np.float32, copy=False)


def _as_batch(arr, input_shape):
    """A 2-D or 3-D array after fit -> a 4-D batch, by the rule of the module docstring."""
    h, w, c = input_shape
    if arr.ndim == 2:
        return arr[np.newaxis, ..., np.newaxis]
    if c == 1 and arr.shape[1:] == (h, w):
        return arr[..., np.newaxis]                 # (N, H, W): a batch of one-channel images
    if arr.shape[-1] == c or arr.shape[:2] == (h, w):
        return arr[np.newaxis]                      # (H, W, C): one image (its channels checked later)
    return arr[..., np.newaxis]                     # a batch of one-channel images (of another size)

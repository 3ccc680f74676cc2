"""Image classification pipeline: PrepareVision -> TrainVision -> EvaluateVision, and SweepVision.

Sources (``--source``; ``--format auto`` tells them apart):

* none: the real handwritten digits bundled with scikit-learn (``vision.load_digits``, 8x8);
* ``idx``: an MNIST/Fashion-MNIST images file (plain or ``.gz``) with its
  labels file (``--labels``, or found beside it by the usual name:
  ``...-images-idx3-ubyte`` -> ``...-labels-idx1-ubyte``), or a folder
  holding such pairs (``train-*`` and ``t10k-*`` are pooled, then split
  again by ``--test-size``);
* ``folder``: one sub-folder of images per class (``vision.load_image_folder``).

An image folder's file that cannot be read as an image fails the run,
naming it (``--on-error raise``, the default), or is left out
(``--on-error skip``) and listed, with the reason, in ``prepared.json``
(``info.skipped_files``) and in the evaluation's ``report.md``.

``--image-size`` (``28`` or ``28x28``) resizes every image; by default
images keep their size (an image folder is brought to 28x28, as
``load_image_folder`` does). The split is stratified by class.
"""
import gzip
import os
import re
import warnings

import luigi
import numpy as np

import vision
from core.exceptions import DataFileNotFoundError, DataFormatError

from .base import (DataParams, EvaluateBase, PrepareBase, SweepBase, TrainBase, TrainParams, classifier_defaults,
                   subsample)
from .params import AutoIntParameter, FloatParameter, NoneOrIntParameter, OptionalAbsPathParameter, SizeParameter

__all__ = ["PrepareVision", "TrainVision", "EvaluateVision", "SweepVision"]

FORMATS = ("auto", "idx", "folder")
_IDX_NAME = re.compile(r"idx\d+-ubyte", re.IGNORECASE)
_DEFAULTS = classifier_defaults(vision.ImageClassifier)


def _is_idx_file(path):
    """True when ``path`` starts like an IDX file (two zero bytes, a known type code), gzip or not."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(2)
        opener = gzip.open if head == b"\x1f\x8b" else open
        with opener(path, "rb") as handle:
            magic = handle.read(4)
    except (OSError, EOFError):
        return False
    return len(magic) == 4 and magic[0] == 0 and magic[1] == 0 and magic[2] in (8, 9, 11, 12, 13, 14)


def _labels_for(images_path):
    """The labels file beside an images file, by MNIST's naming (``images`` -> ``labels``, ``idx3`` -> ``idx1``)."""
    folder, name = os.path.split(images_path)
    guess = re.sub(r"idx\d+", "idx1", name.replace("images", "labels").replace("Images", "Labels"))
    candidates = [guess]
    if guess.endswith(".gz"):
        candidates.append(guess[:-3])
    else:
        candidates.append(guess + ".gz")
    for c in candidates:
        if c != name and os.path.isfile(os.path.join(folder, c)):
            return os.path.join(folder, c)
    raise DataFileNotFoundError(
        f"no labels file found for the IDX images file {images_path!r} (looked for {candidates} beside it); "
        f"pass it with --labels")


def detect_format(path):
    """``"idx"`` or ``"folder"`` for an existing path; a clear error otherwise."""
    if not os.path.exists(path):
        raise DataFileNotFoundError(f"--source {path!r} does not exist; expected an IDX images file or a folder "
                                    f"of images with one sub-folder per class")
    if os.path.isdir(path):
        entries = os.listdir(path)
        if any(_IDX_NAME.search(e) and os.path.isfile(os.path.join(path, e)) for e in entries):
            return "idx"
        return "folder"
    if _is_idx_file(path):
        return "idx"
    raise DataFormatError(f"--source {path!r} is neither an IDX file (its first bytes are not an IDX magic "
                          f"number) nor a folder; expected an MNIST-style IDX images file (plain or .gz) or a "
                          f"folder with one sub-folder of images per class")


class VisionData(DataParams):
    domain = "vision"
    embedded_name = "digits"
    embedded_description = "the handwritten digits bundled with scikit-learn (vision.load_digits)"

    format = luigi.ChoiceParameter(choices=FORMATS, default="auto",
                                   description="auto, idx (MNIST files) or folder (one sub-folder per class)")
    labels = OptionalAbsPathParameter(default=None,
                                      description="IDX labels file (default: found beside the images file)")
    image_size = SizeParameter(ndim=2, label="--image-size", default=None, optional=True,
                               description="Resize images to HxW (e.g. 28 or 28x28); default: keep their size")
    color = luigi.ChoiceParameter(choices=("grayscale", "rgb"), default="grayscale",
                                  description="Channels read from an image folder")
    on_error = luigi.ChoiceParameter(choices=("raise", "skip"), default="raise",
                                     description="An image folder's unreadable file: fail naming it (raise), or "
                                                 "leave it out and list it in the report (skip)")

    def domain_data_key(self):
        key = {"image_size": list(self.image_size) if self.image_size else None}
        if self.source is not None:
            key["labels"] = self.labels
            key["color"] = self.color
            key["on_error"] = self.on_error
        return key

    def data_label(self):
        label = super().data_label()
        if self.image_size:
            label += f"-{self.image_size[0]}x{self.image_size[1]}"
        return label

    def _load_idx(self, path):
        if os.path.isdir(path):
            images = sorted(os.path.join(path, e) for e in os.listdir(path)
                            if _IDX_NAME.search(e) and "label" not in e.lower()
                            and os.path.isfile(os.path.join(path, e)))
            if not images:
                raise DataFormatError(f"{path!r} holds IDX files but no images file (names with 'images')")
            pairs = [(p, _labels_for(p)) for p in images]
        else:
            try:
                labels = self.labels or _labels_for(path)
            except DataFileNotFoundError:
                vision.read_idx(path, "images")  # a broken images file is the first thing to report
                raise
            pairs = [(path, labels)]
        parts = [vision.load_idx(img, lab) for img, lab in pairs]
        shapes = {x.shape[1:] for x, _ in parts}
        if len(shapes) > 1:
            raise DataFormatError(f"the IDX files {[p for p, _ in pairs]} hold images of different shapes {shapes}")
        X = np.concatenate([x for x, _ in parts])
        y = np.concatenate([lab for _, lab in parts])
        return X, y, {"files": [{"images": img, "labels": lab} for img, lab in pairs]}

    def load_source(self):
        info = {}
        if self.source is None:
            X, y = vision.load_digits()
            fmt = "embedded"
        else:
            fmt = detect_format(self.source) if self.format == "auto" else self.format
            if fmt == "idx":
                if not os.path.exists(self.source):
                    raise DataFileNotFoundError(f"--source {self.source!r} does not exist")
                X, y, info = self._load_idx(self.source)
            else:
                with warnings.catch_warnings():  # the skipped files get their own list in the report
                    warnings.filterwarnings("ignore", message="load_image_folder: skipped", category=UserWarning)
                    try:
                        X, y, found = vision.load_image_folder(self.source, size=self.image_size or (28, 28),
                                                               color=self.color, on_error=self.on_error,
                                                               return_info=True)
                    except DataFormatError as exc:  # say it in the pipeline's words
                        raise DataFormatError(str(exc).replace("pass on_error='skip'", "pass --on-error skip")) \
                            from None
                info["skipped_files"] = found["skipped"]
        if X.ndim == 3:
            X = X[..., np.newaxis]
        if X.ndim != 4:
            raise DataFormatError(f"{self.source}: expected images (N, H, W[, C]), found an array of shape {X.shape}")
        keep = subsample(y, self.max_samples, self.data_seed)
        X, y = X[keep], y[keep]
        if self.image_size and tuple(X.shape[1:3]) != tuple(self.image_size):
            info["resized_from"] = list(X.shape[1:3])
            X = vision.resize_images(X.astype(np.float32), tuple(self.image_size))
        return {"X": X, "y": y, "groups": None, "format": fmt, "info": info}


class VisionTrainParams(TrainParams):
    minimum_settings = {"epochs": 1, "batch_size": 1, "patience": 0}
    epochs = AutoIntParameter(default=_DEFAULTS["epochs"],
                              description="Passes over the data, or 'auto' (about 12,600 steps, 15 to 60 epochs)")
    batch_size = AutoIntParameter(default=_DEFAULTS["batch_size"],
                                  description="Samples per step, or 'auto' (128 from 10,000 images on, else 32)")
    learning_rate = FloatParameter(default=_DEFAULTS["learning_rate"],
                                   description="Adam's learning rate")
    patience = NoneOrIntParameter(default=_DEFAULTS["patience"],
                                  description="Early-stopping patience, or 'none' (default): the whole epoch budget "
                                              "runs; the best-validation epoch is kept from 1,000 validation images "
                                              "on, else the last")
    validation_split = FloatParameter(default=_DEFAULTS["validation_split"],
                                      description="Fraction of the training split for early stopping")
    architecture = luigi.ChoiceParameter(choices=vision.networks.ARCHITECTURES, default=_DEFAULTS["architecture"],
                                         description="lenet5_bn (LeNet-5 with batch normalization, adapted to the "
                                                     "size), lenet5 or tiny")
    augment = luigi.BoolParameter(default=_DEFAULTS["augment"], parsing=luigi.BoolParameter.EXPLICIT_PARSING,
                                  description="Random small rotations, zooms and shifts of the training images "
                                              "(--augment false to turn off)")
    rotation = FloatParameter(default=_DEFAULTS["rotation"], description="Largest rotation in degrees")
    zoom = FloatParameter(default=_DEFAULTS["zoom"], description="Largest relative change of scale")
    shift_range = FloatParameter(default=_DEFAULTS["shift_range"],
                                 description="Largest shift as a fraction of the image size")

    def classifier_class(self):
        return vision.ImageClassifier

    def domain_classifier_kwargs(self):
        return {"architecture": self.architecture, "augment": self.augment, "rotation": self.rotation,
                "zoom": self.zoom, "shift_range": self.shift_range}

    def domain_train_key(self):
        return self.domain_classifier_kwargs()

    def train_label(self):
        return f"{self.architecture}{'-aug' if self.augment else ''}-" + super().train_label()


class PrepareVision(VisionData, PrepareBase):
    """Read the images, split them (stratified), write ``prepared.npz`` + ``prepared.json``."""


class TrainVision(VisionData, VisionTrainParams, TrainBase):
    """Train ``vision.ImageClassifier`` on the prepared training split."""

    prepare_class = PrepareVision


class EvaluateVision(VisionData, VisionTrainParams, EvaluateBase):
    """Evaluate the trained image classifier on the test split."""

    train_class = TrainVision


class SweepVision(VisionData, VisionTrainParams, SweepBase):
    """Independent TrainVision/EvaluateVision runs over ``--learning-rates`` x ``--seeds``; ``leaderboard.csv``."""

    evaluate_class = EvaluateVision

"""``ScanClassifier``: a Conv3D classifier of MRI/CT volumes, from NIfTI files or arrays."""
import math
import os
import tempfile
import warnings

import nibabel as nib
import numpy as np

from core import Input, Sequential, layers
from core.constraints import Boolean, Checked, Interval, Options
from core.estimator import BaseClassifier
from core.exceptions import ConfigError, InputError, ModelFileError, ShapeError
from core.utils import check_finite

from . import preprocessing as pp
from .augment import augment_batch, check_augment
from .cache import load_scans
from .decision import check_threshold, choose_threshold
from .streaming import ScanVolumes

#: with ``stream="auto"``, training data larger than this (preprocessed, float32) stays on disk
STREAM_BYTES = 1 << 30


def conv3d_network(input_shape, n_classes, filters=(8, 16, 32), pooling="max", batch_norm=True, seed=0):
    """The default network: ``[Conv3D(f, 3, same, no bias) -> BatchNormalization -> ReLU
    -> MaxPooling3D(2)]`` per entry of ``filters`` (no pooling after the
    last), a global pooling over the volume and a softmax ``Dense``.

    Batch normalization (momentum 0.9, so that its moving statistics settle
    within the few dozen steps a small data set gives) makes training
    several times faster here; ``batch_norm=False`` gives plain ReLU convolutions.

    With ``pooling="max"`` each feature map reports its strongest response
    anywhere in the volume, which suits "is there a focal finding" questions
    (a lesion, a bleed); ``"average"`` reports how much of it there is, which
    suits diffuse changes (atrophy). A pooling step halves an axis only while
    it is at least 4 long.

    Parameters
    ----------
    input_shape : (D, H, W, C)
    n_classes : int
    filters : sequence of int
    pooling : {"max", "average"}
    batch_norm : bool
    seed : int
        Seeds weight initialisation.

    Returns
    -------
    core.Sequential, uncompiled; input (N, D, H, W, C), output (N, n_classes).
    """
    if pooling not in ("max", "average"):
        raise ConfigError(f"pooling must be 'max' or 'average', got {pooling!r}")
    dims = list(input_shape[:3])
    stack = [Input(shape=tuple(input_shape))]
    for i, f in enumerate(filters):
        if batch_norm:
            # no bias: batch normalization subtracts each channel's mean, so a bias there would only
            # cost a pass each way and learn from float rounding (its true gradient is zero)
            stack += [layers.Conv3D(int(f), 3, padding="same", use_bias=False), layers.BatchNormalization(momentum=0.9),
                      layers.Activation("relu")]
        else:
            stack.append(layers.Conv3D(int(f), 3, padding="same", activation="relu"))
        if i < len(filters) - 1:
            pool = tuple(2 if d >= 4 else 1 for d in dims)
            if pool != (1, 1, 1):
                stack.append(layers.MaxPooling3D(pool))
                dims = [d // p for d, p in zip(dims, pool)]
    stack.append(layers.GlobalMaxPooling3D() if pooling == "max" else layers.GlobalAveragePooling3D())
    stack.append(layers.Dense(n_classes, activation="softmax"))
    return Sequential(stack, seed=seed)


def _is_path(x):
    return isinstance(x, (str, os.PathLike))


def _required(value):
    if value is None:
        raise ValueError("shape must be set: the network needs one input size")


def _check_filters(filters):
    values = [int(f) for f in filters]
    if not values or min(values) < 1 or any(isinstance(f, bool) or int(f) != f for f in filters):
        raise ValueError(f"filters must be a non-empty list of positive ints, got {filters!r}")


class ScanClassifier(BaseClassifier):
    """Classify 3-D scans (MRI, CT) with a small 3-D convolutional network.

    Every scan goes through the same preprocessing, whether it is given as a
    file at ``fit`` or months later at ``predict`` on a loaded model: read
    (NIfTI), reoriented to RAS, resampled to ``spacing`` if set, intensity
    normalized per scan (``normalize``), brought to ``shape``. The settings are
    saved with the model, so ``ScanClassifier.load(p).predict(["new.nii.gz"])``
    works on raw files.

    Parameters
    ----------
    shape : int or (3,) ints
        The grid every scan is brought to (the network's input size).
    spacing : float or (3,) floats, optional
        Voxel size (mm) to resample to before ``shape``. None (default) maps
        each scan's whole field of view onto ``shape``.
    normalize : {"minmax", "zscore", "percentile"}, ("ct", level, width) or None
        Per-scan intensity normalization, see :func:`medical.load_scan`.
        The default, "minmax", scales each scan to [0, 1] between its
        darkest and brightest voxel. With "zscore" (the mean and standard
        deviation of the foreground) the same tissue lands at different
        values in different anatomies, so a network trained on a few
        subjects can tell a bright finding from a new subject's bright
        tissue only by memorising the training anatomies: on volumes built
        from real scans (``benchmarks/medical_decisions.py``) it ranked
        unseen subjects well but called their healthy scans lesions
        (accuracy 0.73, ROC AUC 0.89), where "minmax" decided all of them
        right (1.00, 1.00). "percentile" clips the brightest 0.5% of voxels,
        which is where a small bright finding lies. Use ``("ct", level,
        width)`` for CT in Hounsfield units.
    shape_mode : {"resample", "crop_or_pad"}
        How ``shape`` is reached, see :func:`medical.load_scan`.
    volume : int, optional
        Which volume of 4-D files to use.
    channels : bool
        Stack the volumes of 4-D files (at most 4) as channels.
    filters : sequence of int
        Filters of the successive Conv3D layers (each with batch
        normalization and ReLU, each but the last followed by 2x max pooling).
    pooling : {"max", "average"}
        The global pooling before the softmax, see :func:`conv3d_network`.
    augment : bool or dict
        On-the-fly, seeded augmentation of the training batches. ``True``:
        random shifts of up to ``max_shift`` voxels per axis (edges repeated).
        A dict chooses among shifts, flips on chosen axes, small rotations and
        scaling, intensity gain, gamma and noise (see :mod:`medical.augment`;
        left-right flips only when asked for: many findings are lateralised).
        Off by default; the README gives what each did to accuracy here.
    max_shift : int
    threshold : None, "youden", float or ("sensitivity"|"specificity", target)
        The decision rule of a binary task (``classes_[1]`` is the positive
        class). ``"youden"`` (default) and the targets choose the threshold on
        the validation scans after training (see :mod:`medical.decision`); a
        number fixes it; None takes the most probable class. Without
        validation scans (``validation_split=0``) the threshold stays 0.5.
        ``threshold_`` and ``evaluate()`` report it; it is saved with the model.
    epochs, batch_size, learning_rate, seed, validation_split, patience, verbose, engine
        As for every classifier of the project (:class:`core.estimator.BaseClassifier`):
        Adam; with ``validation_split > 0``, early stopping on a stratified
        validation split (or one grouped by ``groups`` in ``fit``, e.g.
        subjects), best weights restored. The default is no split and a fixed
        25 epochs: with a few dozen scans, a validation set of a handful is
        too noisy to stop on (measured on the synthetic set: stopping on 9
        validation scans ended training after 10 epochs at 53-73 % test
        accuracy, where 25 epochs on all scans gave 100 %; on volumes built
        from nibabel's real scans, stopping on one held-out subject cut the
        test ROC AUC from 0.875 to 0.55). With ``validation_split > 0`` and
        ``early_stopping=False`` the validation scans only choose the decision
        threshold. Use ``validation_split=0.2`` from a few hundred scans on.
    early_stopping : bool
        Stop on the validation loss (and restore the best weights) when there
        is a validation split. False keeps the split for the threshold only.
    cache_dir : str, optional
        Keep preprocessed volumes there (see :class:`medical.ScanCache`); a second
        fit or predict on the same files skips reading and resampling.
    stream : {"auto", True, False}
        Train on paths without loading every scan: the volumes stay on disk in
        the cache (``cache_dir``, or a temporary folder for the fit) and
        batches are read by background threads while the previous batch
        trains (:mod:`medical.streaming`), so memory holds a few batches, not
        the data set; predictions on paths go a batch at a time. ``"auto"``
        (default) streams when the preprocessed volumes would take more than
        ``STREAM_BYTES`` (1 GiB). The weights are the ones in-memory training
        gives for the same seed.

    Input
    -----
    A list of paths to NIfTI files (``.nii``/``.nii.gz``), read one at a time;
    or an array ``(N, D, H, W)`` / ``(N, D, H, W, C)`` of volumes already in a
    common orientation: each is normalized with ``normalize`` and brought to
    ``shape`` (``spacing`` and reorientation need files).

    Examples
    --------
    >>> paths, labels = medical.read_manifest(medical.make_synthetic("data/syn"))
    >>> clf = medical.ScanClassifier(seed=0).fit(paths, labels)
    >>> clf.evaluate(paths, labels)["accuracy"]
    """

    def __init__(self, shape=(32, 32, 32), spacing=None, normalize="minmax", shape_mode="resample", volume=None,
                 channels=False, filters=(8, 16, 32), pooling="max", augment=False, max_shift=2, threshold="youden",
                 threshold_cv=0, epochs=25, batch_size=8, learning_rate=3e-3, seed=0, validation_split=0.0,
                 early_stopping=True, patience=6, cache_dir=None, stream="auto", verbose=0, engine="numpy",
                 class_weight=None):
        super().__init__(epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, seed=seed,
                         validation_split=validation_split, patience=patience, verbose=verbose, engine=engine)
        self.class_weight = class_weight
        self.shape = shape
        self.spacing = spacing
        self.normalize = normalize
        self.shape_mode = shape_mode
        self.volume = volume
        self.channels = channels
        self.filters = filters
        self.pooling = pooling
        self.augment = augment
        self.max_shift = max_shift
        self.threshold = threshold
        self.early_stopping = early_stopping
        self.threshold_cv = threshold_cv
        self.cache_dir = cache_dir
        self.stream = stream

    # -------------------------------------------------------------- input
    _parameter_constraints = {
        **BaseClassifier._parameter_constraints,
        "shape": [Checked(lambda v: pp.check_shape(v) or _required(v), "an int or 3 ints >= 1 (not None)")],
        "spacing": [Checked(pp.check_spacing, "None, a positive number or 3 positive numbers (mm)")],
        "normalize": [Checked(pp.check_normalize, "'zscore', 'minmax', 'percentile', None or ('ct', level, width)")],
        "shape_mode": [Checked(pp.check_shape_mode, "'resample' or 'crop_or_pad'")],
        "volume": [None, Interval(int, 0, None), Options("mean", "first")],
        "channels": [Boolean()],
        "filters": [Checked(_check_filters, "a non-empty list of positive ints")],
        "pooling": [Options("max", "average")],
        "augment": [Boolean(), Checked(check_augment, "True, False or a dict of augmentation settings")],
        "max_shift": [Interval(int, 0, None)],
        "threshold": [Checked(check_threshold, "'youden', ('sensitivity', s), ('specificity', s), a number in "
                                               "[0, 1] or None")],
        "threshold_cv": [Options(0), Interval(int, 2, None)],
        "early_stopping": [Boolean()],
        "cache_dir": [None, str, os.PathLike],
        "stream": [Options("auto"), Boolean()],
    }

    def _check_settings(self):
        check_augment(self.augment, self.max_shift, f"{type(self).__name__}: augment")  # depends on max_shift

    def _settings(self):
        """The preprocessing settings in the form ``load_scan`` takes (validated by ``fit``)."""
        try:
            return {"shape": pp.check_shape(self.shape), "spacing": pp.check_spacing(self.spacing),
                    "normalize": pp.check_normalize(self.normalize), "shape_mode": self.shape_mode,
                    "volume": self.volume, "channels": bool(self.channels)}
        except InputError as exc:  # a setting changed after fit
            raise ConfigError(f"{type(self).__name__}: {exc}") from None

    def _check_X(self, X, fitting):
        """Paths or arrays -> float32 ``(N, D, H, W, C)`` preprocessed volumes."""
        s = self._settings()
        if isinstance(X, ScanVolumes):  # scans read on demand (a fold of a streamed data set)
            return X
        if _is_path(X):
            raise InputError(f"{type(self).__name__} expects a list of scan paths or an array of volumes, "
                             f"got the single path {os.fspath(X)!r}; wrap it in a list")
        if isinstance(X, (list, tuple)) and len(X) and all(_is_path(x) for x in X) or \
                (isinstance(X, np.ndarray) and X.dtype.kind in "US"):
            paths = [os.fspath(x) for x in X]
            if self._streams(paths, s):
                cache = self.cache_dir if self.cache_dir is not None else getattr(self, "_stream_cache", None)
                out = ScanVolumes(paths, cache, s)
            else:
                out = load_scans(paths, cache_dir=self.cache_dir, progress=bool(self.verbose), **s)
        else:
            if isinstance(X, (list, tuple)) and any(_is_path(x) for x in X):
                raise InputError(f"{type(self).__name__}: X mixes paths and arrays; give a list of paths or one array")
            out = self._check_arrays(X, s)
        if not fitting:
            c = self.input_shape_[-1]
            if out.shape[-1] != c:
                raise ShapeError(f"{type(self).__name__}: the model was trained on scans with {c} channel(s), "
                                 f"got {out.shape[-1]}")
        return out

    def _streams(self, paths, settings):
        if self.stream != "auto":
            return bool(self.stream)
        voxels = math.prod(settings["shape"]) * (4 if settings["channels"] else 1)  # at most 4 channels
        return len(paths) * voxels * 4 > STREAM_BYTES

    def fit(self, X, y, groups=None):
        """Train on scan paths (or volumes) ``X`` and labels ``y``; see the class docstring.
        Streaming without a ``cache_dir`` keeps the preprocessed volumes in a temporary
        folder for the duration of the fit."""
        if self.cache_dir is None and isinstance(X, (list, tuple)) and len(X) and all(_is_path(x) for x in X) \
                and self.stream is not False:
            with tempfile.TemporaryDirectory(prefix="numpy-cnn-scans-") as tmp:
                self._stream_cache = tmp
                try:
                    return self._fit_and_decide(X, y, groups)
                finally:
                    self._stream_cache = None
        return self._fit_and_decide(X, y, groups)

    def _check_arrays(self, X, s):
        name = type(self).__name__
        try:
            arr = np.asarray(X)
        except Exception as exc:
            raise InputError(f"{name}: X could not be turned into an array of volumes ({exc}); volumes of "
                             f"different sizes: give file paths, or resize them first") from None
        if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
            raise InputError(f"{name}: X must be a list of scan paths or a numeric array of volumes, "
                             f"found dtype {arr.dtype}")
        if arr.ndim == 4:
            arr = arr[..., None]
        if arr.ndim != 5:
            raise ShapeError(f"{name}: X must be volumes of shape (N, D, H, W) or (N, D, H, W, C), or a list of "
                             f"paths; found an array of shape {arr.shape}")
        if arr.shape[0] == 0 or min(arr.shape[1:]) < 1:
            raise InputError(f"{name}: X is empty (shape {arr.shape})")
        check_finite(arr, f"{name}: X")  # before normalization, which would spread them
        out = np.empty((arr.shape[0],) + s["shape"] + arr.shape[-1:], dtype=np.float32)
        for i in range(arr.shape[0]):
            vol = pp.normalize_intensity(arr[i].astype(np.float32), s["normalize"], copy=False)
            if s["shape_mode"] == "resample":
                vol = pp.resize_volume(vol, s["shape"])
            else:
                vol = pp.crop_or_pad(vol, s["shape"])
            out[i] = vol
        return out

    # ------------------------------------------------------------ network
    def build_network(self, input_shape, n_classes):
        """:func:`conv3d_network` with this classifier's ``filters`` and ``pooling``."""
        return conv3d_network(input_shape, n_classes, filters=tuple(int(f) for f in self.filters),
                              pooling=self.pooling, seed=self.seed)

    @property
    def _augment(self):
        """The base class's augmentation hook (see :mod:`medical.augment`)."""
        settings = check_augment(self.augment, self.max_shift)
        if settings is None or not any(settings.values()):
            return None
        return lambda xb, rng: augment_batch(xb, rng, settings)

    # ----------------------------------------------------------- decision
    def _fit_and_decide(self, X, y, groups=None):
        """Train on scans ``X`` (paths or volumes) and labels ``y``; ``groups`` (e.g. subjects) keeps
        a group on one side of every split. With ``threshold_cv=k`` (binary tasks), ``k`` extra
        networks are first trained on k-fold splits (grouped when ``groups`` is given), and the
        decision threshold is chosen on their out-of-fold probabilities. Returns ``self``."""
        k = self.threshold_cv
        rule = check_threshold(self.threshold)
        if not k or rule is None or isinstance(rule, float):
            return super().fit(X, y, groups=groups)
        self._validate_params()
        classes, y_idx = np.unique(np.asarray(y).astype(str) if np.asarray(y).dtype == object else np.asarray(y),
                                   return_inverse=True)
        if len(classes) != 2:
            return super().fit(X, y, groups=groups)
        scores = self._out_of_fold(X, y_idx, groups, int(k))
        super().fit(X, y, groups=groups)
        t, details = choose_threshold(y_idx == 1, scores, rule)
        rule_name = rule if isinstance(rule, str) else f"{rule[0]} {rule[1]:g}"
        self.threshold_ = t
        self.threshold_info_ = {"threshold_source": f"{rule_name} on out-of-fold probabilities of {len(scores)} "
                                                    f"scans ({k}-fold{', grouped' if groups is not None else ''})",
                                **{k_.replace("val_", "oof_"): v for k_, v in details.items()}}
        return self

    def _out_of_fold(self, X, y_idx, groups, k):
        from sklearn.model_selection import GroupKFold, StratifiedKFold

        volumes = self._checked_X(X, fitting=True)          # read and preprocessed once
        if groups is not None:
            groups = np.asarray(groups)
            if len(np.unique(groups)) < k:
                raise InputError(f"{type(self).__name__}: threshold_cv={k} needs at least {k} groups, "
                                 f"found {len(np.unique(groups))}")
            folds = GroupKFold(n_splits=k).split(volumes, y_idx, groups)
        else:
            folds = StratifiedKFold(n_splits=k, shuffle=True, random_state=self.seed).split(volumes, y_idx)
        scores = np.full(len(y_idx), np.nan)
        params = dict(self.get_params(), threshold=None, threshold_cv=0, normalize=None, spacing=None,
                      cache_dir=None, verbose=0)
        for tr, te in folds:
            if len(np.unique(y_idx[tr])) < 2:
                raise InputError(f"{type(self).__name__}: a fold of threshold_cv={k} leaves a single class "
                                 f"in training; use fewer folds")
            inner = type(self)(**params).fit(volumes[tr], y_idx[tr], groups=None if groups is None else groups[tr])
            scores[te] = inner.predict_proba(volumes[te])[:, 1]
        return scores

    def _fit_decision(self, x_val, y_val):
        rule = check_threshold(self.threshold)
        self.threshold_ = None
        self.threshold_info_ = {}
        if len(self.classes_) != 2 or rule is None:
            return
        if isinstance(rule, float):
            self.threshold_, self.threshold_info_ = rule, {"threshold_source": "fixed"}
            return
        if x_val is None or len(x_val) == 0:
            self.threshold_ = 0.5
            self.threshold_info_ = {"threshold_source": "default 0.5: no validation scans (validation_split=0)"}
            return
        proba = self._predict_network(x_val)
        t, details = choose_threshold(np.asarray(y_val) == 1, proba[:, 1], rule)
        rule_name = rule if isinstance(rule, str) else f"{rule[0]} {rule[1]:g}"
        self.threshold_ = t
        self.threshold_info_ = {"threshold_source": f"{rule_name} on {len(x_val)} validation scans", **details}

    def evaluate(self, X, y):
        """The base report (see :meth:`core.estimator.BaseClassifier.evaluate`), plus the decision
        threshold for binary tasks. Warns when the ranking is informative (ROC AUC above 0.5) but
        every scan got the same class: the threshold does not fit these scans."""
        report = super().evaluate(X, y)
        cm = np.asarray(report["confusion_matrix"])
        if cm.shape == (2, 2) and (cm.sum(axis=1) > 0).all() and (cm.sum(axis=0) == 0).any() and \
                report.get("roc_auc", 0.5) > 0.5:
            only = report["classes"][int(np.argmax(cm.sum(axis=0)))]
            warnings.warn(f"{type(self).__name__}.evaluate: every scan was called {only!r} although the "
                          f"probabilities rank the classes (ROC AUC {report['roc_auc']:.3f}); the decision "
                          f"threshold ({report.get('threshold', 0.5):.3f}) does not fit these scans. Choose it "
                          f"on held-out subjects: validation_split with groups, or threshold_cv",
                          UserWarning, stacklevel=2)
        return report

    def _decide(self, proba):
        t = getattr(self, "threshold_", None)
        if t is None or proba.shape[1] != 2:
            return proba.argmax(axis=1)
        return (proba[:, 1] >= t).astype(np.int64)

    def _decision_report(self):
        if getattr(self, "threshold_", None) is None:
            return {}
        return {"threshold": float(self.threshold_), "positive_class": str(self.classes_[1]),
                **self.threshold_info_}

    # ------------------------------------------------------------ explain
    #: Grad-CAM sharpened by the input gradient: the last convolution of the default network works on
    #: cells of 4 voxels, too coarse to put a peak on a lesion of 2-4 voxels (see :func:`core.explain.guided_grad_cam`)
    default_explain_method = "guided_grad_cam"

    def explain(self, X, label=None, method=None, layer=None, smooth=0, seed=0):
        """Relevance volumes ``(N, D, H, W)`` float32 on the network's grid (``shape``, RAS axes).

        Where in each scan (paths or arrays, as for ``predict``) the network
        found ``label`` (default: the predicted class); see
        :meth:`core.estimator.BaseClassifier.explain` for the methods. The
        default is ``"guided_grad_cam"``: Grad-CAM of the last convolution
        (cells of 4 voxels in the default network) times the smoothed
        input-gradient magnitude, which puts the peak on the finding rather
        than on the nearest cell centre; ``method="grad_cam"`` gives plain
        Grad-CAM. For a map in the original scan's own space, use
        :meth:`save_explanation`.
        """
        return super().explain(X, label=label, method=method, layer=layer, smooth=smooth, seed=seed)

    def _draw_explanation(self, sample, relevance, path, title):
        from core.plots import plot_volume_relevance

        plot_volume_relevance(sample, relevance, path, title=title)

    def save_explanation(self, scan_path, out_path, label=None, method=None, layer=None):
        """Write the relevance map of one scan as NIfTI in that scan's own space.

        ``scan_path`` is anything ``load_scan`` reads (NIfTI, Analyze, MGH, a
        DICOM series folder or file).

        The scan is read and preprocessed as for ``predict``; its map on the
        network's grid is then resampled back onto the scan's voxel grid
        through the inverse of the preprocessing (reorientation, resampling,
        crop/pad; see :mod:`medical.explanation`) and written to ``out_path``
        (``.nii`` or ``.nii.gz``) with the scan's affine, so it overlays the
        scan in FSLeyes, ITK-SNAP or 3D Slicer. Returns the map as written,
        float32 of the scan's spatial shape.
        """
        from . import explanation
        from .scans import _open_source, load_scan, scan_info

        self._require_fitted("save_explanation")
        method = self._check_explain_method(method, 0, layer)
        if not _is_path(scan_path):
            raise InputError(f"{type(self).__name__}.save_explanation: scan_path must be the path of a scan "
                             f"(file or DICOM series folder), got {type(scan_path).__name__}")
        scan_path = os.fspath(scan_path)
        out_path = explanation.check_out_path(out_path)
        s = self._settings()
        info = scan_info(scan_path)
        volume, prep = load_scan(scan_path, return_info=True, **s)
        maps, _ = self._explain_network_input(self._network_input(volume[None]), label, method, layer, 0, 0)
        data = explanation.map_to_scan_space(maps[0], prep["affine"], info["affine"], info["shape"][:3],
                                             outside_zero=s["shape_mode"] == "crop_or_pad")
        like = getattr(_open_source(scan_path), "img", None)  # a NIfTI's sform/qform codes are kept
        explanation.write_map(data, info["affine"], out_path,
                              like=like if isinstance(like, nib.Nifti1Image) else None,
                              description=f"{method} relevance")
        return data

    # -------------------------------------------------------- persistence
    def _get_state(self):
        # Preprocessing learns nothing from the data (every setting is a constructor
        # argument, which the base class saves); the decision threshold is learned.
        return {"preprocessing": "per-scan, from the constructor settings",
                "threshold": getattr(self, "threshold_", None),
                "threshold_info": getattr(self, "threshold_info_", {})}, {}

    def _set_state(self, config, arrays):
        t = config.get("threshold")
        if t is not None and (isinstance(t, bool) or not isinstance(t, (int, float)) or not 0 <= t <= 1):
            raise ModelFileError(f"the saved decision threshold must be a number in [0, 1], found {type(t).__name__}")
        info = config.get("threshold_info", {})
        self.threshold_ = None if t is None else float(t)
        self.threshold_info_ = info if isinstance(info, dict) else {}
        for name in ("shape", "spacing", "filters"):
            value = getattr(self, name)
            if isinstance(value, list):
                setattr(self, name, tuple(value))
        if isinstance(self.normalize, list):
            self.normalize = tuple(self.normalize)
        if isinstance(self.threshold, list):
            self.threshold = tuple(self.threshold)

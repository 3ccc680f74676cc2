"""``ActivityClassifier``: a Conv1D network for accelerometer windows and other time series."""
import math

import numpy as np
import pandas as pd

from core import Input, Sequential, callbacks, layers
from core.constraints import Boolean, Interval, Mapping, Options
from core.estimator import BaseClassifier
from core.exceptions import ConfigError, InputError, ShapeError
from core.utils import check_int
from core.layers import Branches

from . import networks
from .preprocessing import ChannelStandardizer, sliding_windows

__all__ = ["ActivityClassifier", "conv1d_network", "series_lengths", "stretch", "znorm_series", "gravity_triples"]


def conv1d_network(input_shape, n_classes, seed=0, filters=(32, 64, 64), kernel_sizes=(7, 5, 3), dropout=0.3):
    """The default network for accelerometer windows (uncompiled ``core.Sequential``).

    Three blocks of Conv1D ("same" padding, no bias) -> BatchNormalization ->
    ReLU, the first two followed by MaxPooling1D(2) while the sequence is at
    least 8 steps long; then GlobalAveragePooling1D (so the features do not
    depend on where in the window a step happens), Dropout and a softmax
    Dense layer. Receptive field about 30 samples (0.6 s at 50 Hz: more than
    one step of walking).

    Parameters
    ----------
    input_shape : tuple (steps, channels)
    n_classes : int
    seed : int
        Seeds the initial weights and the dropout masks.
    filters, kernel_sizes : sequences of int, same length
        Filters and kernel size of each block.
    dropout : float
        Dropout rate before the classifier.

    Returns
    -------
    model : core.Sequential
        Input ``(N, steps, channels)``, output ``(N, n_classes)`` probabilities.
    """
    steps = int(input_shape[0])
    stack = [Input(shape=tuple(int(v) for v in input_shape))]
    for i, (f, k) in enumerate(zip(filters, kernel_sizes)):
        stack += [layers.Conv1D(f, k, padding="same", use_bias=False), layers.BatchNormalization(),
                  layers.Activation("relu")]
        if i < len(filters) - 1 and steps >= 8:
            stack.append(layers.MaxPooling1D(2))
            steps //= 2
    stack += [layers.GlobalAveragePooling1D(), layers.Dropout(dropout),
              layers.Dense(n_classes, activation="softmax")]
    return Sequential(stack, seed=seed)


def _rotations(n, max_degrees, rng):
    """``n`` random 3x3 rotations: random axes, angles with std ``max_degrees / 2`` capped at ``max_degrees``."""
    axis = rng.normal(size=(n, 3))
    axis /= np.linalg.norm(axis, axis=1, keepdims=True) + 1e-12
    angle = np.clip(rng.normal(0.0, max_degrees / 2.0, size=n), -max_degrees, max_degrees) * np.pi / 180.0
    K = np.zeros((n, 3, 3))
    K[:, 0, 1], K[:, 0, 2], K[:, 1, 2] = -axis[:, 2], axis[:, 1], -axis[:, 0]
    K = K - K.transpose(0, 2, 1)
    s, c = np.sin(angle)[:, None, None], np.cos(angle)[:, None, None]
    return np.eye(3) + s * K + (1.0 - c) * (K @ K)  # Rodrigues' formula


def series_lengths(X):
    """Valid length of each series of ``X`` ``(N, steps, C)``: series padded at the end with NaN
    (``har.read_ts(..., unequal="pad")``) are shorter than ``steps``. Returns ``(N,)`` ints;
    raises InputError for NaN or inf anywhere else (missing values inside a series)."""
    finite = np.isfinite(X)
    if finite.all():
        return np.full(len(X), X.shape[1], dtype=np.int64)
    if np.isinf(X).any():
        raise InputError(f"X contains {int(np.isinf(X).sum())} infinite values")
    step_ok = finite.all(axis=2)                      # (N, steps): every channel present
    lengths = step_ok.sum(axis=1)
    padded_tail = np.arange(X.shape[1])[None, :] >= lengths[:, None]
    if not np.array_equal(~step_ok, padded_tail) or np.isnan(X[~padded_tail]).any():
        bad = int(np.count_nonzero(np.isnan(X[~padded_tail]))) or int(np.count_nonzero(~step_ok & ~padded_tail))
        raise InputError(f"X contains {bad} NaN values inside series; NaN is accepted only as padding after the "
                         "end of a shorter series (read_ts(..., unequal='pad')); interpolate missing samples "
                         "first (har.segment does it and counts them)")
    if lengths.min() < 1:
        raise InputError(f"X holds {int((lengths < 1).sum())} series with no values (all NaN)")
    return lengths.astype(np.int64)


def stretch(X, lengths, steps):
    """Resample each series' first ``lengths[i]`` samples linearly onto ``steps`` samples.

    How the classifier brings unequal-length series (NaN-padded) to one
    length without padding, which would dilute the global average pooling."""
    out = np.empty((len(X), steps, X.shape[2]), dtype=np.float32)
    grid = np.linspace(0.0, 1.0, steps)
    for i, n in enumerate(lengths):
        n = int(n)
        if n == steps:
            out[i] = X[i, :steps]
            continue
        src = np.linspace(0.0, 1.0, n) if n > 1 else np.zeros(1)
        for c in range(X.shape[2]):
            out[i, :, c] = np.interp(grid, src, X[i, :n, c])
    return out


def znorm_series(X, min_std=1e-8):
    """Each series and channel shifted to mean 0 and scaled to standard deviation 1 (the UCR convention)."""
    X = np.asarray(X, dtype=np.float32)
    mean = X.mean(axis=1, keepdims=True, dtype=np.float64)
    std = X.std(axis=1, keepdims=True, dtype=np.float64)
    return ((X - mean) / np.where(std < min_std, 1.0, std)).astype(np.float32)


def looks_series_normalized(X, tol=0.05):
    """True when (nearly) every series and channel of ``X`` already has mean 0 and standard deviation 1."""
    mean = X.mean(axis=1, dtype=np.float64)
    std = X.std(axis=1, dtype=np.float64)
    ok = (np.abs(mean) < tol) & ((np.abs(std - 1.0) < tol) | (std < 1e-8))
    return bool(ok.mean() >= 0.95)


def gravity_triples(X, tolerance=0.15, spread=1.5):
    """Channel triples (0, 1, 2), (3, 4, 5), ... of ``X`` that look like accelerometers: when one
    does, every aligned triple (gyroscope, magnetometer of the same device) is returned.

    A triple is an accelerometer when the length of its mean vector over each
    series (gravity, while the wearer moves about it) is, in the median over
    series, within ``tolerance`` of 9.80665 (m/s^2) or 1 (g), and steady: the
    90th percentile at most ``spread`` times the 10th."""
    channels = X.shape[2]
    if channels % 3:
        return []
    for c in range(0, channels, 3):
        norms = np.linalg.norm(X[:, :, c:c + 3].mean(axis=1, dtype=np.float64), axis=1)
        median = float(np.median(norms))
        steady = np.percentile(norms, 90) <= spread * max(np.percentile(norms, 10), 1e-12)
        if steady and any(abs(median / g - 1.0) < tolerance for g in (9.80665, 1.0)):
            return [(k, k + 1, k + 2) for k in range(0, channels, 3)]
    return []


def forward_macs(model):
    """Multiply-adds of one forward pass of one sample through ``model`` (conv and dense layers)."""
    def count(layer_list):
        total = 0
        for lay in layer_list:
            if isinstance(lay, Branches):
                total += sum(count(stack) for stack in lay.branches)
            elif isinstance(lay, (layers.Conv1D, layers.Dense)):
                total += int(lay.params["kernel"].size) * int(np.prod(lay.output_shape[:-1] or (1,)))
        return total
    return count(model.layers)


#: gradient steps the automatic epoch count aims at (10 to 500 epochs), see har/README.md
STEPS_TARGET = 2000
#: at most this many forward multiply-adds (per sample x samples x epochs) in an automatic fit:
#: with the numpy engine about 1e10 per second on 2 cores, so about 2 minutes (see har/README.md)
MAC_BUDGET = 1.2e12


class ActivityClassifier(BaseClassifier):
    """Classify time series: accelerometer windows, or any series of the UCR/UEA archive.

    A scikit-learn style estimator on :class:`core.estimator.BaseClassifier`:
    settings in the constructor, ``fit(X, y, groups=subjects)``, ``predict``,
    ``predict_proba``, ``evaluate``, ``save`` / ``load``, plus
    :meth:`predict_recording` for a long recording.

    What it does with the data (the choices are measured in har/README.md):

    * **normalisation** (``normalize="auto"``): each series z-normalised on its
      own (the archive convention) when the training series already are (nearly
      every series and channel with mean 0 and standard deviation 1); otherwise
      each channel standardised with the statistics of the training set, which
      keeps level differences between series (gravity's direction in an
      accelerometer). ``"series"`` or ``"channel"`` force one;
    * **unequal lengths**: series padded at the end with NaN (as
      ``har.read_ts(path, unequal="pad")`` returns them) are each stretched
      linearly to the padded length, so no padding enters the global pooling;
    * **training**: a fixed budget of epochs (``epochs="auto"``: about
      :data:`STEPS_TARGET` gradient steps, 10 to 500 epochs, fewer when a fit
      would cost more than :data:`MAC_BUDGET` multiply-adds), Adam, the learning rate halved when the
      training loss stops falling, and the weights of the epoch with the
      lowest training loss kept (the lowest validation loss when
      ``validation_split > 0``). No early stopping: on tens of series a
      validation split is too small to decide when to stop;
    * **augmentation** (``augment="auto"``, the same as True): every training
      series scaled by a random gain in [0.9, 1.1]; and, only for channels
      declared as x, y, z axes of a sensor (``sensor_axes``) and standardised
      per channel, a random rotation of each triple. ``augment=False`` turns
      both off.

    Parameters
    ----------
    window : int or None
        Samples per window. None (default): the length of the training
        series, and ``predict`` accepts other lengths (the networks end in
        global pooling). If given, every series must have this length.
    network : {"fcn", "resnet", "inception", "small"}
        ``har.networks.fcn`` (default), ``resnet``, ``inception_time``, or
        ``"small"`` (:func:`conv1d_network`, the earlier accelerometer net).
    width : float
        Multiplies the filter counts of the network (default 0.5: FCN with
        64, 128, 64 filters, which matches the paper's width on the archive
        problems measured, at a quarter of the cost).
    epochs : int or "auto"
        Passes over the training data. ``"auto"``: see above.
    batch_size : int or "auto"
        ``"auto"``: ``N // 4`` clipped to [4, 16].
    learning_rate : float
        Adam's initial learning rate.
    seed : int
    validation_split : float
        Part of the training data (by ``groups`` when given) held out to
        choose the best epoch. Default 0: the lowest training loss chooses.
    patience : int or "auto"
        Epochs without a lower training loss before the learning rate halves
        (``"auto"``: an eighth of the epochs, at least 5).
    normalize : {"auto", "series", "channel"}
    sensor_axes : "auto", None, "triples" or list of (int, int, int)
        Channels that are the x, y, z axes of one sensor, the only ones the
        augmentation rotates: ``"triples"`` for channels (0, 1, 2), (3, 4, 5),
        ...; explicit index triples; None for none; ``"auto"`` (default):
        ``"triples"`` when one aligned triple measures gravity (see
        :func:`gravity_triples`), else none.
    augment : "auto", True or False
    rotation_range : float
        Largest augmentation rotation in degrees.
    class_weight : None, "balanced" or dict {label: weight}
        Loss weight per class (``"balanced"``: inversely proportional to
        the class counts of the training part).
    verbose, engine
        As in :class:`core.estimator.BaseClassifier`.

    Attributes
    ----------
    classes_ : ndarray of the labels, sorted
    input_shape_ : tuple (steps, channels)
    normalize_ : "series" or "channel", the normalisation used
    standardizer_ : har.ChannelStandardizer (the identity for "series")
    model_ : core.Sequential
    history_ : dict of per-epoch loss/accuracy lists
    epochs_trained_ : int

    Examples
    --------
    >>> X, y, subjects = har.make_synthetic(seed=0)
    >>> train, test = har.subject_split(subjects, test_size=0.25, seed=0)
    >>> clf = har.ActivityClassifier(seed=0).fit(X[train], y[train], groups=subjects[train])
    >>> clf.evaluate(X[test], y[test])["accuracy"]
    """

    def __init__(self, window=None, network="fcn", width=0.5, epochs="auto", batch_size="auto", learning_rate=1e-3,
                 seed=0, validation_split=0.0, patience="auto", normalize="auto", sensor_axes="auto", augment="auto",
                 rotation_range=15.0, class_weight=None, verbose=0, engine="numpy"):
        super().__init__(epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, seed=seed,
                         validation_split=validation_split, patience=patience, verbose=verbose, engine=engine)
        self.window = window
        self.network = network
        self.width = width
        self.normalize = normalize
        self.sensor_axes = sensor_axes
        self.augment = augment
        self.rotation_range = rotation_range
        self.class_weight = class_weight

    # ------------------------------------------------------------ input
    _parameter_constraints = {
        **BaseClassifier._parameter_constraints,
        "epochs": [Options("auto"), Interval(int, 1, None)],
        "batch_size": [Options("auto"), Interval(int, 1, None)],
        "patience": [Options("auto"), Interval(int, 0, None)],
        "window": [None, Interval(int, 1, None)],
        "network": [Options("fcn", "resnet", "inception", "small")],
        "width": [Interval(float, 0, 4, closed="right")],
        "normalize": [Options("auto", "series", "channel")],
        "sensor_axes": [None, Options("auto", "triples"), list, tuple],
        "augment": [Options("auto"), Boolean()],
        "rotation_range": [Interval(float, 0, 180)],
        "class_weight": [None, Options("balanced"), Mapping()],
    }

    def _sensor_triples(self, channels):
        axes = self.sensor_axes
        if axes is None:
            return []
        if isinstance(axes, str):
            if axes == "auto":
                return list(getattr(self, "sensor_triples_", []))
            if axes != "triples":
                raise ConfigError(f"ActivityClassifier: sensor_axes must be 'auto', None, 'triples' or a list "
                                  f"of channel index triples, found {axes!r}")
            if channels % 3:
                raise ConfigError(f"ActivityClassifier: sensor_axes='triples' needs a channel count divisible by "
                                  f"3, X has {channels} channels")
            return [(c, c + 1, c + 2) for c in range(0, channels, 3)]
        try:
            triples = [tuple(int(v) for v in t) for t in axes]
        except (TypeError, ValueError):
            triples = None
        if not triples or any(len(t) != 3 or min(t) < 0 or max(t) >= channels for t in triples):
            raise ConfigError(f"ActivityClassifier: sensor_axes must be a list of (x, y, z) channel indices "
                              f"below {channels}, found {axes!r}")
        return triples

    def _check_X(self, X, fitting):
        """Series -> float32 (N, steps, C); (N, steps) is one channel; NaN-padded ends are stretched."""
        try:
            arr = np.asarray(X)
        except Exception as exc:  # ragged nested lists
            raise InputError(f"X could not be converted to an array of series ({exc}); read unequal-length "
                             "series with har.read_ts(path, unequal='pad'), which pads them with NaN") from None
        if arr.dtype == bool or not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
            raise InputError(f"X must hold real numbers, found dtype {arr.dtype}")
        given = arr.shape
        if arr.ndim == 2:
            arr = arr[:, :, np.newaxis]
        if arr.ndim != 3:
            one = " for one window of shape (steps,) pass X[None];" if arr.ndim == 1 else ""
            raise ShapeError(f"X must be series of shape (N, steps, channels), found shape {arr.shape};{one} "
                             "for one long recording (T, channels) use predict_recording or har.sliding_windows")
        if 0 in arr.shape:
            raise InputError(f"X is empty (shape {arr.shape})")
        with np.errstate(over="ignore"):
            arr = arr.astype(np.float32, copy=False)
        lengths = series_lengths(arr)
        if fitting:
            if self.window is not None and arr.shape[1] != self.window:
                raise ShapeError(f"ActivityClassifier(window={self.window}): X has windows of {arr.shape[1]} "
                                 f"samples (shape {arr.shape})")
            steps = arr.shape[1]
        else:
            steps, channels = self.input_shape_
            if arr.shape[2] != channels:
                hint = ""
                if len(given) == 2:  # one window (steps, channels) passed without its batch axis?
                    hint = (f"; a 2-D X is read as {given[0]} one-channel series of {given[1]} steps"
                            + (f": for one window of shape {given} pass X[None]" if given[1] == channels else ""))
                raise ShapeError(f"ActivityClassifier: the model was trained on {channels} channel(s), "
                                 f"X has {arr.shape[2]} (shape {given}){hint}")
            if arr.shape[1] == 1 < steps:  # series of one step: a window passed without its batch axis?
                hint = (f": a 2-D X (N, steps) is N one-channel series, so one window of shape {given} is X[None]"
                        if len(given) == 2 else "")
                raise ShapeError(f"ActivityClassifier: X of shape {given} holds series of 1 step, the model was "
                                 f"trained on {steps}{hint}")
            if self.window is not None and arr.shape[1] != steps:
                raise ShapeError(f"ActivityClassifier(window={self.window}): the model was trained on windows "
                                 f"of {steps} samples, X has {arr.shape[1]} (shape {arr.shape}); cut them the "
                                 "same way, or use predict_recording on the whole recording")
            if (lengths == arr.shape[1]).all():
                steps = arr.shape[1]  # equal lengths: the network is rebuilt for them if need be
        if (lengths != steps).any():
            arr = stretch(arr, lengths, steps)
        return arr

    # ---------------------------------------------------- preprocessing
    def _fit_preprocessing(self, X):
        self.sensor_triples_ = gravity_triples(X) if self.sensor_axes == "auto" else []
        mode = self.normalize
        if mode == "auto":
            mode = "series" if looks_series_normalized(X) else "channel"
        self.normalize_ = mode
        self.standardizer_ = ChannelStandardizer().fit(X)
        if mode == "series":  # the identity: each series is normalised on its own
            self.standardizer_.mean_[:] = 0.0
            self.standardizer_.scale_[:] = 1.0

    def _transform(self, X):
        if getattr(self, "normalize_", "channel") == "series":
            return znorm_series(X)
        return self.standardizer_.transform(X, dtype=np.float32)

    def _augment_batch(self, xb, rng):
        mean = self.standardizer_.mean_.astype(np.float32)
        scale = self.standardizer_.scale_.astype(np.float32)
        raw = xb * scale + mean
        n, steps, channels = raw.shape
        triples = self._sensor_triples(channels) if self.normalize_ == "channel" else []
        if self.rotation_range > 0 and triples:
            R = _rotations(n, float(self.rotation_range), rng).astype(np.float32)  # one turn of the device
            for triple in triples:
                raw[:, :, list(triple)] = np.einsum("nij,ntj->nti", R, raw[:, :, list(triple)])
        raw = raw * rng.uniform(0.9, 1.1, size=(n, 1, 1)).astype(np.float32)
        return (raw - mean) / scale

    @property
    def _augment(self):
        """The base class's augmentation hook (see the class notes on augmentation)."""
        return self._augment_batch if self.augment in ("auto", True) else None

    # ---------------------------------------------------------- network
    def build_network(self, input_shape, n_classes):
        """The network named by ``network`` (see :mod:`har.networks`), filter counts times ``width``."""
        self._sensor_triples(int(input_shape[-1]))  # a bad sensor_axes fails before training
        w = float(self.width)
        def scaled(fs):
            return tuple(max(1, int(round(f * w))) for f in fs)
        if self.network == "small":
            return conv1d_network(input_shape, n_classes, seed=self.seed, filters=scaled((32, 64, 64)))
        if self.network == "fcn":
            return networks.fcn(input_shape, n_classes, seed=self.seed, filters=scaled((128, 256, 128)))
        if self.network == "resnet":
            return networks.resnet(input_shape, n_classes, seed=self.seed, filters=scaled((64, 128, 128)))
        f = max(1, int(round(32 * w)))
        return networks.inception_time(input_shape, n_classes, seed=self.seed, filters=f, bottleneck=f)

    # --------------------------------------------------------- training
    def _schedule(self, n, model):
        """``(epochs, batch_size, patience)`` for ``n`` training series (the "auto" rules)."""
        batch = self.batch_size if self.batch_size != "auto" else int(np.clip(n // 4, 4, 16))
        if self.epochs != "auto":
            epochs = int(self.epochs)
        else:
            steps_per_epoch = math.ceil(n / batch)
            epochs = int(np.clip(math.ceil(STEPS_TARGET / steps_per_epoch), 10, 500))
            network = getattr(model, "core", model)  # engine="keras": the core twin has the layers
            affordable = int(MAC_BUDGET / (max(forward_macs(network), 1) * n))
            epochs = max(min(epochs, affordable), 5)
        patience = self.patience if self.patience != "auto" else max(5, epochs // 8)
        return epochs, batch, patience

    def _train_network(self, model, x, y, validation_data, class_weight):
        """The recipe for tens to hundreds of series (class notes): fixed epochs, LR halved on
        a training-loss plateau, best weights kept."""
        epochs, batch, patience = self._schedule(len(x), model)
        self.schedule_ = {"epochs": epochs, "batch_size": batch, "patience": patience}
        if getattr(self, "engine", "numpy") == "keras":
            return super()._train_network(model, x, y, validation_data, class_weight, epochs=epochs,
                                          batch_size=batch,
                                          training_callbacks=self._training_callbacks(validation_data is not None,
                                                                                      patience))
        monitor = "val_loss" if validation_data is not None else "loss"
        cbs = [callbacks.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=patience,
                                           min_lr=float(self.learning_rate) / 20),
               callbacks.EarlyStopping(monitor=monitor, patience=epochs, restore_best_weights=True)]
        return model.fit(x, y, batch_size=batch, epochs=epochs, verbose=self.verbose, callbacks=cbs, shuffle=True,
                         batch_transform=self._augment, validation_data=validation_data, class_weight=class_weight)

    # ---------------------------------------------------------- predict
    def predict_proba(self, X):
        """Class probabilities ``(N, n_classes)``, columns in the order of ``classes_``.

        Series of another length than the training series are classified by
        the same network rebuilt for their length (it ends in global pooling);
        NaN-padded shorter series are stretched to the training length."""
        self._require_fitted("predict_proba")
        return self._predict_network(self._network_input(self._checked_X(X, fitting=False)))

    def _network_input(self, X):
        """The standardized series; any length the network can be rebuilt for (``_model_for_input``)."""
        Xt = self._transform(X)
        steps = Xt.shape[1]
        if getattr(self, "keras_model_", None) is not None and steps != self.model_.input_shape[1]:
            raise ShapeError(f"ActivityClassifier: the model was trained with engine='keras' on series of "
                             f"{self.input_shape_[0]} steps and cannot take {steps}; pad or cut them")
        self._model_for_input(Xt)  # (a length its poolings cannot take raises here)
        return Xt

    def _model_for_input(self, Xt):
        """The trained network, or the same weights rebuilt for series of another length (the
        last one is kept, with the network it was rebuilt from: a refit or a load makes a new
        ``model_``, and the next call a new rebuild)."""
        steps = Xt.shape[1]
        if steps == self.model_.input_shape[1]:
            return self.model_
        cached = self.__dict__.get("_length_model")
        if cached is None or cached[0] is not self.model_ or cached[1] != steps:
            cached = self._length_model = (self.model_, steps, networks.for_length(self.model_, steps))
        return cached[2]

    # ------------------------------------------------------ persistence
    def _get_state(self):
        config, arrays = self.standardizer_.get_state()
        return ({"standardizer": config, "normalize": self.normalize_},
                {"mean": arrays["mean"], "scale": arrays["scale"]})

    def _set_state(self, config, arrays):
        self.standardizer_ = ChannelStandardizer().set_state(config.get("standardizer", {}), arrays)
        self.normalize_ = config.get("normalize", "channel")

    # ------------------------------------------------------------ explain
    def explain(self, X, label=None, method=None, layer=None, smooth=0, seed=0):
        """Relevance over time of each window: ``(N, steps)`` float32.

        Which samples of each window decided ``label`` (default: the predicted
        activity); see :meth:`core.estimator.BaseClassifier.explain` for the
        methods. Grad-CAM's map of the last convolution is carried back to the
        window's samples through the poolings and paddings in between.
        """
        return super().explain(X, label=label, method=method, layer=layer, smooth=smooth, seed=seed)

    def _draw_explanation(self, sample, relevance, path, title):
        from core.plots import plot_signal_relevance

        plot_signal_relevance(sample, relevance, path, title=title,
                              channel_names=[f"axis {c}" for c in range(sample.shape[-1])])

    # -------------------------------------------------------- recordings
    def predict_recording(self, signal, step=None, batch_size=1024):
        """Label a long recording window by window.

        Parameters
        ----------
        signal : array_like of shape (T, channels)
            One continuous recording at the training sampling rate, channels
            in the training order, T >= the window length.
        step : int, optional
            Samples between window starts (default: half a window).
        batch_size : int
            Windows standardized and classified at a time (bounds memory for
            a day of data).

        Returns
        -------
        pandas.DataFrame
            One row per window: ``start`` (first sample index), ``end``
            (one past the last), ``label`` (most probable class) and
            ``probability`` (its probability).
        """
        self._require_fitted("predict_recording")
        steps, channels = self.input_shape_
        arr = np.asarray(signal)
        if arr.dtype == bool or not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
            raise InputError(f"signal must hold real numbers, found dtype {arr.dtype}")
        if arr.ndim == 1 and channels == 1:
            arr = arr[:, np.newaxis]
        if arr.ndim != 2 or arr.shape[1] != channels:
            raise ShapeError(f"signal must have shape (T, {channels}) (the model was trained on {channels} "
                             f"channel(s)), found shape {arr.shape}")
        if not np.isfinite(arr).all():
            raise InputError("signal contains NaN or infinite values; interpolate missing samples first "
                             "(har.segment does it and counts them)")
        if arr.shape[0] < steps:
            raise ShapeError(f"signal has {arr.shape[0]} samples, fewer than one window of {steps}")
        if step is None:
            step = max(steps // 2, 1)
        windows = sliding_windows(arr, steps, step)
        batch_size = check_int(batch_size, "predict_recording: batch_size")
        proba = np.concatenate([self.predict_proba(windows[i:i + batch_size])
                                for i in range(0, len(windows), batch_size)])
        best = proba.argmax(axis=1)
        starts = np.arange(len(windows)) * step
        return pd.DataFrame({"start": starts, "end": starts + steps, "label": self.classes_[best],
                             "probability": proba[np.arange(len(best)), best].astype(np.float64)})

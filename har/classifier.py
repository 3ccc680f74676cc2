"""``ActivityClassifier``: a Conv1D network for accelerometer windows."""
import numbers

import numpy as np
import pandas as pd

from core import Input, Sequential, layers
from core.estimator import BaseClassifier
from core.exceptions import ConfigError, InputError, ShapeError

from .preprocessing import ChannelStandardizer, sliding_windows

__all__ = ["ActivityClassifier", "conv1d_network"]


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


class ActivityClassifier(BaseClassifier):
    """Recognise activities from fixed-length accelerometer (and gyroscope) windows.

    A scikit-learn style estimator on :class:`core.estimator.BaseClassifier`:
    settings in the constructor, ``fit(X, y, groups=subjects)``, ``predict``,
    ``predict_proba``, ``evaluate``, ``save`` / ``load``, plus
    :meth:`predict_recording` for a long recording.

    What it does with the data:

    * each channel is standardized with the mean and standard deviation of
      the training windows (the validation part excluded); the statistics are
      saved with the model. Gravity's direction is kept, since every window is
      shifted by the same amounts;
    * training batches are augmented (``augment=True``): every window is
      turned by a random small rotation (the same for each x, y, z triplet
      of channels, i.e. when the channel count is a multiple of 3, as a
      sensor worn slightly differently would see it) and its readings scaled
      by a random gain in [0.9, 1.1] (a different body or phone). Set
      ``augment=False`` for channels that are not x, y, z triplets;
    * early stopping on the validation loss, the validation part taken by
      subject when ``groups`` is given to ``fit`` (recommended: windows of one
      person are alike, so a random split would be too optimistic).

    Parameters
    ----------
    window : int or None
        Samples per window. None (default): the length of the training
        windows. If given, training windows must have this length.
    epochs, batch_size, learning_rate, seed, validation_split, patience, verbose, engine
        As in :class:`core.estimator.BaseClassifier` (Adam, sparse categorical
        cross-entropy, at most ``epochs`` passes, best weights restored).
    augment : bool
        Augment training batches with rotations and gain changes.
    rotation_range : float
        Largest augmentation rotation in degrees (0 turns rotation off).

    Attributes
    ----------
    classes_ : ndarray of the labels, sorted
    input_shape_ : tuple (steps, channels)
    standardizer_ : har.ChannelStandardizer
    model_ : core.Sequential
    history_ : dict of per-epoch loss/accuracy lists

    Examples
    --------
    >>> X, y, subjects = har.make_synthetic(seed=0)
    >>> train, test = har.subject_split(subjects, test_size=0.25, seed=0)
    >>> clf = har.ActivityClassifier(seed=0).fit(X[train], y[train], groups=subjects[train])
    >>> clf.evaluate(X[test], y[test])["accuracy"]
    """

    def __init__(self, window=None, epochs=40, batch_size=32, learning_rate=1e-3, seed=0, validation_split=0.15,
                 patience=6, augment=True, rotation_range=15.0, verbose=0, engine="numpy"):
        super().__init__(epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, seed=seed,
                         validation_split=validation_split, patience=patience, verbose=verbose, engine=engine)
        self.window = window
        self.augment = augment
        self.rotation_range = rotation_range

    # ------------------------------------------------------------ input
    def _check_settings(self):
        if self.window is not None and (isinstance(self.window, bool)
                                        or not isinstance(self.window, (int, np.integer)) or self.window < 1):
            raise ConfigError(f"ActivityClassifier: window must be a positive int or None, found {self.window!r}")
        if not isinstance(self.augment, (bool, np.bool_)):
            raise ConfigError(f"ActivityClassifier: augment must be True or False, found {self.augment!r}")
        if (isinstance(self.rotation_range, bool) or not isinstance(self.rotation_range, numbers.Real)
                or not 0 <= self.rotation_range <= 180):
            raise ConfigError(f"ActivityClassifier: rotation_range must be degrees in [0, 180], "
                              f"found {self.rotation_range!r}")

    def _check_X(self, X, fitting):
        """Windows -> float32 (N, steps, C); (N, steps) is taken as one channel."""
        if fitting:
            self._check_settings()
        try:
            arr = np.asarray(X)
        except Exception as exc:  # ragged nested lists
            raise InputError(f"X could not be converted to an array of windows ({exc}); cut recordings into "
                             "equal-length windows first (har.sliding_windows or har.segment)") from None
        if arr.dtype == bool or not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
            raise InputError(f"X must hold real numbers, found dtype {arr.dtype}")
        if arr.ndim == 2:
            arr = arr[:, :, np.newaxis]
        if arr.ndim != 3:
            raise ShapeError(f"X must be windows of shape (N, steps, channels), found shape {arr.shape}; "
                             "for one long recording (T, channels) use predict_recording or har.sliding_windows")
        if 0 in arr.shape:
            raise InputError(f"X is empty (shape {arr.shape})")
        arr = arr.astype(np.float32, copy=False)
        if not np.isfinite(arr).all():
            bad = int(arr.size - np.count_nonzero(np.isfinite(arr)))
            raise InputError(f"X contains {bad} NaN or infinite values; interpolate missing samples first "
                             "(har.segment does it and counts them)")
        if fitting:
            if self.window is not None and arr.shape[1] != self.window:
                raise ShapeError(f"ActivityClassifier(window={self.window}): X has windows of {arr.shape[1]} "
                                 f"samples (shape {arr.shape})")
        else:
            steps, channels = self.input_shape_
            if arr.shape[2] != channels:
                raise ShapeError(f"ActivityClassifier: the model was trained on {channels} channel(s), "
                                 f"X has {arr.shape[2]} (shape {arr.shape})")
            if arr.shape[1] != steps:
                raise ShapeError(f"ActivityClassifier: the model was trained on windows of {steps} samples, "
                                 f"X has {arr.shape[1]} (shape {arr.shape}); cut them the same way, "
                                 "or use predict_recording on the whole recording")
        return arr

    # ---------------------------------------------------- preprocessing
    def _fit_preprocessing(self, X):
        self.standardizer_ = ChannelStandardizer().fit(X)

    def _transform(self, X):
        return self.standardizer_.transform(X, dtype=np.float32)

    def _augment_batch(self, xb, rng):
        mean = self.standardizer_.mean_.astype(np.float32)
        scale = self.standardizer_.scale_.astype(np.float32)
        raw = xb * scale + mean
        n, _, channels = raw.shape
        if self.rotation_range > 0 and channels % 3 == 0:
            R = _rotations(n, float(self.rotation_range), rng).astype(np.float32)
            grouped = raw.reshape(n, raw.shape[1], channels // 3, 3)
            raw = np.einsum("nij,ntgj->ntgi", R, grouped).reshape(raw.shape)
        raw = raw * rng.uniform(0.9, 1.1, size=(n, 1, 1)).astype(np.float32)
        return (raw - mean) / scale

    @property
    def _augment(self):
        """The base class's augmentation hook: rotations and gain when ``augment`` is on."""
        return self._augment_batch if self.augment else None

    # ---------------------------------------------------------- network
    def build_network(self, input_shape, n_classes):
        """The default Conv1D network (see :func:`har.classifier.conv1d_network`)."""
        return conv1d_network(input_shape, n_classes, seed=self.seed)

    # ------------------------------------------------------ persistence
    def _get_state(self):
        config, arrays = self.standardizer_.get_state()
        return {"standardizer": config}, {"mean": arrays["mean"], "scale": arrays["scale"]}

    def _set_state(self, config, arrays):
        self.standardizer_ = ChannelStandardizer().set_state(config.get("standardizer", {}), arrays)

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
        batch_size = max(int(batch_size), 1)
        proba = np.concatenate([self.predict_proba(windows[i:i + batch_size])
                                for i in range(0, len(windows), batch_size)])
        best = proba.argmax(axis=1)
        starts = np.arange(len(windows)) * step
        return pd.DataFrame({"start": starts, "end": starts + steps, "label": self.classes_[best],
                             "probability": proba[np.arange(len(best)), best].astype(np.float64)})

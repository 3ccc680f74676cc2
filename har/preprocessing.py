"""Turning recordings into labelled windows: windowing, segmentation,
resampling, per-channel standardization and subject-wise splits."""
from fractions import Fraction

import numpy as np
import pandas as pd

from core.exceptions import InputError, ShapeError

from ._common import TIME_UNITS as _TIME_UNITS, check_positive_int, check_rate, warn_quality

__all__ = ["sliding_windows", "resample", "segment", "ChannelStandardizer", "subject_split"]



# ----------------------------------------------------------------- windowing

def sliding_windows(signal, window, step):
    """Cut a recording into fixed-length windows.

    Parameters
    ----------
    signal : array_like of shape (T, C) or (T,)
        One contiguous recording, time first, channels last.
    window : int
        Samples per window (1 <= window <= T).
    step : int
        Samples between the starts of consecutive windows (``step < window``
        gives overlapping windows, e.g. ``window // 2`` for 50 %).

    Returns
    -------
    windows : ndarray of shape (n, window, C), or (n, window) for 1-D input
        ``n = 1 + (T - window) // step``; window ``i`` is
        ``signal[i * step : i * step + window]``. Trailing samples that do
        not fill a window are left out.

        This is a **read-only view** into ``signal`` made with NumPy's stride
        tricks (no copy, so a day of data costs no extra memory). Writing to
        it raises ``ValueError``; call ``np.array(windows)`` for a writable
        copy. If ``signal`` was not already an ndarray it is converted first,
        and the view is into that converted array.

    Raises
    ------
    InputError
        ``window``/``step`` are not positive integers, ``signal`` is not 1-D
        or 2-D numeric.
    ShapeError
        ``window`` is longer than the recording.
    """
    window = check_positive_int(window, "window")
    step = check_positive_int(step, "step")
    array = np.asarray(signal)
    if array.dtype.kind not in "fiub":
        raise InputError(f"signal must be numeric, got dtype {array.dtype}")
    if array.ndim not in (1, 2):
        raise InputError(f"signal must have shape (T, C) or (T,), got shape {array.shape}")
    length = array.shape[0]
    if window > length:
        raise ShapeError(f"window ({window} samples) is longer than the recording ({length} samples)")
    view = np.lib.stride_tricks.sliding_window_view(array, window, axis=0)[::step]
    if array.ndim == 2:
        view = np.moveaxis(view, -1, 1)  # (n, C, window) -> (n, window, C)
    view.flags.writeable = False
    return view


# ----------------------------------------------------------------- resampling

def resample(signal, rate, target_rate, *, max_denominator=1000):
    """Resample a uniformly sampled recording to another rate (polyphase filter).

    Uses :func:`scipy.signal.resample_poly` with the ratio
    ``target_rate / rate`` approximated by a fraction ``up / down`` (denominator
    at most ``max_denominator``), an anti-aliasing FIR filter, and the edges
    extended linearly (``padtype="line"``) so that gravity's constant offset
    does not ring at the ends.

    Parameters
    ----------
    signal : array_like of shape (T, C) or (T,)
    rate, target_rate : float
        Sampling rates in Hz.
    max_denominator : int
        Bound on ``down`` when approximating the ratio.

    Returns
    -------
    resampled : ndarray of shape (ceil(T * up / down), C) or (...,)
        float64 for integer input, otherwise the input's float dtype. The
        input itself when the two rates are equal.
    """
    rate = check_rate(rate, "rate")
    target_rate = check_rate(target_rate, "target_rate")
    array = np.asarray(signal)
    if array.dtype.kind not in "fiu":
        raise InputError(f"signal must be numeric, got dtype {array.dtype}")
    if array.ndim not in (1, 2) or array.shape[0] == 0:
        raise InputError(f"signal must have shape (T, C) or (T,) with T >= 1, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise InputError("signal contains NaN or inf; interpolate or drop missing samples first "
                         "(har.segment does this)")
    ratio = Fraction(target_rate / rate).limit_denominator(check_positive_int(max_denominator, "max_denominator"))
    if ratio == 1:
        return array if array.dtype.kind == "f" else array.astype(np.float64)
    if ratio.numerator == 0:
        raise InputError(f"target_rate {target_rate} Hz is too small relative to rate {rate} Hz")
    dtype = array.dtype if array.dtype.kind == "f" else np.float64
    from scipy.signal import resample_poly  # imported here: scipy.signal is slow to import

    out = resample_poly(array.astype(np.float64), ratio.numerator, ratio.denominator,
                                axis=0, padtype="line")
    return out.astype(dtype, copy=False)


# ----------------------------------------------------------------- segmentation

def _resolve(table, given, key, candidates):
    """Column for one role: explicit name, False (none), or auto (attrs, then common names)."""
    if given is False:
        return None
    if given is not None:
        if given not in table.columns:
            raise InputError(f"{key} column {given!r} not in the table; columns are {list(table.columns)}")
        return given
    meta = table.attrs.get("har") if isinstance(table.attrs, dict) else None
    if isinstance(meta, dict) and meta.get(key) is not None and meta[key] in table.columns:
        return meta[key]
    for name in candidates:
        if name in table.columns:
            return name
    return None


def _fill_missing(values, times, report):
    """Linearly interpolate NaN samples of one run (over time); return None if a channel is all NaN."""
    bad = np.isnan(values)
    if not bad.any():
        return values
    out = values.copy()
    for c in range(values.shape[1]):
        b = bad[:, c]
        if b.all():
            return None
        if b.any():
            out[b, c] = np.interp(times[b], times[~b], values[~b, c])
    report["interpolated"] += int(bad.any(axis=1).sum())
    return out


def _majority(codes, n_classes, window, step):
    """Per window: (most frequent code, its count); ties go to the smaller code."""
    onehot = np.zeros((len(codes) + 1, n_classes), dtype=np.int32)
    onehot[np.arange(1, len(codes) + 1), codes] = 1
    cum = np.cumsum(onehot, axis=0)
    starts = np.arange(0, len(codes) - window + 1, step)
    counts = cum[starts + window] - cum[starts]
    best = counts.argmax(axis=1)
    return best, counts[np.arange(len(starts)), best]


def segment(table, window, step, *, axes=None, label=None, subject=None, time=None,
            time_unit=None, mixed="majority", missing="interpolate", target_rate=None,
            rate=None, gap=10.0, dtype=np.float32):
    """Turn a table of recordings into labelled, fixed-length windows.

    The table (e.g. from :func:`har.load_wisdm` or :func:`har.load_csv`) is
    split into *runs*: consecutive rows of one subject whose timestamps go
    forward without a gap longer than ``gap`` times the median sampling
    interval. Each run is repaired (missing samples), optionally resampled to
    ``target_rate``, then cut into windows with :func:`sliding_windows`;
    windows never cross a run boundary, so no window mixes two people or two
    sessions.

    Parameters
    ----------
    table : pandas.DataFrame
        One row per sample.
    window, step : int
        Window length and hop, in samples (at ``target_rate`` if given).
    axes : list of str, optional
        Signal columns (channel order). Default: ``table.attrs["har"]``
        (set by the readers), else ``x, y, z``.
    label, subject, time : str or False, optional
        Label, subject and timestamp columns. ``None`` (default) takes them
        from ``table.attrs["har"]``, else from columns named
        ``activity``/``label``, ``user``/``subject``, ``timestamp``/``time``
        when present; ``False`` means the table has none.
    time_unit : {"s", "ms", "us", "ns"}, optional
        Unit of the time column; default from ``attrs`` or ``"s"``.
    mixed : {"majority", "drop"}
        A window whose samples carry several labels gets the most frequent
        one (ties: the label met first in the table), or is dropped.
    missing : {"interpolate", "drop"}
        NaN samples are linearly interpolated inside their run (over time
        when there is a time column; edges take the nearest valid value), or
        the rows are dropped. Runs where a channel has no valid sample are
        dropped. Either way the number of samples is reported in a
        :class:`har.DataQualityWarning`.
    target_rate : float, optional
        Resample every run to this rate (Hz): with a time column the run is
        first put on a uniform grid at its own median rate (linear
        interpolation, which also removes timing jitter), then resampled with
        :func:`har.resample`; labels follow the nearest original sample.
        Without a time column, ``rate`` gives the recording rate. When
        runs have rates that differ by more than 10 % and no ``target_rate``
        is given, a warning says so.
    rate : float, optional
        Sampling rate (Hz) of a table without a time column; needed only
        with ``target_rate``.
    gap : float
        A time step longer than ``gap`` times the median step (or a step
        backwards) starts a new run. Rows repeating the previous timestamp
        are dropped and counted.
    dtype : numpy dtype

    Returns
    -------
    X : ndarray of shape (n_windows, window, n_axes)
    y : ndarray of shape (n_windows,) or None
        One label per window (None without a label column).
    subjects : ndarray of shape (n_windows,) or None
        Subject of each window (None without a subject column).

    Raises
    ------
    InputError
        Not a DataFrame, a named column is missing, an axis column is not
        numeric, bad option values, or no run is long enough for one window.
    """
    if not isinstance(table, pd.DataFrame):
        raise InputError(f"table must be a pandas DataFrame, got {type(table).__name__}")
    window = check_positive_int(window, "window")
    step = check_positive_int(step, "step")
    if mixed not in ("majority", "drop"):
        raise InputError(f"mixed must be 'majority' or 'drop', got {mixed!r}")
    if missing not in ("interpolate", "drop"):
        raise InputError(f"missing must be 'interpolate' or 'drop', got {missing!r}")
    if target_rate is not None:
        target_rate = check_rate(target_rate, "target_rate")
    if rate is not None:
        rate = check_rate(rate, "rate")
    gap = check_rate(gap, "gap")
    axes, label, subject, time, time_unit = _segment_columns(table, axes, label, subject, time, time_unit)
    if target_rate is not None and time is None and rate is None:
        raise InputError("target_rate needs the recording's rate: pass rate=<Hz> or a time column")
    if len(table) == 0:
        raise InputError("table has no rows")

    report = {"no_label": 0, "interpolated": 0, "dropped_nan": 0, "empty_channel_runs": 0,
              "duplicate_time": 0, "short_runs": 0, "short_samples": 0}
    runs, values, t, label_codes, label_uniques = _runs(table, axes, label, subject, time, time_unit, rate, gap,
                                                        report)
    subjects_all = table[subject].to_numpy() if subject is not None else None
    pieces_X, pieces_y, pieces_s, run_rates = [], [], [], []
    for rows, sel in runs:
        run_values, run_t, codes = values[rows], t[sel], label_codes[sel]
        repaired = _repair_run(run_values, run_t, codes, missing, time is not None, report)
        if repaired is None:
            continue
        run_values, run_t, codes = repaired
        native = rate
        if time is not None and len(run_t) > 1:
            native = 1.0 / float(np.median(np.diff(run_t)))
            run_rates.append(native)
        if target_rate is not None and len(run_values) > 1:
            run_values, codes = _resample_run(run_values, run_t if time is not None else None, codes, native,
                                              target_rate)
        if len(run_values) < window:
            report["short_runs"] += 1
            report["short_samples"] += len(run_values)
            continue
        windows, labels = _window_run(run_values, codes if label is not None else None, len(label_uniques),
                                      window, step, mixed, dtype)
        pieces_X.append(windows)
        if labels is not None:
            pieces_y.append(labels)
        if subject is not None:
            pieces_s.append(np.repeat(subjects_all[rows[0]], len(windows)))

    if target_rate is None and len(run_rates) > 1:
        lo, hi = min(run_rates), max(run_rates)
        if hi > 1.1 * lo:
            warn_quality(f"runs have different sampling rates ({lo:.3g} to {hi:.3g} Hz); windows of "
                         f"{window} samples then cover different durations. Pass target_rate=<Hz> to resample.")
    _warn_repairs(report)
    if not pieces_X or sum(len(p) for p in pieces_X) == 0:
        raise InputError(
            f"no window of {window} samples could be made: {len(runs)} run(s), the longest shorter than the "
            "window or every window mixing labels" + (" (mixed='drop')" if mixed == "drop" else ""))
    X = np.concatenate(pieces_X, axis=0)
    y = None
    if label is not None:
        y = np.asarray(label_uniques)[np.concatenate(pieces_y)]
        if y.dtype == object and all(isinstance(v, str) for v in y[:1000]):
            y = y.astype(str)
    subjects_out = np.concatenate(pieces_s) if subject is not None else None
    return X, y, subjects_out


def _segment_columns(table, axes, label, subject, time, time_unit):
    """The signal, label, subject and time columns ``segment`` uses, and the time unit, checked."""
    meta = table.attrs.get("har") if isinstance(table.attrs.get("har"), dict) else {}
    if axes is None:
        axes = meta.get("axes") or ["x", "y", "z"]
    if isinstance(axes, str):
        axes = [axes]
    axes = list(axes)
    absent = [a for a in axes if a not in table.columns]
    if absent:
        raise InputError(f"axis column(s) {absent} not in the table; columns are {list(table.columns)}")
    for a in axes:
        if not pd.api.types.is_numeric_dtype(table[a]):
            raise InputError(f"axis column {a!r} must be numeric, got dtype {table[a].dtype}")
    label = _resolve(table, label, "label", ("activity", "label"))
    subject = _resolve(table, subject, "subject", ("user", "subject"))
    time = _resolve(table, time, "time", ("timestamp", "time"))
    if time_unit is None:
        time_unit = meta.get("time_unit") or "s"
    if time_unit not in _TIME_UNITS:
        raise InputError(f"time_unit must be one of {sorted(_TIME_UNITS)}, got {time_unit!r}")
    if time is not None and not pd.api.types.is_numeric_dtype(table[time]):
        raise InputError(f"time column {time!r} must be numeric, got dtype {table[time].dtype}")
    return axes, label, subject, time, time_unit


def _runs(table, axes, label, subject, time, time_unit, rate, gap, report):
    """Split the usable rows into runs: ``(runs, values, t, label_codes, label_uniques)``.

    ``runs`` lists ``(rows, sel)`` per run: its table rows and their positions in
    ``t`` / ``label_codes`` (the kept rows, in order). A run ends where the
    subject changes, time goes backwards or jumps by more than ``gap`` median
    steps; rows without label, subject or time, and rows repeating the previous
    timestamp, are left out and counted in ``report``."""
    values = table[axes].to_numpy(dtype=np.float64)
    keep = np.ones(len(table), dtype=bool)
    for column in (label, subject):
        if column is not None:
            keep &= table[column].notna().to_numpy()
    report["no_label"] = int((~keep).sum())
    if time is not None:
        seconds = table[time].to_numpy(dtype=np.float64) * _TIME_UNITS[time_unit]
        missing_time = ~np.isfinite(seconds)
        report["no_label"] += int((missing_time & keep).sum())
        keep &= ~missing_time
    else:
        seconds = np.arange(len(table), dtype=np.float64) / (rate or 1.0)
    idx = np.flatnonzero(keep)
    if subject is not None and len(idx):
        subj_codes = pd.factorize(table[subject].to_numpy()[idx])[0]
    else:
        subj_codes = np.zeros(len(idx), dtype=np.int64)
    if label is not None:
        label_codes, label_uniques = pd.factorize(table[label].to_numpy()[idx])
    else:
        label_codes, label_uniques = np.zeros(len(idx), dtype=np.int64), np.array([None])
    t = seconds[idx]
    dt = np.diff(t)
    positive = dt[dt > 0]
    median_dt = float(np.median(positive)) if len(positive) else 1.0
    boundary = np.zeros(len(idx), dtype=bool)
    if len(idx):
        boundary[0] = True
    boundary[1:] |= subj_codes[1:] != subj_codes[:-1]
    duplicate = np.zeros(len(idx), dtype=bool)
    if time is not None:
        boundary[1:] |= (dt < 0) | (dt > gap * median_dt)
        duplicate[1:] = (dt == 0) & ~boundary[1:]
        report["duplicate_time"] = int(duplicate.sum())
    starts = np.flatnonzero(boundary)
    stops = np.append(starts[1:], len(idx))
    runs = []
    for a, b in zip(starts, stops):
        sel = np.arange(a, b)
        sel = sel[~duplicate[sel]]
        runs.append((idx[sel], sel))
    return runs, values, t, label_codes, label_uniques


def _repair_run(run_values, run_t, codes, missing, has_time, report):
    """NaN samples of one run interpolated (or dropped): ``(values, t, codes)``, or None when
    nothing usable is left (a channel without a valid sample, or no sample)."""
    if missing == "drop":
        ok = ~np.isnan(run_values).any(axis=1)
        report["dropped_nan"] += int((~ok).sum())
        run_values, run_t, codes = run_values[ok], run_t[ok], codes[ok]
    else:
        filled = _fill_missing(run_values, run_t if has_time else np.arange(len(run_t), dtype=float), report)
        if filled is None:
            report["empty_channel_runs"] += 1
            return None
        run_values = filled
    if len(run_values) == 0:
        return None
    return run_values, run_t, codes


def _resample_run(run_values, run_t, codes, native, target_rate):
    """One run at ``target_rate``: ``(values, codes)``; labels follow the nearest original sample.
    With times ``run_t``, the run is first put on a uniform grid at its own rate ``native``."""
    if run_t is not None:
        n_uniform = int(np.floor((run_t[-1] - run_t[0]) * native + 1e-9)) + 1
        grid = run_t[0] + np.arange(n_uniform) / native
        uniform = np.column_stack([np.interp(grid, run_t, run_values[:, c]) for c in range(run_values.shape[1])])
        resampled = resample(uniform, native, target_rate)
        out_t = run_t[0] + np.arange(len(resampled)) / target_rate
        nearest = np.clip(np.searchsorted(run_t, out_t), 1, len(run_t) - 1)
        left_closer = (out_t - run_t[nearest - 1]) <= (run_t[nearest] - out_t)
        nearest = nearest - left_closer
    else:
        resampled = resample(run_values, native, target_rate)
        nearest = np.clip(np.round(np.arange(len(resampled)) * native / target_rate).astype(np.int64),
                          0, len(run_values) - 1)
    return resampled, codes[nearest]


def _window_run(run_values, codes, n_labels, window, step, mixed, dtype):
    """One run cut into windows: ``(windows, label codes or None)``; with labels, a window
    takes its majority label, or is dropped (``mixed="drop"``) when it mixes labels."""
    windows = sliding_windows(run_values, window, step)
    if codes is None:
        return np.asarray(windows, dtype=dtype), None
    best, count = _majority(codes, n_labels, window, step)
    chosen = np.ones(len(best), dtype=bool) if mixed == "majority" else count == window
    return np.asarray(windows[chosen], dtype=dtype), best[chosen]


def _warn_repairs(report):
    """One data-quality warning listing what ``segment`` dropped or repaired."""
    notes = []
    if report["no_label"]:
        notes.append(f"{report['no_label']} rows without label/subject/time dropped")
    if report["duplicate_time"]:
        notes.append(f"{report['duplicate_time']} rows repeating the previous timestamp dropped")
    if report["interpolated"]:
        notes.append(f"{report['interpolated']} samples with NaN interpolated")
    if report["dropped_nan"]:
        notes.append(f"{report['dropped_nan']} samples with NaN dropped")
    if report["empty_channel_runs"]:
        notes.append(f"{report['empty_channel_runs']} runs with a channel entirely NaN dropped")
    if report["short_runs"]:
        notes.append(f"{report['short_runs']} runs shorter than the window ({report['short_samples']} samples) "
                     "left out")
    if notes:
        warn_quality("segment: " + "; ".join(notes))


# ----------------------------------------------------------------- standardization

class ChannelStandardizer:
    """Per-channel standardization: ``(x - mean) / std`` over all samples.

    Fitted on training windows only; its state travels with a saved model as
    a JSON-able dict plus named arrays (``get_state`` / ``set_state``).

    Parameters
    ----------
    min_std : float
        Channels whose standard deviation is below this are only centred
        (scale 1), so a constant channel does not blow up.

    Attributes
    ----------
    mean_ : ndarray of shape (C,), float64
    scale_ : ndarray of shape (C,), float64
    n_channels_ : int
    """

    def __init__(self, min_std=1e-8):
        self.min_std = min_std

    @staticmethod
    def _check(X, what):
        array = np.asarray(X)
        if array.dtype.kind not in "fiu":
            raise InputError(f"{what}: X must be numeric, got dtype {array.dtype}")
        if array.ndim < 2:
            raise InputError(f"{what}: X must have channels last, shape (..., C), got shape {array.shape}")
        if array.size == 0:
            raise InputError(f"{what}: X is empty (shape {array.shape})")
        if not np.all(np.isfinite(array)):
            raise InputError(f"{what}: X contains NaN or inf")
        return array

    def fit(self, X):
        """Learn each channel's mean and standard deviation.

        Parameters
        ----------
        X : array_like of shape (N, steps, C) or (T, C)

        Returns
        -------
        self
        """
        array = self._check(X, "ChannelStandardizer.fit")
        flat = array.reshape(-1, array.shape[-1]).astype(np.float64)
        self.mean_ = flat.mean(axis=0)
        std = flat.std(axis=0)
        self.scale_ = np.where(std < self.min_std, 1.0, std)
        self.n_channels_ = int(array.shape[-1])
        return self

    def _check_fitted(self, array, what):
        if not hasattr(self, "mean_"):
            from core.exceptions import NotFittedError
            raise NotFittedError(f"{what}: this ChannelStandardizer is not fitted; call fit(X) first")
        if array.shape[-1] != self.n_channels_:
            raise ShapeError(f"{what}: X has {array.shape[-1]} channels (last axis), "
                             f"the standardizer was fitted on {self.n_channels_}")

    def transform(self, X, dtype=np.float32):
        """Standardize ``X`` with the fitted statistics.

        Parameters
        ----------
        X : array_like of shape (..., C)

        Returns
        -------
        Z : ndarray of the same shape, ``dtype`` (float32 by default)
        """
        array = self._check(X, "ChannelStandardizer.transform")
        self._check_fitted(array, "ChannelStandardizer.transform")
        return ((array - self.mean_) / self.scale_).astype(dtype, copy=False)

    def fit_transform(self, X, dtype=np.float32):
        """``fit(X)`` then ``transform(X)``."""
        return self.fit(X).transform(X, dtype=dtype)

    def inverse_transform(self, Z, dtype=np.float32):
        """Undo :meth:`transform`: ``Z * std + mean``, shape (..., C)."""
        array = self._check(Z, "ChannelStandardizer.inverse_transform")
        self._check_fitted(array, "ChannelStandardizer.inverse_transform")
        return (array * self.scale_ + self.mean_).astype(dtype, copy=False)

    def get_state(self):
        """Return ``(config, arrays)``: a JSON-able dict and ``{"mean", "scale"}`` float64 arrays."""
        if not hasattr(self, "mean_"):
            from core.exceptions import NotFittedError
            raise NotFittedError("ChannelStandardizer.get_state: not fitted")
        return ({"min_std": float(self.min_std), "n_channels": self.n_channels_},
                {"mean": self.mean_.copy(), "scale": self.scale_.copy()})

    def set_state(self, config, arrays):
        """Restore the state returned by :meth:`get_state`; returns self."""
        try:
            mean = np.asarray(arrays["mean"], dtype=np.float64)
            scale = np.asarray(arrays["scale"], dtype=np.float64)
            n_channels = int(config["n_channels"])
            min_std = float(config.get("min_std", self.min_std))
        except (KeyError, TypeError, ValueError) as err:
            raise InputError(f"ChannelStandardizer.set_state: incomplete or invalid state ({err!r})") from None
        if mean.shape != (n_channels,) or scale.shape != (n_channels,):
            raise InputError(f"ChannelStandardizer.set_state: expected mean and scale of shape ({n_channels},), "
                             f"got {mean.shape} and {scale.shape}")
        if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(scale)) and np.all(scale > 0)):
            raise InputError("ChannelStandardizer.set_state: mean/scale must be finite and scale > 0")
        self.min_std, self.mean_, self.scale_, self.n_channels_ = min_std, mean, scale, n_channels
        return self


# ----------------------------------------------------------------- subject splits

def _preview(values, most=10):
    """``values`` (a list) as text, the first ``most`` of them and a count of the rest."""
    shown = ", ".join(map(repr, values[:most]))
    return f"[{shown}{f', ... {len(values) - most} more' if len(values) > most else ''}]"


def subject_split(subjects, test_size=0.25, *, seed=0, test_subjects=None):
    """Split window indices so that no subject appears on both sides.

    Parameters
    ----------
    subjects : array_like of shape (N,)
        Subject of each window.
    test_size : float in (0, 1) or int
        Fraction of the subjects (rounded, at least one, at most all but one)
        or number of subjects held out.
    seed : int
        Seeds the choice of the held-out subjects.
    test_subjects : sequence, optional
        Hold out exactly these subjects instead (``test_size`` and ``seed``
        are then ignored).

    Returns
    -------
    train_index, test_index : ndarray of int64
        Sorted indices into the N windows.
    """
    subjects = np.asarray(subjects)
    if subjects.ndim != 1 or subjects.size == 0:
        raise InputError(f"subjects must be a non-empty 1-D array, got shape {subjects.shape}")
    if pd.isna(subjects).any():
        raise InputError("subjects contains missing values")
    unique = np.unique(subjects)
    if len(unique) < 2:
        raise InputError(f"a subject-wise split needs at least 2 subjects, got {len(unique)}")
    if test_subjects is not None:
        # compared value by value as given: cast to the subjects' dtype first, "S10" became "S1"
        # (a '<U2' array) and 2.7 became subject 2, and the wrong subject was held out silently
        one = isinstance(test_subjects, (str, bytes)) or np.ndim(test_subjects) == 0
        wanted = [test_subjects] if one else list(test_subjects)
        if any(isinstance(w, (list, tuple, set, dict, np.ndarray)) for w in wanted):
            raise InputError(f"test_subjects must be a subject or a flat sequence of subjects, got {test_subjects!r}")
        present = set(unique.tolist())
        unknown = list(dict.fromkeys(w for w in wanted if w not in present))
        held = np.unique(np.array([w for w in wanted if w in present], dtype=subjects.dtype))
        if len(unknown):
            raise InputError(f"test_subjects {unknown} do not occur in subjects (which hold "
                             f"{_preview(unique.tolist())})")
        if len(held) == 0 or len(held) == len(unique):
            raise InputError(f"test_subjects must hold out between 1 and {len(unique) - 1} subjects, "
                             f"got {len(held)}")
    else:
        if isinstance(test_size, bool):
            raise InputError(f"test_size must be a fraction in (0, 1) or a count, got {test_size!r}")
        if isinstance(test_size, (int, np.integer)):
            n_test = int(test_size)
        elif isinstance(test_size, (float, np.floating)) and 0 < test_size < 1:
            n_test = int(round(test_size * len(unique)))
        else:
            raise InputError(f"test_size must be a fraction in (0, 1) or a count, got {test_size!r}")
        if isinstance(test_size, (int, np.integer)) and not 1 <= n_test <= len(unique) - 1:
            raise InputError(f"test_size={n_test} subjects, but there are {len(unique)}; "
                             "at least one must stay on each side")
        n_test = min(max(n_test, 1), len(unique) - 1)
        rng = np.random.default_rng(seed)
        held = np.sort(rng.choice(unique, size=n_test, replace=False))
    is_test = np.isin(subjects, held)
    return np.flatnonzero(~is_test), np.flatnonzero(is_test)

"""Readers for the accelerometer data formats people actually have.

* :func:`read_ts` - the UEA/UCR time series archive ``.ts`` format.
* :func:`load_uci_har` - the "UCI HAR Dataset" folder (Anguita et al. 2013).
* :func:`load_wisdm` - the WISDM v1.1 raw text file (Kwapisz et al. 2010).
* :func:`load_csv` - a plain CSV recording with caller-named columns.

Array results are channels last and float32; tables are pandas DataFrames.
Every reader raises :class:`core.exceptions.DataFileNotFoundError` for a
missing path and :class:`core.exceptions.DataFormatError` (naming the file,
the line where there is one, what was expected and what was found) for
content in the wrong format. Records that are repaired or dropped are counted
in a :class:`har.DataQualityWarning`, never silently.
"""
import csv
import io
import os
import re

import numpy as np
import pandas as pd

from core.exceptions import DataFileNotFoundError, DataFormatError, InputError
from core.io import check_path
from core.utils import check_int

from ._common import TIME_UNITS as _TIME_UNITS, check_file, read_text, warn_quality

__all__ = ["read_ts", "load_uci_har", "load_wisdm", "load_csv",
           "UCI_HAR_SIGNALS", "UCI_HAR_CHANNELS"]


# --------------------------------------------------------------------------- .ts

_TS_BOOL_TAGS = ("timestamps", "missing", "univariate", "equallength")
_TS_TUPLE = re.compile(r"\(([^()]*),([^(),]*)\)")

_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}([T ]|$)")

FLOAT32_MAX = float(np.finfo(np.float32).max)
"""Largest magnitude the readers accept: values become float32, where larger ones would be inf."""


def _ts_bool(path, lineno, tag, words):
    if len(words) != 1 or words[0].lower() not in ("true", "false"):
        raise DataFormatError(
            f"{path}, line {lineno}: @{tag} expects 'true' or 'false', found {' '.join(words)!r}")
    return words[0].lower() == "true"


def _ts_int(path, lineno, tag, words):
    if len(words) != 1:
        raise DataFormatError(f"{path}, line {lineno}: @{tag} expects one integer, found {' '.join(words)!r}")
    try:
        value = int(words[0])
    except ValueError:
        raise DataFormatError(
            f"{path}, line {lineno}: @{tag} expects an integer, found {words[0]!r}") from None
    if value < 1:
        raise DataFormatError(f"{path}, line {lineno}: @{tag} must be >= 1, found {value}")
    return value


def _ts_parse_header(path, lines):
    """Parse the tags before ``@data``; return (header dict, index of first data line)."""
    header = {"problemname": None, "timestamps": False, "missing": None, "univariate": None,
              "dimensions": None, "equallength": None, "serieslength": None,
              "classlabel": None, "class_values": None, "targetlabel": None}
    for index, line in enumerate(lines):
        lineno = index + 1
        text = line.strip()
        if not text or text.startswith(("#", "%")):
            continue
        if not text.startswith("@"):
            raise DataFormatError(
                f"{path}, line {lineno}: expected a header tag (@...) or a comment (#) before @data, "
                f"found {text[:60]!r}")
        words = text.split()
        tag = words[0][1:].lower()
        args = words[1:]
        if tag == "data":
            if args:
                raise DataFormatError(f"{path}, line {lineno}: @data takes no value, found {' '.join(args)!r}")
            if header["classlabel"] is None and header["targetlabel"] is None:
                raise DataFormatError(
                    f"{path}, line {lineno}: @data reached without a @classLabel (or @targetLabel) tag; "
                    "the header must say whether each case ends with a label")
            return header, index + 1
        if tag == "problemname":
            header["problemname"] = " ".join(args)
        elif tag in _TS_BOOL_TAGS:
            header[tag] = _ts_bool(path, lineno, words[0][1:], args)
        elif tag in ("dimensions", "serieslength"):
            header[tag] = _ts_int(path, lineno, words[0][1:], args)
        elif tag == "classlabel":
            if not args or args[0].lower() not in ("true", "false"):
                raise DataFormatError(
                    f"{path}, line {lineno}: @classLabel expects 'true' followed by the class values, "
                    f"or 'false'; found {' '.join(args)!r}")
            header["classlabel"] = args[0].lower() == "true"
            if header["classlabel"]:
                if len(args) < 2:
                    raise DataFormatError(
                        f"{path}, line {lineno}: @classLabel true must list the class values, found none")
                header["class_values"] = args[1:]
            elif len(args) > 1:
                raise DataFormatError(
                    f"{path}, line {lineno}: @classLabel false takes no class values, found {' '.join(args[1:])!r}")
        elif tag == "targetlabel":
            header["targetlabel"] = _ts_bool(path, lineno, words[0][1:], args)
        else:
            # Other tags exist in the wild (e.g. @dateFormat); they do not change the data layout.
            continue
    raise DataFormatError(f"{path}: no @data line found; expected header tags then @data then one case per line")


def _split_outside_parentheses(text):
    """Split a data line on ':' except inside '(timestamp,value)' tuples (timestamps hold ':')."""
    fields, depth, start = [], 0, 0
    for i, char in enumerate(text):
        if char == "(":
            depth += 1
        elif char == ")":
            depth = max(depth - 1, 0)
        elif char == ":" and depth == 0:
            fields.append(text[start:i])
            start = i + 1
    fields.append(text[start:])
    return fields


def _ts_values(path, lineno, channel, field, timestamps):
    """Parse one channel's comma-separated values ('?' = missing) into a float64 array."""
    field = field.strip()
    if timestamps:
        pairs = _TS_TUPLE.findall(field)
        if not pairs or _TS_TUPLE.sub("", field).replace(",", "").strip():
            raise DataFormatError(
                f"{path}, line {lineno}, dimension {channel + 1}: @timeStamps is true, so expected "
                f"'(timestamp,value),(timestamp,value),...', found {field[:60]!r}")
        tokens = [value.strip() for _, value in pairs]
    else:
        if not field:
            raise DataFormatError(f"{path}, line {lineno}, dimension {channel + 1}: expected comma-separated "
                                  "values, found an empty field")
        tokens = [token.strip() for token in field.split(",")]
    try:
        values = np.array(["nan" if t == "?" else t for t in tokens], dtype=np.float64)
    except ValueError:
        values = None  # find the offending token below
    if values is None:
        values = np.empty(len(tokens), dtype=np.float64)
        for i, token in enumerate(tokens):
            if token == "?" or token.lower() == "nan":
                values[i] = np.nan
                continue
            try:
                values[i] = float(token)
            except ValueError:
                raise DataFormatError(
                    f"{path}, line {lineno}, dimension {channel + 1}, value {i + 1}: expected a number or '?', "
                    f"found {token!r}") from None
    too_big = np.abs(values) > FLOAT32_MAX  # inf, 1e999 (read as inf) and values float32 cannot hold
    if too_big.any():
        i = int(np.flatnonzero(too_big)[0])
        raise DataFormatError(
            f"{path}, line {lineno}, dimension {channel + 1}, value {i + 1}: expected a finite number within "
            f"float32 range (|x| <= {FLOAT32_MAX:.3g}) or '?' for a missing value, found "
            f"{'an infinite value' if np.isinf(values[i]) else 'a value beyond that range'}")
    return values


def read_ts(path, *, unequal="error", pad_value=np.nan, length=None, dtype=np.float32):
    """Read a UEA/UCR time series archive ``.ts`` file.

    The format: ``#`` comment lines, then header tags (``@problemName``,
    ``@timeStamps``, ``@missing``, ``@univariate``, ``@dimensions``,
    ``@equalLength``, ``@seriesLength``, ``@classLabel true <values...>`` or
    ``@classLabel false``, ``@targetLabel``), then ``@data`` and one case per
    line: the dimensions (channels) separated by ``:``, the values of one
    dimension separated by ``,``, ``?`` for a missing value, and the class
    label as the last ``:``-separated field. Tag names are case-insensitive.
    With ``@timeStamps true`` each value is written ``(timestamp,value)``;
    the timestamps are read past and only the values are returned.

    Parameters
    ----------
    path : str or os.PathLike
        The ``.ts`` file (``.ts.gz`` is read through gzip).
    unequal : {"error", "pad", "truncate"}
        What to do when series do not all have the same length (across cases
        or across the dimensions of one case): raise
        :class:`~core.exceptions.DataFormatError` (default), pad every series
        at the end to the longest length, or cut every series to the shortest.
    pad_value : float or "edge"
        Value used by ``unequal="pad"`` (and by ``length``): NaN by default,
        which marks where each series ends (``har.ActivityClassifier`` reads
        it so, and no padding enters its pooling); a constant (0.0 as Keras'
        ``pad_sequences``); or ``"edge"`` to repeat each series' last value.
    length : int, optional
        Pad (with ``pad_value``) or cut every series to ``length`` steps, so
        that a test file matches the training file:
        ``X_test, y_test = read_ts(test_path, unequal="pad", length=X_train.shape[1])``.
        Default: the longest series (``"pad"``) or the shortest
        (``"truncate"``).
    dtype : numpy dtype
        Floating dtype of ``X`` (default float32).

    Returns
    -------
    X : ndarray of shape (n_cases, steps, n_dimensions)
        Channels last; missing values (``?``) are NaN.
    y : ndarray of shape (n_cases,) or None
        Class labels as strings (``@classLabel true``), float targets
        (``@targetLabel true``), or None when the file has no labels.

    Raises
    ------
    DataFileNotFoundError
        ``path`` does not exist.
    DataFormatError
        The header or a data line is malformed, a label is not among the
        declared class values, the number of dimensions or the series length
        disagrees with the header or between cases, or series have unequal
        lengths and ``unequal="error"``. Messages give file and line.
    """
    if unequal not in ("error", "pad", "truncate"):
        raise InputError(f"unequal must be 'error', 'pad' or 'truncate', got {unequal!r}")
    if not (isinstance(pad_value, str) and pad_value == "edge"):
        try:
            pad_value = float(pad_value)
        except (TypeError, ValueError):
            raise InputError(f"pad_value must be a number or 'edge', got {pad_value!r}") from None
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise InputError(f"dtype must be a floating dtype, got {dtype}")
    if length is not None:
        length = check_int(length, "read_ts: length", minimum=1)
    path = check_file(path, ".ts file")
    lines = read_text(path).splitlines()
    header, start = _ts_parse_header(path, lines)

    labelled = bool(header["classlabel"]) or bool(header["targetlabel"])
    n_dims = header["dimensions"]
    if header["univariate"] and n_dims not in (None, 1):
        raise DataFormatError(f"{path}: header says @univariate true but @dimensions {n_dims}")
    if header["univariate"]:
        n_dims = 1
    series, labels, first_line = [], [], {}
    for index in range(start, len(lines)):
        lineno = index + 1
        text = lines[index].strip()
        if not text or text.startswith(("#", "%")):
            continue
        fields, label = _ts_fields(path, lineno, text, header, labelled)
        if labelled:
            labels.append(label)
        if n_dims is None:
            n_dims = len(fields)
            first_line["dims"] = lineno
        if len(fields) != n_dims:
            origin = ("@dimensions" if header["dimensions"] else
                      "@univariate true" if header["univariate"] else f"the first case (line {first_line['dims']})")
            raise DataFormatError(
                f"{path}, line {lineno}: expected {n_dims} dimension(s) (from {origin}), "
                f"found {len(fields)} ':'-separated series" + (" before the label" if labelled else ""))
        case = [_ts_values(path, lineno, c, field, header["timestamps"]) for c, field in enumerate(fields)]
        _ts_check_lengths(path, lineno, case, header, unequal, series, first_line)
        if not series:
            first_line["case"] = lineno
        series.append(case)
    if not series:
        raise DataFormatError(f"{path}: @data is followed by no cases")
    X = _ts_stack(path, series, n_dims, unequal, length, pad_value, dtype)
    y = None
    if labelled:
        y = np.asarray(labels, dtype=str if header["classlabel"] else np.float64)
    return X, y


def _ts_fields(path, lineno, text, header, labelled):
    """One ``.ts`` data line: its ``:``-separated series fields and its label (None without)."""
    fields = _split_outside_parentheses(text) if header["timestamps"] else text.split(":")
    if not labelled:
        return fields, None
    if len(fields) < 2:
        raise DataFormatError(f"{path}, line {lineno}: expected the series followed by ':' and a label, "
                              f"found no ':' in {text[:60]!r}")
    label = fields[-1].strip()
    if header["classlabel"]:
        class_values = header["class_values"]
        if class_values is not None and label not in class_values:
            raise DataFormatError(f"{path}, line {lineno}: class label {label!r} is not among the values declared "
                                  f"by @classLabel ({', '.join(class_values)})")
        return fields[:-1], label
    try:
        return fields[:-1], float(label)
    except ValueError:
        raise DataFormatError(f"{path}, line {lineno}: @targetLabel true, so expected a numeric target last, "
                              f"found {label!r}") from None


def _ts_check_lengths(path, lineno, case, header, unequal, series, first_line):
    """A case's series lengths against ``@seriesLength``, each other and the first case."""
    if header["serieslength"] is not None and header["equallength"] is not False:
        for c, v in enumerate(case):
            if len(v) != header["serieslength"]:
                raise DataFormatError(f"{path}, line {lineno}, dimension {c + 1}: @seriesLength is "
                                      f"{header['serieslength']}, found {len(v)} values")
    if unequal != "error":
        return
    if len({len(v) for v in case}) > 1:
        raise DataFormatError(
            f"{path}, line {lineno}: the dimensions of this case have different lengths "
            f"({', '.join(str(len(v)) for v in case)}); pass unequal='pad' or unequal='truncate' "
            "to read unequal-length series")
    if series and len(case[0]) != len(series[0][0]):
        raise DataFormatError(
            f"{path}, line {lineno}: series length {len(case[0])} differs from {len(series[0][0])} "
            f"(line {first_line['case']}); pass unequal='pad' or unequal='truncate' to read "
            "unequal-length series")


def _ts_stack(path, series, n_dims, unequal, length, pad_value, dtype):
    """The cases as one ``(n_cases, steps, n_dims)`` array, padded or cut to ``length`` (default:
    the longest series with ``"pad"``, the shortest otherwise)."""
    all_lengths = [len(v) for case in series for v in case]
    steps = max(all_lengths) if unequal == "pad" else min(all_lengths)
    if length is not None:
        steps = length
    if steps == 0:
        raise DataFormatError(f"{path}: a series has no values, so truncating would leave nothing")
    X = np.empty((len(series), steps, n_dims), dtype=dtype)
    for i, case in enumerate(series):
        for c, v in enumerate(case):
            n = min(len(v), steps)
            X[i, :n, c] = v[:n]
            if n < steps:
                X[i, n:, c] = v[-1] if pad_value == "edge" else pad_value
    return X


# ----------------------------------------------------------------------- UCI HAR

UCI_HAR_SIGNALS = ("body_acc", "body_gyro", "total_acc")
"""The three signal groups in ``Inertial Signals``, each with x, y, z files."""

UCI_HAR_CHANNELS = tuple(f"{s}_{a}" for s in UCI_HAR_SIGNALS for a in "xyz")
"""Channel order of :func:`load_uci_har`'s ``X`` with the default ``signals``."""


def _read_number_table(path, what, integer=False):
    """Read a whitespace-separated numeric table; return a 2-D array (rows, cols).

    Fast path through pandas; on any failure, a line-by-line pass finds the
    first bad line so the error names it.
    """
    text = read_text(path)
    rows = [line for line in text.splitlines()]
    # Ignore trailing blank lines only; a blank line in the middle is a real defect.
    while rows and not rows[-1].strip():
        rows.pop()
    if not rows:
        raise DataFormatError(f"{path}: {what} file is empty; expected one row of numbers per line")
    try:
        frame = pd.read_csv(io.StringIO("\n".join(rows)), sep=r"\s+", header=None,
                            dtype=np.float64, engine="c", skip_blank_lines=False)
        values = frame.to_numpy()
        if values.shape[0] == len(rows) and not np.isnan(values).any():
            if integer:
                if not np.all(values == np.round(values)):
                    raise ValueError("not integers")
                values = values.astype(np.int64)
            return values
    except (ValueError, pd.errors.ParserError):
        pass
    # Slow path: locate the first bad line.
    width = None
    for lineno, line in enumerate(rows, start=1):
        tokens = line.split()
        if not tokens:
            raise DataFormatError(f"{path}, line {lineno}: expected {what} numbers, found a blank line")
        if width is None:
            width = len(tokens)
        elif len(tokens) != width:
            raise DataFormatError(
                f"{path}, line {lineno}: expected {width} whitespace-separated values (as on line 1), "
                f"found {len(tokens)}")
        for token in tokens:
            try:
                number = float(token)
            except ValueError:
                raise DataFormatError(
                    f"{path}, line {lineno}: expected a number, found {token!r}") from None
            if not np.isfinite(number):
                raise DataFormatError(f"{path}, line {lineno}: expected a finite number, found {token!r}")
            if integer and number != round(number):
                raise DataFormatError(f"{path}, line {lineno}: expected an integer {what}, found {token!r}")
    raise DataFormatError(f"{path}: could not read the {what} table")  # pragma: no cover


def _read_activity_labels(path):
    mapping = {}
    text = read_text(path)
    for lineno, line in enumerate(text.splitlines(), start=1):
        words = line.split()
        if not words:
            continue
        if len(words) != 2:
            raise DataFormatError(
                f"{path}, line {lineno}: expected '<integer id> <ACTIVITY_NAME>', found {line.strip()!r}")
        try:
            key = int(words[0])
        except ValueError:
            raise DataFormatError(
                f"{path}, line {lineno}: expected an integer activity id first, found {words[0]!r}") from None
        if key in mapping:
            raise DataFormatError(f"{path}, line {lineno}: activity id {key} is listed twice")
        mapping[key] = words[1]
    if not mapping:
        raise DataFormatError(f"{path}: no activity labels found; expected lines '<id> <NAME>'")
    return mapping


def load_uci_har(root, split="train", *, signals=UCI_HAR_SIGNALS, dtype=np.float32):
    """Read the raw inertial windows of the "UCI HAR Dataset" folder.

    Layout read (the data set as distributed)::

        root/activity_labels.txt                 "1 WALKING" ... "6 LAYING"
        root/{split}/y_{split}.txt               one activity id per window
        root/{split}/subject_{split}.txt         one subject id per window
        root/{split}/Inertial Signals/{signal}_{axis}_{split}.txt
                                                 one window of 128 samples per line

    Files are whitespace-separated with leading spaces and numbers in
    scientific notation (``  1.8085150e-004 -1.0138560e-002 ...``); ``root``
    may also be the folder that contains ``UCI HAR Dataset``.

    Parameters
    ----------
    root : str or os.PathLike
        The ``UCI HAR Dataset`` folder.
    split : {"train", "test"}
    signals : sequence of str
        Signal groups to read, in this order, each as x, y, z channels; any of
        ``"body_acc"`` (gravity removed, in g), ``"body_gyro"`` (rad/s) and
        ``"total_acc"`` (in g). The default reads all nine channels in the
        order of :data:`har.UCI_HAR_CHANNELS`; ``("total_acc",)`` gives the
        three raw accelerometer channels.
    dtype : numpy dtype
        Floating dtype of ``X``.

    Returns
    -------
    X : ndarray of shape (n_windows, 128, 3 * len(signals))
        Channels last, float32 by default.
    y : ndarray of shape (n_windows,) of str
        Activity names from ``activity_labels.txt`` (e.g. ``"WALKING"``).
    subjects : ndarray of shape (n_windows,) of int64

    Raises
    ------
    DataFileNotFoundError
        ``root`` or one of the files is missing (the message names it).
    DataFormatError
        A file is not a table of numbers, the files disagree on the number of
        windows or of samples per window, or ``y`` holds an id missing from
        ``activity_labels.txt``.
    """
    if split not in ("train", "test"):
        raise InputError(f"split must be 'train' or 'test', got {split!r}")
    if isinstance(signals, str):
        signals = (signals,)
    signals = tuple(signals)
    bad = [s for s in signals if s not in UCI_HAR_SIGNALS]
    if bad or not signals:
        raise InputError(f"signals must be a non-empty subset of {UCI_HAR_SIGNALS}, got {signals!r}")
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise InputError(f"dtype must be a floating dtype, got {dtype}")
    root = check_path(root, "UCI HAR folder", kind="dir")
    if (not os.path.exists(os.path.join(root, "activity_labels.txt"))
            and os.path.isdir(os.path.join(root, "UCI HAR Dataset"))):
        root = os.path.join(root, "UCI HAR Dataset")

    def need(*parts):
        path = os.path.join(root, *parts)
        if not os.path.isfile(path):
            raise DataFileNotFoundError(
                f"UCI HAR Dataset file missing: {path!r} (expected the layout of the distributed "
                f"'UCI HAR Dataset' folder under {root!r})")
        return path

    labels_path = need("activity_labels.txt")
    y_path = need(split, f"y_{split}.txt")
    subject_path = need(split, f"subject_{split}.txt")
    signal_paths = [need(split, "Inertial Signals", f"{s}_{a}_{split}.txt") for s in signals for a in "xyz"]

    names = _read_activity_labels(labels_path)
    codes = _read_number_table(y_path, "activity id", integer=True)
    subjects = _read_number_table(subject_path, "subject id", integer=True)
    for table, path in ((codes, y_path), (subjects, subject_path)):
        if table.shape[1] != 1:
            raise DataFormatError(f"{path}: expected one integer per line, found {table.shape[1]} values per line")
    codes, subjects = codes[:, 0], subjects[:, 0]
    n = len(codes)
    if len(subjects) != n:
        raise DataFormatError(
            f"row counts disagree: {y_path} has {n} rows but {subject_path} has {len(subjects)}")
    unknown = sorted(set(np.unique(codes).tolist()) - set(names))
    if unknown:
        line = int(np.flatnonzero(np.isin(codes, unknown))[0]) + 1
        raise DataFormatError(
            f"{y_path}, line {line}: activity id {unknown[0]} is not listed in {labels_path} "
            f"(ids there: {sorted(names)})")

    X = None
    for c, path in enumerate(signal_paths):
        table = _read_number_table(path, "signal")
        if table.shape[0] != n:
            raise DataFormatError(
                f"row counts disagree: {path} has {table.shape[0]} rows but {y_path} has {n}")
        if X is None:
            X = np.empty((n, table.shape[1], len(signal_paths)), dtype=dtype)
            width_path = path
        elif table.shape[1] != X.shape[1]:
            raise DataFormatError(
                f"window lengths disagree: {path} has {table.shape[1]} samples per row but "
                f"{width_path} has {X.shape[1]}")
        X[:, :, c] = table
    y = np.array([names[int(code)] for code in codes], dtype=str)
    return X, y, subjects.astype(np.int64)


# ------------------------------------------------------------------------- WISDM

_WISDM_PROBLEMS = ("", "too few fields", "extra fields", "empty fields", "unparsable numbers",
                   "non-finite values", "timestamp 0")


def load_wisdm(path, *, drop_zero_timestamps=True):
    """Read the WISDM v1.1 raw accelerometer file (``WISDM_ar_v1.1_raw.txt``).

    Each record is ``user,activity,timestamp,x,y,z;`` (20 Hz phone
    accelerometer in a front trouser pocket, m/s^2 with gravity, timestamps
    in nanoseconds). The real file has defects that this reader handles:

    * the ``;`` terminator glued to ``z`` (``...,0.50395286;``), sometimes
      missing, sometimes preceded by a trailing ``,`` (``...,0.50395286,;``):
      both are accepted;
    * several records on one line (``...;33,Jogging,...;``) and blank lines:
      accepted;
    * empty fields (``...,-0.69,,;``), too few or extra fields, text where a
      number should be: the record is dropped;
    * records whose timestamp is 0 (no valid time, usually bogus values):
      dropped unless ``drop_zero_timestamps=False``.

    Dropped records are counted by reason, with the line of the first one, in
    a :class:`har.DataQualityWarning`.

    Parameters
    ----------
    path : str or os.PathLike
        The raw text file (``.gz`` is read through gzip).
    drop_zero_timestamps : bool
        Drop records whose timestamp is 0 (default True).

    Returns
    -------
    table : pandas.DataFrame
        Columns ``user`` (int64), ``activity`` (str), ``timestamp`` (int64,
        ns), ``x``, ``y``, ``z`` (float32, m/s^2), in file order. Its
        ``attrs["har"]`` names the columns for :func:`har.segment`.

    Raises
    ------
    DataFileNotFoundError, DataFormatError
        The file is missing, or it holds no valid record at all.
    """
    path = check_file(path, "WISDM file")
    # Records are ';'-terminated, but the terminator may be missing at a line end and
    # several records may share a line: split on both, remembering each record's line.
    records, record_lines = [], []
    for lineno, line in enumerate(read_text(path).splitlines(), start=1):
        if line.endswith(";") and line.count(";") == 1:  # the common case, kept fast
            records.append(line[:-1])
            record_lines.append(lineno)
            continue
        for record in line.split(";"):
            if record.strip():
                records.append(record)
                record_lines.append(lineno)
    n_records = len(records)
    if n_records == 0:
        raise DataFormatError(f"{path}: the file holds no records; expected 'user,activity,timestamp,x,y,z;' lines")
    record_lines = np.asarray(record_lines, dtype=np.int64)
    reason = np.zeros(n_records, dtype=np.int8)  # index into _WISDM_PROBLEMS, 0 = fine
    commas = np.fromiter((r.count(",") for r in records), dtype=np.int64, count=n_records)
    for i in np.flatnonzero(commas == 6):
        if records[i].rstrip().endswith(","):  # a trailing ',' after z is harmless
            records[i] = records[i].rstrip()[:-1]
            commas[i] = 5
    reason[commas < 5] = 1
    reason[commas > 5] = 2
    shaped = np.flatnonzero(commas == 5)
    columns = {}
    if len(shaped):
        frame = pd.read_csv(io.StringIO("\n".join([records[i] for i in shaped])), header=None,
                            names=["user", "activity", "timestamp", "x", "y", "z"], quoting=csv.QUOTE_NONE,
                            skipinitialspace=True, keep_default_na=False, na_values=[""],
                            dtype={"activity": str}, engine="c")
        empty = frame.isna().any(axis=1).to_numpy()
        unparsable = np.zeros(len(frame), dtype=bool)
        for name in ("user", "timestamp", "x", "y", "z"):
            column = frame[name]
            if not pd.api.types.is_numeric_dtype(column):  # text somewhere in this column
                column = pd.to_numeric(column.astype(str).str.strip(), errors="coerce")
                unparsable |= column.isna().to_numpy() & frame[name].notna().to_numpy()
            columns[name] = column.to_numpy()
        for name in ("user", "timestamp"):
            value = columns[name].astype(np.float64)
            unparsable |= np.isfinite(value) & (value != np.round(value))
        xyz = np.column_stack([columns[a].astype(np.float64) for a in "xyz"])
        infinite = np.isinf(xyz).any(axis=1)
        codes = np.where(empty, 3, np.where(unparsable, 4, np.where(infinite, 5, 0)))
        if drop_zero_timestamps:
            codes = np.where((codes == 0) & (columns["timestamp"] == 0), 6, codes)
        reason[shaped] = codes
        columns["activity"] = frame["activity"].to_numpy(dtype=object)
    problems = {}
    for code, text in enumerate(_WISDM_PROBLEMS):
        hit = np.flatnonzero(reason == code) if code else []
        if len(hit):
            problems[text] = (len(hit), int(record_lines[hit[0]]))
    detail = "; ".join(f"{count} with {text} (first on line {first})" for text, (count, first) in problems.items())
    good = reason[shaped] == 0
    if not good.any():
        raise DataFormatError(
            f"{path}: no valid WISDM record found among {n_records}" + (f" ({detail})" if detail else "")
            + "; expected records 'user,activity,timestamp,x,y,z;' "
            "(e.g. '33,Jogging,49105962326000,-0.69,12.68,0.50;')")
    if problems:
        warn_quality(f"{path}: dropped {n_records - int(good.sum())} of {n_records} WISDM records: {detail}")
    table = pd.DataFrame({
        "user": columns["user"][good].astype(np.int64),
        "activity": pd.Series(columns["activity"][good], dtype=object).str.strip().to_numpy(dtype=object),
        "timestamp": columns["timestamp"][good].astype(np.int64),
        "x": columns["x"][good].astype(np.float32),
        "y": columns["y"][good].astype(np.float32),
        "z": columns["z"][good].astype(np.float32),
    })
    table.attrs["har"] = {"axes": ["x", "y", "z"], "label": "activity", "subject": "user",
                          "time": "timestamp", "time_unit": "ns"}
    return table


# --------------------------------------------------------------------------- CSV

def load_csv(path, *, axes, time=None, label=None, subject=None, time_unit="s", sep=","):
    """Read a plain CSV recording whose columns the caller names.

    Parameters
    ----------
    path : str or os.PathLike
        CSV file with a header row (``.gz`` is read through gzip).
    axes : sequence of str
        The signal columns, in channel order (e.g. ``["ax", "ay", "az"]``).
    time : str, optional
        Timestamp column: numbers in ``time_unit``, or ISO-8601 date-times
        (``2024-05-01T12:00:00.020Z``; naive ones taken as UTC), turned into
        ``time_unit`` since 1970-01-01; needed by
        :func:`har.segment` to split at gaps and to resample.
    label : str, optional
        Activity label column.
    subject : str, optional
        Subject (person) column.
    time_unit : {"s", "ms", "us", "ns"}
        Unit of the time column (recorded for :func:`har.segment`).
    sep : str
        Field separator.

    Returns
    -------
    table : pandas.DataFrame
        The named columns only, in the order subject, time, axes..., label
        (those given). Axes are float32 (empty cells become NaN, which
        :func:`har.segment` interpolates and counts); ``attrs["har"]`` records
        which column is which, so ``har.segment(table, ...)`` needs no
        column arguments.

    Raises
    ------
    DataFileNotFoundError
        The file is missing.
    DataFormatError
        A named column is absent (the message lists those present), or a
        value in an axis or time column is not a number (file and line given).
    """
    if isinstance(axes, str) or not hasattr(axes, "__iter__"):
        raise InputError(f"axes must be a list of column names, got {axes!r}")
    axes = list(axes)
    if not axes:
        raise InputError("axes must name at least one column")
    if time_unit not in _TIME_UNITS:
        raise InputError(f"time_unit must be one of {sorted(_TIME_UNITS)}, got {time_unit!r}")
    named = [c for c in (subject, time) if c is not None] + axes + ([label] if label is not None else [])
    if len(set(named)) != len(named):
        raise InputError(f"a column is named twice among subject/time/axes/label: {named}")
    path = check_file(path, "CSV file")
    try:
        frame = pd.read_csv(io.StringIO(read_text(path)), sep=sep, dtype=str, keep_default_na=False,
                            skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise DataFormatError(f"{path}: not a readable CSV table with a header row ({err})") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    missing = [c for c in named if c not in frame.columns]
    if missing:
        raise DataFormatError(
            f"{path}: column(s) {missing} not found; the header has {list(frame.columns)}")
    out = {}

    def numeric(column, dtype):
        raw = frame[column].str.strip()
        empty = raw.eq("") | raw.str.lower().isin(["nan", "na", "?"])
        values = pd.to_numeric(raw.where(~empty, None), errors="coerce")
        bad = values.isna() & ~empty
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataFormatError(
                f"{path}, line {row + 2}: column {column!r} expected a number, found {frame[column].iloc[row]!r}")
        values = values.to_numpy(dtype=np.float64, na_value=np.nan)
        limit = FLOAT32_MAX if dtype == np.float32 else np.finfo(np.float64).max
        huge = np.abs(values) > limit  # inf, 1e999 (read as inf), or beyond what dtype holds
        if huge.any():
            row = int(np.flatnonzero(huge)[0])
            raise DataFormatError(
                f"{path}, line {row + 2}: column {column!r} expected a finite number (|x| <= {limit:.3g}), found "
                f"{'an infinite value' if np.isinf(values[row]) else 'a value beyond that range'}; empty cells, "
                "'nan' and '?' mark missing values")
        return values.astype(dtype)

    def timestamps(column):
        """Seconds: numbers in ``time_unit``, or ISO-8601 date-times (seconds since 1970-01-01 UTC)."""
        raw = frame[column].str.strip()
        first = raw[raw != ""]
        if len(first) and _ISO_DATE.match(first.iloc[0]):
            empty = raw.eq("")
            parsed = pd.to_datetime(raw.where(~empty, None), format="ISO8601", utc=True, errors="coerce")
            bad = parsed.isna() & ~empty
            if bad.any():
                row = int(np.flatnonzero(bad.to_numpy())[0])
                raise DataFormatError(f"{path}, line {row + 2}: column {column!r} holds ISO-8601 date-times "
                                      f"(line 2 does), but this one is {frame[column].iloc[row]!r}")
            ns = parsed.to_numpy(dtype="datetime64[ns]").astype(np.int64).astype(np.float64)
            ns[empty.to_numpy()] = np.nan
            return ns * 1e-9 / _TIME_UNITS[time_unit]
        return numeric(column, np.float64)

    if subject is not None:
        subj = frame[subject].str.strip()
        as_int = pd.to_numeric(subj, errors="coerce")
        out[subject] = as_int.astype(np.int64) if as_int.notna().all() and (as_int % 1 == 0).all() else subj
    if time is not None:
        out[time] = timestamps(time)
    for column in axes:
        out[column] = numeric(column, np.float32)
    if label is not None:
        lab = frame[label].str.strip()
        out[label] = lab.where(lab != "", None)
    table = pd.DataFrame(out)
    table.attrs["har"] = {"axes": axes, "label": label, "subject": subject, "time": time,
                          "time_unit": time_unit}
    return table


"""Reading a manifest: a CSV listing scans and their labels."""
import csv
import io
import os
import re
import warnings
from collections import Counter

import numpy as np

from core.exceptions import DataFileNotFoundError, DataFormatError
from core.io import check_path
from core.utils import check_int

REQUIRED_COLUMNS = ("path", "label")
OPTIONAL_COLUMNS = ("subject",)
_INT = re.compile(r"^[+-]?\d+$")


def _where(lines):
    shown = ", ".join(str(n) for n in lines[:10])
    return f"line{'s' if len(lines) > 1 else ''} {shown}{' ...' if len(lines) > 10 else ''}"


def read_manifest(csv_path, return_subjects=False, min_per_class=2, check_files=True):
    """Read a manifest CSV: one scan per row, columns ``path,label`` and optionally ``subject``.

    Column names are matched without regard to case or surrounding spaces;
    their order is free. Relative paths are taken relative to the CSV's
    folder. Labels come back as written (strings), or as ints when every label
    is an integer literal such as ``0``/``1``.

    Parameters
    ----------
    csv_path : str or os.PathLike
    return_subjects : bool
        Also return the ``subject`` column (``None`` when the CSV has none),
        e.g. as ``groups`` for a split that keeps a subject's scans together.
    min_per_class : int
        Every label must occur at least this often (default 2: a class seen
        once can be neither split nor learned, so it is treated as a mistake).
        Pass 1 to accept singletons.
    check_files : bool
        Check that every listed file exists (all missing files are reported together).
        A path may name a folder holding a DICOM series.

    Returns
    -------
    paths : list of str, (N,)
    labels : ndarray, (N,), str or int64
    subjects : ndarray of str (N,) or None, only when ``return_subjects``

    Raises
    ------
    DataFileNotFoundError
        The CSV, or any listed scan (all of them named in one message).
    DataFormatError
        Missing or unknown columns (expected and found are listed), blank
        cells (line numbers given), no rows, a label seen fewer than
        ``min_per_class`` times.
    """
    csv_path = check_path(csv_path, "manifest", kind="file")
    min_per_class = check_int(min_per_class, "min_per_class", minimum=1)
    with open(csv_path, "rb") as handle:
        raw = handle.read()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataFormatError(f"{csv_path!r} is not a UTF-8 text CSV ({exc})") from None
    rows = list(csv.reader(io.StringIO(text)))
    while rows and not any(c.strip() for c in rows[0]):
        rows.pop(0)
    if not rows:
        raise DataFormatError(f"{csv_path!r} is empty; expected a header line 'path,label[,subject]' and one row per scan")
    header = [c.strip().lower() for c in rows[0]]
    expected = REQUIRED_COLUMNS + OPTIONAL_COLUMNS
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    unknown = [c for c in header if c not in expected]
    dupes = sorted({c for c in header if header.count(c) > 1})
    if missing or unknown or dupes:
        problems = []
        if missing:
            problems.append(f"missing column(s) {missing}")
        if unknown:
            problems.append(f"unknown column(s) {unknown}")
        if dupes:
            problems.append(f"repeated column(s) {dupes}")
        raise DataFormatError(f"{csv_path!r}: {'; '.join(problems)}. Expected columns {list(REQUIRED_COLUMNS)} "
                              f"and optionally {list(OPTIONAL_COLUMNS)}; found {rows[0]}")
    col = {name: header.index(name) for name in header}
    base = os.path.dirname(os.path.abspath(csv_path))
    paths, labels, subjects, lines = [], [], [], []
    blank, ragged = {}, []
    for lineno, row in enumerate(rows[1:], start=2):
        if not any(c.strip() for c in row):
            continue
        if len(row) != len(header):
            ragged.append(lineno)
            continue
        cells = {name: row[i].strip() for name, i in col.items()}
        for name, value in cells.items():
            if not value:
                blank.setdefault(name, []).append(lineno)
        paths.append(cells["path"])
        labels.append(cells["label"])
        subjects.append(cells.get("subject"))
        lines.append(lineno)
    if ragged:
        raise DataFormatError(f"{csv_path!r}: {_where(ragged)} {'do' if len(ragged) > 1 else 'does'} not have "
                              f"{len(header)} fields like the header {rows[0]}")
    if blank:
        parts = [f"'{name}' is blank on {_where(ls)}" for name, ls in blank.items()]
        raise DataFormatError(f"{csv_path!r}: {'; '.join(parts)}")
    if not paths:
        raise DataFormatError(f"{csv_path!r} has a header but no rows; expected one row per scan")

    resolved = [os.path.normpath(p if os.path.isabs(p) else os.path.join(base, p)) for p in paths]
    if check_files:
        # a scan is a file, or a folder holding a DICOM series
        absent = [(ln, p) for ln, p in zip(lines, resolved) if not (os.path.isfile(p) or os.path.isdir(p))]
        if absent:
            listed = "\n".join(f"  line {ln}: {p}" for ln, p in absent[:50])
            more = f"\n  ... and {len(absent) - 50} more" if len(absent) > 50 else ""
            raise DataFileNotFoundError(f"{csv_path!r}: {len(absent)} of {len(paths)} listed scan(s) not found "
                                        f"(relative paths are taken from {base!r}):\n{listed}{more}")
    repeated = [p for p, k in Counter(resolved).items() if k > 1]
    if repeated:
        warnings.warn(f"{csv_path!r}: {len(repeated)} scan(s) listed more than once, e.g. {repeated[0]!r}; "
                      f"a scan on both sides of a train/test split inflates the scores", UserWarning, stacklevel=2)
    counts = Counter(labels)
    rare = {k: v for k, v in counts.items() if v < min_per_class}
    if rare:
        raise DataFormatError(f"{csv_path!r}: label(s) seen fewer than {min_per_class} times: "
                              f"{dict(sorted(rare.items()))} (all counts: {dict(sorted(counts.items()))}); a class "
                              f"needs at least {min_per_class} scans to be split and learned. Fix the label "
                              f"(a typo?) or pass min_per_class=1")
    if all(_INT.match(v) for v in labels):
        label_arr = np.array([int(v) for v in labels], dtype=np.int64)
    else:
        label_arr = np.array(labels, dtype=str)
    if not return_subjects:
        return resolved, label_arr
    subj = np.array(subjects, dtype=str) if "subject" in col else None
    return resolved, label_arr, subj

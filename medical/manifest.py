"""Reading a manifest: a CSV listing scans and their labels."""
import csv
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
_COLUMN_NAME = re.compile(r"^[\w .-]{0,40}$")
#: the longest field accepted (a path or a label), in characters
MAX_FIELD = 64 * 1024


def _where(lines):
    shown = ", ".join(str(n) for n in lines[:10])
    return f"line{'s' if len(lines) > 1 else ''} {shown}{' ...' if len(lines) > 10 else ''}"


def _shown_header(row):
    """The header's cells for a message, only when they look like column names
    (a file that is not a manifest at all must not have its content echoed)."""
    if len(row) <= 20 and all(_COLUMN_NAME.match(c) for c in row):
        return f"found {row}"
    return f"found {len(row)} field(s) that are not column names"


def _bounded_lines(handle, csv_path):
    """The lines of an open text file, refusing one longer than a manifest line
    can be (three fields of at most ``MAX_FIELD`` characters) before reading
    more of it: a file with no line breaks is never read whole."""
    limit = 3 * MAX_FIELD + 16
    for lineno, line in enumerate(iter(lambda: handle.readline(limit + 1), ""), start=1):
        if len(line) > limit:
            raise DataFormatError(f"{csv_path!r}: line {lineno} is longer than {limit:,} characters; a manifest "
                                  f"lists one scan path and label per line (each field at most {MAX_FIELD:,})")
        yield line


def _inside(path, base):
    return os.path.commonpath([path, base]) == base


def read_manifest(csv_path, return_subjects=False, min_per_class=2, check_files=True, allow_outside=False):
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
    allow_outside : bool
        Accept paths that lead outside the manifest's folder (``../other/a.nii``,
        or an absolute path elsewhere). Refused by default: a manifest that
        came from elsewhere must not make the reader open arbitrary files of
        this machine (``../../../../etc/passwd``). The check is on the path as
        written (``..`` resolved), so a symbolic link placed inside the folder
        is followed.

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
    rows, reader = [], None
    try:
        with open(csv_path, encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(_bounded_lines(handle, csv_path))
            _limit = csv.field_size_limit(MAX_FIELD)
            try:
                for row in reader:
                    rows.append(row)
            finally:
                csv.field_size_limit(_limit)
    except UnicodeDecodeError as exc:
        raise DataFormatError(f"{csv_path!r} is not a UTF-8 text CSV (undecodable byte at offset "
                              f"{exc.start} of a block)") from None
    except csv.Error as exc:
        where = f"line {reader.line_num}" if reader is not None else "its start"
        problem = ("a field longer than the limit of " f"{MAX_FIELD:,} characters" if "field larger" in str(exc)
                   else f"malformed CSV ({exc})")
        raise DataFormatError(f"{csv_path!r}: {where} holds {problem}; a manifest lists one scan path and "
                              f"label per line") from None
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
            shown = unknown if all(_COLUMN_NAME.match(c) for c in unknown) else f"{len(unknown)} field(s)"
            problems.append(f"unknown column(s) {shown}")
        if dupes:
            problems.append(f"repeated column(s) {dupes}")
        raise DataFormatError(f"{csv_path!r}: {'; '.join(problems)}. Expected columns {list(REQUIRED_COLUMNS)} "
                              f"and optionally {list(OPTIONAL_COLUMNS)}; {_shown_header(rows[0])}")
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
                              f"{len(header)} fields like the header {header}")
    if blank:
        parts = [f"'{name}' is blank on {_where(ls)}" for name, ls in blank.items()]
        raise DataFormatError(f"{csv_path!r}: {'; '.join(parts)}")
    if not paths:
        raise DataFormatError(f"{csv_path!r} has a header but no rows; expected one row per scan")

    resolved = [os.path.normpath(p if os.path.isabs(p) else os.path.join(base, p)) for p in paths]
    if not allow_outside:
        outside = [(ln, p) for ln, p, r in zip(lines, paths, resolved) if not _inside(r, base)]
        if outside:
            listed = ", ".join(f"line {ln} ({p[:100]!r})" for ln, p in outside[:5])
            raise DataFormatError(f"{csv_path!r}: {len(outside)} path(s) lead outside the manifest's folder "
                                  f"{base!r}: {listed}{' ...' if len(outside) > 5 else ''}. Scans must lie in "
                                  f"that folder or below it; if these files are meant, pass allow_outside=True "
                                  f"(--allow-outside-paths in the pipeline)")
    if check_files:
        # a scan is a file, or a folder holding a DICOM series
        absent = [(ln, p) for ln, p in zip(lines, resolved) if not (os.path.isfile(p) or os.path.isdir(p))]
        if absent:
            listed = "\n".join(f"  line {ln}: {p}" for ln, p in absent[:50])
            more = f"\n  ... and {len(absent) - 50} more" if len(absent) > 50 else ""
            raise DataFileNotFoundError(f"{csv_path!r}: {len(absent)} of {len(paths)} listed scan(s) not found "
                                        f"(relative paths are taken from {base!r}):\n{listed}{more}")
    by_path = {}
    for ln, p, label in zip(lines, resolved, labels):
        by_path.setdefault(p, []).append((ln, label))
    conflicts = [(p, seen) for p, seen in by_path.items() if len({label for _, label in seen}) > 1]
    if conflicts:
        listed = "\n".join(f"  {p}: " + ", ".join(f"line {ln} says {label!r}" for ln, label in seen[:5])
                           for p, seen in conflicts[:20])
        more = f"\n  ... and {len(conflicts) - 20} more" if len(conflicts) > 20 else ""
        raise DataFormatError(f"{csv_path!r}: {len(conflicts)} scan(s) listed with conflicting labels; a scan has "
                              f"one label. Fix or remove the wrong rows:\n{listed}{more}")
    repeated = [p for p, seen in by_path.items() if len(seen) > 1]
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

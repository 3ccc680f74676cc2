"""Writing the pipelines' output files: every file atomically, plots with Agg.

Each writer goes through :func:`core.io.atomic_write` (a temporary file in
the same folder, renamed over the target when complete), so a crash or a
kill never leaves a half-written file under the final name.
"""
import csv
import glob
import hashlib
import io
import json
import math
import os
import re

import numpy as np

from core.io import atomic_write

__all__ = ["short_hash", "slug", "write_json", "write_text", "write_csv", "write_npz", "read_npz",
           "plot_history", "plot_confusion", "history_rows", "remove_stale_temps"]


def short_hash(obj, length=10):
    """First ``length`` hex digits of the SHA-1 of ``obj`` as canonical JSON (keys sorted)."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:length]


def slug(text, max_len=40):
    """``text`` reduced to letters, digits, ``.``, ``_`` and ``-`` (for folder names)."""
    text = re.sub(r"[^A-Za-z0-9._-]+", "_", str(text)).strip("._-")
    return (text or "data")[:max_len]


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def _finite(value):
    """JSON has no NaN/inf: replace them by None (recursively)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def write_json(path, obj):
    """Write ``obj`` as indented JSON (NaN/inf written as null)."""
    text = json.dumps(_finite(json.loads(json.dumps(obj, default=_json_default))), indent=2, sort_keys=False)
    write_text(path, text + "\n")


def write_text(path, text):
    with atomic_write(path, "w") as handle:
        handle.write(text)


def write_csv(path, header, rows):
    """Write a CSV with a header line and one line per row (sequence of values)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow(["" if v is None else (f"{v:.6g}" if isinstance(v, float) else v) for v in row])
    write_text(path, buf.getvalue())


def write_npz(path, **arrays):
    """Save arrays into one ``.npz`` (no pickling: object arrays are refused).

    Written through a file object, so NumPy does not append a suffix to the
    temporary name.
    """
    for name, arr in arrays.items():
        if np.asarray(arr).dtype == object:
            raise TypeError(f"array {name!r} has dtype object, which cannot be saved without pickle")
    with atomic_write(path, "wb") as handle:
        np.savez(handle, **arrays)


def read_npz(path):
    """All arrays of a ``.npz`` as a dict (never unpickles)."""
    with np.load(path, allow_pickle=False) as data:
        return {name: data[name] for name in data.files}


def _new_figure(width, height):
    from core.plots import new_figure  # Agg, with no pyplot state and no display needed

    return new_figure(width, height)


def _save_figure(fig, path):
    from core.plots import save_figure

    save_figure(fig, path)


def history_rows(history):
    """Training history dict ``{metric: [per epoch]}`` -> (header, rows), one row per epoch."""
    names = [k for k in history if isinstance(history[k], (list, tuple))]
    n = max((len(history[k]) for k in names), default=0)
    header = ["epoch"] + names
    rows = [[i + 1] + [float(history[k][i]) if i < len(history[k]) else None for k in names] for i in range(n)]
    return header, rows


def plot_history(history, path, title):
    """Learning curves (loss; and accuracy when recorded), training and validation, as a PNG."""
    from matplotlib.ticker import MaxNLocator

    panels = [("loss", "loss")]
    if "accuracy" in history:
        panels.append(("accuracy", "accuracy"))
    fig = _new_figure(5.0 * len(panels), 3.6)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (key, label) in zip(axes, panels):
        for name, style in ((key, "-"), ("val_" + key, "--")):
            values = history.get(name)
            if values:
                epochs = np.arange(1, len(values) + 1)
                ax.plot(epochs, values, style, marker="o", markersize=3,
                        label="validation" if name.startswith("val_") else "training")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    _save_figure(fig, path)


def plot_confusion(matrix, classes, path, title):
    """Confusion matrix (rows: true class, columns: predicted) as an annotated PNG."""
    cm = np.asarray(matrix, dtype=np.int64)
    k = len(classes)
    side = min(max(3.5, 0.6 * k + 2.0), 14.0)
    fig = _new_figure(side + 1.0, side)
    ax = fig.subplots()
    image = ax.imshow(cm, cmap="Blues", vmin=0)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xticks(range(k))
    ax.set_yticks(range(k))
    ax.set_xticklabels([str(c) for c in classes], rotation=45, ha="right")
    ax.set_yticklabels([str(c) for c in classes])
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    threshold = cm.max() / 2 if cm.size and cm.max() > 0 else 0
    if k <= 30:
        for i in range(k):
            for j in range(k):
                ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=8,
                        color="white" if cm[i, j] > threshold else "black")
    ax.set_title(title)
    _save_figure(fig, path)


def calibration_table(y_true, scores, n_bins=5):
    """Reliability bins: rows ``(low, high, n, mean predicted, observed fraction positive)``."""
    y_true = np.asarray(y_true, dtype=bool)
    scores = np.asarray(scores, dtype=np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.clip(np.digitize(scores, edges[1:-1]), 0, n_bins - 1)
    rows = []
    for b in range(n_bins):
        m = which == b
        if m.any():
            rows.append((float(edges[b]), float(edges[b + 1]), int(m.sum()), float(scores[m].mean()),
                         float(y_true[m].mean())))
    return rows


def plot_calibration(y_true, scores, path, title, n_bins=5):
    """Calibration (reliability) plot: observed fraction of positives against mean predicted probability
    per probability bin, point size by the number of samples, and the diagonal of perfect calibration."""
    rows = calibration_table(y_true, scores, n_bins)
    fig = _new_figure(4.6, 4.2)
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], ":", color="grey", label="perfect calibration")
    if rows:
        n = np.array([r[2] for r in rows], dtype=np.float64)
        ax.plot([r[3] for r in rows], [r[4] for r in rows], "-", color="tab:blue")
        ax.scatter([r[3] for r in rows], [r[4] for r in rows], s=20 + 180 * n / n.max(), color="tab:blue",
                   label="test samples per bin")
    ax.set_xlabel("mean predicted probability")
    ax.set_ylabel("observed fraction positive")
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.02, 1.02)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left")
    ax.set_title(title)
    _save_figure(fig, path)


def remove_stale_temps(folder, names, before):
    """Delete temporary files left by killed writes of ``names`` in ``folder``
    (``.<name>.*.tmp``, as :func:`core.io.atomic_write` names them) that are
    older than the time ``before``; younger ones may belong to a live writer."""
    removed = []
    for name in names:
        for tmp in glob.glob(os.path.join(glob.escape(folder), "." + glob.escape(name) + ".*.tmp")):
            try:
                if os.path.getmtime(tmp) < before:
                    os.unlink(tmp)
                    removed.append(tmp)
            except OSError:
                pass
    return removed

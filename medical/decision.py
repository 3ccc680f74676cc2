"""Choosing a binary decision threshold on validation data.

A network's probabilities can rank scans well while 0.5 is the wrong place to
cut them: on scans of subjects it has not seen, every probability may move to
one side (measured on scans built from nibabel's test data: ROC AUC 0.875,
every test probability above 0.88, accuracy 0.5; there the cause was a
shortcut no threshold undoes, see the README). The threshold is therefore
chosen on held-out validation scans, by Youden's J (the point of the ROC curve
farthest above the diagonal, i.e. the largest sensitivity + specificity - 1)
or for a target sensitivity or specificity, and saved with the model.
"""
import numbers

import numpy as np
from sklearn import metrics as skm

from core.exceptions import ConfigError

RULES = ("youden", "sensitivity", "specificity")


def check_threshold(value, name="threshold"):
    """Canonical form of a ``threshold`` setting: ``None`` (argmax, i.e. 0.5),
    ``"youden"``, a number in (0, 1), or ``("sensitivity"|"specificity", target)``."""
    if value is None or (isinstance(value, str) and value == "youden"):
        return value
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        if 0 < float(value) < 1:
            return float(value)
    elif isinstance(value, (tuple, list)) and len(value) == 2 and value[0] in ("sensitivity", "specificity"):
        target = value[1]
        if isinstance(target, numbers.Real) and not isinstance(target, bool) and 0 < float(target) <= 1:
            return (value[0], float(target))
    raise ConfigError(f"{name} must be None, 'youden', a probability in (0, 1), or ('sensitivity', s) / "
                      f"('specificity', s) with s in (0, 1], got {value!r}")


def choose_threshold(y_true, scores, rule="youden"):
    """The threshold on ``scores`` (probability of the positive class) that ``rule`` picks.

    y_true: ``(N,)`` bool (positive class); scores: ``(N,)``; rule: ``"youden"``
    or ``("sensitivity"|"specificity", target)``. A scan is called positive
    when its score is ``>=`` the threshold. The threshold is put halfway
    between the validation score it needs and the next one, so that new scans
    a little off the validation scores are not decided by a hair.

    Returns ``(threshold, details)``; ``details`` holds the validation
    sensitivity and specificity at that threshold. With a single class in
    ``y_true`` no ROC curve exists: returns ``(0.5, {"reason": ...})``.
    """
    y_true = np.asarray(y_true, dtype=bool)
    scores = np.asarray(scores, dtype=np.float64)
    if y_true.all() or not y_true.any():
        return 0.5, {"reason": "the validation data hold a single class"}
    fpr, tpr, thr = skm.roc_curve(y_true, scores, drop_intermediate=False)
    # thr[0] is +inf (nothing positive); thr[k] > thr[k+1]
    lower = np.append(thr[1:], -np.inf)
    if rule == "youden":
        j = tpr - fpr
        best = np.flatnonzero(np.isclose(j, j.max()))
    else:
        kind, target = rule
        if kind == "sensitivity":
            ok = np.flatnonzero(tpr >= target - 1e-12)
            best = ok[:1]                                    # the highest threshold reaching the target
        else:
            ok = np.flatnonzero(1 - fpr >= target - 1e-12)
            best = ok[-1:]                                   # the lowest threshold keeping the specificity
    hi = float(np.max(thr[best]))
    lo = float(np.min(lower[best]))
    hi = min(hi, 1.0)
    lo = max(lo, 0.0) if np.isfinite(lo) else max(0.0, hi - 0.05)
    t = 0.5 * (hi + lo)
    pred = scores >= t
    sens = float((pred & y_true).sum() / y_true.sum())
    spec = float((~pred & ~y_true).sum() / (~y_true).sum())
    return float(t), {"val_sensitivity": sens, "val_specificity": spec}

"""Subject-wise cross-validation: no person's windows on both sides of a split.

Windows of one person are alike (gait, phone placement), so a split that puts
some of a subject's windows in training and others in testing measures
memory of that person, not recognition of an activity. :func:`cross_validate`
holds out whole groups (subjects), and passes the training groups on to
``fit``, so the classifier's own inner validation split is by subject too.

The pieces (:func:`group_folds`, :func:`run_fold`, :func:`summarize`) are
public so that a pipeline can run each fold as its own task.
"""
import numpy as np
from sklearn.base import clone
from sklearn.model_selection import GroupKFold, LeaveOneGroupOut

from core.exceptions import InputError, ShapeError
from core.utils import check_int

__all__ = ["cross_validate", "group_folds", "run_fold", "summarize"]


def group_folds(y, groups, cv="loso"):
    """``[(train_index, test_index), ...]``: folds that keep each group on one side.

    Parameters
    ----------
    y : array_like (N,)
    groups : array_like (N,)
        Subject (or recording) of each window.
    cv : "loso" or int
        ``"loso"``: leave one subject out (one fold per group); an int ``k``:
        ``k`` folds of whole groups (scikit-learn's ``GroupKFold``).
    """
    y = np.asarray(y)
    groups = np.asarray(groups)
    if groups.ndim != 1 or len(groups) != len(y):
        raise ShapeError(f"groups must be 1-D with one entry per sample ({len(y)}), found shape {groups.shape}")
    n_groups = len(np.unique(groups))
    if n_groups < 2:
        raise InputError(f"cross-validation by group needs at least 2 groups, found {n_groups}")
    if cv == "loso":
        splitter = LeaveOneGroupOut()
    else:
        if isinstance(cv, str):
            raise InputError(f"cv must be 'loso' or a number of folds, found {cv!r}")
        k = check_int(cv, "cv", minimum=2)
        if k > n_groups:
            raise InputError(f"cv={k} folds need at least {k} groups, found {n_groups}")
        splitter = GroupKFold(n_splits=k)
    return [(tr, te) for tr, te in splitter.split(np.zeros(len(y)), y, groups)]


def run_fold(estimator, X, y, groups, train, test):
    """Fit a fresh clone of ``estimator`` on ``train`` (with its groups) and evaluate it on ``test``.

    Returns ``(report, fitted)``: the estimator's ``evaluate`` report plus
    ``test_groups``, ``n_train`` and ``n_test``; and the fitted clone.
    """
    X = np.asarray(X) if not hasattr(X, "shape") else X
    y, groups = np.asarray(y), np.asarray(groups)
    fitted = clone(estimator).fit(X[train], y[train], groups=groups[train])
    report = fitted.evaluate(X[test], y[test])
    report.update(test_groups=[_native(g) for g in np.unique(groups[test])], n_train=int(len(train)),
                  n_test=int(len(test)))
    return report, fitted


def _native(v):
    return v.item() if isinstance(v, np.generic) else v


def summarize(reports, classes=None):
    """Mean and standard deviation of accuracy and macro-F1 over fold reports, and
    the confusion matrix summed over folds (rows true, columns predicted, in ``classes`` order)."""
    if not reports:
        raise InputError("summarize needs at least one fold report")
    if classes is None:
        classes = sorted({c for r in reports for c in r["classes"]}, key=str)
    index = {str(c): i for i, c in enumerate(classes)}
    total = np.zeros((len(classes), len(classes)), dtype=np.int64)
    for r in reports:
        pos = [index[str(c)] for c in r["classes"]]
        total[np.ix_(pos, pos)] += np.asarray(r["confusion_matrix"], dtype=np.int64)
    acc = np.array([r["accuracy"] for r in reports])
    f1 = np.array([r["macro_f1"] for r in reports])
    return {"accuracy": float(acc.mean()), "accuracy_std": float(acc.std()), "macro_f1": float(f1.mean()),
            "macro_f1_std": float(f1.std()), "confusion_matrix": total.tolist(), "classes": list(classes),
            "n_folds": len(reports), "pooled_accuracy": float(np.trace(total) / max(total.sum(), 1))}


def cross_validate(estimator, X, y, groups, cv="loso", return_estimators=False):
    """Cross-validate ``estimator`` by subject.

    Parameters
    ----------
    estimator : a domain classifier (e.g. ``har.ActivityClassifier``), not fitted; each fold fits a clone.
    X, y : the windows and their labels.
    groups : array_like (N,)
        Subject of each window. Test folds hold whole subjects, and the
        training subjects reach ``fit(..., groups=...)`` so the inner
        validation split (``validation_split > 0``) is by subject as well.
    cv : "loso" or int
        Leave one subject out, or k folds of whole subjects.
    return_estimators : bool
        Also return the fitted clone of each fold (under ``"estimators"``).

    Returns
    -------
    dict
        ``"folds"``: one report per fold (accuracy, macro_f1, confusion_matrix,
        classes, test_groups, n_train, n_test, ...); ``"mean"``: the
        :func:`summarize` of them; ``"cv"``.
    """
    y = np.asarray(y)
    if len(X) != len(y):
        raise ShapeError(f"X has {len(X)} samples but y has {len(y)} labels")
    folds = group_folds(y, groups, cv)
    reports, fitted = [], []
    for train, test in folds:
        report, est = run_fold(estimator, X, y, groups, train, test)
        reports.append(report)
        if return_estimators:
            fitted.append(est)
    classes = [_native(c) for c in np.unique(y)]
    out = {"cv": cv, "folds": reports, "mean": summarize(reports, classes)}
    if return_estimators:
        out["estimators"] = fitted
    return out

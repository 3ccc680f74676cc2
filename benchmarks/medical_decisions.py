"""Decisions on unseen subjects: accuracy and ROC AUC of ScanClassifier on volumes built from the real
scans shipping with nibabel (tests/medical/real_scans.py), split by subject (two test subjects per split).

    PYTHONPATH=$PWD python benchmarks/medical_decisions.py [variant ...] [--data-seed S] [--amplitude A]

Prints one line per variant: mean (min-max) test accuracy and AUC over the splits, and the mean
threshold. Bounded: 16^3 volumes, 28 scans, a few seconds per fit.
"""
import itertools
import sys
import time

import numpy as np

sys.path.insert(0, "tests/medical")
from real_scans import lesion_set  # noqa: E402

import medical  # noqa: E402

VARIANTS = {
    "minmax (the default)": dict(),
    "zscore (the old default)": dict(normalize="zscore"),
    "percentile": dict(normalize="percentile"),
    "old: no validation, argmax": dict(validation_split=0.0, threshold=None),
    "no validation, youden (=0.5)": dict(validation_split=0.0),
    "val 0.25 by subject, argmax": dict(validation_split=0.25, threshold=None),
    "val 0.25 by subject, youden": dict(validation_split=0.25),
    "val 0.25, no stopping, argmax": dict(validation_split=0.25, early_stopping=False, threshold=None),
    "val 0.25, no stopping, youden": dict(validation_split=0.25, early_stopping=False),
    "val 0.25, no stopping, youden, gain+noise": dict(validation_split=0.25, early_stopping=False,
                                                     augment={"gain": 0.3, "noise": 0.1}),
    "gain 0.3 + noise 0.1": dict(validation_split=0.0, augment={"gain": 0.3, "noise": 0.1}),
    "threshold_cv 5 (by subject)": dict(validation_split=0.0, threshold_cv=5),
    "pooling average": dict(validation_split=0.0, pooling="average"),
    "epochs 10": dict(validation_split=0.0, epochs=10),
    "+ shift 2": dict(validation_split=0.0, augment={"shift": 2}),
    "+ flip (1, 2)": dict(validation_split=0.0, augment={"flip": (1, 2)}),
    "+ rotate 10": dict(validation_split=0.0, augment={"rotate": 10}),
    "+ scale 0.1": dict(validation_split=0.0, augment={"scale": 0.1}),
    "+ gain 0.3": dict(validation_split=0.0, augment={"gain": 0.3}),
    "+ gamma 0.3": dict(validation_split=0.0, augment={"gamma": 0.3}),
    "+ noise 0.1": dict(validation_split=0.0, augment={"noise": 0.1}),
}


def run(names, n_splits=6, seeds=(0,), data_seed=0, amplitude=1.0):
    X, y, s = lesion_set(seed=data_seed, amplitude=amplitude)
    subjects = np.unique(s)
    pairs = list(itertools.combinations(range(len(subjects)), 2))
    rng = np.random.default_rng(0)
    chosen = [pairs[i] for i in rng.choice(len(pairs), n_splits, replace=False)]
    for name in names:
        acc, auc, thr, t0 = [], [], [], time.time()
        for pair, seed in itertools.product(chosen, seeds):
            te = np.isin(s, subjects[list(pair)])
            clf = medical.ScanClassifier(shape=(16, 16, 16), seed=seed, **VARIANTS[name])
            clf.fit(X[~te], y[~te], groups=s[~te])
            r = clf.evaluate(X[te], y[te])
            acc.append(r["accuracy"])
            auc.append(r["roc_auc"])
            thr.append(r.get("threshold", 0.5))
        print(f"{name:32s} acc {np.mean(acc):.3f} ({min(acc):.2f}-{max(acc):.2f})  auc {np.mean(auc):.3f} "
              f"({min(auc):.2f}-{max(auc):.2f})  threshold {np.mean(thr):.2f}  [{len(acc)} fits, "
              f"{time.time() - t0:.0f} s]", flush=True)


if __name__ == "__main__":
    import argparse

    p = argparse.ArgumentParser(description="ScanClassifier decisions on unseen subjects (real scans)")
    p.add_argument("variants", nargs="*", help=f"variant names (default: all): {list(VARIANTS)}")
    p.add_argument("--data-seed", type=int, default=0, help="seed of the gain, noise and blob draws")
    p.add_argument("--amplitude", type=float, default=1.0, help="blob peak / brightest anatomy voxel")
    a = p.parse_args()
    run(a.variants or list(VARIANTS), data_seed=a.data_seed, amplitude=a.amplitude)

"""``python -m benchmarks.archive --root DIR``: the default ``har.ActivityClassifier`` on UCR/UEA problems.

Finds every ``NAME_TRAIN.ts`` / ``NAME_TEST.ts`` pair under ``DIR`` (the
archive layout, or aeon's ``aeon/datasets/data`` folder from its wheel:
``pip download --no-deps aeon`` and unzip), fits
``har.ActivityClassifier(seed=0)`` with its default settings on the
archive's train split and prints test accuracy, fit wall time and CPU time
next to published deep-learning accuracies (``benchmarks/published_tsc.csv``,
with sources). Unequal-length problems are read NaN-padded, the test file to
the training length. Problems with regression targets are skipped. Not part
of the test suite.
"""
import argparse
import csv
import glob
import json
import os
import sys
import time
import warnings

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def published(path=os.path.join(HERE, "published_tsc.csv")):
    """``{problem: {network: (accuracy on the archive split, mean accuracy over resamples)}}`` (NaN if not given)."""
    out = {}
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            out.setdefault(row["problem"], {})[row["network"]] = (float(row["accuracy_split0"] or "nan"),
                                                                 float(row["accuracy_mean"] or "nan"))
    return out


def problems(root):
    found = []
    for train in sorted(glob.glob(os.path.join(root, "**", "*_TRAIN.ts"), recursive=True)):
        test = train[:-len("_TRAIN.ts")] + "_TEST.ts"
        if os.path.exists(test):
            found.append((os.path.basename(train)[:-len("_TRAIN.ts")], train, test))
    return found


def run_one(name, train, test, pad_value=np.nan, **settings):
    import har
    Xtr, ytr = har.read_ts(train, unequal="pad", pad_value=pad_value)
    Xte, yte = har.read_ts(test, unequal="pad", length=Xtr.shape[1], pad_value=pad_value)
    if ytr is None or ytr.dtype.kind == "f":
        return None
    clf = har.ActivityClassifier(seed=0, **settings)
    wall, cpu = time.perf_counter(), time.process_time()
    clf.fit(Xtr, ytr)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    acc = clf.score(Xte, yte)
    return {"problem": name, "shape": f"{len(Xtr)}x{Xtr.shape[1]}x{Xtr.shape[2]}", "n_test": len(Xte),
            "classes": len(np.unique(ytr)), "accuracy": round(float(acc), 4), "fit_s": round(wall, 1),
            "cpu_s": round(cpu, 1), "epochs": clf.epochs_trained_, "normalize": clf.normalize_}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--root", required=True, help="folder holding NAME_TRAIN.ts / NAME_TEST.ts files")
    p.add_argument("--only", action="append", help="run only this problem (repeatable)")
    p.add_argument("--skip", action="append", default=[], help="skip this problem (repeatable)")
    p.add_argument("--settings", default="{}", help="JSON of ActivityClassifier settings (default: none)")
    p.add_argument("--pad-value", type=float, default=float("nan"),
                   help="pad unequal-length series with this value instead of NaN (NaN: the classifier "
                        "stretches each series to the common length; a number: padding enters the network)")
    p.add_argument("--out", help="also write the rows to this CSV")
    args = p.parse_args(argv)
    settings = json.loads(args.settings)
    refs = published()
    rows = []
    print(f"{'problem':24s} {'train':>12s} {'acc':>6s} {'ResNet':>7s} {'Incep.':>7s} {'fit s':>6s} {'cpu s':>6s} "
          f"{'epochs':>6s}", flush=True)
    for name, train, test in problems(args.root):
        if (args.only and name not in args.only) or name in args.skip:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            row = run_one(name, train, test, pad_value=args.pad_value, **settings)
        if row is None:
            print(f"{name:24s} skipped: no class labels (regression or unlabelled)", flush=True)
            continue
        ref = refs.get(name, {})
        row["resnet"] = ref.get("ResNet", (np.nan, np.nan))[1]
        row["inception"] = ref.get("InceptionTime", (np.nan, np.nan))[1]
        rows.append(row)
        print(f"{name:24s} {row['shape']:>12s} {row['accuracy']:6.3f} {row['resnet']:7.3f} {row['inception']:7.3f} "
              f"{row['fit_s']:6.1f} {row['cpu_s']:6.1f} {row['epochs']:6d}", flush=True)
    both = [r for r in rows if not np.isnan(r["resnet"])]
    if both:
        print(f"mean over {len(both)} problems with a published ResNet: ours "
              f"{np.mean([r['accuracy'] for r in both]):.3f}, ResNet {np.mean([r['resnet'] for r in both]):.3f}")
    if args.out and rows:
        with open(args.out, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())

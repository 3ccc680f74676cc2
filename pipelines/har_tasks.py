"""Activity recognition pipeline: PrepareHAR -> TrainHAR -> EvaluateHAR, and SweepHAR.

Sources (``--source``; ``--format auto`` tells them apart):

* none: ``har.make_synthetic`` (simulated waist accelerometer, several
  subjects; ``--synthetic-subjects``, ``--synthetic-windows``, ``--window``);
* ``uci-har``: the "UCI HAR Dataset" folder (both its train and test parts
  are read, then split again by subject with ``--test-size``);
* ``wisdm``: the WISDM v1.1 raw text file, cut into windows of ``--window``
  samples every ``--step`` (optionally resampled to ``--target-rate`` Hz);
* ``ts``: a UEA/UCR ``.ts`` archive file (fixed-length series);
* ``csv``: a CSV recording; columns found by name (``activity``/``label``,
  ``subject``/``user``, ``timestamp``/``time``, the other numeric columns
  as axes) or given with ``--label-column``, ``--subject-column``,
  ``--time-column``, ``--axes``.

Where subjects are known the test split holds out whole subjects
(``har.subject_split``); otherwise it is stratified by class.
"""
import gzip
import json
import os
import re
import time
import zlib

import luigi
import numpy as np

import har
from core.exceptions import ConfigError, DataFileNotFoundError, DataFormatError
from core.filecheck import PEEK_BYTES, peek, regular_file

from har.evaluation import run_fold, summarize

from .base import (DataParams, EvaluateBase, PrepareBase, SweepBase, TrainBase, TrainParams, _Outputs,
                   classifier_defaults, stratified_split, subsample)
from .outputs import _new_figure, _save_figure, read_npz, slug, write_csv, write_json
from .params import AutoIntParameter, FloatParameter, IntParameter

__all__ = ["PrepareHAR", "TrainHAR", "EvaluateHAR", "SweepHAR", "CrossValidateHAR", "CrossValidateFoldHAR"]

FORMATS = ("auto", "uci-har", "wisdm", "ts", "csv")
_WISDM_RECORD = re.compile(r"^\s*\d+\s*,\s*[A-Za-z][A-Za-z_ ]*\s*,\s*-?\d+\s*,")
_LABEL_NAMES = ("activity", "label", "class", "activity_label")
_SUBJECT_NAMES = ("subject", "user", "subject_id", "user_id", "participant")
_TIME_NAMES = ("timestamp", "time", "t", "time_s")
_DEFAULTS = classifier_defaults(har.ActivityClassifier)


def _head_lines(path, n=20):
    """First ``n`` non-blank lines of a text file (gzip read through), from at most
    ``core.filecheck.PEEK_BYTES`` bytes of it (decompressed): a peek never grows."""
    regular_file(path, "--source")
    gz = peek(path, 2) == b"\x1f\x8b"
    try:
        if gz:
            with gzip.open(path, "rb") as handle:
                head = handle.read(PEEK_BYTES)
        else:
            head = peek(path)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataFormatError(f"--source {path!r} could not be read as {'gzip ' if gz else ''}text "
                              f"({type(exc).__name__})") from None
    lines = []
    for raw in head.splitlines():
        text = raw.decode("utf-8", errors="replace").strip()
        if text:
            lines.append(text)
        if len(lines) >= n:
            break
    return lines


def detect_format(path):
    """The HAR format of an existing path: ``uci-har``, ``wisdm``, ``ts`` or ``csv``."""
    if not os.path.exists(path):
        raise DataFileNotFoundError(f"--source {path!r} does not exist; expected a 'UCI HAR Dataset' folder, a "
                                    f"WISDM raw .txt file, a .ts file or a .csv recording")
    if os.path.isdir(path):
        if (os.path.isfile(os.path.join(path, "activity_labels.txt"))
                or os.path.isdir(os.path.join(path, "UCI HAR Dataset"))):
            return "uci-har"
        raise DataFormatError(f"--source {path!r} is a folder but not a 'UCI HAR Dataset' folder (no "
                              f"activity_labels.txt in it); give a UCI HAR folder, or a file (.txt WISDM, .ts, "
                              f".csv)")
    regular_file(path, "--source")
    name = path.lower()[:-3] if path.lower().endswith(".gz") else path.lower()
    if name.endswith(".ts"):
        return "ts"
    if name.endswith(".csv"):
        return "csv"
    lines = _head_lines(path)
    if lines and all(line.startswith(("#", "@")) for line in lines[:3]):
        return "ts"
    if lines and _WISDM_RECORD.match(lines[0]):
        return "wisdm"
    if lines and "," in lines[0] and re.search(r"[A-Za-z]", lines[0]) and len(lines) > 1:
        return "csv"
    first = f"its first line has {len(lines[0])} characters" if lines else "it is empty"
    raise DataFormatError(f"--source {path!r}: cannot tell its format from the name or content ({first}); "
                          f"expected a WISDM raw file ('user,activity,timestamp,x,y,z;'), a .ts "
                          f"file, a CSV with a header, or a 'UCI HAR Dataset' folder. Name it with --format")


def _csv_columns(path, given):
    """Resolve CSV column names: ``given`` wins; others found by their usual names."""
    import pandas as pd

    try:
        with open(path, "rb") as handle:
            gz = handle.read(2) == b"\x1f\x8b"
        sample = pd.read_csv(path, nrows=200, compression="gzip" if gz else None, skipinitialspace=True)
    except (ValueError, OSError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise DataFormatError(f"--source {path!r}: not a readable CSV table with a header row ({exc})") from None
    columns = [str(c).strip() for c in sample.columns]
    lower = {c.lower(): c for c in columns}

    def find(option, names):
        value = given.get(option)
        if value:
            return value
        return next((lower[n] for n in names if n in lower), None)

    label = find("label", _LABEL_NAMES)
    if label is None:
        raise DataFormatError(f"--source {path!r}: no label column found among {columns}; expected one named "
                              f"{list(_LABEL_NAMES)}, or name it with --label-column")
    subject = find("subject", _SUBJECT_NAMES)
    time = find("time", _TIME_NAMES)
    axes = given.get("axes")
    if not axes:
        sample.columns = columns
        taken = {label, subject, time}
        axes = [c for c in columns if c not in taken and pd.api.types.is_numeric_dtype(sample[c])]
        if not axes:
            raise DataFormatError(f"--source {path!r}: no numeric signal column found among {columns}; "
                                  f"name them with --axes")
    return {"axes": list(axes), "label": label, "subject": subject, "time": time}


class HARData(DataParams):
    domain = "har"
    embedded_name = "synthetic"
    embedded_description = "simulated accelerometer windows (har.make_synthetic)"

    format = luigi.ChoiceParameter(choices=FORMATS, default="auto",
                                   description="auto, uci-har (folder), wisdm (raw .txt), ts, csv")
    window = IntParameter(default=128, description="Samples per window (synthetic, WISDM and CSV sources)")
    step = IntParameter(default=64, description="Hop between windows in samples (WISDM and CSV sources)")
    target_rate = luigi.OptionalFloatParameter(default=None,
                                               description="Resample WISDM/CSV recordings to this rate in Hz")
    synthetic_subjects = IntParameter(default=12, description="Simulated subjects (embedded data)")
    synthetic_windows = IntParameter(default=32,
                                     description="Windows per subject and activity (embedded data)")
    axes = luigi.OptionalParameter(default=None, description="CSV: signal columns, comma-separated")
    label_column = luigi.OptionalParameter(default=None, description="CSV: the activity label column")
    subject_column = luigi.OptionalParameter(default=None, description="CSV: the subject column")
    time_column = luigi.OptionalParameter(default=None, description="CSV: the timestamp column")
    time_unit = luigi.ChoiceParameter(choices=("s", "ms", "us", "ns"), default="s",
                                      description="CSV: unit of the timestamp column")

    def domain_data_key(self):
        if self.source is None:
            return {"window": self.window, "synthetic_subjects": self.synthetic_subjects,
                    "synthetic_windows": self.synthetic_windows}
        return {"window": self.window, "step": self.step, "target_rate": self.target_rate,
                "csv": [self.axes, self.label_column, self.subject_column, self.time_column, self.time_unit]}

    def data_label(self):
        label = super().data_label()
        if self.source is None:
            return f"{label}-w{self.window}"
        return f"{label}-w{self.window}-s{self.step}"

    def load_source(self):
        if self.source is None:
            X, y, subjects = har.make_synthetic(seed=self.data_seed, n_subjects=self.synthetic_subjects,
                                                windows_per_activity=self.synthetic_windows, window=self.window)
            fmt, info = "embedded", {"n_subjects": self.synthetic_subjects, "rate_hz": 50.0}
        else:
            fmt = detect_format(self.source) if self.format == "auto" else self.format
            if not os.path.exists(self.source):
                raise DataFileNotFoundError(f"--source {self.source!r} does not exist")
            X, y, subjects, info = getattr(self, "_read_" + fmt.replace("-", "_"))(self.source)
        keep = subsample(y, self.max_samples, self.data_seed)
        X, y = X[keep], y[keep]
        subjects = subjects[keep] if subjects is not None else None
        info["channels"] = int(X.shape[2])
        info["steps"] = int(X.shape[1])
        return {"X": X, "y": y, "groups": subjects, "format": fmt, "info": info}

    def _read_uci_har(self, path):
        parts = []
        for split in ("train", "test"):
            try:
                parts.append(har.load_uci_har(path, split=split))
            except DataFileNotFoundError:
                if split == "train":
                    raise
        X = np.concatenate([p[0] for p in parts])
        y = np.concatenate([p[1] for p in parts])
        subjects = np.concatenate([p[2] for p in parts])
        return X, y, subjects, {"parts_read": ["train", "test"][:len(parts)],
                                "note": "UCI HAR windows are 128 samples; --window/--step do not apply"}

    def _read_wisdm(self, path):
        table = har.load_wisdm(path)
        X, y, subjects = har.segment(table, self.window, self.step, target_rate=self.target_rate)
        return X, y, subjects, {"records": int(len(table))}

    def _read_ts(self, path):
        X, y = har.read_ts(path)
        return X, y, None, {"note": ".ts series are used whole; --window/--step do not apply"}

    def _read_csv(self, path):
        given = {"axes": [a.strip() for a in self.axes.split(",") if a.strip()] if self.axes else None,
                 "label": self.label_column, "subject": self.subject_column, "time": self.time_column}
        cols = _csv_columns(path, given)
        table = har.load_csv(path, axes=cols["axes"], time=cols["time"], label=cols["label"],
                             subject=cols["subject"], time_unit=self.time_unit)
        X, y, subjects = har.segment(table, self.window, self.step, target_rate=self.target_rate)
        return X, y, subjects, {"columns": cols, "rows": int(len(table))}


class HARTrainParams(TrainParams):
    epochs = AutoIntParameter(default=_DEFAULTS["epochs"],
                              description="Passes over the data, or 'auto' (scaled to the data; see har/README.md)")
    batch_size = AutoIntParameter(default=_DEFAULTS["batch_size"],
                                  description="Samples per step, or 'auto'")
    learning_rate = FloatParameter(default=_DEFAULTS["learning_rate"], description="Adam's learning rate")
    patience = AutoIntParameter(default=_DEFAULTS["patience"],
                                description="Epochs without a lower training loss before the learning rate "
                                            "halves, or 'auto'")
    validation_split = FloatParameter(default=_DEFAULTS["validation_split"],
                                      description="Fraction of the training subjects used to pick the "
                                                  "best epoch (0: the training loss picks)")

    augment = luigi.Parameter(default=str(_DEFAULTS["augment"]),
                              description="auto (rotations and gains for sensor triples), true or false")
    sensor_axes = luigi.Parameter(default="auto", description="auto (rotate triples when one measures gravity), "
                                                              "triples (channels are x, y, z of sensors) or none")
    normalize = luigi.Parameter(default=_DEFAULTS["normalize"], description="auto, series or channel")

    def classifier_class(self):
        return har.ActivityClassifier

    def _augment_value(self):
        value = str(self.augment).strip().lower()
        if value not in ("auto", "true", "false"):
            raise ConfigError(f"--augment must be auto, true or false, got {self.augment!r}")
        return "auto" if value == "auto" else value == "true"

    def domain_classifier_kwargs(self):
        axes = str(self.sensor_axes).strip().lower()
        return {"augment": self._augment_value(), "sensor_axes": None if axes in ("", "none") else axes,
                "normalize": self.normalize}

    def domain_train_key(self):
        return {"augment": str(self.augment), "sensor_axes": self.sensor_axes, "normalize": self.normalize}

    minimum_settings = {"epochs": 1, "batch_size": 1, "patience": 0}

    def check_train_params(self):
        super().check_train_params()
        self._augment_value()


class PrepareHAR(HARData, PrepareBase):
    """Read accelerometer data, window it, split by subject, write ``prepared.npz`` + ``prepared.json``."""

    def split(self, y, groups):
        if groups is not None and len(np.unique(groups)) >= 2:
            train, test = har.subject_split(groups, test_size=self.test_size, seed=self.data_seed)
            return train, test, "by subject (har.subject_split: no subject on both sides)"
        train, test = stratified_split(y, self.test_size, self.data_seed)
        return train, test, "stratified by class (subjects unknown)"


class TrainHAR(HARData, HARTrainParams, TrainBase):
    """Train ``har.ActivityClassifier`` on the prepared training windows (validation split by subject)."""

    prepare_class = PrepareHAR


class EvaluateHAR(HARData, HARTrainParams, EvaluateBase):
    """Evaluate the activity classifier on the held-out subjects."""

    train_class = TrainHAR


class SweepHAR(HARData, HARTrainParams, SweepBase):
    """Independent TrainHAR/EvaluateHAR runs over ``--learning-rates`` x ``--seeds``; ``leaderboard.csv``."""

    evaluate_class = EvaluateHAR


# ------------------------------------------------------------ cross-validation

class _CVParams:
    cv = luigi.Parameter(default="loso", description="'loso' (leave one subject out) or a number of subject folds")

    def cv_value(self):
        text = str(self.cv).strip().lower()
        if text == "loso":
            return "loso"
        try:
            return int(text)
        except ValueError:
            raise ConfigError(f"--cv must be 'loso' or a number of folds, got {self.cv!r}") from None

    def cv_folder(self):
        return os.path.join(self.run_folder(), f"cv-{slug(str(self.cv_value()), 10)}")

    def all_windows(self, prepared_path):
        """Train and test windows of the prepared data together, with their subjects (cross-validation
        uses every subject in turn)."""
        arrays = read_npz(prepared_path)
        if "groups_train" not in arrays:
            raise ConfigError("cross-validation by subject needs subject ids; this source has none "
                              "(use the synthetic data, UCI HAR, WISDM, or a CSV with a subject column)")
        X = np.concatenate([arrays["X_train"], arrays["X_test"]])
        y = np.concatenate([arrays["y_train"], arrays["y_test"]])
        groups = np.concatenate([arrays["groups_train"], arrays["groups_test"]])
        return X, y, groups


class CrossValidateFoldHAR(_Outputs, HARData, HARTrainParams, _CVParams, luigi.Task):
    """One fold of :class:`CrossValidateHAR`: fit on the other subjects, evaluate on this fold's; ``fold.json``."""

    fold = IntParameter(description="Fold number (0-based)")
    output_names = ("fold.json",)

    def output_folder(self):
        return os.path.join(self.cv_folder(), f"fold-{self.fold:03d}")

    def requires(self):
        return self.clone(PrepareHAR)

    def run(self):
        started = time.time()
        self.check_train_params()
        X, y, groups = self.all_windows(self.input()["prepared.npz"].path)
        folds = har.group_folds(y, groups, self.cv_value())
        if not 0 <= self.fold < len(folds):
            raise ConfigError(f"--fold must be in [0, {len(folds)}), got {self.fold}")
        train, test = folds[self.fold]
        t0 = time.perf_counter()
        report, _ = run_fold(har.ActivityClassifier(**self.classifier_kwargs()), X, y, groups, train, test)
        report["fit_and_evaluate_seconds"] = time.perf_counter() - t0
        report["fold"] = self.fold
        write_json(self.path("fold.json"), report)
        self._clean_temps(started)


class CrossValidateHAR(_Outputs, HARData, HARTrainParams, _CVParams, luigi.Task):
    """Subject-wise cross-validation, one :class:`CrossValidateFoldHAR` task per fold (they run in parallel
    under ``--workers N``); writes ``folds.csv``, ``cv_accuracy.png`` and ``summary.json`` (last)."""

    output_names = ("folds.csv", "cv_accuracy.png", "summary.json")

    def output_folder(self):
        return self.cv_folder()

    def requires(self):
        return self.clone(PrepareHAR)

    def run(self):
        started = time.time()
        self.check_train_params()
        _, y, groups = self.all_windows(self.input()["prepared.npz"].path)
        n_folds = len(har.group_folds(y, groups, self.cv_value()))
        fold_tasks = [self.clone(CrossValidateFoldHAR, fold=i) for i in range(n_folds)]
        yield fold_tasks  # dynamic dependencies: the scheduler runs the folds, in parallel with several workers
        reports = []
        for task in fold_tasks:
            with open(task.output()["fold.json"].path) as handle:
                reports.append(json.load(handle))
        summary = summarize(reports, sorted({str(c) for c in y.tolist()}))
        summary.update(cv=str(self.cv_value()), task=self.task_id)
        write_csv(self.path("folds.csv"), ["fold", "test_subjects", "n_train", "n_test", "accuracy", "macro_f1"],
                  [[r["fold"], " ".join(map(str, r["test_groups"])), r["n_train"], r["n_test"],
                    f"{r['accuracy']:.4f}", f"{r['macro_f1']:.4f}"] for r in reports])
        _plot_folds(reports, summary, self.path("cv_accuracy.png"), f"CrossValidateHAR ({summary['cv']})")
        write_json(self.path("summary.json"), summary)
        self._clean_temps(started)


def _plot_folds(reports, summary, path, title):
    fig = _new_figure(6, 3.5)
    ax = fig.add_subplot()
    x = np.arange(len(reports))
    ax.bar(x, [r["accuracy"] for r in reports], color="#4c72b0")
    ax.axhline(summary["accuracy"], color="#c44e52", label=f"mean {summary['accuracy']:.3f}")
    ax.set_xticks(x)
    ax.set_xticklabels([" ".join(map(str, r["test_groups"]))[:12] for r in reports], rotation=45, fontsize=7)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("held-out subject(s)")
    ax.set_ylabel("accuracy")
    ax.set_title(title)
    ax.legend(loc="lower right")
    _save_figure(fig, path)

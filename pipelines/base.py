"""The task skeletons every domain shares: Prepare -> Train -> Evaluate, and Sweep.

A domain module (``pipelines.har``, ``pipelines.vision``, ``pipelines.medical``)
subclasses these and adds only how its data is read and which classifier is
trained. The skeletons decide where outputs go and write them.

Output layout (``--output-dir``, default ``outputs/``)::

    outputs/<domain>/<data-label>-<hash>/            one prepared data set
        prepared.npz    X_train, y_train, X_test, y_test (+ groups_train, groups_test)
        prepared.json   what was read, how it was split, class counts   (written last)
        runs/<train-label>-<hash>/                   one training run on it
            model.npz            the classifier's save()
            history.csv          one row per epoch
            learning_curve.png
            train.json           settings, timing, epochs trained      (written last by Train)
            metrics.json         the classifier's evaluate() on the test split, with timing
            confusion_matrix.csv, confusion_matrix.png
            filters.png          the first convolution's learned kernels
            roc_curve.png        (two classes) the ROC curve on the test split
            explanations/        relevance maps of a few test samples per class, correct and misclassified
            report.md            a short human-readable summary        (written last by Evaluate)
        sweeps/sweep-<hash>/leaderboard.csv

The ``<hash>`` is a short SHA-1 of every parameter that changes the result,
upstream ones included (a run's hash covers its data settings too), so a
changed parameter writes to a new folder and reruns, and an unchanged one
finds its outputs complete and does nothing. ``--output-dir``, ``--verbose``
and other settings that do not change results are not part of the hash.

Every file is written atomically, and each task writes the file that marks
it complete last; a task is complete only when all its files exist, so a
killed run is simply redone.
"""
import datetime
import json
import logging
import os
import time
import warnings

import luigi
import numpy as np

from core.exceptions import CNNError, ConfigError, InputError
from core.filecheck import regular_file
from core.plots import classifier_figures

from .outputs import (history_rows, plot_confusion, plot_history, read_npz, remove_stale_temps,
                      short_hash, slug, write_csv, write_json, write_npz, write_text)
from .params import AbsPathParameter, FloatParameter, IntParameter, OptionalAbsPathParameter, SweepListParameter

logger = logging.getLogger("luigi-interface")

PIPELINE_VERSION = 1
"""Part of every output hash; bump it when a change to the pipelines makes old outputs wrong."""

SKIPPED_SHOWN = 50
"""The most skipped files ``report.md`` lists one by one (``prepared.json`` lists them all)."""

__all__ = ["DataParams", "TrainParams", "PrepareBase", "TrainBase", "EvaluateBase", "SweepBase",
           "PIPELINE_VERSION"]


def _now():
    return datetime.datetime.now(datetime.timezone.utc).astimezone().isoformat(timespec="seconds")


def _fmt(value):
    """Compact number for folder names: 0.001 -> 0.001, 1e-05 -> 1e-05."""
    return f"{value:g}" if isinstance(value, float) else str(value)


def classifier_defaults(cls, **fallback):
    """The constructor defaults of a classifier class (so the pipelines follow them)."""
    import inspect

    out = dict(fallback)
    if cls is not None:
        for name, p in inspect.signature(cls.__init__).parameters.items():
            if p.default is not inspect.Parameter.empty:
                out[name] = p.default
    return out


# ---------------------------------------------------------------- splitting

def stratified_split(y, test_size, seed):
    """Indices ``(train, test)`` with every class in the same proportion on both sides."""
    from sklearn.model_selection import StratifiedShuffleSplit

    y = np.asarray(y)
    classes, counts = np.unique(y, return_counts=True)
    if counts.min() < 2:
        rare = [str(c) for c, k in zip(classes, counts) if k < 2]
        raise InputError(f"class(es) {rare} have a single sample; a stratified test split needs at least 2 "
                         f"samples of every class (class counts: {dict(zip(map(str, classes), map(int, counts)))})")
    n_test = max(int(round(test_size * len(y))), len(classes))
    if len(y) - n_test < len(classes):
        raise InputError(f"{len(y)} samples of {len(classes)} classes are too few for a test split of "
                         f"{test_size}: both sides need every class")
    splitter = StratifiedShuffleSplit(n_splits=1, test_size=n_test, random_state=seed)
    train, test = next(splitter.split(np.zeros(len(y)), y))
    return np.sort(train), np.sort(test)


def stratified_group_split(y, groups, test_size, seed):
    """Indices ``(train, test)``, no group on both sides, classes balanced as well as groups allow."""
    from sklearn.model_selection import StratifiedGroupKFold

    n_unique = len(np.unique(groups))
    n_splits = min(max(2, int(round(1.0 / test_size))), n_unique)
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    train, test = next(splitter.split(np.zeros(len(y)), y, groups))
    return np.sort(train), np.sort(test)


def subsample(y, n, seed):
    """Sorted indices of a stratified random subset of ``n`` of the samples (all when ``n`` is 0 or >= N)."""
    y = np.asarray(y)
    if not n or n >= len(y):
        return np.arange(len(y))
    from sklearn.model_selection import StratifiedShuffleSplit

    classes = np.unique(y)
    if n < len(classes):
        raise InputError(f"max_samples={n} is fewer than the {len(classes)} classes")
    try:
        keep, _ = next(StratifiedShuffleSplit(n_splits=1, train_size=n, random_state=seed)
                       .split(np.zeros(len(y)), y))
    except ValueError:  # a class too small to stratify: plain random subset
        keep = np.random.default_rng(seed).choice(len(y), size=n, replace=False)
    return np.sort(keep)


# ---------------------------------------------------------------- parameters

class DataParams:
    """Parameters of the data side, shared by Prepare, Train, Evaluate and Sweep of a domain.

    A domain subclass sets ``domain``, ``formats`` and ``embedded_name``,
    adds its own parameters, and implements :meth:`domain_data_key` and
    :meth:`load_source`.
    """

    domain = None
    embedded_name = "embedded"
    embedded_description = "the embedded data"

    output_dir = AbsPathParameter(default="outputs", significant=True,
                                  description="Folder for every output (default: outputs/ in the current directory)")
    source = OptionalAbsPathParameter(default=None,
                                      description="The data to use (file or folder); default: the embedded data")
    data_seed = IntParameter(default=0, description="Seeds the test split, subsampling and synthetic data")
    test_size = FloatParameter(default=0.25, description="Fraction held out for the test split")
    max_samples = IntParameter(default=0, description="Use a stratified random subset of this many "
                                                      "samples (0: all)")

    def domain_data_key(self):
        """Domain parameters that change the prepared data (dict)."""
        return {}

    def data_label(self):
        """Readable start of the data folder's name."""
        name = self.embedded_name if self.source is None else os.path.basename(self.source.rstrip(os.sep))
        for ext in (".gz", ".csv", ".txt", ".ts", ".npz"):
            if name.lower().endswith(ext):
                name = name[: -len(ext)]
        return slug(name, 32)

    def data_key(self):
        """Every parameter that changes the prepared data."""
        key = {"version": PIPELINE_VERSION, "domain": self.domain,
               "source": self.source, "format": self.format, "data_seed": self.data_seed,
               "test_size": self.test_size, "max_samples": self.max_samples}
        key.update(self.domain_data_key())
        return key

    def data_folder(self):
        key = self.data_key()
        return os.path.join(self.output_dir, self.domain, f"{self.data_label()}-{short_hash(key)}")

    def check_data_params(self):
        if self.source is not None and os.path.exists(self.source):
            # a FIFO or a device (/dev/zero) would block or stream forever: refuse it unopened
            regular_file(self.source, "--source", allow_dir=True)
        if not 0 < self.test_size < 1:
            raise ConfigError(f"--test-size must be a fraction in (0, 1), got {self.test_size}")
        if self.max_samples < 0:
            raise ConfigError(f"--max-samples must be >= 0 (0 keeps every sample), got {self.max_samples}")


class TrainParams:
    """Training parameters. A domain subclass sets the defaults from its classifier and
    implements :meth:`classifier_class` and :meth:`classifier_kwargs`."""

    epochs = IntParameter(default=40, description="Most passes over the training data "
                                                  "(early stopping may end sooner)")
    batch_size = IntParameter(default=32, description="Samples per training step")
    learning_rate = FloatParameter(default=1e-3, description="Adam's learning rate")
    seed = IntParameter(default=0, description="Seeds weight initialisation, shuffling, dropout and the "
                                               "validation split")
    patience = IntParameter(default=6, description="Epochs without validation improvement before "
                                                   "stopping (best weights kept)")
    validation_split = FloatParameter(default=0.15, description="Fraction of the training split used "
                                                                "for early stopping")
    verbose = IntParameter(default=0, significant=False,
                           description="0 silent, 2 one line per epoch (does not change results)")

    def classifier_class(self):
        raise NotImplementedError

    def model_inputs(self, arrays, part):
        """What the classifier is given for ``part`` ("train" or "test") of the prepared arrays."""
        return arrays[f"X_{part}"]

    def domain_classifier_kwargs(self):
        return {}

    def domain_train_key(self):
        return {}

    def classifier_kwargs(self):
        kwargs = dict(epochs=self.epochs, batch_size=self.batch_size, learning_rate=self.learning_rate,
                      seed=self.seed, patience=self.patience, validation_split=self.validation_split,
                      verbose=self.verbose)
        kwargs.update(self.domain_classifier_kwargs())
        return kwargs

    def train_key(self):
        key = {"epochs": self.epochs, "batch_size": self.batch_size, "learning_rate": self.learning_rate,
               "seed": self.seed, "patience": self.patience, "validation_split": self.validation_split}
        key.update(self.domain_train_key())
        return key

    def train_label(self):
        return (f"lr{_fmt(self.learning_rate)}-bs{self.batch_size}-e{self.epochs}-seed{self.seed}")

    def run_folder(self):
        key = {"data": self.data_key(), "train": self.train_key()}
        return os.path.join(self.data_folder(), "runs", f"{slug(self.train_label(), 60)}-{short_hash(key)}")

    #: the least value of each whole-number setting; any of them may also be 'auto' where the
    #: domain's classifier accepts it
    minimum_settings = {"epochs": 1, "batch_size": 1, "patience": 1}

    def check_train_params(self):
        for name, least in self.minimum_settings.items():
            value = getattr(self, name)
            if value is None and name == "patience":  # no early stopping (vision's 'none')
                continue
            if value != "auto" and (isinstance(value, bool) or not isinstance(value, int) or value < least):
                raise ConfigError(f"--{name.replace('_', '-')} must be 'auto' or a whole number >= {least}, "
                                  f"got {value!r}")
        if not self.learning_rate > 0:
            raise ConfigError(f"--learning-rate must be > 0, got {self.learning_rate}")
        if not 0 <= self.validation_split < 1:
            raise ConfigError(f"--validation-split must be in [0, 1), got {self.validation_split}")


class _Outputs:
    """``output()`` as a dict of LocalTargets in one folder; the last name is written last."""

    output_names = ()

    def output_folder(self):
        raise NotImplementedError

    def output(self):
        folder = self.output_folder()
        return {name: luigi.LocalTarget(os.path.join(folder, name)) for name in self.output_names}

    def path(self, name):
        return os.path.join(self.output_folder(), name)

    def _clean_temps(self, started):
        remove_stale_temps(self.output_folder(), self.output_names, started)

    def on_failure(self, exception):
        """Report our own errors (bad data, bad settings) by their message alone; others with a traceback."""
        if isinstance(exception, CNNError):
            return f"{type(exception).__name__}: {exception}"
        return super().on_failure(exception)


# ---------------------------------------------------------------- Prepare

class PrepareBase(_Outputs, DataParams, luigi.Task):
    """Read the source, split it into train and test, write ``prepared.npz`` then ``prepared.json``."""

    output_names = ("prepared.npz", "prepared.json")

    def output_folder(self):
        return self.data_folder()

    def load_source(self):
        """Read the data. Returns a dict with ``X`` (N, ...), ``y`` (N,), ``groups``
        ((N,) or None: subjects), ``format`` (the one used) and optional
        ``info`` (dict for the description)."""
        raise NotImplementedError

    def split(self, y, groups):
        """``(train_idx, test_idx, method)``; grouped (by subject) when groups repeat, else stratified."""
        if groups is not None and len(np.unique(groups)) >= 2 and len(np.unique(groups)) < len(groups):
            train, test = stratified_group_split(y, groups, self.test_size, self.data_seed)
            return train, test, "by subject (no subject on both sides), classes stratified where possible"
        train, test = stratified_split(y, self.test_size, self.data_seed)
        return train, test, "stratified by class"

    def run(self):
        started = time.time()
        self.check_data_params()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            data = self.load_source()
        notes = []
        for w in caught:
            text = f"{w.category.__name__}: {w.message}"
            if text not in notes:
                notes.append(text)
                logger.warning("%s: %s", self.task_family, text)
        X, y, groups = data["X"], np.asarray(data["y"]), data.get("groups")
        if len(X) != len(y):
            raise InputError(f"{self.source}: {len(X)} samples but {len(y)} labels")
        if y.dtype == object:
            y = y.astype(str)
        if groups is not None:
            groups = np.asarray(groups)
            if groups.dtype == object:
                groups = groups.astype(str)
        classes = np.unique(y)
        if len(classes) < 2:
            raise InputError(f"{self.source or self.embedded_name}: the data holds a single class "
                             f"({classes.tolist()}); a classifier needs at least two")
        train, test, method = self.split(y, groups)
        arrays = {"X_train": X[train], "y_train": y[train], "X_test": X[test], "y_test": y[test]}
        if groups is not None:
            arrays["groups_train"] = groups[train]
            arrays["groups_test"] = groups[test]
        if data.get("paths") is not None:  # the files the samples came from
            paths = np.asarray(data["paths"], dtype=str)
            arrays["paths_train"] = paths[train]
            arrays["paths_test"] = paths[test]

        def counts(labels):
            values, k = np.unique(labels, return_counts=True)
            return {str(v): int(c) for v, c in zip(values, k)}

        description = {
            "task": self.task_id,
            "domain": self.domain,
            "source": self.source or self.embedded_description,
            "format": data.get("format"),
            "parameters": self.data_key(),
            "n_samples": int(len(y)),
            "sample_shape": list(X.shape[1:]),
            "dtype": str(X.dtype),
            "classes": [str(c) for c in classes],
            "split": {"method": method, "test_size": self.test_size, "seed": self.data_seed,
                      "n_train": int(len(train)), "n_test": int(len(test)),
                      "train_counts": counts(y[train]), "test_counts": counts(y[test])},
            "info": data.get("info", {}),
            "warnings": notes,
            "seconds": round(time.time() - started, 3),
            "created": _now(),
        }
        if groups is not None:
            description["split"]["train_groups"] = [str(g) for g in np.unique(groups[train])]
            description["split"]["test_groups"] = [str(g) for g in np.unique(groups[test])]
        logger.info("%s: %d samples %s, %d train / %d test (%s) -> %s", self.task_family, len(y),
                    tuple(X.shape[1:]), len(train), len(test), method, self.output_folder())
        write_npz(self.path("prepared.npz"), **arrays)
        write_json(self.path("prepared.json"), description)  # last: marks the task complete
        self._clean_temps(started)


# ---------------------------------------------------------------- Train

class TrainBase(_Outputs, DataParams, TrainParams, luigi.Task):
    """Fit the domain's classifier on the training split; write the model, history and learning curve."""

    prepare_class = None
    output_names = ("model.npz", "history.csv", "learning_curve.png", "train.json")

    def output_folder(self):
        return self.run_folder()

    def requires(self):
        return self.clone(self.prepare_class)

    def run(self):
        started = time.time()
        self.check_train_params()
        arrays = read_npz(self.input()["prepared.npz"].path)
        clf = self.classifier_class()(**self.classifier_kwargs())
        groups = arrays.get("groups_train")
        logger.info("%s: training %r on %d samples", self.task_family, clf, len(arrays["y_train"]))
        t0 = time.perf_counter()
        clf.fit(self.model_inputs(arrays, "train"), arrays["y_train"], groups=groups)
        fit_seconds = time.perf_counter() - t0
        history = {k: [float(v) for v in vals] for k, vals in clf.history_.items()}
        clf.save(self.path("model.npz"))
        header, rows = history_rows(history)
        write_csv(self.path("history.csv"), header, rows)
        plot_history(history, self.path("learning_curve.png"),
                     f"{self.task_family}: {self.train_label()}")
        val_loss = history.get("val_loss") or []
        info = {
            "task": self.task_id,
            "classifier": repr(clf),
            "parameters": {"data": self.data_key(), "train": self.train_key()},
            "data_folder": self.data_folder(),
            "n_train": int(len(arrays["y_train"])),
            "n_fit": int(getattr(clf, "n_train_", len(arrays["y_train"]))),
            "n_validation": int(getattr(clf, "n_val_", 0)),
            "classes": [str(c) for c in clf.classes_],
            "input_shape": list(clf.input_shape_),
            "epochs_trained": int(getattr(clf, "epochs_trained_", len(history.get("loss", [])))),
            "best_val_loss": float(min(val_loss)) if val_loss else None,
            "best_epoch": int(np.argmin(val_loss)) + 1 if val_loss else None,
            "final": {k: v[-1] for k, v in history.items() if v},
            "fit_seconds": round(fit_seconds, 3),
            "seconds": round(time.time() - started, 3),
            "created": _now(),
        }
        write_json(self.path("train.json"), info)  # last: marks the task complete
        self._clean_temps(started)
        logger.info("%s: %d epochs in %.1f s -> %s", self.task_family, info["epochs_trained"], fit_seconds,
                    self.output_folder())


# ---------------------------------------------------------------- Evaluate

def _markdown_table(header, rows):
    lines = ["| " + " | ".join(map(str, header)) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(map(str, r)) + " |" for r in rows]
    return "\n".join(lines)


class EvaluateBase(_Outputs, DataParams, TrainParams, luigi.Task):
    """Score the trained model on the test split; write metrics, the confusion matrix and a report."""

    train_class = None
    output_names = ("metrics.json", "confusion_matrix.csv", "confusion_matrix.png", "filters.png", "report.md")

    def output_folder(self):
        return self.run_folder()

    def requires(self):
        return self.clone(self.train_class)

    def run(self):
        started = time.time()
        folder = self.output_folder()
        train_info = json.loads(open(self.input()["train.json"].path, encoding="utf-8").read())
        prepared_json = os.path.join(self.data_folder(), "prepared.json")
        data_info = json.loads(open(prepared_json, encoding="utf-8").read())
        arrays = read_npz(os.path.join(self.data_folder(), "prepared.npz"))
        clf = self.classifier_class().load(self.input()["model.npz"].path)
        t0 = time.perf_counter()
        report = clf.evaluate(self.model_inputs(arrays, "test"), arrays["y_test"])
        eval_seconds = time.perf_counter() - t0
        classes = [str(c) for c in report["classes"]]
        metrics = {
            "task": self.task_id,
            "domain": self.domain,
            **report,
            "n_train": train_info.get("n_train"),
            "n_test": int(len(arrays["y_test"])),
            "epochs_trained": train_info.get("epochs_trained"),
            "fit_seconds": train_info.get("fit_seconds"),
            "evaluate_seconds": round(eval_seconds, 3),
            "split": data_info["split"]["method"],
            "parameters": {"data": self.data_key(), "train": self.train_key()},
            "run_folder": folder,
            "created": _now(),
        }
        write_json(self.path("metrics.json"), metrics)
        cm = np.asarray(report["confusion_matrix"], dtype=np.int64)
        write_csv(self.path("confusion_matrix.csv"), ["true \\ predicted"] + classes,
                  [[c] + row for c, row in zip(classes, cm.tolist())])
        plot_confusion(cm, classes, self.path("confusion_matrix.png"),
                       f"{self.domain}: accuracy {report['accuracy']:.3f}, macro F1 {report['macro_f1']:.3f}")
        inputs = self.model_inputs(arrays, "test")
        figures = classifier_figures(clf, inputs, arrays["y_test"], folder)
        extra = self.extra_report(clf, inputs, arrays["y_test"], report)
        write_text(self.path("report.md"), self.report_text(metrics, train_info, data_info, figures) + extra)  # last
        self._clean_temps(started)
        logger.info("%s: accuracy %.4f, macro F1 %.4f on %d test samples -> %s", self.task_family,
                    report["accuracy"], report["macro_f1"], metrics["n_test"], folder)

    def extra_report(self, clf, inputs, y, report):
        """Domain hook: write further files before ``report.md`` (the completion marker) and return
        markdown to append to the report. Default: nothing."""
        return ""

    def report_text(self, metrics, train_info, data_info, figures=()):
        classes = [str(c) for c in metrics["classes"]]
        per_class = [[c, f"{metrics['precision'][c]:.3f}", f"{metrics['recall'][c]:.3f}",
                      f"{metrics['f1'][c]:.3f}", metrics["support"][c]] for c in classes]
        cm_rows = [[c] + row for c, row in zip(classes, metrics["confusion_matrix"])]
        split = data_info["split"]
        lines = [
            f"# {self.domain}: {self.train_label()}",
            "",
            f"Run folder `{os.path.basename(self.output_folder())}`, written by {self.task_family} on "
            f"{metrics['created']}.",
            "",
            f"- Data: {data_info['source']} (format: {data_info.get('format')}), {data_info['n_samples']} samples "
            f"of shape {tuple(data_info['sample_shape'])}, {len(classes)} classes",
            f"- Split: {split['method']}; {split['n_train']} train / {split['n_test']} test "
            f"(test size {split['test_size']}, seed {split['seed']})"
            + (f"; held-out subjects: {', '.join(split['test_groups'][:20])}"
               f"{' ...' if len(split['test_groups']) > 20 else ''}" if split.get("test_groups") else ""),
            f"- Model: `{train_info['classifier']}`",
            f"- Training: {train_info['epochs_trained']} epochs in {train_info['fit_seconds']:.1f} s on the "
            f"{train_info['n_train']} training samples ("
            + (f"{train_info['n_validation']} of them held out for validation)" if train_info["n_validation"]
               else "none held out for validation)")
            + (f"; best validation loss {train_info['best_val_loss']:.4f} at epoch {train_info['best_epoch']}"
               if train_info.get("best_val_loss") is not None else ""),
            "",
            "## Test results",
            "",
            f"- Accuracy: **{metrics['accuracy']:.4f}**",
            f"- Macro F1: **{metrics['macro_f1']:.4f}**",
        ]
        if "roc_auc" in metrics:
            lines.append(f"- ROC AUC: **{metrics['roc_auc']:.4f}**")
        lines += ["", _markdown_table(["class", "precision", "recall", "F1", "support"], per_class), "",
                  "Confusion matrix (rows: true class, columns: predicted):", "",
                  _markdown_table(["true \\ predicted"] + classes, cm_rows), "",
                  "Files: `model.npz`, `history.csv`, `learning_curve.png`, `metrics.json`, "
                  "`confusion_matrix.csv`, `confusion_matrix.png`, `filters.png`, `feature_maps.png`"
                  + (", `roc_curve.png`" if len(classes) == 2 else "") + ", `explanations/`.", ""]
        if figures:
            lines += ["## What the network saw", "",
                      "Relevance maps of test samples (the method is named in each title; bright: where the "
                      "network found the evidence for the class it predicted), the first layer's learned "
                      "kernels and, for two classes, the ROC curve.", ""]
            for name, caption in figures:
                lines += [f"![{caption}]({name})", "", f"*{caption}*", ""]
        skipped = (data_info.get("info") or {}).get("skipped_files")
        if skipped:
            shown = skipped[:SKIPPED_SHOWN]
            lines += ["## Skipped files", "",
                      f"{len(skipped)} file(s) of the source could not be read and were left out "
                      f"(`--on-error skip`):", ""] + [f"- `{f['path']}`: {f['reason']}" for f in shown]
            if len(skipped) > len(shown):
                lines.append(f"- ... and {len(skipped) - len(shown)} more (all in `prepared.json`, info.skipped_files)")
            lines.append("")
        if data_info.get("warnings"):
            lines += ["## Data warnings", ""] + [f"- {w}" for w in data_info["warnings"]] + [""]
        return "\n".join(lines)


# ---------------------------------------------------------------- Sweep

class SweepBase(_Outputs, DataParams, TrainParams, luigi.Task):
    """Train and evaluate one run per (learning rate, seed), as independent tasks, and rank them.

    Runs share the prepared data and run in parallel with ``--workers N``.
    Writes ``leaderboard.csv`` sorted by macro F1, then accuracy.
    """

    evaluate_class = None
    output_names = ("leaderboard.csv",)

    learning_rates = SweepListParameter(default=None,
                                        description="JSON list of learning rates, e.g. '[0.001, 0.003]', or one "
                                                    "(default: --learning-rate)")
    seeds = SweepListParameter(default=None, kind=int,
                               description="JSON list of seeds, e.g. '[0, 1, 2]', or one (default: --seed)")

    def grid(self):
        from .params import sweep_values

        lrs = sweep_values(self.learning_rates, "--learning-rates", float) if self.learning_rates is not None \
            else [float(self.learning_rate)]
        seeds = sweep_values(self.seeds, "--seeds", int) if self.seeds is not None else [int(self.seed)]
        return [(lr, s) for lr in lrs for s in seeds]

    def output_folder(self):
        key = {"data": self.data_key(), "train": self.train_key(), "grid": self.grid()}
        key["train"].pop("learning_rate")
        key["train"].pop("seed")
        return os.path.join(self.data_folder(), "sweeps", f"sweep-{short_hash(key)}")

    def requires(self):
        return [self.clone(self.evaluate_class, learning_rate=lr, seed=s) for lr, s in self.grid()]

    def run(self):
        started = time.time()
        rows = []
        for task, target in zip(self.requires(), self.input()):
            metrics = json.loads(open(target["metrics.json"].path, encoding="utf-8").read())
            rows.append({"learning_rate": task.learning_rate, "seed": task.seed,
                         "accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"],
                         "epochs_trained": metrics.get("epochs_trained"), "fit_seconds": metrics.get("fit_seconds"),
                         "run_folder": os.path.relpath(task.output_folder(), self.data_folder())})
        rows.sort(key=lambda r: (-r["macro_f1"], -r["accuracy"], r["learning_rate"], r["seed"]))
        header = ["rank", "learning_rate", "seed", "accuracy", "macro_f1", "epochs_trained", "fit_seconds",
                  "run_folder"]
        write_csv(self.path("leaderboard.csv"), header,
                  [[i + 1] + [r[h] for h in header[1:]] for i, r in enumerate(rows)])
        self._clean_temps(started)
        best = rows[0]
        logger.info("%s: %d runs; best learning rate %g seed %d: macro F1 %.4f -> %s", self.task_family,
                    len(rows), best["learning_rate"], best["seed"], best["macro_f1"], self.path("leaderboard.csv"))

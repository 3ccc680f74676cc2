"""Scan classification pipeline: PrepareMedical -> TrainMedical -> EvaluateMedical, and SweepMedical.

Sources (``--source``; ``--format auto`` tells them apart):

* none: ``medical.make_synthetic`` writes ``--synthetic-n`` NIfTI scans of
  about ``--synthetic-shape`` voxels and a manifest into the output folder
  (task ``SyntheticScans``), which is then read like any manifest;
* ``manifest``: a CSV with columns ``path,label`` and optionally ``subject``
  (``medical.read_manifest``; relative paths are relative to the CSV), or a
  folder holding ``manifest.csv``;
* ``folder``: one sub-folder per class, holding scan files (NIfTI, Analyze
  ``.hdr``, MGH ``.mgh``/``.mgz``, DICOM ``.dcm`` multi-frame) and/or DICOM
  series, one series folder per scan.

Every scan is read with ``medical.load_scan``: reoriented to RAS, resampled
to ``--spacing`` mm if given, intensities normalized (``--normalize``:
``zscore``, ``minmax``, ``percentile``, ``none`` or ``ct:LEVEL:WIDTH``),
brought to ``--shape`` (``--shape-mode resample`` or ``crop_or_pad``).
Preprocessed volumes are cached under ``<output-dir>/medical/scan-cache``.
When the manifest names subjects, the test split keeps each subject's
scans together; otherwise it is stratified by class.
"""
import os

import luigi
import numpy as np

import medical
from core.exceptions import ConfigError, DataFileNotFoundError, DataFormatError

from .base import (PIPELINE_VERSION, DataParams, EvaluateBase, PrepareBase, SweepBase, TrainBase, TrainParams,
                   classifier_defaults, subsample)
from .outputs import calibration_table, plot_calibration, short_hash
from .params import FloatParameter, IntParameter, SizeParameter, SpacingParameter

__all__ = ["SyntheticScans", "PrepareMedical", "TrainMedical", "EvaluateMedical", "SweepMedical"]

FORMATS = ("auto", "manifest", "folder")
_NIFTI = (".nii", ".nii.gz")
_SCAN_FILES = tuple(s for s in medical.scans.SCAN_SUFFIXES if not s.startswith(".img"))
_DEFAULTS = classifier_defaults(medical.ScanClassifier)


def parse_normalize(text):
    """``--normalize`` text -> the ``normalize`` argument of ``medical.load_scan``.

    ``zscore``, ``minmax``, ``percentile``, ``none``, or ``ct:LEVEL:WIDTH``
    (also ``ct,LEVEL,WIDTH``) for a Hounsfield window, e.g. ``ct:40:400``.
    """
    value = str(text).strip().lower()
    if value in ("none", "null", ""):
        return None
    if value.startswith("ct"):
        parts = [p for p in value.replace(",", ":").split(":") if p]
        if len(parts) != 3:
            raise ConfigError(f"--normalize {text!r}: a CT window is written ct:LEVEL:WIDTH, e.g. ct:40:400")
        try:
            return medical.preprocessing.check_normalize(("ct", float(parts[1]), float(parts[2])))
        except ValueError as exc:
            raise ConfigError(f"--normalize {text!r}: {exc}") from None
    if value in ("zscore", "minmax", "percentile"):
        return value
    raise ConfigError(f"--normalize must be zscore, minmax, percentile, none or ct:LEVEL:WIDTH, got {text!r}")


def _scans_in(folder):
    """The scans of a class folder: scan files, and sub-folders (each a DICOM series)."""
    out = []
    for e in sorted(os.listdir(folder)):
        full = os.path.join(folder, e)
        if e.startswith("."):
            continue
        if os.path.isdir(full) or (e.lower().endswith(_SCAN_FILES) and os.path.isfile(full)):
            out.append(e)
    return out


def detect_format(path):
    """``(format, manifest_or_folder)`` for an existing path; a clear error otherwise."""
    if not os.path.exists(path):
        raise DataFileNotFoundError(f"--source {path!r} does not exist; expected a manifest CSV (path,label"
                                    f"[,subject]) or a folder with one sub-folder of scans (files or DICOM series folders) "
                                    f"per class")
    if os.path.isdir(path):
        if os.path.isfile(os.path.join(path, "manifest.csv")):
            return "manifest", os.path.join(path, "manifest.csv")
        subdirs = [d for d in sorted(os.listdir(path)) if os.path.isdir(os.path.join(path, d))
                   and not d.startswith(".")]
        if subdirs and any(_scans_in(os.path.join(path, d)) for d in subdirs):
            return "folder", path
        raise DataFormatError(f"--source {path!r} is a folder with neither a manifest.csv nor class sub-folders "
                              f"holding scans (.nii/.nii.gz, .hdr, .mgz, DICOM series folders)")
    lower = path.lower()
    if lower.endswith(_SCAN_FILES):
        raise DataFormatError(f"--source {path!r} is a single scan; a classifier needs many labelled scans: give a "
                              f"manifest CSV (path,label[,subject]) or a folder of class sub-folders")
    return "manifest", path


def _read_folder(path):
    paths, labels = [], []
    for d in sorted(os.listdir(path)):
        sub = os.path.join(path, d)
        if d.startswith(".") or not os.path.isdir(sub):
            continue
        for name in _scans_in(sub):
            paths.append(os.path.join(sub, name))
            labels.append(d)
    if not paths:
        raise DataFormatError(f"{path!r}: no scans (files or DICOM series folders) in its class sub-folders")
    return paths, np.array(labels, dtype=str), None


class SyntheticScans(luigi.Task):
    """Write the embedded synthetic scans (``medical.make_synthetic``) and their ``manifest.csv``.

    ``make_synthetic`` writes every scan atomically and the manifest last, so
    the manifest marks the folder complete.
    """

    output_dir = luigi.Parameter(default="outputs")
    n = IntParameter(default=60, description="Number of scans")
    shape = SizeParameter(ndim=3, label="--shape", default=(40, 40, 40),
                          description="Approximate grid of the scans")
    seed = IntParameter(default=0)

    def output(self):
        key = {"version": PIPELINE_VERSION, "n": self.n, "shape": list(self.shape), "seed": self.seed}
        name = f"synthetic-scans-n{self.n}-{'x'.join(map(str, self.shape))}-seed{self.seed}-{short_hash(key)}"
        return luigi.LocalTarget(os.path.join(os.path.abspath(self.output_dir), "medical", name, "manifest.csv"))

    def run(self):
        medical.make_synthetic(os.path.dirname(self.output().path), n=self.n, shape=self.shape, seed=self.seed)


class MedicalData(DataParams):
    domain = "medical"
    embedded_name = "synthetic"
    embedded_description = "synthetic brain scans (medical.make_synthetic), NIfTI files with a manifest"

    format = luigi.ChoiceParameter(choices=FORMATS, default="auto",
                                   description="auto, manifest (CSV path,label[,subject]) or folder (per class)")
    shape = SizeParameter(ndim=3, label="--shape", default=(32, 32, 32),
                          description="Grid every scan is brought to (e.g. 32 or 32x32x32)")
    spacing = SpacingParameter(ndim=3, label="--spacing", default=None, optional=True,
                               description="Resample to this voxel size in mm first (e.g. 2 or 1x1x2)")
    # the classifier's default (min-max), so the pipeline trains as ScanClassifier() does
    normalize = luigi.Parameter(default=str(_DEFAULTS["normalize"]),
                                description="minmax (the default), zscore, percentile, none, or ct:LEVEL:WIDTH")
    shape_mode = luigi.ChoiceParameter(choices=("resample", "crop_or_pad"), default="resample",
                                       description="Reach --shape by resampling or by centre crop/pad")
    synthetic_n = IntParameter(default=60, description="Scans written for the embedded data")
    synthetic_shape = SizeParameter(ndim=3, label="--synthetic-shape", default=(40, 40, 40),
                                    description="Grid of the embedded scans")
    allow_outside_paths = luigi.BoolParameter(default=False, significant=False,
                                              description="Accept manifest paths that lead outside the "
                                                          "manifest's folder (refused by default)")

    def domain_data_key(self):
        key = {"shape": list(self.shape), "spacing": list(self.spacing) if self.spacing else None,
               "normalize": self.normalize.strip().lower(), "shape_mode": self.shape_mode}
        if self.source is None:
            key.update(synthetic_n=self.synthetic_n, synthetic_shape=list(self.synthetic_shape))
        return key

    def data_label(self):
        return f"{super().data_label()}-{'x'.join(map(str, self.shape))}"

    def scan_cache(self):
        return os.path.join(self.output_dir, "medical", "scan-cache")

    def synthetic_task(self):
        return SyntheticScans(output_dir=self.output_dir, n=self.synthetic_n, shape=self.synthetic_shape,
                              seed=self.data_seed)

    def load_source(self):
        normalize = parse_normalize(self.normalize)
        if self.source is None:
            fmt, where = "embedded", self.synthetic_task().output().path
        elif self.format == "auto":
            fmt, where = detect_format(self.source)
        else:
            fmt, where = self.format, self.source
            if fmt == "manifest" and os.path.isdir(where):
                where = os.path.join(where, "manifest.csv")
            if not os.path.exists(where):
                raise DataFileNotFoundError(f"--source {where!r} does not exist")
        if fmt == "folder":
            paths, labels, subjects = _read_folder(where)
        else:
            paths, labels, subjects = medical.read_manifest(where, return_subjects=True,
                                                             allow_outside=self.allow_outside_paths)
        keep = subsample(labels, self.max_samples, self.data_seed)
        paths = [paths[i] for i in keep]
        labels = labels[keep]
        subjects = subjects[keep] if subjects is not None else None
        X = medical.load_scans(paths, spacing=self.spacing, shape=self.shape, normalize=normalize,
                               shape_mode=self.shape_mode,
                               cache_dir=self.scan_cache())
        info = {"list": where, "n_files": len(paths)}
        return {"X": X, "y": labels, "groups": subjects, "format": fmt, "info": info, "paths": paths}


class MedicalTrainParams(TrainParams):
    epochs = IntParameter(default=_DEFAULTS["epochs"], description="Most passes over the data")
    batch_size = IntParameter(default=_DEFAULTS["batch_size"], description="Scans per step")
    learning_rate = FloatParameter(default=_DEFAULTS["learning_rate"], description="Adam's learning rate")
    patience = IntParameter(default=_DEFAULTS["patience"], description="Early-stopping patience")
    validation_split = FloatParameter(default=_DEFAULTS["validation_split"],
                                      description="Fraction of the training scans for early stopping")

    augment = luigi.BoolParameter(default=_DEFAULTS["augment"], parsing=luigi.BoolParameter.EXPLICIT_PARSING,
                                  description="Random shifts of the training volumes (--augment false to disable)")

    def classifier_class(self):
        return medical.ScanClassifier

    def domain_classifier_kwargs(self):
        # The model carries the preprocessing settings, so the saved file also predicts raw NIfTI files.
        return {"shape": tuple(self.shape), "spacing": tuple(self.spacing) if self.spacing else None,
                "normalize": parse_normalize(self.normalize), "shape_mode": self.shape_mode,
                "augment": self.augment, "cache_dir": self.scan_cache()}

    def domain_train_key(self):
        return {"augment": self.augment}

    def model_inputs(self, arrays, part):
        # The classifier reads the scans itself (through the scan cache that PrepareMedical filled, so
        # nothing is recomputed): it then preprocesses them exactly as it will preprocess a raw file at
        # predict time. Given arrays instead, it would normalize the already normalized volumes again.
        paths = arrays.get(f"paths_{part}")
        return list(paths) if paths is not None else arrays[f"X_{part}"]


class PrepareMedical(MedicalData, PrepareBase):
    """Read and preprocess the scans, split them, write ``prepared.npz`` + ``prepared.json``."""

    def requires(self):
        return self.synthetic_task() if self.source is None else []


class TrainMedical(MedicalData, MedicalTrainParams, TrainBase):
    """Train ``medical.ScanClassifier`` on the prepared training volumes."""

    prepare_class = PrepareMedical


class EvaluateMedical(MedicalData, MedicalTrainParams, EvaluateBase):
    """Evaluate the scan classifier on the test split."""

    train_class = TrainMedical

    def extra_report(self, clf, inputs, y, report):
        """For two classes: ``calibration.png`` and the decision threshold (``roc_curve.png``, with the
        threshold's operating point, comes with every domain's report pictures)."""
        if len(report["classes"]) != 2 or "roc_auc" not in report:
            return ""
        scores = clf.predict_proba(inputs)[:, 1]
        positive = np.asarray(y).astype(str) == str(report["classes"][1])
        t = report.get("threshold")
        plot_calibration(positive, scores, self.path("calibration.png"), "medical: calibration on the test split")
        rows = calibration_table(positive, scores)
        lines = ["## Decision and calibration", ""]
        if t is not None:
            lines.append(f"- Decision threshold on P({report['classes'][1]}): **{t:.4f}** "
                         f"({report.get('threshold_source', '')})")
        lines += ["- `roc_curve.png`: ROC curve of the test split, the threshold's operating point marked",
                  "- `calibration.png`: observed fraction positive against mean predicted probability", "",
                  "| predicted | scans | mean predicted | observed positive |", "|---|---|---|---|"]
        lines += [f"| {lo:.1f}-{hi:.1f} | {n} | {m:.3f} | {o:.3f} |" for lo, hi, n, m, o in rows]
        return "\n".join(lines) + "\n"


class SweepMedical(MedicalData, MedicalTrainParams, SweepBase):
    """Independent TrainMedical/EvaluateMedical runs over ``--learning-rates`` x ``--seeds``; ``leaderboard.csv``."""

    evaluate_class = EvaluateMedical

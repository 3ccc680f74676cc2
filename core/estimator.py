"""``BaseClassifier``: the habits the domain classifiers share, written once.

A domain (activity recognition, images, scans) subclasses it and adds only
its preprocessing and its default network. The base class does the rest, in
scikit-learn's manner: settings in the constructor, ``fit(X, y)`` returns
``self``, labels may be strings and come back as given, ``predict``,
``predict_proba``, ``evaluate`` (a report dict), ``save`` and ``load``.

Hooks a subclass implements (all but ``build_network`` have defaults):

``_check_X(X, fitting)``
    Validate the raw input the domain accepts and return a float32 array
    ``(N, ...)``; ``fitting`` is False for predict/evaluate.
``_fit_preprocessing(X)``
    Learn preprocessing state (scaling...) from the training part of ``X``.
``_transform(X)``
    Checked array -> network input, channels last.
``build_network(input_shape, n_classes)``
    An uncompiled ``core.Sequential`` seeded with ``self.seed``.
``_augment(x_batch, rng)``
    Optional training-batch augmentation; define it to enable.
``_get_state()`` / ``_set_state(config, arrays)``
    Learned preprocessing state as JSON config + named arrays, saved in the model file.
``_fit_decision(x_val, y_val)`` / ``_decide(proba)`` / ``_decision_report()``
    Optional decision rule learned after training from the validation part
    (network inputs and label indices, possibly empty), e.g. a binary
    threshold; ``_decide`` turns probabilities into class indices (default
    argmax) for ``predict`` and ``evaluate``, which adds ``_decision_report()``
    to its report.
"""
import inspect
import math
import warnings

import numpy as np
from sklearn import metrics as skm
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.model_selection import GroupShuffleSplit, StratifiedShuffleSplit

from . import callbacks, config, optimizers
from .exceptions import InputError, ModelFileError, NotFittedError, ShapeError
from .serialization import load_model_with_extras, save_model
from .utils import check_array, check_int


def encode_labels(y, name="y"):
    """``(classes, indices)`` for labels ``y``; object arrays of strings become ``str``
    arrays so they can be saved without pickle."""
    arr = np.asarray(y)
    if arr.ndim != 1:
        arr = arr.reshape(-1) if arr.ndim == 2 and arr.shape[1] == 1 else arr
    if arr.ndim != 1:
        raise InputError(f"{name} must be a 1-D array of labels, found shape {arr.shape}")
    if arr.dtype == object:
        kinds = {type(v) for v in arr}
        if all(issubclass(k, str) for k in kinds):
            arr = arr.astype(str)
        elif all(issubclass(k, (int, np.integer)) for k in kinds):
            arr = arr.astype(np.int64)
        else:
            raise InputError(f"{name} mixes label types {sorted(k.__name__ for k in kinds)}; use all strings or all ints")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise InputError(f"{name} contains NaN or infinite labels")
    classes, idx = np.unique(arr, return_inverse=True)
    return classes, idx.reshape(-1)


def _article(word):
    return f"{'an' if str(word)[:1].lower() in 'aeiou' else 'a'} {word}"


def _native(v):
    return v.item() if isinstance(v, np.generic) else v


class BaseClassifier(ClassifierMixin, BaseEstimator):
    def __init__(self, epochs=30, batch_size=32, learning_rate=1e-3, seed=0, validation_split=0.15,
                 patience=5, verbose=0, engine="numpy"):
        self.engine = engine
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.seed = seed
        self.validation_split = validation_split
        self.patience = patience
        self.verbose = verbose

    # ------------------------------------------------------------ params
    @classmethod
    def _param_names(cls):
        sig = inspect.signature(cls.__init__)
        return [p.name for p in sig.parameters.values()
                if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]

    def get_params(self, deep=True):
        """Constructor settings, as scikit-learn estimators report them."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params):
        valid = self._param_names()
        for k, v in params.items():
            if k not in valid:
                raise InputError(f"{type(self).__name__} has no setting {k!r}; valid settings: {valid}")
            setattr(self, k, v)
        return self

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    def _check_settings(self):
        """Validate the shared settings before any work (subclasses check their own in ``_check_X``)."""
        name = type(self).__name__

        for key, minimum in (("epochs", 1), ("batch_size", 1), ("patience", 0), ("seed", 0)):
            check_int(getattr(self, key), f"{name}: {key}", minimum)
        lr = self.learning_rate
        if isinstance(lr, bool) or not isinstance(lr, (int, float, np.floating)) or not 0 < lr < float("inf"):
            raise InputError(f"{name}: learning_rate must be a positive number, got {lr!r}")
        vs = self.validation_split
        if isinstance(vs, bool) or not isinstance(vs, (int, float, np.floating)) or not 0 <= vs < 1:
            raise InputError(f"{name}: validation_split must be a number in [0, 1), got {vs!r}")
        if getattr(self, "engine", "numpy") not in ("numpy", "keras"):
            raise InputError(f"{name}: engine must be 'numpy' or 'keras', got {self.engine!r}")

    def _checked_X(self, X, fitting):
        """The domain's ``_check_X``, then one check every domain needs: finite values."""
        X = self._check_X(X, fitting)
        if not np.isfinite(X).all():
            raise InputError("X contains NaN or infinite values; clean or impute them first")
        return X

    # ------------------------------------------------------------- hooks
    def _check_X(self, X, fitting):
        return check_array(X, "X").astype(np.float32, copy=False)

    def _fit_preprocessing(self, X):
        pass

    def _transform(self, X):
        return X

    def build_network(self, input_shape, n_classes):
        raise NotImplementedError

    _augment = None

    def _fit_decision(self, x_val, y_val):
        pass

    def _decide(self, proba):
        return proba.argmax(axis=1)

    def _decision_report(self):
        return {}

    def _get_state(self):
        return {}, {}

    def _set_state(self, config_, arrays):
        pass

    def _compile(self, model):
        model.compile(optimizer=optimizers.Adam(learning_rate=self.learning_rate),
                      loss="sparse_categorical_crossentropy", metrics=["accuracy"])

    # ------------------------------------------------------------- split
    def _validation_indices(self, y_idx, groups):
        """``(train, val)`` index arrays; ``val`` is empty when the data is too
        small for a validation split that leaves every class in training."""
        n = len(y_idx)
        frac = self.validation_split
        everything = (np.arange(n), np.arange(0))
        if not frac:
            return everything
        if not 0 < frac < 1:
            raise InputError(f"validation_split must be in [0, 1), got {frac}")
        n_classes = int(y_idx.max()) + 1
        if groups is not None:
            groups = np.asarray(groups)
            if len(groups) != n:
                raise ShapeError(f"groups has {len(groups)} entries for {n} samples")
            if len(np.unique(groups)) < 2:
                return everything
            for attempt in range(20):
                splitter = GroupShuffleSplit(n_splits=1, test_size=frac, random_state=self.seed + attempt)
                tr, va = next(splitter.split(np.zeros(n), y_idx, groups))
                if len(np.unique(y_idx[tr])) == n_classes and len(va):
                    return tr, va
            warnings.warn("no split by groups keeps every class in training; training without a validation split",
                          stacklevel=3)
            return everything
        counts = np.bincount(y_idx, minlength=n_classes)
        n_val = math.ceil(n * frac)
        if counts.min() < 2 or n_val < n_classes or n - n_val < n_classes:
            return everything
        splitter = StratifiedShuffleSplit(n_splits=1, test_size=n_val, random_state=self.seed)
        return next(splitter.split(np.zeros(n), y_idx))

    # --------------------------------------------------------------- fit
    def fit(self, X, y, groups=None):
        """Train on ``X`` (the domain's input form) and labels ``y`` ``(N,)``.

        ``groups`` (optional, ``(N,)``), e.g. subject ids, keeps every group
        on one side of the validation split. Returns ``self``.
        """
        self._check_settings()
        self.keras_model_ = None  # a refit replaces whatever an earlier fit left
        X = self._checked_X(X, fitting=True)
        classes, y_idx = encode_labels(y)
        if len(y_idx) != len(X):
            raise ShapeError(f"X has {len(X)} samples but y has {len(y_idx)} labels")
        if len(classes) < 2:
            raise InputError(f"y holds a single class ({_native(classes[0])!r}); a classifier needs at least two")
        train, val = self._validation_indices(y_idx, groups)
        config.set_random_seed(self.seed)
        self._fit_preprocessing(X[train])
        Xt = self._transform(X)
        model = self.build_network(tuple(Xt.shape[1:]), len(classes))
        engine = getattr(self, "engine", "numpy")
        if engine == "keras":  # the same network, initial weights, data and settings, trained by Keras
            from .keras_compat import KerasTwin
            model = KerasTwin(model)
        self._compile(model)
        cbs = []
        fit_kwargs = {}
        if len(val):
            if getattr(self, "early_stopping", True):   # a subclass may keep the split for other uses only
                cbs.append(callbacks.EarlyStopping(monitor="val_loss", patience=self.patience,
                                                   restore_best_weights=True))
            fit_kwargs["validation_data"] = (Xt[val], y_idx[val])
        history = model.fit(Xt[train], y_idx[train], batch_size=self.batch_size, epochs=self.epochs,
                            verbose=self.verbose, callbacks=cbs, shuffle=True,
                            batch_transform=self._augment, **fit_kwargs)
        if engine == "keras":
            self.keras_model_, model = model.keras, model.core
        self.model_ = model
        self.classes_ = classes
        self.history_ = history.history
        self.input_shape_ = tuple(X.shape[1:])
        self.n_train_, self.n_val_ = len(train), len(val)
        self.epochs_trained_ = len(history.epoch)
        self._fit_decision(Xt[val], y_idx[val])
        return self

    # ----------------------------------------------------------- predict
    def _require_fitted(self, what):
        if not hasattr(self, "model_"):
            raise NotFittedError(f"{type(self).__name__}.{what}: call fit() or load() first")

    def predict_proba(self, X):
        """Class probabilities ``(N, n_classes)``, columns in the order of ``classes_``."""
        self._require_fitted("predict_proba")
        X = self._checked_X(X, fitting=False)
        Xt = self._transform(X)
        expected = self.model_.input_shape[1:]
        if tuple(Xt.shape[1:]) != tuple(expected):
            raise ShapeError(f"{type(self).__name__}: the model was trained on inputs of shape {self.input_shape_} "
                             f"(network input {expected}), got inputs giving {tuple(Xt.shape[1:])}")
        if getattr(self, "keras_model_", None) is not None:  # trained with engine="keras": Keras predicts
            return self.keras_model_.predict(Xt, batch_size=max(self.batch_size, 64), verbose=0)
        return self.model_.predict(Xt, batch_size=max(self.batch_size, 64))

    def predict(self, X):
        """Predicted labels ``(N,)``, of the same kind as the training labels."""
        self._require_fitted("predict")
        return self.classes_[self._decide(self.predict_proba(X))]

    def score(self, X, y):
        """Accuracy on ``(X, y)`` (scikit-learn's ``score``)."""
        return self.evaluate(X, y)["accuracy"]

    def evaluate(self, X, y):
        """A report dict: accuracy, macro_f1, per-class precision/recall/f1/support,
        confusion_matrix (rows true, columns predicted, in ``classes`` order),
        classes, n_samples, and roc_auc for two classes."""
        self._require_fitted("evaluate")
        proba = self.predict_proba(X)
        y = np.asarray(y)
        if len(y) != len(proba):
            raise ShapeError(f"X has {len(proba)} samples but y has {len(y)} labels")
        if self.classes_.dtype.kind in "US":
            y = y.astype(str)
        unknown = sorted(set(np.unique(y).tolist()) - set(self.classes_.tolist()))
        if unknown:
            raise InputError(f"y holds labels the model was not trained on: {unknown[:10]}; "
                             f"known classes: {self.classes_.tolist()}")
        pred = self.classes_[self._decide(proba)]
        labels = self.classes_
        p, r, f, s = skm.precision_recall_fscore_support(y, pred, labels=labels, zero_division=0)
        names = [_native(c) for c in labels]
        report = {
            "accuracy": float(skm.accuracy_score(y, pred)),
            "macro_f1": float(skm.f1_score(y, pred, labels=labels, average="macro", zero_division=0)),
            "precision": dict(zip(map(str, names), map(float, p))),
            "recall": dict(zip(map(str, names), map(float, r))),
            "f1": dict(zip(map(str, names), map(float, f))),
            "support": dict(zip(map(str, names), map(int, s))),
            "confusion_matrix": skm.confusion_matrix(y, pred, labels=labels).tolist(),
            "classes": names,
            "n_samples": int(len(y)),
        }
        if len(labels) == 2 and len(np.unique(y)) == 2:
            report["roc_auc"] = float(skm.roc_auc_score(y == labels[1], proba[:, 1]))
        report.update(self._decision_report())
        return report

    # ---------------------------------------------------------- save/load
    def save(self, path):
        """Write the trained network, its settings and its preprocessing state to one ``.npz`` file."""
        self._require_fitted("save")
        cfg, arrays = self._get_state()
        params = {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.get_params().items()}
        extra_cfg = {"estimator": {"class": type(self).__name__, "module": type(self).__module__,
                                   "params": params, "state": cfg, "input_shape": list(self.input_shape_),
                                   "history": self.history_}}
        extra_arrays = {"classes": self.classes_, **{f"state/{k}": v for k, v in arrays.items()}}
        save_model(self.model_, path, extra_config=extra_cfg, extra_arrays=extra_arrays)

    @classmethod
    def load(cls, path):
        """A fitted classifier from a file written by ``save``."""
        model, extra_cfg, extra_arrays = load_model_with_extras(path)
        info = extra_cfg.get("estimator")
        if not info:
            raise ModelFileError(f"{path!r} holds a bare network, not a {cls.__name__} (use core.load_model)")
        if info.get("class") != cls.__name__:
            raise ModelFileError(f"{path!r} holds {_article(info.get('class'))}, not {_article(cls.__name__)}")
        valid = set(cls._param_names())
        est = cls(**{k: v for k, v in info.get("params", {}).items() if k in valid})
        est.model_ = model
        est.classes_ = extra_arrays["classes"]
        est.input_shape_ = tuple(info.get("input_shape", ()))
        est.history_ = info.get("history", {})
        state_arrays = {k[len("state/"):]: v for k, v in extra_arrays.items() if k.startswith("state/")}
        est._set_state(info.get("state", {}), state_arrays)
        return est

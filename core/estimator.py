"""``BaseClassifier``: the habits the domain classifiers share, written once.

A domain (activity recognition, images, scans) subclasses it and adds only
its preprocessing and its default network. The base class does the rest, in
scikit-learn's manner: settings in the constructor, ``fit(X, y)`` returns
``self``, labels may be strings and come back as given, ``predict``,
``predict_proba``, ``evaluate`` (a report dict), ``save`` and ``load``.

Hooks a subclass implements (all but ``build_network`` have defaults):

``_check_X(X, fitting)``
    Validate the raw input the domain accepts and return a float32 array
    ``(N, ...)``, or a :class:`core.data.OnDemand` for data read a batch at a
    time (trained on through ``SampleBatches``, predicted batch by batch);
    ``fitting`` is False for predict/evaluate.
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
``_train_network(model, x, y, validation_data, class_weight)``
    How the compiled network is trained (default: early stopping on the
    validation loss); a domain with its own recipe overrides it.

A subclass that sets ``self.class_weight`` (None, ``"balanced"`` or
``{label: weight}``) gets it applied to the loss. ``fit`` refuses continuous
targets (regression), and records ``train_index_`` / ``validation_index_``.
"""
import inspect
import math
import warnings

import numpy as np
from sklearn import metrics as skm
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.model_selection import GroupShuffleSplit, StratifiedShuffleSplit

from . import callbacks, optimizers
from .constraints import Interval, Mapping, Options, validate_settings
from .data import OnDemand, SampleBatches
from .exceptions import InputError, NotFittedError, ShapeError
from .serialization import restore_estimator, save_model
from .utils import check_array, check_finite


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
    if arr.dtype.kind in "fc" and (arr.dtype.kind == "c" or not np.all(arr == np.round(arr))):
        raise InputError(f"{name} holds continuous values (e.g. {_native(arr[arr != np.round(arr.real)][0])!r}), "
                         "not class labels; this is a classifier, and a regression target (such as a .ts file's "
                         "@targetLabel) cannot be learned as classes. Pass integer or string labels")
    classes, idx = np.unique(arr, return_inverse=True)
    return classes, idx.reshape(-1)


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

    #: what each constructor setting accepts, validated once at the start of every ``fit``
    #: (see ``core.constraints``); a subclass extends it with its own settings
    _parameter_constraints = {
        "epochs": [Interval(int, 1, None)],
        "batch_size": [Interval(int, 1, None)],
        "learning_rate": [Interval(float, 0, None, closed="neither")],
        "seed": [Interval(int, 0, 2**32 - 1)],
        "validation_split": [Interval(float, 0, 1, closed="left")],
        "patience": [Interval(int, 0, None)],
        "verbose": [Options(0, 1, 2)],
        "engine": [Options("numpy", "keras")],
        "class_weight": [None, Options("balanced"), Mapping()],
    }

    @classmethod
    def _param_names(cls):
        sig = inspect.signature(cls.__init__)
        return [p.name for p in sig.parameters.values()
                if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]

    def _inference_batch_size(self):
        """Batch size for predictions: at least 64, more when training used larger batches."""
        bs = self.batch_size
        return max(bs, 64) if isinstance(bs, int) and not isinstance(bs, bool) else 64

    def _validate_params(self):
        """Every setting against ``_parameter_constraints``, then the subclass's own
        cross-setting checks (``_check_settings``); raises ``ConfigError``."""
        validate_settings(type(self).__name__, self._parameter_constraints, self.get_params(deep=False))
        self._check_settings()

    def _check_settings(self):
        """Checks that involve several settings at once; the table covers single settings."""

    def _class_weight_indices(self, classes, y_idx):
        """``class_weight`` (None, ``"balanced"`` or ``{label: weight}``) as ``{class index: weight}``, or None.

        ``"balanced"`` weighs each class by ``n_samples / (n_classes * count)``
        (scikit-learn's rule); a dict must name known labels, and labels it
        leaves out weigh 1."""
        cw = getattr(self, "class_weight", None)
        if cw is None:
            return None
        if cw == "balanced":
            counts = np.bincount(y_idx, minlength=len(classes))
            return {i: float(len(y_idx) / (len(classes) * c)) for i, c in enumerate(counts) if c}
        lookup = {str(_native(c)): i for i, c in enumerate(classes)}
        out = {}
        for label, weight in cw.items():
            key = str(_native(label))
            if key not in lookup:
                raise InputError(f"class_weight names label {label!r}, which is not in y; "
                                 f"known classes: {[_native(c) for c in classes]}")
            if (isinstance(weight, bool) or not isinstance(weight, (int, float, np.number))
                    or not 0 <= float(weight) < float("inf")):
                raise InputError(f"class_weight[{label!r}] must be a finite non-negative number, got {weight!r}")
            out[lookup[key]] = float(weight)
        return out

    def _checked_X(self, X, fitting):
        """The domain's ``_check_X``, then the one check every domain needs: finite values."""
        X = self._check_X(X, fitting)
        if isinstance(X, np.ndarray):  # a domain may return data it reads on demand (checked as it is read)
            check_finite(X, "X")
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

    def _compile(self, model, learning_rate=None):
        """Adam at ``learning_rate`` (a number or a ``core.optimizers`` schedule; default the
        ``learning_rate`` setting) on the sparse cross-entropy, with accuracy reported."""
        model.compile(optimizer=optimizers.Adam(learning_rate=self.learning_rate if learning_rate is None
                                                else learning_rate),
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
        self._validate_params()
        self.keras_model_ = None  # a refit replaces whatever an earlier fit left
        X = self._checked_X(X, fitting=True)
        classes, y_idx = encode_labels(y)
        if len(y_idx) != len(X):
            raise ShapeError(f"X has {len(X)} samples but y has {len(y_idx)} labels")
        if len(classes) < 2:
            raise InputError(f"y holds a single class ({_native(classes[0])!r}); a classifier needs at least two")
        train, val = self._validation_indices(y_idx, groups)
        self._fit_preprocessing(X[train])
        Xt = self._transform(X)
        model = self.build_network(tuple(Xt.shape[1:]), len(classes))
        engine = getattr(self, "engine", "numpy")
        if engine == "keras":  # the same network, initial weights, data and settings, trained by Keras
            from .keras_compat import KerasTwin
            model = KerasTwin(model)
        self._compile(model)
        history = self._train_network(model, Xt[train], y_idx[train],
                                      (Xt[val], y_idx[val]) if len(val) else None,
                                      self._class_weight_indices(classes, y_idx[train]))
        if engine == "keras":
            self.keras_model_, model = model.keras, model.core
        self.model_ = model
        self.classes_ = classes
        self.history_ = history.history
        self.input_shape_ = tuple(X.shape[1:])
        self.n_train_, self.n_val_ = len(train), len(val)
        self.train_index_, self.validation_index_ = train, val
        self.epochs_trained_ = len(history.epoch)
        self._fit_decision(Xt[val], y_idx[val])
        return self

    def _train_network(self, model, x, y, validation_data, class_weight, *, epochs=None, batch_size=None,
                       training_callbacks=None):
        """Train the compiled ``model`` on network inputs ``x`` and class indices ``y``; return its History.

        The default: at most ``epochs`` passes, early stopping on the
        validation loss (when there is a validation part, unless the
        subclass sets ``early_stopping = False``) with the best weights
        restored. A domain overrides this hook to train another way, and may
        call it back with the ``epochs``, ``batch_size`` and callbacks its own
        recipe resolved (defaults: the settings, ``_training_callbacks``).
        """
        if training_callbacks is None:
            training_callbacks = self._training_callbacks(validation_data is not None)
        return model.fit(**self._fit_data(x, y, validation_data, batch_size),
                         epochs=self.epochs if epochs is None else epochs, verbose=self.verbose,
                         callbacks=training_callbacks, batch_transform=self._augment, class_weight=class_weight)

    def _fit_data(self, x, y, validation_data, batch_size=None):
        """The data arguments of ``model.fit`` for network inputs ``x`` and class indices ``y``:
        ``x, y, batch_size, shuffle, validation_data`` for arrays; for samples read on demand
        (:class:`core.data.OnDemand`) a :class:`core.data.SampleBatches` source (and one for the
        validation part), shuffled as arrays are, so both train the same weights. ``batch_size``
        defaults to the ``batch_size`` setting. A domain that overrides ``_train_network`` passes
        them on as ``model.fit(**self._fit_data(x, y, validation_data, batch_size), epochs=...)``."""
        batch_size = self.batch_size if batch_size is None else batch_size
        if isinstance(x, OnDemand) and getattr(self, "engine", "numpy") == "keras":  # the Keras twin reads arrays
            x = np.asarray(x)
            if validation_data is not None:
                validation_data = (np.asarray(validation_data[0]), validation_data[1])
        if not isinstance(x, OnDemand):
            return {"x": x, "y": y, "batch_size": batch_size, "shuffle": True, "validation_data": validation_data}
        val = None
        if validation_data is not None:
            val = SampleBatches(validation_data[0], validation_data[1], batch_size, shuffle=False)
        return {"x": SampleBatches(x, y, batch_size, seed=self.seed, shuffle=True),
                "validation_data": val}

    def _training_callbacks(self, validating, patience=None):
        """Early stopping on the validation loss after ``patience`` idle epochs (default: the
        ``patience`` setting) with the best weights restored, when there is a validation part and
        the subclass does not keep it for other uses (``early_stopping = False``)."""
        if validating and getattr(self, "early_stopping", True):
            patience = self.patience if patience is None else patience
            return [callbacks.EarlyStopping(monitor="val_loss", patience=patience, restore_best_weights=True)]
        return []

    # ----------------------------------------------------------- predict
    def _require_fitted(self, what):
        if not hasattr(self, "model_"):
            raise NotFittedError(f"{type(self).__name__}.{what}: call fit() or load() first")

    def predict_proba(self, X):
        """Class probabilities ``(N, n_classes)``, columns in the order of ``classes_``."""
        self._require_fitted("predict_proba")
        return self._predict_network(self._network_input(self._checked_X(X, fitting=False)))

    def _predict_network(self, Xt):
        """Class probabilities for network inputs ``Xt``: an array, or data read on demand that
        offers ``batches(size)`` (predicted a batch at a time, so memory holds one batch)."""
        bs = self._inference_batch_size()
        if getattr(self, "keras_model_", None) is not None:  # trained with engine="keras": Keras predicts
            def predict(a):
                return self.keras_model_.predict(a, batch_size=bs, verbose=0)
        else:
            def predict(a):
                return self._model_for_input(a).predict(a, batch_size=bs)
        if isinstance(Xt, np.ndarray) or not hasattr(Xt, "batches"):
            return predict(Xt)
        return np.concatenate([predict(b) for b in Xt.batches(bs)], axis=0)

    def _model_for_input(self, Xt):
        """The network that takes the network inputs ``Xt``: the trained ``model_`` (a domain whose
        networks take inputs of other sizes, as HAR's other series lengths, gives one rebuilt for them)."""
        return self.model_

    def _network_input(self, X):
        """Checked input -> the network's input (``_transform``), its shape checked against the model."""
        Xt = self._transform(X)
        expected = self.model_.input_shape[1:]
        if tuple(Xt.shape[1:]) != tuple(expected):
            raise ShapeError(f"{type(self).__name__}: the model was trained on inputs of shape {self.input_shape_} "
                             f"(network input {expected}), got inputs giving {tuple(Xt.shape[1:])}")
        return Xt

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

    # ----------------------------------------------------------- explain
    #: what ``explain(method=...)`` accepts
    EXPLAIN_METHODS = ("grad_cam", "hires_cam", "guided_grad_cam", "saliency", "integrated_gradients")
    #: the method ``explain`` uses by default; a domain whose networks end in Flatten + Dense picks "hires_cam"
    default_explain_method = "grad_cam"

    def _class_indices(self, label, n):
        """``label`` (None, one label of ``classes_`` or one per sample) -> None or class indices ``(n,)``."""
        if label is None:
            return None
        known = self.classes_.tolist()
        arr = np.asarray(label)
        if self.classes_.dtype.kind in "US" and arr.dtype.kind not in "US":
            arr = arr.astype(str)
        values = [arr.item()] if arr.ndim == 0 else arr.reshape(-1).tolist()
        if arr.ndim > 1 or (arr.ndim == 1 and len(values) != n):
            raise ShapeError(f"{type(self).__name__}.explain: label must be one class or one per sample ({n}), "
                             f"found shape {arr.shape}")
        index = {c: i for i, c in enumerate(known)}
        unknown = [v for v in values if v not in index]
        if unknown:
            raise InputError(f"{type(self).__name__}.explain: label {unknown[0]!r} is not a class of this "
                             f"model; its classes are {known}")
        out = np.array([index[v] for v in values], dtype=np.int64)
        return np.full(n, out[0]) if arr.ndim == 0 else out

    def _explain(self, X, label=None, method=None, layer=None, smooth=0, seed=0):
        """``(maps (N, *spatial), explained class indices (N,), checked X, method)``."""
        self._require_fitted("explain")
        method = self._check_explain_method(method, smooth, layer)
        Xc = self._checked_X(X, fitting=False)
        if not isinstance(Xc, np.ndarray):  # samples read on demand: the maps are held in memory anyway
            Xc = np.asarray(Xc)
        maps, classes = self._explain_network_input(self._network_input(Xc), label, method, layer, smooth, seed)
        return maps, classes, Xc, method

    def _check_explain_method(self, method, smooth, layer):
        """The method to use (``None``: the domain's default), after checking the arguments that go with it."""
        name = type(self).__name__
        method = self.default_explain_method if method is None else method
        if method not in self.EXPLAIN_METHODS:
            raise InputError(f"{name}.explain: method must be one of {list(self.EXPLAIN_METHODS)}, got {method!r}")
        if method != "saliency" and smooth:
            raise InputError(f"{name}.explain: smooth={smooth!r} applies to method='saliency' only (SmoothGrad), "
                             f"not to {method!r}")
        if method not in ("grad_cam", "hires_cam", "guided_grad_cam") and layer is not None:
            raise InputError(f"{name}.explain: layer applies to the Grad-CAM methods only, not to {method!r}")
        return method

    def _explain_network_input(self, Xt, label, method, layer, smooth, seed):
        """Maps ``(N, *spatial)`` float32 and the explained class indices for the network input ``Xt``."""
        from . import explain

        classes = self._class_indices(label, len(Xt))
        model = self._model_for_input(Xt)
        if classes is None:  # the class ``predict`` gives: through the decision (a threshold), not the argmax
            classes = self._decide(self._predict_network(Xt))
        if method in ("grad_cam", "hires_cam"):
            maps = explain.grad_cam(model, Xt, classes, layer=layer,
                                    weighting="mean" if method == "grad_cam" else "elementwise")
        elif method == "guided_grad_cam":
            maps = explain.guided_grad_cam(model, Xt, classes, layer=layer)
        elif method == "saliency":
            grads = explain.saliency(model, Xt, classes, smooth=smooth, seed=seed)
            maps = np.abs(grads).max(axis=-1)      # the strongest channel at each position
        else:
            maps = np.abs(explain.integrated_gradients(model, Xt, classes).sum(axis=-1))
        return maps.astype(np.float32), classes

    def explain(self, X, label=None, method=None, layer=None, smooth=0, seed=0):
        """Relevance maps: where in each input the network found the evidence for a class.

        Parameters
        ----------
        X : the domain's input (as for ``predict``).
        label : None, a class label, or one label per sample
            The class explained; None: each sample's predicted class.
        method : None, "grad_cam", "hires_cam", "saliency" or "integrated_gradients"
            None: the domain's default (``default_explain_method``).
            ``"grad_cam"``: Grad-CAM of the last convolution (or of
            ``layer``), carried back to the input grid through the layers'
            geometry (see :mod:`core.explain`); non-negative. ``"hires_cam"``:
            HiResCAM, the same with the gradient applied position by position
            (better for networks that end in Flatten + Dense).
            ``"guided_grad_cam"``: Grad-CAM times the smoothed input-gradient
            magnitude (finer than the last convolution's grid). ``"saliency"``:
            the largest absolute input gradient over the channels at each
            position; with ``smooth=n``, SmoothGrad over n noisy copies
            (seeded by ``seed``). ``"integrated_gradients"``: the absolute
            sum over channels of the integrated gradients from a zero
            (training-mean) input.
        layer : index, name or layer of a convolution, for Grad-CAM.

        Returns
        -------
        float32 array ``(N, *spatial)``: the network input's grid without the
        channel axis (windows ``(N, steps)``, images ``(N, H, W)``, volumes
        ``(N, D, H, W)``); the domain classifiers document theirs.
        """
        return self._explain(X, label, method, layer, smooth, seed)[0]

    def _draw_explanation(self, sample, relevance, path, title):
        """Draw one checked input sample (no batch axis) with its relevance map; the domains
        implement it with :mod:`core.plots`."""
        raise NotImplementedError(f"{type(self).__name__} does not draw explanations")

    def plot_explanation(self, X, path, label=None, method=None, layer=None, true_labels=None):
        """Draw each sample of ``X`` with its relevance map (:meth:`explain`) as a PNG.

        ``path``: one file name (``X`` must then hold one sample) or one per
        sample. ``true_labels`` (optional, one per sample) goes into the
        titles. Returns the relevance maps.
        """
        maps, classes, Xc, method = self._explain(X, label, method, layer)
        paths = [path] if isinstance(path, (str, bytes)) or hasattr(path, "__fspath__") else list(path)
        if len(paths) != len(maps):
            raise ShapeError(f"{type(self).__name__}.plot_explanation: {len(maps)} sample(s) but {len(paths)} "
                             f"path(s); give one path per sample")
        proba = self.predict_proba(X)
        names = {"grad_cam": "Grad-CAM", "hires_cam": "HiResCAM", "guided_grad_cam": "guided Grad-CAM",
                 "saliency": "saliency",
                 "integrated_gradients": "integrated gradients"}
        decided = self._decide(proba)
        for i, p in enumerate(paths):
            pred = int(decided[i])
            parts = [] if true_labels is None else [f"true {_native(np.asarray(true_labels)[i])}"]
            parts.append(f"predicted {_native(self.classes_[pred])} ({proba[i, pred]:.2f})")
            parts.append(f"{names[method]} for {_native(self.classes_[classes[i]])}")
            self._draw_explanation(Xc[i], maps[i], p, ", ".join(parts))
        return maps

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
        """A fitted classifier from a file written by ``save`` (checked: see
        ``core.serialization.restore_estimator``)."""
        return restore_estimator(cls, path)

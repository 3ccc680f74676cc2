"""BaseClassifier: the habits the three domain classifiers share."""
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import cross_val_score

from core import ConfigError, InputError, Input, ModelFileError, NotFittedError, Sequential, layers
from core.estimator import BaseClassifier


class Blobs(BaseClassifier):
    """A minimal domain: vectors, one dense layer."""

    def build_network(self, input_shape, n_classes):
        return Sequential([Input(input_shape), layers.Dense(n_classes, activation="softmax")], seed=self.seed)


class Other(Blobs):
    pass


def blobs(n=120, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.normal(size=(n, 4)) + np.eye(4)[y] * 4
    return x.astype(np.float32), np.array(["cat", "dog", "eel"])[y]


def test_string_labels_come_back_and_report_has_the_fields(tmp_path):
    x, y = blobs()
    clf = Blobs(epochs=30, learning_rate=0.05).fit(x[:90], y[:90])
    assert set(clf.predict(x[90:])) <= {"cat", "dog", "eel"}
    report = clf.evaluate(x[90:], y[90:])
    assert report["accuracy"] > 0.9 and report["classes"] == ["cat", "dog", "eel"]
    assert np.array(report["confusion_matrix"]).sum() == 30 and 0 <= report["macro_f1"] <= 1
    clf.save(tmp_path / "c.npz")
    back = Blobs.load(tmp_path / "c.npz")
    np.testing.assert_array_equal(back.predict_proba(x), clf.predict_proba(x))
    with pytest.raises(ModelFileError, match="holds a Blobs, not an Other"):
        Other.load(tmp_path / "c.npz")


def test_works_with_scikit_learn_model_selection():
    x, y = blobs()
    scores = cross_val_score(Blobs(epochs=20, learning_rate=0.05), x, y, cv=3)
    assert len(scores) == 3 and scores.min() > 0.8
    assert clone(Blobs(epochs=7)).epochs == 7


@pytest.mark.parametrize("setting,value", [("validation_split", "a"), ("learning_rate", "fast"), ("seed", 1.5),
                                           ("epochs", 0), ("batch_size", -2), ("patience", -1), ("engine", "torch")])
def test_bad_settings_are_named(setting, value):
    x, y = blobs(30)
    with pytest.raises(ConfigError, match=setting):
        Blobs(**{setting: value}).fit(x, y)


def test_single_class_nan_and_unfitted():
    x, y = blobs(30)
    with pytest.raises(InputError, match="single class"):
        Blobs().fit(x, np.array(["cat"] * 30))
    with pytest.raises(NotFittedError):
        Blobs().predict(x)
    clf = Blobs(epochs=1).fit(x, y)
    assert clf.keras_model_ is None
    bad = x.copy()
    bad[0, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        clf.predict(bad)
    with pytest.raises(InputError, match="not trained on.*'fox'"):
        clf.evaluate(x[:2], np.array(["cat", "fox"]))

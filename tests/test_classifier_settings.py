"""Every domain classifier validates its settings once, in the base ``fit``,
against its declarative constraints table: a bad value raises ``ConfigError``
naming the setting before any work is done."""
import numpy as np
import pytest

import har
import medical
import vision
from core.exceptions import ConfigError

CLASSIFIERS = {"har": har.ActivityClassifier, "vision": vision.ImageClassifier, "medical": medical.ScanClassifier}

SHARED = [("engine", "torch"), ("engine", None), ("epochs", 0), ("epochs", 2.5), ("epochs", True),
          ("patience", -3), ("patience", "3"), ("batch_size", 0), ("batch_size", "x"), ("learning_rate", 0),
          ("learning_rate", -1e-3), ("learning_rate", float("inf")), ("learning_rate", "fast"),
          ("validation_split", 1.0), ("validation_split", -0.1), ("validation_split", "a"), ("seed", -1),
          ("seed", 1.5), ("verbose", 3)]


def _data(domain):
    rng = np.random.default_rng(0)
    if domain == "har":
        return rng.normal(size=(12, 32, 3)).astype(np.float32), np.arange(12) % 2
    if domain == "vision":
        return rng.random((12, 8, 8)).astype(np.float32), np.arange(12) % 2
    return rng.normal(size=(6, 8, 8, 8)).astype(np.float32), np.arange(6) % 2


@pytest.mark.parametrize("domain", list(CLASSIFIERS))
@pytest.mark.parametrize("setting,value", SHARED, ids=[f"{k}={v!r}" for k, v in SHARED])
def test_invalid_shared_setting_raises_config_error_naming_it(domain, setting, value, monkeypatch):
    cls = CLASSIFIERS[domain]
    clf = cls(**{setting: value})

    def no_work(*args, **kwargs):  # validation must come before any data is touched
        raise AssertionError("fit did work before validating its settings")
    monkeypatch.setattr(clf, "_checked_X", no_work)
    with pytest.raises(ConfigError, match=setting):
        clf.fit(*_data(domain))


@pytest.mark.parametrize("domain", list(CLASSIFIERS))
def test_every_setting_has_a_constraint(domain):
    cls = CLASSIFIERS[domain]
    missing = set(cls._param_names()) - set(cls._parameter_constraints)
    assert not missing, f"{cls.__name__} settings without a constraint: {sorted(missing)}"


@pytest.mark.parametrize("domain", list(CLASSIFIERS))
def test_get_and_set_params_are_scikit_learns(domain):
    from sklearn.base import clone
    cls = CLASSIFIERS[domain]
    clf = cls(epochs=3, seed=4)
    assert clf.get_params()["epochs"] == 3 and clone(clf).get_params() == clf.get_params()
    assert clf.set_params(patience=2) is clf and clf.patience == 2
    with pytest.raises(ValueError, match="Invalid parameter"):
        clf.set_params(no_such_setting=1)
    assert "epochs=3" in repr(clf)

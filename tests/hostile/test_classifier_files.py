"""Hostile classifier files (``*Classifier.load``): settings, classes and
preprocessing state are checked against the network at load, not at predict."""
import numpy as np
import pytest

import vision
from core import ModelFileError

from .conftest import rewrite


@pytest.fixture(scope="module")
def clf_file(tmp_path_factory):
    X, y = vision.load_digits()
    keep = np.isin(y, [0, 1, 2])
    clf = vision.ImageClassifier(architecture="tiny", epochs=1, validation_split=0, seed=0)
    clf.fit(X[keep][:60], y[keep][:60])
    path = tmp_path_factory.mktemp("clf") / "clf.npz"
    clf.save(path)
    return str(path), X[keep][:5]


def _estimator(change):
    def meta(m):
        change(m["extra"])
        return m
    return meta


def _drop(prefix):
    def arrays(a):
        for k in [k for k in a if k.startswith(prefix)]:
            del a[k]
    return arrays


ATTACKS = {
    "classes_removed": dict(arrays=_drop("extra/classes"), expected="extra/classes"),
    "estimator_info_as_list": dict(meta=_estimator(lambda e: e.update(estimator=[1, 2])), expected="JSON object"),
    "state_arrays_removed": dict(arrays=_drop("extra/state/"), expected="preprocessing state"),
    "batch_size_text": dict(meta=_estimator(lambda e: e["estimator"]["params"].update(batch_size="x")),
                            expected="batch_size"),
    "fewer_classes_than_outputs": dict(arrays=lambda a: a.update({"extra/classes": a["extra/classes"][:2]}),
                                       expected="2 class label(s) but the network has 3 outputs"),
    "params_as_list": dict(meta=_estimator(lambda e: e["estimator"].update(params=[1])), expected="params"),
    "input_shape_text": dict(meta=_estimator(lambda e: e["estimator"].update(input_shape="8x8")),
                             expected="input_shape"),
    "state_nan": dict(arrays=lambda a: a["extra/state/std"].__setitem__(..., np.nan), expected="extra/state/std"),
}


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_broken_classifier_file_is_refused_at_load(tmp_path, clf_file, attack):
    good, _ = clf_file
    spec = ATTACKS[attack]
    path = rewrite(good, tmp_path / f"{attack}.npz", meta=spec.get("meta"), arrays=spec.get("arrays"))
    with pytest.raises(ModelFileError) as info:
        vision.ImageClassifier.load(path)
    assert path in str(info.value) and spec["expected"] in str(info.value)


def test_the_good_file_still_loads_and_predicts(clf_file):
    path, X = clf_file
    clf = vision.ImageClassifier.load(path)
    assert clf.predict(X).shape == (5,) and set(clf.classes_.tolist()) == {0, 1, 2}

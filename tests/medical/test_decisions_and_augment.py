"""Binary decision thresholds chosen on validation data, and the 3-D augmentation."""
import numpy as np
import pytest

import medical
from core.exceptions import ConfigError
from medical.augment import augment_batch, augment_volume, check_augment
from medical.decision import check_threshold, choose_threshold


def test_youden_and_targets_on_shifted_scores():
    # every score above 0.8, ranking perfect: argmax calls everything positive, Youden separates them
    y = np.array([0, 0, 0, 1, 1, 1], bool)
    s = np.array([0.81, 0.85, 0.90, 0.92, 0.97, 0.99])
    t, info = choose_threshold(y, s)
    assert 0.90 < t < 0.92 and info["val_sensitivity"] == 1.0 and info["val_specificity"] == 1.0
    s2 = np.array([0.1, 0.5, 0.6, 0.55, 0.9, 0.95])
    t, info = choose_threshold(y, s2, ("sensitivity", 0.95))
    assert 0.5 < t <= 0.55 and info["val_sensitivity"] == 1.0
    t, info = choose_threshold(y, s2, ("specificity", 1.0))
    assert 0.6 < t <= 0.9 and info["val_specificity"] == 1.0
    assert choose_threshold(np.ones(3, bool), np.array([0.2, 0.3, 0.9]))[0] == 0.5


@pytest.mark.parametrize("bad", ["otsu", 0.0, 1.0, ("sensitivity", 1.5), ("recall", 0.9), True])
def test_bad_threshold_settings(bad):
    with pytest.raises(ConfigError, match="threshold"):
        check_threshold(bad)


def test_augmentation_is_seeded_and_respects_the_flip_axes():
    rng = np.random.default_rng(0)
    vol = rng.normal(size=(10, 12, 8, 1)).astype(np.float32)
    everything = check_augment({"shift": 1, "flip": (1, 2), "rotate": 8, "scale": 0.1, "gain": 0.2,
                                "gamma": 0.2, "noise": 0.05})
    a = augment_batch(np.stack([vol, vol]), np.random.default_rng(3), everything)
    b = augment_batch(np.stack([vol, vol]), np.random.default_rng(3), everything)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (2, 10, 12, 8, 1) and a.dtype == np.float32 and np.isfinite(a).all()
    assert not np.array_equal(a[0], a[1])
    # flips only on the axes asked for: a left-right asymmetric volume keeps its left-right profile
    flips = check_augment({"flip": (1, 2)})
    lr = np.zeros((6, 6, 6, 1), np.float32)
    lr[:2] = 1.0
    for seed in range(8):
        out = augment_volume(lr, np.random.default_rng(seed), flips)
        np.testing.assert_array_equal(out.sum(axis=(1, 2, 3)), lr.sum(axis=(1, 2, 3)))
    seen = {tuple(augment_volume(lr, np.random.default_rng(s), check_augment({"flip": (0,)}))[:, 0, 0, 0])
            for s in range(8)}
    assert len(seen) == 2
    assert check_augment(True, 3)["shift"] == 3 and check_augment(True)["flip"] == ()
    assert check_augment(False) is None
    with pytest.raises(ConfigError, match="unknown"):
        check_augment({"elastic": 1})
    with pytest.raises(ConfigError, match="rotate"):
        check_augment({"rotate": 90})


def test_threshold_is_saved_and_reported(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(24, 8, 8, 8)).astype(np.float32)
    y = np.array(["a", "b"] * 12)
    X[y == "b", 3:5, 3:5, 3:5] += 3.0
    clf = medical.ScanClassifier(shape=(8, 8, 8), filters=(4,), epochs=3, validation_split=0.25,
                                 augment={"gain": 0.1, "noise": 0.05}).fit(X, y)
    report = clf.evaluate(X, y)
    assert report["threshold"] == clf.threshold_ and "6 validation scans" in report["threshold_source"]
    assert report["positive_class"] == "b"
    proba = clf.predict_proba(X)[:, 1]
    np.testing.assert_array_equal(clf.predict(X) == "b", proba >= clf.threshold_)
    clf.save(tmp_path / "m.npz")
    back = medical.ScanClassifier.load(tmp_path / "m.npz")
    assert back.threshold_ == clf.threshold_ and back.evaluate(X, y) == report
    fixed = medical.ScanClassifier(shape=(8, 8, 8), filters=(4,), epochs=1, threshold=0.3).fit(X, y)
    assert fixed.threshold_ == 0.3
    plain = medical.ScanClassifier(shape=(8, 8, 8), filters=(4,), epochs=1, threshold=None).fit(X, y)
    assert "threshold" not in plain.evaluate(X, y)

"""ActivityClassifier: learning, save/load, predict_recording, bad inputs."""
import time

import numpy as np
import pandas as pd
import pytest
from threadpoolctl import threadpool_limits

import har
from core.exceptions import ConfigError, InputError, NotFittedError, ShapeError
from har.classifier import _rotations

# the accelerometer settings: x, y, z triples rotated by the augmentation, a validation split by subject
FAST = dict(epochs=8, batch_size=16, patience=3, validation_split=0.15, sensor_axes="triples")
EASY = ("walking", "running", "sitting", "lying")


@pytest.fixture(autouse=True)
def one_blas_thread():
    # Small matrix products are much slower with several BLAS threads on a busy machine.
    with threadpool_limits(1, user_api="blas"):
        yield


@pytest.fixture(scope="module")
def small():
    X, y, subjects = har.make_synthetic(seed=1, n_subjects=6, windows_per_activity=8, activities=EASY)
    train, test = har.subject_split(subjects, test_size=2, seed=0)
    return X, y, subjects, train, test


@pytest.fixture(scope="module")
def fitted(small):
    X, y, subjects, train, _ = small
    with threadpool_limits(1, user_api="blas"):
        return har.ActivityClassifier(seed=0, **FAST).fit(X[train], y[train], groups=subjects[train])


def test_fast_settings_learn_held_out_subjects(small, fitted):
    X, y, subjects, train, test = small
    assert not set(subjects[train]) & set(subjects[test])
    report = fitted.evaluate(X[test], y[test])
    assert report["accuracy"] >= 0.85, report
    assert report["classes"] == sorted(EASY)
    assert np.array(report["confusion_matrix"]).sum() == len(test)
    assert fitted.input_shape_ == (128, 3)
    assert set(fitted.predict(X[test][:5])) <= set(EASY)
    proba = fitted.predict_proba(X[test])
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)


def test_standardizer_is_fitted_on_training_data_only(small, fitted):
    X, _, _, train, _ = small
    mean = fitted.standardizer_.mean_
    assert mean.shape == (3,)
    # fitted on the training part of X[train] (validation subjects excluded), so close to but not all of it
    assert np.allclose(mean, X[train].reshape(-1, 3).mean(0), atol=1.0)
    assert fitted.n_train_ < len(train) and fitted.n_val_ > 0


def test_same_seed_same_model(small):
    X, y, subjects, train, test = small
    a = har.ActivityClassifier(seed=3, epochs=2, batch_size=16).fit(X[train], y[train], groups=subjects[train])
    b = har.ActivityClassifier(seed=3, epochs=2, batch_size=16).fit(X[train], y[train], groups=subjects[train])
    np.testing.assert_array_equal(a.predict_proba(X[test]), b.predict_proba(X[test]))


def test_save_load_round_trip(tmp_path, small, fitted):
    X, _, _, _, test = small
    path = tmp_path / "har_model.npz"
    fitted.save(path)
    loaded = har.ActivityClassifier.load(path)
    np.testing.assert_array_equal(loaded.predict_proba(X[test]), fitted.predict_proba(X[test]))
    np.testing.assert_array_equal(loaded.standardizer_.mean_, fitted.standardizer_.mean_)
    np.testing.assert_array_equal(loaded.standardizer_.scale_, fitted.standardizer_.scale_)
    assert loaded.get_params() == fitted.get_params()
    assert loaded.classes_.tolist() == fitted.classes_.tolist()
    assert loaded.input_shape_ == (128, 3)
    with pytest.raises(ShapeError, match="trained on 3 channel"):
        loaded.predict(X[test][:, :, :2])


def test_other_lengths_follow_a_refit(small):
    # the network rebuilt for another length is the current fit's, not the one before it
    X, y, subjects, train, test = small
    short = X[test][:, :64]
    with threadpool_limits(1, user_api="blas"):
        clf = har.ActivityClassifier(seed=0, **dict(FAST, epochs=1)).fit(X[train], y[train])
        first = clf.predict_proba(short)
        clf.set_params(seed=5).fit(X[train], y[train])
        fresh = har.ActivityClassifier(seed=5, **dict(FAST, epochs=1)).fit(X[train], y[train])
        np.testing.assert_array_equal(clf.predict_proba(short), fresh.predict_proba(short))
        np.testing.assert_array_equal(clf.explain(short), fresh.explain(short))
    assert not np.array_equal(first, fresh.predict_proba(short))


def test_predict_recording(small, fitted):
    signal, truth = har.simulate_recording([("walking", 12), ("lying", 8)], seed=5)
    out = fitted.predict_recording(signal, step=64)
    assert isinstance(out, pd.DataFrame)
    assert list(out.columns) == ["start", "end", "label", "probability"]
    n = 1 + (len(signal) - 128) // 64
    assert len(out) == n and out["start"].tolist() == list(range(0, n * 64, 64))
    assert (out["end"] - out["start"] == 128).all()
    # the same as predicting the windows one by one
    windows = har.sliding_windows(signal, 128, 64)
    proba = fitted.predict_proba(windows)
    np.testing.assert_allclose(out["probability"], proba.max(axis=1), rtol=1e-6)
    assert out["label"].tolist() == fitted.classes_[proba.argmax(1)].tolist()
    # and mostly right: compare with the activity at each window's centre
    centre = truth[out["start"].to_numpy() + 64]
    assert (out["label"].to_numpy() == centre).mean() >= 0.8
    default_step = fitted.predict_recording(signal, batch_size=3)
    assert default_step["start"].iloc[1] == 64


def test_predict_recording_bad_inputs(fitted):
    with pytest.raises(ShapeError, match=r"signal has 100 samples, fewer than one window of 128"):
        fitted.predict_recording(np.zeros((100, 3)))
    with pytest.raises(ShapeError, match=r"shape \(T, 3\)"):
        fitted.predict_recording(np.zeros((500, 2)))
    signal = np.zeros((500, 3))
    signal[7, 1] = np.nan
    with pytest.raises(InputError, match="NaN"):
        fitted.predict_recording(signal)
    with pytest.raises(InputError, match="step"):
        fitted.predict_recording(np.zeros((500, 3)), step=0)
    for bad in ("x", 0, 2.5):
        with pytest.raises(InputError, match=r"predict_recording: batch_size must be an int >= 1"):
            fitted.predict_recording(np.zeros((500, 3)), batch_size=bad)


def test_bad_inputs(small, fitted):
    X, y, subjects, train, test = small
    with pytest.raises(InputError, match="single class"):
        har.ActivityClassifier(**FAST).fit(X[:10], np.array(["walking"] * 10))
    with pytest.raises(ShapeError, match="trained on 3 channel.*X has 6"):
        fitted.predict(np.concatenate([X[:4], X[:4]], axis=2))
    with pytest.raises(ShapeError, match=r"X has 1 \(shape \(128, 3\)\).*one-channel series.*pass X\[None\]"):
        fitted.predict(X[0])  # one window without its batch axis
    one_channel = har.ActivityClassifier(seed=0, **dict(FAST, epochs=1, sensor_axes=None))
    one_channel.fit(X[train][..., :1], y[train])
    with pytest.raises(ShapeError, match=r"shape \(128, 1\) holds series of 1 step.*is X\[None\]"):
        one_channel.predict(X[0, :, :1])  # read as 128 series of one step, it gave 128 labels
    with pytest.raises(ShapeError, match=r"for one window of shape \(steps,\) pass X\[None\]"):
        one_channel.predict(X[0, :, 0])
    assert one_channel.predict(X[:1, :, :1]).shape == (1,)
    assert fitted.predict(X[:4, :64]).shape == (4,)  # the network ends in global pooling: any length
    with pytest.raises(ShapeError, match="window=128.*windows of 128 samples, X has 64"):
        har.ActivityClassifier(window=128, **dict(FAST, epochs=1)).fit(X[train], y[train]).predict(X[:4, :64])
    bad = X[:4].copy()
    bad[0, 3, 1] = np.nan
    with pytest.raises(InputError, match="1 NaN values inside series"):
        fitted.predict(bad)
    with pytest.raises(ShapeError, match=r"\(N, steps, channels\)"):
        fitted.predict(X[:2, :, :, None])
    with pytest.raises(NotFittedError):
        har.ActivityClassifier().predict_proba(X[:2])
    with pytest.raises(NotFittedError):
        har.ActivityClassifier().predict_recording(X[0])
    with pytest.raises(ShapeError, match=r"window=64.*128 samples"):
        har.ActivityClassifier(window=64, **FAST).fit(X[train], y[train])
    with pytest.raises(ConfigError, match="rotation_range"):
        har.ActivityClassifier(rotation_range=-5, **FAST).fit(X[train], y[train])
    with pytest.raises(ConfigError, match="augment"):
        har.ActivityClassifier(augment="yes", **FAST).fit(X[train], y[train])
    with pytest.raises(ShapeError, match="labels"):
        har.ActivityClassifier(**FAST).fit(X[train], y[train][:-1])
    with pytest.raises(InputError, match="real numbers"):
        har.ActivityClassifier(**FAST).fit(np.full((4, 8, 3), "a"), y[:4])


def test_univariate_windows_and_no_augmentation():
    rng = np.random.default_rng(0)
    t = np.arange(64) / 32.0
    slow = np.sin(2 * np.pi * 1.0 * t + rng.uniform(0, 6, size=(40, 1)))
    fast = np.sin(2 * np.pi * 6.0 * t + rng.uniform(0, 6, size=(40, 1)))
    X = np.concatenate([slow, fast]) + rng.normal(scale=0.1, size=(80, 64))  # (N, steps): one channel
    y = np.array([0] * 40 + [1] * 40)
    clf = har.ActivityClassifier(augment=False, epochs=6, batch_size=16, validation_split=0, seed=1).fit(X, y)
    assert clf.input_shape_ == (64, 1)
    assert clf.score(X, y) >= 0.9
    assert clf.predict(X[:3]).dtype.kind == "i"


def test_rotations_are_proper_and_bounded():
    R = _rotations(200, 15.0, np.random.default_rng(0))
    np.testing.assert_allclose(R @ R.transpose(0, 2, 1), np.broadcast_to(np.eye(3), R.shape), atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(R), 1.0, atol=1e-12)
    angles = np.degrees(np.arccos(np.clip((np.trace(R, axis1=1, axis2=2) - 1) / 2, -1, 1)))
    assert angles.max() <= 15.0 + 1e-9 and angles.mean() > 2.0


def test_augmentation_rotates_triplets_and_scales_gain(small, fitted):
    X = small[0][:6].astype(np.float32)
    xb = fitted.standardizer_.transform(X)
    out = fitted._augment(xb, np.random.default_rng(0))
    raw = fitted.standardizer_.inverse_transform(out)
    ratio = np.linalg.norm(raw, axis=-1) / np.linalg.norm(X, axis=-1)   # per sample
    assert np.allclose(ratio, ratio[:, :1], rtol=1e-3)                   # one gain per window...
    assert ((ratio[:, 0] > 0.899) & (ratio[:, 0] < 1.101)).all()         # ...in [0.9, 1.1]
    assert not np.allclose(raw, X, atol=1e-2)                            # and the directions changed
    assert har.ActivityClassifier(augment=False)._augment is None


@pytest.mark.slow
def test_default_settings_reach_95_percent_on_held_out_subjects():
    X, y, subjects = har.make_synthetic(seed=0)
    train, test = har.subject_split(subjects, test_size=0.25, seed=0)
    start = time.perf_counter()
    clf = har.ActivityClassifier(seed=0).fit(X[train], y[train], groups=subjects[train])
    seconds = time.perf_counter() - start
    report = clf.evaluate(X[test], y[test])
    print(f"\nActivityClassifier defaults, make_synthetic(seed=0), {len(np.unique(subjects[test]))} held-out "
          f"subjects, {len(test)} windows: accuracy {report['accuracy']:.4f}, macro F1 {report['macro_f1']:.4f}, "
          f"{clf.epochs_trained_} epochs in {seconds:.1f} s")
    assert report["accuracy"] >= 0.95, report["confusion_matrix"]
    assert clf.normalize_ == "channel"  # raw accelerometer readings: gravity's level is kept
    signal, truth = har.simulate_recording([("upstairs", 10), ("standing", 10), ("jumping", 10)], seed=9)
    out = clf.predict_recording(signal)
    assert (out["label"].to_numpy() == truth[out["start"].to_numpy() + 64]).mean() >= 0.9

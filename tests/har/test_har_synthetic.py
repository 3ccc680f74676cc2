"""The accelerometer simulator: determinism, physics, speed."""
import time

import numpy as np
import pytest

import har
from core.exceptions import InputError

RATE = 50.0


@pytest.fixture(scope="module")
def data():
    return har.make_synthetic(seed=0)


def test_shapes_labels_subjects(data):
    X, y, subjects = data
    assert X.ndim == 3 and X.shape[1:] == (128, 3) and X.dtype == np.float32
    assert len(X) == len(y) == len(subjects) >= 2000
    assert set(y) == set(har.ACTIVITIES)
    assert subjects.dtype == np.int64 and subjects.min() == 1
    counts = {a: int((y == a).sum()) for a in har.ACTIVITIES}
    assert len(set(counts.values())) == 1  # balanced
    assert np.isfinite(X).all()


def test_deterministic_per_seed(data):
    X, y, subjects = data
    X2, y2, s2 = har.make_synthetic(seed=0)
    assert np.array_equal(X, X2) and np.array_equal(y, y2) and np.array_equal(subjects, s2)
    X3, _, _ = har.make_synthetic(seed=1)
    assert not np.allclose(X, X3)


def test_fast_for_default_size():
    start = time.process_time()  # CPU time: not inflated when other jobs share the machine
    har.make_synthetic(seed=3)
    assert time.process_time() - start < 1.0


@pytest.mark.parametrize("activity", ["standing", "sitting", "lying"])
def test_gravity_magnitude_at_rest(data, activity):
    X, y, _ = data
    magnitude = np.linalg.norm(X[y == activity].astype(np.float64), axis=-1)
    assert magnitude.mean() == pytest.approx(har.GRAVITY, abs=0.25)
    assert magnitude.std() < 0.4


def test_postures_point_gravity_differently(data):
    X, y, _ = data
    mean = {a: X[y == a].reshape(-1, 3).mean(0) for a in ("standing", "sitting", "lying")}
    unit = {a: v / np.linalg.norm(v) for a, v in mean.items()}
    assert unit["standing"][1] > 0.95                      # along the trunk when upright
    angle = lambda a, b: np.degrees(np.arccos(np.clip(unit[a] @ unit[b], -1, 1)))  # noqa: E731
    assert 15 < angle("standing", "sitting") < 45
    assert angle("standing", "lying") > 70


def dominant_frequency(windows):
    magnitude = np.linalg.norm(windows.astype(np.float64), axis=-1)
    magnitude -= magnitude.mean(axis=1, keepdims=True)
    power = (np.abs(np.fft.rfft(magnitude, axis=1)) ** 2).mean(axis=0)
    freqs = np.fft.rfftfreq(windows.shape[1], 1 / RATE)
    power[freqs < 0.5] = 0
    return freqs[power.argmax()]


@pytest.mark.parametrize("activity, low, high", [("walking", 1.5, 2.3), ("running", 2.3, 3.3),
                                                 ("upstairs", 1.2, 1.9), ("jumping", 1.6, 2.7)])
def test_cadence_peak_in_spectrum(data, activity, low, high):
    X, y, _ = data
    assert low <= dominant_frequency(X[y == activity]) <= high


def test_walking_has_harmonics_and_stride_sway(data):
    X, y, _ = data
    walk = X[y == "walking"].astype(np.float64)
    f0 = dominant_frequency(walk)
    vertical = walk[:, :, 1] - walk[:, :, 1].mean(axis=1, keepdims=True)
    power = (np.abs(np.fft.rfft(vertical, axis=1)) ** 2).mean(axis=0)
    freqs = np.fft.rfftfreq(128, 1 / RATE)
    band = lambda f: power[np.abs(freqs - f) < 0.3].max()  # noqa: E731
    floor = np.median(power[freqs > 8])
    assert band(f0) > 100 * floor and band(2 * f0) > 10 * floor


def test_flight_phases_read_near_zero_and_impacts_exceed_2g(data):
    X, y, _ = data
    for activity in ("running", "jumping"):
        magnitude = np.linalg.norm(X[y == activity].astype(np.float64), axis=-1)
        assert np.quantile(magnitude, 0.1) < 0.3 * har.GRAVITY     # free fall in the air
        assert magnitude.max() > 2 * har.GRAVITY                  # landing
        assert magnitude.mean() == pytest.approx(har.GRAVITY, rel=0.12)  # momentum: mean force is g
    walk = np.linalg.norm(X[y == "walking"].astype(np.float64), axis=-1)
    assert walk.min() > 0.3 * har.GRAVITY  # walking has no flight phase


def test_subjects_differ_more_than_windows_of_one_subject(data):
    X, y, subjects = data
    sit = y == "sitting"
    per_subject = np.array([X[sit & (subjects == s)].reshape(-1, 3).mean(0) for s in np.unique(subjects)])
    within = np.mean([X[sit & (subjects == s)].mean(axis=1).std(axis=0).mean() for s in np.unique(subjects)])
    assert per_subject.std(axis=0).mean() > within


def test_units_subset_and_bad_arguments():
    X, y, s = har.make_synthetic(seed=2, n_subjects=2, windows_per_activity=3, window=64, rate=20.0,
                                 activities=("walking", "lying"), units="g")
    assert X.shape == (12, 64, 3) and set(y) == {"walking", "lying"} and set(s) == {1, 2}
    assert np.linalg.norm(X[y == "lying"], axis=-1).mean() == pytest.approx(1.0, abs=0.03)
    with pytest.raises(InputError, match="unknown activities"):
        har.make_synthetic(activities=("swimming",))
    with pytest.raises(InputError, match="units"):
        har.make_synthetic(units="ft/s2")
    with pytest.raises(InputError, match="n_subjects"):
        har.make_synthetic(n_subjects=0)


def test_simulate_recording_follows_schedule():
    signal, labels = har.simulate_recording([("walking", 4), ("sitting", 2.5)], seed=1)
    assert signal.shape == (325, 3) and signal.dtype == np.float32
    assert labels[:200].tolist() == ["walking"] * 200 and labels[200:].tolist() == ["sitting"] * 125
    again, _ = har.simulate_recording([("walking", 4), ("sitting", 2.5)], seed=1)
    assert np.array_equal(signal, again)
    with pytest.raises(InputError, match="schedule"):
        har.simulate_recording([])

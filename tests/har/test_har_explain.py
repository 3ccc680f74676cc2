"""Grad-CAM on Conv1D windows must point at the evidence: a burst at a known, random time."""
import numpy as np
import pytest

import har

WIDTH = 16


def burst_windows(n, seed, steps=96):
    """Noise windows (steps, 3) holding one burst of WIDTH samples at a random start; the burst's
    waveform (fast sine, slow sine or square wave) is the class. Returns X, y, start."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    start = rng.integers(0, steps - WIDTH + 1, n)
    X = rng.normal(0.0, 1.0, (n, steps, 3)).astype(np.float32)
    t = np.arange(WIDTH)
    envelope = np.hanning(WIDTH + 2)[1:-1]
    waves = [np.sin(2 * np.pi * t / 4), np.sin(2 * np.pi * t / 16), np.sign(np.sin(2 * np.pi * t / 8) + 1e-9)]
    mix = np.array([1.0, -0.7, 0.5])
    for i in range(n):
        X[i, start[i]:start[i] + WIDTH] += (3.0 * envelope * waves[y[i]])[:, None] * mix
    return X, y, start


@pytest.fixture(scope="module")
def trained():
    X, y, _ = burst_windows(360, seed=0)
    clf = har.ActivityClassifier(epochs=8, augment=False, learning_rate=3e-3, seed=0).fit(X, y)
    return clf


def test_grad_cam_peak_falls_inside_the_burst(trained):
    X, y, start = burst_windows(120, seed=1)
    correct = trained.predict(X) == y
    assert correct.mean() >= 0.9, correct.mean()
    maps = trained.explain(X)
    assert maps.shape == (120, X.shape[1]) and maps.dtype == np.float32
    assert (maps >= 0).all()
    peak = maps.argmax(axis=1)
    inside = (peak >= start) & (peak < start + WIDTH)
    rate = inside[correct].mean()
    print(f"1-D Grad-CAM: peak inside the burst for {rate:.3f} of {correct.sum()} correct predictions")
    assert rate >= 0.9


def test_explain_other_methods_and_labels(trained):
    X, y, start = burst_windows(12, seed=2)
    sal = trained.explain(X, method="saliency")
    assert sal.shape == (12, X.shape[1]) and (sal >= 0).all()
    smooth = trained.explain(X, method="saliency", smooth=4, seed=3)
    assert np.array_equal(smooth, trained.explain(X, method="saliency", smooth=4, seed=3))
    # one label for all, or one per sample; an unknown label is refused, naming it
    one = trained.explain(X, label=1)
    per = trained.explain(X, label=np.full(12, 1))
    np.testing.assert_allclose(one, per)
    with pytest.raises(ValueError, match="label 7"):
        trained.explain(X, label=7)
    with pytest.raises(ValueError, match="method"):
        trained.explain(X, method="lime")


def test_explain_takes_the_lengths_predict_takes(trained):
    # windows of another length than the training ones: predicted and explained by the same network
    # rebuilt for their length, the maps on their own samples
    X, y, start = burst_windows(24, seed=4, steps=72)
    assert X.shape[1] != trained.input_shape_[0]
    pred = trained.predict(X)
    maps = trained.explain(X)
    assert maps.shape == (24, 72) and (maps >= 0).all()
    np.testing.assert_array_equal(maps, trained.explain(X, label=pred))  # the predicted class by default
    correct = pred == y
    peak = maps.argmax(axis=1)
    assert correct.mean() >= 0.8 and ((peak >= start) & (peak < start + WIDTH))[correct].mean() >= 0.8

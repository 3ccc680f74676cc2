"""The image classifier's maps must point at the digit: one placed in a quadrant of a blank canvas."""
import numpy as np
import pytest

import vision


def quadrant_canvases(seed, n=None):
    """Real 8x8 digits, each pasted into one random quadrant of a blank 16x16 canvas."""
    X, y = vision.load_digits()
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(X))[:n]
    X, y = X[order], y[order]
    quadrant = rng.integers(0, 4, len(X))
    canvas = np.zeros((len(X), 16, 16, 1), np.float32)
    for i, q in enumerate(quadrant):
        r, c = divmod(int(q), 2)
        canvas[i, 8 * r:8 * r + 8, 8 * c:8 * c + 8] = X[i]
    return canvas, y, quadrant


def mass_in_quadrant(maps, quadrant):
    out = []
    for m, q in zip(maps, quadrant):
        r, c = divmod(int(q), 2)
        out.append(m[8 * r:8 * r + 8, 8 * c:8 * c + 8].sum() / max(float(m.sum()), 1e-12))
    return np.array(out)


@pytest.fixture(scope="module")
def trained():
    X, y, _ = quadrant_canvases(0)
    # without augmentation, as written: with the default warps the tiny network put 82% of the maps
    # in the right quadrant instead of at least 90%
    clf = vision.ImageClassifier(architecture="tiny", epochs=20, seed=0, augment=False).fit(X[:1300], y[:1300])
    return clf, X[1300:], y[1300:]


def test_map_mass_falls_in_the_digits_quadrant(trained):
    clf, X, y = trained
    _, _, quadrant = quadrant_canvases(0)
    quadrant = quadrant[1300:]
    correct = clf.predict(X) == y
    assert correct.mean() >= 0.9
    maps = clf.explain(X)                                  # the default: HiResCAM
    assert maps.shape == (len(X), 16, 16)
    mass = mass_in_quadrant(maps, quadrant)[correct]
    print(f"2-D HiResCAM: mean mass in the digit's quadrant {mass.mean():.3f}, "
          f"{(mass >= 0.8).mean():.3f} of {correct.sum()} correct predictions with >= 80 %")
    assert mass.mean() >= 0.8
    assert (mass >= 0.8).mean() >= 0.9
    # Grad-CAM's channel average, on this Flatten + Dense head, measured for the record (not asserted)
    gc = mass_in_quadrant(clf.explain(X, method="grad_cam"), quadrant)[correct]
    print(f"2-D Grad-CAM (channel-averaged weights): mean mass in the quadrant {gc.mean():.3f}")


"""ImageClassifier on the real digits, with fast settings."""
import numpy as np
import pytest
from sklearn.model_selection import train_test_split

import vision
from core.exceptions import ConfigError, InputError, NotFittedError, ShapeError
from vision import networks

NAMES = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"])


@pytest.fixture(scope="module")
def digits():
    X, y = vision.load_digits()
    return train_test_split(X, y, test_size=0.25, stratify=y, random_state=0)


@pytest.fixture(scope="module")
def fitted(digits):
    """tiny network, string labels, uint8 input of shape (N, 8, 8)."""
    Xtr, Xte, ytr, yte = digits
    X8 = (Xtr[..., 0] * 15).astype(np.uint8)  # 0..240, rank 3
    clf = vision.ImageClassifier(architecture="tiny", epochs=6, batch_size=32, learning_rate=1e-2,
                                 validation_split=0.1, seed=0)
    return clf.fit(X8, NAMES[ytr])


def as_uint8(X):
    return (X[..., 0] * 15).astype(np.uint8)


def test_learns_digits(fitted, digits):
    _, Xte, _, yte = digits
    report = fitted.evaluate(as_uint8(Xte), NAMES[yte])
    assert report["accuracy"] > 0.9, report["accuracy"]
    assert report["macro_f1"] > 0.9
    assert report["n_samples"] == len(yte)
    assert sorted(report["classes"]) == sorted(NAMES.tolist())
    cm = np.array(report["confusion_matrix"])
    assert cm.shape == (10, 10) and cm.sum() == len(yte)
    assert np.trace(cm) / cm.sum() == pytest.approx(report["accuracy"])
    assert set(report["precision"]) == set(NAMES.tolist())
    proba = fitted.predict_proba(as_uint8(Xte[:7]))
    assert proba.shape == (7, 10)
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-5)
    pred = fitted.predict(as_uint8(Xte[:7]))
    assert pred.dtype.kind == "U" and set(pred) <= set(NAMES)
    assert fitted.input_shape_ == (8, 8, 1)
    assert fitted.mean_.shape == (1,) and fitted.std_.shape == (1,)


def test_same_predictions_for_rank3_and_channel_axis(fitted, digits):
    _, Xte, _, _ = digits
    a = fitted.predict_proba(as_uint8(Xte[:20]))
    b = fitted.predict_proba(as_uint8(Xte[:20])[..., None].astype(np.float64))
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_save_load_round_trip(fitted, digits, tmp_path):
    _, Xte, _, _ = digits
    path = tmp_path / "digits_model.npz"
    fitted.save(path)
    loaded = vision.ImageClassifier.load(path)
    np.testing.assert_array_equal(loaded.predict_proba(as_uint8(Xte)), fitted.predict_proba(as_uint8(Xte)))
    pred = loaded.predict(as_uint8(Xte))
    np.testing.assert_array_equal(pred, fitted.predict(as_uint8(Xte)))
    assert pred.dtype.kind == "U" and isinstance(pred[0], str)
    assert loaded.get_params() == fitted.get_params()
    np.testing.assert_array_equal(loaded.mean_, fitted.mean_)
    np.testing.assert_array_equal(loaded.std_, fitted.std_)
    assert loaded.input_shape_ == (8, 8, 1)
    # the loaded model keeps checking the image size
    with pytest.raises(ShapeError, match="8x8"):
        loaded.predict(np.zeros((2, 9, 9), np.uint8))


def test_scaling_is_learned_from_the_data(digits):
    """0..16 floats and the same images as uint8 0..240 train the same model."""
    Xtr, Xte, ytr, _ = digits
    kw = dict(architecture="tiny", epochs=2, learning_rate=1e-2, validation_split=0, seed=3)
    a = vision.ImageClassifier(**kw).fit(Xtr[:600], ytr[:600])
    b = vision.ImageClassifier(**kw).fit(as_uint8(Xtr[:600]), ytr[:600])
    assert b.mean_[0] == pytest.approx(15 * a.mean_[0], rel=1e-5)
    agree = np.mean(a.predict(Xte) == b.predict(as_uint8(Xte)))
    assert agree > 0.98


def test_same_seed_same_model(digits):
    Xtr, Xte, ytr, _ = digits
    kw = dict(architecture="tiny", epochs=2, validation_split=0.2, seed=5)
    a = vision.ImageClassifier(**kw).fit(Xtr[:400], ytr[:400]).predict_proba(Xte[:50])
    b = vision.ImageClassifier(**kw).fit(Xtr[:400], ytr[:400]).predict_proba(Xte[:50])
    np.testing.assert_array_equal(a, b)


def test_fit_with_augmentation_runs(digits):
    Xtr, _, ytr, _ = digits
    clf = vision.ImageClassifier(architecture="tiny", epochs=1, augment=True, seed=0).fit(Xtr[:300], ytr[:300])
    assert clf.epochs_trained_ == 1


def test_resize_option(fitted, digits):
    _, Xte, _, _ = digits
    big = vision.resize_images(as_uint8(Xte[:30])[..., None].astype(np.float32), (16, 16))
    assert big.shape == (30, 16, 16, 1)
    with pytest.raises(ShapeError, match=r"trained on 8x8.*found 16x16.*resize=True"):
        fitted.predict(big)
    fitted.set_params(resize=True)
    try:
        pred = fitted.predict(big)
    finally:
        fitted.set_params(resize=False)
    assert np.mean(pred == fitted.predict(as_uint8(Xte[:30]))) > 0.8


def test_warns_when_predict_data_is_scaled_differently(fitted, digits):
    _, Xte, _, _ = digits
    with pytest.warns(UserWarning, match="same scale"):
        fitted.predict(as_uint8(Xte[:5]) / 255.0)


@pytest.mark.parametrize("shape", [(8, 8, 1), (28, 28, 1), (32, 32, 3), (64, 48, 1), (3, 3, 1), (5, 1, 2)])
def test_lenet5_adapts_to_input_size(shape):
    model = networks.lenet5(shape, 4, seed=0)
    out = model.predict(np.zeros((2,) + shape, np.float32))
    assert out.shape == (2, 4)
    np.testing.assert_allclose(out.sum(axis=1), 1, rtol=1e-5)
    flat = next(layer for layer in model.layers if type(layer).__name__ == "Flatten")
    h, w = flat.input_shape[:2]
    assert max(h, w) < 14            # large images get extra pooling
    assert min(h, w) >= 1
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds.count("Conv2D") == 2 and kinds.count("Dense") == 2


def test_lenet5_original_sizes():
    model = networks.lenet5((28, 28, 1), 10, filters=(6, 16), kernel_size=5, dense=(120, 84), dropout=0)
    convs = [layer for layer in model.layers if type(layer).__name__ == "Conv2D"]
    assert [c.filters for c in convs] == [6, 16]
    assert [layer.units for layer in model.layers if type(layer).__name__ == "Dense"] == [120, 84, 10]
    assert "Dropout" not in [type(layer).__name__ for layer in model.layers]


def test_tiny_is_the_tutorial_net():
    model = networks.tiny((28, 28, 1), 10)
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds == ["Conv2D", "MaxPooling2D", "Flatten", "Dense"]
    assert model.output_shape == (None, 10)
    assert model.layers[0].filters == 8 and tuple(model.layers[0].kernel_size) == (3, 3)
    with pytest.raises(ShapeError, match="4x4"):
        networks.tiny((3, 8, 1), 2)


# ---------------------------------------------------------------- bad input

def test_one_class_only(digits):
    Xtr, _, _, _ = digits
    with pytest.raises(InputError, match="single class"):
        vision.ImageClassifier(architecture="tiny", epochs=1).fit(Xtr[:20], ["a"] * 20)


def test_nan_in_float_input(digits, fitted):
    Xtr, _, ytr, _ = digits
    X = Xtr[:50].copy()
    X[3, 2, 2, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        vision.ImageClassifier(epochs=1).fit(X, ytr[:50])
    with pytest.raises(InputError, match="NaN"):
        fitted.predict(X[..., 0])


def test_wrong_image_size_or_channels_at_predict(fitted):
    with pytest.raises(ShapeError, match=r"trained on 8x8.*found 28x28"):
        fitted.predict(np.zeros((3, 28, 28), np.uint8))
    with pytest.raises(ShapeError, match="1 channel"):
        fitted.predict(np.zeros((3, 8, 8, 3), np.uint8))


def test_bad_arrays_and_settings(digits):
    Xtr, _, ytr, _ = digits
    clf = vision.ImageClassifier(epochs=1)
    with pytest.raises(ShapeError, match=r"\(N, H, W\)"):
        clf.fit(Xtr.reshape(len(Xtr), 64), ytr)
    with pytest.raises(InputError, match="dtype"):
        clf.fit(np.full((4, 8, 8), "a"), [0, 1, 0, 1])
    with pytest.raises(ShapeError):
        clf.fit(Xtr[:10], ytr[:9])
    with pytest.raises(ConfigError, match="architecture"):
        vision.ImageClassifier(architecture="resnet").fit(Xtr[:10], ytr[:10])
    with pytest.raises(ConfigError, match="shift_range"):
        vision.ImageClassifier(augment=True, shift_range=2).fit(Xtr[:10], ytr[:10])
    with pytest.raises(NotFittedError):
        vision.ImageClassifier().predict(Xtr[:2])


def test_image_folder_to_classifier(tmp_path):
    """PNG folder -> load_image_folder -> fit -> save/load -> predict, with string classes."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(40):
        for name, axis in (("horizontal", 0), ("vertical", 1)):
            img = rng.integers(0, 40, size=(14, 14)).astype(np.uint8)
            k = rng.integers(2, 12)
            if axis == 0:
                img[k:k + 2, :] = 250
            else:
                img[:, k:k + 2] = 250
            (tmp_path / name).mkdir(exist_ok=True)
            Image.fromarray(img).save(tmp_path / name / f"{i:02d}.png")
    X, y = vision.load_image_folder(tmp_path, size=(12, 12))
    clf = vision.ImageClassifier(epochs=10, validation_split=0, seed=0).fit(X[::2], y[::2])
    assert clf.score(X[1::2], y[1::2]) > 0.9
    clf.save(tmp_path / "bars.npz")
    pred = vision.ImageClassifier.load(tmp_path / "bars.npz").predict(X[1::2])
    assert set(pred) <= {"horizontal", "vertical"}
    np.testing.assert_array_equal(pred, clf.predict(X[1::2]))


def test_rgb_images_scaled_per_channel():
    rng = np.random.default_rng(1)
    X = rng.integers(0, 256, size=(40, 6, 6, 3)).astype(np.uint8)
    X[..., 2] //= 8                         # channels with different ranges
    y = np.repeat([0, 1], 20)
    X[y == 1, :3] = 255                     # class 1: bright top half
    clf = vision.ImageClassifier(architecture="tiny", epochs=3, validation_split=0, seed=0).fit(X, y)
    assert clf.mean_.shape == (3,) and clf.input_shape_ == (6, 6, 3)
    # validation_split=0: the scaling is learned from all of X, channel by channel
    np.testing.assert_allclose(clf.mean_, X.astype(np.float64).mean(axis=(0, 1, 2)), rtol=1e-5)
    np.testing.assert_allclose(clf.std_, X.astype(np.float64).std(axis=(0, 1, 2)), rtol=1e-5)
    assert clf.predict_proba(X).shape == (40, 2)
    with pytest.raises(ShapeError, match="3 channel"):
        clf.predict(X[..., 0])

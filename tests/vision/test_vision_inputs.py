"""ImageClassifier takes what users have: image files, one image, a batch, or a folder
read a batch at a time (vision.inputs, vision.ImageFolder)."""
import pathlib

import numpy as np
import pytest
from PIL import Image

import vision
import vision.folder
from core.exceptions import DataFileNotFoundError, DataFormatError, InputError, ShapeError
from vision.classifier import channel_statistics

SIZE = (8, 8)
FAST = dict(architecture="tiny", epochs=2, batch_size=5, seed=1)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Two classes of 10x9 RGB PNGs (sizes differ from the training size, so reading resizes)."""
    root = tmp_path_factory.mktemp("pics")
    rng = np.random.default_rng(0)
    for label in ("bar", "dot"):
        (root / label).mkdir()
        for i in range(9):
            img = rng.integers(0, 120, (10, 9, 3), dtype=np.uint8)
            if label == "bar":
                img[3:6] = 250
            else:
                img[4:6, 4:6] = (250, 30, 30)
            Image.fromarray(img).save(root / label / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def data(folder):
    out = {}
    for color in ("grayscale", "rgb"):
        X, y, info = vision.load_image_folder(folder, size=SIZE, color=color, return_info=True)
        clf = vision.ImageClassifier(**FAST).fit(X, y)
        out[color] = (X, y, info["paths"], clf)
    return out


@pytest.mark.parametrize("color", ["grayscale", "rgb"])
def test_predict_on_paths_equals_predict_on_the_loaded_arrays(data, color):
    X, y, paths, clf = data[color]
    expected = clf.predict_proba(X)
    np.testing.assert_array_equal(clf.predict_proba(paths), expected)            # a list of str
    np.testing.assert_array_equal(clf.predict_proba(tuple(map(pathlib.Path, paths))), expected)  # PathLike
    np.testing.assert_array_equal(clf.predict_proba(np.array(paths)), expected)  # a string array
    np.testing.assert_array_equal(clf.predict(paths), clf.predict(X))
    one = clf.predict_proba(paths[3])
    assert one.shape == (1, 2)
    np.testing.assert_array_equal(one, clf.predict_proba(X[3:4]))
    np.testing.assert_array_equal(clf.explain(paths[:2]), clf.explain(X[:2]))
    assert clf.evaluate(paths, y) == clf.evaluate(X, y)
    assert clf.score(paths, y) == clf.score(X, y)


def test_a_single_image_is_one_row(data):
    X, _, _, gray = data["grayscale"]
    for image in (X[4], X[4, :, :, 0]):                       # (H, W, 1) and (H, W)
        assert gray.predict(image).shape == (1,)
        np.testing.assert_array_equal(gray.predict_proba(image), gray.predict_proba(X[4:5]))
        assert gray.explain(image).shape == (1,) + SIZE
    # a 3-D array whose last two axes are the trained size is a batch of one-channel images
    assert gray.predict(X[:3, :, :, 0]).shape == (3,)
    Xc, _, _, rgb = data["rgb"]
    assert rgb.predict(Xc[2]).shape == (1,)                    # (H, W, 3)
    np.testing.assert_array_equal(rgb.predict_proba(Xc[2]), rgb.predict_proba(Xc[2:3]))
    # the batch result of that image, whatever the batch size does to the last bits
    np.testing.assert_allclose(rgb.predict_proba(Xc[2])[0], rgb.predict_proba(Xc)[2], rtol=1e-5, atol=1e-6)


def test_bad_files_and_inputs_name_what_is_wrong(data, folder, tmp_path):
    X, _, paths, gray = data["grayscale"]
    missing = str(tmp_path / "nope.png")
    with pytest.raises(DataFileNotFoundError, match="nope.png"):
        gray.predict([paths[0], missing])
    corrupt = tmp_path / "broken.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    with pytest.raises(DataFormatError, match="broken.png"):
        gray.predict(str(corrupt))
    (tmp_path / "notes.png").write_text("hello")
    with pytest.raises(DataFormatError, match="notes.png"):
        gray.predict(tmp_path / "notes.png")
    with pytest.raises(InputError, match="mixes paths"):
        gray.predict([paths[0], X[0]])
    with pytest.raises(ShapeError, match="1 channel"):         # one RGB image to a grayscale model
        gray.predict(np.zeros(SIZE + (3,), np.uint8))
    rgb = data["rgb"][3]
    with pytest.raises(ShapeError, match="3 channel"):         # one grayscale image to an RGB model
        rgb.predict(np.zeros(SIZE, np.uint8))
    with pytest.raises(InputError, match="load_image_folder"):  # training needs labels: read a folder
        vision.ImageClassifier(**FAST).fit(paths, ["bar"] * len(paths))
    two = vision.ImageClassifier(**FAST).fit(np.random.default_rng(0).random((10, 8, 8, 2)), [0, 1] * 5)
    with pytest.raises(InputError, match="2 channels"):
        two.predict(paths[:1])


@pytest.mark.parametrize("settings", [dict(), dict(validation_split=0.25, augment=True)],
                         ids=["plain", "validation-and-augmentation"])
def test_streamed_folder_fits_the_same_weights_as_memory(folder, settings):
    X, y = vision.load_image_folder(folder, size=SIZE)
    memory = vision.ImageClassifier(**FAST, **settings).fit(X, y)
    stream = vision.ImageFolder(folder, size=SIZE)
    streamed = vision.ImageClassifier(**FAST, **settings).fit(stream)
    for a, b in zip(memory.model_.get_weights(), streamed.model_.get_weights()):
        np.testing.assert_array_equal(b, a)
    np.testing.assert_array_equal(streamed.mean_, memory.mean_)
    np.testing.assert_array_equal(streamed.std_, memory.std_)
    assert streamed.history_ == memory.history_
    np.testing.assert_array_equal(memory.predict_proba(stream), memory.predict_proba(X))
    assert memory.evaluate(stream) == memory.evaluate(X, y)


def test_image_folder_reads_pixels_only_when_asked(folder, monkeypatch, tmp_path):
    reads = []
    original = vision.folder._read_image
    monkeypatch.setattr(vision.folder, "_read_image", lambda *a: reads.append(a[0]) or original(*a))
    stream = vision.ImageFolder(folder, size=SIZE, color="rgb")
    assert len(reads) == 1 and stream.shape == (18,) + SIZE + (3,)   # the first image fixes the shape
    assert list(stream.labels) == ["bar"] * 9 + ["dot"] * 9
    assert len(stream.images[[0, 5]]) == 2 and len(reads) == 1
    batch = stream.images.read([0, 17])
    assert len(reads) == 3 and batch.dtype == np.float32
    X, _ = vision.load_image_folder(folder, size=SIZE, color="rgb")
    np.testing.assert_array_equal(batch, X[[0, 17]])


def test_image_folder_skips_or_names_bad_files(folder, tmp_path):
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(folder, root)
    (root / "dot" / "zz.png").write_text("not an image")
    with pytest.raises(DataFormatError, match="zz.png"):
        vision.ImageFolder(root, size=SIZE)
    with pytest.warns(UserWarning, match="zz.png"):
        stream = vision.ImageFolder(root, size=SIZE, on_error="skip")
    assert len(stream) == 18 and [s["path"] for s in stream.skipped] == [str(root / "dot" / "zz.png")]
    # damaged after a valid header: found when read, and named
    good = (root / "bar" / "5.png").read_bytes()
    (root / "bar" / "5.png").write_bytes(good[:60])
    with pytest.warns(UserWarning, match="zz.png"):
        stream = vision.ImageFolder(root, size=SIZE, on_error="skip")
    with pytest.raises(DataFormatError, match="5.png"):
        stream.images.read([5])
    with pytest.raises(ShapeError, match=r"size=\(8, 8\)"):     # a folder read at another size
        vision.ImageClassifier(**FAST).fit(vision.ImageFolder(folder, size=SIZE)).predict(
            vision.ImageFolder(folder, size=(6, 6)))


def test_channel_statistics_in_chunks_match_numpy_and_each_other(folder):
    X, _ = vision.load_image_folder(folder, size=SIZE, color="rgb")
    X = X.astype(np.float32)
    mean, std, lo, hi = channel_statistics(X, pixels_per_step=7 * 64 * 3)   # three uneven chunks
    np.testing.assert_allclose(mean, X.mean(axis=(0, 1, 2), dtype=np.float64), rtol=1e-12)
    np.testing.assert_allclose(std, X.std(axis=(0, 1, 2), dtype=np.float64), rtol=1e-12)
    np.testing.assert_array_equal(lo, X.min(axis=(0, 1, 2)))
    np.testing.assert_array_equal(hi, X.max(axis=(0, 1, 2)))
    streamed = channel_statistics(vision.ImageFolder(folder, size=SIZE, color="rgb").images, 7 * 64 * 3)
    for a, b in zip(streamed, (mean, std, lo, hi)):
        np.testing.assert_array_equal(a, b)

"""Image-folder loader, on PNG/JPEG/BMP/GIF files written here with Pillow."""
import warnings

import numpy as np
import pytest
from PIL import Image

import vision
from core.exceptions import DataFileNotFoundError, DataFormatError, InputError, ShapeError


def save(path, array, fmt=None, **kw):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, format=fmt, **kw)
    return path


def gray(value, shape=(12, 10)):
    return np.full(shape, value, dtype=np.uint8)


@pytest.fixture
def mixed_folder(tmp_path):
    """Three classes, three formats, mixed sizes and modes."""
    root = tmp_path / "data"
    save(root / "cat" / "a.png", gray(200))
    save(root / "cat" / "b.bmp", gray(200, (30, 17)))
    save(root / "cat" / "sub" / "c.png", np.full((9, 9, 3), 200, np.uint8))  # RGB, nested
    save(root / "dog" / "x.jpg", gray(40, (16, 16)), quality=95)
    save(root / "dog" / "y.jpeg", np.full((20, 8, 3), 40, np.uint8), quality=95)
    save(root / "emu" / "z.gif", gray(120, (5, 7)))
    # ignored: hidden files and folders, OS metadata, loose files in root
    (root / "cat" / ".DS_Store").write_bytes(b"junk")
    (root / "dog" / "Thumbs.db").write_bytes(b"junk")
    save(root / "dog" / ".hidden" / "h.png", gray(0))
    save(root / ".trash" / "t.png", gray(0))
    (root / "README.txt").write_text("not a class")
    return root


def test_reads_classes_formats_and_sizes(mixed_folder):
    X, y = vision.load_image_folder(mixed_folder, size=(8, 6))
    assert X.shape == (6, 8, 6, 1) and X.dtype == np.uint8
    assert list(y) == ["cat", "cat", "cat", "dog", "dog", "emu"]
    assert y.dtype.kind == "U"
    # constant images stay constant after conversion and resizing (JPEG within a level)
    means = {c: X[y == c].astype(float).mean() for c in ("cat", "dog", "emu")}
    assert means["cat"] == 200 and means["emu"] == 120
    assert abs(means["dog"] - 40) <= 2
    assert np.ptp(X[y == "cat"]) == 0


def test_rgb_mode_and_pixel_content(tmp_path):
    root = tmp_path / "rgb"
    img = np.zeros((4, 6, 3), np.uint8)
    img[..., 0] = 255          # red everywhere
    img[1, 2] = (0, 0, 255)    # one blue pixel
    save(root / "one" / "p.png", img)
    save(root / "two" / "q.bmp", np.full((4, 6, 3), 7, np.uint8))
    X, y = vision.load_image_folder(root, size=(4, 6), color="rgb")
    assert X.shape == (2, 4, 6, 3)
    np.testing.assert_array_equal(X[0], img)   # same size: no resampling, exact
    np.testing.assert_array_equal(X[1], 7)
    assert list(y) == ["one", "two"]
    Xg, _ = vision.load_image_folder(root, size=(4, 6), color="grayscale")
    assert Xg.shape == (2, 4, 6, 1)
    # ITU-R 601 luma of pure red is about 76
    assert abs(int(Xg[0, 0, 0, 0]) - 76) <= 1


def test_orientation_of_resize_is_height_width(tmp_path):
    root = tmp_path / "o"
    img = np.zeros((10, 20), np.uint8)
    img[:, 10:] = 255              # right half white
    save(root / "a" / "i.png", img)
    X, _ = vision.load_image_folder(root, size=(5, 4))
    assert X.shape == (1, 5, 4, 1)
    assert X[0, :, 0, 0].max() < 60 and X[0, :, -1, 0].min() > 200


def test_size_none_keeps_size_and_requires_agreement(tmp_path):
    root = tmp_path / "s"
    save(root / "a" / "1.png", gray(1, (6, 5)))
    save(root / "b" / "2.png", gray(2, (6, 5)))
    X, _ = vision.load_image_folder(root, size=None)
    assert X.shape == (2, 6, 5, 1)
    save(root / "b" / "3.png", gray(3, (7, 5)))
    with pytest.raises(ShapeError, match=r"3\.png.*5x7"):
        vision.load_image_folder(root, size=None)
    X, _ = vision.load_image_folder(root, size=3)  # an int is a square
    assert X.shape == (3, 3, 3, 1)


def test_16bit_png_scaled_not_clipped(tmp_path):
    root = tmp_path / "deep"
    save(root / "a" / "d.png", np.array([[0, 1000, 32896, 65535]], dtype=np.uint16))
    X, _ = vision.load_image_folder(root, size=None)
    np.testing.assert_array_equal(X[0, 0, :, 0], [0, 4, 128, 255])


def test_palette_with_transparency(tmp_path):
    root = tmp_path / "pal"
    img = Image.new("P", (4, 4), 1)
    img.putpalette([0, 0, 0, 10, 20, 30] + [0] * 762)
    (root / "a").mkdir(parents=True)
    img.save(root / "a" / "p.png", transparency=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        X, _ = vision.load_image_folder(root, size=None, color="rgb")
    np.testing.assert_array_equal(X[0, 0, 0], [10, 20, 30])


# ---------------------------------------------------------------- bad input

def test_unreadable_file_raises_naming_it(mixed_folder):
    (mixed_folder / "dog" / "notes.txt").write_text("hello")
    with pytest.raises(DataFormatError, match=r"notes\.txt.*on_error='skip'"):
        vision.load_image_folder(mixed_folder)


def test_truncated_png_raises(tmp_path):
    root = tmp_path / "t"
    good = save(root / "a" / "good.png", (np.arange(4096) % 251).astype(np.uint8).reshape(64, 64))
    data = good.read_bytes()
    (root / "a" / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataFormatError, match=r"cut\.png"):
        vision.load_image_folder(root)


def test_skip_reports_every_skipped_file(mixed_folder):
    (mixed_folder / "dog" / "notes.txt").write_text("hello")
    (mixed_folder / "emu" / "fake.png").write_bytes(b"\x89PNG not really")
    with pytest.warns(UserWarning, match=r"skipped 2 file") as record:
        X, y = vision.load_image_folder(mixed_folder, on_error="skip")
    message = str(record[0].message)
    assert "notes.txt" in message and "fake.png" in message
    assert X.shape[0] == 6 and list(y).count("emu") == 1


def test_class_with_only_unreadable_files(tmp_path):
    root = tmp_path / "u"
    save(root / "a" / "ok.png", gray(1))
    (root / "b").mkdir()
    (root / "b" / "x.png").write_bytes(b"garbage")
    with pytest.raises(DataFormatError, match=r"b'.*none of its 1 file.*x\.png"):
        vision.load_image_folder(root, on_error="skip")


def test_empty_root_and_no_classes(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataFormatError, match=r"empty.*one sub-folder per class.*empty"):
        vision.load_image_folder(tmp_path / "empty")
    flat = tmp_path / "flat"
    save(flat / "a.png", gray(1))
    with pytest.raises(DataFormatError, match=r"found 1 file\(s\) and no sub-folder"):
        vision.load_image_folder(flat)


def test_empty_class_folder(tmp_path):
    root = tmp_path / "e"
    save(root / "a" / "1.png", gray(1))
    (root / "b").mkdir()
    (root / "b" / ".keep").write_text("")
    with pytest.raises(DataFormatError, match=r"b'.*holds no files"):
        vision.load_image_folder(root)


def test_missing_root_and_bad_arguments(tmp_path):
    with pytest.raises(DataFileNotFoundError, match="nowhere"):
        vision.load_image_folder(tmp_path / "nowhere")
    f = tmp_path / "file.png"
    save(f, gray(1))
    with pytest.raises(DataFileNotFoundError, match="is a file"):
        vision.load_image_folder(f)
    for kw, word in [({"color": "cmyk"}, "color"), ({"on_error": "ignore"}, "on_error"),
                     ({"size": (0, 5)}, "size"), ({"size": (5,)}, "size"),
                     ({"size": "big"}, "size")]:
        with pytest.raises(InputError, match=word):
            vision.load_image_folder(tmp_path, **kw)

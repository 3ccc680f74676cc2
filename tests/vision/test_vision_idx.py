"""IDX loader, on files built byte by byte here with struct (not with our writer)."""
import gzip
import struct

import numpy as np
import pytest

import vision
from core.exceptions import DataFileNotFoundError, DataFormatError, InputError

# type code -> (struct format letter, numpy dtype expected back)
CODES = {
    0x08: ("B", np.uint8),
    0x09: ("b", np.int8),
    0x0B: ("h", np.int16),
    0x0C: ("i", np.int32),
    0x0D: ("f", np.float32),
    0x0E: ("d", np.float64),
}


def idx_bytes(code, dims, values):
    """IDX content by hand: 0, 0, type code, rank, big-endian uint32 dims, big-endian values."""
    letter = CODES[code][0]
    head = bytes([0, 0, code, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims)
    body = b"".join(struct.pack(">" + letter, v) for v in values)
    return head + body


def sample_values(code, n):
    """n values that exercise sign and byte order for each type code."""
    if code == 0x08:
        return [(i * 37) % 256 for i in range(n)]
    if code == 0x09:
        return [((i * 37) % 256) - 128 for i in range(n)]
    if code == 0x0B:
        return [(i * 4099) % 65536 - 32768 for i in range(n)]
    if code == 0x0C:
        return [(i * 16777259) % 2**32 - 2**31 for i in range(n)]
    return [(-1) ** i * i * 1.25e-3 + i for i in range(n)]


def write(path, content, compress=False):
    path.write_bytes(gzip.compress(content) if compress else content)
    return path


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gz"])
@pytest.mark.parametrize("code", sorted(CODES), ids=lambda c: f"0x{c:02X}")
def test_every_dtype_code_rank3_with_labels(tmp_path, code, compress):
    dims = (3, 4, 5)
    values = sample_values(code, 60)
    images = write(tmp_path / "img.idx", idx_bytes(code, dims, values), compress)
    labels = write(tmp_path / "lab.idx", idx_bytes(0x08, (3,), [7, 0, 9]), compress)
    X, y = vision.load_idx(images, labels)
    assert X.shape == (3, 4, 5, 1)
    assert X.dtype == CODES[code][1]
    assert X.dtype.byteorder in ("=", "|")  # native order, usable directly
    expected = np.array(values, dtype=CODES[code][1]).reshape(3, 4, 5, 1)
    np.testing.assert_array_equal(X, expected)
    assert y.dtype == np.int64
    np.testing.assert_array_equal(y, [7, 0, 9])


def test_gzip_detected_by_magic_not_extension(tmp_path):
    # a gzip file without .gz, and a plain file misleadingly named .gz
    content = idx_bytes(0x08, (2, 2, 2), range(8))
    a = write(tmp_path / "images-idx3-ubyte", content, compress=True)
    b = write(tmp_path / "images-idx3-ubyte.gz", content, compress=False)
    Xa, ya = vision.load_idx(a)
    Xb, _ = vision.load_idx(b)
    assert ya is None
    np.testing.assert_array_equal(Xa, Xb)
    np.testing.assert_array_equal(Xa.ravel(), np.arange(8))


def test_rank1_file_as_images_and_rank4_kept(tmp_path):
    r1 = write(tmp_path / "r1", idx_bytes(0x0C, (5,), [1, -2, 3, -4, 5]))
    X, _ = vision.load_idx(r1)
    assert X.shape == (5,)
    np.testing.assert_array_equal(X, [1, -2, 3, -4, 5])
    # rank 4 is taken as (N, H, W, C): returned as stored
    values = sample_values(0x0D, 2 * 3 * 2 * 3)
    r4 = write(tmp_path / "r4.gz", idx_bytes(0x0D, (2, 3, 2, 3), values), compress=True)
    X4, _ = vision.load_idx(r4)
    assert X4.shape == (2, 3, 2, 3)
    np.testing.assert_array_equal(X4, np.array(values, np.float32).reshape(2, 3, 2, 3))


def test_read_idx_returns_stored_shape(tmp_path):
    path = write(tmp_path / "x", idx_bytes(0x0E, (2, 3), [0.5, 1, 2, 3, 4, -1e300]))
    a = vision.read_idx(path)
    assert a.shape == (2, 3) and a.dtype == np.float64
    assert a[1, 2] == -1e300


def test_empty_dimension_is_valid(tmp_path):
    path = write(tmp_path / "empty", idx_bytes(0x08, (0, 28, 28), []))
    X, _ = vision.load_idx(path)
    assert X.shape == (0, 28, 28, 1)


def test_write_idx_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    for dtype in (np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64):
        a = (rng.standard_normal((4, 3, 2)) * 50).astype(dtype)
        for name in ("a.idx", "a.idx.gz"):
            vision.write_idx(tmp_path / name, a)
            np.testing.assert_array_equal(vision.read_idx(tmp_path / name), a)
    # the writer produces the same bytes as the hand-built reference
    vision.write_idx(tmp_path / "ref", np.array([[1, 2], [3, 4]], np.int16))
    assert (tmp_path / "ref").read_bytes() == idx_bytes(0x0B, (2, 2), [1, 2, 3, 4])
    with pytest.raises(InputError, match="dtype"):
        vision.write_idx(tmp_path / "bad", np.zeros(3, dtype=np.int64))


# ---------------------------------------------------------------- bad input

@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gz"])
def test_wrong_magic(tmp_path, compress):
    content = bytearray(idx_bytes(0x08, (2, 2), range(4)))
    content[0] = 0x01
    path = write(tmp_path / "bad.idx", bytes(content), compress)
    with pytest.raises(DataFormatError, match=r"bad\.idx.*two zero bytes.*found 0x01000802"):
        vision.load_idx(path)


def test_unknown_type_code(tmp_path):
    content = bytearray(idx_bytes(0x08, (2, 2), range(4)))
    content[2] = 0x0A
    path = write(tmp_path / "code.idx", bytes(content))
    with pytest.raises(DataFormatError, match=r"code\.idx.*unknown IDX type code 0x0A"):
        vision.load_idx(path)


def test_rank_zero_rejected(tmp_path):
    path = write(tmp_path / "r0", bytes([0, 0, 8, 0]))
    with pytest.raises(DataFormatError, match="0 dimensions"):
        vision.load_idx(path)


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gz"])
def test_truncated_data(tmp_path, compress):
    content = idx_bytes(0x0B, (2, 3, 3), range(18))  # 16 + 36 = 52 bytes
    path = write(tmp_path / "short.idx", content[:-5], compress)
    with pytest.raises(DataFormatError, match=r"short\.idx.*truncated.*expected 52 bytes.*found 47"):
        vision.load_idx(path)


def test_trailing_data(tmp_path):
    content = idx_bytes(0x08, (2, 2, 2), range(8)) + b"\x00\x01"
    path = write(tmp_path / "long.idx", content)
    with pytest.raises(DataFormatError, match=r"long\.idx.*trailing data.*expected 24 bytes.*found 26"):
        vision.load_idx(path)


def test_truncated_header(tmp_path):
    path = write(tmp_path / "head.idx", idx_bytes(0x08, (2, 2, 2), range(8))[:9])
    with pytest.raises(DataFormatError, match=r"head\.idx.*header.*16.*found 9"):
        vision.load_idx(path)
    tiny = write(tmp_path / "tiny.idx", b"\x00\x00")
    with pytest.raises(DataFormatError, match=r"tiny\.idx.*at least 4 bytes"):
        vision.load_idx(tiny)


def test_truncated_gzip_stream(tmp_path):
    packed = gzip.compress(idx_bytes(0x08, (50, 5, 5), [i % 251 for i in range(1250)]))
    path = tmp_path / "cut.gz"
    path.write_bytes(packed[: len(packed) // 2])
    with pytest.raises(DataFormatError, match=r"cut\.gz.*gzip"):
        vision.load_idx(path)


def test_image_label_count_mismatch(tmp_path):
    images = write(tmp_path / "img", idx_bytes(0x08, (3, 2, 2), range(12)))
    labels = write(tmp_path / "lab", idx_bytes(0x08, (4,), [0, 1, 2, 3]))
    with pytest.raises(DataFormatError, match=r"3 images.*4 labels"):
        vision.load_idx(images, labels)


def test_labels_must_be_rank1(tmp_path):
    images = write(tmp_path / "img", idx_bytes(0x08, (2, 2, 2), range(8)))
    labels = write(tmp_path / "lab", idx_bytes(0x08, (2, 1), [0, 1]))
    with pytest.raises(DataFormatError, match="rank-1"):
        vision.load_idx(images, labels)


def test_missing_files(tmp_path):
    images = write(tmp_path / "img", idx_bytes(0x08, (1, 2, 2), range(4)))
    with pytest.raises(DataFileNotFoundError, match="nope"):
        vision.load_idx(tmp_path / "nope")
    with pytest.raises(DataFileNotFoundError, match="labels"):
        vision.load_idx(images, tmp_path / "nolabels")
    with pytest.raises(DataFileNotFoundError, match="folder"):
        vision.load_idx(tmp_path)

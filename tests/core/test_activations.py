"""ReLU's forward pass against an array of zeros (``core.activations._zeros``): the numbers of
``np.maximum(z, 0)`` to the bit, for every layout, dtype and size, and a zeros buffer that no
one can write."""
import numpy as np
import pytest

from core import activations
from core.activations import ReLU


def _special(dtype, shape, seed=0):
    z = (np.random.default_rng(seed).standard_normal(shape) * 3).astype(dtype)
    flat = z.reshape(-1)
    flat[:6] = [-0.0, 0.0, np.nan, -np.nan, np.inf, -np.inf]
    return z


def _same_bits(a, b):
    assert a.dtype == b.dtype and a.shape == b.shape
    width = {2: np.uint16, 4: np.uint32, 8: np.uint64}[a.dtype.itemsize]
    np.testing.assert_array_equal(np.ascontiguousarray(a).view(width), np.ascontiguousarray(b).view(width))


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
@pytest.mark.parametrize("shape", [(7,), (4, 5), (3, 4, 5, 2), (100_000,)])
def test_relu_matches_the_scalar_maximum_to_the_bit(dtype, shape):
    z = _special(dtype, shape)
    expected = np.maximum(z, 0, dtype=z.dtype)
    _same_bits(ReLU().forward(z.copy()), expected)
    inplace = z.copy()
    assert ReLU().forward(inplace, out=inplace) is inplace
    _same_bits(inplace, expected)


def test_relu_on_strided_views_and_into_another_array():
    z = _special(np.float32, (6, 8, 10))
    view = z[:, ::2, 1:].transpose(2, 0, 1)  # neither C- nor F-contiguous
    out = np.full(view.shape, 7.0, np.float32)
    assert ReLU().forward(view, out=out) is out
    _same_bits(out, np.maximum(view, 0))
    _same_bits(ReLU().forward(view), np.maximum(view, 0))


@pytest.mark.parametrize("layout", ["fortran", "transposed"])
def test_relu_keeps_the_layout_of_an_input_not_in_c_order(layout):
    z = _special(np.float32, (20, 30, 4))
    z = np.asfortranarray(z) if layout == "fortran" else z.transpose(2, 0, 1)
    expected = np.maximum(z, 0)
    result = ReLU().forward(z)
    _same_bits(result, expected)
    assert result.strides == expected.strides and not result.flags.c_contiguous


@pytest.mark.parametrize("contiguous", [True, False])
def test_relu_larger_than_the_zeros_buffer_goes_in_parts(monkeypatch, contiguous):
    monkeypatch.setattr(activations, "RELU_ZEROS_MAX", 1000)
    monkeypatch.setattr(activations, "_relu_zeros", {})
    z = _special(np.float32, (45, 101))  # 4,545 elements: five parts, the last short
    if not contiguous:
        z = z[:, ::2]
    expected = np.maximum(z, 0)
    _same_bits(ReLU().forward(z), expected)
    inplace = z.copy()
    _same_bits(ReLU().forward(inplace, out=inplace), expected)
    assert activations._relu_zeros[np.dtype(np.float32)].size == 1000


def test_the_zeros_buffer_is_read_only_and_grows(monkeypatch):
    monkeypatch.setattr(activations, "_relu_zeros", {})
    small = activations._zeros(np.dtype(np.float64), 10)
    assert small.size == 10 and not small.flags.writeable and not small.any()
    with pytest.raises(ValueError):
        small[0] = 1.0
    big = activations._zeros(np.dtype(np.float64), 200_000)
    assert big.size == 200_000 and not big.any()
    assert activations._relu_zeros[np.dtype(np.float64)].size >= 200_000

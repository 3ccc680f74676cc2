"""``core.blas.gemm_into``: ``out = beta * out + a @ b`` in place, by BLAS's gemm where the
arrays suit it and by ``matmul`` otherwise, against NumPy's product in float64."""
import threading

import numpy as np
import pytest

from core import blas


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("beta", [0.0, 1.0, 0.5])
@pytest.mark.parametrize("shape", [(1, 1, 1), (7, 3, 5), (130, 64, 17)])
def test_gemm_into_adds_the_product(dtype, beta, shape):
    m, k, f = shape
    rng = np.random.default_rng(sum(shape))
    a = rng.normal(size=(m, k)).astype(dtype)
    b = rng.normal(size=(k, f)).astype(dtype)
    out = rng.normal(size=(m, f)).astype(dtype)
    if beta == 0:
        out[0, 0] = np.nan  # not read
    expected = (0.0 if beta == 0 else beta * out.astype(np.float64)) + a.astype(np.float64) @ b
    before = out.ctypes.data
    result = blas.gemm_into(out, a, b, beta)
    assert result is out and out.ctypes.data == before
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(out, expected, rtol=tol, atol=tol * np.sqrt(k))


def test_gemm_into_uses_blas_for_contiguous_arrays_and_falls_back_otherwise(monkeypatch):
    calls = []
    original = blas._routine
    monkeypatch.setattr(blas, "_routine", lambda dtype: calls.append(dtype) or original(dtype))
    rng = np.random.default_rng(0)
    a = rng.normal(size=(20, 6)).astype(np.float32)
    b = rng.normal(size=(6, 4)).astype(np.float32)
    out = np.zeros((20, 4), np.float32)
    blas.gemm_into(out, a, b, 1.0)
    assert calls == [np.dtype(np.float32)]
    assert blas._routine(np.dtype(np.float32)) is not None  # SciPy publishes its gemm
    calls.clear()
    strided = np.zeros((20, 8), np.float32)[:, :4]  # not contiguous: matmul
    blas.gemm_into(strided, a, b, 0.0)
    mixed = np.zeros((20, 4), np.float64)            # dtypes differ: matmul
    blas.gemm_into(mixed, a, b, 0.0)
    assert calls == []
    np.testing.assert_allclose(strided, a @ b, rtol=1e-6)
    np.testing.assert_allclose(mixed, a @ b, rtol=1e-6)


def test_gemm_into_from_several_threads_at_once():
    """Concurrent calls on separate arrays (the shards of a batch) each get their own product."""
    rng = np.random.default_rng(1)
    parts = [(rng.normal(size=(300, 40)).astype(np.float32), rng.normal(size=(40, 30)).astype(np.float32))
             for _ in range(4)]
    outs = [np.empty((300, 30), np.float32) for _ in parts]

    def work(i):
        for _ in range(20):
            blas.gemm_into(outs[i], *parts[i], 0.0)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(parts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for out, (a, b) in zip(outs, parts):
        np.testing.assert_allclose(out, a @ b, rtol=1e-5, atol=1e-5)


def test_gemm_into_falls_back_for_arrays_blas_cannot_take():
    """Other dtypes, foreign byte order and an output overlapping an operand go through
    ``matmul`` (right results); a read-only output is refused as ``matmul`` refuses it."""
    rng = np.random.default_rng(2)
    a = rng.normal(size=(6, 4))
    b = rng.normal(size=(4, 3))
    for dtype in (np.float16, np.dtype(">f4")):
        out = np.zeros((6, 3), dtype)
        blas.gemm_into(out, a.astype(dtype), b.astype(dtype), 0.0)
        np.testing.assert_allclose(out.astype(np.float64), a @ b, rtol=2e-2, atol=2e-2)
    square = rng.normal(size=(5, 5))
    kept = square.copy()
    blas.gemm_into(square, square, kept, 1.0)  # out is a
    np.testing.assert_allclose(square, kept + kept @ kept, rtol=1e-12)
    frozen = np.zeros((6, 3))
    frozen.flags.writeable = False
    with pytest.raises(ValueError):
        blas.gemm_into(frozen, a, b, 0.0)
    assert not frozen.any()

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


def _operands(rng, dtype):
    """Every layout ``dot`` meets: contiguous, transposed, 1-D vectors, and blocks of larger
    arrays (rows or columns of unit stride, reversed)."""
    big = rng.normal(size=(9, 13, 11)).astype(dtype)
    yield big[2, :5, :6].copy(), np.asfortranarray(big[3, :6, :4])  # contiguous
    yield big[2, :6, 1:8].copy().T, big[:6, 3, :4].copy()            # a transposed one
    yield big[:, 1, 3].copy(), big[:, 2, :5].copy()                  # vector @ matrix
    yield big[0, :4, :9].copy(), big[1, 2, :9].copy()                # matrix @ vector
    yield big[:, 0, :7], big[0, :7, :5]                              # rows of larger arrays
    yield big[3, :4, 2:8], big[4, 1:7, :3].T[:, :6].T                # a block and a transposed one
    yield big[5, 7:2:-1, :3], big[6, :3, :4].copy()                  # reversed rows


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dot_equals_matmul_for_every_layout(dtype, monkeypatch):
    """``blas.dot`` (``np.dot``, which releases the GIL for products with small results, where
    ``matmul`` holds it) equals ``a @ b``; an operand that is a block of a larger array goes to
    ``matmul`` (``np.dot`` would copy it)."""
    rng = np.random.default_rng(3)
    calls = []
    original = np.matmul
    monkeypatch.setattr(blas.np, "matmul", lambda *args: calls.append(1) or original(*args))
    tol = 1e-5 if dtype == np.float32 else 1e-12
    to_matmul = []
    for a, b in _operands(rng, dtype):
        calls.clear()
        result = blas.dot(a, b)
        np.testing.assert_allclose(result, a.astype(np.float64) @ b.astype(np.float64), rtol=tol, atol=tol)
        assert result.dtype == dtype and result.shape == (a @ b).shape
        to_matmul.append(bool(calls))
    assert to_matmul == [False] * 4 + [True] * 3
    stack = rng.normal(size=(3, 4, 5)).astype(dtype)  # N-D operands keep matmul's meaning
    np.testing.assert_allclose(blas.dot(stack, stack[0].T), stack @ stack[0].T, rtol=tol, atol=tol)


def test_dot_copies_a_block_only_beside_partner_threads(monkeypatch):
    """Alone, a strided operand goes to ``matmul`` as it is; in a batch split over two shards
    (``core.parallel.run_shards``), where ``matmul`` would keep the partner waiting, it is copied
    along its axis of unit stride and multiplied by ``np.dot``: same product either way."""
    from core import parallel

    rng = np.random.default_rng(4)
    big = rng.normal(size=(9, 13, 11)).astype(np.float32)
    a, b = big[:, 0, :7], big[0, :7, :5].T.copy().T[:, :4]  # rows of a larger array; a column block
    calls, dots = [], []
    original, original_dot = np.matmul, np.dot
    monkeypatch.setattr(blas.np, "matmul", lambda *args: calls.append(threading.get_ident()) or original(*args))
    monkeypatch.setattr(blas.np, "dot", lambda *args: dots.append([blas._contiguous(x) for x in args])
                        or original_dot(*args))
    assert not parallel.beside_partners()
    alone = blas.dot(a, b)
    assert len(calls) == 1 and dots == []
    calls.clear()
    results = parallel.run_shards(lambda rows: (parallel.beside_partners(), blas.dot(a, b)), [(0, 1), (1, 2)])
    assert calls == [] and [flag for flag, _ in results] == [True, True]
    assert dots == [[True, True], [True, True]]  # np.dot was handed contiguous copies
    for _, product in results:
        np.testing.assert_allclose(product, alone, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(alone, a.astype(np.float64) @ b, rtol=1e-5, atol=1e-5)
    assert not blas._runs(a).flags.f_contiguous and blas._runs(a).flags.c_contiguous
    assert blas._runs(big[0, :7, :5].T).flags.f_contiguous

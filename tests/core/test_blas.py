"""``core.blas.gemm_into``: ``out = beta * out + a @ b`` in place, by BLAS's gemm where the
arrays suit it and by ``matmul`` otherwise, against NumPy's product in float64."""
import math
import os
import threading

import numpy as np
import pytest

from core import blas, layers


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


# ------------------------------------------------- products cut for the small-matrix kernels
@pytest.fixture
def cut(monkeypatch):
    """Products cut into pieces whatever BLAS runs them (``blas.SPLIT``)."""
    monkeypatch.setattr(blas, "SPLIT", True)


@pytest.mark.parametrize("shape, expected", [
    ((8, 27, 4800), (2, 2400)),       # a Conv3D block's product, filters first: along its columns
    ((4800, 27, 8), (0, 2400)),       # the same channels last: along its rows
    ((27, 4800, 8), (1, 2400)),       # its kernel gradient: along the reduction
    ((8064, 27, 64), (0, 576)),       # a Conv1D's product with 64 filters: 14 pieces
    ((8, 27, 4620), None),            # small enough whole
    ((16, 216, 585), None),           # a kernel slice larger than SPLIT_MAX_KERNEL
    ((8, 48, 3604), (2, 1802)),       # a Conv3D input gradient's shifted product
    ((1, 512, 4000), None),           # one row (a Dense layer at batch 1): slower in pieces
    ((8, 216, 3604), None),           # a kernel slice larger than SPLIT_MAX_KERNEL
    ((585, 216, 16), None),           # a reduction longer than SPLIT_MAX_DEPTH
    ((216, 585, 16), None),           # a result larger than SPLIT_MAX_RESULT
    ((8, 4800, 27), (1, 2400)),
])
def test_pieces_follows_the_rule(cut, shape, expected):
    assert blas.pieces(*shape, np.float32) == expected
    assert blas.pieces(*shape, np.float64) == expected


def test_pieces_leaves_out_layouts_openblas_keeps_from_its_small_kernels(cut):
    """A second operand handed to BLAS transposed, the first not, with a reduction under 32:
    no output-axis pieces (OpenBLAS would run them on its general kernel); the reduction's
    pieces are long enough. Both transposed: only a reduction under 4 stays whole."""
    assert blas.pieces(8, 27, 4800, np.float32, b_transposed=True) is None
    assert blas.pieces(4800, 27, 8, np.float32, b_transposed=True) is None
    assert blas.pieces(8, 27, 4800, np.float32, a_transposed=True) == (2, 2400)
    assert blas.pieces(27, 4800, 8, np.float32, b_transposed=True) == (1, 2400)
    assert blas.pieces(8, 27, 4800, np.float32, True, True) == (2, 2400)
    assert blas.pieces(64, 3, 8000, np.float32, True, True) is None
    assert blas.pieces(64, 3, 8000, np.float32) == (2, 4000)
    assert blas.pieces(2000, 32, 64, np.float32) == (0, 400)
    assert blas.pieces(2000, 32, 65, np.float32) is None  # two long output axes
    a = np.zeros((8, 27), np.float32)
    assert blas._rows_major(a) and blas._rows_major(a[:, :20]) and not blas._rows_major(a.T)
    assert not blas._rows_major(a[:, ::2])  # (NumPy copies such an operand, or loops without BLAS)


def test_pieces_leaves_products_whole_where_the_kernels_are_not(monkeypatch):
    assert blas.pieces(8, 27, 4800, np.float16) is None
    monkeypatch.setattr(blas, "SPLIT", False)
    assert blas.pieces(8, 27, 4800, np.float32) is None
    monkeypatch.setattr(blas, "SPLIT", None)
    monkeypatch.setattr(blas, "_small", {"answer": False})
    assert blas.pieces(8, 27, 4800, np.float32) is None
    monkeypatch.setattr(blas, "_small", {"answer": True})
    assert blas.pieces(8, 27, 4800, np.float32) == (2, 2400)


def test_pieces_are_as_few_as_fit_under_the_limit(cut):
    """Every piece stays within ``SMALL_KERNEL_MNK``, one piece fewer would not, and the pieces
    are of near-equal length."""
    rng = np.random.default_rng(5)
    seen = set()
    for _ in range(2000):
        dims = [int(v) for v in rng.integers(1, 40, size=3)]
        axis = int(rng.integers(0, 3))
        dims[axis] = int(rng.integers(1, 300_000))
        plan = blas.pieces(*dims, np.float32)
        if plan is None:
            continue
        axis, length = plan
        seen.add(axis)
        rest = math.prod(dims) // dims[axis]
        count = -(-dims[axis] // length)
        assert length * rest <= blas.SMALL_KERNEL_MNK
        assert count == 1 or -(-dims[axis] // (count - 1)) * rest > blas.SMALL_KERNEL_MNK
        assert dims[axis] - (count - 1) * length >= length - count  # the last piece is not a stub
    assert seen == {0, 1, 2}


def test_small_kernels_are_openblas_on_skylake_x_cores():
    def lib(api, arch, user="blas"):
        return {"user_api": user, "internal_api": api, "architecture": arch}
    assert blas.cores_have_small_kernels([lib("openblas", "SkylakeX")])
    assert blas.cores_have_small_kernels([lib("openblas", "SapphireRapids"), lib("openblas", "Cooperlake"),
                                          lib("openmp", None, user="openmp")])
    assert not blas.cores_have_small_kernels([lib("openblas", "Haswell")])
    assert not blas.cores_have_small_kernels([lib("openblas", "Zen")])
    assert not blas.cores_have_small_kernels([lib("openblas", "SkylakeX"), lib("mkl", None)])
    assert not blas.cores_have_small_kernels([])
    assert blas.cores_have_small_kernels([lib("openblas", "SKYLAKEX")])  # a build for one core
    assert isinstance(blas.small_kernels(), bool)
    # NumPy's own BLAS decides, where it lies in NumPy's folder or its wheel's .libs beside it
    numpy_dir = os.path.join(os.sep, "site", "numpy")
    ours = dict(lib("openblas", "SkylakeX"), filepath=os.path.join(numpy_dir + ".libs", "libopenblas.so"))
    theirs = dict(lib("mkl", None), filepath=os.path.join(os.sep, "site", "torch", "lib", "libmkl.so"))
    assert blas.cores_have_small_kernels([ours, theirs], numpy_dir)
    assert not blas.cores_have_small_kernels([ours, theirs])
    inside = dict(ours, filepath=os.path.join(numpy_dir, ".dylibs", "libopenblas.dylib"))
    assert blas.cores_have_small_kernels([inside, theirs], numpy_dir)
    elsewhere = dict(ours, filepath=os.path.join(os.sep, "usr", "lib", "libopenblas.so"))
    assert not blas.cores_have_small_kernels([elsewhere, theirs], numpy_dir)  # none in NumPy's: all


def _cut_operands(rng, dtype):
    """Products cut along each axis, with contiguous, transposed and strided operands."""
    big = rng.normal(size=(30, 9000)).astype(dtype)
    kernel = rng.normal(size=(27, 8)).astype(dtype)
    yield kernel.T, big[:27]                                   # (8, 27) @ (27, 9000): columns
    yield big[:27].T, kernel                                   # (9000, 27) @ (27, 8): rows
    yield big[:27, ::2].T.copy(), kernel                       # contiguous rows
    yield big[:27], big[1:9].T                                 # (27, 9000) @ (9000, 8): reduction
    yield big[2:29, 100:8900], np.ascontiguousarray(big[:8, 50:8850].T)  # blocks of larger arrays


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matmul_and_dot_in_pieces_equal_the_whole_product(cut, dtype, monkeypatch):
    rng = np.random.default_rng(6)
    cuts = []
    original = blas._in_pieces
    monkeypatch.setattr(blas, "_in_pieces", lambda *args: cuts.append(args[3:]) or original(*args))
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for a, b in _cut_operands(rng, dtype):
        expected = a.astype(np.float64) @ b.astype(np.float64)
        scale = tol * np.sqrt(a.shape[1]) * np.abs(expected).max()
        out = np.full(expected.shape, np.nan, dtype)
        assert blas.matmul(a, b, out=out) is out
        np.testing.assert_allclose(out, expected, rtol=tol, atol=scale)
        for result in (blas.matmul(a, b), blas.dot(a, b)):
            assert result.dtype == dtype and result.shape == expected.shape
            np.testing.assert_allclose(result, expected, rtol=tol, atol=scale)
    assert {axis for axis, _ in cuts} == {0, 1, 2}
    assert all(length < 9000 for _, length in cuts)
    cuts.clear()
    small = rng.normal(size=(8, 27)).astype(dtype)
    np.testing.assert_allclose(blas.matmul(small, small.T), small @ small.T, rtol=tol)  # whole
    stack = rng.normal(size=(2, 8, 27)).astype(dtype)                                 # N-D: np.matmul
    np.testing.assert_allclose(blas.matmul(stack, small.T), stack @ small.T, rtol=tol)
    assert cuts == []


def test_matmul_leaves_to_numpy_what_numpy_checks(cut):
    """Mismatched operands, an ``out`` of another shape or dtype, mixed dtypes and an ``out``
    that overlaps an operand go to ``np.matmul``, which raises or copies as it does."""
    rng = np.random.default_rng(10)
    a = rng.normal(size=(1, 2000)).astype(np.float32)
    b = rng.normal(size=(2001, 1000)).astype(np.float32)
    with pytest.raises(ValueError):
        blas.matmul(a, b)
    with pytest.raises(ValueError):
        blas.dot(a, b)
    kernel, cols = rng.normal(size=(8, 27)).astype(np.float32), rng.normal(size=(27, 9000)).astype(np.float32)
    with pytest.raises(ValueError):
        blas.matmul(kernel, cols, out=np.zeros((8, 9001), np.float32))
    with pytest.raises(TypeError):  # (NumPy will not cast float32 into an int array)
        blas.matmul(kernel, cols, out=np.zeros((8, 9000), np.int32))
    mixed = blas.matmul(kernel.astype(np.float64), cols)
    assert mixed.dtype == np.float64
    np.testing.assert_allclose(mixed, kernel.astype(np.float64) @ cols, rtol=1e-6, atol=1e-5)
    square = rng.normal(size=(1, 1001)).astype(np.float32)
    big = rng.normal(size=(1001, 1001)).astype(np.float32)
    expected = square.astype(np.float64) @ big
    blas.matmul(square, big, out=square)  # out is a: NumPy's product, which handles the overlap
    np.testing.assert_allclose(square, expected, rtol=1e-4, atol=1e-3)


def test_dot_keeps_products_whole_beside_partner_threads(cut, monkeypatch):
    """In a batch split over threads ``matmul``'s pieces would hold the GIL: ``dot`` runs the
    product whole there (``np.dot``); a shard of a batch split over processes has no partner
    thread and cuts it."""
    from core import parallel

    rng = np.random.default_rng(7)
    a, b = rng.normal(size=(27, 9000)).astype(np.float32), rng.normal(size=(9000, 8)).astype(np.float32)
    cuts = []
    original = blas._in_pieces
    monkeypatch.setattr(blas, "_in_pieces", lambda *args: cuts.append(args[3:]) or original(*args))
    results = parallel.run_shards(lambda rows: blas.dot(a, b), [(0, 1), (1, 2)])
    assert cuts == []

    class ProcessShards:
        processes = True
        ranges = [(0, 1), (1, 2)]

    with parallel.membership(ProcessShards(), 0), parallel.inside():
        assert not parallel.beside_partners()
        alone = blas.dot(a, b)
    assert cuts == [(1, 4500)]
    for product in results:
        np.testing.assert_allclose(product, alone, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("make, shape, blocks", [
    (lambda: layers.Conv2D(8, 3, activation="relu"), (64, 28, 28, 1), False),  # whole: along columns
    (lambda: layers.Conv2D(8, 3, padding="same"), (64, 28, 28, 1), False),
    (lambda: layers.Conv3D(8, 3), (3, 26, 26, 26, 1), True),                   # in blocks of rows
    (lambda: layers.Conv1D(64, 3), (64, 128, 9), False),                        # channels last: along rows
    (lambda: layers.Dense(64), (1200, 16), False),                              # kernel gradient: reduction
])
def test_layers_with_products_in_pieces_agree_with_whole_products(make, shape, blocks, monkeypatch):
    """Forward and backward of layers whose products the small-matrix kernels take in pieces
    agree with the same layers' whole products to float32 rounding; the pieces were used."""
    rng = np.random.default_rng(8)
    x = rng.normal(size=shape).astype(np.float32)
    cuts = []
    original = blas._in_pieces
    monkeypatch.setattr(blas, "_in_pieces", lambda *args: cuts.append(args[3:]) or original(*args))
    results = []
    for split in (False, True):
        monkeypatch.setattr(blas, "SPLIT", split)
        layer = make()
        layer.build(shape[1:], rng=np.random.default_rng(0))
        if blocks:
            layer.chunk_threshold = 1 << 20
        y, ctx = layer.forward(x, training=True)
        dy = np.random.default_rng(9).normal(size=y.shape).astype(np.float32)
        dx, grads = layer.backward(ctx, dy)
        results.append([y.copy(), dx.copy()] + [grads[k].copy() for k in sorted(grads)])
        assert bool(cuts) == split
    for whole, pieces in zip(*results):
        np.testing.assert_allclose(pieces, whole, rtol=2e-5, atol=2e-5 * np.abs(whole).max())

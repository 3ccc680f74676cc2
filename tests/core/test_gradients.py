"""Finite-difference checks (float64) of every layer's backward pass, for its
input and its weights, over 1-D/2-D/3-D, strides, paddings, dilations and groups."""
import itertools
import math

import numpy as np
import pytest

from core import layers
from tests.core.gradcheck import check_layer

CONV = {1: layers.Conv1D, 2: layers.Conv2D, 3: layers.Conv3D}
SPATIAL = {1: (11,), 2: (7, 8), 3: (6, 5, 7)}


def conv_cases():
    for rank, stride, padding, dilation, groups in itertools.product(
            (1, 2, 3), (1, 2), ("valid", "same", "causal"), (1, 2), (1, 2)):
        if padding == "causal" and rank != 1:
            continue
        yield pytest.param(rank, stride, padding, dilation, groups,
                           id=f"{rank}d-s{stride}-{padding}-d{dilation}-g{groups}")


@pytest.mark.parametrize("rank,stride,padding,dilation,groups", list(conv_cases()))
def test_conv_gradients(float64, rank, stride, padding, dilation, groups):
    rng = np.random.default_rng(rank * 100 + stride * 10 + dilation + groups)
    channels = 4 if groups == 2 else 3
    x = rng.normal(size=(2,) + SPATIAL[rank] + (channels,))
    layer = CONV[rank](filters=4, kernel_size=3 if rank < 3 else 2, strides=stride, padding=padding,
                       dilation_rate=dilation, groups=groups, activation="tanh")
    check_layer(layer, x, rng)


@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "elu", "sigmoid", "tanh", "softmax", "gelu",
                                        "linear", "silu", "softplus"])
def test_activation_gradients(float64, activation):
    rng = np.random.default_rng(7)
    x = rng.normal(size=(3, 5)) * 2
    x[np.abs(x) < 1e-3] = 0.5  # keep finite differences away from the kinks at 0
    check_layer(layers.Activation(activation), x, rng)


def test_gelu_tanh_approximation_gradient(float64):
    from core.activations import GELU
    rng = np.random.default_rng(3)
    check_layer(layers.Activation(GELU(approximate=True)), rng.normal(size=(4, 6)), rng)


POOLS = {1: (layers.MaxPooling1D, layers.AveragePooling1D, layers.GlobalMaxPooling1D, layers.GlobalAveragePooling1D),
         2: (layers.MaxPooling2D, layers.AveragePooling2D, layers.GlobalMaxPooling2D, layers.GlobalAveragePooling2D),
         3: (layers.MaxPooling3D, layers.AveragePooling3D, layers.GlobalMaxPooling3D, layers.GlobalAveragePooling3D)}


@pytest.mark.parametrize("rank", [1, 2, 3])
@pytest.mark.parametrize("kind", ["max", "average"])
@pytest.mark.parametrize("pool,stride,padding", [(2, None, "valid"), (3, 2, "same"), (2, 1, "valid"), (3, 3, "same")])
def test_pooling_gradients(float64, rank, kind, pool, stride, padding):
    rng = np.random.default_rng(rank + pool * 3)
    x = rng.normal(size=(2,) + SPATIAL[rank] + (3,))
    cls = POOLS[rank][0 if kind == "max" else 1]
    check_layer(cls(pool_size=pool, strides=stride, padding=padding), x, rng)


@pytest.mark.parametrize("rank", [1, 2, 3])
@pytest.mark.parametrize("kind", [2, 3])
def test_global_pooling_gradients(float64, rank, kind):
    rng = np.random.default_rng(rank)
    x = rng.normal(size=(2,) + SPATIAL[rank] + (3,))
    check_layer(POOLS[rank][kind](), x, rng)


def test_dense_gradients(float64):
    rng = np.random.default_rng(0)
    check_layer(layers.Dense(5, activation="sigmoid"), rng.normal(size=(4, 7)), rng)
    check_layer(layers.Dense(3, use_bias=False), rng.normal(size=(2, 3, 6)), rng)


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("shape", [(6, 4), (3, 5, 4), (2, 4, 3, 5, 2)])
def test_batch_norm_gradients(float64, training, shape):
    rng = np.random.default_rng(len(shape))
    x = rng.normal(2.0, 3.0, size=shape)
    layer = layers.BatchNormalization()
    check_layer(layer, x, rng, training=training)


def test_dropout_gradients(float64):
    rng = np.random.default_rng(5)
    check_layer(layers.Dropout(0.4, seed=1), rng.normal(size=(4, 6, 3)), rng)


@pytest.mark.parametrize("rank", [1, 2, 3])
def test_branches_gradients(float64, rank):
    """A residual block (add) with a nested inception-like split (concat)."""
    rng = np.random.default_rng(20 + rank)
    x = rng.normal(size=(2,) + SPATIAL[rank] + (4,))
    inner = layers.Branches([[CONV[rank](2, 1, activation="tanh")], [POOLS[rank][0](3, strides=1, padding="same"),
                                                                      CONV[rank](2, 1)]], merge="concat")
    block = layers.Branches([[CONV[rank](4, 2, padding="same", activation="tanh"), layers.BatchNormalization(), inner],
                             [CONV[rank](4, 1)]], merge="add")
    check_layer(block, x, rng)


@pytest.mark.parametrize("layer", [layers.Flatten(), layers.Reshape((3, -1))])
def test_reshape_gradients(float64, layer):
    rng = np.random.default_rng(2)
    check_layer(layer, rng.normal(size=(2, 3, 4)), rng)


def test_max_pool_ties_send_gradient_once():
    """Equal values in a window: the gradient goes to one of them, never doubled."""
    x = np.ones((1, 4, 4, 1), np.float32)
    pool = layers.MaxPooling2D(2)
    pool.build(x.shape[1:])
    y, ctx = pool.forward(x, training=True)
    dx, _ = pool.backward(ctx, np.ones_like(y))
    assert dx.sum() == y.size  # one unit of gradient per window
    assert np.all(dx.reshape(2, 2, 2, 2).transpose(0, 2, 1, 3).reshape(4, 4).sum(axis=1) == 1)
    gmax = layers.GlobalMaxPooling2D()
    gmax.build(x.shape[1:])
    g, ctx = gmax.forward(x, training=True)
    assert gmax.backward(ctx, np.ones_like(g))[0].sum() == 1.0


def test_overlapping_max_pool_accumulates():
    """With stride < pool size one input can win several windows; its gradients add up."""
    x = np.zeros((1, 5, 1), np.float32)
    x[0, 2, 0] = 10.0
    pool = layers.MaxPooling1D(3, strides=1)
    pool.build(x.shape[1:])
    y, ctx = pool.forward(x, training=True)
    dx, _ = pool.backward(ctx, np.ones_like(y))
    assert dx[0, 2, 0] == 3.0 and dx.sum() == 3.0


@pytest.mark.parametrize("rank,stride,padding,dilation", [(2, 1, "same", 1), (2, 2, "valid", 1), (3, 1, "same", 2),
                                                         (3, (2, 1, 2), "same", 1), (3, 1, "valid", 1)])
def test_chunked_convolution_matches_whole_and_finite_differences(float64, rank, stride, padding, dilation):
    """Large layers build their column matrix in chunks of output rows; force tiny chunks
    (one row) and compare with the whole-matrix path and with finite differences."""
    rng = np.random.default_rng(rank * 10 + dilation)
    x = rng.normal(size=(2,) + SPATIAL[rank] + (2,))

    def make(chunks):
        layer = CONV[rank](filters=3, kernel_size=3 if rank < 3 else 2, strides=stride, padding=padding,
                           dilation_rate=dilation, activation="relu")
        if chunks:
            layer.chunk_threshold, layer.chunk_bytes = 0, 1
        layer.build(x.shape[1:], rng=np.random.default_rng(0))
        return layer
    whole, chunked = make(False), make(True)
    assert chunked._use_chunks(x) and not whole._use_chunks(x) and chunked._chunk_rows == 1
    (y1, c1), (y2, c2) = whole.forward(x, training=True), chunked.forward(x, training=True)
    np.testing.assert_allclose(y2, y1, rtol=1e-12, atol=1e-12)
    g = rng.normal(size=y1.shape)
    (dx1, g1), (dx2, g2) = whole.backward(c1, g.copy()), chunked.backward(c2, g.copy())
    np.testing.assert_allclose(dx2, dx1, rtol=1e-12, atol=1e-12)
    assert set(g1) == set(g2) == {"kernel", "bias"}
    for name in g1:
        np.testing.assert_allclose(g2[name], g1[name], rtol=1e-10, atol=1e-12)
    check_layer(make(True), x, rng)


@pytest.mark.parametrize("rank,stride,padding,dilation,kernel", [
    (2, 1, "same", 1, 3), (2, 1, "valid", 1, (3, 1)), (2, 1, "valid", (1, 2), (2, 3)), (2, 1, "same", 1, (1, 3)),
    (3, 1, "same", 2, 2), (3, (2, 1, 1), "valid", 1, (2, 3, 2)), (3, 1, "valid", 1, (2, 1, 2))])
@pytest.mark.parametrize("threads", [1, 2])
def test_input_gradient_by_whole_rows_matches_row_by_row(float64, rank, stride, padding, dilation, kernel, threads,
                                                         monkeypatch):
    """With stride 1 on the last two axes the input gradient is scattered by whole rows (the
    offsets of the kernel's last axis together, one run per plane and offset of the other
    axes, ``rows_views`` and ``shifted_rows``), in the whole-matrix path, in
    chunked blocks of one and of several whole samples (block threads on and off) and, for
    3-D layers, in blocks of one or two output rows of a sample (``shifted_rows``), the
    input gradient in blocks of as many rows or of 4 (``_grad_rows``, 4 and the rest); it
    equals the row-by-row scatter and finite differences."""
    from core import config
    from core.layers import conv as conv_module
    from core.layers import windows

    monkeypatch.setattr(windows, "ROWS_MAX_EXTRA", 10.0)  # these small inputs have relatively long rows
    by_row_blocks = []
    original = conv_module.shifted_rows
    monkeypatch.setattr(conv_module, "shifted_rows", lambda *a: by_row_blocks.append(a[0].shape[:-3]) or original(*a))
    rng = np.random.default_rng(rank * 7 + threads)
    x = rng.normal(size=(5,) + SPATIAL[rank] + (2,))
    g = None
    results = []
    try:
        config.set_num_threads(threads)
        for mode in ("row by row", "whole", "whole, scattered a sample at a time", "blocks of one sample",
                     "blocks of samples", "blocks of 1 row", "blocks of 2 rows",
                     "blocks of 1 row, input gradient in 4"):
            layer = CONV[rank](filters=3, kernel_size=kernel, strides=stride, padding=padding, dilation_rate=dilation)
            if mode.startswith("blocks"):
                layer.chunk_threshold = 0
            layer.build(x.shape[1:], rng=np.random.default_rng(0))
            assert layer.geometry.flat_rows
            if mode == "row by row":
                layer.geometry.flat_rows = False
            elif mode.startswith("whole,"):  # (_scatter_samples follows the block size)
                layer._block_bytes = 1
                assert layer._scatter_samples() == 1
            elif "row" in mode:  # rows of one sample per block; the input gradient in blocks of as many, or 4
                layer._chunk_rows = int(mode.split()[2])
                layer._grad_rows = int(mode.split()[-1]) if "input" in mode else layer._chunk_rows
                layer._chunk_samples = 1
            elif mode.startswith("blocks"):  # whole samples per block: 1, or 2 (blocks of 2, 2 and 1)
                layer._chunk_rows = layer.geometry.out[0]
                layer._chunk_samples = 1 if mode == "blocks of one sample" else 2
            y, ctx = layer.forward(x, training=True)
            assert layer._use_chunks(x) == mode.startswith("blocks")
            # blocks build their columns over the same grid (two input channels: channels first)
            assert layer._grid_columns == (mode != "row by row")
            g = rng.normal(size=y.shape) if g is None else g
            by_row_blocks.clear()
            dx, grads = layer.backward(ctx, g.copy())
            results.append((y.copy(), dx.copy(), grads["kernel"].copy()))
            # the scatter by rows ran on whole samples, or (3-D) on blocks of rows of one sample
            # in blocks of ``_grad_rows`` and the rest; 2-D blocks of rows go by col2im
            row_blocks = mode.startswith("blocks") and "row" in mode
            assert bool(by_row_blocks) == (mode != "row by row" and (rank == 3 or not row_blocks)), mode
            if mode.startswith("whole,"):
                assert len(by_row_blocks) == x.shape[0] and {lead[0] for lead in by_row_blocks} == {1}
            if row_blocks and rank == 3:
                rows, step = layer.geometry.out[0], layer._grad_rows
                assert {lead[0] for lead in by_row_blocks} == {min(step, rows - r0) for r0 in range(0, rows, step)}
    finally:
        config.set_num_threads(None)
    for y, dx, dk in results[1:]:
        np.testing.assert_allclose(y, results[0][0], rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(dx, results[0][1], rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(dk, results[0][2], rtol=1e-10, atol=1e-12)
    layer = CONV[rank](filters=3, kernel_size=kernel, strides=stride, padding=padding, dilation_rate=dilation)
    layer.build(x.shape[1:], rng=np.random.default_rng(0))
    check_layer(layer, x[:2], rng)


@pytest.mark.parametrize("rank,kernel", [(2, (3, 2)), (3, (3, 3, 3)), (3, (2, 1, 2))])
def test_scatter_by_rows_multiplies_any_number_of_kernel_slices_at_once(rank, kernel):
    """``_scatter_shifted`` multiplies as many of the kernel's slices at once as its product
    buffer holds (``_scatter_buffers`` keeps that in twice the block size): one, some (the last
    product shorter) or all of them give the same input gradient; the buffer is never asked
    for more than it holds, and a block too small for two slices gets one."""
    from core.workspace import Workspace

    shape = {2: (3, 7, 9, 5), 3: (2, 5, 6, 12, 3)}[rank]
    layer = CONV[rank](filters=4, kernel_size=kernel, padding="same")
    layer.build(shape[1:], rng=np.random.default_rng(rank))
    geo, c = layer.geometry, shape[-1]
    assert geo.flat_rows
    rng = np.random.default_rng(len(kernel))
    dz = rng.normal(size=(shape[0],) + geo.out + (4,))
    lead = shape[0] * math.prod(geo.out[:-2])  # every output plane at once
    run = lead * geo.out[-2] * geo.padded[-1]
    groups = geo.size // geo.kernel[-1]
    shifted, product, flat = layer._scatter_buffers(shape[0], lead, Workspace(), np.float64)
    assert product.size == groups * c * run  # (the tests' 4 MB blocks hold them all)
    results = []
    for slices in sorted({1, 2, groups - 1, groups}):
        part = np.full(slices * c * run, np.nan)
        results.append(layer._input_grad_by_rows(dz, layer._kernel_groups(), shifted, part, flat).copy())
    for dx in results[1:]:
        np.testing.assert_allclose(dx, results[0], rtol=1e-13, atol=1e-13)
    layer._block_bytes = 4 * c * run  # twice this: one slice's product, in float64
    assert layer._scatter_buffers(shape[0], lead, Workspace(), np.float64)[1].size == c * run


@pytest.mark.parametrize("kernel,dilation", [(3, 1), (2, 3), (1, 1)])
def test_shifted_rows_lays_out_the_gradient_once_per_offset_of_the_last_axis(kernel, dilation):
    """``shifted_rows``: for each offset ``j`` of the kernel's last axis, the output gradient
    over the grid ``out_rows`` (zero past each row's end), filters first, rows end to end,
    starting ``j * dilation`` elements in, with zeros before; whatever ``z`` held."""
    from core.layers.windows import WindowGeometry, shifted_rows

    geo = WindowGeometry((6, 7, 30), (2, 2, kernel), (1, 1, 1), (1, 1, dilation), "valid")
    assert geo.flat_rows
    rng = np.random.default_rng(kernel * 10 + dilation)
    dz = rng.normal(size=(3,) + geo.out[1:] + (4,))  # (rows, out[1], out[2], filters)
    run = geo.out[1] * geo.padded[2]
    z = shifted_rows(dz, geo, np.full((kernel, 4, 3, run), np.nan))
    grid = np.zeros((4, 3, geo.out[1], geo.padded[2]))
    grid[..., :geo.out[2]] = np.moveaxis(dz, -1, 0)
    grid = grid.reshape(4, 3, run)
    for j in range(kernel):
        expected = np.zeros((4, 3, run))
        expected[..., j * dilation:] = grid[..., :run - j * dilation]
        np.testing.assert_array_equal(z[j], expected)
        assert not grid[..., run - j * dilation:].any()  # the shift pushes only zeros past the run


@pytest.mark.parametrize("rank,stride,padding,dilation,kernel", [(2, 1, "same", 1, 3), (2, (2, 1), "valid", 2, (3, 2)),
                                                                (2, 1, "same", (2, 1), (1, 3)), (3, 1, "same", 1, 2),
                                                                (3, (1, 2, 1), "valid", (1, 1, 2), (2, 2, 3))])
@pytest.mark.parametrize("threads", [1, 2])
def test_input_gradient_samples_last_matches_col2im(float64, rank, stride, padding, dilation, kernel, threads,
                                                    monkeypatch):
    """Blocks of several whole samples with short output rows scatter their input gradient with
    the samples on the last axis (``Conv._input_grad_samples_last``), in the whole-matrix path
    and in chunked blocks of whole samples (blocks of 2, 2 and 1 of 5 samples; block threads on
    and off); it equals ``col2im``'s channels-first scatter and finite differences."""
    from core import config
    from core.layers import conv as conv_module

    from core.layers import windows

    monkeypatch.setattr(conv_module, "SAMPLES_LAST_MIN", 2)  # for these blocks of 2 samples
    max_run = conv_module.SAMPLES_LAST_MAX_RUN
    monkeypatch.setattr(windows, "ROWS_MAX_EXTRA", -1.0)  # (by whole rows where it applies: a test of its own)
    used = []
    original = conv_module.Conv._input_grad_samples_last
    monkeypatch.setattr(conv_module.Conv, "_input_grad_samples_last",
                        lambda self, *a: used.append(a[0].shape[0]) or original(self, *a))
    rng = np.random.default_rng(rank * 11 + threads)
    x = rng.normal(size=(5,) + SPATIAL[rank] + (2,))
    g = None
    results = {}
    try:
        config.set_num_threads(threads)
        for mode in ("col2im", "whole", "chunked col2im", "chunked"):
            monkeypatch.setattr(conv_module, "SAMPLES_LAST_MAX_RUN", 0 if mode.endswith("col2im") else max_run)
            layer = CONV[rank](filters=3, kernel_size=kernel, strides=stride, padding=padding, dilation_rate=dilation)
            if mode.startswith("chunked"):
                layer.chunk_threshold = 0
            layer.build(x.shape[1:], rng=np.random.default_rng(0))
            if mode.startswith("chunked"):
                layer._chunk_rows, layer._chunk_samples = layer.geometry.out[0], 2
            y, ctx = layer.forward(x, training=True)
            g = rng.normal(size=y.shape) if g is None else g
            del used[:]
            dx, grads = layer.backward(ctx, g.copy())
            expected = {"col2im": [], "whole": [5], "chunked col2im": [], "chunked": [1, 2, 2]}[mode]
            assert sorted(used) == expected  # (sorted: threads record in any order)
            results[mode] = (dx.copy(), grads["kernel"].copy(), grads["bias"].copy())
    finally:
        config.set_num_threads(None)
    for mode, got in results.items():
        for a, b in zip(got, results["col2im"]):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12, err_msg=mode)
    monkeypatch.setattr(conv_module, "SAMPLES_LAST_MAX_RUN", max_run)
    layer = CONV[rank](filters=3, kernel_size=kernel, strides=stride, padding=padding, dilation_rate=dilation)
    del used[:]
    check_layer(layer, x[:4], rng)
    assert 4 in used


@pytest.mark.parametrize("rank", [2, 3])
def test_row_grid_columns_of_a_non_contiguous_input(rank, monkeypatch):
    """A chunked layer reading one channel without padding takes its channels-first input as a
    view of ``x``; ``im2col_rows`` needs a contiguous buffer, so a strided ``x`` is copied
    first: output and gradients equal those of the contiguous copy."""
    from core.layers import windows

    monkeypatch.setattr(windows, "ROWS_MAX_EXTRA", 10.0)
    rng = np.random.default_rng(rank)
    wide = rng.normal(size=(3,) + SPATIAL[rank] + (2,)).astype(np.float32)
    x = wide[..., :1]
    assert not x.flags.c_contiguous
    layer = CONV[rank](3, 2, activation="relu")
    layer.chunk_threshold, layer.chunk_bytes = 0, 1
    layer.build(x.shape[1:], rng=np.random.default_rng(0))
    assert layer._grid_columns and layer._use_chunks(x)
    runs = []
    for data in (x, np.ascontiguousarray(x)):
        y, ctx = layer.forward(data, training=True)
        dx, grads = layer.backward(ctx, np.ones_like(y))
        runs.append((y.copy(), dx.copy(), grads["kernel"].copy()))
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("first", [True, False], ids=["filters-first", "filters-last"])
def test_row_grid_gradient_buffers_shared_by_two_layers(first, monkeypatch):
    """The output gradient moved onto the grid ``out_rows`` lives in workspace buffers kept zero
    past each row's end. Two chunked layers that borrow them from one workspace in turn, with
    buffers of one size but other padding positions (the same output width and a longer padded
    row, or the same padded row and a shorter output), each get the kernel gradient a fresh
    workspace gives, in blocks of a few rows and of two whole samples."""
    from core.layers import conv as conv_module
    from core.layers.windows import first_axis_last
    from core.workspace import Workspace

    monkeypatch.setattr(conv_module, "FIRST_MIN_POSITIONS", 1)
    # (width, kernel, rows per block, samples per block): out[-1] 40 for both filters first,
    # with blocks of 22 and 21 rows the same number of grid positions; filters last, one
    # padded width (42) and output widths 40 and 38
    pairs = {True: [((42, 3), 22, 1), ((44, 5), 21, 1)], False: [((42, 3), 8, 1), ((42, 5), 8, 1)]}[first]
    pairs += [((w, k), 30 - k + 1, 2) for (w, k), _, _ in pairs]  # blocks of two whole samples

    def kernel_grad(spec, ws):
        (width, k), rows, samples = spec
        layer = layers.Conv2D(4, k)
        layer.chunk_threshold = 0
        layer.build((30, width, 1), rng=np.random.default_rng(0))
        layer._chunk_rows, layer._chunk_samples = rows, samples
        assert layer._grid_columns
        x = np.random.default_rng(width).normal(size=(4, 30, width, 1)).astype(np.float32)
        y, ctx = layer.forward(x, training=True, filters_first=first, workspace=ws)
        assert ctx["first"] == first
        g = np.random.default_rng(k).normal(size=(4,) + layer.geometry.out + (4,)).astype(np.float32)
        if first:  # a filters-first gradient, as the pooling after such a layer gives it
            g = first_axis_last(np.ascontiguousarray(np.moveaxis(g, -1, 0)))
        return layer.backward(ctx, g, need_input_grad=False, workspace=ws)[1]["kernel"].copy()

    for one, two in (pairs[:2], pairs[2:]):
        expected = kernel_grad(two, Workspace())
        ws = Workspace()
        kernel_grad(one, ws)
        ws.reclaim()
        np.testing.assert_allclose(kernel_grad(two, ws), expected, rtol=1e-5, atol=1e-5)


def test_samples_last_rule():
    """The input gradient goes samples last only for 2-D and 3-D layers with stride 1 on the last
    axis, output rows shorter than ``SAMPLES_LAST_MAX_RUN`` and ``SAMPLES_LAST_MIN`` samples."""
    from core.layers import conv as conv_module

    def rule(layer, shape, n):
        layer.build(shape, rng=np.random.default_rng(0))
        return layer._samples_last(n)
    n = conv_module.SAMPLES_LAST_MIN
    short = conv_module.SAMPLES_LAST_MAX_RUN - 1
    assert rule(layers.Conv2D(4, 5, padding="same"), (14, short, 3), n)
    assert not rule(layers.Conv2D(4, 5, padding="same"), (14, short, 3), n - 1)
    assert not rule(layers.Conv2D(4, 5, padding="same"), (14, short + 1, 3), n)
    assert not rule(layers.Conv2D(4, 3, strides=(1, 2)), (14, 14, 3), n)
    assert rule(layers.Conv2D(4, 3, strides=(2, 1)), (14, 14, 3), n)
    assert rule(layers.Conv3D(4, 3), (6, 6, 6, 3), n)
    assert not rule(layers.Conv1D(4, 3), (short, 3), n)


@pytest.mark.parametrize("rank,padding,dilation,kernel", [
    (1, "same", 1, 3), (1, "same", 2, 4), (1, "causal", 2, 3), (1, "valid", 1, 5),
    (2, "same", 1, 3), (2, "same", 1, (2, 4)), (2, "valid", (1, 2), (3, 2)),
    (3, "same", 1, 2), (3, "valid", (2, 1, 1), (2, 3, 2))])
@pytest.mark.parametrize("threads", [1, 2])
def test_input_gradient_as_a_forward_convolution(float64, rank, padding, dilation, kernel, threads, monkeypatch):
    """A stride-1 layer with ``GRAD_FORWARD_MIN_CHANNELS`` input channels computes its input
    gradient as a 'valid' forward convolution of the padded output gradient with the flipped
    kernel (``_input_grad_by_forward``), whole and in blocks of one row (block threads on and
    off), twice with one workspace (its zero-bordered buffer lent again): it equals the
    scatter's and finite differences, and leaves the kernel and bias gradients as they were."""
    from core import config
    from core.layers import conv as conv_module
    from core.workspace import Workspace

    channels = conv_module.GRAD_FORWARD_MIN_CHANNELS
    rng = np.random.default_rng(rank * 5 + threads)
    x = rng.normal(size=(3,) + SPATIAL[rank] + (channels,))
    by_forward = []
    original = conv_module.Conv._input_grad_by_forward
    monkeypatch.setattr(conv_module.Conv, "_input_grad_by_forward",
                        lambda self, dz, ws: by_forward.append(self._gradient_twin()) or original(self, dz, ws))

    def make(mode):
        layer = CONV[rank](filters=5, kernel_size=kernel, padding=padding, dilation_rate=dilation, activation="tanh")
        if mode == "blocks":  # (the input gradient's convolution takes the layer's block size)
            layer.chunk_threshold, layer.chunk_bytes = 0, 1
        layer.build(x.shape[1:], rng=np.random.default_rng(0))
        return layer
    results, g = [], None
    try:
        config.set_num_threads(threads)
        for mode in ("scatter", "whole", "blocks"):
            monkeypatch.setattr(conv_module, "GRAD_FORWARD_MIN_CHANNELS", channels + (mode == "scatter"))
            layer, ws = make(mode), Workspace()
            for again in range(2):
                ws.reclaim()
                y, ctx = layer.forward(x, training=True, workspace=ws)
                g = rng.normal(size=y.shape) if g is None else g
                by_forward.clear()
                dx, grads = layer.backward(ctx, g.copy(), workspace=ws)
                assert len(by_forward) == (mode != "scatter"), mode
                if by_forward:
                    twin = by_forward[0]
                    assert twin.padding == "valid" and twin.input_shape[-1] == 5 and twin.filters == channels
                    assert twin.params == {}
                    chunked = twin._use_chunks(np.empty((3,) + twin.input_shape), keep=False)
                    assert chunked == (rank > 1 and mode == "blocks")
                results.append((dx.copy(), {k: v.copy() for k, v in grads.items()}))
    finally:
        config.set_num_threads(None)
    for dx, grads in results[1:]:
        np.testing.assert_allclose(dx, results[0][0], rtol=1e-12, atol=1e-12)
        for name in ("kernel", "bias"):
            np.testing.assert_allclose(grads[name], results[0][1][name], rtol=1e-12, atol=1e-12)
    check_layer(make("whole"), x[:2], rng)


@pytest.mark.parametrize("rank", [1, 2, 3])
def test_input_gradient_as_a_forward_convolution_in_a_float32_model(rank, monkeypatch):
    """In a float32 ``Sequential`` whose convolution with ``GRAD_FORWARD_MIN_CHANNELS`` input
    channels gets its output gradient from a max pooling (its ReLU moved after it), training
    steps and the input gradient match the scatter's to float32 rounding."""
    from core.input import Input
    from core.layers import conv as conv_module
    from core.model import Sequential

    c = conv_module.GRAD_FORWARD_MIN_CHANNELS
    spatial = {1: (24,), 2: (10, 8), 3: (6, 6, 4)}[rank]
    rng = np.random.default_rng(rank)
    x = rng.standard_normal((6,) + spatial + (3,)).astype(np.float32)
    y = rng.integers(0, 3, 6)

    def run(threshold):
        monkeypatch.setattr(conv_module, "GRAD_FORWARD_MIN_CHANNELS", threshold)
        model = Sequential([Input(spatial + (3,)), CONV[rank](c, 3, padding="same", activation="relu"),
                            CONV[rank](24, 3, padding="same", activation="relu"),
                            {1: layers.MaxPooling1D, 2: layers.MaxPooling2D, 3: layers.MaxPooling3D}[rank](2),
                            layers.Flatten(), layers.Dense(3, activation="softmax")], seed=0)
        model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
        for _ in range(3):
            model.train_on_batch(x, y)
        assert model.layers[1]._grad_by_forward() == (threshold == c)
        return model.get_weights()
    for a, b in zip(run(c), run(c + 1)):
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=1e-6)


def test_input_gradient_as_a_forward_convolution_rule():
    """Only ungrouped stride-1 layers with ``GRAD_FORWARD_MIN_CHANNELS`` input channels or more
    and at most ``GRAD_FORWARD_MAX_GROWTH`` times as many filters."""
    from core.layers import conv as conv_module
    c, growth = conv_module.GRAD_FORWARD_MIN_CHANNELS, conv_module.GRAD_FORWARD_MAX_GROWTH

    def rule(layer, shape):
        layer.build(shape, rng=np.random.default_rng(0))
        return layer._grad_by_forward()
    assert rule(layers.Conv2D(4, 3, padding="same"), (9, 9, c))
    assert rule(layers.Conv2D(growth * c, 3, padding="same"), (9, 9, c))
    assert not rule(layers.Conv2D(growth * c + 1, 3, padding="same"), (9, 9, c))
    assert not rule(layers.Conv2D(4, 3, padding="same"), (9, 9, c - 1))
    assert not rule(layers.Conv2D(4, 3, strides=(1, 2)), (9, 9, c))
    assert not rule(layers.Conv2D(4, 3, groups=2), (9, 9, c))
    assert rule(layers.Conv1D(4, 3, dilation_rate=2, padding="causal"), (20, c))
    assert rule(layers.Conv3D(4, 2), (5, 5, 5, c))


def test_input_gradient_twin_needs_no_weights_of_its_own():
    """The twin holds no kernel, so the parameter cap counts only the layer's own weights, and
    it is made again for another block size."""
    from core import limits
    from core.layers import conv as conv_module

    c = conv_module.GRAD_FORWARD_MIN_CHANNELS
    layer = layers.Conv2D(2 * c, 3, padding="same")
    layer.build((6, 6, c), rng=np.random.default_rng(0))
    x = np.random.default_rng(1).standard_normal((2, 6, 6, c)).astype(np.float32)
    y, ctx = layer.forward(x, training=True)
    with limits.max_params_scope(layer.count_params()):
        dx, _ = layer.backward(ctx, np.ones_like(y))
    twin = layer._gradient_twin()
    assert twin.params == {} and dx.shape == x.shape
    layer._block_bytes = 4096
    assert layer._gradient_twin() is not twin and layer._gradient_twin().block_size == 4096


@pytest.mark.parametrize("rank,stride,padding,dilation,kernel", [(1, 1, "valid", 1, 3), (1, 2, "same", 2, 3),
                                                                (2, 1, "same", 1, 3), (2, (2, 1), "valid", (1, 2), (2, 3)),
                                                                (3, 1, "valid", 1, 2), (3, (1, 2, 1), "same", 2, 2)])
@pytest.mark.parametrize("threads", [1, 2])
def test_columns_channels_last_match_channels_first(float64, rank, stride, padding, dilation, kernel, threads):
    """A layer with several input channels copies its columns channels last (one pass over a
    window view); the outputs, input gradients and kernel gradients equal those of the
    channels-first slices, in the whole-matrix path, in blocks of rows of one sample, in
    blocks of whole samples and in the pooled inference path, at 1 and 2 threads."""
    from core import config

    rng = np.random.default_rng(rank * 11 + threads)
    x = rng.normal(size=(5,) + SPATIAL[rank] + (8,))
    g = None
    results = {}
    try:
        config.set_num_threads(threads)
        for last in (False, True):
            for mode in ("whole", "row blocks", "blocks of samples"):
                layer = CONV[rank](filters=3, kernel_size=kernel, strides=stride, padding=padding,
                                   dilation_rate=dilation)
                if mode != "whole":
                    layer.chunk_threshold = 0
                layer.build(x.shape[1:], rng=np.random.default_rng(0))
                assert layer._cols_last  # eight channels: channels last by default
                layer._cols_last = last
                if mode == "row blocks":
                    layer._chunk_rows, layer._chunk_samples = 1, 1
                elif mode == "blocks of samples":
                    layer._chunk_rows, layer._chunk_samples = layer.geometry.out[0], 2
                assert layer._use_chunks(x) == (mode != "whole" and rank > 1)
                y, ctx = layer.forward(x, training=True)
                g = rng.normal(size=y.shape) if g is None else g
                dx, grads = layer.backward(ctx, g.copy())
                results[last, mode] = (y.copy(), dx.copy(), grads["kernel"].copy())
                if rank > 1 and mode == "row blocks":  # pooled inference, one row pair per block
                    layer._chunk_rows = 2
                    pool = POOLS[rank][0](pool_size=2)
                    pool.build(y.shape[1:])
                    if layer.can_pool_in_blocks(pool, x):
                        k, b = layer.params["kernel"], layer.params["bias"]
                        pooled = layer.infer_pooled(x, None, k, b, None, pool)
                        results[last, "pooled"] = (pooled.copy(),)
                        np.testing.assert_allclose(pooled, pool.forward(y)[0], rtol=1e-12, atol=1e-12)
    finally:
        config.set_num_threads(None)
    ref = results[False, "whole"]
    for key, res in results.items():
        if key[1] == "pooled":
            np.testing.assert_allclose(res[0], results[False, "pooled"][0], rtol=1e-12, atol=1e-12)
            continue
        for got, want in zip(res, ref):
            np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12, err_msg=str(key))
    layer = CONV[rank](filters=3, kernel_size=kernel, strides=stride, padding=padding, dilation_rate=dilation)
    layer.build(x.shape[1:], rng=np.random.default_rng(0))
    assert layer._cols_last
    check_layer(layer, x[:2], rng)


@pytest.mark.parametrize("spatial,kernel,stride,dilation,padding", [
    ((11,), (3,), (2,), (2,), "same"), ((9, 8), (3, 2), (1, 2), (2, 1), "valid"),
    ((7, 9), (5, 5), (1, 1), (1, 1), "same"), ((6, 5, 7), (2, 3, 2), (2, 1, 1), (1, 1, 2), "same")])
def test_im2col_in_one_copy_equals_the_offset_slices(spatial, kernel, stride, dilation, padding):
    """``im2col`` and ``im2col_block`` copy one strided window view (``windows_first``); each
    offset's columns must be exactly the input under that offset's window slice, for the whole
    batch (into a contiguous or a strided destination) and for every block of output rows of a
    sample."""
    from core.layers.windows import WindowGeometry, im2col, im2col_block

    geo = WindowGeometry(spatial, kernel, stride, dilation, padding)
    rng = np.random.default_rng(len(spatial))
    xt = rng.normal(size=(3, 4) + geo.padded)
    cols = im2col(xt, geo, np.empty((geo.size, 3, 4) + geo.out))
    for k, sl in enumerate(geo.slices(2)):
        np.testing.assert_array_equal(cols[k], xt[sl])
    spaced = np.zeros((geo.size, 3, 9) + geo.out)  # a non-contiguous destination is filled too
    np.testing.assert_array_equal(im2col(xt, geo, spaced[:, :, 1:9:2]), cols)
    assert not spaced[:, :, ::2].any()
    for i in range(4):
        for r0, r1 in ((0, geo.out[0]), (1, 2), (geo.out[0] - 2, geo.out[0])):
            block = im2col_block(xt, geo, i, r0, r1, np.empty((geo.size, 3, r1 - r0) + geo.out[1:]))
            for k, sl in enumerate(geo.block_slices((slice(None), i), r0, r1)):
                np.testing.assert_array_equal(block[k], xt[sl])


@pytest.mark.parametrize("spatial,kernel,stride,dilation,padding", [
    ((7, 9), (3, 3), (1, 1), (1, 1), "valid"), ((6, 8), (2, 3), (1, 1), (2, 2), "same"),
    ((6, 5, 9), (3, 2, 3), (1, 1, 1), (1, 1, 1), "valid"), ((7, 6, 8), (2, 3, 2), (2, 1, 1), (2, 1, 2), "same")])
def test_im2col_over_the_row_grid_equals_im2col(spatial, kernel, stride, dilation, padding, monkeypatch):
    """``im2col_rows`` (the columns of a block over the grid ``out_rows``, one run per plane)
    holds ``im2col``'s columns at every output position, for blocks of whole samples and of a
    few output rows of one; the grid positions past each row's end are finite, the last
    ``row_slack`` of each run zero (a buffer of NaNs is overwritten everywhere)."""
    from core.layers import windows
    from core.layers.windows import WindowGeometry, im2col, im2col_rows

    monkeypatch.setattr(windows, "ROWS_MAX_EXTRA", 10.0)  # these small inputs have relatively long rows
    geo = WindowGeometry(spatial, kernel, stride, dilation, padding)
    assert geo.flat_rows
    rng = np.random.default_rng(len(spatial) + dilation[0])
    xt = rng.normal(size=(3, 4) + geo.padded)
    whole = im2col(xt, geo, np.empty((geo.size, 3, 4) + geo.out))
    out = geo.out
    for (a, b), (r0, r1) in itertools.product(((0, 4), (1, 3), (3, 4)), ((0, out[0]), (1, 2), (out[0] - 2, out[0]))):
        cols = np.full((geo.size, 3, b - a, r1 - r0) + geo.out_rows[1:], np.nan)
        assert im2col_rows(xt, geo, a, b, r0, r1, cols) is cols
        np.testing.assert_array_equal(cols[..., :out[-1]], whole[:, :, a:b, r0:r1])
        assert np.isfinite(cols).all()
        runs = cols.reshape(cols.shape[:-2] + (-1,))  # one run per plane (per block in 2-D)
        assert not runs[..., runs.shape[-1] - geo.row_slack:].any()


def test_strided_views_equal_as_strided():
    """``windows.strided`` (an array over a C-contiguous buffer, else ``as_strided``) gives the
    view ``as_strided`` gives, writes through to the buffer, is read-only when asked or when the
    buffer is, and refuses a view reaching past a contiguous buffer's end."""
    from numpy.lib.stride_tricks import as_strided

    from core.layers.windows import first_axis_last, last_axis_first, strided

    x = np.arange(2 * 5 * 6, dtype=np.float32).reshape(2, 5, 6)
    shape, steps = (2, 3, 2, 2), (x.strides[0], x.strides[1], x.strides[1], x.strides[2])
    for source in (x, x[:, 1:], x[:, :, ::2]):  # contiguous, a block, every other column
        view = strided(source, shape, steps)
        np.testing.assert_array_equal(view, as_strided(source, shape, steps))
        view[1, 1, 0, 1] = -1.0
        assert as_strided(source, shape, steps)[1, 1, 0, 1] == -1.0 and (x == -1.0).sum() == 1
        x[x == -1.0] = 0.0
        assert not strided(source, shape, steps, writeable=False).flags.writeable
    flat = np.arange(20.0)
    np.testing.assert_array_equal(strided(flat, (3, 2), (32, 8), offset=5), [[5, 6], [9, 10], [13, 14]])
    frozen = flat.copy()
    frozen.flags.writeable = False
    assert not strided(frozen, (2,), (8,)).flags.writeable
    with pytest.raises(ValueError):
        strided(flat, (3, 2), (64, 8), offset=5)
    z = np.zeros((2, 3, 4))
    assert last_axis_first(z).shape == (4, 2, 3) and first_axis_last(z).shape == (3, 4, 2)
    np.testing.assert_array_equal(last_axis_first(x), np.moveaxis(x, -1, 0))
    np.testing.assert_array_equal(first_axis_last(x), np.moveaxis(x, 0, -1))


def test_column_layout_rule():
    """Channels last where its contiguous runs (last kernel axis x channels) are longer than the
    channels-first slices' (output rows): several channels, not one; never with groups."""
    from core.layers.windows import WindowGeometry, copy_runs
    geo = WindowGeometry((28, 28), (5, 5), (1, 1), (1, 1), "same")
    assert copy_runs(geo, 1) == (5, 28) and copy_runs(geo, 6) == (30, 28)
    assert copy_runs(WindowGeometry((9,), (3,), (1,), (2,), "valid"), 8) == (8, 5)  # dilated: runs of C
    built = []
    for c, groups in ((1, 1), (6, 1), (6, 3)):
        layer = layers.Conv2D(6, 5, padding="same", groups=groups)
        layer.build((28, 28, c), rng=np.random.default_rng(0))
        built.append(layer._cols_last)
    assert built == [False, True, False]


def test_layers_sharing_a_workspace_scatter_by_rows_correctly(float64, monkeypatch):
    """Two layers with the same padded width and different output widths borrow row grids of the
    same shape from one workspace: the wider one's gradient must not leak into the columns the
    narrower one relies on being zero (the row grid's tag holds the output width)."""
    from core.layers import windows
    from core.workspace import Workspace

    monkeypatch.setattr(windows, "ROWS_MAX_EXTRA", 10.0)
    rng = np.random.default_rng(3)
    wide = layers.Conv2D(3, (1, 2), padding="valid")   # (4, 16) -> output 15 wide, rows of 16
    narrow = layers.Conv2D(3, (1, 3), padding="same")  # (4, 14) -> output 14 wide, rows of 16
    wide.build((4, 16, 2), rng=np.random.default_rng(0))
    narrow.build((4, 14, 2), rng=np.random.default_rng(1))
    assert wide.geometry.out_rows == narrow.geometry.out_rows
    xw, xn = rng.normal(size=(2, 4, 16, 2)), rng.normal(size=(2, 4, 14, 2))
    alone = narrow.backward(narrow.forward(xn, training=True)[1], np.ones((2, 4, 14, 3)))[0]
    ws = Workspace()
    for _ in range(2):
        ws.reclaim()
        wide.backward(wide.forward(xw, training=True, workspace=ws)[1], rng.normal(size=(2, 4, 15, 3)),
                      workspace=ws)
        ws.reclaim()
        shared = narrow.backward(narrow.forward(xn, training=True, workspace=ws)[1], np.ones((2, 4, 14, 3)),
                                 workspace=ws)[0]
        np.testing.assert_allclose(shared, alone, rtol=1e-12, atol=1e-12)


def test_whole_rows_geometry(monkeypatch):
    """Which geometries scatter by whole rows, and their row grid."""
    from core.layers import windows
    from core.layers.windows import WindowGeometry
    assert WindowGeometry((15, 15, 15), (3, 3, 3), (1, 1, 1), (1, 1, 1), "valid").flat_rows  # rows 15 / 13
    assert not WindowGeometry((14, 14), (5, 5), (1, 1), (1, 1), "same").flat_rows  # rows 18 / 14: too long
    monkeypatch.setattr(windows, "ROWS_MAX_EXTRA", 10.0)
    geo = WindowGeometry((6, 7), (3, 2), (1, 1), (1, 2), "valid")
    assert geo.flat_rows and geo.out == (4, 5) and geo.out_rows == (4, 7) and geo.row_slack == 2
    assert not WindowGeometry((6, 7), (3, 3), (1, 2), (1, 1), "valid").flat_rows   # stride on the last axis
    assert not WindowGeometry((6,), (3,), (1,), (1,), "valid").flat_rows           # 1-D: rows are already whole
    assert not WindowGeometry((6, 6), (2, 2), (2, 2), (1, 1), "valid").flat_rows   # tiles: nothing to add up


@pytest.mark.parametrize("rank", [1, 2, 3])
@pytest.mark.parametrize("pool,stride,padding", [(2, None, "valid"), (3, 2, "same"), (2, 1, "valid")])
@pytest.mark.parametrize("per_block", ["row", "two samples"])
def test_blocked_max_pooling_matches_whole(rank, pool, stride, padding, per_block):
    """Large inputs are max-pooled in blocks of a few rows of one sample, or of as many whole
    samples as fit; force one-row blocks, or blocks of two samples (the last one short), and
    compare outputs, tie-breaking and gradients with the whole-array path."""
    rng = np.random.default_rng(rank + pool)
    x = np.maximum(rng.normal(size=(3,) + SPATIAL[rank] + (2,)), 0).astype(np.float32)  # many tied zeros

    def make(blocks):
        layer = POOLS[rank][0](pool_size=pool, strides=stride, padding=padding)
        if blocks:
            layer.block_threshold, layer.block_bytes = 0, 1
        layer.build(x.shape[1:])
        if blocks and per_block == "two samples":
            layer._block_rows = 2 * layer.geometry.out[0]
        return layer
    whole, blocked = make(False), make(True)
    assert blocked._block_rows == (1 if per_block == "row" else 2 * blocked.geometry.out[0])
    (yb, cb), (yw, cw) = blocked.forward(x, training=True), whole.forward(x, training=True)
    np.testing.assert_array_equal(yb, yw)
    np.testing.assert_array_equal(cb["won"], cw["won"])
    g = rng.normal(size=yb.shape).astype(np.float32)
    np.testing.assert_array_equal(blocked.backward(cb, g)[0], whole.backward(cw, g)[0])
    np.testing.assert_array_equal(blocked.forward(x)[0], whole.forward(x)[0])


@pytest.mark.parametrize("rank", [1, 2, 3])
@pytest.mark.parametrize("pool,stride,padding", [(2, None, "valid"), (3, 2, "same"), (2, 1, "valid")])
@pytest.mark.parametrize("form", ["conv relu", "batch norm, ReLU layer"])
def test_relu_moved_after_pooling_gives_the_same_gradients(rank, pool, stride, padding, form, monkeypatch):
    """In training, a convolution's ReLU followed by max pooling is applied to the pooled output
    (``Sequential._relus_after_pooling``); outputs, parameter gradients and the input gradient
    equal those of ReLU-then-pool to the bit, with many windows entirely negative (a zero
    gradient either way) and ties at zero."""
    from core import Input, Sequential
    from core.layers.pooling import MaxPooling

    rng = np.random.default_rng(rank * 5 + pool)
    x = rng.normal(size=(3,) + SPATIAL[rank] + (2,)).astype(np.float32)
    if form == "conv relu":
        conv = CONV[rank](4, 2, padding="same", activation="relu", bias_initializer="zeros")
        block = [conv]
    else:  # the medical network's block: conv, batch norm, then a ReLU layer
        conv = CONV[rank](4, 2, padding="same", bias_initializer="zeros")
        block = [conv, layers.BatchNormalization(), layers.ReLU()]
    model = Sequential([Input(x.shape[1:]), *block, POOLS[rank][0](pool_size=pool, strides=stride, padding=padding),
                        CONV[rank](3, 2, activation="relu"), layers.Flatten(), layers.Dense(2)], seed=1)
    conv.params["bias"][:] = [-1.0, 0.0, 0.5, -3.0]  # channel 3: almost every window negative
    if len(block) > 1:
        block[1].params["beta"][:] = [-1.0, 0.0, 0.5, -3.0]
    k = len(block)  # the pooling layer's index
    assert model._relus_after_pooling() == {k - 1}
    # the products laid out as usual in both runs (filters first rounds differently: tested below)
    monkeypatch.setattr(Sequential, "_convolutions_filters_first", lambda self: frozenset())
    runs = []
    original = Sequential._relus_after_pooling
    for moved in (True, False):
        monkeypatch.setattr(Sequential, "_relus_after_pooling", original if moved else lambda self: frozenset())
        model.workspace.reclaim()
        outputs, contexts = model.run_forward(x, training=True, step=0)
        assert (contexts[k]["after"] is not None) == moved and isinstance(model.layers[k], MaxPooling)
        g = np.random.default_rng(0).normal(size=outputs[-1].shape).astype(np.float32)
        dx, grads = model.run_backward(contexts, g, need_input_grad=True)
        runs.append((outputs[k].copy(), outputs[-1].copy(), dx.copy(),
                     [{k: v.copy() for k, v in gr.items()} for gr in grads]))
    (p1, y1, dx1, g1), (p2, y2, dx2, g2) = runs
    assert np.all(p1 >= 0) and np.mean(p1 == 0) > 0.1  # ties at zero are exercised
    np.testing.assert_array_equal(p1, p2)
    np.testing.assert_array_equal(y1, y2)
    np.testing.assert_array_equal(dx1, dx2)
    for a, b in zip(g1, g2):
        assert a.keys() == b.keys()
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])
    assert np.any(g1[0]["kernel"] != 0)


def test_channel_dots_sums_products_per_channel_in_blocks(monkeypatch):
    """``channel_dots(a, b)`` is ``(a * b)`` summed over every axis but the last, on tiled rows and
    plain ones, in one block or many; its float32 sums over millions of rows stay accurate
    (blocks), and arrays of different shapes are refused."""
    from core import utils
    from core.utils import channel_dots
    rng = np.random.default_rng(0)
    for rows_min, block in ((0, 1 << 17), (0, 64), (1 << 18, 1 << 17), (1 << 18, 50)):
        monkeypatch.setattr(utils, "CHANNEL_ROWS_MIN", rows_min)
        monkeypatch.setattr(utils, "CHANNEL_DOTS_BLOCK", block)
        for shape in [(3, 5, 7, 4), (2, 9, 2), (6, 126, 64), (4, 6, 6, 6, 3), (5, 3), (7,)]:
            a, b = rng.normal(size=shape), rng.normal(size=shape)
            want = (a * b).reshape(-1, shape[-1]).sum(axis=0)
            np.testing.assert_allclose(channel_dots(a, b), want, rtol=1e-12, atol=1e-12)
            got = channel_dots(a.astype(np.float32), np.asfortranarray(b.astype(np.float32)))
            assert got.dtype == np.float32 and got.shape == (shape[-1],)
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.sqrt(a.size))
    monkeypatch.undo()
    x = (rng.normal(size=(1 << 21, 4)) + 3).astype(np.float32)  # float32 sums over 2 million rows
    want = (x.astype(np.float64) ** 2).sum(axis=0)
    np.testing.assert_allclose(channel_dots(x, x), want, rtol=3e-6)  # one einsum: 1e-4
    with pytest.raises(ValueError, match=r"shapes differ, \(2, 3\) and \(3, 2\)"):
        channel_dots(np.ones((2, 3)), np.ones((3, 2)))


def test_channel_rows_gathers_positions_and_per_channel_operations_agree(monkeypatch):
    """Per-channel operations run on rows of several positions (``channel_rows``): the shape rule,
    and the bias epilogue and batch norm on contiguous and non-contiguous arrays equal the plain
    broadcast."""
    from core.layers.conv import _epilogue
    from core import utils
    from core.utils import CHANNEL_ROW_MAX, channel_rows
    assert channel_rows((8, 30, 30, 30, 8)) == ((2400, 720), 90)  # a row of 30, then 3 of the 30 rows
    assert channel_rows((64, 28, 28, 6)) == ((448, 672), 112)    # a row of 28, then 4 of the 28 rows
    assert channel_rows((64, 126, 64)) == ((64, 126, 64), 1)  # 64 channels: rows long enough
    assert channel_rows((64, 128, 32)) == ((64 * 4, 1024), 32)
    assert channel_rows((5, 3)) == ((5, 3), 1) and channel_rows((2, 4, 300)) == ((2, 4, 300), 1)
    assert channel_rows((32, 128, 32)) == ((32, 128, 32), 1)  # 131,072 numbers: too few to pay
    monkeypatch.setattr(utils, "CHANNEL_ROWS_MIN", 0)  # the small arrays below
    for shape in [(3, 5, 7, 4), (2, 9, 2), (4, 6, 6, 6, 3)]:
        rows, repeat = channel_rows(shape)
        assert len(rows) == 2 and rows[1] == repeat * shape[-1] and rows[0] * rows[1] == np.prod(shape)
        assert rows[1] <= CHANNEL_ROW_MAX
    rng = np.random.default_rng(0)
    bias = rng.normal(size=4)
    z = rng.normal(size=(3, 5, 7, 4))
    for arr in (z.copy(), np.asfortranarray(z), z.copy()[:, ::-1]):
        want = arr + bias
        _epilogue(arr, bias, None)
        np.testing.assert_allclose(arr, want, rtol=1e-15)
    bn = layers.BatchNormalization()
    bn.build(z.shape[1:], rng=np.random.default_rng(0))
    bn.set_weights([rng.uniform(0.5, 2, 4), rng.normal(size=4), rng.normal(size=4), rng.uniform(0.5, 2, 4)])
    g = rng.normal(size=z.shape)
    results = []
    for training in (False, True):  # (training moves the statistics inference uses)
        for arr in (z, z[:, ::-1].copy()[:, ::-1], np.asfortranarray(z)):
            y, ctx = bn.forward(arr, training=training, context=True)
            dx, grads = bn.backward(ctx, g)
            results.append((training, y.copy(), dx.copy(), grads["gamma"].copy()))
    for training, y, dx, dg in results:
        ref = results[3] if training else results[0]
        np.testing.assert_allclose(y, ref[1], rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(dx, ref[2], rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(dg, ref[3], rtol=1e-12, atol=1e-12)
    xhat = (z - z.mean(axis=(0, 1, 2))) / np.sqrt(z.var(axis=(0, 1, 2)) + bn.epsilon)
    np.testing.assert_allclose(results[3][1], xhat * bn.params["gamma"] + bn.params["beta"], rtol=1e-10, atol=1e-12)
    # the parameter gradients come in dy's dtype, even when the kept context is wider
    y, ctx = bn.forward(z, training=False, context=True)
    _, grads = bn.backward(ctx, g.astype(np.float32))
    assert grads["gamma"].dtype == grads["beta"].dtype == np.float32
    bn.trainable = False  # a frozen layer: no parameter gradients
    _, ctx = bn.forward(z, training=True, context=True)
    dx, grads = bn.backward(ctx, g)
    assert grads == {}
    np.testing.assert_allclose(dx, g * bn.params["gamma"] / np.sqrt(bn.params["moving_variance"] + bn.epsilon),
                               rtol=1e-12)


@pytest.mark.parametrize("rank", [1, 2, 3])
@pytest.mark.parametrize("pool,stride", [(2, None), (3, 2), (2, 1)])
@pytest.mark.parametrize("blocks", [0, 1, 2, "three samples"])
def test_max_pooling_of_a_filters_first_input_equals_channels_last(rank, pool, stride, blocks):
    """Max pooling handed the ``(N, *spatial, C)`` view of a contiguous ``(C, N, *spatial)`` array
    (a convolution's output under ``filters_first``) pools it in that layout (whole, in rows of a
    sample, or in blocks of whole samples) and returns the input gradient as such a view; output, winners (ties
    included) and gradient equal those of the same numbers laid out channels last, to the bit."""
    rng = np.random.default_rng(rank * 3 + pool)
    xt = np.maximum(rng.normal(size=(4, 3) + SPATIAL[rank]), 0).astype(np.float32)  # many tied zeros
    x = np.moveaxis(xt, 0, -1)
    layer = POOLS[rank][0](pool_size=pool, strides=stride)
    layer.build(x.shape[1:])
    if blocks:  # blocks of one or two output rows of a sample, or of three whole samples of four
        layer.block_threshold = 0
        layer._block_rows = 3 * layer.geometry.out[0] if blocks == "three samples" else blocks
    (y1, c1), (y2, c2) = layer.forward(x, training=True), layer.forward(np.ascontiguousarray(x), training=True)
    assert c1["first"] and not c2["first"]
    np.testing.assert_array_equal(y1, y2)
    assert y1.flags.c_contiguous
    g = rng.normal(size=y1.shape).astype(np.float32)
    d1, d2 = layer.backward(c1, g)[0], layer.backward(c2, g)[0]
    assert np.moveaxis(d1, -1, 0).flags.c_contiguous
    np.testing.assert_array_equal(d1, d2)


TILED = {1: (12,), 2: (6, 8), 3: (6, 4, 8)}  # pools of 2 and of 3 on the first axis tile these exactly


@pytest.mark.parametrize("rank,pool", [(1, 2), (2, 2), (3, 2), (2, (3, 2)), (3, (3, 2, 2))])
@pytest.mark.parametrize("blocks", [0, 1, 2, "three samples"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_max_pooling_by_pairs_equals_the_window_by_window_kernel(rank, pool, blocks, dtype):
    """Windows that tile the input and are two wide on its last axis are pooled by pairs
    (``WindowGeometry.pairs``, ``max_pool_pairs``) in the filters-first layout: whole, in rows of a
    sample, or in blocks of whole samples. With many tied windows and a window of NaN, the output
    and inference output equal those of the window-by-window kernel (``max_pool``; a zero may
    differ in sign, the maxima being taken in another order) and the gradient is the same to the
    bit, signed zeros included."""
    rng = np.random.default_rng(rank + 7 * len(str(blocks)))
    xt = np.round(rng.normal(size=(3, 4) + TILED[rank]) * 0.7).astype(dtype)  # a few values: many ties
    xt.reshape(-1)[5] = np.nan
    layer = POOLS[rank][0](pool_size=pool, dtype=dtype)
    layer.build(xt.shape[2:] + (3,))
    geo = layer.geometry
    assert geo.pairs
    if blocks:
        layer.block_threshold = 0
        layer._block_rows = 3 * geo.out[0] if blocks == "three samples" else blocks
    g = rng.normal(size=(4,) + geo.out + (3,)).astype(dtype)
    results = []
    for pairs in (True, False):
        geo.pairs = pairs
        y, ctx = layer.forward(np.moveaxis(xt, 0, -1), training=True)
        assert ctx["first"]
        dx = layer.backward(ctx, g)[0]
        inferred = layer.forward(np.moveaxis(xt, 0, -1))[0]
        results.append((y.copy(), dx.copy(), inferred.copy()))
    for new, old in zip(*results):
        np.testing.assert_array_equal(new, old)
    np.testing.assert_array_equal(np.signbit(results[0][1]), np.signbit(results[1][1]))
    assert np.isnan(results[0][0]).sum() == 1


def test_first_winners_keeps_the_first_maximum_of_each_window():
    """``first_winners`` against a plain loop over the windows, on every pattern of ties of a window
    of 2 x 2 offsets and on windows of more offsets than a byte can count, and ``pair_up``
    against ``np.repeat`` for both float sizes."""
    from core.layers.windows import first_winners, pair_up
    patterns = np.array(list(np.ndindex(*(2,) * 8)), bool)  # all 256 ways 8 offsets can equal the maximum
    won = np.ascontiguousarray(patterns.reshape(-1, 4, 2).transpose(1, 0, 2).reshape(4, 1, 512))
    kept = first_winners(won.copy()).reshape(4, 256, 2).transpose(1, 0, 2).reshape(256, 8)
    first = np.zeros_like(patterns)
    hit = patterns.any(axis=1)
    first[hit, patterns[hit].argmax(axis=1)] = True
    np.testing.assert_array_equal(kept, first)
    for offsets in (127, 128, 200):  # windows of 254 to 400 maxima: more than a byte counts
        kept = first_winners(np.ones((offsets, 3, 2), bool))
        assert kept[0, :, 0].all() and kept.sum() == 3
    for dtype in (np.float32, np.float64):
        v = np.random.default_rng(0).normal(size=(3, 5)).astype(dtype)
        np.testing.assert_array_equal(pair_up(v[:, 1:], np.empty((3, 8), dtype)), np.repeat(v[:, 1:], 2, axis=1))


@pytest.mark.parametrize("rank", [1, 2, 3])
@pytest.mark.parametrize("case", ["relu", "linear", "chunked", "chunked on the row grid",
                                  "chunked samples on the row grid", "input gradient", "tanh", "padded pooling",
                                  "batch norm", "batch norm and relu layer", "relu layer",
                                  "batch norm, input gradient"])
@pytest.mark.parametrize("threads", [1, 2])
def test_convolution_filters_first_for_its_pooling_trains_as_channels_last(float64, rank, case, threads,
                                                                           monkeypatch):
    """A convolution with one input channel before a max pooling computes its training output
    filters first (``Sequential._convolutions_filters_first``), the pooling reads that layout
    and the kernel gradient comes from it (also block by block for a chunked layer; where the
    layer's input gradient is needed it falls back to channels last). A batch normalization,
    an ``Activation`` ReLU moved after the pooling, or both, may stand between them: batch
    normalization then runs filters first too. Outputs and every
    gradient equal the channels-last run up to rounding; with an activation
    that stays before the pooling (tanh) or a pooling with padding, nothing changes. A chunked
    layer builds its columns row by row or, on the row grid, over the grid ``out_rows``
    (``Conv._grid_columns``), with the output gradient moved onto that grid."""
    from core import Input, Sequential, config
    from core.layers import conv as conv_module
    from core.layers import windows

    monkeypatch.setattr(conv_module, "FIRST_MIN_POSITIONS", 1)  # these batches are small
    monkeypatch.setattr(windows, "ROWS_MAX_EXTRA", 10.0 if case.endswith("on the row grid") else -1.0)
    rng = np.random.default_rng(rank * 11 + len(case))
    x = rng.normal(size=(5,) + SPATIAL[rank] + (1,))
    act = {"linear": None, "tanh": "tanh"}.get(case, None if "layer" in case or "norm" in case else "relu")
    conv = CONV[rank](4, 3, padding="same", activation=act, bias_initializer="glorot_uniform")
    before = [CONV[rank](1, 2, padding="same")] if case.endswith("input gradient") else []
    norm = layers.BatchNormalization(beta_initializer="glorot_uniform", gamma_initializer="glorot_uniform")
    between = [norm] if "norm" in case else []
    between += [layers.Activation("relu")] if "relu layer" in case else []
    pool = POOLS[rank][0](pool_size=2, padding="same" if case == "padded pooling" else "valid")
    x = x[(slice(None),) + tuple(slice(0, n - n % 2 + (case == "padded pooling")) for n in x.shape[1:-1])]
    model = Sequential([Input(x.shape[1:]), *before, conv, *between, pool, CONV[rank](3, 2, activation="relu"),
                        layers.Flatten(), layers.Dense(2)], seed=1)
    if case.startswith("chunked"):
        conv.chunk_threshold, conv.chunk_bytes = 0, 1
        conv.build(conv.input_shape)
        assert conv._use_chunks(x) == (rank > 1)  # 1-D layers never run in chunks
        assert conv._grid_columns == (case.endswith("on the row grid") and rank > 1)
        if case.startswith("chunked samples"):  # blocks of two whole samples (2, 2 and 1)
            conv._chunk_rows, conv._chunk_samples = conv.geometry.out[0], 2
    k = model.layers.index(pool)
    expected = case not in ("tanh", "padded pooling")
    runs = []
    original = Sequential._convolutions_filters_first
    try:
        config.set_num_threads(threads)
        for first in (True, False):
            monkeypatch.setattr(Sequential, "_convolutions_filters_first",
                                original if first else lambda self: frozenset())
            model.workspace.reclaim()
            outputs, contexts = model.run_forward(x, training=True, step=0)
            pooling = contexts[k]
            if pooling.get("fused"):  # the first convolution pooled its own output (_pools_first_layer)
                assert first and k == 1 and case.startswith("chunked samples")
                pooling = contexts[0]["pool"]
            assert pooling["first"] == (first and expected)
            if between[:1] == [norm]:
                assert bool(contexts[k - len(between)].get("first")) == first
            g = np.random.default_rng(0).normal(size=outputs[-1].shape)
            # as in training: no gradient of the model's input (the first layer's needs none)
            dx, grads = model.run_backward(contexts, g, need_input_grad=False)
            runs.append((outputs[k].copy(), outputs[-1].copy(), dx,
                         [{n: v.copy() for n, v in gr.items()} for gr in grads]))
    finally:
        config.set_num_threads(None)
    (p1, y1, dx1, g1), (p2, y2, dx2, g2) = runs
    assert dx1 is None and dx2 is None
    for a, b in [(p1, p2), (y1, y2)] + [(a[n], b[n]) for a, b in zip(g1, g2) for n in a]:
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    assert all(a.keys() == b.keys() for a, b in zip(g1, g2))
    assert np.any(g1[model.layers.index(conv)]["kernel"] != 0)
    if between[:1] == [norm]:
        assert set(g1[model.layers.index(norm)]) == {"gamma", "beta"}


@pytest.mark.parametrize("more", [0, 1])
@pytest.mark.parametrize("frozen", [False, True])
def test_filters_first_in_training_only_for_few_filters_and_a_trainable_batch_norm(more, frozen):
    """In training the pooling after a filters-first convolution also records its winners and
    takes the gradient back, which runs faster channels last above ``FIRST_TRAIN_MAX_FILTERS``
    filters (2.6x faster with 32 on MNIST-sized batches); inference keeps its own rule. A
    frozen batch norm normalizes channels last, so its convolution stays so too."""
    from core import Input, Sequential
    from core.layers.conv import FIRST_TRAIN_MAX_FILTERS

    filters = FIRST_TRAIN_MAX_FILTERS + more
    norm = layers.BatchNormalization()
    norm.trainable = not frozen
    model = Sequential([Input((28, 28, 1)), layers.Conv2D(filters, 3, padding="same", use_bias=False),
                        norm, layers.Activation("relu"), layers.MaxPooling2D(2),
                        layers.Flatten(), layers.Dense(10)], seed=0)
    assert model.layers[0].can_run_filters_first(False)  # (the inference rule takes it)
    assert model._convolutions_filters_first() == (set() if more or frozen else {0})


@pytest.mark.parametrize("rank", [1, 2, 3])
def test_batch_norm_filters_first_in_float32_trains_and_updates_statistics_as_channels_last(rank, monkeypatch):
    """The scan network's block in float32: a convolution, batch norm, a ReLU layer and max
    pooling, filters first and channels last, give the same outputs, gradients and moving
    statistics up to float32 rounding."""
    from core import Input, Sequential
    from core.layers import conv as conv_module

    monkeypatch.setattr(conv_module, "FIRST_MIN_POSITIONS", 1)
    rng = np.random.default_rng(rank)
    x = (3 + rng.normal(size=(3,) + tuple(n - n % 2 for n in SPATIAL[rank]) + (1,))).astype(np.float32)
    norm = layers.BatchNormalization(momentum=0.9)
    model = Sequential([Input(x.shape[1:]), CONV[rank](6, 3, padding="same", use_bias=False), norm,
                        layers.Activation("relu"), POOLS[rank][0](pool_size=2), layers.Flatten(), layers.Dense(2)],
                       seed=3)
    assert model._convolutions_filters_first() == {0}
    start = {n: norm.params[n].copy() for n in ("moving_mean", "moving_variance")}
    runs = []
    original = Sequential._convolutions_filters_first
    for first in (True, False):
        monkeypatch.setattr(Sequential, "_convolutions_filters_first", original if first else lambda self: frozenset())
        norm.params.update({n: v.copy() for n, v in start.items()})
        model.workspace.reclaim()
        outputs, contexts = model.run_forward(x, training=True, step=0)
        assert bool(contexts[1].get("first")) == first
        _, grads = model.run_backward(contexts, np.ones(outputs[-1].shape, np.float32), need_input_grad=False)
        runs.append([outputs[-1].copy(), norm.params["moving_mean"].copy(), norm.params["moving_variance"].copy()]
                    + [g[n].copy() for g in grads for n in sorted(g)])
    for a, b in zip(*runs):
        assert a.dtype == np.float32
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5 * max(float(np.abs(b).max()), 1.0))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("length", [1, 1023, 1024, 5000, 3 * 1024])
def test_plane_dots_sums_each_channel(dtype, length):
    from core.utils import plane_dots

    rng = np.random.default_rng(length)
    a, b = (rng.normal(size=(3, 2, length)).astype(dtype) for _ in range(2))
    expected = (a.astype(np.float64) * b).sum(axis=(1, 2))
    np.testing.assert_allclose(plane_dots(a, b), expected, rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-4)
    with pytest.raises(ValueError, match="shapes differ"):
        plane_dots(a, b[:, :1])


def test_plane_dots_keeps_float32_sums_of_long_runs_within_a_millionth():
    # a quarter of a million numbers near 1 a channel (the scan network's first block): summed
    # in pieces, the float32 total stays within 1e-6 of the exact one
    from core.utils import plane_dots

    a = 1 + np.random.default_rng(0).uniform(0, 1e-2, size=(2, 8, 32 ** 3)).astype(np.float32)
    ones = np.ones_like(a)
    exact = a.astype(np.float64).sum(axis=(1, 2))
    assert np.max(np.abs(plane_dots(a, ones) / exact - 1)) < 1e-6


def test_filters_first_only_for_batches_with_enough_positions():
    """Below ``FIRST_MIN_POSITIONS`` output positions (the tutorial network at batch 1) the extra
    calls of the filters-first layout cost more than they save: the usual layout runs."""
    from core import Input, Sequential
    from core.layers import conv as conv_module

    model = Sequential([Input((28, 28, 1)), layers.Conv2D(8, 3, activation="relu"), layers.MaxPooling2D(2),
                        layers.Flatten(), layers.Dense(10)], seed=0)
    assert model._convolutions_filters_first() == {0}
    for n, expected in ((1, False), (conv_module.FIRST_MIN_POSITIONS // (26 * 26) + 1, True)):
        x = np.random.default_rng(n).normal(size=(n, 28, 28, 1)).astype(np.float32)
        model.workspace.reclaim()
        _, contexts = model.run_forward(x, training=True, step=0)
        assert contexts[1]["first"] == expected

"""The first convolution of a network pooling its own output in training (``Conv.forward(pool=...)``,
``Sequential._pools_first_layer``): the same outputs, winners and gradients as the convolution and
the max pooling run one after the other (the bias gradient up to float rounding), in 2-D and 3-D,
in blocks of rows or of whole samples, on one thread and on two; its kernel gradient against
finite differences; and the input gradient, which training never asks of a first layer, through
the two layers' own backward."""
import numpy as np
import pytest

from core import Input, Sequential, config, layers, model as model_module
from core.workspace import Workspace

SHAPES = {2: (34, 32, 1), 3: (12, 10, 12, 2)}  # 960 and 800 output positions a sample


@pytest.fixture
def restore():
    yield
    config.set_block_bytes(None)
    config.set_num_threads(None)


def _model(rank, activation, use_bias, rows, dtype="float32", seed=3):
    """A first convolution in blocks of ``rows`` output rows (``None``: blocks of whole
    samples), then a max pooling by pairs, then a small head (``dtype``: the one the layers are
    built in, for the blocks' size)."""
    conv, pool = (layers.Conv2D, layers.MaxPooling2D) if rank == 2 else (layers.Conv3D, layers.MaxPooling3D)

    def build():
        model = Sequential([Input(SHAPES[rank]), conv(4, 3, activation=activation, use_bias=use_bias),
                            pool(2), layers.Flatten(), layers.Dense(3, activation="softmax")],
                           seed=seed)
        model.compile("sgd", "sparse_categorical_crossentropy")
        model.layers[0].chunk_threshold = 0  # in blocks, however small
        return model
    config.set_block_bytes(1 << 20)
    first = build().layers[0]
    row_bytes = first.geometry.size * SHAPES[rank][-1] * first._block_positions(1, 1) * np.dtype(dtype).itemsize
    config.set_block_bytes(row_bytes * (rows if rows else 3 * first.geometry.out[0]))
    model = build()
    config.set_block_bytes(None)
    return model


def _data(rank, n=6, seed=0):  # (filters first from 4,096 output positions a batch)
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n,) + SHAPES[rank]).astype(np.float32), np.arange(n) % 3


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("rows", [2, 4, None], ids=["rows2", "rows4", "samples"])
@pytest.mark.parametrize("activation,use_bias", [("relu", True), (None, True), ("relu", False)])
@pytest.mark.parametrize("rank", [2, 3])
def test_a_first_layer_that_pools_its_blocks_trains_as_the_two_layers(rank, activation, use_bias, rows, threads,
                                                                      restore, monkeypatch):
    x, y = _data(rank)
    fused, plain = _model(rank, activation, use_bias, rows), _model(rank, activation, use_bias, rows)
    conv = fused.layers[0]
    assert conv._chunk_samples == 1 if rows else conv._chunk_samples > 1
    config.set_num_threads(threads)
    assert fused._pools_first_layer(x, True)  # (else the test compares a path with itself)
    original = model_module.Sequential._pools_first_layer

    def only_fused(self, xb, keep):
        return original(self, xb, keep) if self is fused else False
    monkeypatch.setattr(model_module.Sequential, "_pools_first_layer", only_fused)
    for step in range(3):
        if step == 0:
            outputs, contexts = fused.run_forward(x, training=True, step=0)
            reference, _ = plain.run_forward(x, training=True, step=0)
            assert conv.pooled(contexts[0]) and contexts[1]["fused"]
            np.testing.assert_array_equal(outputs[1], reference[1])
            assert np.array_equal(contexts[0]["pool"]["won"].any(axis=0), contexts[0]["pool"]["won"].sum(axis=0) == 1)
            np.testing.assert_array_equal(fused(x, training=True), plain(x, training=True))  # (no contexts)
        loss_fused, loss_plain = fused.train_on_batch(x, y), plain.train_on_batch(x, y)
        if step == 0:  # from the same weights: the same numbers, the bias gradient up to rounding
            assert loss_fused == loss_plain
            for key, g in plain.last_gradients.items():
                if key == "0/bias":
                    np.testing.assert_allclose(fused.last_gradients[key], g, rtol=1e-5, atol=1e-7)
                else:
                    np.testing.assert_array_equal(fused.last_gradients[key], g)
    for a, b in zip(fused.get_weights(), plain.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("rows", [3, 5])
@pytest.mark.parametrize("rank", [2, 3])
def test_blocks_of_rows_that_pairs_would_not_tile_pool_fewer_rows(rank, rows, restore, monkeypatch):
    """A layer planned in blocks of an odd number of rows (3, 5: what its block size gave) pools
    blocks of one row fewer, which pairs of rows tile: the same pooled output and winners as the
    two layers, and the gradients up to float rounding (the kernel gradient's blocks differ)."""
    x, y = _data(rank)
    fused, plain = _model(rank, "relu", True, rows), _model(rank, "relu", True, rows)
    assert fused.layers[0]._chunk_rows == rows and fused._pools_first_layer(x, True)
    original = model_module.Sequential._pools_first_layer
    monkeypatch.setattr(model_module.Sequential, "_pools_first_layer",
                        lambda self, xb, keep: original(self, xb, keep) if self is fused else False)
    outputs, contexts = fused.run_forward(x, training=True, step=0)
    reference, ref_contexts = plain.run_forward(x, training=True, step=0)
    assert fused.layers[0].pooled(contexts[0])
    np.testing.assert_allclose(outputs[1], reference[1], rtol=1e-6, atol=1e-6)
    seen = []
    original_blocks = fused.layers[0]._blocks

    def blocks(*args):
        for block in original_blocks(*args):
            seen.append(block[3] - block[2])
            yield block
    monkeypatch.setattr(fused.layers[0], "_blocks", blocks)
    fused.train_on_batch(x, y)
    plain.train_on_batch(x, y)
    assert seen and all(r % 2 == 0 for r in seen) and max(seen) == rows - 1
    for key, g in plain.last_gradients.items():
        np.testing.assert_allclose(fused.last_gradients[key], g, rtol=1e-5, atol=1e-6)


def test_batches_that_cannot_be_pooled_in_blocks_run_the_two_layers(restore):
    """Blocks of a single row would cut every pooling window in two, and a layer that runs
    whole has no blocks: the two layers then run one after the other."""
    x, _ = _data(3)
    single = _model(3, "relu", True, 1)
    assert not single._pools_first_layer(x, True)
    whole = _model(3, "relu", True, 2)
    whole.layers[0].chunk_threshold = 1 << 30
    assert not whole._pools_first_layer(x, True)
    outputs, contexts = whole.run_forward(x, training=True, step=0)
    assert not whole.layers[0].pooled(contexts[0]) and "fused" not in contexts[1]


def _pooled_pair(rank, dtype="float32"):
    model = _model(rank, "relu", True, 2, dtype=dtype)
    conv, pool = model.layers[:2]
    options = dict(model.forward_options(0, True), pool=pool, **model.forward_options(1, True))
    return model, conv, pool, options


@pytest.mark.parametrize("rank", [2, 3])
def test_the_input_gradient_goes_through_the_two_layers_backward(rank, restore):
    model, conv, pool, options = _pooled_pair(rank)
    x, _ = _data(rank)
    ws, ref = Workspace(), Workspace()
    out, ctx = conv.forward(x, training=True, workspace=ws, **options)
    assert conv.pooled(ctx)
    dy = np.random.default_rng(1).normal(size=out.shape).astype(np.float32)
    z, c0 = conv.forward(x, training=True, workspace=ref, **model.forward_options(0, True))
    p, c1 = pool.forward(z, training=True, workspace=ref, **model.forward_options(1, True))
    np.testing.assert_array_equal(out, p)
    dz, _ = pool.backward(c1, dy, workspace=ref)
    dx_ref, grads_ref = conv.backward(c0, dz, need_input_grad=True, workspace=ref)
    dx, grads = conv.backward(ctx, dy, need_input_grad=True, workspace=ws)
    np.testing.assert_array_equal(dx, dx_ref)
    for key in grads_ref:
        np.testing.assert_array_equal(grads[key], grads_ref[key])
    _, grads = conv.backward(ctx, dy, need_input_grad=False, workspace=ws)  # the pooled path
    np.testing.assert_array_equal(grads["kernel"], grads_ref["kernel"])
    np.testing.assert_allclose(grads["bias"], grads_ref["bias"], rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("rank", [2, 3])
def test_the_pooled_kernel_gradient_matches_finite_differences(rank, restore, float64):
    model, conv, pool, options = _pooled_pair(rank, dtype="float64")
    x = np.random.default_rng(4).normal(size=(6,) + SHAPES[rank])
    shape = conv.forward(x, training=True, workspace=Workspace(), **options)[0].shape
    r = np.random.default_rng(5).normal(size=shape)  # the loss: sum(r * output)

    def loss(kernel=None, bias=None):
        saved = conv.params["kernel"].copy(), conv.params["bias"].copy()
        if kernel is not None:
            conv.params["kernel"][...] = kernel
        if bias is not None:
            conv.params["bias"][...] = bias
        out, ctx = conv.forward(x, training=True, workspace=Workspace(), **options)
        conv.params["kernel"][...], conv.params["bias"][...] = saved
        return float((out * r).sum()), out, ctx

    _, out, ctx = loss()
    assert conv.pooled(ctx)
    _, grads = conv.backward(ctx, r, need_input_grad=False, workspace=Workspace())
    eps = 1e-6
    kernel, bias = conv.params["kernel"], conv.params["bias"]
    picks = np.random.default_rng(6).choice(kernel.size, size=12, replace=False)
    for flat in picks:
        idx = np.unravel_index(flat, kernel.shape)
        up, down = kernel.copy(), kernel.copy()
        up[idx] += eps
        down[idx] -= eps
        numeric = (loss(kernel=up)[0] - loss(kernel=down)[0]) / (2 * eps)
        assert grads["kernel"][idx] == pytest.approx(numeric, rel=1e-5, abs=1e-7)
    for j in range(bias.size):
        up, down = bias.copy(), bias.copy()
        up[j] += eps
        down[j] -= eps
        numeric = (loss(bias=up)[0] - loss(bias=down)[0]) / (2 * eps)
        assert grads["bias"][j] == pytest.approx(numeric, rel=1e-5, abs=1e-7)


def test_a_convolution_that_applies_its_own_activation_does_not_pool_for_the_next_layer(restore):
    """``forward(filters_first=True, pool=...)`` pools only an output whose activation the
    caller moved after the pooling (``activation=False``): with its ReLU still to apply, the
    layer returns its own output, as without ``pool``."""
    model, conv, pool, options = _pooled_pair(3)
    x, _ = _data(3)
    options.pop("activation")
    out, ctx = conv.forward(x, training=True, workspace=Workspace(), **options)
    assert not conv.pooled(ctx) and out.shape == (len(x),) + conv.output_shape
    assert out.min() >= 0

"""The fused inference path of ``predict`` (core/inference.py) agrees with the
layer-by-layer forward pass, for every layer type in 1-D, 2-D and 3-D, with
batch norm folded into the preceding convolution or dense layer; the folded
weights follow every change of the weights.

Tolerance: the folded product ``x @ (kernel * s)`` rounds differently from
``(x @ kernel) * s``; in float32 the two agree to a few units of 1e-7
relative to the output's scale. The tests allow 1e-5 of the largest output
magnitude plus 1e-4 relative, well above that rounding and far below any
error in the folding (a wrong mean, scale or epsilon moves outputs by 1e-3 or
more of their scale)."""
import numpy as np
import pytest

from core import Input, Sequential, layers
from core import config
from core.inference import _BranchesStep, _Fused, _FusedPool
from core.serialization import load_model
from tests.core.test_contract import CASES, CONV, SPATIAL, _chunked, _input


def _unfused(model, x):
    model.workspace.reclaim()
    outputs, _ = model.run_forward(x, training=False, context=False)
    return np.array(outputs[-1], copy=True)


def _assert_close(fused, unfused):
    scale = float(np.max(np.abs(unfused))) or 1.0
    np.testing.assert_allclose(fused, unfused, rtol=1e-4, atol=1e-5 * scale)


def _randomize_batchnorms(model, rng):
    """Non-trivial gamma, beta and moving statistics for every batch norm, also inside Branches."""
    stacks = [model.layers] + [stack for lay in model.layers if isinstance(lay, layers.Branches)
                               for stack in lay.branches]
    for stack in stacks:
        for lay in stack:
            if isinstance(lay, layers.BatchNormalization):
                c = lay.input_shape[-1]
                values = {"gamma": rng.uniform(0.5, 2.0, c), "beta": rng.normal(size=c),
                          "moving_mean": rng.normal(size=c), "moving_variance": rng.uniform(0.2, 3.0, c)}
                lay.set_weights([values[n] for n in lay.weight_names()])


@pytest.mark.parametrize("name,rank,make", CASES, ids=[c[0] for c in CASES])
def test_every_layer_type_predicts_as_the_unfused_forward(name, rank, make):
    rng = np.random.default_rng(2)
    x = _input(rank, rng)
    model = Sequential([Input(x.shape[1:]), make()], seed=3)
    _randomize_batchnorms(model, rng)
    _assert_close(model.predict(x), _unfused(model, x))


def _folding_stacks(rank):
    conv = CONV[rank]
    yield "bias+bn+relu", [conv(5, 3, padding="same"), layers.BatchNormalization(), layers.ReLU()], 1
    yield "nobias+bn", [conv(5, 2, use_bias=False), layers.BatchNormalization()], 1
    yield "bn-no-scale-center+tanh", [conv(4, 2, strides=2), layers.BatchNormalization(scale=False, center=False),
                                      layers.Activation("tanh")], 1
    yield "groups+bn", [conv(4, 2, groups=2, padding="same"), layers.BatchNormalization()], 1
    yield "conv+relu-layer", [conv(4, 2), layers.ReLU()], 1
    yield "relu-conv+bn (not foldable)", [conv(4, 2, activation="relu"), layers.BatchNormalization()], 1
    if rank > 1:
        yield "chunked+bn+relu", [_chunked(conv(3, 2, padding="same")), layers.BatchNormalization(),
                                  layers.ReLU()], 1
    if rank > 1:
        pool = {2: layers.MaxPooling2D, 3: layers.MaxPooling3D}[rank]
        yield "chunked+bn+relu+maxpool", [_chunked(conv(3, 2, padding="same")), layers.BatchNormalization(),
                                          layers.ReLU(), pool(2)], 1
        yield "chunked+maxpool-overlapping", [_chunked(conv(3, 2, activation="relu")), pool(2, strides=1)], 1
    yield "branches", [layers.Branches([[conv(4, 3, padding="same", use_bias=False), layers.BatchNormalization(),
                                         layers.ReLU()], []], merge="add")], 1


FOLDING = [(f"{rank}d-{name}", rank, stack, fused)
           for rank in (1, 2, 3) for name, stack, fused in _folding_stacks(rank)]


@pytest.mark.parametrize("name,rank,stack,fused", FOLDING, ids=[c[0] for c in FOLDING])
def test_batch_norm_folded_into_the_product_predicts_as_unfused(name, rank, stack, fused):
    rng = np.random.default_rng(4)
    x = _input(rank, rng)
    model = Sequential([Input(x.shape[1:])] + stack + [layers.Flatten(), layers.Dense(3), layers.BatchNormalization(),
                                                       layers.Activation("softmax")], seed=5)
    _randomize_batchnorms(model, rng)
    _assert_close(model.predict(x), _unfused(model, x))
    steps = model._inference_plan().steps
    if isinstance(steps[0], _BranchesStep):
        steps = steps[0].plans[0] + steps[1:]
    # the layers before Flatten became `fused` fused steps; Dense + BN + softmax became one
    assert sum(isinstance(s, (_Fused, _FusedPool)) for s in steps) == fused + 1
    assert isinstance(steps[-1], _Fused) and steps[-1].act is not None
    left = [s for s in steps if isinstance(getattr(s, "layer", None), layers.BatchNormalization)]
    assert len(left) == (1 if "not foldable" in name else 0)


def test_dense_batch_norm_relu_and_dropout_fold_into_one_product():
    rng = np.random.default_rng(6)
    x = rng.normal(size=(7, 12)).astype(np.float32)
    model = Sequential([Input((12,)), layers.Dense(9), layers.BatchNormalization(), layers.ReLU(),
                        layers.Dropout(0.5), layers.Dense(4, activation="softmax")], seed=1)
    _randomize_batchnorms(model, rng)
    assert len(model._inference_plan().steps) == 2
    _assert_close(model.predict(x), _unfused(model, x))


def _bn_model(rank=2):
    conv = CONV[rank]
    return Sequential([Input(SPATIAL[rank] + (4,)), conv(6, 3, padding="same"), layers.BatchNormalization(),
                       layers.ReLU(), layers.Branches([[conv(6, 1), layers.BatchNormalization()], []]),
                       layers.Flatten(), layers.Dense(3, activation="softmax")], seed=7)


def test_folding_is_cached_and_follows_training_steps():
    rng = np.random.default_rng(8)
    x = _input(2, rng, channels=4) * 3 + 1  # batch statistics far from the initial moving ones
    y = rng.integers(0, 3, len(x))
    model = _bn_model()
    model.compile("sgd", "sparse_categorical_crossentropy")
    model.predict(x)
    plan = model._inference
    model.predict(x)
    assert model._inference is plan  # unchanged weights: the folded weights are reused
    for _ in range(2):
        before = model.predict(x)
        model.train_on_batch(x, y)  # kernels change in place, batch-norm statistics are replaced
        after = model.predict(x)
        assert np.max(np.abs(after - before)) > 1e-4
        _assert_close(after, _unfused(model, x))
    model(x, training=True)  # a training forward pass moves the batch-norm statistics only
    _assert_close(model.predict(x), _unfused(model, x))


def test_folding_follows_set_weights_and_loading(tmp_path):
    rng = np.random.default_rng(9)
    x = _input(3, rng)
    model = _bn_model(rank=3)
    first = model.predict(x)
    weights = [w * rng.uniform(0.5, 1.5, w.shape).astype(w.dtype) + 0.1 for w in model.get_weights()]
    model.set_weights(weights)
    changed = model.predict(x)
    assert np.max(np.abs(changed - first)) > 1e-4
    _assert_close(changed, _unfused(model, x))
    bn = model.layers[1]  # a single layer's weights, set on the layer itself
    bn.set_weights([w + 0.5 for w in bn.get_weights()])
    _assert_close(model.predict(x), _unfused(model, x))
    path = str(tmp_path / "m.npz")
    model.save(path)
    loaded = load_model(path)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    model.layers[1].params["moving_mean"][...] += 1.0  # edited in place by hand: seen after reset_inference
    model.reset_inference()
    _assert_close(model.predict(x), _unfused(model, x))


@pytest.mark.parametrize("rank", [2, 3])
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("first", [False, True], ids=["filters-last", "filters-first"])
@pytest.mark.parametrize("grid", [False, True], ids=["by-rows", "row-grid"])
@pytest.mark.parametrize("sizes", ["odd", "even"])
def test_convolution_pooled_block_by_block_equals_pooling_after(rank, threads, first, grid, sizes, monkeypatch):
    """Chunked conv + bias + ReLU + max pooling, pooled per block (odd sizes: the valid pooling
    drops the last row; even sizes: the windows tile the output, and filters first they are
    pooled by pairs; blocks of one and of several pooled rows of a sample, and of two whole
    samples; one and two threads),
    with each block's product laid out filters last or filters first (``FIRST_MAX_FILTERS``),
    its columns copied row by row or over the grid ``out_rows`` (``Conv._grid_columns``: the
    pooling reads the output positions of the product over that grid)."""
    from core.layers import conv as conv_module
    from core.layers import windows
    from core.layers.conv import Conv
    monkeypatch.setattr(windows, "ROWS_MAX_EXTRA", 10.0 if grid else -1.0)
    rng = np.random.default_rng(10)
    spatial = {(2, "odd"): (11, 9), (3, "odd"): (9, 7, 8), (2, "even"): (12, 10), (3, "even"): (8, 6, 8)}[rank, sizes]
    x = rng.normal(size=(3,) + spatial + (2,)).astype(np.float32)
    pool = {2: layers.MaxPooling2D, 3: layers.MaxPooling3D}[rank]
    calls, firsts, pairs = [], [], []
    original, original_epilogue, original_pairs = Conv.infer_pooled, conv_module.first_epilogue, conv_module.max_pool_pairs
    monkeypatch.setattr(Conv, "infer_pooled", lambda self, *a: calls.append(1) or original(self, *a))
    monkeypatch.setattr(conv_module, "first_epilogue", lambda *a: firsts.append(1) or original_epilogue(*a))
    monkeypatch.setattr(conv_module, "max_pool_pairs", lambda *a: pairs.append(1) or original_pairs(*a))
    if not first:
        monkeypatch.setattr(conv_module, "FIRST_MAX_FILTERS", 0)
    try:
        config.set_num_threads(threads)
        for chunk_bytes in (1, 2000, "two samples"):
            conv = CONV[rank](4, 3, padding="same", activation="relu", bias_initializer="glorot_uniform")
            model = Sequential([Input(x.shape[1:]), conv, pool(2), layers.Flatten(), layers.Dense(2)], seed=2)
            if chunk_bytes == "two samples":  # blocks of whole samples: 2 and 1 of the 3
                chunk_bytes = 2 * conv._sample_column_bytes + conv._sample_column_bytes // 2
            conv.chunk_threshold, conv.chunk_bytes = 0, chunk_bytes
            conv.build(conv.input_shape)  # the row blocks follow chunk_bytes
            assert (conv._chunk_samples, conv._chunk_rows == conv.geometry.out[0]) == (
                (2, True) if chunk_bytes > 2000 else (1, False))
            assert not conv._cols_last  # two channels: columns channels first
            assert conv._grid_columns == grid
            if threads == 1 and not first and not grid:
                np.testing.assert_array_equal(model.predict(x), _unfused(model, x))
            else:  # products of other shapes (shards of the batch, filters first, the grid) round differently
                np.testing.assert_allclose(model.predict(x), _unfused(model, x), rtol=1e-5, atol=1e-6)
    finally:
        config.set_num_threads(None)
    assert len(calls) == 3
    assert bool(firsts) == first
    assert bool(pairs) == (first and sizes == "even")


@pytest.mark.parametrize("rank", [1, 2, 3])
@pytest.mark.parametrize("stack,first", [
    ("relu", True), ("none", True), ("leaky_relu", True), ("bn+relu", True), ("no-bias", True),
    ("tanh", False), ("pool-padded", False), ("pool-overlapping", True), ("columns-last", False),
])
def test_single_channel_convolution_pooled_filters_first(rank, stack, first, monkeypatch):
    """An unchunked convolution with channels-first columns (here one input channel) followed by
    max pooling predicts through ``_infer_pooled_first`` (the product as (filters, N, *out)) when
    its activation is monotone and the pooling needs no padding, and agrees with the unfused
    forward pass up to float32 rounding either way."""
    from core.layers import conv as conv_module
    from core.layers.conv import Conv
    rng = np.random.default_rng(11)
    spatial = {1: (67,), 2: (17, 19), 3: (9, 11, 10)}[rank]
    channels = 32 if stack == "columns-last" else 1  # 32: columns channels last (copy_runs)
    x = rng.normal(size=(40,) + spatial + (channels,)).astype(np.float32)
    monkeypatch.setattr(conv_module, "FIRST_MIN_POSITIONS", 64)
    conv_kw = {"activation": {"relu": "relu", "leaky_relu": "leaky_relu", "tanh": "tanh"}.get(stack),
               "use_bias": stack != "no-bias", "bias_initializer": "glorot_uniform"}
    stacked = [CONV[rank](5, 3, padding="same", **conv_kw)]
    stacked[0].chunk_bytes = 8 << 20  # the whole layer at once in inference (4.3 MB of columns in 3-D)
    if stack == "bn+relu":
        stacked += [layers.BatchNormalization(), layers.ReLU()]
    pool = {1: layers.MaxPooling1D, 2: layers.MaxPooling2D, 3: layers.MaxPooling3D}[rank]
    pool_kw = {"pool-padded": {"pool_size": 2, "padding": "same"},
               "pool-overlapping": {"pool_size": 3, "strides": 2}}.get(stack, {"pool_size": 2})
    if stack == "pool-padded":
        x = x[(slice(None),) + tuple(slice(0, n - 1 if n % 2 == 0 else n) for n in spatial)]
    model = Sequential([Input(x.shape[1:])] + stacked + [pool(**pool_kw), layers.Flatten()], seed=6)
    _randomize_batchnorms(model, rng)
    assert model.layers[0]._cols_last == (stack == "columns-last")
    calls = []
    original = Conv._infer_pooled_first
    monkeypatch.setattr(Conv, "_infer_pooled_first", lambda self, *a: calls.append(1) or original(self, *a))
    try:
        config.set_num_threads(1)
        fused = model.predict(x)
    finally:
        config.set_num_threads(None)
    _assert_close(fused, _unfused(model, x))
    assert bool(calls) == first


@pytest.mark.parametrize("rank", [1, 2, 3])
@pytest.mark.parametrize("activation,late", [("relu", True), (None, True), ("leaky_relu", True), ("tanh", False),
                                             ("gelu", False)])
def test_bias_and_monotone_activation_after_the_pooling(rank, activation, late, monkeypatch):
    """A convolution followed by max pooling ('same' pooling: the padded windows too) adds its
    bias and applies a monotone activation to the pooled output; the result is the unfused
    forward pass to the bit (one thread, no batch norm), and other activations run before
    the pooling (checked by what the product's epilogue is handed)."""
    from core.layers import conv as conv_module
    seen = []
    original = conv_module._epilogue
    monkeypatch.setattr(conv_module, "_epilogue",
                        lambda z, b, a: (b is None and a is None or seen.append((z.size // z.shape[-1], z.shape[-1])))
                        or original(z, b, a))
    rng = np.random.default_rng(4)
    x = rng.normal(size=(4,) + SPATIAL[rank] + (3,)).astype(np.float32)
    pool = {1: layers.MaxPooling1D, 2: layers.MaxPooling2D, 3: layers.MaxPooling3D}[rank]
    conv = CONV[rank](5, 2, padding="same", activation=activation, bias_initializer="glorot_uniform")
    model = Sequential([Input(x.shape[1:]), conv, pool(3, strides=2, padding="same"), layers.Flatten()], seed=5)
    try:
        config.set_num_threads(1)
        model.predict(x)
        seen.clear()
        fused = model.predict(x)
    finally:
        config.set_num_threads(None)
    in_predict = list(seen)
    np.testing.assert_array_equal(fused, _unfused(model, x))
    rows = x.shape[0] * int(np.prod((model.layers[1] if late else conv).output_shape[:-1]))
    assert in_predict == [(rows, 5)]
    assert conv.activation.monotone == late


def test_monotone_activations():
    """Which activations are marked monotone (commute with a maximum)."""
    from core.activations import get
    assert [get(n).monotone for n in ("linear", "relu", "leaky_relu", "elu", "sigmoid", "tanh", "gelu", "swish")] \
        == [True, True, True, False, False, False, False, False]
    from core.activations import LeakyReLU
    assert not LeakyReLU(-0.5).monotone


def test_layers_around_a_dropout_fuse():
    """Dropout is the identity at inference: a convolution, dropout and max pooling fuse into one
    pooled step (bias and ReLU after the pooling), and batch norm after a dropout is folded."""
    rng = np.random.default_rng(6)
    x = rng.normal(size=(4, 12, 3)).astype(np.float32)
    model = Sequential([Input(x.shape[1:]), layers.Conv1D(5, 3, activation="relu"), layers.Dropout(0.5),
                        layers.MaxPooling1D(2), layers.Conv1D(4, 3), layers.Dropout(0.2),
                        layers.BatchNormalization(), layers.Flatten(), layers.Dense(2)], seed=7)
    _randomize_batchnorms(model, rng)
    steps = model._inference_plan().steps
    assert [type(s).__name__ for s in steps] == ["_FusedPool", "_Fused", "_Plain", "_Fused"]
    _assert_close(model.predict(x), _unfused(model, x))


@pytest.mark.parametrize("padding,dilation", [("valid", 1), ("same", 1), ("causal", 1), ("valid", 2), ("same", 3)])
@pytest.mark.parametrize("activation", ["relu", None, "tanh"])
@pytest.mark.parametrize("threads", [1, 2])
def test_one_dimensional_convolution_by_shifted_products(padding, dilation, activation, threads, monkeypatch,
                                                         shards_on_threads):
    """A 1-D convolution with stride 1 and many input channels, followed by max pooling, predicts
    by one product per kernel offset over the rows of the padded input (``_shifted_output``), and
    agrees with the unfused forward pass up to float32 rounding, with and without the pooling
    windows that need padding, on one thread and on shards of the batch."""
    from core import model as model_module
    from core.layers import conv as conv_module
    from core.layers.conv import Conv
    monkeypatch.setattr(model_module, "SHARD_MIN_WORK", 0)  # a batch this small splits too
    monkeypatch.setattr(model_module, "SHARD_MIN_ELEMENTS", 0)
    rng = np.random.default_rng(12)
    x = rng.normal(size=(6, 29, conv_module.SHIFT_MIN_CHANNELS)).astype(np.float32)
    calls = []
    original = Conv._shifted_output
    monkeypatch.setattr(Conv, "_shifted_output", lambda self, *a: calls.append(1) or original(self, *a))
    for pool in (layers.MaxPooling1D(2), layers.MaxPooling1D(3, strides=2, padding="same")):
        model = Sequential([Input(x.shape[1:]), layers.Conv1D(7, 3, padding=padding, dilation_rate=dilation,
                                                              activation=activation, bias_initializer="glorot_uniform"),
                            pool, layers.Flatten(), layers.Dense(3)], seed=8)
        try:
            config.set_num_threads(threads)
            fused = model.predict(x, batch_size=6)
        finally:
            config.set_num_threads(None)
        _assert_close(fused, _unfused(model, x))
    assert len(calls) == 2 * threads  # each model: once per shard


def test_shifted_products_only_for_one_dimensional_layers_with_many_channels():
    from core.layers import conv as conv_module
    wide = conv_module.SHIFT_MIN_CHANNELS
    made = {}
    for name, layer, shape in [("wide", layers.Conv1D(4, 3), (20, wide)),
                               ("narrow", layers.Conv1D(4, 3), (20, wide - 1)),
                               ("strided", layers.Conv1D(4, 3, strides=2), (20, wide)),
                               ("grouped", layers.Conv1D(4, 3, groups=2), (20, wide)),
                               ("2-D", layers.Conv2D(4, 3), (9, 9, wide))]:
        Sequential([Input(shape), layer])
        made[name] = layer._shifted
    assert made == {"wide": True, "narrow": False, "strided": False, "grouped": False, "2-D": False}


@pytest.mark.parametrize("batch", [8, 40])
@pytest.mark.parametrize("dilation", [1, 2])
def test_shifted_products_with_columns_built_channels_first(batch, dilation):
    """A long 1-D input with 32 channels builds its columns channels first (``copy_runs``); its
    shifted products still read the padded input channels last, at any batch size."""
    rng = np.random.default_rng(13)
    x = rng.normal(size=(batch, 128, 16)).astype(np.float32)
    model = Sequential([Input(x.shape[1:]), layers.Conv1D(32, 3, activation="relu"),
                        layers.Conv1D(32, 3, dilation_rate=dilation, activation="relu"), layers.MaxPooling1D(2),
                        layers.Flatten(), layers.Dense(2)], seed=9)
    second = model.layers[1]
    assert second._shifted and not second._cols_last
    _assert_close(model.predict(x, batch_size=batch), _unfused(model, x))


@pytest.mark.parametrize("rank", [2, 3])
def test_inference_builds_columns_in_blocks_above_one_block(rank, monkeypatch):
    """Training keeps a column matrix up to ``chunk_threshold`` whole (its backward pass reads
    it); inference, which keeps nothing, builds one larger than a block (``chunk_bytes``) in
    blocks of whole samples, pooled as they come, and predicts what the same layer predicts
    with no blocks at all."""
    from core.layers.conv import Conv
    rng = np.random.default_rng(12)
    spatial = {2: (12, 10), 3: (8, 6, 6)}[rank]
    x = rng.normal(size=(6,) + spatial + (1,)).astype(np.float32)
    pool = {2: layers.MaxPooling2D, 3: layers.MaxPooling3D}[rank]
    conv = CONV[rank](4, 3, padding="same", activation="relu", bias_initializer="glorot_uniform")
    model = Sequential([Input(x.shape[1:]), conv, pool(2), layers.Flatten(), layers.Dense(2)], seed=3)
    calls, blocks = [], []
    original, columns = Conv.infer_pooled, Conv._block_columns
    monkeypatch.setattr(Conv, "infer_pooled", lambda self, *a: calls.append(1) or original(self, *a))
    monkeypatch.setattr(Conv, "_block_columns", lambda self, src, flat, a, b, r0, r1: blocks.append(
        (a, b, r0, r1)) or columns(self, src, flat, a, b, r0, r1))
    try:
        config.set_num_threads(1)
        weights = conv.get_weights()  # (building again draws new ones)
        conv.chunk_threshold = conv.chunk_bytes = 1 << 40  # no blocks anywhere: the reference
        conv.build(conv.input_shape)
        conv.set_weights(weights)
        whole = model.predict(x)
        assert not calls
        # blocks of two whole samples (2, 2, 2): a block's columns, over the row grid where the
        # layer uses it, hold two and a half samples' worth of bytes
        sample = 2.5 * conv._block_positions(1, conv.geometry.out[0]) * conv.geometry.size * 4
        conv.chunk_threshold, conv.chunk_bytes = Conv.chunk_threshold, int(sample)
        conv.build(conv.input_shape)
        conv.set_weights(weights)
        assert (conv._chunk_samples, conv._chunk_rows) == (2, conv.geometry.out[0])
        assert not conv._use_chunks(x) and conv._use_chunks(x, keep=False)
        _, ctx = conv.forward(x, training=True)
        assert ctx["cols"] is not None  # training: the whole matrix, kept for backward
        _assert_close(model.predict(x), whole)
    finally:
        config.set_num_threads(None)
    assert calls == [1]
    assert blocks == [(a, a + 2, 0, conv.geometry.out[0]) for a in (0, 2, 4)]

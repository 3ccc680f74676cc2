"""The layer contract (core/layers/base.py): forward returns the output and a
context, backward returns the gradients and changes nothing it was given; the
model owns the workspace and the random streams. Also: nothing is changed in
the process by importing us, and every accepted argument does something or
raises."""
import os
import subprocess
import sys

import numpy as np
import pytest

from core import ConfigError, Input, InputError, Sequential, layers, losses
from core.workspace import Workspace

SPATIAL = {1: (9,), 2: (6, 7), 3: (5, 4, 6)}
CONV = {1: layers.Conv1D, 2: layers.Conv2D, 3: layers.Conv3D}
MAXPOOL = {1: layers.MaxPooling1D, 2: layers.MaxPooling2D, 3: layers.MaxPooling3D}
AVGPOOL = {1: layers.AveragePooling1D, 2: layers.AveragePooling2D, 3: layers.AveragePooling3D}
GMAX = {1: layers.GlobalMaxPooling1D, 2: layers.GlobalMaxPooling2D, 3: layers.GlobalMaxPooling3D}
GAVG = {1: layers.GlobalAveragePooling1D, 2: layers.GlobalAveragePooling2D, 3: layers.GlobalAveragePooling3D}


def _chunked(layer):
    layer.chunk_threshold, layer.chunk_bytes = 0, 1
    return layer


def _blocked(layer):
    layer.block_threshold, layer.block_bytes = 0, 1
    return layer


def layer_cases():
    for rank in (1, 2, 3):
        yield f"conv{rank}d", rank, lambda r=rank: CONV[r](4, 2, padding="same", activation="relu")
        yield f"conv{rank}d-strided-tanh", rank, lambda r=rank: CONV[r](4, 3, strides=2, activation="tanh")
        yield f"conv{rank}d-groups", rank, lambda r=rank: CONV[r](4, 2, groups=2, activation="elu")
        if rank > 1:
            yield f"conv{rank}d-chunked", rank, lambda r=rank: _chunked(CONV[r](3, 2, padding="same", activation="relu"))
        yield f"maxpool{rank}d", rank, lambda r=rank: MAXPOOL[r](2)
        yield f"maxpool{rank}d-overlap-same", rank, lambda r=rank: MAXPOOL[r](3, strides=1, padding="same")
        yield f"maxpool{rank}d-blocked", rank, lambda r=rank: _blocked(MAXPOOL[r](2, padding="same"))
        yield f"avgpool{rank}d-same", rank, lambda r=rank: AVGPOOL[r](2, padding="same")
        yield f"globalmax{rank}d", rank, lambda r=rank: GMAX[r]()
        yield f"globalavg{rank}d", rank, lambda r=rank: GAVG[r]()
        yield f"batchnorm{rank}d", rank, lambda: layers.BatchNormalization()
        yield f"dropout{rank}d", rank, lambda: layers.Dropout(0.4)
        yield f"flatten{rank}d", rank, lambda: layers.Flatten()
        yield f"branches{rank}d-add", rank, lambda r=rank: layers.Branches(
            [[CONV[r](4, 2, padding="same", activation="relu"), layers.BatchNormalization()], []], merge="add")
        yield f"branches{rank}d-concat", rank, lambda r=rank: layers.Branches(
            [[CONV[r](3, 1)], [MAXPOOL[r](3, strides=1, padding="same"), layers.Dropout(0.3)]], merge="concat")
    yield "dense", 1, lambda: layers.Dense(5, activation="gelu")
    yield "dense-softmax", 1, lambda: layers.Dense(5, activation="softmax")
    yield "activation", 1, lambda: layers.Activation("sigmoid")
    yield "relu", 1, lambda: layers.ReLU()
    yield "reshape", 1, lambda: layers.Reshape((-1, 2))


CASES = list(layer_cases())


def _input(rank, rng, channels=4):
    return rng.normal(size=(3,) + SPATIAL[rank] + (channels,)).astype(np.float32)


@pytest.mark.parametrize("name,rank,make", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("pooled", [False, True], ids=["unpooled", "workspace"])
def test_backward_twice_gives_identical_results_and_changes_nothing(name, rank, make, pooled):
    rng = np.random.default_rng(abs(hash(name)) % 2**32)
    layer = make()
    x = _input(rank, rng)
    layer.build(x.shape[1:], rng=np.random.default_rng(0))
    ws = Workspace() if pooled else None
    x_before = x.copy()
    y, ctx = layer.forward(x, training=True, rng=np.random.default_rng(1), workspace=ws)
    saved = {k: np.array(v, copy=True) for k, v in ctx.items() if isinstance(v, np.ndarray)}
    dy = rng.normal(size=y.shape).astype(np.float32)
    dy_before = dy.copy()
    dx1, g1 = layer.backward(ctx, dy, workspace=ws)
    dx1, g1 = dx1.copy(), {k: v.copy() for k, v in g1.items()}
    dx2, g2 = layer.backward(ctx, dy, workspace=ws)
    np.testing.assert_array_equal(dx2, dx1)
    assert set(g1) == set(g2) == set(layer.trainable_names())
    for key in g1:
        np.testing.assert_array_equal(g2[key], g1[key])
    np.testing.assert_array_equal(dy, dy_before)  # backward changed neither its gradient nor the context
    np.testing.assert_array_equal(x, x_before)    # forward did not write into its input
    for key, value in saved.items():
        np.testing.assert_array_equal(ctx[key], value)


@pytest.mark.parametrize("name,rank,make", CASES, ids=[c[0] for c in CASES])
def test_backward_without_a_training_context_raises_our_error(name, rank, make):
    rng = np.random.default_rng(3)
    layer = make()
    x = _input(rank, rng)
    layer.build(x.shape[1:])
    y, ctx = layer.forward(x, training=False)
    assert ctx is None  # an inference forward keeps nothing
    with pytest.raises(InputError, match="backward needs the context"):
        layer.backward(ctx, np.ones_like(y))
    other = make()
    other.build(x.shape[1:])
    _, foreign = other.forward(x, training=True, rng=np.random.default_rng(0))
    with pytest.raises(InputError, match="not from this layer"):
        layer.backward(foreign, np.ones_like(y))


def test_inference_context_gives_inference_mode_gradients():
    """``context=True`` in inference mode (what explanations need): batch norm uses its
    moving statistics, dropout is the identity, and backward still works."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 6, 3)).astype(np.float64)
    bn = layers.BatchNormalization(dtype="float64")
    bn.build(x.shape[1:])
    bn.params["moving_variance"][:] = 4.0
    y, ctx = bn.forward(x, training=False, context=True)
    dx, _ = bn.backward(ctx, np.ones_like(y))
    np.testing.assert_allclose(dx, np.full_like(x, 1 / np.sqrt(4.0 + bn.epsilon)))
    drop = layers.Dropout(0.5)
    drop.build(x.shape[1:])
    y, ctx = drop.forward(x, training=False, context=True)
    assert y is x and drop.backward(ctx, x)[0] is x


def test_dropout_needs_a_generator_in_training():
    drop = layers.Dropout(0.5)
    drop.build((4,))
    with pytest.raises(InputError, match="numpy.random.Generator"):
        drop.forward(np.ones((2, 4), np.float32), training=True)


def _dropout_model(seed):
    return Sequential([Input((50,)), layers.Dense(50), layers.Dropout(0.5), layers.Dense(2, activation="softmax")],
                      seed=seed)


@pytest.mark.parametrize("rate", [0.1, 0.25, 0.5, 0.3, 0.9])
def test_dropout_drops_its_rate_and_keeps_the_mean(rate):
    """The mask's 16-bit draws drop the rate's fraction of the elements (to within sampling
    error: 5 standard deviations over a million elements) and the survivors' scale is the
    inverse of the fraction kept, so a constant input keeps its expected value exactly."""
    from core.layers.dropout import MASK_LEVELS, _dropped_levels
    layer = layers.Dropout(rate)
    layer.build((1000,))
    x = np.ones((1000, 1000), np.float32)
    out, ctx = layer.forward(x, training=True, rng=np.random.default_rng(7), context=True)
    kept = ctx["mask"].mean()
    sd = (rate * (1 - rate) / x.size) ** 0.5
    assert abs((1 - kept) - rate) < 5 * sd + 1 / MASK_LEVELS
    levels = _dropped_levels(rate)
    assert abs(levels / MASK_LEVELS - rate) <= 0.5 / MASK_LEVELS
    assert set(np.unique(out)) <= {0.0, np.float32(MASK_LEVELS / (MASK_LEVELS - levels))}
    assert out.mean() == pytest.approx(kept * MASK_LEVELS / (MASK_LEVELS - levels), rel=1e-6)
    assert _dropped_levels(0.99999999) == MASK_LEVELS - 1  # one level always kept


def test_dropout_masks_depend_only_on_seed_layer_and_step():
    """The mask at optimizer step s is the one drawn from ``default_rng([base, s])`` with
    ``base`` the first draw of ``default_rng([model seed, layer index])``, whatever ran
    before: a resumed run draws what an uninterrupted one would, as the earlier engine did."""
    from core.layers.dropout import _draw, _dropped_levels
    x = np.ones((4, 50), np.float32)
    a, b = _dropout_model(7), _dropout_model(7)
    mask = {}
    for model, steps in ((a, (0, 5, 2)), (b, (2, 0, 5))):
        for step in steps:
            outputs, _ = model.run_forward(x, training=True, context=False, step=step)
            mask[id(model), step] = outputs[1] != 0
    for step in (0, 5, 2):
        np.testing.assert_array_equal(mask[id(a), step], mask[id(b), step])
    base = int(np.random.default_rng([7, 1]).integers(2**31 - 1))
    expected = _draw(np.random.default_rng([base, 5]), (4, 50)) >= _dropped_levels(0.5)
    # where the dense output happens to be exactly zero the mask cannot show; elsewhere it must match
    dense = a.run_forward(x, training=False, context=False)[0][0] != 0
    np.testing.assert_array_equal(mask[id(a), 5][dense], expected[dense])
    assert not np.array_equal(mask[id(a), 0], mask[id(a), 5])


def test_workspace_lends_each_array_once_until_reclaimed():
    ws = Workspace()
    a = ws.take("t", (3, 4), np.float32)
    b = ws.take("t", (3, 4), np.float32)
    assert a is not b and not np.shares_memory(a, b)
    ws.reclaim()
    c = ws.take("t", (3, 4), np.float32)
    assert c is a or c is b  # reused after the reclaim
    z = ws.take("z", (5,), np.float64, init="zeros")
    assert not z.any()
    for _ in range(10):
        ws.reclaim()
    assert ws.nbytes == 0  # arrays nobody asks for any more are dropped


def test_training_reuses_workspace_buffers():
    rng = np.random.default_rng(0)
    model = Sequential([Input((10, 10, 1)), layers.Conv2D(4, 3, activation="relu"), layers.MaxPooling2D(2),
                        layers.Flatten(), layers.Dense(3, activation="softmax")], seed=0)
    model.compile("adam", "sparse_categorical_crossentropy")
    x, y = rng.normal(size=(8, 10, 10, 1)).astype(np.float32), rng.integers(0, 3, 8)
    model.train_on_batch(x, y)
    held = model.workspace.nbytes
    for _ in range(5):
        model.train_on_batch(x, y)
    assert model.workspace.nbytes == held > 0


def test_importing_the_packages_changes_nothing_in_the_process(tmp_path):
    code = (
        "import os, luigi.configuration as lc\n"
        "os.umask(0o027)\n"
        "before = (os.umask(0o027), list(lc.LuigiConfigParser._config_paths), lc.LuigiConfigParser._instance)\n"
        "import core, har, vision, medical, pipelines\n"
        "after = (os.umask(0o027), list(lc.LuigiConfigParser._config_paths), lc.LuigiConfigParser._instance)\n"
        "assert before == after, (before, after)\n"
        "print('unchanged')\n")
    env = dict(os.environ)
    env.pop("LUIGI_CONFIG_PATH", None)
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0 and "unchanged" in out.stdout, out.stderr[-2000:]


# ------------------------------------------------------------------ arguments
def test_layer_called_on_input_says_functional_api_is_not_supported():
    with pytest.raises(ConfigError, match="functional API is not supported"):
        layers.Dense(3)(Input(shape=(4,)))


def test_input_arguments_work_or_raise(capsys):
    with pytest.raises(ConfigError, match="batch_size"):
        Input(shape=(4,), batch_size=8)
    with pytest.raises(ConfigError, match="dtype"):
        Input(shape=(4,), dtype="int8")
    model = Sequential([Input(shape=(4,), name="features", dtype="float64"), layers.Dense(2)])
    assert model.layers[0].dtype == "float64"
    model.summary()
    assert "features" in capsys.readouterr().out


def test_flatten_data_format_is_checked():
    layers.Flatten(data_format="channels_last")
    with pytest.raises(ConfigError, match="data_format"):
        layers.Flatten(data_format="channels_first")


def test_loss_weights_scale_the_loss_and_its_gradients():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(6, 4)).astype(np.float32), rng.integers(0, 3, 6)

    def run(weights):
        model = Sequential([Input((4,)), layers.Dense(3, activation="softmax")], seed=0)
        model.compile("sgd", "sparse_categorical_crossentropy", loss_weights=weights)
        return model.train_on_batch(x, y), model.last_gradients["0/kernel"]
    (l1, g1), (l3, g3) = run(None), run([3.0])
    assert l3 == pytest.approx(3 * l1, rel=1e-6)
    np.testing.assert_allclose(g3, 3 * g1, rtol=1e-5)
    with pytest.raises(ConfigError, match="loss_weights"):
        run([1.0, 2.0])


def test_mean_squared_error_refuses_settings_it_does_not_have():
    assert losses.MeanSquaredError(name="mse").name == "mse"
    with pytest.raises(TypeError):
        losses.MeanSquaredError(from_logits=True)
    with pytest.raises(ConfigError, match="reduction"):
        losses.MeanSquaredError(reduction="sum")


def test_keras_compat_is_reachable_after_import_core():
    import core
    assert callable(core.keras_compat.to_keras)

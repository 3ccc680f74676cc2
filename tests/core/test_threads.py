"""The engine's multi-threaded paths agree with the single-threaded ones:
outputs and gradients of every layer type in 1-D, 2-D and 3-D (the blocked
paths forced with tiny thresholds), and whole training runs."""
import numpy as np
import pytest

from core import ConfigError, Input, Sequential, config, layers
from core.layers import conv as conv_module
from tests.core.test_contract import CASES, _input


@pytest.fixture
def threads():
    """Set the thread count for one test, restoring the default afterwards."""
    def use(n):
        config.set_num_threads(n)
    yield use
    config.set_num_threads(None)


@pytest.fixture
def small_blocks(monkeypatch):
    monkeypatch.setattr(conv_module, "PARALLEL_BYTES", 0)


def _forced(layer):
    if hasattr(layer, "chunk_threshold"):
        layer.chunk_threshold, layer.chunk_bytes = 0, 64
    if hasattr(layer, "block_threshold"):
        layer.block_threshold, layer.block_bytes = 0, 64
    return layer


@pytest.mark.parametrize("name,rank,make", CASES, ids=[c[0] for c in CASES])
def test_layer_outputs_and_gradients_agree_across_thread_counts(name, rank, make, threads, small_blocks):
    rng = np.random.default_rng(11)
    x = _input(rank, rng)
    x = np.concatenate([x, x[:1] * 0.5, x[:2] + 1])  # 6 samples: uneven groups for 4 threads
    results = []
    for n in (1, 2, 4):
        threads(n)
        layer = _forced(make())
        layer.build(x.shape[1:], rng=np.random.default_rng(0))
        y, ctx = layer.forward(x, training=True, rng=np.random.default_rng(3))
        dy = np.random.default_rng(5).normal(size=y.shape).astype(np.float32)
        dx, grads = layer.backward(ctx, dy)
        results.append((y.copy(), dx.copy(), {k: v.copy() for k, v in grads.items()}))
    (y1, dx1, g1) = results[0]
    for y, dx, g in results[1:]:
        np.testing.assert_array_equal(y, y1)    # disjoint blocks: the same numbers exactly
        np.testing.assert_array_equal(dx, dx1)
        for k in g1:                            # kernel gradients are summed per thread: float rounding
            np.testing.assert_allclose(g[k], g1[k], rtol=2e-5, atol=1e-6)


def _conv3d_model():
    return Sequential([Input((10, 9, 8, 2)), layers.Conv3D(4, 3, padding="same", activation="relu"),
                       layers.BatchNormalization(), layers.MaxPooling3D(2), layers.Conv3D(6, 2, activation="relu"),
                       layers.GlobalMaxPooling3D(), layers.Dropout(0.2), layers.Dense(3, activation="softmax")],
                      seed=1)


def test_training_with_one_and_two_threads_gives_the_same_weights(threads, small_blocks):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, 10, 9, 8, 2)).astype(np.float32)
    y = rng.integers(0, 3, 6)
    weights = []
    for n in (1, 2):
        threads(n)
        model = _conv3d_model()
        for layer in model.layers:
            _forced(layer)
        model.compile("adam", "sparse_categorical_crossentropy")
        for _ in range(5):
            model.train_on_batch(x, y)
        weights.append(model.get_weights())
    for a, b in zip(*weights):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2", True])
def test_set_num_threads_validates(bad):
    with pytest.raises(ConfigError, match="set_num_threads"):
        config.set_num_threads(bad)


def test_environment_variable_sets_the_default(monkeypatch):
    monkeypatch.setenv("NUMPY_CNN_THREADS", "3")
    assert config.get_num_threads() == 3
    monkeypatch.setenv("NUMPY_CNN_THREADS", "zero")
    with pytest.raises(ConfigError, match="NUMPY_CNN_THREADS"):
        config.get_num_threads()


def test_environment_variable_limits_blas_at_first_fit_not_at_import():
    """NUMPY_CNN_THREADS=1 limits NumPy's BLAS to one thread once training starts (a multi-threaded
    BLAS on a busy machine ran single matrix products up to 100x slower); the import alone changes
    nothing."""
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent("""
        import numpy as np
        from threadpoolctl import threadpool_info
        def blas():
            return sorted({i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"})
        before = blas()
        import core
        after_import = blas()
        m = core.Sequential([core.Input(shape=(4,)), core.layers.Dense(2, activation="softmax")], seed=0)
        m.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        m.fit(np.zeros((4, 4), np.float32), np.array([0, 1, 0, 1]), epochs=1, verbose=0)
        import json
        print(json.dumps([before, after_import, blas()]))
    """)
    env = {k: v for k, v in __import__("os").environ.items()
           if k not in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    env["NUMPY_CNN_THREADS"] = "1"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    before, after_import, after_fit = __import__("json").loads(out.stdout.strip().splitlines()[-1])
    assert after_import == before
    assert after_fit == [1]

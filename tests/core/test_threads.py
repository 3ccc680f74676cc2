"""The engine's multi-threaded paths agree with the single-threaded ones:
outputs and gradients of every layer type in 1-D, 2-D and 3-D (the blocked
paths forced with tiny thresholds), and whole training runs."""
import numpy as np
import pytest

from core import ConfigError, Input, Sequential, config, layers, shardprocs
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


def test_training_with_one_and_two_threads_gives_the_same_weights(threads, small_blocks, shard_always):
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


@pytest.mark.parametrize("entry", ["fit", "train_on_batch", "predict", "predict_on_batch", "test_on_batch"])
def test_environment_variable_limits_blas_at_first_fit_not_at_import(entry):
    """NUMPY_CNN_THREADS=1 limits NumPy's BLAS to one thread once training or prediction starts,
    through any entry point (a multi-threaded BLAS on a busy machine ran single matrix products up
    to 100x slower); the import alone changes nothing."""
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
        x, y = np.zeros((4, 4), np.float32), np.array([0, 1, 0, 1])
        entry = ENTRY
        if entry == "fit":
            m.fit(x, y, epochs=1, verbose=0)
        elif entry in ("train_on_batch", "test_on_batch"):
            getattr(m, entry)(x, y)
        else:
            getattr(m, entry)(x)
        import json
        print(json.dumps([before, after_import, blas()]))
    """).replace("ENTRY", repr(entry))
    env = {k: v for k, v in __import__("os").environ.items()
           if k not in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    env["NUMPY_CNN_THREADS"] = "1"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    before, after_import, after_fit = __import__("json").loads(out.stdout.strip().splitlines()[-1])
    assert after_import == before
    assert after_fit == [1]


# ------------------------------------------------------------ sharded batches
@pytest.fixture
def shard_always(monkeypatch):
    """Split every batch over the threads, however little work it holds."""
    from core import model as model_module
    monkeypatch.setattr(model_module, "SHARD_MIN_WORK", 0)
    monkeypatch.setattr(model_module, "SHARD_MIN_ELEMENTS", 0)


@pytest.fixture(params=["threads", "processes"])
def shards(request):
    """Run the shards of a batch on threads, then in forked processes (``core.shardprocs``)."""
    if request.param == "processes" and not shardprocs.available():
        pytest.skip("shard processes need Linux's fork")
    shardprocs.set_shard_processes(request.param == "processes")
    yield request.param
    shardprocs.set_shard_processes(None)


def _sharded_model(rank, dropout=0.3, channels=2):
    # batch norm before the ReLU, as usual: after it, on 7 samples, a channel with few
    # nonzero values had a variance of a few thousandths, and the rounding differences
    # between the shards' sums (1e-7) grew 10x through it: from 0.05 to 5 times this test's
    # tolerance, depending on the random data (at most 0.13 times in this order, 36 draws)
    spatial = {1: (13,), 2: (9, 8), 3: (6, 7, 5)}[rank]
    conv = {1: layers.Conv1D, 2: layers.Conv2D, 3: layers.Conv3D}[rank]
    pool = {1: layers.MaxPooling1D, 2: layers.MaxPooling2D, 3: layers.MaxPooling3D}[rank]
    model = Sequential([Input(spatial + (channels,)), conv(4, 3, padding="same"), layers.BatchNormalization(),
                        layers.Activation("relu"), pool(2), layers.Dropout(dropout), layers.Flatten(),
                        layers.Dense(8), layers.BatchNormalization(), layers.Activation("relu"),
                        layers.Dense(3, activation="softmax")], seed=4)
    model.compile(optimizer=__import__("core").optimizers.SGD(0.05, momentum=0.9),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model, spatial


@pytest.mark.parametrize("filters_first", [False, True])
@pytest.mark.parametrize("rank", [1, 2, 3])
def test_a_batch_split_over_threads_trains_like_the_whole_batch(rank, filters_first, threads, shard_always, shards,
                                                                monkeypatch):
    """Batch norm sums over all the shards, dropout draws the whole batch's mask: 5 steps give the
    same weights, moving statistics, losses, evaluation and predictions with 1, 2 and 3 threads
    (7 samples: uneven shards), up to float32 rounding; also with the convolution, batch norm
    and pooling laid out filters first (``Sequential._convolutions_filters_first``)."""
    from core.layers import conv as conv_module

    monkeypatch.setattr(conv_module, "FIRST_MIN_POSITIONS", 1 if filters_first else 10 ** 9)
    rng = np.random.default_rng(rank)
    results = []
    for n in (1, 2, 3):
        threads(n)
        channels = 1 if filters_first else 2  # (a 3-D layer with 2 builds its columns channels last)
        model, spatial = _sharded_model(rank, channels=channels)
        assert model._convolutions_filters_first() == ({0} if filters_first or rank < 3 else set())
        x = rng.normal(size=(7,) + spatial + (channels,)).astype(np.float32) if not results else results[0][3]
        y = np.arange(7) % 3
        losses = [model.train_on_batch(x, y)[0] for _ in range(5)]
        losses.extend(model.evaluate(x, y, batch_size=7))  # the loss and the accuracy
        results.append((model.get_weights(), losses, model.predict(x), x))
    assert model._shard_ranges(7) == [(0, 2), (2, 5), (5, 7)]  # it did split
    w1, l1, p1, _ = results[0]
    for w, losses, p, _ in results[1:]:
        for a, b in zip(w, w1):
            # to 1e-5 of each weight array's scale: a weight near zero after 5 steps carries the
            # rounding of larger terms (1.2e-6 on a weight of 0.009 in a dense kernel of scale 0.23,
            # OpenBLAS on an Intel Xeon)
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * max(float(np.abs(b).max()), 0.1))
        np.testing.assert_allclose(losses, l1, rtol=1e-5)
        np.testing.assert_allclose(p, p1, rtol=1e-5, atol=1e-6)


def test_a_sharded_step_that_fails_in_one_shard_raises_and_leaves_the_model(threads, shard_always, shards,
                                                                           monkeypatch):
    """An error in one shard's pass reaches the caller (the other shard, waiting for batch norm's
    sums, is released rather than left waiting), and the moving statistics stay as they were.
    In a shard process, the error is raised again in the parent, with the shard's rows."""
    import threading

    from core import parallel
    from core.layers.normalization import BatchNormalization

    threads(2)
    model, spatial = _sharded_model(2)
    x = np.random.default_rng(0).normal(size=(6,) + spatial + (2,)).astype(np.float32)
    y = np.arange(6) % 3
    model.train_on_batch(x, y)
    before = [w.copy() for w in model.get_weights()]
    original = BatchNormalization.forward

    def failing(self, inputs, *args, **kwargs):
        rows = parallel.shard_rows()
        if rows is not None and rows[0] > 0 and self is model.layers[-3]:
            raise RuntimeError("shard 2 fails")
        return original(self, inputs, *args, **kwargs)

    monkeypatch.setattr(BatchNormalization, "forward", failing)
    if shards == "processes":  # workers forked from now on run the failing layer
        model._crew.close()
    outcome = []

    def step():
        try:
            model.train_on_batch(x, y)
        except RuntimeError as exc:
            outcome.append(str(exc))

    worker = threading.Thread(target=step, daemon=True)
    worker.start()
    worker.join(timeout=60)
    assert not worker.is_alive(), "a shard was left waiting for its partner"
    if shards == "processes":
        assert outcome == ["in the shard process for rows 3:6 of the batch: shard 2 fails"]
        assert model._crew.closed  # stopped: its worker may have been waiting for batch norm's sums
    else:
        assert outcome == ["shard 2 fails"]
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)
    monkeypatch.setattr(BatchNormalization, "forward", original)
    model.train_on_batch(x, y)  # the model still trains (in a new crew of processes)


def test_small_batches_are_not_split(threads):
    """A batch with little work runs whole: handing it to threads would cost more than it saves."""
    threads(2)
    model, spatial = _sharded_model(1)
    assert model._shard_ranges(8) is None
    big = Sequential([Input((64, 64, 3)), layers.Conv2D(32, 3), layers.Flatten(), layers.Dense(2)], seed=0)
    assert big._shard_ranges(8) == [(0, 4), (4, 8)]
    threads(1)
    assert big._shard_ranges(8) is None


@pytest.mark.parametrize("tiny", [False, True], ids=["blas_held", "blas_left"])
def test_a_batch_too_small_to_split_runs_on_one_thread(tiny, threads, monkeypatch):
    """A batch with too little work to split runs whole, its layers' blocks on the calling
    thread one after the other and BLAS at one thread (``parallel.serial``), though more threads
    were set: its blocks are too small for the pool's hand-off to pay. It is not a region's
    part: its products are not made for partner threads (``beside_partners``). Under
    ``BLAS_ONE_THREAD_WORK`` BLAS is left as set (the library keeps such products on one
    thread itself)."""
    from core import model as model_module
    from core import parallel
    from core.layers import conv as conv_module

    x = np.random.default_rng(2).normal(size=(16, 12, 12, 1)).astype(np.float32)
    y = np.arange(16) % 3
    model = Sequential([Input((12, 12, 1)), layers.Conv2D(4, 3, activation="relu"), layers.MaxPooling2D(2),
                        layers.Flatten(), layers.Dense(3, activation="softmax")], seed=4)
    model.compile("sgd", "sparse_categorical_crossentropy")
    for layer in model.layers:
        _forced(layer)
    monkeypatch.setattr(conv_module, "PARALLEL_BYTES", 0)
    monkeypatch.setattr(model_module, "BLAS_ONE_THREAD_WORK", 10 ** 9 if tiny else 0)
    threads(1)
    expected = model.predict(x, batch_size=16)
    threads(2)
    assert model._shard_ranges(16) is None
    blas_libs = parallel._blas_controller().select(user_api="blas").lib_controllers
    seen, partners = [], []
    for name, original in [("run", parallel.run), ("beside_partners", parallel.beside_partners)]:
        def spy(*args, _original=original, _name=name, **kwargs):
            seen.append((_name, parallel.block_threads(), parallel.inside_region(),
                         {lib.num_threads for lib in blas_libs}))
            result = _original(*args, **kwargs)
            if _name == "beside_partners":
                partners.append(result)
            return result
        monkeypatch.setattr(parallel, name, spy)  # (core.blas asks parallel.beside_partners)
    np.testing.assert_allclose(model.predict(x, batch_size=16), expected, rtol=1e-6, atol=1e-7)
    model.train_on_batch(x, y)
    assert seen and all(threads_ == 1 and not region for _, threads_, region, _ in seen)
    assert {"run", "beside_partners"} <= {name for name, _, _, _ in seen}
    assert partners and not any(partners)
    assert parallel.block_threads() == 2  # only inside the batch
    if blas_libs:  # (a NumPy without a BLAS that threadpoolctl knows has nothing to hold)
        assert all(blas == ({2} if tiny else {1}) for _, _, _, blas in seen)
        assert {lib.num_threads for lib in blas_libs} == {2}


@pytest.mark.parametrize("rank", [2, 3])
def test_a_shard_plans_its_blocks_as_one_group(rank, threads, shard_always, monkeypatch):
    """Inside a shard of a batch (whose nested regions run serially) the layers plan their blocks
    as one group with one set of buffers, not one group per thread: two groups run one after the
    other on the same core made Conv3D 32^3's first layer 1.13x slower in a shard. Outside a
    batch, on a whole batch, the groups still follow the thread count."""
    from core import parallel
    from core.layers.conv import Conv

    shardprocs.set_shard_processes(False)  # (the shards on threads, where a spy sees them)
    monkeypatch.setattr(conv_module, "PARALLEL_BYTES", 0)
    model, spatial = _sharded_model(rank)
    _forced(model.layers[0])
    x = np.random.default_rng(2).normal(size=(8,) + spatial + (2,)).astype(np.float32)
    y = np.arange(8) % 3
    plans = []
    original = Conv._block_plan

    def spy(self, *args, **kwargs):
        plan = original(self, *args, **kwargs)
        plans.append((parallel.inside_region(), len(plan)))
        return plan
    monkeypatch.setattr(Conv, "_block_plan", spy)
    try:
        threads(2)
        assert model._shard_ranges(8) is not None
        model.train_on_batch(x, y)
        model.predict(x, batch_size=8)
        assert plans and all(inside and groups == 1 for inside, groups in plans)
        assert parallel.block_threads() == 2
        plans.clear()
        with parallel.inside():
            assert parallel.block_threads() == 1
        model.layers[0].forward(x, training=True)  # a whole batch outside any shard: one group per thread
        assert plans == [(False, 2)]
    finally:
        shardprocs.set_shard_processes(None)


def test_serial_restores_the_thread_after_an_error(threads):
    """``parallel.serial`` gives the thread back as it was when its block raises, and when BLAS
    cannot be held (the flag is set only once it is)."""
    from core import parallel

    threads(2)

    class Refused(Exception):
        pass

    with pytest.raises(Refused):
        with parallel.serial():
            assert parallel.block_threads() == 1
            raise Refused
    assert parallel.block_threads() == 2

    class Failing:
        def __enter__(self):
            raise Refused

        def __exit__(self, *exc):
            pass

    held = parallel.serial()
    held.blas = Failing()
    with pytest.raises(Refused):
        with held:
            pass
    assert parallel.block_threads() == 2


@pytest.mark.parametrize("noise_shape", [None, (7, 1), (1, None), (None, 1)])
def test_sharded_dropout_draws_the_whole_batch_mask(noise_shape, threads, shard_always, shards):
    """Dropout in a batch split over threads keeps its rows of the whole batch's mask, for any
    noise_shape (per sample, shared by the batch, broadcast over features): the gradients of
    one step match one thread's."""
    x = np.random.default_rng(1).normal(size=(7, 6)).astype(np.float32)
    y = np.arange(7) % 2
    grads = []
    for n in (1, 2, 3):
        threads(n)
        model = Sequential([Input((6,)), layers.Dense(5), layers.Dropout(0.5, noise_shape=noise_shape),
                            layers.Dense(2, activation="softmax")], seed=3)
        model.compile("sgd", "sparse_categorical_crossentropy")
        model.train_on_batch(x, y)
        grads.append(model.last_gradients)
    for other in grads[1:]:
        for key in grads[0]:
            np.testing.assert_allclose(other[key], grads[0][key], rtol=1e-5, atol=1e-7)


def test_rows_of_a_draw_equal_the_rows_of_the_whole_draw():
    """A shard's rows of a dropout draw, skipped to with ``advance`` (PCG64) or cut from the whole
    draw (Philox, SFC64), are the whole batch's rows, whatever the row length's remainder in
    the four draws of a 64-bit output."""
    from core.layers.dropout import _draw, _rows_of_draw

    def spare_half():  # a PCG64 holding a spare 32-bit half, which raw draws do not use
        rng = np.random.default_rng([3, 4])
        rng.integers(0, 2**32, 3, dtype=np.uint32)
        return rng
    for make in (lambda: np.random.default_rng([3, 4]), lambda: np.random.Generator(np.random.PCG64DXSM(4)),
                 spare_half, lambda: np.random.Generator(np.random.Philox(5)),
                 lambda: np.random.Generator(np.random.SFC64(6))):
        for shape in [(7, 5), (7, 3, 3), (5, 1), (9, 1, 1), (6, 4), (6, 2)]:
            whole = _draw(make(), shape)
            assert whole.shape == shape and whole.dtype == np.dtype("<u2")
            for a, b in [(0, 2), (2, 5), (1, 4), (3, shape[0])]:
                np.testing.assert_array_equal(_rows_of_draw(make(), shape, a, b), whole[a:b])


def test_two_models_training_at_once_in_two_threads(threads, shard_always, shards):
    """Sharded passes of two models trained from two Python threads at once (3 shards each, batch
    norm waiting for its partners) finish, and give the weights each gets when trained alone."""
    import threading

    threads(3)
    rng = np.random.default_rng(2)
    data = [(rng.normal(size=(7, 9, 8, 2)).astype(np.float32), np.arange(7) % 3) for _ in range(2)]

    def train(model, x, y):
        for _ in range(20):
            model.train_on_batch(x, y)
        return model.get_weights()

    alone = [train(_sharded_model(2)[0], x, y) for x, y in data]
    models = [_sharded_model(2)[0] for _ in data]
    results = [None, None]
    workers = [threading.Thread(target=lambda i=i: results.__setitem__(i, train(models[i], *data[i])), daemon=True)
               for i in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=120)
    assert not any(w.is_alive() for w in workers), "the two trainings waited for each other for ever"
    for together, single in zip(results, alone):
        for a, b in zip(together, single):
            np.testing.assert_array_equal(a, b)



_FORK_AFTER_POOL = """
import multiprocessing, sys
import numpy as np
from core import Input, Sequential, config, layers, parallel

def train(result):
    rng = np.random.default_rng(2)
    model = Sequential([Input((12, 12, 2)), layers.Conv2D(4, 3, activation="relu"), layers.MaxPooling2D(2),
                        layers.Flatten(), layers.Dense(3, activation="softmax")], seed=0)
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    x, y = rng.normal(size=(64, 12, 12, 2)).astype("float32"), rng.integers(0, 3, 64)
    loss = sum(float(model.train_on_batch(x, y)) for _ in range(2))
    result.value = loss + sum(parallel.run(lambda chunk: sum(chunk), [1, 2, 3, 4], threads=2))

config.set_num_threads(2)
assert parallel.run(lambda chunk: sum(chunk), [1, 2, 3, 4], threads=2) == [3, 7]  # the pool exists
ctx = multiprocessing.get_context("fork")
result = ctx.Value("d", -1.0)
child = ctx.Process(target=train, args=(result,))
child.start()
child.join(60)
if child.is_alive():
    child.kill()
    sys.exit("the forked child hung in a parallel region")
assert child.exitcode == 0 and result.value > 10, (child.exitcode, result.value)
print("ok")
"""


@pytest.mark.skipif(not hasattr(__import__("os"), "register_at_fork"), reason="no fork on this platform")
def test_a_process_forked_after_the_pool_ran_trains_on_threads():
    """A child forked after the parent's pool ran (a multiprocessing or Luigi worker) has none of
    the pool's threads: it must start its own, not wait forever for the parent's. (In a fresh
    interpreter: this test process has threads of other libraries that forking would copy.)"""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", _FORK_AFTER_POOL], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]

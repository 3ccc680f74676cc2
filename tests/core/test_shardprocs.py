"""Shards of a batch in forked worker processes (``core.shardprocs``): the same numbers as the
shards on threads, a crew that follows the model, and failures that say what happened."""
import gc
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from core import CNNError, ConfigError, Input, Sequential, config, layers, optimizers, shardprocs

pytestmark = pytest.mark.skipif(not shardprocs.available(), reason="shard processes need Linux's fork")


@pytest.fixture
def two_shards(monkeypatch):
    """Two threads, every batch split however little work it holds; defaults restored after."""
    from core import model as model_module
    monkeypatch.setattr(model_module, "SHARD_MIN_WORK", 0)
    monkeypatch.setattr(model_module, "SHARD_MIN_ELEMENTS", 0)
    config.set_num_threads(2)
    yield
    config.set_num_threads(None)
    shardprocs.set_shard_processes(None)


def _model(seed=4):
    model = Sequential([Input((9, 8, 2)), layers.Conv2D(4, 3, padding="same"), layers.BatchNormalization(),
                        layers.Activation("relu"), layers.MaxPooling2D(2), layers.Dropout(0.3), layers.Flatten(),
                        layers.Dense(6, activation="relu"), layers.Dense(3, activation="softmax")], seed=seed)
    model.compile(optimizer=optimizers.SGD(0.05, momentum=0.9), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def _data(n=7, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 9, 8, 2)).astype(np.float32), np.arange(n) % 3, rng.random(n).astype(np.float32)


def _alive(pid):
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return False
    return done == 0


def _workers(model):
    return [w.pid for w in model._crew.workers]


def _run(mode, steps=5):
    shardprocs.set_shard_processes(mode)
    model = _model()
    x, y, sw = _data()
    losses = [model.train_on_batch(x, y, sample_weight=sw)[0] for _ in range(steps)]
    return model, losses, model.evaluate(x, y, batch_size=7), model.predict(x, batch_size=7)


def test_processes_give_the_numbers_of_threads(two_shards):
    """Each shard runs the operations it runs on a thread (batch norm's sums added in shard
    order, dropout's rows of the batch's mask, sample weights): weights, moving statistics,
    losses, evaluation and predictions after 5 steps agree to float32 rounding. (Not always to
    the bit: NumPy's vectorized sums can round differently for buffers at other addresses.)"""
    threaded = _run(False)
    forked = _run(True)
    assert forked[0]._crew is not None and len(forked[0]._crew.workers) == 1
    for a, b in zip(forked[0].get_weights(), threaded[0].get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(forked[1], threaded[1], rtol=1e-6)
    np.testing.assert_allclose(forked[2], threaded[2], rtol=1e-6)
    np.testing.assert_allclose(forked[3], threaded[3], rtol=1e-5, atol=1e-7)


def test_a_chunked_3d_network_trains_the_same_on_threads_and_in_processes(two_shards):
    """The blocked paths too: a Conv3D layer built in chunks of rows (its kernel gradient
    multiplies strided blocks, which the shards copy first on threads and in processes alike),
    batch norm and Adam, over a fit whose batches split into shards: the same weights up to
    float32 rounding."""
    results = []
    for mode in (False, True):
        shardprocs.set_shard_processes(mode)
        # no bias before batch norm: its gradient is zero up to rounding, and Adam would scale that
        # noise up to whole steps, leaving it to show nothing but the rounding
        conv = layers.Conv3D(4, 3, padding="same", use_bias=False)
        conv.chunk_threshold, conv.chunk_bytes = 0, 4096
        model = Sequential([Input((10, 9, 8, 1)), conv, layers.BatchNormalization(), layers.Activation("relu"),
                            layers.MaxPooling3D(2), layers.Flatten(), layers.Dense(2, activation="softmax")], seed=2)
        model.compile(optimizer=optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy")
        assert conv._use_chunks(np.zeros((3, 10, 9, 8, 1), np.float32)) and conv._chunk_rows < 10
        x = np.random.default_rng(5).normal(size=(12, 10, 9, 8, 1)).astype(np.float32)
        model.fit(x, np.arange(12) % 2, batch_size=6, epochs=3, verbose=0, shuffle=False)
        results.append(model)
    assert results[1]._crew is not None
    for a, b in zip(results[0].get_weights(), results[1].get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_one_crew_serves_a_whole_fit_with_a_smaller_last_batch(two_shards):
    """The last batch of an epoch (fewer rows, or too few to split) runs on the same workers:
    one fork for the whole fit. A larger batch than the crew was made for starts a larger one."""
    shardprocs.set_shard_processes(True)
    model = _model()
    x, y, _ = _data(n=23)
    model.train_on_batch(x[:8], y[:8])
    pids = _workers(model)
    model.fit(x, y, batch_size=8, epochs=2, verbose=0)  # batches of 8, 8 and 7 samples
    model.predict(x, batch_size=5)
    assert _workers(model) == pids
    model.train_on_batch(x[:12], y[:12])
    assert _workers(model) != pids and model._crew.rows == 6


def test_the_crew_follows_the_model(two_shards):
    """One crew serves every batch; a new compile or build replaces it (its workers leave); a
    weight replaced by ``set_weights`` reaches the workers; the model's collection stops them."""
    shardprocs.set_shard_processes(True)
    model = _model()
    x, y, _ = _data()
    model.train_on_batch(x, y)
    first = _workers(model)
    model.train_on_batch(x, y)
    model.predict(x, batch_size=7)
    assert _workers(model) == first and _alive(first[0])

    kernel = model.layers[0].params["kernel"]
    model.layers[0].set_weights([np.zeros_like(kernel), model.layers[0].params["bias"] + 1])
    shardprocs.set_shard_processes(False)
    expected = model.predict(x, batch_size=7)  # on threads, with the new weights
    shardprocs.set_shard_processes(True)
    np.testing.assert_array_equal(model.predict(x, batch_size=7), expected)
    assert model.layers[0].params["kernel"] is model._crew.views[0, "kernel"]  # copied into the arena

    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    model.train_on_batch(x, y)
    second = _workers(model)
    assert second != first and not _alive(first[0])

    del model
    gc.collect()
    assert not _alive(second[0])


def test_a_killed_worker_fails_its_batch_with_a_clear_error_and_the_next_one_trains(two_shards):
    shardprocs.set_shard_processes(True)
    model = _model()
    x, y, _ = _data()
    model.train_on_batch(x, y)
    before = model.get_weights()
    pid, = _workers(model)
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(CNNError, match=r"shard process for rows 4:7 .* ended unexpectedly \(killed by signal 9\)"):
        model.train_on_batch(x, y)
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)
    model.train_on_batch(x, y)
    assert _workers(model) != [pid]


def test_a_batch_larger_than_the_workers_slots_runs_on_threads(two_shards, monkeypatch):
    """Targets wider than the slots made for them (``row_bytes``) send the batch to the threads,
    with the same result, rather than failing."""
    shardprocs.set_shard_processes(False)
    x, y, _ = _data()
    expected = _model()
    expected.train_on_batch(x, y)
    shardprocs.set_shard_processes(True)
    monkeypatch.setattr(shardprocs, "row_bytes", lambda model: {"x": 8 * 144, "y": 1, "sw": 8, "out": 24})
    model = _model()
    model.train_on_batch(x, y)
    for a, b in zip(model.get_weights(), expected.get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("bad", ["yes", 1, 0.5])
def test_set_shard_processes_validates(bad):
    with pytest.raises(ConfigError, match="set_shard_processes"):
        shardprocs.set_shard_processes(bad)


def test_the_environment_variable_chooses_threads_and_is_checked(monkeypatch):
    monkeypatch.setenv("NUMPY_CNN_SHARDS", "threads")
    assert not shardprocs.wanted()
    monkeypatch.setenv("NUMPY_CNN_SHARDS", "Processes")
    assert shardprocs.wanted()
    monkeypatch.setenv("NUMPY_CNN_SHARDS", "forks")
    with pytest.raises(ConfigError, match="NUMPY_CNN_SHARDS must be 'processes' or 'threads', got 'forks'"):
        shardprocs.wanted()
    shardprocs.set_shard_processes(False)  # the setting wins over the variable
    try:
        assert not shardprocs.wanted()
    finally:
        shardprocs.set_shard_processes(None)


def test_a_process_with_a_threaded_runtime_loaded_keeps_its_shards_on_threads(monkeypatch):
    """JAX, PyTorch or TensorFlow loaded: no fork unless asked for."""
    monkeypatch.delenv("NUMPY_CNN_SHARDS", raising=False)
    for name in shardprocs.THREADED_RUNTIMES:
        monkeypatch.delitem(sys.modules, name, raising=False)
    assert shardprocs.wanted()
    monkeypatch.setitem(sys.modules, "torch", sys)  # any module object: only the name is looked up
    assert not shardprocs.wanted()
    monkeypatch.setenv("NUMPY_CNN_SHARDS", "processes")
    assert shardprocs.wanted()


_FORK_WITH_A_CREW = """
import json, multiprocessing, os, sys
import numpy as np
from core import Input, Sequential, config, layers
from core import model as model_module

model_module.SHARD_MIN_WORK = model_module.SHARD_MIN_ELEMENTS = 0
config.set_num_threads(2)
model = Sequential([Input((6, 6, 1)), layers.Conv2D(3, 3), layers.Flatten(), layers.Dense(2, activation="softmax")],
                   seed=0)
model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
x, y = np.random.default_rng(0).normal(size=(8, 6, 6, 1)).astype("float32"), np.arange(8) % 2
model.train_on_batch(x, y)
parent_workers = [w.pid for w in model._crew.workers]

def child(result):  # inherits the model and its crew, whose workers are not its own
    model.train_on_batch(x[:1], y[:1])  # one sample: not split, the weights updated here only
    model.train_on_batch(x, y)
    result.value = model._crew.workers[0].pid

ctx = multiprocessing.get_context("fork")
result = ctx.Value("i", 0)
before = model.get_weights()
proc = ctx.Process(target=child, args=(result,))
proc.start()
proc.join(60)
assert proc.exitcode == 0 and result.value not in (0, parent_workers[0]), (proc.exitcode, result.value)
assert all((a == b).all() for a, b in zip(model.get_weights(), before)), "the child trained the parent's weights"
model.train_on_batch(x, y)  # the parent's crew still answers
assert [w.pid for w in model._crew.workers] == parent_workers
print(json.dumps(parent_workers + [result.value]))
"""


def test_a_forked_process_starts_its_own_crew_and_no_worker_outlives_its_parent():
    """A process forked from one with a crew (a multiprocessing or Luigi worker) trains weights
    of its own (not the parent's shared ones) and starts its own workers rather than talking to
    its parent's; when the parent ends, every worker leaves.
    (In a fresh interpreter, so that its exit can be watched.)"""
    done = subprocess.run([sys.executable, "-c", _FORK_WITH_A_CREW], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    pids = __import__("json").loads(done.stdout.strip().splitlines()[-1])
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(os.path.exists(f"/proc/{pid}") for pid in pids):
        time.sleep(0.1)
    assert not [pid for pid in pids if os.path.exists(f"/proc/{pid}")]


def test_a_process_that_cannot_fork_trains_on_threads_with_a_warning(two_shards, monkeypatch):
    """No fork here (a process limit, say): one warning, then the model's shards run on threads,
    with the threads' numbers, and no further fork is tried for it."""
    import warnings
    shardprocs.set_shard_processes(False)
    x, y, _ = _data()
    expected = _model()
    expected.train_on_batch(x, y)
    shardprocs.set_shard_processes(True)
    tries = []

    def refuse():
        tries.append(1)
        raise BlockingIOError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(shardprocs.os, "fork", refuse)
    model = _model()
    with pytest.warns(RuntimeWarning, match=r"could not start the shard processes \(\[Errno 11\] Resource "
                                            r"temporarily unavailable\); this model's shards run on threads"):
        model.train_on_batch(x, y)
    for a, b in zip(model.get_weights(), expected.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.train_on_batch(x, y)
    assert tries == [1]


def test_gradients_in_another_dtype_than_their_weights_come_back_as_they_are(two_shards):
    """A float64 layer in a float32 model hands the layers around it gradients of the other
    dtype: each comes back with its own dtype and shape, as on threads."""
    results = []
    for mode in (False, True):
        shardprocs.set_shard_processes(mode)
        model = Sequential([Input((10,)), layers.Dense(6, activation="relu"), layers.Dense(3, dtype="float64"),
                            layers.Dense(2, activation="softmax")], seed=0)
        model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
        x = np.random.default_rng(0).normal(size=(8, 10)).astype("float32")
        model.train_on_batch(x, np.arange(8) % 2)
        results.append(model.last_gradients)
    for key, g in results[0].items():
        assert results[1][key].dtype == g.dtype
        np.testing.assert_allclose(results[1][key], g, rtol=1e-5, atol=1e-7)


def test_a_shard_process_runs_nested_regions_serially_and_a_custom_loss_may_return_numpy_scalars(
        two_shards, monkeypatch):
    """Inside a shard (a thread's or a process's) the engine's block threads do not start: the
    shard is already one of the threads. A loss value that is a NumPy scalar travels too."""
    from core import losses, parallel
    from core.layers.dense import Dense

    class Float32Loss(losses.SparseCategoricalCrossentropy):
        def value_and_grad(self, y_true, y_pred, sample_weight=None):
            value, grad = super().value_and_grad(y_true, y_pred, sample_weight)
            return np.float32(value), grad

    shardprocs.set_shard_processes(True)
    seen = []
    original = Dense.forward
    monkeypatch.setattr(Dense, "forward", lambda self, *a, **k: seen.append(parallel.inside_region())
                        or original(self, *a, **k))
    model = _model()
    model.compile(optimizer="sgd", loss=Float32Loss())
    x, y, _ = _data()
    loss = model.train_on_batch(x, y)
    assert np.isfinite(loss) and model._crew is not None
    assert seen == [True, True]  # the parent's shard (the worker's group is the same kind)
    assert not parallel.inside_region()


def test_a_copy_of_a_model_with_a_crew_has_weights_of_its_own(two_shards):
    import copy
    shardprocs.set_shard_processes(True)
    model = _model()
    x, y, _ = _data()
    model.train_on_batch(x, y)
    twin = copy.deepcopy(model)
    assert "_crew" not in twin.__dict__ or twin._crew is None
    before = model.get_weights()
    twin.train_on_batch(x, y)
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)


def test_a_sum_larger_than_its_slot_fails_the_batch_rather_than_running_it_twice(two_shards, monkeypatch):
    """Batch norm's sums past the slots of ``allreduce`` are found once the shards have started
    (shard 0 may have changed state): the batch fails with a clear error, the weights as they
    were, instead of being run again on threads."""
    shardprocs.set_shard_processes(True)
    monkeypatch.setattr(shardprocs, "ALLREDUCE_BYTES", 16)
    model = Sequential([Input((6,)), layers.Dense(8), layers.BatchNormalization(),
                        layers.Dense(2, activation="softmax")], seed=0)
    model.compile("sgd", "sparse_categorical_crossentropy")
    before = model.get_weights()
    x = np.random.default_rng(0).normal(size=(8, 6)).astype("float32")
    with pytest.raises(CNNError, match=r"32 bytes for a slot of 16"):
        model.train_on_batch(x, np.arange(8) % 2)
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)


def test_a_message_is_read_whole_after_polling_and_an_idle_wait_gives_up():
    """A process of a crew polls its socket before it blocks (``SPIN_SECONDS``): polling reads
    nothing, so the message that ends it is then read whole; with no message the poll gives up
    after the time asked (measured with the same clock), and a closed peer ends it at once."""
    import socket

    left, right = socket.socketpair()
    try:
        shardprocs._send(left, {"op": "stop", "rows": [1, 2]})
        start = time.perf_counter()
        shardprocs._poll(right, 60.0)  # a message waiting: returns at once
        assert time.perf_counter() - start < 30.0
        assert shardprocs._recv(right) == {"op": "stop", "rows": [1, 2]}
        start = time.perf_counter()
        shardprocs._poll(right, 0.01)
        assert time.perf_counter() - start >= 0.01
        left.close()
        start = time.perf_counter()
        shardprocs._poll(right, 60.0)  # the end of the stream: returns without waiting it out
        assert time.perf_counter() - start < 30.0
        with pytest.raises(EOFError):
            shardprocs._recv(right)
        right.close()
        with pytest.raises(OSError):  # a closed socket: recv's own error, as without polling
            shardprocs._recv(right, 60.0)
    finally:
        left.close()
        right.close()


def _record_polls(monkeypatch, tmp_path):
    """Log every ``_poll`` call of this process and of the workers it forks from now on;
    returns a function giving ``[(pid, seconds)]`` of the calls so far."""
    log = tmp_path / "polls"
    original = shardprocs._poll

    def record(sock, seconds):
        with open(log, "a") as f:
            f.write(f"{os.getpid()} {seconds}\n")
        return original(sock, seconds)
    monkeypatch.setattr(shardprocs, "_poll", record)  # before the fork: the workers record too

    def polls():
        return [(int(pid), float(s)) for pid, s in (line.split() for line in log.read_text().splitlines())] \
            if log.exists() else []
    return polls


def test_only_a_batch_in_progress_is_polled_for(two_shards, monkeypatch, tmp_path):
    """The parent polls for its workers' answers and batch-norm parts, a worker for a sum
    inside a batch; a worker waiting for the next batch sleeps at once, unless batches come
    back to back (``test_a_worker_polls_for_the_next_batch_only_when_they_come_back_to_back``);
    with more shards than cores nobody polls."""
    monkeypatch.setattr(shardprocs, "IDLE_SPIN_SECONDS", 0.0)  # (batches are never back to back)
    polls = _record_polls(monkeypatch, tmp_path)
    shardprocs.set_shard_processes(True)  # (whatever the suite has imported before)
    model = _model()
    x, y, _ = _data(8)
    model.train_on_batch(x, y)  # batch norm: each worker waits for two sums
    model.train_on_batch(x, y)
    parent = {s for pid, s in polls() if pid == os.getpid()}
    workers = [s for pid, s in polls() if pid != os.getpid()]
    assert parent == {shardprocs.SPIN_SECONDS}
    assert 0.0 in workers and shardprocs.SPIN_SECONDS in workers
    monkeypatch.setattr(shardprocs.parallel, "available_cores", lambda: 1)
    assert shardprocs._spin(2) == 0.0 and shardprocs._spin(1) == shardprocs.SPIN_SECONDS


def test_a_worker_polls_for_the_next_batch_only_when_they_come_back_to_back(two_shards, monkeypatch, tmp_path):
    """After answering a batch that began within ``IDLE_SPIN_SECONDS`` of the end of the one
    before (``predict`` in a loop), a worker polls that long for the next one; otherwise (its
    first batch, batches further apart, as two models used by turns) it sleeps at once. The
    parent decides and tells the worker in the batch's message."""
    polls = _record_polls(monkeypatch, tmp_path)
    monkeypatch.setattr(shardprocs.parallel, "available_cores", lambda: 2)  # (no poll beyond the cores)
    shardprocs.set_shard_processes(True)
    model = _model()
    x, _, _ = _data(8)
    expected = [model.predict(x, batch_size=8)]  # starts the crew: the worker waits asleep
    monkeypatch.setattr(shardprocs, "IDLE_SPIN_SECONDS", 30.0)  # the parent's judgement only
    expected.append(model.predict(x, batch_size=8))  # back to back: the worker then polls
    monkeypatch.setattr(shardprocs, "IDLE_SPIN_SECONDS", 0.0)
    expected.append(model.predict(x, batch_size=8))  # ends the poll at once; then asleep again
    for other in expected[1:]:
        np.testing.assert_array_equal(other, expected[0])
    worker = model._crew.workers[0].pid

    def waits():
        return [s for pid, s in polls() if pid == worker]
    deadline = time.monotonic() + 30
    while len(waits()) < 4 and time.monotonic() < deadline:  # (the worker logs its next wait after answering)
        time.sleep(0.01)
    assert waits() == [0.0, 0.0, 30.0, 0.0]

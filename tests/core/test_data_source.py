"""``Sequential.fit`` on a data source (Keras' PyDataset habits): the same
weights as the same batches from memory, prefetching that never reorders,
``steps_per_epoch``, ``on_epoch_end``, and clear errors."""
import threading
import time

import numpy as np
import pytest

from core import Input, InputError, Sequential, layers


class Batches:
    """Fixed batches of arrays; optionally slow, to let the prefetch threads race."""

    def __init__(self, x, y, batch_size, workers=1, max_queue_size=2, delay=0.0, weights=None):
        self.x, self.y, self.bs, self.delay, self.w = x, y, batch_size, delay, weights
        self.workers, self.max_queue_size = workers, max_queue_size
        self.epochs_ended = 0
        self.threads = set()

    def __len__(self):
        return -(-len(self.x) // self.bs)

    def __getitem__(self, i):
        self.threads.add(threading.get_ident())
        if self.delay:
            time.sleep(self.delay * ((i * 7) % 3))  # uneven: later batches may finish first
        sl = slice(i * self.bs, (i + 1) * self.bs)
        if self.w is not None:
            return self.x[sl], self.y[sl], self.w[sl]
        return self.x[sl], self.y[sl]

    def on_epoch_end(self):
        self.epochs_ended += 1


def _model():
    model = Sequential([Input((6, 6, 1)), layers.Conv2D(4, 3, activation="relu"), layers.BatchNormalization(),
                        layers.Flatten(), layers.Dropout(0.3), layers.Dense(3, activation="softmax")], seed=5)
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def _data(n=50, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 6, 6, 1)).astype(np.float32), rng.integers(0, 3, n)


@pytest.mark.parametrize("workers,delay", [(0, 0.0), (1, 0.0), (3, 0.002)])
def test_source_gives_the_weights_of_the_same_batches_in_memory(workers, delay):
    x, y = _data()
    w = np.linspace(0.5, 1.5, len(x))
    ref = _model()
    ref_hist = ref.fit(x, y, batch_size=8, epochs=3, shuffle=False, sample_weight=w, verbose=0)
    src = Batches(x, y, 8, workers=workers, delay=delay, weights=w)
    model = _model()
    hist = model.fit(src, epochs=3, verbose=0)
    for a, b in zip(model.get_weights(), ref.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert hist.history["loss"] == ref_hist.history["loss"]
    assert src.epochs_ended == 3
    if workers:
        assert threading.get_ident() not in src.threads  # the batches were read by the prefetch threads


def test_steps_per_epoch_and_validation_source():
    x, y = _data(40)
    src = Batches(x, y, 10)
    model = _model()
    hist = model.fit(src, epochs=2, steps_per_epoch=6, validation_data=Batches(x[:20], y[:20], 7), verbose=0)
    assert model.optimizer.iterations == 12  # 6 steps an epoch, the 4 batches wrapping around
    assert set(hist.history) >= {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert np.isfinite(hist.history["val_loss"]).all()
    assert model.evaluate(Batches(x[:20], y[:20], 7), return_dict=True)["loss"] == pytest.approx(
        model.evaluate(x[:20], y[:20], batch_size=7, return_dict=True)["loss"], rel=1e-6)
    np.testing.assert_allclose(model.predict(Batches(x, y, 9)), model.predict(x, batch_size=9), rtol=1e-6)


def test_bad_sources_get_clear_errors():
    x, y = _data(20)
    model = _model()

    class Broken(Batches):
        def __getitem__(self, i):
            return x[:4]  # not (x, y)
    with pytest.raises(InputError, match=r"batch 0 of the data source must be a tuple \(x, y\)"):
        model.fit(Broken(x, y, 4), epochs=1, verbose=0)

    class WrongShape(Batches):
        def __getitem__(self, i):
            return np.zeros((4, 5, 5, 1), np.float32), y[:4]
    with pytest.raises(InputError, match="batch 0 of the data source"):
        model.fit(WrongShape(x, y, 4), epochs=1, verbose=0)
    with pytest.raises(InputError, match="y must be None"):
        model.fit(Batches(x, y, 4), y, epochs=1, verbose=0)
    with pytest.raises(InputError, match="validation_split"):
        model.fit(Batches(x, y, 4), epochs=1, validation_split=0.2, verbose=0)
    with pytest.raises(InputError, match="steps_per_epoch is for data sources"):
        model.fit(x, y, epochs=1, steps_per_epoch=3, verbose=0)
    src = Batches(x, y, 4)
    src.workers = -1
    with pytest.raises(InputError, match="workers"):
        model.fit(src, epochs=1, verbose=0)

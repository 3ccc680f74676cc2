"""Sequential end to end: learning, callbacks, saving, resuming, bad input."""
import csv
import json
import os
import zipfile

import numpy as np
import pytest

from core import (ConfigError, InputError, Input, ModelFileError, NotFittedError, Sequential, ShapeError,
                  TrainingError, callbacks, layers, load_model, optimizers)


def bars_dataset(n=240, size=10, seed=0):
    """Images holding one bright bar: horizontal (0), vertical (1) or diagonal (2), on noise."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 0.3, (n, size, size, 1)).astype(np.float32)
    y = rng.integers(0, 3, n)
    for i, c in enumerate(y):
        k = rng.integers(1, size - 1)
        if c == 0:
            x[i, k, :, 0] += 1.5
        elif c == 1:
            x[i, :, k, 0] += 1.5
        else:
            x[i, np.arange(size), np.arange(size), 0] += 1.5
    return x, y


def small_cnn(seed=0, dropout=0.0):
    return Sequential([Input((10, 10, 1)), layers.Conv2D(6, 3, activation="relu"), layers.MaxPooling2D(2),
                       layers.Flatten(), layers.Dropout(dropout), layers.Dense(3, activation="softmax")], seed=seed)


@pytest.fixture(scope="module")
def bars():
    return bars_dataset()


def test_learns_a_separable_image_set(bars):
    x, y = bars
    model = small_cnn()
    model.compile(optimizer=optimizers.Adam(0.01), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x[:180], y[:180], batch_size=16, epochs=15, verbose=0)
    loss, acc = model.evaluate(x[180:], y[180:])
    assert history.history["loss"][-1] < history.history["loss"][0] / 3
    assert acc >= 0.9, f"held-out accuracy {acc:.3f} (chance is 0.33)"


def test_same_seed_same_model(bars):
    x, y = bars
    runs = []
    for _ in range(2):
        m = small_cnn(seed=5, dropout=0.3)
        m.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        m.fit(x[:64], y[:64], epochs=2, batch_size=16, verbose=0)
        runs.append(m.get_weights())
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)
    other = small_cnn(seed=6)
    assert not np.array_equal(other.get_weights()[0], small_cnn(seed=5).get_weights()[0])


def test_save_load_identical_predictions_and_resume(tmp_path, bars):
    x, y = bars
    def fresh():
        m = small_cnn(seed=1, dropout=0.3)  # dropout masks too must continue as if uninterrupted
        m.compile(optimizer=optimizers.SGD(0.05, momentum=0.9), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
        return m
    straight = fresh()
    straight.fit(x, y, batch_size=32, epochs=4, verbose=0)

    first = fresh()
    first.fit(x, y, batch_size=32, epochs=2, verbose=0)
    path = tmp_path / "model.npz"
    first.save(path)
    loaded = load_model(path)
    np.testing.assert_array_equal(loaded.predict(x), first.predict(x))
    assert loaded.optimizer.iterations == first.optimizer.iterations
    loaded.fit(x, y, batch_size=32, epochs=4, initial_epoch=2, verbose=0)
    for a, b in zip(loaded.get_weights(), straight.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert [p.name for p in tmp_path.iterdir()] == ["model.npz"]  # no temporary file left


def test_saved_file_is_plain_npz_without_pickle(tmp_path, bars):
    m = small_cnn()
    m.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    m.save(tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz", allow_pickle=False) as data:
        meta = json.loads(data["__meta__"].tobytes())
        assert meta["format"] == "numpy-cnn-model"
        assert [spec["class_name"] for spec in meta["model"]["layers"]] == [
            "Conv2D", "MaxPooling2D", "Flatten", "Dropout", "Dense"]
        assert data["weights/0/kernel"].shape == (3, 3, 1, 6)


def test_load_rejects_foreign_truncated_and_mismatched_files(tmp_path, bars):
    not_npz = tmp_path / "notes.npz"
    not_npz.write_text("hello")
    with pytest.raises(ModelFileError, match="notes.npz"):
        load_model(not_npz)
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, a=np.zeros(3))
    with pytest.raises(ModelFileError, match="not a model"):
        load_model(foreign)
    m = small_cnn()
    m.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    good = tmp_path / "good.npz"
    m.save(good)
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(good.read_bytes()[: os.path.getsize(good) // 2])
    with pytest.raises(ModelFileError, match="truncated.npz"):
        load_model(truncated)
    # an archive whose weights disagree with its own architecture
    with np.load(good, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    arrays["weights/0/kernel"] = np.zeros((5, 5, 1, 6), np.float32)
    bad = tmp_path / "bad.npz"
    np.savez(bad, **arrays)
    with pytest.raises(ModelFileError, match=r"weights/0/kernel.*\(5, 5, 1, 6\)"):
        load_model(bad)
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        load_model(tmp_path / "missing.npz")


def test_atomic_save_leaves_old_file_on_failure(tmp_path, monkeypatch):
    m = small_cnn()
    path = tmp_path / "m.npz"
    m.save(path)
    before = path.read_bytes()

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")
    monkeypatch.setattr(np, "savez", boom)
    with pytest.raises(RuntimeError):
        m.save(path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.npz"]


def test_callbacks_early_stopping_checkpoint_reduce_lr_csv(tmp_path, bars):
    x, y = bars
    m = small_cnn()
    m.compile(optimizer=optimizers.Adam(0.01), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    log = tmp_path / "log.csv"
    ckpt = tmp_path / "best.npz"
    early = callbacks.EarlyStopping(monitor="val_loss", patience=1, restore_best_weights=True, min_delta=10.0)
    reduce = callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=1, min_delta=10.0)
    history = m.fit(x[:160], y[:160], epochs=10, batch_size=32, validation_data=(x[160:], y[160:]), verbose=0,
                    callbacks=[early, callbacks.ModelCheckpoint(ckpt, save_best_only=True), reduce,
                               callbacks.CSVLogger(log)])
    # min_delta=10 means no epoch after the first counts as an improvement
    assert len(history.epoch) == 2 and early.stopped_epoch == 1
    np.testing.assert_array_equal(m.get_weights()[0], early.best_weights[0])
    assert m.optimizer.learning_rate == pytest.approx(0.005)
    rows = list(csv.DictReader(open(log)))
    assert [r["epoch"] for r in rows] == ["0", "1"] and {"loss", "val_loss", "val_accuracy"} <= set(rows[0])
    best = min(float(r["val_loss"]) for r in rows)  # the checkpoint has no min_delta: it keeps the lowest
    assert load_model(ckpt).evaluate(x[160:], y[160:])[0] == pytest.approx(best, rel=1e-5)
    # a misspelt log name in the path: an error naming the names it may use, not a bare KeyError
    misspelt = callbacks.ModelCheckpoint(str(tmp_path / "c-{val_los:.2f}.npz"))
    with pytest.raises(ConfigError, match=r"val_los.*may name epoch, loss, .*val_loss"):
        m.fit(x[:160], y[:160], epochs=1, batch_size=32, validation_data=(x[160:], y[160:]), verbose=0,
              callbacks=[misspelt])
    assert not list(tmp_path.glob("c-*"))
    indexed = callbacks.ModelCheckpoint(str(tmp_path / "c-{loss[0]}.npz"))  # a float is not indexable
    with pytest.raises(ConfigError, match=r"TypeError.*may name epoch, loss"):
        m.fit(x[:160], y[:160], epochs=1, batch_size=32, verbose=0, callbacks=[indexed])


def test_validation_split_takes_last_samples_and_class_weight(bars):
    x, y = bars
    m = small_cnn()
    m.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    h = m.fit(x, y, epochs=1, validation_split=0.25, verbose=0, class_weight={0: 1.0, 1: 2.0, 2: 0.5})
    val = m.evaluate(x[180:], y[180:], return_dict=True)
    assert h.history["val_loss"][0] == pytest.approx(val["loss"], rel=1e-5)


def test_schedules_drive_the_learning_rate():
    sched = optimizers.ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5, staircase=True)
    opt = optimizers.SGD(learning_rate=sched)
    assert opt.learning_rate == pytest.approx(0.1)
    opt.iterations = 25
    assert opt.learning_rate == pytest.approx(0.025)
    cos = optimizers.CosineDecay(1.0, decay_steps=100, alpha=0.1)
    assert cos(0) == pytest.approx(1.0) and cos(50) == pytest.approx(0.55) and cos(1000) == pytest.approx(0.1)
    assert optimizers.StepDecay(1.0, step_size=3, factor=0.1)(7) == pytest.approx(0.01)
    assert optimizers.PiecewiseConstantDecay([5, 10], [1.0, 0.5, 0.1])(7) == 0.5
    with pytest.raises(ConfigError, match="schedule"):
        opt.learning_rate = 0.3


def test_optimizer_clipnorm_limits_each_gradient():
    w = np.ones(4, np.float32)
    g = np.full(4, 10.0, np.float32)  # norm 20
    optimizers.SGD(1.0, clipnorm=1.0).apply([("w", w, g)])
    np.testing.assert_allclose(w, 1 - 0.5, rtol=1e-6)


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning")
def test_non_finite_loss_stops_fit_naming_epoch_and_batch():
    x = np.ones((8, 4), np.float32)
    x[5] = 1e30
    m = Sequential([Input((4,)), layers.Dense(2)], seed=0)
    m.compile(optimizer="sgd", loss="mse")
    with pytest.raises(TrainingError, match=r"epoch 1, batch 2 of 2"):
        m.fit(x, np.zeros((8, 2)), batch_size=4, shuffle=False, verbose=0)


def test_summary_and_weights_api(capsys):
    m = small_cnn()
    m.summary()
    out = capsys.readouterr().out
    assert "conv2d (Conv2D)" in out and "(None, 8, 8, 6)" in out and f"Total params: {m.count_params():,}" in out
    assert m.count_params() == 3 * 3 * 6 + 6 + 96 * 3 + 3
    ws = m.get_weights()
    m.set_weights([w * 0 for w in ws])
    assert all(not w.any() for w in m.get_weights())


def test_build_with_batch_axis_like_keras():
    m = Sequential([layers.Conv1D(4, 3), layers.GlobalMaxPooling1D(), layers.Dense(2)])
    m.build((None, 20, 3))
    assert m.output_shape == (None, 2)
    assert m.layers[0].params["kernel"].shape == (3, 3, 4)


def test_float64_models_compute_in_float64():
    from core import config
    with config.floatx_scope("float64"):
        m = small_cnn()
    assert m.predict(np.zeros((2, 10, 10, 1))).dtype == np.float64
    assert small_cnn().predict(np.zeros((2, 10, 10, 1))).dtype == np.float32


# ------------------------------------------------------------------- bad input
@pytest.fixture
def compiled():
    m = small_cnn()
    m.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return m


def test_wrong_input_shape_names_expected_found_and_layer(compiled):
    with pytest.raises(ShapeError, match=r"expects x of shape \(batch, 10, 10, 1\).*conv2d.*\(4, 12, 12, 1\)"):
        compiled.predict(np.zeros((4, 12, 12, 1)))
    with pytest.raises(ShapeError, match=r"found x of shape \(4, 10, 10\)"):
        compiled.fit(np.zeros((4, 10, 10)), np.zeros(4))


def test_length_mismatch_labels_out_of_range_empty_and_nan(compiled):
    x = np.zeros((4, 10, 10, 1), np.float32)
    with pytest.raises(ShapeError, match="4 samples but y has 3"):
        compiled.fit(x, np.zeros(3))
    with pytest.raises(InputError, match=r"\[0, 3\).*e\.g\. 7"):
        compiled.fit(x, np.array([0, 1, 7, 2]))
    with pytest.raises(InputError, match="integer labels"):
        compiled.fit(x, np.array([0.5, 1, 2, 0]))
    with pytest.raises(InputError, match="empty"):
        compiled.predict(np.zeros((0, 10, 10, 1)))
    bad = x.copy()
    bad[1, 2, 3, 0] = np.nan
    with pytest.raises(InputError, match="1 NaN"):
        compiled.fit(bad, np.zeros(4))
    with pytest.raises(InputError, match="batch_size"):
        compiled.fit(x, np.zeros(4), batch_size=0)
    with pytest.raises(InputError, match="batch_size must be an int >= 1, got True"):
        compiled.predict(x, batch_size=True)


def test_set_weights_wrong_count_or_shape_names_the_layer(compiled):
    ws = compiled.get_weights()
    with pytest.raises(InputError, match=r"4 weight arrays \(conv2d: 2, dense: 2\), got 3"):
        compiled.set_weights(ws[:3])
    ws[2] = np.zeros((10, 3))
    with pytest.raises(ShapeError, match=r"'dense'.*'kernel'.*\(96, 3\).*\(10, 3\)"):
        compiled.set_weights(ws)


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(ConfigError, match="unknown activation 'rellu'.*relu"):
        layers.Dense(3, activation="rellu")
    m = small_cnn()
    with pytest.raises(ConfigError, match="unknown loss 'crossentropy'.*sparse_categorical_crossentropy"):
        m.compile(optimizer="adam", loss="crossentropy")
    with pytest.raises(ConfigError, match="unknown optimizer 'adamm'.*sgd"):
        m.compile(optimizer="adamm", loss="mse")
    with pytest.raises(ConfigError, match="padding"):
        layers.Conv2D(3, 3, padding="full")
    with pytest.raises(ConfigError, match="causal"):
        layers.Conv2D(3, 3, padding="causal")


def test_impossible_conv_geometry_is_explained():
    with pytest.raises(InputError, match=r"kernel spans 9.*only 5 elements.*padding='same'"):
        Sequential([Input((5, 3)), layers.Conv1D(4, 5, dilation_rate=2)])
    with pytest.raises(InputError, match="pool_size 4"):
        Sequential([Input((3, 3, 1)), layers.MaxPooling2D(4)])


def test_use_before_compile_or_build():
    m = Sequential([layers.Dense(2)])
    with pytest.raises(NotFittedError, match="compile"):
        m.fit(np.zeros((2, 3)), np.zeros(2))
    with pytest.raises(NotFittedError, match="not built"):
        m.get_weights()


def test_failed_step_leaves_batch_norm_statistics_untouched():
    m = Sequential([Input((4,)), layers.BatchNormalization(), layers.Dense(2)], seed=0)
    m.compile(optimizer="sgd", loss="mse")
    m.fit(np.random.default_rng(0).normal(size=(16, 4)), np.zeros((16, 2)), verbose=0)
    before = [w.copy() for w in m.get_weights()]
    huge = np.full((4, 4), 3e38, np.float32)
    with pytest.raises(TrainingError, match="batch-norm statistics were left"), np.errstate(all="ignore"):
        m.train_on_batch(huge, np.zeros((4, 2)))
    for a, b in zip(m.get_weights(), before):
        np.testing.assert_array_equal(a, b)


def test_frozen_batch_norm_uses_its_moving_statistics():
    bn = layers.BatchNormalization(trainable=False)
    x = np.random.default_rng(0).normal(5.0, 2.0, size=(32, 3)).astype(np.float32)
    np.testing.assert_allclose(bn(x, training=True), bn(x, training=False))
    assert np.all(bn.params["moving_mean"] == 0)


def test_fit_arguments_are_validated(compiled):
    x = np.zeros((4, 10, 10, 1), np.float32)
    y = np.array([0, 1, 2, 0])
    with pytest.raises(InputError, match="class_weight keys must be class indices"):
        compiled.fit(x, y, class_weight={"a": 1.0}, verbose=0)
    with pytest.raises(InputError, match=r"class_weight keys.*\[0, 3\).*7"):
        compiled.fit(x, y, class_weight={7: 2.0}, verbose=0)
    with pytest.raises(InputError, match="class_weight must be a dict"):
        compiled.fit(x, y, class_weight=[1, 2, 3], verbose=0)
    with pytest.raises(InputError, match="sample_weight must be numbers"):
        compiled.fit(x, y, sample_weight=["a"] * 4, verbose=0)
    with pytest.raises(InputError, match="finite and non-negative"):
        compiled.fit(x, y, sample_weight=[1, -1, 1, 1], verbose=0)
    with pytest.raises(InputError, match="initial_epoch"):
        compiled.fit(x, y, initial_epoch=-1, verbose=0)
    with pytest.raises(InputError, match="verbose"):
        compiled.fit(x, y, verbose="yes")
    with pytest.raises(InputError, match="callbacks must be a list"):
        compiled.fit(x, y, callbacks=print, verbose=0)
    with pytest.raises(ShapeError, match="evaluate: sample_weight has 200 entries for 4 samples"):
        compiled.evaluate(x, y, sample_weight=np.ones(200))
    with pytest.raises(ShapeError, match=r"fit \(validation_data\): sample_weight has 3 entries for 4"):
        compiled.fit(x, y, validation_data=(x, y, np.ones(3)), verbose=0)


def test_text_file_is_not_a_model_and_no_pickle_is_suggested(tmp_path):
    path = tmp_path / "model.npz"
    path.write_text("weights: none")
    with pytest.raises(ModelFileError, match="does not start like a zip archive") as info:
        load_model(path)
    assert "pickle" not in str(info.value)
    assert "weig" not in str(info.value)  # the file's content is never echoed

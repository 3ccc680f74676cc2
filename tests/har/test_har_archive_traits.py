"""ActivityClassifier at its defaults on generated problems with the traits of UCR/UEA archive problems
(few training series, univariate, unequal lengths, many classes), and the pieces that serve them:
networks, class_weight, the refusal of regression targets, subject-wise cross-validation."""
import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import har
from core import config, optimizers
from core.exceptions import ConfigError, InputError, ShapeError
from har import networks


@pytest.fixture(autouse=True)
def one_blas_thread():
    with threadpool_limits(1, user_api="blas"):
        yield


def cbf(n_per_class, seed, length=128):
    """Cylinder-bell-funnel (Saito 1994): a plateau, a rising ramp or a falling ramp between random
    onsets a in [16, 32) and ends b in a + [32, 96), amplitude 6 + N(0, 1), plus N(0, 1) noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(length)
    X, y = [], []
    for label in range(3):
        for _ in range(n_per_class):
            a = rng.integers(16, 32)
            b = a + rng.integers(32, 96)
            inside = ((t >= a) & (t <= b)).astype(float)
            shape = [inside, inside * (t - a) / (b - a), inside * (b - t) / (b - a)][label]
            X.append((6 + rng.normal()) * shape + rng.normal(size=length))
            y.append(["cylinder", "bell", "funnel"][label])
    return np.asarray(X)[:, :, None], np.asarray(y)


def znorm(X):
    return (X - X.mean(axis=1, keepdims=True)) / X.std(axis=1, keepdims=True)


@pytest.mark.slow
def test_cbf_with_30_training_series():
    Xtr, ytr = cbf(10, seed=0)
    Xte, yte = cbf(100, seed=1)
    clf = har.ActivityClassifier(seed=0).fit(znorm(Xtr), ytr)
    assert clf.normalize_ == "series"  # z-normalised series, the archive convention
    assert clf.score(znorm(Xte), yte) >= 0.97


def shapes(n, seed, length=150):
    """Two classes of one bump at a random place: a smooth (Gaussian) bump, or a bump with a dip just
    before it (the gun being drawn, as in GunPoint), in noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(length)
    X, y = [], []
    for i in range(n):
        label = i % 2
        centre, width = rng.uniform(50, 100), rng.uniform(8, 14)
        x = 2.0 * np.exp(-0.5 * ((t - centre) / width) ** 2)
        if label:
            x -= 0.8 * np.exp(-0.5 * ((t - centre + 2.2 * width) / (0.5 * width)) ** 2)
        X.append(x + rng.normal(scale=0.15, size=length))
        y.append(label)
    return znorm(np.asarray(X)), np.asarray(y)


@pytest.mark.slow
def test_two_class_shapes_with_25_training_series():
    Xtr, ytr = shapes(25, seed=0)
    Xte, yte = shapes(200, seed=1)
    assert Xtr.ndim == 2  # (N, steps): one channel
    clf = har.ActivityClassifier(seed=0).fit(Xtr, ytr)
    assert clf.score(Xte, yte) >= 0.9


def unequal(n, seed):
    """Two gestures performed at different speeds: series of 20 to 400 samples, NaN-padded to 400."""
    rng = np.random.default_rng(seed)
    X = np.full((n, 400, 1), np.nan)
    y = np.arange(n) % 2
    for i in range(n):
        m = rng.integers(20, 401)
        u = np.linspace(0, 1, m)
        x = np.sin(2 * np.pi * u) if y[i] else np.sin(np.pi * u) ** 2 - 0.5  # one full wave or one hump
        X[i, :m, 0] = x + rng.normal(scale=0.1, size=m)
    return X, y


@pytest.mark.slow
def test_unequal_lengths_20_to_400():
    Xtr, ytr = unequal(24, seed=0)
    Xte, yte = unequal(100, seed=1)
    clf = har.ActivityClassifier(seed=0).fit(Xtr, ytr)
    assert clf.input_shape_ == (400, 1)
    assert clf.score(Xte, yte) >= 0.9
    # the padded test file need not be padded to the same length
    lengths = har.classifier.series_lengths(Xte)
    short = Xte[:, : lengths.max() // 2]
    keep = lengths <= short.shape[1]
    assert keep.sum() >= 10
    assert (clf.predict(short[keep]) == clf.predict(Xte[keep])).mean() >= 0.9


def ten_classes(n_per_class, seed, length=100):
    """Ten classes: k = 1..10 cycles of a sine over the series, random phase, noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(length) / length
    X = [np.sin(2 * np.pi * k * t + rng.uniform(0, 2 * np.pi)) + rng.normal(scale=0.2, size=length)
         for k in range(1, 11) for _ in range(n_per_class)]
    y = np.repeat([f"k{k}" for k in range(1, 11)], n_per_class)
    return znorm(np.asarray(X))[:, :, None], y


@pytest.mark.slow
def test_ten_classes_with_5_series_each():
    Xtr, ytr = ten_classes(5, seed=0)
    Xte, yte = ten_classes(20, seed=1)
    clf = har.ActivityClassifier(seed=0).fit(Xtr, ytr)
    assert clf.score(Xte, yte) >= 0.8  # chance: 0.1


# ------------------------------------------------------------------ pieces (fast)

def test_stretch_and_series_lengths():
    X = np.full((2, 5, 1), np.nan)
    X[0, :, 0] = [0, 1, 2, 3, 4]
    X[1, :3, 0] = [0, 2, 4]
    lengths = har.classifier.series_lengths(X)
    assert lengths.tolist() == [5, 3]
    out = har.classifier.stretch(X, lengths, 5)
    np.testing.assert_allclose(out[1, :, 0], [0, 1, 2, 3, 4])
    bad = X.copy()
    bad[0, 2, 0] = np.nan
    with pytest.raises(InputError, match="NaN values inside series"):
        har.classifier.series_lengths(bad)


@pytest.mark.parametrize("name, options", [
    ("fcn", dict(filters=(3, 4, 3))),
    ("resnet", dict(filters=(4, 6, 6))),
    ("inception", dict(filters=2, depth=6, kernel_sizes=(5, 3, 1), bottleneck=3)),
])
def test_networks_gradients_match_finite_differences(name, options):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(4, 16, 2)), rng.integers(0, 3, 4)
    with config.floatx_scope("float64"):
        model = networks.build(name, (16, 2), 3, seed=1, **options)
        model.compile(optimizer=optimizers.SGD(1e-12), loss="sparse_categorical_crossentropy")
        state = [(lay, n, lay.params[n].copy()) for lay in model.layers for n in lay.non_trainable]
        outputs, contexts = model.run_forward(x, training=True, logits=True, step=0)
        _, grad = model.loss.value_and_grad_logits(y, outputs[-1])
        _, grads = model.run_backward(contexts, grad)
        triples = [(f"{i}/{n}", lay.params[n], grads[i][n]) for i, lay in enumerate(model.layers)
                   for n in lay.trainable_names()]
        assert any("/" in key.split("/", 1)[1] for key, _, _ in triples) == (name != "fcn")  # Branches weights

        def loss():
            out = model.run_forward(x, training=True, context=False, step=0)[0][-1]
            value = model.loss.value_and_grad(y, out, None)[0]
            for lay, n, arr in state:  # batch-norm statistics as they were
                lay.params[n] = arr.copy()
            return value

        for key, w, g in triples:
            idx = tuple(rng.integers(0, s) for s in w.shape)
            analytic, old = g[idx], w[idx]
            w[idx] = old + 1e-6
            up = loss()
            w[idx] = old - 1e-6
            down = loss()
            w[idx] = old
            numeric = (up - down) / 2e-6
            assert abs(numeric - analytic) <= 1e-5 * max(1.0, abs(numeric)), (key, numeric, analytic)


@pytest.mark.parametrize("name", ["resnet", "inception"])
def test_branch_networks_save_load_and_take_other_lengths(tmp_path, name):
    model = networks.build(name, (40, 3), 4, seed=0, **({"filters": (4, 8, 8)} if name == "resnet" else
                                                        {"filters": 2, "bottleneck": 2}))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x = np.random.default_rng(0).normal(size=(6, 40, 3)).astype(np.float32)
    model.fit(x, np.arange(6) % 4, epochs=1, verbose=0)
    path = tmp_path / "net.npz"
    model.save(path)
    from core import load_model
    again = load_model(path)
    np.testing.assert_allclose(again.predict(x), model.predict(x), rtol=1e-5, atol=1e-6)
    longer = networks.for_length(model, 57)
    assert longer.predict(np.zeros((2, 57, 3), np.float32)).shape == (2, 4)


def test_length_dependent_network_gives_a_clear_error():
    from core import Input, Sequential, layers
    flat = Sequential([Input(shape=(10, 1)), layers.Conv1D(2, 3), layers.Flatten(), layers.Dense(2)], seed=0)
    with pytest.raises(ShapeError, match="trained on series of 10 steps cannot take 12"):
        networks.for_length(flat, 12)


def test_regression_targets_are_refused():
    X = np.random.default_rng(0).normal(size=(20, 16, 1))
    targets = np.linspace(0.5, 9.5, 20)  # a @targetLabel file's y
    with pytest.raises(InputError, match="continuous values.*regression"):
        har.ActivityClassifier(epochs=1).fit(X, targets)
    # whole numbers stored as floats are class labels
    clf = har.ActivityClassifier(epochs=1).fit(X, np.arange(20) % 2 * 1.0)
    assert clf.classes_.tolist() == [0.0, 1.0]


def test_regression_targets_are_refused_by_every_classifier():
    import vision
    with pytest.raises(InputError, match="continuous values"):
        vision.ImageClassifier(epochs=1).fit(np.zeros((6, 8, 8)), np.linspace(0, 1, 6))


def test_class_weight_balanced_and_dict():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 16, 1))
    y = np.array(["rare"] * 4 + ["common"] * 36)
    clf = har.ActivityClassifier(epochs=1, class_weight="balanced")
    weights = clf._class_weight_indices(*np.unique(y, return_inverse=True))
    assert weights == {0: pytest.approx(40 / (2 * 36)), 1: pytest.approx(40 / (2 * 4))}
    clf = har.ActivityClassifier(epochs=1, class_weight={"rare": 5.0})
    assert clf._class_weight_indices(*np.unique(y, return_inverse=True)) == {1: 5.0}
    with pytest.raises(InputError, match="label 'missing', which is not in y"):
        har.ActivityClassifier(epochs=1, class_weight={"missing": 2.0}).fit(X, y)
    with pytest.raises(ConfigError, match="class_weight must be None, 'balanced' or a dict"):
        har.ActivityClassifier(epochs=1, class_weight="even").fit(X, y)


def test_class_weight_changes_what_is_learned():
    # labels unrelated to the series: what is learned is the prior, and weighting the rare class
    # 20 times makes the network predict it far more often on new series
    rng = np.random.default_rng(1)
    X, fresh = rng.normal(size=(60, 16, 1)), rng.normal(size=(200, 16, 1))
    y = np.where(rng.random(60) < 0.3, "a", "b")
    plain = har.ActivityClassifier(epochs=5, seed=0, normalize="channel").fit(X, y)
    tilted = har.ActivityClassifier(epochs=5, seed=0, normalize="channel", class_weight={"a": 20.0}).fit(X, y)
    assert (tilted.predict(fresh) == "a").mean() > (plain.predict(fresh) == "a").mean() + 0.3


def test_cross_validate_keeps_subjects_apart_including_the_inner_split():
    X, y, subjects = har.make_synthetic(seed=2, n_subjects=5, windows_per_activity=4,
                                        activities=("walking", "lying"))
    clf = har.ActivityClassifier(epochs=2, batch_size=16, validation_split=0.3, seed=0)
    out = har.cross_validate(clf, X, y, subjects, cv="loso", return_estimators=True)
    assert len(out["folds"]) == 5
    folds = har.group_folds(y, subjects, "loso")
    for (train, test), report, est in zip(folds, out["folds"], out["estimators"]):
        assert report["test_groups"] == np.unique(subjects[test]).tolist()
        assert not set(subjects[train]) & set(subjects[test])
        inner_train, inner_val = subjects[train][est.train_index_], subjects[train][est.validation_index_]
        assert len(inner_val) and not set(inner_train) & set(inner_val)  # the inner split is by subject too
        assert report["n_test"] == len(test)
    mean = out["mean"]
    assert mean["accuracy"] == pytest.approx(np.mean([r["accuracy"] for r in out["folds"]]))
    assert np.asarray(mean["confusion_matrix"]).sum() == len(y)
    assert not hasattr(clf, "model_")  # the given estimator is not fitted; each fold fits a clone
    three = har.cross_validate(clf, X, y, subjects, cv=3)
    assert len(three["folds"]) == 3 and sum(r["n_test"] for r in three["folds"]) == len(y)
    with pytest.raises(InputError, match="cv=9 folds need at least 9 groups"):
        har.cross_validate(clf, X, y, subjects, cv=9)
    with pytest.raises(InputError, match="'loso' or a number"):
        har.cross_validate(clf, X, y, subjects, cv="lopo")


def test_every_domain_classifier_takes_class_weight():
    import medical
    import vision
    for cls in (har.ActivityClassifier, vision.ImageClassifier, medical.ScanClassifier):
        clf = cls(class_weight="balanced")
        assert clf.get_params()["class_weight"] == "balanced"
        assert clf._class_weight_indices(np.array(["a", "b"]), np.array([0, 0, 0, 1])) == {
            0: pytest.approx(4 / 6), 1: pytest.approx(2.0)}


@pytest.mark.parametrize("network", ["resnet", "inception"])
def test_classifier_with_other_networks_saves_and_loads(tmp_path, network):
    X, y = cbf(4, seed=3, length=48)
    clf = har.ActivityClassifier(network=network, width=0.125, epochs=1, seed=0).fit(X, y)
    clf.save(tmp_path / "m.npz")
    again = har.ActivityClassifier.load(tmp_path / "m.npz")
    np.testing.assert_allclose(again.predict_proba(X), clf.predict_proba(X), rtol=1e-5, atol=1e-6)
    assert again.normalize_ == clf.normalize_ and again.get_params()["network"] == network


def test_gravity_triples_finds_accelerometers_only():
    from har.classifier import gravity_triples
    X, _, _ = har.make_synthetic(seed=0, n_subjects=3, windows_per_activity=3)
    assert gravity_triples(X) == [(0, 1, 2)]                       # m/s^2
    assert gravity_triples(X / 9.80665) == [(0, 1, 2)]             # in g
    assert gravity_triples(np.concatenate([X, X / 50], axis=2)) == [(0, 1, 2), (3, 4, 5)]  # + a gyroscope
    assert gravity_triples(X - X.mean(axis=(0, 1))) == []          # gravity removed
    assert gravity_triples(X[:, :, :2]) == []                      # not triples
    rng = np.random.default_rng(0)
    assert gravity_triples(rng.normal(size=(50, 30, 12))) == []    # e.g. 12 LPC coefficients
    clf = har.ActivityClassifier(epochs=1).fit(X, np.arange(len(X)) % 2)
    assert clf.sensor_triples_ == [(0, 1, 2)] and clf.normalize_ == "channel"


@pytest.mark.keras
@pytest.mark.slow
def test_default_budget_works_with_the_keras_engine():
    """The "auto" epoch budget counts the network's operations on the core twin of a Keras-trained model."""
    pytest.importorskip("keras")
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(16, 24, 2)).astype(np.float32), np.arange(16) % 2
    clf = har.ActivityClassifier(engine="keras", width=0.125, seed=0).fit(X, y)
    assert clf.schedule_["epochs"] >= 5 and clf.predict(X).shape == (16,)

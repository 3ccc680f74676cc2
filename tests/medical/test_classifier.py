"""medical.ScanClassifier: learning, save/load on raw files, bad input."""
import os

import numpy as np
import pytest

import medical
from core.exceptions import ConfigError, DataFileNotFoundError, DataFormatError, InputError, NotFittedError, ShapeError
from tests.medical.conftest import head_like, write_nifti

FAST = dict(shape=(12, 12, 12), filters=(4, 8), epochs=2, batch_size=8, validation_split=0.0, seed=0)


@pytest.fixture(scope="module")
def small_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("scans")
    return medical.read_manifest(medical.make_synthetic(root, n=8, shape=(20, 20, 20), seed=11))


def _blobs(n, size=12, seed=0):
    """Volumes (N, s, s, s) with a bright blob (label 1) or without (label 0)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(1.0, 0.1, size=(n, size, size, size)).astype(np.float32)
    y = np.arange(n) % 2
    for i in np.flatnonzero(y):
        c = rng.integers(3, size - 4, size=3)
        X[i, c[0]:c[0] + 2, c[1]:c[1] + 2, c[2]:c[2] + 2] += 2.0
    return X, y


@pytest.mark.slow
def test_learns_lesions_from_synthetic_files(tmp_path):
    manifest = medical.make_synthetic(tmp_path / "syn", n=48, shape=(28, 28, 28), seed=5)
    paths, labels = medical.read_manifest(manifest)
    train, test = np.arange(36), np.arange(36, 48)
    clf = medical.ScanClassifier(shape=(24, 24, 24), epochs=20, seed=0, cache_dir=tmp_path / "cache")
    clf.fit([paths[i] for i in train], labels[train])
    report = clf.evaluate([paths[i] for i in test], labels[test])
    assert report["accuracy"] >= 0.75, report
    assert report["roc_auc"] >= 0.8
    assert set(report["classes"]) == {"healthy", "lesion"}
    assert clf.history_["loss"][-1] < clf.history_["loss"][0]
    assert len(os.listdir(tmp_path / "cache")) == 48          # every scan read once, then kept


def test_learns_a_bright_blob_from_arrays():
    X, y = _blobs(40, size=10)
    clf = medical.ScanClassifier(shape=(10, 10, 10), filters=(4, 8), epochs=8, learning_rate=1e-2,
                                 validation_split=0.0, seed=0).fit(X[:28], y[:28])
    assert clf.history_["loss"][-1] < 0.5 * clf.history_["loss"][0]
    assert clf.score(X[28:], y[28:]) >= 0.9
    assert clf.predict_proba(X[28:]).shape == (12, 2)


@pytest.mark.parametrize("batch_norm", [True, False])
def test_convolutions_before_batch_norm_have_no_bias(batch_norm):
    """Batch norm removes each channel's mean, so a bias before it would only learn float
    rounding (Adam scales that up to whole steps); without batch norm the ReLU needs it."""
    from core.layers import BatchNormalization, Conv3D
    model = medical.conv3d_network((8, 8, 8, 1), 2, filters=(4, 8), batch_norm=batch_norm)
    convs = [(i, lay) for i, lay in enumerate(model.layers) if isinstance(lay, Conv3D)]
    assert len(convs) == 2
    for i, conv in convs:
        assert isinstance(model.layers[i + 1], BatchNormalization) == batch_norm
        assert conv.use_bias != batch_norm
        assert ("bias" in conv.params) != batch_norm


def test_save_load_predicts_raw_files_the_same(small_set, tmp_path):
    paths, labels = small_set
    clf = medical.ScanClassifier(normalize=("ct", 0, 2000), **FAST).fit(paths, labels)
    path = tmp_path / "model.npz"
    clf.save(path)
    loaded = medical.ScanClassifier.load(path)
    assert loaded.shape == (12, 12, 12) and loaded.normalize == ("ct", 0, 2000)
    assert loaded.filters == (4, 8)
    np.testing.assert_allclose(loaded.predict_proba(paths[:3]), clf.predict_proba(paths[:3]), rtol=1e-5, atol=1e-6)
    assert list(loaded.predict(paths)) == list(clf.predict(paths))
    assert set(loaded.predict(paths)) <= {"healthy", "lesion"}
    report = loaded.evaluate(paths, labels)
    assert {"accuracy", "macro_f1", "roc_auc", "confusion_matrix", "classes"} <= set(report)
    assert np.sum(report["confusion_matrix"]) == len(paths)


def test_file_and_array_input_agree(small_set):
    """A scan given as a file or as the array load_scan makes of it gives the same prediction."""
    paths, labels = small_set
    clf = medical.ScanClassifier(**FAST).fit(paths, labels)
    vols = np.stack([medical.load_scan(p, normalize=None) for p in paths[:1]])     # unnormalized, native grid
    assert vols.shape[1:4] != (12, 12, 12)
    np.testing.assert_allclose(clf.predict_proba(vols), clf.predict_proba(paths[:1]), rtol=1e-4, atol=1e-5)


def test_array_shapes_and_channels():
    X, y = _blobs(8, size=10)
    clf = medical.ScanClassifier(**FAST).fit(X, y)
    assert clf.input_shape_ == (12, 12, 12, 1)
    assert clf.predict(X[..., None]).shape == (8,)
    two = medical.ScanClassifier(**FAST).fit(np.stack([X, X], axis=-1), y)
    assert two.input_shape_ == (12, 12, 12, 2)
    with pytest.raises(ShapeError, match="2 channel"):
        two.predict(X)
    cropped = medical.ScanClassifier(shape_mode="crop_or_pad", **FAST).fit(X, y)
    assert cropped.predict_proba(X).shape == (8, 2)


@pytest.mark.filterwarnings("ignore::medical.ScanQualityWarning")
def test_bad_inputs(small_set, tmp_path):
    paths, labels = small_set
    clf = medical.ScanClassifier(**FAST)
    with pytest.raises(NotFittedError):
        clf.predict(paths)
    with pytest.raises(InputError, match="single path"):
        clf.fit(paths[0], labels[:1])
    with pytest.raises(InputError, match="mixes paths and arrays"):
        clf.fit([paths[0], np.zeros((4, 4, 4))], labels[:2])
    with pytest.raises(DataFileNotFoundError, match="missing.nii.gz"):
        clf.fit(paths[:3] + [str(tmp_path / "missing.nii.gz")], labels[:4])
    with pytest.raises(ShapeError, match=r"\(N, D, H, W\)"):
        clf.fit(np.zeros((4, 5, 5)), [0, 1, 0, 1])
    nan = np.ones((4, 6, 6, 6), np.float32)
    nan[0, 0, 0, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        clf.fit(nan, [0, 1, 0, 1])
    with pytest.raises(InputError, match="single class"):
        clf.fit(np.ones((4, 6, 6, 6)), [1, 1, 1, 1])
    with pytest.raises(InputError, match="numeric array"):
        clf.fit(np.array([{"a": 1}, {"b": 2}], dtype=object), [0, 1])
    # a file that is not NIfTI, named in the error
    bogus = tmp_path / "bogus.nii"
    bogus.write_text("not a scan")
    with pytest.raises(DataFormatError, match="bogus.nii"):
        clf.fit(paths[:3] + [str(bogus)], labels[:4])


@pytest.mark.parametrize("setting,value", [("shape", None), ("shape", (8, 8)), ("normalize", "ct"),
                                           ("shape_mode", "stretch"), ("filters", ()), ("augment", "yes"),
                                           ("max_shift", -1), ("volume", "last"), ("volume", -1), ("pooling", "sum")])
def test_bad_settings_raise_config_error(setting, value):
    X, y = _blobs(4, size=8)
    clf = medical.ScanClassifier(**{**FAST, setting: value})
    with pytest.raises(ConfigError, match=setting if setting != "pooling" else "pooling"):
        clf.fit(X, y)


def test_4d_files_follow_the_volume_setting(tmp_path):
    paths = []
    rng = np.random.default_rng(0)
    for i in range(4):
        series = np.stack([head_like((10, 10, 10), seed=i), rng.normal(size=(10, 10, 10)).astype(np.float32)], -1)
        paths.append(write_nifti(tmp_path / f"s{i}.nii.gz", series))
    with pytest.raises(InputError, match="volume="):
        medical.ScanClassifier(**FAST).fit(paths, [0, 1, 0, 1])
    clf = medical.ScanClassifier(volume=0, **FAST).fit(paths, [0, 1, 0, 1])
    assert clf.input_shape_ == (12, 12, 12, 1)
    both = medical.ScanClassifier(channels=True, **FAST).fit(paths, [0, 1, 0, 1])
    assert both.input_shape_ == (12, 12, 12, 2)

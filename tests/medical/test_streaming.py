"""ScanClassifier trains on scans that stay on disk: batches read through the
cache by background threads, the same weights as training from memory."""
import numpy as np
import pytest

import medical
from medical.streaming import ScanBatches, ScanVolumes

FAST = dict(shape=(12, 12, 12), filters=(4, 8), epochs=2, batch_size=4, seed=0)


@pytest.fixture(scope="module")
def scans(tmp_path_factory):
    root = tmp_path_factory.mktemp("stream")
    manifest = medical.make_synthetic(str(root / "scans"), n=12, seed=3)
    return medical.read_manifest(manifest)


@pytest.mark.parametrize("settings", [dict(), dict(validation_split=0.25, early_stopping=False)],
                         ids=["all", "with-validation"])
def test_streamed_fit_equals_in_memory_fit(scans, tmp_path, settings):
    paths, labels = scans
    memory = medical.ScanClassifier(**FAST, **settings, stream=False).fit(paths, labels)
    streamed = medical.ScanClassifier(**FAST, **settings, stream=True, cache_dir=str(tmp_path / "cache")).fit(
        paths, labels)
    for a, b in zip(memory.model_.get_weights(), streamed.model_.get_weights()):
        np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-7)
    assert memory.history_["loss"] == pytest.approx(streamed.history_["loss"], rel=1e-6)
    np.testing.assert_allclose(streamed.predict_proba(paths), memory.predict_proba(paths), rtol=1e-5, atol=1e-6)
    assert len(list((tmp_path / "cache").iterdir())) == len(paths)  # every scan preprocessed once, then cached
    # without a cache folder, a temporary one serves the fit and is gone after it
    temp = medical.ScanClassifier(**FAST, **settings, stream=True).fit(paths, labels)
    for a, b in zip(memory.model_.get_weights(), temp.model_.get_weights()):
        np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-7)
    assert getattr(temp, "_stream_cache", None) is None


def test_scan_volumes_read_on_demand(scans, tmp_path):
    paths, labels = scans
    s = dict(shape=(12, 12, 12))
    vols = ScanVolumes(paths, str(tmp_path), s)
    assert vols.shape == (len(paths), 12, 12, 12, 1) and len(vols[[1, 3]]) == 2
    np.testing.assert_array_equal(vols[[3, 1]].read(), medical.load_scans([paths[3], paths[1]], **s))
    batches = ScanBatches(vols, np.asarray(labels), 5, seed=7)
    assert len(batches) == 3 and [len(batches[i][0]) for i in range(3)] == [5, 5, 2]
    first = batches._order.copy()
    batches.on_epoch_end()
    assert not np.array_equal(first, batches._order)
    np.testing.assert_array_equal(first, np.random.default_rng([7, 2**20, 0]).permutation(len(paths)))

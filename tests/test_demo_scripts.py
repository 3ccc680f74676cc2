"""cnn.py and cnn_keras.py: they run end to end, and their networks are twins."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import cnn  # noqa: E402  (the script at the repository root)


def demo_networks():
    """The three demo networks, as the classifiers build them (input shapes of the demo data)."""
    import har
    import medical
    import vision
    return {
        "har": har.ActivityClassifier(seed=0).build_network((128, 3), 8),
        "vision": vision.ImageClassifier(seed=0).build_network((8, 8, 1), 10),
        "medical": medical.ScanClassifier(seed=0).build_network((32, 32, 32, 1), 2),
    }


def _run(script, *args, env=None):
    return subprocess.run([sys.executable, script, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=600, env=env)


def _table_rows(stdout):
    return [line for line in stdout.splitlines() if line.startswith("| ") and "domain" not in line]


@pytest.fixture(scope="module")
def quick_numpy_run():
    return _run("cnn.py", "--quick")


@pytest.mark.slow
def test_cnn_quick_runs_all_three_convolutions(quick_numpy_run):
    result = quick_numpy_run
    assert result.returncode == 0, result.stderr[-2000:]
    rows = _table_rows(result.stdout)
    assert [r.split("|")[2].strip() for r in rows] == ["Conv1D", "Conv2D", "Conv3D"]
    for row in rows:
        accuracy = float(row.split("|")[-2])
        assert 0.0 <= accuracy <= 1.0


@pytest.mark.slow
@pytest.mark.keras
def test_cnn_keras_quick_runs_the_same_tasks(quick_numpy_run):
    pytest.importorskip("keras")
    result = _run("cnn_keras.py", "--quick")
    assert result.returncode == 0, result.stderr[-2000:]
    rows = _table_rows(result.stdout)
    assert [r.split("|")[2].strip() for r in rows] == ["Conv1D", "Conv2D", "Conv3D"]
    ours = _table_rows(quick_numpy_run.stdout)
    for keras_row, our_row in zip(rows, ours):  # same data, split sizes and network size
        assert keras_row.split("|")[1:6] == our_row.split("|")[1:6]


def test_cnn_keras_without_keras_says_how_to_install(tmp_path):
    (tmp_path / "keras.py").write_text("raise ImportError('no keras here')\n")
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    result = _run("cnn_keras.py", env=env)
    assert result.returncode == 1
    assert 'pip install -e ".[test]"' in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_cnn_rejects_bad_arguments():
    result = _run("cnn.py", "--only", "audio")
    assert result.returncode == 2 and "invalid choice" in result.stderr
    assert _run("cnn.py", "--epochs", "0").returncode == 2


def test_cnn_refuses_a_plots_folder_it_cannot_make_before_training(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    result = _run("cnn.py", "--quick", "--plots", str(blocker / "pictures"))
    assert result.returncode == 2 and "--plots" in result.stderr and str(blocker) in result.stderr
    assert "training" not in result.stdout  # refused before any network trained


@pytest.mark.keras
def test_the_two_scripts_build_identical_networks():
    pytest.importorskip("keras")
    from core.keras_compat import to_keras
    for name, model in demo_networks().items():
        twin = to_keras(model)
        assert [type(layer).__name__ for layer in twin.layers] == [type(layer).__name__ for layer in model.layers], name
        assert twin.count_params() == model.count_params(), name
        assert [w.shape for w in twin.get_weights()] == [w.shape for w in model.get_weights()], name


@pytest.mark.keras
def test_weights_move_both_ways_with_identical_predictions():
    pytest.importorskip("keras")
    from core.keras_compat import to_keras
    rng = np.random.default_rng(0)
    for name, model in demo_networks().items():
        x = rng.normal(size=(3,) + model.input_shape[1:]).astype(np.float32)
        twin = to_keras(model)  # core -> Keras
        np.testing.assert_allclose(twin.predict(x, verbose=0), model.predict(x), rtol=1e-4, atol=1e-5,
                                   err_msg=f"{name}: core weights in Keras")
        # Keras -> core: fresh weights drawn on the Keras side
        fresh = [rng.normal(0, 0.1, w.shape).astype(np.float32) for w in twin.get_weights()]
        fresh = [np.abs(w) + 0.5 if "variance" in v.path else w for w, v in zip(fresh, twin.weights)]
        twin.set_weights(fresh)
        model.set_weights(twin.get_weights())
        np.testing.assert_allclose(model.predict(x), twin.predict(x, verbose=0), rtol=1e-4, atol=1e-5,
                                   err_msg=f"{name}: Keras weights in core")


def test_format_table_is_markdown():
    rows = [{"domain": "har", "test accuracy": 0.98765, "parameters": 1234}]
    table = cnn.format_table(rows).splitlines()
    assert table[0].startswith("| domain") and table[1].startswith("|--")
    assert "0.988" in table[2] and "1,234" in table[2]

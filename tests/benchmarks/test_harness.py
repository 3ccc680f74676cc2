"""Smoke test of the benchmark harness: it runs end to end on one tiny case and
prints the table it promises. No timing assertions (this is not a benchmark).

The children are started with ``--keep-openblas-env`` so the test never
changes the BLAS environment variables of this machine."""
import importlib.util
import json
import os
import subprocess
import sys

import pytest

from benchmarks.run import COLUMNS, SUMMARY_COLUMNS, schedule

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HAS_TORCH = importlib.util.find_spec("torch") is not None


def _harness(tmp_path, engines, env=None):
    out = tmp_path / "results.json"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--cases", "tiny", "--threads", "1", "--repeats", "1", "--quick",
         "--keep-openblas-env", "--engines", *engines, "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout, json.loads(out.read_text())


def _check_rows(stdout, data, engines):
    lines = stdout.splitlines()
    header = next(line for line in lines if line.startswith("case "))
    assert header.split() == list(COLUMNS)
    rows = data["results"]
    assert [r["engine"] for r in rows] == engines
    for r in rows:
        assert r["case"] == "tiny" and r["threads"] == 1
        for col in ("train_ms", "infer_ms", "train_gflops", "infer_gflops", "peak_rss_mb"):
            assert r[col] > 0, (col, r)
        # the row is printed: case, threads and engine open a line of the table
        assert any(line.split()[:3] == ["tiny", "1", r["engine"]] for line in lines)
    assert rows[0]["train_core_ms"] > 0 and rows[0]["infer_core_ms"] > 0
    assert any(line.startswith("cpu: ") for line in lines)
    assert any(line.startswith("numpy: ") and "BLAS" in line for line in lines)


@pytest.mark.slow
def test_harness_runs_tiny_case(tmp_path):
    engines = ["ours", "torch"] if HAS_TORCH else ["ours"]
    stdout, data = _harness(tmp_path, engines)
    _check_rows(stdout, data, engines)
    if HAS_TORCH:
        (summary,) = data["summary"]
        assert summary["train_ratio"] > 0 and summary["infer_ratio"] > 0
        assert "train ratio" in stdout and all(c.split()[0] in stdout for c in SUMMARY_COLUMNS)
        # issue 12's goals at one thread: a training and an inference verdict, printed
        assert sorted((v["goal"], v["threads"]) for v in data["goals"]) == [("infer", 1), ("train", 1)]
        assert "multi-core goals (issue 12): " in stdout
    assert data["machine"] is None  # one thread: no two-core probe


def test_harness_without_torch_prints_ours_alone(tmp_path):
    # a 'torch' that fails to import stands for a machine without PyTorch
    fake = tmp_path / "fake" / "torch"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('PyTorch is not installed here (test stand-in)')\n")
    env = dict(os.environ, PYTHONPATH=str(fake.parent))
    stdout, data = _harness(tmp_path, ["ours", "torch"], env=env)
    _check_rows(stdout, data, ["ours"])
    assert data["summary"] == []
    assert "torch: not available" in stdout


def test_each_case_is_measured_at_every_thread_count_before_the_next():
    # a case's speed-up compares runs seconds apart, not the two halves of a run
    assert schedule(["a", "b"], [1, 2]) == [("a", 1), ("a", 2), ("b", 1), ("b", 2)]
    assert schedule(["a"], [1, 2, 4]) == [("a", 1), ("a", 2), ("a", 4)]


@pytest.mark.slow
def test_harness_measures_case_by_case_and_tables_thread_by_thread(tmp_path):
    out = tmp_path / "results.json"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--cases", "tiny", "tutorial_b1", "--threads", "1", "2", "--repeats",
         "1", "--quick", "--keep-openblas-env", "--engines", "ours", "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    progress = [line for line in proc.stderr.splitlines() if line.startswith("[")]
    assert progress == ["[1 thread] tiny ...", "[2 threads] tiny ...",
                        "[1 thread] tutorial_b1 ...", "[2 threads] tutorial_b1 ..."]
    data = json.loads(out.read_text())
    rows = data["results"]
    assert [(r["case"], r["threads"]) for r in rows] == [("tiny", 1), ("tutorial_b1", 1), ("tiny", 2),
                                                         ("tutorial_b1", 2)]
    # two threads: the machine probed at both ends of the run, and the probes in the header
    assert set(data["machine"]) == {"start", "end"}
    assert all(v > 0 for probe in data["machine"].values() for v in probe.values())
    assert any(line.startswith("two threads against one") for line in proc.stdout.splitlines())

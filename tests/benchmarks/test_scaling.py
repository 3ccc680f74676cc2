"""The scaling table (benchmarks/scaling.py): it runs end to end on the tiny
case, its BLAS-line classifier and its Amdahl arithmetic are right."""
import json
import os
import subprocess
import sys

import pytest

from benchmarks.scaling import BlasSampler, amdahl, is_blas_line

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.parametrize("line,blas", [
    ('z = x @ self.params["kernel"]', True), ("np.matmul(cols.T, kmat, out=zb)", True), ("dk += cols @ dzc", True),
    ("w = np.dot(a, b)  # product", True), ("t = np.tensordot(a, b, 2)", True),
    ("@register_model_class", False), ("x = a + b  # a @ b", False), ("z2 += bias", False), ("", False)])
def test_blas_lines_are_recognised(line, blas):
    assert is_blas_line(line) is blas


def test_amdahl():
    assert amdahl(0.0, 16) == 1.0
    assert amdahl(1.0, 8) == pytest.approx(8.0)
    assert amdahl(0.5, 2) == pytest.approx(4 / 3)


def test_sampler_sees_no_engine_code_in_a_plain_loop():
    with BlasSampler() as s:
        total = 0
        for i in range(300000):
            total += i
    assert s.blas == 0.0 and s.other > 0


def test_sampler_skips_a_frame_between_two_lines():
    """Python 3.11 reports ``f_lineno`` None for a frame between two lines; the sampler's
    thread died on it (linecache compares the line number), so that sample is left out."""
    from types import SimpleNamespace

    from benchmarks.scaling import CORE_DIR
    code = SimpleNamespace(co_filename=os.path.join(CORE_DIR, "model.py"))
    sampler = BlasSampler()
    assert sampler._classify(SimpleNamespace(f_code=code, f_lineno=None, f_back=None)) is None
    outside = SimpleNamespace(co_filename=os.path.join(ROOT, "elsewhere.py"))
    assert sampler._classify(SimpleNamespace(f_code=outside, f_lineno=3, f_back=None)) is False


def test_scaling_table_runs_on_the_tiny_case(tmp_path):
    out = tmp_path / "s.json"
    env = dict(os.environ, PYTHONPATH=ROOT)
    proc = subprocess.run([sys.executable, "-m", "benchmarks.scaling", "--cases", "tiny", "--threads", "1", "2",
                           "--min-time", "0.02", "--repeats", "1", "--warmup", "1", "--json", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads(out.read_text())["results"]
    assert [r["threads"] for r in results] == [1, 2]
    for r in results:
        for kind in ("train", "infer"):
            assert r[kind]["samples_per_s"] > 0 and 0.0 <= r[kind]["blas_fraction"] <= 1.0
    assert "tiny" in proc.stdout and "BLAS share @1" in proc.stdout

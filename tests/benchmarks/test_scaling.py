"""The scaling table (benchmarks/scaling.py): it runs end to end on the tiny
case, its BLAS-line classifier and its Amdahl arithmetic are right."""
import json
import os
import subprocess
import sys

import pytest

from benchmarks import scaling
from benchmarks.cases import CASES
from benchmarks.scaling import BlasSampler, amdahl, is_blas_line, merge_rounds, round_speedups

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


def test_sampler_keeps_going_after_an_error_and_counts_its_time_as_skipped():
    class Broken:
        @property
        def f_code(self):
            raise RuntimeError("frame gone")

    sampler = BlasSampler()
    sampler._sample(Broken(), 0.25)
    sampler._sample(Broken(), 0.25)
    assert sampler.skipped == 0.5 and sampler.blas == sampler.other == 0.0
    assert sampler.errors == ["RuntimeError: frame gone"] * 2
    report = sampler.report()
    assert report["skipped_s"] == 0.5 and report["errors"] == sampler.errors


def _child_output(seconds, blas, other, skipped=0.0, errors=()):
    one = {"seconds": seconds, "blas_s": blas, "other_s": other, "skipped_s": skipped, "errors": list(errors)}
    return {"train": dict(one), "infer": dict(one)}


def test_rounds_merge_into_the_best_time_and_the_share_over_all_samples():
    case = CASES["tiny"]
    runs = [_child_output(0.02, 1.0, 3.0), _child_output(0.01, 3.0, 1.0, skipped=1.0, errors=["E: x"]),
            _child_output(0.04, 0.0, 1.0)]
    merged = merge_rounds(case, runs)["train"]
    assert merged["seconds"] == 0.01 and merged["samples_per_s"] == pytest.approx(case.batch / 0.01)
    assert merged["blas_fraction"] == pytest.approx(4.0 / 9.0)
    assert merged["skipped_share"] == pytest.approx(1.0 / 10.0)
    assert merged["sampler_errors"] == ["E: x"] and merged["rounds_seconds"] == [0.02, 0.01, 0.04]
    two = merge_rounds(case, [_child_output(0.01, 1, 1), _child_output(0.02, 1, 1), _child_output(0.01, 1, 1)])
    assert round_speedups(merged, two["train"]) == pytest.approx([2.0, 0.5, 4.0])


def test_rounds_alternate_the_order_of_the_thread_counts(monkeypatch, capsys):
    calls = []

    def fake_child(case, threads, args):
        calls.append((case, threads))
        return _child_output(0.01 / threads, 1.0, 1.0)

    monkeypatch.setattr(scaling, "run_child", fake_child)
    assert scaling.main(["--cases", "tiny", "tutorial_b1", "--threads", "2", "1", "--repeats", "3"]) == 0
    assert calls == [("tiny", 1), ("tiny", 2), ("tiny", 2), ("tiny", 1), ("tiny", 1), ("tiny", 2),
                     ("tutorial_b1", 1), ("tutorial_b1", 2), ("tutorial_b1", 2), ("tutorial_b1", 1),
                     ("tutorial_b1", 1), ("tutorial_b1", 2)]
    out = capsys.readouterr().out
    assert "speed-up 1->2 (rounds)" in out and "2.00-2.00" in out


def test_the_header_names_skipped_samples_and_sampler_errors(monkeypatch, capsys):
    def fake_child(case, threads, args):
        return _child_output(0.01, 1.0, 1.0, skipped=1.0 if threads == 2 else 0.0,
                             errors=["ValueError: odd frame"] if threads == 2 else ())

    monkeypatch.setattr(scaling, "run_child", fake_child)
    assert scaling.main(["--cases", "tiny", "--threads", "1", "2", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    assert "up to 33% of the sampled time could not be placed" in out
    assert "sampler errors (those samples left out): ValueError: odd frame" in out
    assert "1.00" in out.split("speed-up 1->2 (rounds)")[1]  # one round: its speed-up


def test_scaling_rejects_no_rounds(capsys):
    with pytest.raises(SystemExit):
        scaling.main(["--cases", "tiny", "--repeats", "0"])
    assert "--repeats must be positive" in capsys.readouterr().err


def test_scaling_table_runs_on_the_tiny_case(tmp_path):
    out = tmp_path / "s.json"
    env = dict(os.environ, PYTHONPATH=ROOT)
    proc = subprocess.run([sys.executable, "-m", "benchmarks.scaling", "--cases", "tiny", "--threads", "1", "2",
                           "--min-time", "0.02", "--repeats", "2", "--warmup", "1", "--json", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads(out.read_text())["results"]
    assert [r["threads"] for r in results] == [1, 2]
    for r in results:
        for kind in ("train", "infer"):
            assert r[kind]["samples_per_s"] > 0 and 0.0 <= r[kind]["blas_fraction"] <= 1.0
            assert len(r[kind]["rounds_seconds"]) == 2 and r[kind]["seconds"] == min(r[kind]["rounds_seconds"])
            assert r[kind]["sampler_errors"] == []
    assert "tiny" in proc.stdout and "BLAS share @1" in proc.stdout and "speed-up 1->2 (rounds)" in proc.stdout

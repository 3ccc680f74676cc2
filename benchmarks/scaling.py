"""Throughput against thread count, and the share of time outside BLAS.

Usage::

    python -m benchmarks.scaling                         # every case, 1 and 2 threads
    python -m benchmarks.scaling --threads 1 2 4 --cases conv3d_32_b8 --markdown out.md
    python -m benchmarks.scaling --quick                 # short timing windows

For each case, ``--repeats`` rounds each start one fresh child process per
thread count (``python -m benchmarks.scaling --child``), the counts in turn and
in the other order every second round (1, 2, then 2, 1, ...), so that the
children compared run seconds apart: on this project's 2-core VMs the same
step took up to 2x longer from one minute to the next, and a table whose
one-thread and two-thread figures came from runs a minute apart showed
LeNet-5's speed-up as 1.09x and 1.81x in two runs. Each child has
``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS``, ``MKL_NUM_THREADS`` and
``NUMPY_CNN_THREADS`` set to its count (the engine's own threads: a large
batch split into one shard per thread; see ``core/parallel.py``), times
``train_on_batch`` and ``predict`` (median of single calls over
``--min-time`` seconds after a warm-up) and reports samples per second. The
table shows each thread count's best round, and the speed-up between those
(the best of each, as ``python -m benchmarks`` keeps); ``speed-up (rounds)``
gives the lowest and highest of the rounds' own speed-ups, each from the two
counts' children of one round, run seconds apart (back to back where there
are two counts): a speed-up that a slow minute moved shows there as a wide
range.

How the time outside BLAS is measured (at each thread count, for the
process's main thread): a sampling profiler. While the timed calls run
again, a second Python thread wakes every 0.5 ms (the interpreter's switch
interval is lowered to 0.1 ms meanwhile, so a main thread holding the GIL
hands it over promptly) and looks at the main thread's innermost frame in
``core/``; the sample counts as BLAS when that source line is a matrix
product (``@``, ``matmul``, ``dot``, ``tensordot``, ``einsum``, ``core.blas``'s ``gemm``). Each sample
is weighted by the time since the previous one. It is an estimate: the few
element-wise steps that share a line with a product count as BLAS, and the
sampler's own wake-ups cost a few percent; on this project's 2-core machine,
under load, two runs gave fractions up to 10 points apart (tutorial b64
inference 0.15 and 0.24, Conv3D 32^3 training 0.16 and 0.26).

Reading the table for more cores (Amdahl): with ``f`` the BLAS share at one
thread, a run whose only parallel work is BLAS speeds up at most
``1 / ((1 - f) + f / n)`` on ``n`` cores; ``amdahl_8`` and ``amdahl_16`` give
that bound. ``p_measured`` is the parallel fraction implied by the measured
1 -> 2 thread speed-up ``S``: ``p = 2 (1 - 1 / S)``; the last columns project
it to 8 and 16 threads the same way (optimistic: memory bandwidth and
hand-off costs grow with the cores).
"""
import argparse
import datetime
import json
import linecache
import os
import re
import subprocess
import sys
import threading
import time

if __package__ in (None, ""):  # run as a script
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    __package__ = "benchmarks"

from benchmarks.cases import CASES, DEFAULT_CASES  # noqa: E402
from benchmarks.run import REPO_ROOT, child_env, cpu_model, format_table  # noqa: E402

BLAS_LINE = re.compile(r"\s@=?\s|\bmatmul\(|\bdot\(|\btensordot\(|\beinsum\(|\bgemm\(|\bgemm_into\(")
CORE_DIR = os.path.join(REPO_ROOT, "core") + os.sep


# ----------------------------------------------------------------- child side
def is_blas_line(text):
    """Whether a source line calls a matrix product (decorator lines are not)."""
    text = text.split("#", 1)[0].strip()
    if not text or text.startswith("@"):
        return False
    return bool(BLAS_LINE.search(text))


class BlasSampler:
    """Time-weighted sampling of where the main thread is: BLAS line of core/ or not.

    ``blas`` and ``other`` are the seconds attributed to each; ``skipped`` the seconds of
    samples that could not be placed (a frame between two lines, or an error while reading
    the frame: ``errors`` holds the first few, and the sampling goes on), so that a share
    computed from part of the run says so."""

    def __init__(self, interval=0.0005):
        self.interval = interval
        self.main = threading.main_thread().ident
        self.blas = self.other = self.skipped = 0.0
        self.errors = []
        self._stop = threading.Event()
        self._cache = {}

    def _classify(self, frame):
        while frame is not None:
            code = frame.f_code
            if code.co_filename.startswith(CORE_DIR):
                line = frame.f_lineno  # (read once: the frame runs on in the main thread)
                if line is None:  # a frame between two lines (Python 3.11 reports None): not counted
                    return None
                key = (code.co_filename, line)
                hit = self._cache.get(key)
                if hit is None:
                    hit = self._cache[key] = is_blas_line(linecache.getline(*key))
                return hit
            frame = frame.f_back
        return False  # outside the engine (the benchmark loop itself)

    def _sample(self, frame, seconds):
        try:
            where = self._classify(frame)
        except Exception as exc:  # a sampler that died here would report a share of the samples before
            if len(self.errors) < 5:
                self.errors.append(f"{type(exc).__name__}: {exc}")
            where = None
        if where:
            self.blas += seconds
        elif where is None:
            self.skipped += seconds
        else:
            self.other += seconds

    def _loop(self):
        last = time.perf_counter()
        while not self._stop.wait(self.interval):
            frame = sys._current_frames().get(self.main)
            now = time.perf_counter()
            if frame is not None:
                self._sample(frame, now - last)
            last = now

    def __enter__(self):
        self._old_switch = sys.getswitchinterval()
        sys.setswitchinterval(0.0001)
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        sys.setswitchinterval(self._old_switch)

    @property
    def fraction(self):
        total = self.blas + self.other
        return self.blas / total if total else float("nan")

    def report(self):
        """The sampled seconds, for a parent to add up over several runs."""
        return {"blas_s": self.blas, "other_s": self.other, "skipped_s": self.skipped, "errors": list(self.errors)}


def _time(fn, min_time, warmup):
    for _ in range(warmup):
        fn()
    ts, start = [], time.perf_counter()
    while len(ts) < 3 or time.perf_counter() - start < min_time:
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    ts.sort()
    return ts[len(ts) // 2]


def child(case_name, min_time, repeats, warmup):
    import numpy as np

    from core import optimizers

    from benchmarks.cases import build_ours
    case = CASES[case_name]
    model = build_ours(case, seed=0)
    model.compile(optimizer=optimizers.SGD(learning_rate=1e-3, momentum=0.9), loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((case.batch,) + tuple(case.input_shape), dtype=np.float32)
    y = rng.integers(0, case.n_classes, case.batch)
    fns = {"train": lambda: model.train_on_batch(x, y), "infer": lambda: model.predict(x, batch_size=case.batch)}
    out = {}
    for label, fn in fns.items():
        best = min(_time(fn, min_time, warmup if r == 0 else 1) for r in range(repeats))
        with BlasSampler() as sampler:
            _time(fn, max(min_time, 0.1), 0)  # at least ~200 samples
        out[label] = {"seconds": best, "samples_per_s": case.batch / best, "blas_fraction": sampler.fraction,
                      **sampler.report()}
    return out


# ---------------------------------------------------------------- parent side
def run_child(case, threads, args):
    env = child_env(threads)
    cmd = [sys.executable, "-m", "benchmarks.scaling", "--child", case, "--min-time", str(args.min_time),
           "--repeats", "1", "--warmup", str(args.warmup)]
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=args.timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{case} at {threads} thread(s) failed: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def merge_rounds(case, runs):
    """One thread count's result from its rounds (``child`` outputs, in round order): the best
    round's time and rate, the BLAS share over all the rounds' samples, the share of sampled
    time that could not be placed, the sampler's errors, and every round's time."""
    out = {}
    for kind in runs[0]:
        seconds = [r[kind]["seconds"] for r in runs]
        blas = sum(r[kind]["blas_s"] for r in runs)
        other = sum(r[kind]["other_s"] for r in runs)
        skipped = sum(r[kind]["skipped_s"] for r in runs)
        sampled = blas + other + skipped
        out[kind] = {"seconds": min(seconds), "samples_per_s": case.batch / min(seconds),
                     "blas_fraction": blas / (blas + other) if blas + other else float("nan"),
                     "skipped_share": skipped / sampled if sampled else float("nan"),
                     "sampler_errors": sorted({e for r in runs for e in r[kind]["errors"]}),
                     "rounds_seconds": seconds}
    return out


def round_speedups(base, other):
    """Speed-ups ``base / other`` of each round (the two counts' children of that round)."""
    return [b / o for b, o in zip(base["rounds_seconds"], other["rounds_seconds"])]


def amdahl(f, n):
    return 1.0 / ((1.0 - f) + f / n)


def _rate(v):
    return f"{v:.0f}" if v >= 100 else f"{v:.3g}"


def rows_for(results, threads):
    """Table rows: one per (case, kind), throughput at each thread count and the Amdahl columns."""
    rows = []
    base = threads[0]
    two = 2 if 2 in threads else None
    for case in dict.fromkeys(r["case"] for r in results):
        for kind in ("train", "infer"):
            per = {r["threads"]: r[kind] for r in results if r["case"] == case}
            row = [case, kind] + [_rate(per[t]["samples_per_s"]) for t in threads]
            row += [f"{per[t]['samples_per_s'] / per[base]['samples_per_s']:.2f}" for t in threads[1:]]
            for t in threads[1:]:
                ups = round_speedups(per[base], per[t])  # (one per round: --repeats >= 1)
                row.append(f"{min(ups):.2f}-{max(ups):.2f}" if len(ups) > 1 else f"{ups[0]:.2f}")
            row += [f"{per[t]['blas_fraction']:.2f}" for t in threads]
            f = per[base]["blas_fraction"] if base == 1 else float("nan")
            row += [f"{amdahl(f, 8):.2f}", f"{amdahl(f, 16):.2f}"]
            if base == 1 and two:
                s = per[two]["samples_per_s"] / per[base]["samples_per_s"]
                p = max(0.0, min(1.0, 2 * (1 - 1 / s)))
                row += [f"{p:.2f}", f"{amdahl(p, 8):.2f}", f"{amdahl(p, 16):.2f}"]
            else:
                row += ["", "", ""]
            rows.append(row)
    return rows


def header_for(threads):
    return (["case", "kind"] + [f"samples/s @{t}" for t in threads]
            + [f"speed-up {threads[0]}->{t}" for t in threads[1:]]
            + [f"speed-up {threads[0]}->{t} (rounds)" for t in threads[1:]]
            + [f"BLAS share @{t}" for t in threads]
            + ["amdahl_8 (BLAS only)", "amdahl_16 (BLAS only)", "p_measured", "proj. 8", "proj. 16"])


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.scaling", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="thread counts (default: 1 2)")
    p.add_argument("--cases", nargs="+", default=None, metavar="CASE",
                   help=f"cases (default: {', '.join(DEFAULT_CASES)})")
    p.add_argument("--repeats", type=int, default=3,
                   help="rounds per case, each one child per thread count; the best round is kept (default 3)")
    p.add_argument("--min-time", type=float, default=None, help="seconds per timed run (default 0.5; quick 0.15)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--quick", action="store_true", help="short runs: 0.15 s, 2 rounds")
    p.add_argument("--timeout", type=float, default=600, help="seconds allowed per child")
    p.add_argument("--markdown", metavar="PATH", help="also write the table as Markdown")
    p.add_argument("--json", metavar="PATH", help="also write the raw results as JSON")
    p.add_argument("--child", metavar="CASE", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.min_time is None:
        args.min_time = 0.15 if args.quick else 0.5
    if args.quick and args.repeats == 3:
        args.repeats = 2
    if args.child:
        print(json.dumps(child(args.child, args.min_time, args.repeats, args.warmup)))
        return 0
    cases = args.cases or DEFAULT_CASES
    unknown = [c for c in cases if c not in CASES]
    if unknown:
        p.error(f"unknown case(s) {unknown}; valid: {sorted(CASES)}")
    threads = sorted(set(args.threads))
    if threads[0] < 1 or args.repeats < 1:
        p.error("--threads and --repeats must be positive")
    results = []
    for name in cases:
        runs = {t: [] for t in threads}
        for r in range(args.repeats):
            for t in (threads if r % 2 == 0 else threads[::-1]):
                print(f"[{t} thread{'s' if t > 1 else ''}] {name}, round {r + 1} of {args.repeats} ...",
                      file=sys.stderr, flush=True)
                runs[t].append(run_child(name, t, args))
        results.extend({"case": name, "threads": t, **merge_rounds(CASES[name], runs[t])} for t in threads)
    head = [f"date: {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
            f"cpu: {cpu_model()} ({os.cpu_count()} logical cores)",
            "load average (1, 5, 15 min) at the end: " + ", ".join(f"{v:.2f}" for v in os.getloadavg()),
            "engine threads (NUMPY_CNN_THREADS): the thread count; "
            f"timing: best of {args.repeats} rounds (one child per thread count each, the order alternating), "
            f"each the median of single calls over >= {args.min_time} s"]
    shares = [r[k]["skipped_share"] for r in results for k in ("train", "infer")]
    skipped = max((v for v in shares if v == v), default=0.0)  # (NaN: nothing sampled)
    if skipped > 0.01:
        head.append(f"BLAS share: up to {skipped:.0%} of the sampled time could not be placed and is left out")
    errors = sorted({e for r in results for k in ("train", "infer") for e in r[k]["sampler_errors"]})
    if errors:
        head.append("sampler errors (those samples left out): " + "; ".join(errors))
    rows = rows_for(results, threads)
    table = format_table(header_for(threads), rows)
    print("\n".join(head) + "\n\n" + table)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write("\n".join(f"- {h}" for h in head) + "\n\n"
                    + format_table(header_for(threads), rows, markdown=True) + "\n")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"header": head, "results": results}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Time the NumPy engine against PyTorch (CPU) on the cases of issue 8.

After the tables, the multi-core goals of issue 12 are checked (``benchmarks.goals``); a run
with two threads or more also measures, at its start and its end, what a second core gives
to memory-bound and to compute-bound work on the machine alone (``benchmarks.machine``),
since the engines' speed-ups cannot beat the machine's.

Usage::

    python -m benchmarks                         # every case, 1 and 2 threads, 3 repeats
    python -m benchmarks --threads 1 --cases tutorial_b1 tutorial_b64 --repeats 5
    python -m benchmarks --quick                 # short timing windows, for a first look
    python benchmarks/run.py --engines ours      # our engine alone (also the fallback without PyTorch)

How it measures: case by case, each at every thread count before the next case
(so that a case's speed-up from one to two threads compares runs seconds apart,
not the two halves of a run minutes apart: on this project's 2-core VM the same
step took 1.5x longer from one minute to the next), and for every (case, thread
count) pair it starts one fresh
``python`` per engine (``benchmarks.worker``), with ``NUMPY_CNN_THREADS`` (our engine), ``OMP_NUM_THREADS``,
``OPENBLAS_NUM_THREADS`` and ``MKL_NUM_THREADS`` set in that child's
environment (and ``torch.set_num_threads`` in PyTorch's). Both children build
their model and data and wait; the parent then asks them in turn for one run
each, alternating which goes first, ``--repeats`` times, so the two engines
are measured in the same time window but never at the same moment. A run
warms up, then times single calls for at least ``--min-time`` seconds and
reports the median per call; the table shows the best (lowest) median over
the runs. The CPU time of the child per call (mean over the timed calls,
best run) is reported too (``*_cpu_ms``): at 1 thread it is less disturbed
than the wall-clock time by other processes sharing the cores. Peak memory
is the child's ``ru_maxrss``, also shown as the growth over the RSS the child
had after its imports and one step of a tiny network of the same rank (which
loads the library code), both at the end and right after the training runs.

This machine's environment sets ``OPENBLAS_CORETYPE`` and ``OPENBLAS_L2_SIZE``
(a workaround for old OpenBLAS builds) which make a current NumPy pick a
slower kernel; the children run with both unset unless ``--keep-openblas-env``
is given. The BLAS that NumPy actually uses is printed (threadpoolctl).
"""
import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

if __package__ in (None, ""):  # run as a script: python benchmarks/run.py
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    __package__ = "benchmarks"

from benchmarks import machine  # noqa: E402
from benchmarks.cases import CASES, DEFAULT_CASES, forward_flops  # noqa: E402
from benchmarks.goals import goals_table, verdicts  # noqa: E402
from core import config  # noqa: E402

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMPY_CNN_THREADS")
SLOW_BLAS_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


def child_env(threads, keep_openblas_env=False):
    """The environment of a timed child process: every thread variable set to ``threads``,
    ``SLOW_BLAS_VARS`` removed unless ``keep_openblas_env`` (see the module docstring), and
    the repository first on ``PYTHONPATH``."""
    env = dict(os.environ)
    for var in THREAD_VARS:
        env[var] = str(threads)
    if not keep_openblas_env:
        for var in SLOW_BLAS_VARS:
            env.pop(var, None)
    env["PYTHONPATH"] = REPO_ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env

#: columns of the per-engine table, in order (the smoke test checks them)
COLUMNS = ("case", "threads", "engine", "train_ms", "train_cpu_ms", "train_gflops", "infer_ms", "infer_cpu_ms",
           "infer_gflops", "peak_rss_mb", "train_rss_delta_mb", "rss_delta_mb")


class WorkerError(RuntimeError):
    def __init__(self, message, kind="other"):
        super().__init__(message)
        self.kind = kind


class Worker:
    """One child process timing one engine on one case at one thread count."""

    def __init__(self, engine, case, threads, timing, keep_openblas_env=False, alt_core=None):
        env = child_env(threads, keep_openblas_env)
        if alt_core:
            env["BENCH_ALT_CORE"] = os.path.abspath(alt_core)
        self.engine = engine
        self._stderr = tempfile.TemporaryFile(mode="w+")
        cmd = [sys.executable, "-m", "benchmarks.worker", engine, case, "--threads", str(threads),
               "--min-time", str(timing["min_time"]), "--min-iters", str(timing["min_iters"]),
               "--warmup", str(timing["warmup"])]
        self.proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self._stderr, text=True, bufsize=1)
        msg = self._read()
        if msg.get("event") != "ready":
            self.close()
            raise WorkerError(msg.get("message", "no ready message"), msg.get("kind", "other"))
        self.info = msg["info"]

    def _stderr_tail(self):
        self._stderr.seek(0)
        return self._stderr.read()[-2000:]

    def _read(self):
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait()
            raise WorkerError(f"{self.engine} worker exited (code {self.proc.returncode}); stderr:\n"
                              f"{self._stderr_tail()}")
        try:
            return json.loads(line)
        except json.JSONDecodeError:
            raise WorkerError(f"{self.engine} worker printed {line!r}; stderr:\n{self._stderr_tail()}") from None

    def run(self):
        self.proc.stdin.write("run\n")
        self.proc.stdin.flush()
        msg = self._read()
        if msg.get("event") != "run":
            raise WorkerError(f"{self.engine} worker answered {msg}")
        return msg

    def finish(self):
        self.proc.stdin.write("quit\n")
        self.proc.stdin.flush()
        msg = self._read()
        self.close()
        return msg

    def close(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
                self.proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        self._stderr.close()


def measure(case_name, threads, engines, repeats, timing, keep_openblas_env=False, log=print, alt_core=None):
    """Time ``engines`` on one case; returns ``{engine: row dict}`` and ``{engine: info}``.

    An engine whose child cannot import its framework is left out (with a note
    in ``info[engine]["skipped"]``)."""
    workers, infos = {}, {}
    try:
        for eng in engines:
            try:
                workers[eng] = Worker(eng, case_name, threads, timing, keep_openblas_env, alt_core)
                infos[eng] = workers[eng].info
            except WorkerError as exc:
                if exc.kind == "import":
                    infos[eng] = {"skipped": str(exc)}
                    log(f"  [{eng}] skipped: {exc}")
                    continue
                raise
        runs = {eng: [] for eng in workers}
        order = list(workers)
        for r in range(repeats):
            for eng in (order if r % 2 == 0 else order[::-1]):
                runs[eng].append(workers[eng].run())
                time.sleep(0.05)  # let the other engine's idle threads go to sleep
        finals = {eng: workers[eng].finish() for eng in list(workers)}
    finally:
        for w in workers.values():
            if w.proc.poll() is None:
                w.close()

    counts = {eng: info["params"] for eng, info in infos.items() if "params" in info}
    if len(set(counts.values())) > 1:
        log(f"  WARNING: the engines' networks differ in size: {counts} parameters")
    case = CASES[case_name]
    fwd = forward_flops(case)
    rows = {}
    for eng, rs in runs.items():
        best = {label: min(r["times"][label] for r in rs) for label in rs[0]["times"]}
        base = infos[eng]["baseline_rss_kb"]
        peak = finals[eng]["maxrss_kb"]
        train_peak = rs[0].get("rss_after_train_kb") or peak
        row = {"case": case_name, "threads": threads, "engine": eng,
               "train_ms": best["train"] * 1e3, "train_gflops": 3 * fwd / best["train"] / 1e9,
               "infer_ms": best["infer"] * 1e3, "infer_gflops": fwd / best["infer"] / 1e9,
               "train_cpu_ms": best["train_cpu"] * 1e3, "infer_cpu_ms": best["infer_cpu"] * 1e3,
               "peak_rss_mb": peak / 1024, "train_rss_delta_mb": (train_peak - base) / 1024,
               "rss_delta_mb": (peak - base) / 1024,
               "train_core_ms": best["train_core"] * 1e3 if "train_core" in best else None,
               "infer_core_ms": best["infer_core"] * 1e3 if "infer_core" in best else None,
               "runs": [r["times"] for r in rs], "iters": [r["iters"] for r in rs]}
        rows[eng] = row
    return rows, infos


# ------------------------------------------------------------------ output
def _fmt(v, digits=3):
    if v is None:
        return "-"
    if isinstance(v, float):
        if v == 0:
            return "0"
        mag = abs(v)
        return f"{v:.{digits}g}" if mag < 10 ** digits else f"{v:.0f}"
    return str(v)


def format_table(header, rows, markdown=False):
    """Rows of strings under ``header``, aligned (or as a Markdown table)."""
    cells = [list(map(str, header))] + [[_fmt(v) for v in r] for r in rows]
    if markdown:
        lines = ["| " + " | ".join(cells[0]) + " |", "|" + "|".join("---" for _ in header) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in cells[1:]]
        return "\n".join(lines)
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    out = ["  ".join(c.rjust(w) if i > 2 else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths)))
           for r in cells]
    out.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(out)


def engine_table(results, markdown=False):
    """The per-engine table: one row per (case, threads, engine) with ``COLUMNS``."""
    rows = [[r[c] for c in COLUMNS] for r in results]
    return format_table(COLUMNS, rows, markdown)


SUMMARY_COLUMNS = ("case", "threads", "train ours ms", "train ours (no validation) ms", "train torch ms",
                   "train ratio", "train cpu ratio", "goal", "infer ours ms", "infer torch ms", "infer ratio",
                   "infer cpu ratio", "train mem ours MB", "train mem torch MB", "mem ratio")


def _ratios(case_name, threads, mine, o, t):
    case = CASES[case_name]
    goal = case.goal_train if threads == 1 and case.goal_train else None
    tr = o["train_ms"] / t["train_ms"]
    ir = o["infer_ms"] / t["infer_ms"]
    mr = o["train_rss_delta_mb"] / t["train_rss_delta_mb"] if t["train_rss_delta_mb"] > 0 else None
    return {"case": case_name, "threads": threads, "engine": mine, "train_ours": o["train_ms"],
            "train_ours_core": o["train_core_ms"], "train_torch": t["train_ms"], "train_ratio": tr,
            "train_cpu_ratio": o["train_cpu_ms"] / t["train_cpu_ms"], "goal": goal,
            "infer_ours": o["infer_ms"], "infer_torch": t["infer_ms"], "infer_ratio": ir,
            "infer_cpu_ratio": o["infer_cpu_ms"] / t["infer_cpu_ms"],
            "mem_ours": o["train_rss_delta_mb"], "mem_torch": t["train_rss_delta_mb"], "mem_ratio": mr,
            "train_ok": None if goal is None else tr <= goal, "infer_ok": ir <= case.goal_infer,
            "mem_ok": None if case.goal_memory is None or mr is None else mr <= case.goal_memory}


def summary_rows(results):
    """Ratios ours / PyTorch per (case, threads) (and alt / PyTorch when an
    alternative core was timed); empty where PyTorch was not run."""
    by = {}
    for r in results:
        by.setdefault((r["case"], r["threads"]), {})[r["engine"]] = r
    return [_ratios(case_name, threads, mine, d[mine], d["torch"])
            for (case_name, threads), d in by.items() for mine in ("ours", "alt") if mine in d and "torch" in d]


def summary_table(results, markdown=False):
    rows = []
    for s in summary_rows(results):
        goal = "-" if s["goal"] is None else f"<= {s['goal']:g} ({'met' if s['train_ok'] else 'MISSED'})"
        label = s["case"] if s["engine"] == "ours" else f"{s['case']} (alt)"
        rows.append([label, s["threads"], s["train_ours"], s["train_ours_core"], s["train_torch"],
                     s["train_ratio"], s["train_cpu_ratio"], goal, s["infer_ours"], s["infer_torch"],
                     s["infer_ratio"], s["infer_cpu_ratio"],
                     s["mem_ours"], s["mem_torch"], s["mem_ratio"]])
    return format_table(SUMMARY_COLUMNS, rows, markdown) if rows else ""


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe(infos_seen, keep_openblas_env, probes=None):
    """Header lines: date, CPU, Python, NumPy + BLAS, PyTorch, and ``probes`` (``{"start": ...,
    "end": ...}`` of ``benchmarks.machine.probe``) where the run took them."""
    lines = [f"date: {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}",
             f"cpu: {cpu_model()} ({os.cpu_count()} logical cores)",
             f"python: {platform.python_version()}",
             "load average (1, 5, 15 min) at the end: " + ", ".join(f"{v:.2f}" for v in os.getloadavg())]
    ours = next((i for i in infos_seen.get("ours", []) if "blas" in i), None)
    if ours:
        blas = "; ".join(f"{b.get('library', '?')}: {b['internal_api']} {b['version']}, kernel {b['architecture']}, "
                         f"{b['num_threads']} thread(s) ({b['threading_layer']})" for b in ours["blas"]) or "none found"
        lines.append(f"numpy: {ours['numpy']}, BLAS: {blas}")
    torch_info = next((i for i in infos_seen.get("torch", []) if "torch" in i), None)
    if torch_info:
        lines.append(f"torch: {torch_info['torch']} (oneDNN {'on' if torch_info['mkldnn'] else 'off'})")
    skipped = next((i["skipped"] for i in infos_seen.get("torch", []) if "skipped" in i), None)
    if skipped:
        lines.append(f"torch: not available ({skipped}); our engine alone")
    env = "kept as set" if keep_openblas_env else "unset in the children"
    lines.append(f"OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE: {env}")
    l2 = config.l2_cache_bytes()
    lines.append(f"our column blocks (core.config.block_bytes): {config.block_bytes() >> 10} KB "
                 f"(L2 cache a CPU: {f'{l2 >> 10} KB' if l2 else 'unknown'})")
    if probes:
        lines.append("two threads against one, the machine alone (benchmarks.machine; 2x: no slowdown): "
                     + "; ".join(f"at the {when} {machine.describe(result)}" for when, result in probes.items()))
    return lines


def schedule(cases, threads):
    """The ``(case, thread count)`` pairs in the order they are measured: each case at every
    thread count before the next case (see the module docstring)."""
    return [(name, t) for name in cases for t in threads]


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="thread counts (default: 1 2)")
    p.add_argument("--cases", nargs="+", default=None, metavar="CASE",
                   help=f"cases to run (default: all of {', '.join(DEFAULT_CASES)}; also 'tiny')")
    p.add_argument("--engines", nargs="+", default=["ours", "torch"], choices=("ours", "torch"))
    p.add_argument("--alt-core", metavar="DIR",
                   help="also time our engine imported from DIR/core (a copy with a proposed change), "
                        "as engine 'alt', alternating with the others")
    p.add_argument("--repeats", type=int, default=3, help="runs per engine; the best median is kept (default 3)")
    p.add_argument("--min-time", type=float, default=None, help="seconds timed per function and run (default 0.5)")
    p.add_argument("--quick", action="store_true", help="short runs (0.05 s, 1 warm-up call): a first look")
    p.add_argument("--keep-openblas-env", action="store_true",
                   help="leave OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE as set (slower NumPy here)")
    p.add_argument("--json", metavar="PATH", help="also write all results as JSON")
    p.add_argument("--markdown", metavar="PATH", help="also write the tables as Markdown")
    args = p.parse_args(argv)

    cases = args.cases or DEFAULT_CASES
    unknown = [c for c in cases if c not in CASES]
    if unknown:
        p.error(f"unknown case(s) {unknown}; valid: {sorted(CASES)}")
    if args.repeats < 1 or any(t < 1 for t in args.threads):
        p.error("--repeats and --threads must be positive")
    timing = {"min_time": 0.05 if args.quick else 0.5, "min_iters": 2 if args.quick else 3,
              "warmup": 1 if args.quick else 2}
    if args.min_time is not None:
        timing["min_time"] = args.min_time
    engines = list(dict.fromkeys(args.engines))
    if args.alt_core:
        if not os.path.isfile(os.path.join(args.alt_core, "core", "__init__.py")):
            p.error(f"--alt-core: {args.alt_core} holds no core/ package")
        engines.insert(1, "alt")

    # the machine's own two-core speed-ups, at both ends of a run that uses two threads or more
    probes = {"start": machine.probe()} if max(args.threads) > 1 else None
    results, infos_seen = [], {}
    for name, threads in schedule(cases, args.threads):
        print(f"[{threads} thread{'s' if threads > 1 else ''}] {name} ...", file=sys.stderr, flush=True)
        rows, infos = measure(name, threads, engines, args.repeats, timing, args.keep_openblas_env,
                              log=lambda m: print(m, file=sys.stderr), alt_core=args.alt_core)
        for eng, info in infos.items():
            infos_seen.setdefault(eng, []).append(info)
        if "torch" in engines and "torch" not in rows:
            engines = [e for e in engines if e != "torch"]  # no PyTorch here: stop trying
        results.extend(rows[e] for e in ("ours", "alt", "torch") if e in rows)

    results.sort(key=lambda r: (args.threads.index(r["threads"]), cases.index(r["case"])))  # as tables show them
    if probes:
        probes["end"] = machine.probe()
    header = describe(infos_seen, args.keep_openblas_env, probes)
    print("\n".join(header))
    print()
    print(engine_table(results))
    summ = summary_table(results)
    if summ:
        print()
        print("ours / PyTorch (ratios > 1: we are slower; train mem = peak RSS growth over the post-import baseline)")
        print(summ)
    title, goals = goals_table(summary_rows(results))
    if goals:
        print()
        print(title)
        print(goals)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"header": header, "results": results, "summary": summary_rows(results),
                       "goals": verdicts(summary_rows(results)), "machine": probes,
                       "infos": infos_seen, "timing": timing, "repeats": args.repeats}, f, indent=1)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write("\n".join(f"- {h}" for h in header) + "\n\n" + engine_table(results, markdown=True) + "\n")
            if summ:
                f.write("\n" + summary_table(results, markdown=True) + "\n")
            if goals:
                f.write(f"\n{title}\n\n" + goals_table(summary_rows(results), markdown=True)[1] + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

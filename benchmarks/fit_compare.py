"""What ``vision_fit`` and ``scan_fit`` share: each engine's fit in a fresh process with
the thread count set everywhere, runs of the two engines alternating, and the table.

A benchmark module using it defines ``worker(args)``, which prints one line
``RESULT {json}`` with at least ``fit_s``, ``epochs`` and ``accuracy``, and
calls ``compare(module, args, extra)`` from its ``main``.
"""
import argparse
import json
import subprocess
import sys
import time

from .run import REPO_ROOT, child_env


def add_arguments(p):
    """The options every fit comparison takes."""
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--engines", nargs="+", default=["ours", "torch"], choices=["ours", "torch"])
    p.add_argument("--json", help="also write the results here")
    p.add_argument("--worker", choices=["ours", "torch"], help=argparse.SUPPRESS)


def spawn(module, engine, threads, extra):
    """Run ``python -m module --worker engine --threads threads *extra`` with every thread
    variable set to ``threads``; its ``RESULT`` as a dict."""
    cmd = [sys.executable, "-m", module, "--worker", engine, "--threads", str(threads), *extra]
    proc = subprocess.run(cmd, env=child_env(threads), capture_output=True, text=True, cwd=REPO_ROOT)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode or not lines:
        raise SystemExit(f"{engine} worker failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def compare(module, args, extra):
    """Each engine at each thread count, ``args.repeats`` times (alternating), the best fit kept;
    prints the table and writes ``args.json``. ``extra``: the worker's other arguments."""
    rows = []
    for threads in args.threads:
        best = {}
        for r in range(args.repeats):
            order = args.engines if r % 2 == 0 else args.engines[::-1]
            for engine in order:
                res = spawn(module, engine, threads, extra)
                print(f"  {engine} {threads} thread(s), run {r + 1}: fit {res['fit_s']:.1f} s, "
                      f"{res['epochs']} epoch(s), test accuracy {res['accuracy']:.4f}", flush=True)
                if engine not in best or res["fit_s"] < best[engine]["fit_s"]:
                    best[engine] = res
        for engine, res in best.items():
            rows.append({"engine": engine, "threads": threads, **res,
                         "s_per_epoch": res["fit_s"] / max(res["epochs"], 1)})
    print("\n| threads | engine | epochs | fit (s) | s/epoch | test accuracy | ratio ours/PyTorch |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        other = next((o for o in rows if o["threads"] == row["threads"] and o["engine"] == "torch"), None)
        ratio = (f"{row['s_per_epoch'] / other['s_per_epoch']:.2f}" if other and row["engine"] == "ours" else "")
        print(f"| {row['threads']} | {row['engine']} | {row['epochs']} | {row['fit_s']:.1f} | "
              f"{row['s_per_epoch']:.2f} | {row['accuracy']:.4f} | {ratio} |")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"date": time.strftime("%Y-%m-%d"), "args": {k: v for k, v in vars(args).items()
                                                                  if k != "worker"}, "rows": rows}, fh, indent=1)
    return rows

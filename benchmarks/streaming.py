"""Training ScanClassifier on many scans: streamed from the cache, or loaded into memory.

    python -m benchmarks.streaming --scans 1000 --shape 64 --epochs 1 --workdir /tmp/stream-bench

Writes ``--scans`` synthetic scans (``medical.make_synthetic``) into
``--workdir`` (kept, so a rerun reuses them), fills a ``ScanCache`` with their
preprocessed ``shape``^3 volumes, then times one fit of ``--epochs`` for each
route, each in a fresh process: ``stream=True`` (batches read from the cache
by a background thread) and ``stream=False`` (every volume loaded into one
array first). Reports the wall time of the fit, the time per epoch and the
process's peak resident memory (``ru_maxrss``) next to its memory after its
imports. Nothing here is part of the test suite.
"""
import argparse
import json
import os
import subprocess
import sys
import time

CHILD = r"""
import json, resource, sys, time
import medical
args = json.loads(sys.argv[1])
paths, labels = medical.read_manifest(args["manifest"])
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
clf = medical.ScanClassifier(shape=args["shape"], epochs=args["epochs"], batch_size=args["batch_size"],
                             stream=args["stream"], cache_dir=args["cache"], seed=0)
t0 = time.perf_counter()
clf.fit(paths, labels)
fit_s = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"fit_s": fit_s, "peak_mb": peak / 1024, "base_mb": base / 1024,
                  "epochs": clf.epochs_trained_, "loss": clf.history_["loss"][-1]}))
"""


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scans", type=int, default=1000)
    p.add_argument("--shape", type=int, default=64)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--workdir", default="stream-bench")
    args = p.parse_args(argv)

    import medical

    scans = os.path.join(args.workdir, "scans")
    manifest = os.path.join(scans, "manifest.csv")
    t0 = time.perf_counter()
    if not os.path.exists(manifest):
        manifest = medical.make_synthetic(scans, n=args.scans, seed=0)
    print(f"{args.scans} synthetic scans ready in {time.perf_counter() - t0:.1f} s ({scans})", flush=True)
    cache_dir = os.path.join(args.workdir, f"cache-{args.shape}")
    paths, _ = medical.read_manifest(manifest)
    cache = medical.ScanCache(cache_dir)
    t0 = time.perf_counter()
    for path in paths:
        cache.load(path, shape=(args.shape,) * 3)
    print(f"cache filled in {time.perf_counter() - t0:.1f} s ({cache.misses} preprocessed, {cache.hits} cached)",
          flush=True)
    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    rows = []
    for stream in (True, False):
        spec = {"manifest": manifest, "shape": [args.shape] * 3, "epochs": args.epochs,
                "batch_size": args.batch_size, "stream": stream, "cache": cache_dir}
        out = subprocess.run([sys.executable, "-c", CHILD, json.dumps(spec)], env=env, capture_output=True,
                             text=True)
        if out.returncode:
            sys.exit(out.stderr[-3000:])
        r = json.loads(out.stdout.strip().splitlines()[-1])
        r["route"] = "streamed from the cache" if stream else "loaded into memory"
        rows.append(r)
        print(f"{r['route']:26s} fit {r['fit_s']:7.1f} s  ({r['fit_s'] / r['epochs']:6.1f} s/epoch)  "
              f"peak memory {r['peak_mb']:7.0f} MB (after imports {r['base_mb']:.0f} MB)", flush=True)
    data_mb = args.scans * args.shape ** 3 * 4 / 2**20
    print(f"the preprocessed data set: {data_mb:.0f} MB; peak memory streamed / in memory: "
          f"{rows[0]['peak_mb'] / rows[1]['peak_mb']:.2f}; time streamed / in memory: "
          f"{rows[0]['fit_s'] / rows[1]['fit_s']:.2f}")


if __name__ == "__main__":
    main()

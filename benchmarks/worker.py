"""Child process of the harness: times one engine on one case.

Started by ``benchmarks.run`` as ``python -m benchmarks.worker ENGINE CASE
--threads T ...`` with the thread variables already set in its environment.
It builds the model and the data, then answers commands read from stdin, one
JSON line per answer on stdout:

- at start: ``{"event": "ready", "info": {...}}`` (versions, BLAS, baseline RSS)
  or ``{"event": "error", "kind": "import" | "other", "message": ...}``;
- ``run``: one timed run, ``{"event": "run", "times": {label: median_seconds,
  label_cpu: mean CPU seconds per call},
  "iters": {label: n}, "rss_after_train_kb": ...}``;
- ``quit``: ``{"event": "done", "maxrss_kb": ...}`` and exit.

Timed functions (label -> what one call does):

- ours (and alt, the same from the copy of ``core`` in ``$BENCH_ALT_CORE``):
  ``train`` = ``model.train_on_batch(x, y)`` (public API, validates x
  and y every call); ``train_core`` = the internal step (forward, loss,
  backward, optimizer) without the validation; ``infer`` =
  ``model.predict(x, batch_size=N)``; ``infer_core`` = the forward pass alone.
- torch: ``train`` = forward, cross-entropy, ``zero_grad``, ``backward``,
  ``step``; ``infer`` = forward + softmax under ``torch.inference_mode()``.
Both use SGD with ``LEARNING_RATE`` and ``MOMENTUM``.
"""
import argparse
import json
import os
import resource
import sys
import time

LEARNING_RATE = 1e-3
MOMENTUM = 0.9


def _emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def _rss_now_kb():
    """Current resident set size of this process, in KiB (Linux /proc)."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") // 1024
    except OSError:  # pragma: no cover - not Linux
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _maxrss_kb():
    """Peak resident set size in KiB (Linux), plus the private memory of the engine's shard
    processes (``core.shardprocs.worker_usage``) when they run: their work is this case's."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    shardprocs = sys.modules.get("core.shardprocs")
    return peak + (shardprocs.worker_usage()[1] if shardprocs is not None else 0)


def _cpu_seconds():
    """CPU seconds of this process (all its threads) and of the engine's shard processes."""
    shardprocs = sys.modules.get("core.shardprocs")
    return time.process_time() + (shardprocs.worker_usage()[0] if shardprocs is not None else 0.0)


def time_calls(fn, min_time, min_iters, max_iters, warmup):
    """Call ``fn`` ``warmup`` times untimed, then time single calls until both
    ``min_time`` seconds and ``min_iters`` calls are reached (at most
    ``max_iters``). Returns the per-call wall-clock seconds and the mean CPU
    seconds per call of this process (all its threads) and its shard processes."""
    for _ in range(warmup):
        fn()
    times = []
    start = time.perf_counter()
    cpu_start = _cpu_seconds()
    while len(times) < max_iters:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        if len(times) >= min_iters and time.perf_counter() - start >= min_time:
            break
    # CPU time is accounted in coarse ticks in some kernels: only its mean over the loop is meaningful
    return times, (_cpu_seconds() - cpu_start) / len(times)


def _median(values):
    s = sorted(values)
    n = len(s)
    return s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2])


def _primer(case):
    """A tiny network of the same rank as ``case``: one step of it loads the
    library code the real case will use, so the RSS baseline taken afterwards
    leaves out code pages and counts what the case itself allocates."""
    from .cases import TINY, Case
    return Case("primer", (8,) * case.rank + (1,), 2, TINY)


def _prime_ours(case):
    import gc

    import numpy as np

    from .cases import build_ours
    tiny = _primer(case)
    model = build_ours(tiny)
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    x = np.zeros((tiny.batch,) + tiny.input_shape, np.float32)
    model.train_on_batch(x, np.zeros(tiny.batch, np.int64))
    model.predict(x)
    del model
    gc.collect()


def _prime_torch(case):
    import gc

    import torch

    from .cases import build_torch
    tiny = _primer(case)
    model = build_torch(tiny)
    x = torch.zeros((tiny.batch, 1) + tiny.input_shape[:-1])
    torch.nn.functional.cross_entropy(model(x), torch.zeros(tiny.batch, dtype=torch.int64)).backward()
    torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9).step()
    with torch.inference_mode():
        model(x)
    del model
    gc.collect()


def _setup_ours(case, threads):
    import numpy as np
    import threadpoolctl

    import core
    from core import optimizers

    from .cases import build_ours

    _prime_ours(case)
    baseline = _rss_now_kb()
    model = build_ours(case, seed=0)
    model.compile(optimizer=optimizers.SGD(learning_rate=LEARNING_RATE, momentum=MOMENTUM),
                  loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((case.batch,) + tuple(case.input_shape), dtype=np.float32)
    y = rng.integers(0, case.n_classes, case.batch)
    y_checked = model._check_y(y, len(x), "benchmark")
    n = case.batch

    def train():
        model.train_on_batch(x, y)

    def train_core():
        model._train_step(x, y_checked, None, "in the benchmark")

    def infer():
        model.predict(x, batch_size=n)

    def infer_core():
        if hasattr(model, "run_forward"):  # the layer-contract engine
            model.workspace.reclaim()
            model.run_forward(x, training=False, context=False)
        else:  # an older core given with --alt-core
            model._forward(x, training=False)

    blas = [dict({k: d.get(k) for k in ("internal_api", "version", "architecture", "num_threads", "threading_layer")},
                 library=os.path.basename(d.get("filepath", "")))
            for d in threadpoolctl.threadpool_info() if d.get("user_api") == "blas"]
    info = {"numpy": np.__version__, "core": os.path.dirname(core.__file__), "blas": blas,
            "params": model.count_params()}
    return {"train": train, "train_core": train_core, "infer": infer, "infer_core": infer_core}, info, baseline


def _setup_torch(case, threads):
    import torch

    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # pragma: no cover - already set
        pass
    import numpy as np

    from .cases import build_torch

    _prime_torch(case)
    baseline = _rss_now_kb()
    model = build_torch(case, seed=0)
    opt = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE, momentum=MOMENTUM)
    loss_fn = torch.nn.CrossEntropyLoss()
    rng = np.random.default_rng(0)
    x_last = rng.standard_normal((case.batch,) + tuple(case.input_shape), dtype=np.float32)
    # the same numbers, in PyTorch's native (N, C, *spatial) layout, contiguous
    x = torch.from_numpy(np.ascontiguousarray(np.moveaxis(x_last, -1, 1)))
    y = torch.from_numpy(rng.integers(0, case.n_classes, case.batch))

    def train():
        model.train()
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()

    def infer():
        model.eval()
        with torch.inference_mode():
            torch.softmax(model(x), dim=-1)

    info = {"torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "mkldnn": bool(torch.backends.mkldnn.is_available()),
            "params": sum(p.numel() for p in model.parameters())}
    return {"train": train, "infer": infer}, info, baseline


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("engine", choices=("ours", "alt", "torch"))
    p.add_argument("case")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--min-time", type=float, default=0.5)
    p.add_argument("--min-iters", type=int, default=3)
    p.add_argument("--max-iters", type=int, default=1000)
    p.add_argument("--warmup", type=int, default=2)
    args = p.parse_args(argv)

    from .cases import CASES
    case = CASES[args.case]
    if args.engine == "alt":  # our engine, from another copy of core/ (A/B test of a proposed change)
        sys.path.insert(0, os.environ["BENCH_ALT_CORE"])
    try:
        setup = _setup_torch if args.engine == "torch" else _setup_ours
        fns, info, baseline = setup(case, args.threads)
    except ImportError as exc:
        _emit({"event": "error", "kind": "import", "message": f"{type(exc).__name__}: {exc}"})
        return 3
    except Exception as exc:  # reported to the parent, which shows it
        _emit({"event": "error", "kind": "other", "message": f"{type(exc).__name__}: {exc}"})
        return 4
    info.update({"baseline_rss_kb": baseline, "pid": os.getpid(),
                 "env": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                                                        "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}})
    _emit({"event": "ready", "info": info})

    first = True
    rss_after_train = None
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "run":
            times, iters = {}, {}
            for label, fn in fns.items():
                # the first run warms up longer: buffers are allocated, caches and BLAS threads start
                ts, cpu = time_calls(fn, args.min_time, args.min_iters, args.max_iters,
                                     args.warmup + (2 if first else 0))
                times[label], iters[label] = _median(ts), len(ts)
                times[label + "_cpu"] = cpu
                if label == "train" and rss_after_train is None:  # peak of training alone
                    rss_after_train = _maxrss_kb()
            first = False
            _emit({"event": "run", "times": times, "iters": iters, "rss_after_train_kb": rss_after_train})
        elif cmd == "quit":
            break
    _emit({"event": "done", "maxrss_kb": _maxrss_kb()})
    return 0


if __name__ == "__main__":
    sys.exit(main())

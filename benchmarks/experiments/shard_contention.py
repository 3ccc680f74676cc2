"""How much slower one shard's layers run beside a partner shard than alone.

``python -m benchmarks.experiments.shard_contention [CASE ...] [--steps N] [--processes]``
builds two copies of each case's model and times every layer's training forward and backward
(``Sequential.run_forward`` / ``run_backward``, the layers timed through wrappers) on half
the case's batch: first one copy alone, then both copies at once on two Python threads, as
the two shards of a sharded step run. BLAS is held to one thread, as inside a shard. The
ratio per layer is what the second core costs each shard: on this project's 2-core machine
a whole shard ran 22-48 % slower (two runs each of LeNet-5 and Conv3D 32^3), almost every
layer with it, the matrix products included (mostly the GIL: see below), so a two-thread
step cannot reach 2x whatever share of it BLAS has.

``--processes`` also times whole shard steps alone and beside a partner *thread*, then alone
and beside a partner *process* (two forked children, each with its own interpreter and so its
own GIL), twice in turn. On that machine (2026-11-30), beside a partner:

- LeNet-5, 32 samples per shard (``--steps 100``): 11.6-14.1 ms on a thread, 7.9-9.9 ms in a
  process (7.5-8.7 ms alone);
- the tutorial network, 32 samples per shard (``--steps 100``): 3.2-3.9 ms on a thread (2.0x),
  1.9-2.0 ms in a process (1.6-2.1 ms alone);
- Conv3D 32^3, 4 samples per shard: 23.3-24.7 ms on a thread, 18.9-22.0 ms in a process.

So most of what the second thread costs is the GIL (every NumPy call releases it and must win
it back from the partner, which holds it through its Python code and small operations), not
the cores' shared caches and memory.
"""
import argparse
import threading
import time


def _timed_model(case, seed):
    """A compiled model whose layers add their forward/backward seconds to ``model.layer_times``."""
    from .profile_cases import setup

    model = setup(case, seed=seed)[0]
    model.layer_times = [[0.0, 0.0] for _ in model.layers]
    for i, layer in enumerate(model.layers):
        for slot, name in enumerate(("forward", "backward")):
            original = getattr(layer, name)

            def timed(*args, _original=original, _i=i, _slot=slot, **kwargs):
                t0 = time.perf_counter()
                try:
                    return _original(*args, **kwargs)
                finally:
                    model.layer_times[_i][_slot] += time.perf_counter() - t0
            setattr(layer, name, timed)
    return model


def _steps(model, x, steps):
    import numpy as np

    for _ in range(steps):
        model.workspace.reclaim()
        outputs, contexts = model.run_forward(x, training=True, step=0)
        grad = np.ones_like(outputs[-1]) / outputs[-1].size
        model.run_backward(contexts, grad, down_to=model._first_trainable, need_input_grad=False)


def _wall(model, x, steps):
    """Seconds per step of ``_steps``."""
    t0 = time.perf_counter()
    _steps(model, x, steps)
    return (time.perf_counter() - t0) / steps


def _shard_process(case, x, steps, ready, result):
    """A forked child: one shard's model, timed once every child is ready."""
    from threadpoolctl import threadpool_limits

    from .profile_cases import setup

    try:
        model = setup(case)[0]
        with threadpool_limits(1, user_api="blas"):
            _steps(model, x, 3)
            ready.wait(timeout=600)
            result.value = _wall(model, x, steps)
    except BaseException:
        ready.abort()  # a partner waiting at the barrier fails instead of waiting forever
        raise


def _beside_processes(case, x, steps, count):
    """Seconds per step of each of ``count`` shards run at once in forked processes."""
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    ready = ctx.Barrier(count)
    results = [ctx.Value("d", 0.0) for _ in range(count)]
    children = [ctx.Process(target=_shard_process, args=(case, x, steps, ready, r)) for r in results]
    for c in children:
        c.start()
    for c in children:
        c.join()
    if any(c.exitcode for c in children):
        raise RuntimeError(f"a shard process failed (exit codes {[c.exitcode for c in children]})")
    return [r.value for r in results]


def _beside_threads(models, x, steps):
    """Seconds per step of each model's shard, run at once on threads."""
    walls = [0.0] * len(models)

    def run(i):
        walls[i] = _wall(models[i], x, steps)
    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(models))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return walls


def _compare_processes(case, x, steps):
    """Whole shard steps alone and beside a partner thread, then alone and beside a partner
    process, twice in turn (this machine's speed wanders from minute to minute)."""
    from .profile_cases import setup

    models = [setup(case, seed=seed)[0] for seed in (0, 1)]
    for m in models:
        _steps(m, x, 3)
    for _ in range(2):
        alone, threads = _wall(models[0], x, steps), _beside_threads(models, x, steps)
        alone_p, processes = _beside_processes(case, x, steps, 1)[0], _beside_processes(case, x, steps, 2)
        print(f"  whole shard step: alone {alone * 1e3:.2f} ms, beside a thread "
              f"{max(threads) * 1e3:.2f} ms ({max(threads) / alone:.2f}x); in processes: alone "
              f"{alone_p * 1e3:.2f} ms, beside a process {max(processes) * 1e3:.2f} ms "
              f"({max(processes) / alone_p:.2f}x)")


def main(argv=None):
    from ..cases import CASES, DEFAULT_CASES

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("cases", nargs="*", default=[c for c in DEFAULT_CASES if CASES[c].batch >= 2])
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--processes", action="store_true",
                   help="also time whole shard steps beside a partner process (fork; POSIX only)")
    args = p.parse_args(argv)
    import numpy as np
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1, user_api="blas"):
        for name in args.cases:
            case = CASES[name]
            models = [_timed_model(case, seed) for seed in (0, 1)]
            x = np.random.default_rng(0).standard_normal((case.batch // 2,) + tuple(case.input_shape),
                                                          dtype=np.float32)
            _steps(models[0], x, 3)
            models[0].layer_times = [[0.0, 0.0] for _ in models[0].layers]
            _steps(models[0], x, args.steps)
            alone = np.array(models[0].layer_times) / args.steps
            for m in models:
                _steps(m, x, 2)
                m.layer_times = [[0.0, 0.0] for _ in m.layers]
            _beside_threads(models, x, args.steps)
            both = np.array(models[0].layer_times) / args.steps
            print(f"== {name}, {case.batch // 2} samples per shard (ms: alone -> beside a partner)")
            for layer, (fa, ba), (fb, bb) in zip(models[0].layers, alone * 1e3, both * 1e3):
                print(f"  {type(layer).__name__:22s} forward {fa:7.2f} -> {fb:7.2f}   backward {ba:7.2f} -> {bb:7.2f}")
            print(f"  total {alone.sum() * 1e3:.2f} -> {both.sum() * 1e3:.2f} ms ({both.sum() / alone.sum():.2f}x)")
            if args.processes:
                _compare_processes(case, x, args.steps)


if __name__ == "__main__":
    main()

"""How much slower one shard's layers run beside a partner shard than alone.

``python -m benchmarks.experiments.shard_contention [CASE ...] [--steps N]`` builds two
copies of each case's model and times every layer's training forward and backward
(``Sequential.run_forward`` / ``run_backward``, the layers timed through wrappers) on half
the case's batch: first one copy alone, then both copies at once on two Python threads, as
the two shards of a sharded step run. BLAS is held to one thread, as inside a shard. The
ratio per layer is what the second core costs each shard: on this project's 2-core machine
a whole shard ran 22-48 % slower (two runs each of LeNet-5 and Conv3D 32^3), almost every
layer with it, the matrix products included, so a two-thread step cannot reach 2x whatever
share of it BLAS has.
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


def main(argv=None):
    from ..cases import CASES, DEFAULT_CASES

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("cases", nargs="*", default=[c for c in DEFAULT_CASES if CASES[c].batch >= 2])
    p.add_argument("--steps", type=int, default=30)
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
            threads = [threading.Thread(target=_steps, args=(m, x, args.steps)) for m in models]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            both = np.array(models[0].layer_times) / args.steps
            print(f"== {name}, {case.batch // 2} samples per shard (ms: alone -> beside a partner)")
            for layer, (fa, ba), (fb, bb) in zip(models[0].layers, alone * 1e3, both * 1e3):
                print(f"  {type(layer).__name__:22s} forward {fa:7.2f} -> {fb:7.2f}   backward {ba:7.2f} -> {bb:7.2f}")
            print(f"  total {alone.sum() * 1e3:.2f} -> {both.sum() * 1e3:.2f} ms ({both.sum() / alone.sum():.2f}x)")


if __name__ == "__main__":
    main()

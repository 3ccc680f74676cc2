"""What the fused inference path (core/inference.py) buys, in one process.

``python -m benchmarks.experiments.inference_fusion [--cases ...] [--rounds 5]``

For each benchmark case, and for a batch-norm variant of it (every
convolution and hidden dense layer without activation, followed by
``BatchNormalization`` and a ``ReLU`` layer: the usual modern block), it
times ``model.predict(x, batch_size=N)`` (the fused path: batch norm folded
into the product, the ReLU applied in place) against the same batch run layer
by layer (``run_forward(training=False, context=False)`` plus the copy
``predict`` makes). Rounds alternate the two; the table gives the best median
of each. BLAS is limited to one thread. Non-trivial batch-norm statistics are
set first, and the two outputs are compared (largest difference relative to
the output's scale).
"""
import argparse
import time

import numpy as np


def _bn_variant(case):
    from core import Input, Sequential, layers

    from benchmarks.cases import build_ours
    plain = build_ours(case)
    stack = [Input(shape=case.input_shape)]
    for layer in plain.layers:
        cfg = layer.get_config()
        act = cfg.get("activation")
        if act == "relu" and hasattr(layer, "kernel_initializer"):
            cfg["activation"] = None
            stack += [type(layer).from_config(cfg), layers.BatchNormalization(), layers.ReLU()]
        else:
            stack.append(type(layer).from_config(cfg))
    model = Sequential(stack, seed=0)
    rng = np.random.default_rng(1)
    for layer in model.layers:
        if isinstance(layer, layers.BatchNormalization):
            c = layer.input_shape[-1]
            layer.set_weights([rng.uniform(0.5, 2, c), rng.normal(size=c), rng.normal(size=c),
                               rng.uniform(0.5, 2, c)])
    return model


def _median_time(fn, calls):
    ts = []
    for _ in range(calls):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", nargs="+", default=None)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--min-time", type=float, default=0.2, help="seconds per timed block (default 0.2)")
    args = p.parse_args(argv)
    import threadpoolctl
    threadpoolctl.threadpool_limits(1, user_api="blas")
    from benchmarks.cases import CASES, DEFAULT_CASES, build_ours

    print("case                 variant   fused ms   layer-by-layer ms   ratio   max rel diff")
    for name in args.cases or DEFAULT_CASES:
        case = CASES[name]
        x = np.random.default_rng(0).standard_normal((case.batch,) + tuple(case.input_shape), dtype=np.float32)
        for variant, model in (("plain", build_ours(case)), ("bn", _bn_variant(case))):
            def fused():
                return model.predict(x, batch_size=case.batch)

            def unfused():
                model.workspace.reclaim()
                return np.array(model.run_forward(x, training=False, context=False)[0][-1], copy=True)
            a, b = fused(), unfused()
            diff = float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), 1e-30))
            t0 = time.perf_counter()
            fused()
            calls = max(3, int(args.min_time / max(time.perf_counter() - t0, 1e-6)))
            best = {"fused": [], "unfused": []}
            for r in range(args.rounds):
                order = (("fused", fused), ("unfused", unfused))
                for label, fn in (order if r % 2 == 0 else order[::-1]):
                    best[label].append(_median_time(fn, calls))
            f, u = min(best["fused"]) * 1e3, min(best["unfused"]) * 1e3
            print(f"{name:<20} {variant:<8} {f:9.3f}   {u:17.3f}   {f / u:5.2f}   {diff:.1e}")


if __name__ == "__main__":
    main()

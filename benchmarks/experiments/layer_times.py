"""Per-layer forward / backward times of one copy of ``core`` on the layers of
the benchmark cases (one thread, in-process), to attribute a whole-step gain
to the change that made it.

``python -m benchmarks.experiments.layer_times [--core DIR] [--json OUT]``
prints, per case and layer, the best of several timings of
``forward(training=True)`` and ``backward``, plus the loss.
"""
import argparse
import json
import sys
import time


def best(fn, reps=7):
    fn()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return min(ts)


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--core", default=None)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    if args.core:
        sys.path.insert(0, args.core)
    import numpy as np

    from ..cases import CASES, DEFAULT_CASES
    from .profile_cases import setup

    out = {}
    for name in DEFAULT_CASES:
        model, x, y = setup(CASES[name])
        model.train_on_batch(x, y)
        acts = [x]
        for lay in model.layers:
            acts.append(lay.forward(acts[-1], training=True))
        grads = [None] * len(model.layers)
        g = np.ones_like(acts[-1]) / acts[-1].size
        for i in range(len(model.layers) - 1, -1, -1):
            grads[i] = g
            g = model.layers[i].backward(g, need_input_grad=i > 0)
        for i, lay in enumerate(model.layers):
            def fwd(lay=lay, a=acts[i]):
                lay.forward(a, training=True)

            def bwd(lay=lay, a=acts[i], g=grads[i], i=i):
                lay.forward(a, training=True)  # backward may consume what forward kept
                lay.backward(g.copy(), need_input_grad=i > 0)
            tf, tfb = best(fwd), best(bwd)
            key = f"{name}/{i}:{type(lay).__name__}"
            out[key] = {"forward_ms": tf * 1e3, "backward_ms": (tfb - tf) * 1e3}
        yy = model._check_y(y, len(x), "t")
        out[f"{name}/loss"] = {"forward_ms": best(lambda: model.loss.value_and_grad_logits(yy, model.layers[-1]._z))
                               * 1e3, "backward_ms": 0.0}
        out[f"{name}/optimizer"] = {"forward_ms": best(lambda: model.optimizer.apply(model._trainable_triples()))
                                    * 1e3, "backward_ms": 0.0}
    for k, v in out.items():
        print(f"{k:40s} forward {v['forward_ms']:8.3f} ms  backward {v['backward_ms']:8.3f} ms")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()

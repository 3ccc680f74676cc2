"""Per-layer forward / backward times of one copy of ``core`` on the layers of
the benchmark cases (one thread, in-process), to attribute a whole-step gain
to the change that made it.

``python -m benchmarks.experiments.layer_times [--core DIR] [--json OUT] [--cases NAME ...]``
prints, per case and layer, the best of several timings of
``forward(training=True)`` (with the options ``Sequential.run_forward`` gives the layer) and
``backward``, plus the loss. A first convolution that pools its own blocks in training
(``Sequential._pools_first_layer``) is timed apart from its pooling, as the two layers.
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
    p.add_argument("--cases", nargs="*", default=None, help="case names (default: the default cases)")
    args = p.parse_args(argv)
    if args.core:
        sys.path.insert(0, args.core)
    import numpy as np

    from core import config
    from core.workspace import Workspace

    config.set_num_threads(1)  # the engine's threads and BLAS's: one thread, as the docstring says

    from ..cases import CASES, DEFAULT_CASES
    from .profile_cases import setup

    out = {}
    for name in args.cases or DEFAULT_CASES:
        model, x, y = setup(CASES[name])
        # each layer alone: a first convolution does not pool its own output here
        # (``Sequential._pools_first_layer``), so its time and its pooling's are apart
        model._pools_first_layer = lambda xb, keep: False
        model.train_on_batch(x, y)
        triples = [(k, None, g) for k, g in model.last_gradients.items()]
        triples = [(k, model.layers[int(k.split("/")[0])].params[k.split("/", 1)[1]], g) for k, _, g in triples]
        # the first pass's outputs and contexts stay lent from ws; the timed calls borrow from
        # workspaces of their own, given back before each call as in a training step (a new
        # array each call would add the faulting in of its pages to the time)
        ws, front, back = Workspace(), Workspace(), Workspace()
        rngs = [np.random.default_rng(i) for i in range(len(model.layers))]
        outputs, contexts = model.run_forward(x, training=True, logits=True, step=0, workspace=ws)
        acts = [x] + outputs
        grads = [None] * len(model.layers)
        g = np.ones_like(acts[-1]) / acts[-1].size
        for i in range(len(model.layers) - 1, -1, -1):
            grads[i] = g
            g, _ = model.layers[i].backward(contexts[i], g, need_input_grad=i > 0, workspace=ws)
        for i, lay in enumerate(model.layers):
            kw = model.forward_options(i, True, logits=True)

            def fwd(lay=lay, a=acts[i], i=i, kw=kw):
                front.reclaim()
                lay.forward(a, training=True, rng=rngs[i], workspace=front, **kw)

            def bwd(lay=lay, g=grads[i], i=i):
                back.reclaim()
                lay.backward(contexts[i], g, need_input_grad=i > 0, workspace=back)
            tf, tb = best(fwd), best(bwd)
            key = f"{name}/{i}:{type(lay).__name__}"
            out[key] = {"forward_ms": tf * 1e3, "backward_ms": tb * 1e3}
        yy = model._check_y(y, len(x), "t")
        out[f"{name}/loss"] = {"forward_ms": best(lambda: model.loss.value_and_grad_logits(yy, outputs[-1]))
                               * 1e3, "backward_ms": 0.0}
        out[f"{name}/optimizer"] = {"forward_ms": best(lambda: model.optimizer.apply(triples))
                                    * 1e3, "backward_ms": 0.0}
    for k, v in out.items():
        print(f"{k:40s} forward {v['forward_ms']:8.3f} ms  backward {v['backward_ms']:8.3f} ms")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()

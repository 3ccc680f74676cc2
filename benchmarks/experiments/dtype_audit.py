"""Look for silent float64 upcasts in a float32 training step.

``python -m benchmarks.experiments.dtype_audit [--core DIR]`` wraps every
layer's ``forward`` / ``backward``, the loss and the optimizer of each
benchmark case, runs two training steps and one prediction, and lists every
array that comes out in a dtype other than float32 (layer outputs, input
gradients, weight gradients, weights and optimizer slots afterwards).
"""
import argparse
import sys


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--core", default=None)
    args = p.parse_args(argv)
    if args.core:
        sys.path.insert(0, args.core)
    import numpy as np

    from ..cases import CASES, DEFAULT_CASES
    from .profile_cases import setup

    bad = []

    def check(where, arr):
        if isinstance(arr, (tuple, list)):  # the layer contract returns (output, context) / (dx, grads)
            for part in arr:
                if not isinstance(part, dict):
                    check(where, part)
            if len(arr) == 2 and isinstance(arr[1], dict) and where.endswith("backward"):
                for k, g in arr[1].items():
                    check(f"{where} grad {k}", g)
        elif isinstance(arr, np.ndarray) and arr.dtype not in (np.float32, np.bool_):
            bad.append(f"{where}: {arr.dtype} {arr.shape}")

    for name in DEFAULT_CASES:
        model, x, y = setup(CASES[name])
        for i, lay in enumerate(model.layers):
            def wrap(fn, what, i=i, lay=lay):
                def inner(*a, **k):
                    out = fn(*a, **k)
                    check(f"{name} layer {i} {type(lay).__name__}.{what}", out)
                    return out
                return inner
            lay.forward = wrap(lay.forward, "forward")
            lay.backward = wrap(lay.backward, "backward")
        loss_fn = model.loss.value_and_grad_logits

        def loss_wrap(*a, **k):
            value, grad = loss_fn(*a, **k)
            check(f"{name} loss gradient", grad)
            return value, grad
        model.loss.value_and_grad_logits = loss_wrap
        for _ in range(2):
            model.train_on_batch(x, y)
        check(f"{name} predict", model.predict(x))
        for i, lay in enumerate(model.layers):
            for k, w in lay.params.items():
                check(f"{name} layer {i} weight {k}", w)
        for slot, table in model.optimizer.state.items():
            for k, v in table.items():
                check(f"{name} optimizer {slot}/{k}", v)
    print("\n".join(bad) if bad else "every array is float32")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

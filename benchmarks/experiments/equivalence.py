"""Do two copies of ``core`` compute the same numbers?

``python -m benchmarks.experiments.equivalence dump OUT.npz [--core DIR]``
runs, with the ``core`` package found in DIR (default: this checkout), every
benchmark case (inference output, loss, every weight gradient of one training
step, the weights after three SGD steps) and a set of single conv / pooling /
dropout layers over ranks 1-3, strides, dilations, paddings and groups
(forward output, input gradient, weight gradients), and saves all arrays.

``python -m benchmarks.experiments.equivalence compare A.npz B.npz`` prints
the largest absolute difference per array and overall (and the largest
relative to the array's scale).
"""
import argparse
import sys


def _layer_configs():
    cfgs = []
    for rank, shape in ((1, (3, 17, 5)), (2, (2, 9, 8, 3)), (3, (2, 7, 6, 5, 2))):
        for kw in (dict(kernel_size=3), dict(kernel_size=3, padding="same"), dict(kernel_size=2, strides=2),
                   dict(kernel_size=3, strides=2, padding="same"), dict(kernel_size=3, dilation_rate=2),
                   dict(kernel_size=1),
                   dict(kernel_size=3, groups=shape[-1] if shape[-1] > 1 else 1, filters=4 * shape[-1])):
            cfgs.append(("conv", rank, shape, kw))
        for kw in (dict(pool_size=2), dict(pool_size=3, strides=1), dict(pool_size=3, strides=2, padding="same"),
                   dict(pool_size=2, padding="same")):
            cfgs.append(("maxpool", rank, shape, kw))
            cfgs.append(("avgpool", rank, shape, kw))
    cfgs.append(("conv", 1, (3, 17, 5), dict(kernel_size=3, padding="causal", dilation_rate=2)))
    cfgs.append(("dropout", 2, (4, 6, 6, 3), dict(rate=0.3)))
    return cfgs


def _contract(layer):
    """Whether ``layer`` follows the explicit layer contract (forward returns a context)."""
    return hasattr(layer, "_require_context")


def _layer_step(lay, x, rng, seed):
    """``(training output, input gradient, weight gradients, inference output)`` of one layer,
    in either engine: the layer contract, or the earlier one that kept its state."""
    import numpy as np
    if _contract(lay):
        y, ctx = lay.forward(x, training=True, rng=np.random.default_rng(seed))
        g = rng.standard_normal(y.shape).astype(np.float32)
        dx, grads = lay.backward(ctx, g, need_input_grad=True)
        return y.copy(), dx, grads, lay.forward(x, training=False)[0]
    y = lay.forward(x, training=True).copy()
    g = rng.standard_normal(y.shape).astype(np.float32)
    dx = lay.backward(g, need_input_grad=True)
    return y, dx, dict(lay.grads), lay.forward(x, training=False)


def _model_gradients(model):
    """The weight gradients of the last training step, keyed ``"<layer>/<weight>"``."""
    if hasattr(model, "last_gradients"):
        return dict(model.last_gradients)
    return {f"{i}/{k}": g for i, lay in enumerate(model.layers) for k, g in lay.grads.items()}


def dump(out, core_dir=None):
    if core_dir:
        sys.path.insert(0, core_dir)
    import numpy as np

    import core
    from core import layers, optimizers

    from ..cases import CASES, DEFAULT_CASES, build_ours

    print(f"core from {core.__file__}", file=sys.stderr)
    arrays = {}
    for name in DEFAULT_CASES:
        case = CASES[name]
        model = build_ours(case, seed=0)
        model.compile(optimizer=optimizers.SGD(learning_rate=1e-2, momentum=0.9),
                      loss="sparse_categorical_crossentropy")
        rng = np.random.default_rng(0)
        x = rng.standard_normal((case.batch,) + tuple(case.input_shape), dtype=np.float32)
        y = rng.integers(0, case.n_classes, case.batch)
        arrays[f"{name}/predict"] = model.predict(x, batch_size=case.batch)
        arrays[f"{name}/loss"] = np.asarray(model.train_on_batch(x, y))
        for key, g in _model_gradients(model).items():
            arrays[f"{name}/grad/{key}"] = np.asarray(g).copy()
        model.train_on_batch(x, y)
        model.train_on_batch(x, y)
        for i, w in enumerate(model.get_weights()):
            arrays[f"{name}/weights_after_3_steps/{i}"] = w
    for j, (kind, rank, shape, kw) in enumerate(_layer_configs()):
        rng = np.random.default_rng(j)
        x = rng.standard_normal(shape).astype(np.float32)
        if kind == "conv":
            kw = dict(kw)
            cls = {1: layers.Conv1D, 2: layers.Conv2D, 3: layers.Conv3D}[rank]
            lay = cls(kw.pop("filters", 4), activation="relu", seed=j, **kw)
        elif kind == "maxpool":
            lay = {1: layers.MaxPooling1D, 2: layers.MaxPooling2D, 3: layers.MaxPooling3D}[rank](**kw)
            x = np.round(x * 2) / 2  # ties, to check which element of a window gets the gradient
        elif kind == "avgpool":
            lay = {1: layers.AveragePooling1D, 2: layers.AveragePooling2D, 3: layers.AveragePooling3D}[rank](**kw)
        else:
            lay = layers.Dropout(seed=j, **kw)
        lay.build(x.shape[1:])
        y, dx, grads, infer = _layer_step(lay, x, rng, seed=j)
        key = f"layer{j}_{kind}{rank}d_{'_'.join(f'{a}={b}' for a, b in sorted(kw.items()))}"
        arrays[key + "/out"] = np.asarray(y)
        arrays[key + "/dx"] = np.asarray(dx)
        for k, v in grads.items():
            arrays[f"{key}/grad/{k}"] = np.asarray(v)
        arrays[key + "/infer"] = np.asarray(infer)
    with open(out, "wb") as f:
        np.savez(f, **arrays)
    print(f"{len(arrays)} arrays -> {out}", file=sys.stderr)


def compare(a_path, b_path, verbose=False):
    import numpy as np
    a, b = np.load(a_path, allow_pickle=False), np.load(b_path, allow_pickle=False)
    assert sorted(a.files) == sorted(b.files), set(a.files) ^ set(b.files)
    worst, worst_rel, exact = 0.0, 0.0, 0
    for k in sorted(a.files):
        x, y = a[k], b[k]
        assert x.shape == y.shape and x.dtype == y.dtype, (k, x.shape, y.shape, x.dtype, y.dtype)
        d = float(np.max(np.abs(x.astype(np.float64) - y))) if x.size else 0.0
        scale = float(np.max(np.abs(x))) if x.size else 0.0
        rel = d / scale if scale else d
        exact += d == 0
        worst, worst_rel = max(worst, d), max(worst_rel, rel)
        if verbose or d > 0:
            print(f"{k:70s} max|diff| {d:.3g}  (relative to max|a| {rel:.3g})  dtype {x.dtype}")
    print(f"{len(a.files)} arrays, {exact} identical; largest |diff| {worst:.3g}, largest relative {worst_rel:.3g}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("dump")
    d.add_argument("out")
    d.add_argument("--core", default=None)
    c = sub.add_parser("compare")
    c.add_argument("a")
    c.add_argument("b")
    c.add_argument("-v", action="store_true")
    args = p.parse_args(argv)
    if args.cmd == "dump":
        dump(args.out, args.core)
    else:
        compare(args.a, args.b, args.v)


if __name__ == "__main__":
    main()

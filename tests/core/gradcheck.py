"""Finite-difference gradient checking shared by the core tests."""
import numpy as np


def numeric_grad(f, arr, indices, eps=1e-6):
    """Central differences of the scalar ``f()`` with respect to ``arr.flat[i]`` for each i."""
    out = np.empty(len(indices))
    flat = arr.reshape(-1)
    for j, i in enumerate(indices):
        old = flat[i]
        flat[i] = old + eps
        up = f()
        flat[i] = old - eps
        down = f()
        flat[i] = old
        out[j] = (up - down) / (2 * eps)
    return out


def sample_indices(size, rng, k=25):
    return rng.choice(size, size=min(k, size), replace=False)


def check_layer(layer, x, rng, training=True, k=25, rtol=1e-5, atol=1e-7):
    """Compare a layer's backward with finite differences of ``sum(forward(x) * R)``,
    for the input and every trainable weight. Returns the largest relative error."""
    layer.build(x.shape[1:], rng=np.random.default_rng(0))
    for name, value in layer.params.items():  # non-trivial weights (batch norm starts at ones/zeros)
        if name == "moving_variance":
            layer.params[name] = rng.uniform(0.5, 2.0, value.shape)
        else:
            layer.params[name] = value + rng.normal(0, 0.1, value.shape)
    seed = 99

    def forward(context=False):
        # the same generator state on every call: the same dropout mask
        return layer.forward(x, training=training, rng=np.random.default_rng(seed), context=context)

    y, ctx = forward(context=True)
    upstream = rng.normal(size=y.shape)
    dx, grads = layer.backward(ctx, upstream.copy(), need_input_grad=True)

    def loss():
        return float(np.sum(forward()[0] * upstream))

    worst = 0.0
    targets = [("input", x, dx)] + [(n, layer.params[n], grads[n]) for n in layer.trainable_names()]
    for name, arr, analytic in targets:
        assert analytic is not None and analytic.shape == arr.shape, name
        idx = sample_indices(arr.size, rng, k)
        num = numeric_grad(loss, arr, idx)
        ana = analytic.reshape(-1)[idx]
        np.testing.assert_allclose(ana, num, rtol=rtol, atol=atol, err_msg=f"gradient of {name}")
        scale = np.maximum(np.abs(num), 1e-3)
        worst = max(worst, float(np.max(np.abs(ana - num) / scale)))
    return worst

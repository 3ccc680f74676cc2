"""Parity with Keras 3 (JAX backend), the reference implementation.

Every test builds the same architecture twice, once with ``core`` and once
with Keras, copies our (randomized) weights into the Keras model, and checks:

- the forward output of the layer under test (float32, ``rtol=1e-5`` plus an
  absolute tolerance of ``1e-6 * max|reference|`` for values near zero);
- the weights after ``train_on_batch`` steps (same tolerance) and the loss;
- that ``get_weights()`` lists the same arrays in the same order and shapes.

Settings and shapes are drawn from a seeded generator when the module is
collected, so the cases are random but the same on every run. Each
comparison prints ``[parity] <family> <what>: max rel diff ...`` (shown with
``pytest -s`` or ``-rP``), the figures quoted in the engine's closing note.

Cost is dominated by XLA compiling Keras' computations once per shape, so
tensors are tiny, Keras kernels start at zeros (no random-number kernels to
compile; our weights overwrite them anyway), the layer under test gets the
same input array in both libraries, and the optimizer tests, whose models all
share one shape, run Keras eagerly so JAX reuses its per-operation kernels.
"""
import itertools
import os

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "jax")
keras = pytest.importorskip("keras")

from core import Input, Sequential, layers, losses, optimizers  # noqa: E402

pytestmark = pytest.mark.keras

RTOL = 1e-5
ATOL_SCALE = 1e-6  # absolute tolerance, as a fraction of the largest reference value
N_CLASSES = 3

if keras.backend.backend() != "jax":  # pragma: no cover - another backend was chosen before import
    pytest.skip(f"these tests use Keras' JAX backend, found {keras.backend.backend()!r}", allow_module_level=True)


# ------------------------------------------------------------------ helpers
def max_rel_diff(ours, ref, floor=1e-2):
    """Largest ``|ours - ref| / |ref|`` over the elements not close to zero
    (``|ref| >= floor * max|ref|``; the others are covered by the absolute
    tolerance); 0.0 for an all-zero reference."""
    ours, ref = np.asarray(ours, np.float64), np.asarray(ref, np.float64)
    scale = float(np.abs(ref).max()) if ref.size else 0.0
    if scale == 0.0:
        return float(np.abs(ours).max()) if ours.size else 0.0
    big = np.abs(ref) >= floor * scale
    return float((np.abs(ours - ref)[big] / np.abs(ref)[big]).max())


def assert_close(ours, ref, family, what, rtol=RTOL, atol_scale=ATOL_SCALE):
    """``ours`` equals the Keras reference ``ref`` within ``rtol`` (and an
    absolute tolerance ``atol_scale * max|ref|``); prints the worst relative gap."""
    ours, ref = np.asarray(ours), np.asarray(ref)
    assert ours.shape == ref.shape, f"{family} {what}: ours has shape {ours.shape}, Keras {ref.shape}"
    assert ours.dtype == np.float32, f"{family} {what}: ours has dtype {ours.dtype}, expected float32"
    scale = float(np.abs(ref).max()) if ref.size else 0.0
    np.testing.assert_allclose(ours, ref, rtol=rtol, atol=atol_scale * scale + 1e-12,
                               err_msg=f"{family} {what}: differs from Keras")
    print(f"[parity] {family} {what}: max rel diff {max_rel_diff(ours, ref):.2e}")


def keras_array(t):
    return np.asarray(keras.ops.convert_to_numpy(t))


def randomize_weights(model, rng):
    """Replace constant initial values (zero biases, unit gammas, zero/one
    moving statistics) by random ones, so that every weight matters."""
    ws = []
    for layer in model.layers:
        for name, w in zip(layer.weight_names(), layer.get_weights()):
            if name in ("bias", "beta", "moving_mean"):
                w = rng.normal(0, 0.2, w.shape)
            elif name in ("gamma", "moving_variance"):
                w = rng.uniform(0.5, 1.5, w.shape)
            ws.append(np.asarray(w, np.float32))
    model.set_weights(ws)


def keras_layer(name, kwargs, zero_init=True):
    """The Keras layer ``name(**kwargs)``; with ``zero_init`` its kernel starts
    at zeros (it is overwritten at once, and zeros cost no random-number kernel
    compiled for every shape)."""
    if zero_init and (name.startswith("Conv") or name == "Dense"):
        kwargs = dict(kwargs, kernel_initializer="zeros")
    return getattr(keras.layers, name)(**kwargs)


def build_pair(spec, input_shape, rng, seed=0):
    """Our model and Keras' from ``spec``, a list of ``(layer class name, kwargs)``
    (the two libraries share names and arguments). Our weights are randomized and
    copied into Keras after checking that both list the same shapes in the same order."""
    ours = Sequential([Input(shape=input_shape)] + [getattr(layers, n)(**kw) for n, kw in spec], seed=seed)
    theirs = keras.Sequential([keras.Input(shape=input_shape)] + [keras_layer(n, kw) for n, kw in spec])
    randomize_weights(ours, rng)
    ours_shapes = [w.shape for w in ours.get_weights()]
    keras_shapes = [tuple(w.shape) for w in theirs.get_weights()]
    assert ours_shapes == keras_shapes, f"get_weights shapes: ours {ours_shapes}, Keras {keras_shapes}"
    theirs.set_weights(ours.get_weights())
    return ours, theirs


def compile_pair(ours, theirs, optimizer="SGD", loss="sparse_categorical_crossentropy", eager=False, **opt_kwargs):
    """Same optimizer and loss on both. Keras compiles its train step with XLA
    unless ``eager``; eager is cheaper when many models share the same shapes,
    as JAX then reuses its per-operation kernels."""
    ours.compile(optimizer=getattr(optimizers, optimizer)(**opt_kwargs), loss=loss)
    theirs.compile(optimizer=getattr(keras.optimizers, optimizer)(**opt_kwargs), loss=loss, run_eagerly=eager)


def targets(loss, n, rng):
    if loss == "mse":
        return rng.normal(size=(n, N_CLASSES)).astype(np.float32)
    return rng.integers(0, N_CLASSES, size=n)


def train_and_compare(ours, theirs, x, y, family, step=1, sample_weight=None):
    """One ``train_on_batch`` on both models; the losses and all weights agree.
    The updates themselves (new minus old weights) are also compared, within
    ``1e-3`` of the largest update (plus float32 rounding of the weights), a
    finer check of the step than the weights' ``rtol``."""
    before = ours.get_weights()
    loss_ours = ours.train_on_batch(x, y, sample_weight=sample_weight)
    loss_keras = float(keras_array(theirs.train_on_batch(x, y, sample_weight=sample_weight)))
    np.testing.assert_allclose(loss_ours, loss_keras, rtol=RTOL, err_msg=f"{family}: loss at step {step}")
    names = [f"{lay.name}/{n}" for lay in ours.layers for n in lay.weight_names()]
    for name, w0, w, ref in zip(names, before, ours.get_weights(), theirs.get_weights()):
        assert_close(w, ref, family, f"step {step} {name}")
        d_ours, d_keras = w.astype(np.float64) - w0, ref.astype(np.float64) - w0
        tol = 1e-3 * np.abs(d_keras).max() + 4 * np.finfo(np.float32).eps * np.abs(w0).max()
        assert np.abs(d_ours - d_keras).max() <= tol, (
            f"{family} step {step} {name}: the update differs from Keras' by {np.abs(d_ours - d_keras).max():.3g} "
            f"(largest update {np.abs(d_keras).max():.3g})")


def head(loss):
    """The classifier head after the layer under test."""
    return [("Dense", dict(units=N_CLASSES, activation="softmax" if loss != "mse" else None))]


def layer_forward_and_step(spec, index, input_shape, rng, family, loss="sparse_categorical_crossentropy",
                           batch=3, training=False):
    """Forward of layer ``index`` of ``spec`` on a random batch, then one SGD step of the whole model."""
    ours, theirs = build_pair(spec, input_shape, rng)
    x = rng.normal(size=(batch,) + tuple(input_shape)).astype(np.float32)
    h = x
    for layer in ours.layers[:index]:  # the input of the layer under test, fed to both
        h = layer(h)
    out_ours = ours.layers[index](h, training=training)
    out_keras = keras_array(theirs.layers[index](h, training=training))
    assert_close(out_ours, out_keras, family, "forward")
    compile_pair(ours, theirs, "SGD", loss=loss, learning_rate=0.1)
    train_and_compare(ours, theirs, x, targets(loss, batch, rng), family)
    return ours, theirs


# --------------------------------------------------------------- convolution
CONV_SPATIAL = {1: (7, 12), 2: (5, 9), 3: (4, 7)}  # size range per axis
CONV_KERNEL = {1: (1, 5), 2: (1, 4), 3: (1, 3)}
ACTIVATIONS = ["relu", "tanh", "sigmoid", "elu", "leaky_relu", "gelu", None]


def _conv_cases(seed=2024, per_rank=(9, 8, 6)):
    """Per rank, a seeded random subset of the (stride, padding, dilation, groups)
    grid in which every padding meets every stride, dilation and groups value,
    with random sizes, kernels, channels, filters, activations and bias."""
    rng = np.random.default_rng(seed)
    cases = []
    for rank, n in zip((1, 2, 3), per_rank):
        paddings = ("valid", "same", "causal") if rank == 1 else ("valid", "same")
        grid = [c for c in itertools.product((1, 2), paddings, (1, 2), (1, 2)) if not (c[0] == 2 and c[2] == 2)]
        # redraw until every padding meets every value of stride, dilation and groups
        wanted = {(c[1], j, c[j]) for c in grid for j in (0, 2, 3)}
        while True:
            pick = [grid[i] for i in rng.choice(len(grid), size=n, replace=False)]
            if {(c[1], j, c[j]) for c in pick for j in (0, 2, 3)} == wanted:
                break
        for stride, padding, dilation, groups in pick:
            lo, hi = CONV_SPATIAL[rank]
            spatial = tuple(int(v) for v in rng.integers(lo, hi + 1, size=rank))
            kernel = tuple(int(v) for v in rng.integers(CONV_KERNEL[rank][0], CONV_KERNEL[rank][1] + 1, size=rank))
            if padding == "valid":  # keep the dilated kernel inside the input
                kernel = tuple(min(k, (s - 1) // dilation + 1) for k, s in zip(kernel, spatial))
            channels = groups * int(rng.integers(1, 3))
            filters = groups * int(rng.integers(1, 4))
            activation = ACTIVATIONS[int(rng.integers(len(ACTIVATIONS)))]
            use_bias = bool(rng.integers(2))
            loss = "mse" if rng.integers(3) == 0 else "sparse_categorical_crossentropy"
            kw = dict(filters=filters, kernel_size=kernel if rank > 1 else kernel[0], strides=stride, padding=padding,
                      dilation_rate=dilation, groups=groups, activation=activation, use_bias=use_bias)
            cid = (f"{rank}d-s{stride}-{padding}-d{dilation}-g{groups}-k{'x'.join(map(str, kernel))}"
                   f"-in{'x'.join(map(str, spatial))}x{channels}-f{filters}-{activation or 'linear'}"
                   f"-{'bias' if use_bias else 'nobias'}-{'mse' if loss == 'mse' else 'scce'}")
            cases.append(pytest.param(rank, kw, spatial + (channels,), loss, int(rng.integers(2**31)), id=cid))
        # strides > 1 with dilation > 1: Keras refuses it; kept as a case so the skip is visible
        kw = dict(filters=2, kernel_size=2, strides=2, padding="valid", dilation_rate=2)
        cases.append(pytest.param(rank, kw, (6,) * rank + (2,), "sparse_categorical_crossentropy", 0,
                                  id=f"{rank}d-s2-valid-d2-keras-rejects"))
    return cases


@pytest.mark.parametrize("rank,conv_kwargs,input_shape,loss,seed", _conv_cases())
def test_conv_forward_and_sgd_step(rank, conv_kwargs, input_shape, loss, seed):
    name = f"Conv{rank}D"
    try:
        getattr(keras.layers, name)(**conv_kwargs)
    except ValueError as exc:
        if conv_kwargs["strides"] > 1 and conv_kwargs["dilation_rate"] > 1:
            pytest.skip(f"Keras rejects strides > 1 together with dilation_rate > 1: {exc}")
        raise
    rng = np.random.default_rng(seed)
    spec = [(name, conv_kwargs), ("Flatten", {})] + head(loss)
    layer_forward_and_step(spec, 0, input_shape, rng, f"conv{rank}d", loss=loss)


# ------------------------------------------------------------------ pooling
POOL_SPATIAL = {1: (8, 12), 2: (6, 9), 3: (5, 7)}


def _pool_cases(seed=77):
    """Max and average pooling, every rank, valid and same; random pool sizes
    (per axis) and strides, with overlapping windows (stride < pool) included
    and ``strides=None`` (stride = pool size) in some cases."""
    rng = np.random.default_rng(seed)
    cases = []
    for kind, rank, padding in itertools.product(("Max", "Average"), (1, 2, 3), ("valid", "same")):
        lo, hi = POOL_SPATIAL[rank]
        spatial = tuple(int(v) for v in rng.integers(lo, hi + 1, size=rank))
        pool = tuple(int(v) for v in rng.integers(2, 4, size=rank))
        style = ("overlap", "default", "wide")[int(rng.integers(3))] if rank > 1 or padding == "same" else "overlap"
        if style == "overlap":  # stride smaller than the pool on every axis
            strides = tuple(int(rng.integers(1, p)) for p in pool)
        elif style == "wide":   # stride larger than the pool on some axes (windows skip elements)
            strides = tuple(int(p + rng.integers(0, 2)) for p in pool)
        else:
            strides = None
        kw = dict(pool_size=pool if rank > 1 else pool[0], padding=padding,
                  strides=strides if strides is None or rank > 1 else strides[0])
        cid = (f"{kind.lower()}{rank}d-{padding}-p{'x'.join(map(str, pool))}"
               f"-s{'x'.join(map(str, strides)) if strides else 'None'}-in{'x'.join(map(str, spatial))}")
        cases.append(pytest.param(f"{kind}Pooling{rank}D", rank, kw, spatial, id=cid))
    return cases


@pytest.mark.parametrize("layer_name,rank,pool_kwargs,spatial", _pool_cases())
def test_pooling_forward_and_sgd_step(layer_name, rank, pool_kwargs, spatial):
    """[Conv (so the pooling gradient reaches weights), pooling, Flatten, Dense softmax]."""
    rng = np.random.default_rng(sum(map(ord, layer_name)) + 100 * sum(spatial))
    conv = (f"Conv{rank}D", dict(filters=3, kernel_size=1, activation="tanh"))
    spec = [conv, (layer_name, pool_kwargs), ("Flatten", {})] + head("scce")
    layer_forward_and_step(spec, 1, spatial + (2,), rng, layer_name.lower())


@pytest.mark.parametrize("kind", ["Average", "Max"])
@pytest.mark.parametrize("rank", [1, 2, 3])
def test_global_pooling_forward_and_sgd_step(kind, rank):
    rng = np.random.default_rng(10 * rank + len(kind))
    spatial = tuple(int(v) for v in rng.integers(3, 7, size=rank))
    name = f"Global{kind}Pooling{rank}D"
    spec = [(f"Conv{rank}D", dict(filters=4, kernel_size=2, activation="tanh")), (name, {})] + head("scce")
    layer_forward_and_step(spec, 1, spatial + (3,), rng, name.lower())


def test_max_pooling_ties_input_gradient():
    """Tied maxima: the gradient of each window goes to one input, the first
    maximum, exactly as JAX routes it (overlapping windows add up)."""
    jax = pytest.importorskip("jax")
    rng = np.random.default_rng(8)
    x = rng.integers(0, 3, size=(2, 5, 6, 2)).astype(np.float32)  # few distinct values: many ties
    kw = dict(pool_size=(2, 3), strides=(1, 2), padding="same")
    ours = layers.MaxPooling2D(**kw)
    ours.build(x.shape[1:])
    out, ctx = ours.forward(x, training=True)
    upstream = rng.normal(size=out.shape).astype(np.float32)
    pool = keras.layers.MaxPooling2D(**kw)
    assert_close(out, keras_array(pool(x)), "maxpooling2d-ties", "forward")
    ref = jax.grad(lambda v: (pool(v) * upstream).sum())(x)
    assert_close(ours.backward(ctx, upstream)[0], np.asarray(ref), "maxpooling2d-ties", "input gradient")


def test_global_max_pooling_ties_sgd_step():
    """Tied maxima in global max pooling do not multiply the gradient: inputs
    repeated along the steps give tied conv outputs, and the step still matches
    Keras (which splits a tied gradient evenly, where we give it to the first
    maximum; a 1x1 conv sees the same input at tied positions, so both give the
    same weight gradient unless one of them counts it twice)."""
    rng = np.random.default_rng(9)
    spec = [("Conv1D", dict(filters=3, kernel_size=1)), ("GlobalMaxPooling1D", {})] + head("scce")
    ours, theirs = build_pair(spec, (6, 2), rng)
    x = np.repeat(rng.normal(size=(3, 2, 2)), 3, axis=1).astype(np.float32)  # each step three times
    compile_pair(ours, theirs, "SGD", learning_rate=0.1)
    train_and_compare(ours, theirs, x, targets("scce", 3, rng), "globalmaxpooling1d-ties")


# -------------------------------------------------------- dense, dropout, flatten
@pytest.mark.parametrize("input_shape,dense_kwargs,loss", [
    pytest.param((7,), dict(units=5, activation="relu"), "scce", id="2d-input-relu-bias"),
    pytest.param((7,), dict(units=4, activation="sigmoid", use_bias=False), "mse", id="2d-input-sigmoid-nobias"),
    pytest.param((4, 6), dict(units=5, activation="gelu"), "scce", id="3d-input-acts-on-last-axis"),
])
def test_dense_forward_and_sgd_step(input_shape, dense_kwargs, loss):
    rng = np.random.default_rng(len(input_shape) * 10 + dense_kwargs["units"])
    loss = "mse" if loss == "mse" else "sparse_categorical_crossentropy"
    spec = [("Dense", dense_kwargs), ("Flatten", {})] + head(loss)
    layer_forward_and_step(spec, 0, input_shape, rng, "dense", loss=loss, batch=4)


def test_dropout_rate_zero_forward_and_sgd_step():
    """Dropout(0) is the identity even in training, and the step goes through it."""
    rng = np.random.default_rng(5)
    spec = [("Dense", dict(units=6, activation="tanh")), ("Dropout", dict(rate=0.0))] + head("scce")
    ours, theirs = layer_forward_and_step(spec, 1, (5,), rng, "dropout", training=True)
    h = rng.normal(size=(4, 6)).astype(np.float32)
    np.testing.assert_array_equal(ours.layers[1](h, training=True), h)
    np.testing.assert_array_equal(keras_array(theirs.layers[1](h, training=True)), h)


def test_flatten_forward_and_sgd_step():
    """Flatten keeps Keras' (channels-last, C) order, so a Dense after it lines up."""
    rng = np.random.default_rng(6)
    spec = [("Conv2D", dict(filters=3, kernel_size=2, activation="elu")), ("Flatten", {})] + head("scce")
    layer_forward_and_step(spec, 1, (4, 5, 2), rng, "flatten")


# -------------------------------------------------------- batch normalization
@pytest.mark.parametrize("rank,bn_kwargs", [
    pytest.param(1, dict(momentum=0.9, epsilon=1e-5), id="1d-momentum0.9-eps1e-5"),
    pytest.param(2, dict(), id="2d-keras-defaults"),
    pytest.param(3, dict(center=False, scale=False), id="3d-no-center-no-scale"),
])
def test_batch_normalization_training_and_inference(rank, bn_kwargs):
    """Three SGD steps (gamma, beta, moving statistics and the conv before it
    all agree after each), then the forward in inference mode, which uses the
    moving statistics the steps produced, and in training mode."""
    rng = np.random.default_rng(40 + rank)
    spatial = {1: (9,), 2: (5, 6), 3: (4, 4, 5)}[rank]
    spec = [(f"Conv{rank}D", dict(filters=4, kernel_size=2, padding="same")),
            ("BatchNormalization", bn_kwargs), ("Flatten", {})] + head("scce")
    ours, theirs = build_pair(spec, spatial + (2,), rng)
    compile_pair(ours, theirs, "SGD", learning_rate=0.1)
    bn_ours, bn_keras = ours.layers[1], theirs.layers[1]
    initial = [w.copy() for w in bn_ours.get_weights()]
    for step in range(1, 4):
        x = (rng.normal(size=(4,) + spatial + (2,)) * 2 + 1).astype(np.float32)
        train_and_compare(ours, theirs, x, targets("scce", 4, rng), "batch_norm", step)
    moving = bn_ours.weight_names().index("moving_mean")
    for before, after in zip(initial[moving:], bn_ours.get_weights()[moving:]):
        assert np.abs(after - before).max() > 1e-3, "the moving statistics should have moved"

    x = (rng.normal(size=(5,) + spatial + (2,)) * 2 + 1).astype(np.float32)
    h = ours.layers[0](x)
    assert_close(bn_ours(h, training=False), keras_array(bn_keras(h, training=False)),
                 "batch_norm", "forward training=False")
    assert_close(ours.predict(x), keras_array(theirs.predict(x, verbose=0)), "batch_norm", "predict")
    assert_close(bn_ours(h, training=True), keras_array(bn_keras(h, training=True)),
                 "batch_norm", "forward training=True")
    for name, w, ref in zip(bn_ours.weight_names(), bn_ours.get_weights(), bn_keras.get_weights()):
        assert_close(w, ref, "batch_norm", f"{name} after a training-mode call")


# ----------------------------------------------------------------- optimizers
OPTIMIZER_CASES = [
    pytest.param("SGD", dict(learning_rate=0.1), id="sgd"),
    pytest.param("SGD", dict(learning_rate=0.1, momentum=0.9), id="sgd-momentum"),
    pytest.param("SGD", dict(learning_rate=0.1, momentum=0.9, nesterov=True), id="sgd-nesterov"),
    pytest.param("SGD", dict(learning_rate=0.1, momentum=0.5, clipnorm=0.05), id="sgd-momentum-clipnorm"),
    pytest.param("SGD", dict(learning_rate=0.1, global_clipnorm=0.05), id="sgd-global-clipnorm"),
    pytest.param("SGD", dict(learning_rate=0.1, clipvalue=0.01), id="sgd-clipvalue"),
    pytest.param("SGD", dict(learning_rate=0.1, weight_decay=0.05), id="sgd-weight-decay"),
    pytest.param("Adam", dict(learning_rate=0.01), id="adam"),
    pytest.param("Adam", dict(learning_rate=0.01, amsgrad=True), id="adam-amsgrad"),
    pytest.param("Adam", dict(learning_rate=0.01, clipnorm=0.05), id="adam-clipnorm"),
    pytest.param("AdamW", dict(learning_rate=0.01, weight_decay=0.1), id="adamw"),
    pytest.param("RMSprop", dict(learning_rate=0.01), id="rmsprop"),
    pytest.param("RMSprop", dict(learning_rate=0.01, momentum=0.5, centered=True), id="rmsprop-momentum-centered"),
]


def _opt_model_and_data(rng, steps, loss="scce", activation="softmax", regularizer=None):
    """[Conv1D, Flatten, Dense, Dense] on (10, 3) inputs (the same shapes in every
    optimizer and loss test) and ``steps`` batches of 4 with targets for ``loss``."""
    spec = [("Conv1D", dict(filters=4, kernel_size=3, activation="tanh", kernel_regularizer=regularizer)),
            ("Flatten", {}), ("Dense", dict(units=5, activation="relu")),
            ("Dense", dict(units=N_CLASSES, activation=activation))]
    ours, theirs = build_pair(spec, (10, 3), rng)
    batches = []
    for _ in range(steps):
        x = rng.normal(size=(4, 10, 3)).astype(np.float32)
        labels = rng.integers(0, N_CLASSES, size=4)
        y = {"scce": labels, "cce": np.eye(N_CLASSES, dtype=np.float32)[labels],
             "bce": rng.integers(0, 2, size=(4, N_CLASSES)).astype(np.float32),
             "mse": rng.normal(size=(4, N_CLASSES)).astype(np.float32)}[loss]
        batches.append((x, y))
    return ours, theirs, batches


@pytest.mark.parametrize("optimizer,opt_kwargs", OPTIMIZER_CASES)
def test_optimizer_steps(optimizer, opt_kwargs):
    """Three steps on different batches: momentum / moment state carries over."""
    rng = np.random.default_rng(11)
    ours, theirs, batches = _opt_model_and_data(rng, 3)
    compile_pair(ours, theirs, optimizer, eager=True, **opt_kwargs)
    for step, (x, y) in enumerate(batches, start=1):
        train_and_compare(ours, theirs, x, y, optimizer.lower(), step)
        if step == 1:  # the clipping, if any, was really exercised
            grads = list(ours.last_gradients.values())
            if "clipnorm" in opt_kwargs:
                assert max(np.linalg.norm(g) for g in grads) > opt_kwargs["clipnorm"]
            if "global_clipnorm" in opt_kwargs:
                assert np.sqrt(sum(np.vdot(g, g) for g in grads)) > opt_kwargs["global_clipnorm"]
            if "clipvalue" in opt_kwargs:
                assert max(np.abs(g).max() for g in grads) > opt_kwargs["clipvalue"]
    assert ours.optimizer.iterations == int(keras_array(theirs.optimizer.iterations)) == 3


@pytest.mark.parametrize("schedule,kwargs", [
    pytest.param("ExponentialDecay", dict(initial_learning_rate=0.1, decay_steps=2, decay_rate=0.5), id="exponential"),
    pytest.param("CosineDecay", dict(initial_learning_rate=0.1, decay_steps=3, alpha=0.1), id="cosine"),
])
def test_learning_rate_schedule_steps(schedule, kwargs):
    rng = np.random.default_rng(12)
    ours, theirs, batches = _opt_model_and_data(rng, 3)
    ours.compile(optimizer=optimizers.SGD(learning_rate=getattr(optimizers, schedule)(**kwargs), momentum=0.5),
                 loss="sparse_categorical_crossentropy")
    lr = getattr(keras.optimizers.schedules, schedule)(**kwargs)
    theirs.compile(optimizer=keras.optimizers.SGD(learning_rate=lr, momentum=0.5),
                   loss="sparse_categorical_crossentropy", run_eagerly=True)
    for step, (x, y) in enumerate(batches, start=1):
        train_and_compare(ours, theirs, x, y, schedule.lower(), step)


# ------------------------------------------------------------- weight layout
LAYOUT_SPECS = {
    1: [("Conv1D", dict(filters=4, kernel_size=3, groups=2)), ("BatchNormalization", {}),
        ("MaxPooling1D", {}), ("Conv1D", dict(filters=3, kernel_size=2, use_bias=False)),
        ("GlobalAveragePooling1D", {}), ("Dense", dict(units=N_CLASSES, activation="softmax"))],
    2: [("Conv2D", dict(filters=6, kernel_size=(3, 2), groups=2, activation="relu")),
        ("BatchNormalization", dict(center=False)), ("AveragePooling2D", dict(pool_size=2, padding="same")),
        ("Flatten", {}), ("Dense", dict(units=5, use_bias=False)), ("Dropout", dict(rate=0.0)),
        ("Dense", dict(units=N_CLASSES, activation="softmax"))],
    3: [("Conv3D", dict(filters=4, kernel_size=(2, 3, 2), padding="same")), ("BatchNormalization", dict(scale=False)),
        ("GlobalMaxPooling3D", {}), ("Dense", dict(units=N_CLASSES, activation="softmax"))],
}
LAYOUT_INPUT = {1: (12, 4), 2: (7, 6, 4), 3: (5, 6, 4, 2)}


@pytest.mark.parametrize("rank", [1, 2, 3])
def test_weights_move_between_keras_and_core(rank):
    """``get_weights`` order and shapes are Keras': conv kernel (k.., C_in/groups,
    filters), bias, dense kernel (in, out), batch norm [gamma, beta, moving_mean,
    moving_variance] (less the switched-off ones); weights set in Keras and
    loaded into our model give Keras' predictions (the other direction is what
    every other test here does)."""
    rng = np.random.default_rng(rank)
    spec = LAYOUT_SPECS[rank]
    ours = Sequential([Input(shape=LAYOUT_INPUT[rank])] + [getattr(layers, n)(**kw) for n, kw in spec], seed=0)
    theirs = keras.Sequential([keras.Input(shape=LAYOUT_INPUT[rank])] + [keras_layer(n, kw) for n, kw in spec])
    for lo, lk in zip(ours.layers, theirs.layers):
        assert [w.shape for w in lo.get_weights()] == [tuple(w.shape) for w in lk.weights], lo.name
        assert lo.weight_names() == [w.name for w in lk.weights], lo.name
    conv = ours.layers[0]
    c_in = LAYOUT_INPUT[rank][-1]
    assert conv.get_weights()[0].shape == conv.kernel_size + (c_in // conv.groups, conv.filters)
    dense = ours.layers[-1]
    assert dense.get_weights()[0].shape == (dense.input_shape[-1], N_CLASSES)

    ws = []
    for w, v in zip(theirs.get_weights(), theirs.weights):
        if v.name in ("gamma", "moving_variance"):
            w = rng.uniform(0.5, 1.5, w.shape)
        elif v.name == "kernel":
            w = rng.normal(0, 1 / np.sqrt(np.prod(w.shape[:-1])), w.shape)
        else:
            w = rng.normal(0, 0.2, w.shape)
        ws.append(w.astype(np.float32))
    theirs.set_weights(ws)
    ours.set_weights(theirs.get_weights())
    for w, ref in zip(ours.get_weights(), ws):
        np.testing.assert_array_equal(w, ref)
    x = rng.normal(size=(3,) + LAYOUT_INPUT[rank]).astype(np.float32)
    assert_close(ours.predict(x), keras_array(theirs.predict(x, verbose=0)), f"layout{rank}d", "predict")


# --------------------------------------------------------------------- losses
LOSS_CASES = [
    pytest.param("CategoricalCrossentropy", {}, "cce", "softmax", {}, id="cce-softmax"),
    pytest.param("CategoricalCrossentropy", dict(from_logits=True), "cce", None, {}, id="cce-from-logits"),
    pytest.param("SparseCategoricalCrossentropy", dict(from_logits=True), "scce", None, {}, id="scce-from-logits"),
    pytest.param("BinaryCrossentropy", {}, "bce", "sigmoid", {}, id="bce-sigmoid"),
    pytest.param("BinaryCrossentropy", dict(from_logits=True), "bce", None, {}, id="bce-from-logits"),
    pytest.param("MeanSquaredError", {}, "mse", "tanh", {}, id="mse-tanh"),
    pytest.param("SparseCategoricalCrossentropy", {}, "scce", "softmax", dict(sample_weight=True),
                 id="scce-sample-weight"),
    pytest.param("SparseCategoricalCrossentropy", {}, "scce", "softmax", dict(regularizer="l2"),
                 id="scce-l2-kernel-regularizer"),
]


@pytest.mark.parametrize("loss_name,loss_kwargs,target,activation,extra", LOSS_CASES)
def test_loss_steps(loss_name, loss_kwargs, target, activation, extra):
    """Two SGD steps under each loss (and with sample weights, and an L2 kernel
    penalty, which Keras adds to the loss it reports)."""
    rng = np.random.default_rng(13)
    ours, theirs, batches = _opt_model_and_data(rng, 2, target, activation, extra.get("regularizer"))
    ours.compile(optimizer=optimizers.SGD(learning_rate=0.1), loss=getattr(losses, loss_name)(**loss_kwargs))
    theirs.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1),
                   loss=getattr(keras.losses, loss_name)(**loss_kwargs), run_eagerly=True)
    for step, (x, y) in enumerate(batches, start=1):
        sw = rng.uniform(0.2, 2.0, size=len(x)).astype(np.float32) if extra.get("sample_weight") else None
        train_and_compare(ours, theirs, x, y, loss_name.lower(), step, sample_weight=sw)

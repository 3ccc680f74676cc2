"""Losses: gradients against finite differences, the fused softmax/sigmoid
paths, and stability for huge logits."""
import numpy as np
import pytest

from core import Input, Sequential, layers, losses, optimizers, regularizers
from tests.core.gradcheck import numeric_grad, sample_indices


def _targets(name, rng, shape):
    if name == "sparse_categorical_crossentropy":
        return rng.integers(0, shape[1], shape[0])
    if name == "categorical_crossentropy":
        return np.eye(shape[1])[rng.integers(0, shape[1], shape[0])]
    if name == "binary_crossentropy":
        return rng.integers(0, 2, shape).astype(float)
    return rng.normal(size=shape)


@pytest.mark.parametrize("name", ["sparse_categorical_crossentropy", "categorical_crossentropy",
                                  "binary_crossentropy", "mse"])
@pytest.mark.parametrize("from_logits", [False, True])
def test_loss_gradient_matches_finite_differences(name, from_logits):
    rng = np.random.default_rng(0)
    loss = losses.get(name)
    if name != "mse":
        loss.from_logits = from_logits
    z = rng.normal(size=(5, 4))
    pred = z if (from_logits or name == "mse") else (
        np.exp(z) / np.exp(z).sum(1, keepdims=True) if "categorical" in name else 1 / (1 + np.exp(-z)))
    y = _targets(name, rng, pred.shape)
    w = rng.uniform(0.5, 2.0, len(pred))
    value, grad = loss.value_and_grad(y, pred, w)
    num = numeric_grad(lambda: loss.value_and_grad(y, pred, w)[0], pred, np.arange(pred.size))
    np.testing.assert_allclose(grad.reshape(-1), num, rtol=1e-5, atol=1e-8)
    assert np.isfinite(value) and value > 0


@pytest.mark.parametrize("name,act", [("sparse_categorical_crossentropy", "softmax"),
                                      ("categorical_crossentropy", "softmax"),
                                      ("binary_crossentropy", "sigmoid")])
def test_fused_logits_path_equals_probability_path(name, act):
    rng = np.random.default_rng(1)
    loss = losses.get(name)
    z = rng.normal(size=(6, 3))
    y = _targets(name, rng, z.shape)
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True) if act == "softmax" else 1 / (1 + np.exp(-z))
    v_logits, g_logits = loss.value_and_grad_logits(y, z)
    v_probs, g_probs = loss.value_and_grad(y, p)
    assert v_logits == pytest.approx(v_probs, rel=1e-9)
    # chain rule through the activation gives the same logit gradient
    from core import activations
    a = activations.get(act)
    np.testing.assert_allclose(a.backward(z, p, g_probs), g_logits, rtol=1e-7, atol=1e-10)


@pytest.mark.parametrize("loss,act,units", [("sparse_categorical_crossentropy", "softmax", 4),
                                            ("binary_crossentropy", "sigmoid", 1)])
def test_huge_logits_give_finite_loss_and_gradients(loss, act, units):
    """Logits of magnitude 1e4 overflow a naive softmax; the fused form stays finite."""
    model = Sequential([Input((3,)), layers.Dense(units, activation=act)], seed=0)
    model.compile(optimizer=optimizers.SGD(1e-9), loss=loss)
    model.set_weights([np.array([[1e4, -1e4, 0, 5e3], [0, 1e4, -1e4, 1], [1, 2, 3, 4]])[:, :units].astype(np.float32),
                       np.zeros(units, np.float32)])
    x = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], np.float32)
    y = np.array([1, 0]) if units > 1 else np.array([0.0, 1.0])
    value = model.train_on_batch(x, y)
    assert np.isfinite(value) and value > 1e3  # confidently wrong: a huge but finite loss
    assert model.last_gradients and all(np.isfinite(g).all() for g in model.last_gradients.values())


def test_model_gradient_with_regularizer_matches_finite_differences(float64):
    """The whole training loss (fused cross-entropy + L2 penalties) against finite differences."""
    rng = np.random.default_rng(4)
    model = Sequential([Input((6, 5, 2)),
                        layers.Conv2D(3, 3, padding="same", activation="relu", kernel_regularizer=regularizers.L2(0.01)),
                        layers.BatchNormalization(), layers.MaxPooling2D(2), layers.Flatten(),
                        layers.Dense(4, activation="softmax", kernel_regularizer="l2")], seed=3)
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    x = rng.normal(size=(5, 6, 5, 2))
    y = rng.integers(0, 4, 5)

    def loss_value():
        outputs, _ = model.run_forward(x, training=True, logits=True, step=0)
        value, _ = model.loss.value_and_grad_logits(y, outputs[-1])
        return value + sum(layer.regularization_loss() for layer in model.layers)

    model.optimizer.learning_rate = 0.0  # the step leaves the weights as they are
    model.train_on_batch(x, y)
    for i, layer in enumerate(model.layers):
        for name in layer.trainable_names():
            analytic = model.last_gradients[f"{i}/{name}"].copy()
            idx = sample_indices(analytic.size, rng, 10)
            num = numeric_grad(loss_value, layer.params[name], idx)
            np.testing.assert_allclose(analytic.reshape(-1)[idx], num, rtol=1e-5, atol=1e-7,
                                       err_msg=f"layer {i} {name}")

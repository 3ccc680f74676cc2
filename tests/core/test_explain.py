"""core.explain: exact gradients, geometry mapping and errors, in 1-D, 2-D and 3-D."""
import numpy as np
import pytest

from core import Input, Sequential, config, layers
from core.exceptions import ConfigError, InputError, ShapeError
from core.explain import (feature_maps, find_conv_layer, grad_cam, guided_grad_cam, integrated_gradients,
                          receptive_field_centres, saliency, to_input_grid)


def _model(rank, head="gap", classes=3):
    conv = {1: layers.Conv1D, 2: layers.Conv2D, 3: layers.Conv3D}[rank]
    pool = {1: layers.MaxPooling1D, 2: layers.MaxPooling2D, 3: layers.MaxPooling3D}[rank]
    gap = {1: layers.GlobalAveragePooling1D, 2: layers.GlobalAveragePooling2D, 3: layers.GlobalAveragePooling3D}[rank]
    shape = {1: (20, 2), 2: (10, 9, 2), 3: (8, 7, 6, 1)}[rank]
    stack = [Input(shape), conv(4, 3, padding="same", use_bias=False), layers.BatchNormalization(),
             layers.Activation("relu"), pool(2), conv(5, 3, strides=2 if rank == 1 else 1, padding="same",
                                                     activation="tanh")]
    stack += [gap()] if head == "gap" else [layers.Flatten(), layers.Dropout(0.3)]
    stack.append(layers.Dense(classes, activation="softmax" if classes > 1 else "sigmoid"))
    model = Sequential(stack, seed=rank)
    bn = model.layers[1]  # non-trivial inference statistics
    rng = np.random.default_rng(0)
    bn.params["moving_mean"] = rng.normal(0, 0.3, bn.params["moving_mean"].shape)
    bn.params["moving_variance"] = rng.uniform(0.5, 2.0, bn.params["moving_variance"].shape)
    return model


def _scores(model, x):
    outputs, _ = model.run_forward(x, training=False, context=False, logits=True)
    return np.array(outputs[-1], copy=True)


@pytest.mark.parametrize("rank", [1, 2, 3])
@pytest.mark.parametrize("head", ["gap", "flatten"])
def test_saliency_is_the_finite_difference_gradient(rank, head):
    with config.floatx_scope("float64"):
        model = _model(rank, head)
    rng = np.random.default_rng(rank)
    x = rng.normal(size=(3,) + model.input_shape[1:])
    cls = np.array([0, 2, 1])
    grad = saliency(model, x, class_index=cls)
    assert grad.shape == x.shape and grad.dtype == np.float64
    eps = 1e-6
    flat = [np.unravel_index(i, x.shape[1:]) for i in rng.choice(np.prod(x.shape[1:]), 20, replace=False)]
    for n in range(3):
        for idx in flat:
            up, down = x.copy(), x.copy()
            up[(n,) + idx] += eps
            down[(n,) + idx] -= eps
            numeric = (_scores(model, up)[n, cls[n]] - _scores(model, down)[n, cls[n]]) / (2 * eps)
            assert grad[(n,) + idx] == pytest.approx(numeric, rel=1e-5, abs=1e-8)


def test_single_sigmoid_unit_has_two_classes():
    with config.floatx_scope("float64"):
        model = _model(1, classes=1)
    x = np.random.default_rng(0).normal(size=(2, 20, 2))
    g1 = saliency(model, x, class_index=1)
    g0 = saliency(model, x, class_index=0)
    np.testing.assert_allclose(g0, -g1)
    with pytest.raises(InputError, match="class_index 2 is out of range"):
        saliency(model, x, class_index=2)


def test_integrated_gradients_add_up_to_the_score_difference():
    with config.floatx_scope("float64"):
        model = _model(2)
    x = np.random.default_rng(1).normal(size=(4,) + model.input_shape[1:])
    attr = integrated_gradients(model, x, class_index=1, steps=64)
    gap = _scores(model, x)[:, 1] - _scores(model, np.zeros_like(x))[:, 1]
    np.testing.assert_allclose(attr.reshape(4, -1).sum(axis=1), gap, rtol=2e-3, atol=1e-4)


def test_smoothgrad_is_seeded_and_averages_noisy_gradients():
    model = _model(1)
    x = np.random.default_rng(2).normal(size=(3, 20, 2)).astype(np.float32)
    a = saliency(model, x, smooth=5, seed=1)
    assert np.array_equal(a, saliency(model, x, smooth=5, seed=1))
    assert not np.array_equal(a, saliency(model, x, smooth=5, seed=2))
    assert not np.allclose(a, saliency(model, x))


@pytest.mark.parametrize("rank", [1, 2, 3])
def test_grad_cam_maps_are_on_the_input_grid(rank):
    model = _model(rank)
    x = np.random.default_rng(rank).normal(size=(5,) + model.input_shape[1:]).astype(np.float32)
    maps, cls = grad_cam(model, x, return_classes=True, batch_size=2)
    assert maps.shape == x.shape[:-1] and (maps >= 0).all()
    np.testing.assert_array_equal(cls, model.predict(x).argmax(axis=1))
    first = grad_cam(model, x, layer=0, interpolation="linear")   # the first convolution, full resolution
    assert first.shape == x.shape[:-1]
    hires = grad_cam(model, x, weighting="elementwise")
    assert hires.shape == x.shape[:-1]


def test_grad_cam_is_the_weighted_sum_of_the_block_output():
    """Against a direct computation: features = output of conv -> BN -> ReLU (layer 2),
    weights = spatial mean of d score / d features, map = ReLU(sum_c w_c A_c) carried back."""
    with config.floatx_scope("float64"):
        model = _model(2)
    x = np.random.default_rng(5).normal(size=(2,) + model.input_shape[1:])
    outputs, contexts = model.run_forward(x, training=False, context=True, logits=True)
    grad = np.zeros_like(outputs[-1])
    grad[:, 2] = 1
    dfeat, _ = model.run_backward(contexts, grad, down_to=3)
    cam = np.maximum((outputs[2] * dfeat.mean(axis=(1, 2), keepdims=True)).sum(-1), 0)
    expected = to_input_grid(cam, model, 0, "linear")
    np.testing.assert_allclose(grad_cam(model, x, class_index=2, layer=0, interpolation="linear"), expected,
                               rtol=1e-10, atol=1e-12)


def test_guided_grad_cam_is_grad_cam_times_the_smoothed_gradient_magnitude():
    from scipy import ndimage

    with config.floatx_scope("float64"):
        model = _model(3)
    x = np.random.default_rng(3).normal(size=(2,) + model.input_shape[1:])
    cam, cls = grad_cam(model, x, return_classes=True)
    grad = np.abs(saliency(model, x, class_index=cls)).max(axis=-1)
    expected = cam * ndimage.gaussian_filter(grad, (0, 1.0, 1.0, 1.0), mode="nearest")
    np.testing.assert_allclose(guided_grad_cam(model, x), expected, rtol=1e-10)
    np.testing.assert_allclose(guided_grad_cam(model, x, smoothing=0), cam * grad, rtol=1e-10)
    with pytest.raises(InputError, match="smoothing"):
        guided_grad_cam(model, x, smoothing=-1)


def test_receptive_field_centres_follow_strides_padding_and_pooling():
    model = Sequential([Input((40, 1)), layers.Conv1D(2, 5, padding="valid"), layers.MaxPooling1D(2),
                        layers.Conv1D(2, 3, strides=2, padding="same", dilation_rate=1), layers.Flatten(),
                        layers.Dense(2, activation="softmax")], seed=0)
    # layer 2: stride 2, 'same' on 18 steps pads 0 before / 1 after -> centre 2o + 1 (span 3, pad 0)
    # pool: 2 * (2o + 1) + 0.5 ; conv valid k5: + 2  ->  4o + 4.5; receptive field (3-1)*2+2 = 6, +4 = 10
    assert receptive_field_centres(model, 2) == [(4.0, 4.5, 10)]
    # a map with one hot cell lands, on the input grid, at that cell's centre
    cam = np.zeros((1, model.layers[2].output_shape[0]))
    cam[0, 3] = 1.0
    mapped = to_input_grid(cam, model, 2, "linear")
    assert mapped.shape == (1, 40)
    assert mapped[0].argmax() in (16, 17) and mapped[0, 16] == mapped[0, 17] == 0.875   # 4*3 + 4.5 = 16.5
    assert mapped[0, 12] == 0 and mapped[0, 21] == 0


def test_feature_maps_of_the_first_block():
    model = _model(3)
    x = np.random.default_rng(0).normal(size=(2,) + model.input_shape[1:]).astype(np.float32)
    maps = feature_maps(model, x)
    assert maps.shape == (2, 8, 7, 6, 4) and (maps >= 0).all()   # after the ReLU of the block


def test_bad_input_raises_our_errors_naming_the_argument():
    model = _model(2)
    x = np.zeros((2,) + model.input_shape[1:], np.float32)
    with pytest.raises(ConfigError, match="not a convolution"):
        grad_cam(model, x, layer=1)                       # batch normalization
    with pytest.raises(ConfigError, match="no layer named 'nope'"):
        grad_cam(model, x, layer="nope")
    with pytest.raises(ConfigError, match="out of range"):
        grad_cam(model, x, layer=99)
    with pytest.raises(InputError, match="class_index 3 is out of range"):
        grad_cam(model, x, class_index=3)
    with pytest.raises(InputError, match="class_index"):
        saliency(model, x, class_index=1.5)
    with pytest.raises(ShapeError, match="class_index"):
        grad_cam(model, x, class_index=[0, 1, 2])
    with pytest.raises(ShapeError, match="add the batch axis"):
        grad_cam(model, x[0])
    with pytest.raises(ShapeError, match=r"x must have shape \(N, 10, 9, 2\)"):
        saliency(model, np.zeros((2, 9, 9, 2)))
    with pytest.raises(InputError, match="smooth"):
        saliency(model, x, smooth=-1)
    with pytest.raises(InputError, match="interpolation"):
        grad_cam(model, x, interpolation="nearest")
    with pytest.raises(InputError, match="weighting"):
        grad_cam(model, x, weighting="max")
    with pytest.raises(ShapeError, match="baseline"):
        integrated_gradients(model, x, baseline=np.zeros(3))
    dense_only = Sequential([Input((4,)), layers.Dense(2, activation="softmax")])
    with pytest.raises(ConfigError, match="no convolution layer"):
        grad_cam(dense_only, np.zeros((1, 4)))
    assert find_conv_layer(model) == 4 and find_conv_layer(model, model.layers[0]) == 0


def test_grad_cam_through_residual_and_inception_blocks():
    """Blocks of parallel branches (core.layers.Branches) count as convolutions: Grad-CAM
    explains them by default, and their geometry is that of the branch that sees the most."""
    from core import Input, Sequential, layers
    from core.explain import conv_layers, first_convolution, grad_cam, receptive_field_centres

    model = Sequential([
        Input((24, 2)),
        layers.Branches([[layers.Conv1D(3, 3, padding="same", activation="relu"),
                          layers.Conv1D(3, 5, padding="same")], [layers.Conv1D(3, 1)]], merge="add"),
        layers.Activation("relu"),
        layers.Branches([[layers.Conv1D(2, 3, strides=2, padding="same")], [layers.Conv1D(2, 1, strides=2)]],
                        merge="concat"),
        layers.GlobalAveragePooling1D(), layers.Dense(2, activation="softmax")], seed=0)
    assert conv_layers(model) == [0, 2]
    assert first_convolution(model) is model.layers[0].branches[0][0]
    assert receptive_field_centres(model, 0) == [(1.0, 0.0, 7)]
    (scale, offset, size), = receptive_field_centres(model, 2)
    assert scale == 2.0 and size == 9 and offset == 1.0  # a stride-2 "same" window of 3 centres output 0 on input 1
    x = np.random.default_rng(0).normal(size=(3, 24, 2)).astype(np.float32)
    maps = grad_cam(model, x)
    assert maps.shape == (3, 24) and np.isfinite(maps).all() and (maps >= 0).all()

"""The PyTorch side of the fit comparisons (``vision_fit``, ``scan_fit``) must run the
network our classifiers build: ``fit_compare.torch_twin`` is checked here by copying
our weights into the twin and comparing the two networks' outputs."""
import numpy as np
import pytest

from benchmarks.fit_compare import torch_twin

torch = pytest.importorskip("torch")


def _copy_weights(model, twin):
    """Our weights into ``twin`` (same layer order); the first dense layer after a
    flatten gets its rows reordered from channels-last to channels-first."""
    ours = [lay for lay in model.layers if lay.params]
    theirs = [mod for mod in twin if any(True for _ in mod.parameters()) or hasattr(mod, "running_mean")]
    assert len(ours) == len(theirs)
    flat = [tuple(lay.input_shape) for lay in model.layers if type(lay).__name__ == "Flatten"]
    flat_shape = flat[0] if flat else None
    for lay, mod in zip(ours, theirs):
        p = {k: np.asarray(v) for k, v in lay.params.items()}
        with torch.no_grad():
            if "gamma" in p:
                for ours_name, theirs_name in (("gamma", "weight"), ("beta", "bias"),
                                               ("moving_mean", "running_mean"), ("moving_variance", "running_var")):
                    getattr(mod, theirs_name).copy_(torch.from_numpy(p[ours_name]))
                continue
            k = p["kernel"]
            if k.ndim > 2:  # (*kernel, C_in, filters) -> (filters, C_in, *kernel)
                k = k.transpose((k.ndim - 1, k.ndim - 2) + tuple(range(k.ndim - 2)))
            else:
                if flat_shape is not None and k.shape[0] == int(np.prod(flat_shape)):
                    k = k.reshape(flat_shape + (-1,))
                    k = np.moveaxis(k, -2, 0).reshape(-1, k.shape[-1])  # rows channels-first
                    flat_shape = None
                k = k.T
            mod.weight.copy_(torch.from_numpy(np.ascontiguousarray(k)))
            if "bias" in p:
                mod.bias.copy_(torch.from_numpy(p["bias"]))


def _agree(model, shape, seed=0):
    rng = np.random.default_rng(seed)
    for lay in model.layers:  # moving statistics other than 0 and 1, so that they are checked
        if "moving_mean" in lay.params:
            lay.params["moving_mean"][...] = rng.normal(size=lay.params["moving_mean"].shape)
            lay.params["moving_variance"][...] = rng.uniform(0.5, 2, size=lay.params["moving_variance"].shape)
            lay.params["beta"][...] = rng.normal(size=lay.params["beta"].shape)
    twin = torch_twin(model).eval()
    _copy_weights(model, twin)
    x = rng.normal(size=(3,) + shape).astype(np.float32)
    ours = model.predict(x)
    with torch.no_grad():
        theirs = torch.softmax(twin(torch.from_numpy(np.ascontiguousarray(np.moveaxis(x, -1, 1)))), 1).numpy()
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-6)
    n_ours = sum(int(np.prod(v.shape)) for lay in model.layers for k, v in lay.params.items()
                 if k in lay.trainable_names())
    assert n_ours == sum(p.numel() for p in twin.parameters())


def test_twin_of_the_default_image_network_computes_the_same_function():
    import vision
    _agree(vision.ImageClassifier().build_network((28, 28, 1), 10), (28, 28, 1))


def test_twin_of_the_default_scan_network_computes_the_same_function():
    import medical
    _agree(medical.ScanClassifier().build_network((12, 12, 12, 1), 2), (12, 12, 12, 1))


def test_twin_in_training_normalizes_with_the_batch_and_updates_the_same_moving_statistics():
    import medical
    model = medical.ScanClassifier().build_network((9, 9, 9, 1), 2)  # batch norm, no dropout
    twin = torch_twin(model).train()
    _copy_weights(model, twin)
    x = np.random.default_rng(1).normal(size=(4, 9, 9, 9, 1)).astype(np.float32)
    outputs, _ = model.run_forward(x, training=True, logits=True)
    with torch.no_grad():
        theirs = twin(torch.from_numpy(np.ascontiguousarray(np.moveaxis(x, -1, 1)))).numpy()
    np.testing.assert_allclose(outputs[-1], theirs, rtol=1e-4, atol=1e-5)
    norms = [m for m in twin if isinstance(m, torch.nn.BatchNorm3d)]
    ours = [lay for lay in model.layers if "moving_mean" in lay.params]
    assert len(norms) == len(ours) == 3
    for lay, mod in zip(ours, norms):
        n = 4 * int(np.prod(lay.input_shape[:-1]))  # positions in the batch
        np.testing.assert_allclose(lay.params["moving_mean"], mod.running_mean.numpy(), rtol=1e-4, atol=1e-6)
        # PyTorch keeps the unbiased variance (the docstring of torch_twin)
        np.testing.assert_allclose(lay.params["moving_variance"] - 0.9,
                                   (mod.running_var.numpy() - 0.9) * (n - 1) / n, rtol=1e-4, atol=1e-6)


def test_twin_of_the_default_image_network_has_its_layers_in_order():
    import vision
    nn = torch.nn
    twin = torch_twin(vision.ImageClassifier().build_network((28, 28, 1), 10))
    assert [type(m) for m in twin] == [nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.MaxPool2d] * 2 + [
        nn.Flatten, nn.Dropout, nn.Linear, nn.ReLU, nn.Linear]
    assert [m.p for m in twin if isinstance(m, nn.Dropout)] == [0.1]
    assert [m.momentum for m in twin if isinstance(m, nn.BatchNorm2d)] == [0.01, 0.01]


def test_twin_follows_the_network_not_a_copy_of_it():
    import vision
    narrow = vision.networks.lenet5_bn((28, 28, 1), 10, dense=(64,), dropout=0.3)
    assert [m.p for m in torch_twin(narrow) if isinstance(m, torch.nn.Dropout)] == [0.3]
    assert [m.out_features for m in torch_twin(narrow) if isinstance(m, torch.nn.Linear)] == [64, 10]


def test_twin_pools_a_same_padded_odd_input_as_ours():
    from core import Input, Sequential, layers
    model = Sequential([Input(shape=(7, 7, 2)), layers.Conv2D(3, 3, padding="same"),
                        layers.MaxPooling2D(2, padding="same"), layers.Conv2D(2, 2), layers.MaxPooling2D(2),
                        layers.Flatten(), layers.Dense(3, activation="softmax")])
    _agree(model, (7, 7, 2))


def _refused():
    from core import layers
    yield "conv2d", layers.Conv2D(4, 3, strides=2)
    yield "conv2d", layers.Conv2D(4, 3, dilation_rate=2)
    yield "conv2d", layers.Conv2D(4, 3, groups=2)
    yield "conv2d", layers.Conv2D(4, 2, padding="same")
    yield "conv2d", layers.Conv2D(4, 3, activation="tanh")
    yield "max_pooling2d", layers.MaxPooling2D(5, padding="same")  # on 8x8: pads one before the data
    yield "max_pooling2d", layers.MaxPooling2D(2, strides=1)
    yield "average_pooling2d", layers.AveragePooling2D(2)
    yield "batch_normalization", layers.BatchNormalization(center=False)
    yield "dropout", layers.Dropout(0.5, noise_shape=(None, 1, 1, 4))


@pytest.mark.parametrize("name,layer", list(_refused()), ids=lambda v: v if isinstance(v, str) else "")
def test_twin_names_a_layer_it_cannot_translate(name, layer):
    from core import Input, Sequential, layers
    model = Sequential([Input(shape=(8, 8, 4)), layer, layers.Flatten(), layers.Dense(2, activation="softmax")])
    with pytest.raises(ValueError, match=name):
        torch_twin(model)


def test_twin_refuses_causal_padding_and_frozen_layers():
    from core import Input, Sequential, layers
    causal = Sequential([Input(shape=(9, 2)), layers.Conv1D(3, 3, padding="causal"), layers.Flatten(),
                         layers.Dense(2, activation="softmax")])
    with pytest.raises(ValueError, match="causal"):
        torch_twin(causal)
    frozen = Sequential([Input(shape=(4,)), layers.Dense(3, trainable=False), layers.Dense(2, activation="softmax")])
    with pytest.raises(ValueError, match="frozen"):
        torch_twin(frozen)


def test_twin_keeps_a_softmax_that_is_not_the_last_layer():
    from core import Input, Sequential, layers
    model = Sequential([Input(shape=(5,)), layers.Dense(4, activation="softmax"), layers.Dense(3, activation="softmax")])
    _agree(model, (5,))

"""``Activation``: applies an activation function as a layer of its own."""
from .base import ActivationMixin, Layer


class Activation(ActivationMixin, Layer):
    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        self._init_activation(activation)

    def forward(self, x, training=False):
        return self._activate(x)

    def backward(self, grad, need_input_grad=True, pre_activation=False):
        return self._activation_backward(grad, pre_activation) if need_input_grad else None

    def get_config(self):
        cfg = super().get_config()
        cfg["activation"] = self.activation.serialize()
        return cfg


class ReLU(Activation):
    def __init__(self, **kwargs):
        kwargs.pop("activation", None)
        super().__init__("relu", **kwargs)

    def get_config(self):
        cfg = super().get_config()
        cfg.pop("activation")
        return cfg


class Softmax(ReLU):
    def __init__(self, **kwargs):
        kwargs.pop("activation", None)
        Activation.__init__(self, "softmax", **kwargs)

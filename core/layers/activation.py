"""``Activation``: applies an activation function as a layer of its own
(``ReLU`` and ``Softmax`` are the Keras shorthands for two of them)."""
from .base import ActivationMixin, Layer


class Activation(ActivationMixin, Layer):
    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        self._init_activation(activation)

    def forward(self, x, training=False, rng=None, *, context=None, workspace=None, activation=True):
        keep = self._keep(training, context)
        y, act = self._activate(x, activation, keep, owned=False)  # never overwrite the input
        return y, self._context(keep, **act)

    def backward(self, ctx, dy, need_input_grad=True, *, workspace=None):
        ctx = self._require_context(ctx)
        return (self._activation_backward(ctx, dy) if need_input_grad else None), {}

    def get_config(self):
        cfg = super().get_config()
        cfg["activation"] = self.activation.serialize()
        return cfg


class _FixedActivation(Activation):
    """An ``Activation`` layer whose function is fixed by the class."""
    function = None

    def __init__(self, **kwargs):
        if "activation" in kwargs:
            from ..exceptions import ConfigError
            raise ConfigError(f"{type(self).__name__} takes no activation argument (it is {self.function!r})")
        super().__init__(self.function, **kwargs)

    def get_config(self):
        cfg = super().get_config()
        cfg.pop("activation")
        return cfg


class ReLU(_FixedActivation):
    function = "relu"


class Softmax(_FixedActivation):
    function = "softmax"

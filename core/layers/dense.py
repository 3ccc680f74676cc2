"""Fully connected layer: ``y = activation(x @ kernel + bias)``.

Shapes: input ``(N, ..., in)``, kernel ``(in, units)``, bias ``(units,)``,
output ``(N, ..., units)``; like Keras, extra middle axes are kept and the
product acts on the last one.
"""
import numpy as np

from ..exceptions import ConfigError
from .base import ActivationMixin, KernelMixin, Layer


class Dense(ActivationMixin, KernelMixin, Layer):
    def __init__(self, units, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(units, (int, np.integer)) or units < 1:
            raise ConfigError(f"Dense: units must be a positive int, got {units!r}")
        self.units = int(units)
        self._init_activation(activation)
        self._init_kernel(use_bias, kernel_initializer, bias_initializer, kernel_regularizer, bias_regularizer)

    def _build(self, input_shape):
        self.add_weight("kernel", (input_shape[-1], self.units), self.kernel_initializer)
        if self.use_bias:
            self.add_weight("bias", (self.units,), self.bias_initializer)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def forward(self, x, training=False):
        z = x @ self.params["kernel"]
        if self.use_bias:
            z += self.params["bias"]
        if training:
            self._x = x
        return self._activate(z, owned=True)

    def backward(self, grad, need_input_grad=True, pre_activation=False):
        dz = self._activation_backward(grad, pre_activation)
        x2 = self._x.reshape(-1, self._x.shape[-1])
        dz2 = dz.reshape(-1, self.units)
        self.grads["kernel"] = x2.T @ dz2
        if self.use_bias:
            self.grads["bias"] = dz2.sum(axis=0)
        if not need_input_grad:
            return None
        return dz @ self.params["kernel"].T

    def get_config(self):
        cfg = super().get_config()
        cfg.update({"units": self.units, "activation": self.activation.serialize()})
        cfg.update(self._kernel_config())
        return cfg

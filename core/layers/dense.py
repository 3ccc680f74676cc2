"""Fully connected layer: ``y = activation(x @ kernel + bias)``.

Shapes: input ``(N, ..., in)``, kernel ``(in, units)``, bias ``(units,)``,
output ``(N, ..., units)``; like Keras, extra middle axes are kept and the
product acts on the last one.
"""
import numpy as np

from .. import blas
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

    def _build(self, input_shape, rng):
        self.add_weight("kernel", (input_shape[-1], self.units), self.kernel_initializer, rng)
        if self.use_bias:
            self.add_weight("bias", (self.units,), self.bias_initializer, rng)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def forward(self, x, training=False, rng=None, *, context=None, workspace=None, activation=True):
        keep = self._keep(training, context)
        z = self._output(x, self._workspace(workspace), self.params["kernel"], self.params.get("bias"))
        y, act = self._activate(z, activation, keep, owned=True)
        return y, self._context(keep, x=x, **act)

    def infer(self, x, workspace, kernel, bias, activation):
        """Inference output for a given ``kernel`` and ``bias`` (``None``: none), with ``activation``
        applied in place (``core.inference`` passes batch norm folded into them): no context."""
        z = self._output(x, self._workspace(workspace), kernel, bias)
        return z if activation is None else activation.forward(z, out=z)

    def _output(self, x, ws, kernel, bias):
        z = ws.take("dense.z", x.shape[:-1] + (self.units,), x.dtype)
        blas.matmul(x.reshape(-1, x.shape[-1]), kernel, out=z.reshape(-1, self.units))
        if bias is not None:
            z += bias
        return z

    def backward(self, ctx, dy, need_input_grad=True, *, workspace=None):
        ctx = self._require_context(ctx)
        dz = self._activation_backward(ctx, dy)
        x = ctx["x"]
        dz2 = dz.reshape(-1, self.units)
        grads = {"kernel": blas.dot(x.reshape(-1, x.shape[-1]).T, dz2)}
        if self.use_bias:
            grads["bias"] = dz2.sum(axis=0)
        if not need_input_grad:
            return None, grads
        return blas.matmul(dz2, self.params["kernel"].T).reshape(x.shape), grads

    def get_config(self):
        cfg = super().get_config()
        cfg.update({"units": self.units, "activation": self.activation.serialize()})
        cfg.update(self._kernel_config())
        return cfg

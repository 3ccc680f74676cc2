"""Element-wise activations and softmax, each with its exact derivative.

An activation is an object with ``forward(z, out=None) -> a`` and
``backward(z, a, grad_a) -> grad_z``; ``a`` is what ``forward`` returned, so
functions whose derivative is cheapest from the output (relu, sigmoid, tanh,
softmax) reuse it. Those declare ``output_only = True``: their ``backward``
never reads ``z``, so a layer may compute them in place (``out=z``) and keep
only the output. ``identity`` marks the linear activation. ``monotone``
marks those that never decrease, as computed in floating point (relu, leaky
relu with a slope >= 0, linear): they commute exactly with a maximum, so the
inference path may max-pool first and apply them to the smaller pooled array.
"""
import math

import numpy as np
from scipy import special

from .exceptions import ConfigError


class Activation:
    name = "base"
    #: ``backward`` needs only the output ``a`` (``z`` may be overwritten by ``forward(z, out=z)``)
    output_only = False
    #: the activation is the identity
    identity = False
    #: ``forward`` never decreases (in floating point): ``max(f(a), f(b)) == f(max(a, b))``
    monotone = False

    def forward(self, z, out=None):
        a = self._forward(z)
        if out is None:
            return a
        np.copyto(out, a)
        return out

    def _forward(self, z):
        raise NotImplementedError

    def backward(self, z, a, grad):
        raise NotImplementedError

    def get_config(self):
        return {}

    def serialize(self):
        cfg = self.get_config()
        return self.name if not cfg else {"class_name": self.name, "config": cfg}


class Linear(Activation):
    name = "linear"
    output_only = identity = monotone = True

    def forward(self, z, out=None):
        return z

    def backward(self, z, a, grad):
        return grad


class ReLU(Activation):
    name = "relu"
    output_only = monotone = True

    def forward(self, z, out=None):
        return np.maximum(z, 0, out=out, dtype=z.dtype)

    def backward(self, z, a, grad):
        return grad * (a > 0)


class LeakyReLU(Activation):
    """``x`` for ``x >= 0``, ``negative_slope * x`` otherwise (Keras default 0.2)."""
    name = "leaky_relu"

    def __init__(self, negative_slope=0.2):
        self.negative_slope = float(negative_slope)
        self.monotone = self.negative_slope >= 0

    def _forward(self, z):
        return np.where(z >= 0, z, z * z.dtype.type(self.negative_slope))

    def backward(self, z, a, grad):
        return np.where(z >= 0, grad, grad * grad.dtype.type(self.negative_slope))

    def get_config(self):
        return {"negative_slope": self.negative_slope}


class ELU(Activation):
    name = "elu"

    def __init__(self, alpha=1.0):
        self.alpha = float(alpha)

    def _forward(self, z):
        return np.where(z > 0, z, z.dtype.type(self.alpha) * np.expm1(np.minimum(z, 0)))

    def backward(self, z, a, grad):
        return np.where(z > 0, grad, grad * (a + z.dtype.type(self.alpha)))

    def get_config(self):
        return {"alpha": self.alpha}


class Sigmoid(Activation):
    name = "sigmoid"
    output_only = True

    def forward(self, z, out=None):
        return special.expit(z, out=out)

    def backward(self, z, a, grad):
        return grad * a * (1 - a)


class Tanh(Activation):
    name = "tanh"
    output_only = True

    def forward(self, z, out=None):
        return np.tanh(z, out=out)

    def backward(self, z, a, grad):
        return grad * (1 - a * a)


class Softmax(Activation):
    """Softmax over the last axis, shifted by the maximum for stability."""
    name = "softmax"
    output_only = True

    def forward(self, z, out=None):
        e = np.exp(z - z.max(axis=-1, keepdims=True))
        return np.divide(e, e.sum(axis=-1, keepdims=True), out=out)

    def backward(self, z, a, grad):
        return a * (grad - (grad * a).sum(axis=-1, keepdims=True))


class GELU(Activation):
    """Gaussian error linear unit; exact (erf) form by default as in Keras 3,
    the tanh approximation with ``approximate=True``."""
    name = "gelu"

    def __init__(self, approximate=False):
        self.approximate = bool(approximate)

    _C = math.sqrt(2.0 / math.pi)

    def _forward(self, z):
        if self.approximate:
            return 0.5 * z * (1 + np.tanh(self._C * (z + 0.044715 * z ** 3)))
        return 0.5 * z * (1 + special.erf(z / math.sqrt(2.0)))

    def backward(self, z, a, grad):
        if self.approximate:
            inner = self._C * (z + 0.044715 * z ** 3)
            t = np.tanh(inner)
            d = 0.5 * (1 + t) + 0.5 * z * (1 - t * t) * self._C * (1 + 3 * 0.044715 * z * z)
        else:
            d = 0.5 * (1 + special.erf(z / math.sqrt(2.0))) + z * np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
        return grad * d.astype(grad.dtype, copy=False)

    def get_config(self):
        return {"approximate": self.approximate} if self.approximate else {}


class Swish(Activation):
    name = "silu"

    def _forward(self, z):
        return z * special.expit(z)

    def backward(self, z, a, grad):
        s = special.expit(z)
        return grad * (s * (1 + z * (1 - s)))


class Softplus(Activation):
    name = "softplus"

    def _forward(self, z):
        return np.logaddexp(0, z).astype(z.dtype, copy=False)

    def backward(self, z, a, grad):
        return grad * special.expit(z)


_CLASSES = {c.name: c for c in (Linear, ReLU, LeakyReLU, ELU, Sigmoid, Tanh, Softmax, GELU, Swish, Softplus)}
_ALIASES = {"swish": "silu", None: "linear"}


def get(identifier):
    """An activation object from a name (``"relu"``), ``None`` (linear),
    a dict ``{"class_name": name, "config": {...}}`` or an instance."""
    if isinstance(identifier, Activation):
        return identifier
    if isinstance(identifier, dict):
        name, cfg = identifier.get("class_name"), identifier.get("config", {})
    else:
        name, cfg = identifier, {}
    name = _ALIASES.get(name, name)
    cls = _CLASSES.get(name.lower() if isinstance(name, str) else name)
    if cls is None:
        raise ConfigError(f"unknown activation {identifier!r}; valid names: {sorted(_CLASSES)}")
    return cls(**cfg)

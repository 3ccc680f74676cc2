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


#: elements of the largest zeros operand ``ReLU`` keeps per dtype (16 MB of float32); larger
#: contiguous arrays are taken in parts of this size
RELU_ZEROS_MAX = 1 << 22
_relu_zeros = {}


def _zeros(dtype, n):
    """A read-only flat array of ``n`` zeros of ``dtype`` (``n <= RELU_ZEROS_MAX``): the front
    of a buffer kept per dtype and grown as needed. ``np.zeros`` usually gets a large buffer
    from fresh pages it leaves untouched, and Linux maps untouched pages that are only read to
    its one zero page, so the buffer then takes no memory (reading 200 MB of them added nothing
    to the peak RSS); where the allocator hands out reused memory it zeroes, or on a system
    without that mapping, it holds at most ``RELU_ZEROS_MAX`` elements per dtype. (A race
    between threads only makes two buffers, each of them zeros.)"""
    buf = _relu_zeros.get(dtype)
    if buf is None or buf.size < n:
        buf = np.zeros(min(RELU_ZEROS_MAX, max(n, 1 << 16, 0 if buf is None else 2 * buf.size)), dtype)
        buf.flags.writeable = False
        _relu_zeros[dtype] = buf
    return buf[:n]


class ReLU(Activation):
    """``max(z, 0)``. NumPy (2.4) takes a maximum against an array of zeros 2.7-4x faster than
    against the scalar 0, whose broadcast misses its vectorized loop: 61 against 240 us on
    516,096 float32 (HAR's first layer's output at batch 64), 655 against 1,557 on 3.2 M, 7
    against 35 on 65,536; the same numbers to the bit (-0 and NaN included). HAR's predict
    took 0.943x and 0.973x the time, the tutorial network's 0.951x, the default
    ``ImageClassifier``'s at batch 128 0.956x, Conv3D 32^3's 0.987x (one thread, the two forms
    by turns in one process); training steps, whose largest ReLU is a smaller share of the
    step, within the spread (0.98-1.02x). An input not in C order keeps the scalar form, and
    its result the input's layout."""
    name = "relu"
    output_only = monotone = True

    def forward(self, z, out=None):
        if not z.flags.c_contiguous:  # (zeros in C order beside a Fortran-order z: 3-6x slower)
            return np.maximum(z, 0, out=out, dtype=z.dtype)
        if z.size <= RELU_ZEROS_MAX:
            return np.maximum(z, _zeros(z.dtype, z.size).reshape(z.shape), out=out)
        if out is None:
            out = np.empty_like(z)
        if not (out.flags.c_contiguous and out.shape == z.shape):
            return np.maximum(z, 0, out=out, dtype=z.dtype)
        flat, dest = z.reshape(-1), out.reshape(-1)
        for i in range(0, flat.size, RELU_ZEROS_MAX):
            part = slice(i, i + RELU_ZEROS_MAX)
            np.maximum(flat[part], _zeros(z.dtype, flat[part].size), out=dest[part])
        return out

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

"""The inference path of ``Sequential.predict``: forward only, no contexts, fused.

``InferencePlan(layers)`` turns a stack of layers into a list of steps, each
``step(x, workspace) -> y``:

- a ``Conv``/``Dense`` layer without activation followed by
  ``BatchNormalization`` becomes one product: at inference batch norm is the
  affine map ``y = z * s + (beta - mean * s)`` with ``s = gamma /
  sqrt(moving_variance + epsilon)``, so it is folded into the layer's kernel
  (``kernel * s`` along the filters) and bias (``(bias - mean) * s + beta``),
  computed once in float64 and cast to the layer's dtype;
- an ``Activation`` layer (``ReLU``...) right after such a layer, or after a
  ``Conv``/``Dense`` without activation, is applied in place to that layer's
  output, block by block with the bias (``Conv._output``), instead of
  allocating an array of its own;
- a ``Conv`` layer's own activation runs in place too, and a ``MaxPooling``
  layer right after a convolution that runs in chunks (large 2-D/3-D layers)
  with windows that tile (stride = pool size, no padding) pools each block
  (a few output rows, or whole samples) as soon as it is computed
  (``Conv.infer_pooled``), so the whole
  convolution output is never written (4-16 % faster inference on the Conv3D
  cases in two in-process A/B runs, identical numbers); and with no activation
  or a monotone one (relu) the bias and activation are applied after the
  pooling, to the smaller pooled array: they commute exactly with a maximum
  (the same numbers to the bit); a convolution whose columns are built
  channels first (few input channels: LeNet-5's and the Conv3D cases' first
  layers) with few filters computes its product as ``(filters, N, *out)``
  before such a pooling (``Conv._infer_pooled_first``), which OpenBLAS runs
  faster and which pools along long rows: predict 9-13 % faster on LeNet-5
  and the tutorial network, 5-11 % on the Conv3D cases; a 1-D convolution
  with stride 1 and 32 or more input channels computes its output before
  such a pooling without columns, one product per kernel offset added in
  place (``Conv._shifted_output``): HAR's predict 8-17 % faster on one
  thread;
- ``Dropout`` (the identity at inference) is left out before planning, so the
  layers on either side of it fuse as if adjacent (HAR's conv, dropout, max
  pooling);
- ``Branches`` runs a plan of its own per branch;
- every other layer runs its ordinary ``forward(x, context=False)``.

The folded weights are a cache. The plan holds the weight arrays it folded
and is rebuilt when any of them was replaced (``set_weights``, loading, a
training forward pass of batch norm, which replaces its moving statistics) or
when the model's weights changed in place (the model bumps its version after
each optimizer step). Weights edited in place by hand
(``layer.params["kernel"][...] = ...``) are not seen: call
``model.set_weights`` or ``model.reset_inference()`` after doing that.

Results equal the layer-by-layer forward pass up to float32 rounding (the
folded product rounds differently from product-then-normalize); the tests
check that for every layer type in 1-D, 2-D and 3-D.
"""
import numpy as np

from .layers.activation import Activation
from .layers.branches import Branches
from .layers.conv import Conv
from .layers.dense import Dense
from .layers.dropout import Dropout
from .layers.normalization import BatchNormalization
from .layers.pooling import MaxPooling


class InferencePlan:
    """Steps computing the inference output of ``layers``; see the module docstring."""

    def __init__(self, layers, version=None):
        self.version = version
        self.sources = []  # (params table, name, array) the folded weights were made from
        self.steps = self._plan(list(layers))

    def is_current(self, version):
        """Whether the plan still matches the weights (no array replaced, the same model version)."""
        if version != self.version:
            return False
        for table, name, arr in self.sources:
            if table[name] is not arr:
                return False
        return True

    def __call__(self, x, workspace):
        for step in self.steps:
            x = step(x, workspace)
        return x

    # ------------------------------------------------------------ planning
    def _plan(self, layers):
        layers = [layer for layer in layers if not isinstance(layer, Dropout)]  # the identity here
        steps, i = [], 0
        while i < len(layers):
            layer = layers[i]
            nxt = layers[i + 1] if i + 1 < len(layers) else None
            if isinstance(layer, (Conv, Dense)):
                kernel, bias = layer.params["kernel"], layer.params.get("bias")
                self._watch(layer.params, ("kernel", "bias"))
                act = None if layer.activation.identity else layer.activation
                if act is None and isinstance(nxt, BatchNormalization):
                    kernel, bias = self._fold(kernel, bias, nxt)
                    i += 1
                    nxt = layers[i + 1] if i + 1 < len(layers) else None
                if act is None and isinstance(nxt, Activation) and not nxt.activation.identity:
                    act = nxt.activation
                    i += 1
                    nxt = layers[i + 1] if i + 1 < len(layers) else None
                if isinstance(layer, Conv) and isinstance(nxt, MaxPooling):
                    steps.append(_FusedPool(layer, kernel, bias, act, nxt))
                    i += 1
                else:
                    steps.append(_Fused(layer, kernel, bias, act))
            elif isinstance(layer, Branches):
                steps.append(_BranchesStep(layer, [self._plan(stack) for stack in layer.branches]))
            else:
                steps.append(_Plain(layer))
            i += 1
        return steps

    def _watch(self, params, names):
        self.sources.extend((params, n, params[n]) for n in names if n in params)

    def _fold(self, kernel, bias, bn):
        """Kernel and bias of a product followed by the inference batch norm ``bn``."""
        p = bn.params
        self._watch(p, ("gamma", "beta", "moving_mean", "moving_variance"))
        gamma = p["gamma"].astype(np.float64) if bn.scale else 1.0
        beta = p["beta"].astype(np.float64) if bn.center else 0.0
        s = gamma / np.sqrt(p["moving_variance"].astype(np.float64) + bn.epsilon)
        b = 0.0 if bias is None else bias.astype(np.float64)
        new_bias = (b - p["moving_mean"].astype(np.float64)) * s + beta
        dtype = kernel.dtype
        return (kernel * s).astype(dtype), np.broadcast_to(new_bias, s.shape).astype(dtype)


class _Plain:
    __slots__ = ("layer",)

    def __init__(self, layer):
        self.layer = layer

    def __call__(self, x, ws):
        return self.layer.forward(x, False, None, context=False, workspace=ws)[0]


class _Fused:
    __slots__ = ("layer", "kernel", "bias", "act")

    def __init__(self, layer, kernel, bias, act):
        self.layer, self.kernel, self.bias, self.act = layer, kernel, bias, act

    def __call__(self, x, ws):
        return self.layer.infer(x, ws, self.kernel, self.bias, self.act)


class _FusedPool:
    """A convolution and the max pooling after it (``Conv.infer_then_pool``): pooled block by
    block in the cache when the layer runs in chunks and the windows tile; bias and a monotone
    activation applied to the pooled output."""
    __slots__ = ("layer", "kernel", "bias", "act", "pool")

    def __init__(self, layer, kernel, bias, act, pool):
        self.layer, self.kernel, self.bias, self.act, self.pool = layer, kernel, bias, act, pool

    def __call__(self, x, ws):
        return self.layer.infer_then_pool(x, ws, self.kernel, self.bias, self.act, self.pool)


class _BranchesStep:
    __slots__ = ("layer", "plans")

    def __init__(self, layer, plans):
        self.layer, self.plans = layer, plans

    def __call__(self, x, ws):
        outs = []
        for steps in self.plans:
            h = x
            for step in steps:
                h = step(h, ws)
            outs.append(h)
        return self.layer.merge_outputs(outs)

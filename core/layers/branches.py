"""``Branches``: several stacks of layers run on one input, their outputs
added (a residual connection) or concatenated along the channels (an
inception module). ``Sequential`` sees it as one layer, so networks such as
ResNet and InceptionTime stay a plain ``Sequential``.

Shapes: input ``(N, *spatial, C)``; with ``merge="add"`` every branch must
give the same output shape, with ``merge="concat"`` the same shape but for
the channels, which add up. An empty branch is the identity (a plain
shortcut). Weights are named ``"<branch>/<index>/<weight>"``.
"""
import numpy as np

from ..exceptions import ConfigError, ShapeError
from ..registry import serialize
from .base import LAYER_CLASSES, Layer


class _Flat:
    """The sub-layers' weights as one dict-like ``"branch/index/name" -> array``;
    assignments (optimizer steps, ``set_weights``, loading) write through."""

    def __init__(self, owner):
        self._owner = owner

    def _split(self, key):
        b, i, name = key.split("/", 2)
        return self._owner.branches[int(b)][int(i)].params, name

    def __getitem__(self, key):
        table, name = self._split(key)
        return table[name]

    def __setitem__(self, key, value):
        table, name = self._split(key)
        table[name] = value

    def __contains__(self, key):
        try:
            table, name = self._split(key)
        except (ValueError, IndexError):
            return False
        return name in table

    def keys(self):
        return [f"{b}/{i}/{n}" for b, stack in enumerate(self._owner.branches)
                for i, lay in enumerate(stack) for n in lay.params]

    def __iter__(self):
        return iter(self.keys())

    def __len__(self):
        return len(self.keys())

    def values(self):
        return [self[k] for k in self.keys()]

    def items(self):
        return [(k, self[k]) for k in self.keys()]


class Branches(Layer):
    """Run each list of layers in ``branches`` on the input and merge the outputs
    (``merge="add"`` or ``"concat"``); see the module docstring."""

    def __init__(self, branches, merge="add", **kwargs):
        super().__init__(**kwargs)
        if merge not in ("add", "concat"):
            raise ConfigError(f"Branches: merge must be 'add' or 'concat', got {merge!r}")
        if not isinstance(branches, (list, tuple)) or not branches:
            raise ConfigError("Branches: branches must be a non-empty list of lists of layers")
        self.branches = []
        for stack in branches:
            if not isinstance(stack, (list, tuple)):
                raise ConfigError(f"Branches: every branch must be a list of layers, got {type(stack).__name__}")
            built = []
            for spec in stack:
                if isinstance(spec, dict):
                    cls = LAYER_CLASSES.get(spec.get("class_name"))
                    if cls is None:
                        raise ConfigError(f"Branches: unknown layer {spec.get('class_name')!r}; valid names: "
                                          f"{sorted(LAYER_CLASSES)}")
                    spec = cls.from_config(dict(spec.get("config", {})))
                if not isinstance(spec, Layer):
                    raise ConfigError(f"Branches: every branch must be a list of core layers, got "
                                      f"{type(spec).__name__}")
                built.append(spec)
            self.branches.append(built)
        self.merge = merge
        self.params = _Flat(self)

    @property
    def stochastic(self):
        return any(lay.stochastic for stack in self.branches for lay in stack)

    @property
    def non_trainable(self):
        return tuple(f"{b}/{i}/{n}" for b, stack in enumerate(self.branches)
                     for i, lay in enumerate(stack) for n in lay.non_trainable)

    def build(self, input_shape, rng=None):
        params = self.params
        super().build(input_shape, rng)
        self.params = params  # Layer.build starts from an empty dict: keep the view of the sub-layers

    def _build(self, input_shape, rng):
        seed = int(rng.integers(2**31 - 1))
        shapes = []
        for b, stack in enumerate(self.branches):
            shape = tuple(input_shape)
            for i, lay in enumerate(stack):
                if lay.dtype is None:
                    lay.dtype = self.dtype
                if lay.name is None:
                    lay.name = f"{self.name}/{b}/{i}"
                lay.build(shape, rng=np.random.default_rng([seed, b, i]))
                shape = lay.output_shape
            shapes.append(tuple(shape))
        if self.merge == "add" and len(set(shapes)) != 1:
            raise ShapeError(f"Branches {self.name!r}: merge='add' needs branches of one output shape, "
                             f"found {shapes}")
        if self.merge == "concat" and len({s[:-1] for s in shapes}) != 1:
            raise ShapeError(f"Branches {self.name!r}: merge='concat' needs branches with the same shape but "
                             f"for the channels, found {shapes}")
        self._shapes = shapes

    def compute_output_shape(self, input_shape):
        first = self._shapes[0]
        if self.merge == "add":
            return first
        return first[:-1] + (sum(s[-1] for s in self._shapes),)

    def forward(self, x, training=False, rng=None, *, context=None, workspace=None):
        keep = self._keep(training, context)
        outs, contexts = [], []
        for b, stack in enumerate(self.branches):
            h, ctxs = x, []
            for i, lay in enumerate(stack):
                sub = None
                if training and lay.stochastic:  # each random sub-layer its own stream, derived from rng
                    sub = np.random.default_rng([int(self._require_rng(rng).integers(2**31 - 1)), b, i])
                h, ctx = lay.forward(h, training, sub, context=keep, workspace=workspace)
                ctxs.append(ctx)
            outs.append(h)
            contexts.append(ctxs)
        return self.merge_outputs(outs), self._context(keep, branches=contexts, widths=[h.shape[-1] for h in outs])

    def merge_outputs(self, outs):
        """The branches' outputs merged into a new array (summed, or concatenated along the channels)."""
        if self.merge == "add":
            y = outs[0] + outs[1] if len(outs) > 1 else outs[0].copy()
            for h in outs[2:]:
                y += h
            return y
        return np.concatenate(outs, axis=-1)

    def backward(self, ctx, dy, need_input_grad=True, *, workspace=None):
        ctx = self._require_context(ctx)
        if self.merge == "concat":
            parts = np.split(dy, np.cumsum(ctx["widths"])[:-1], axis=-1)
        else:
            parts = [dy] * len(self.branches)
        dx, grads = None, {}
        for b, (stack, g, ctxs) in enumerate(zip(self.branches, parts, ctx["branches"])):
            for i in range(len(stack) - 1, -1, -1):
                need = need_input_grad or i > 0
                if not stack[i].params and not need:
                    break
                g, sub = stack[i].backward(ctxs[i], g, need_input_grad=need, workspace=workspace)
                grads.update({f"{b}/{i}/{n}": v for n, v in sub.items()})
            if need_input_grad:
                dx = g.copy() if dx is None else dx + g
        if not self.trainable:
            grads = {}
        return dx, grads

    def trainable_names(self):
        if not self.trainable:
            return []
        return [f"{b}/{i}/{n}" for b, stack in enumerate(self.branches)
                for i, lay in enumerate(stack) for n in lay.trainable_names()]

    def weight_names(self):
        return [f"{b}/{i}/{n}" for b, stack in enumerate(self.branches)
                for i, lay in enumerate(stack) for n in lay.weight_names()]

    def regularization_loss(self):
        return sum(lay.regularization_loss() for stack in self.branches for lay in stack)

    def regularization_grads(self):
        if not self.trainable:
            return {}
        return {f"{b}/{i}/{n}": g for b, stack in enumerate(self.branches)
                for i, lay in enumerate(stack) for n, g in lay.regularization_grads().items()}

    def count_params(self):
        return int(sum(lay.count_params() for stack in self.branches for lay in stack))

    def get_config(self):
        cfg = super().get_config()
        cfg["merge"] = self.merge
        cfg["branches"] = [[serialize(lay) for lay in stack] for stack in self.branches]
        return cfg

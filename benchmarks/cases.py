"""The benchmark cases: one small layer spec per case, from which both the
NumPy engine's model and the PyTorch model are built, so the two are the same
network by construction.

A spec is a list of tuples:

- ``("conv", filters, kernel, padding, activation)`` (stride 1, no dilation)
- ``("maxpool", pool, padding)`` (stride = pool)
- ``("flatten",)``
- ``("dropout", rate)``
- ``("dense", units, activation)``; the last dense layer ends in ``"softmax"``.

Input shapes are channels last ``(*spatial, C)`` as the engine wants them;
PyTorch gets the same data in its native layout ``(N, C, *spatial)``.

This module imports neither NumPy nor PyTorch at import time, so the parent
process of the harness stays light.
"""
import math
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Case:
    """One benchmark case.

    Attributes
    ----------
    name : str
    input_shape : tuple
        ``(*spatial, C)``, channels last, without the batch axis.
    batch : int
    spec : tuple
        Layer tuples (see the module docstring).
    goal_train : float or None
        Goal for the train-step time ratio ours / PyTorch at 1 thread (issue 8).
    goal_infer : float
        Goal for the inference time ratio ours / PyTorch.
    goal_memory : float or None
        Goal for the peak-memory ratio ours / PyTorch of the training process.
    note : str
    """
    name: str
    input_shape: tuple
    batch: int
    spec: tuple
    goal_train: float = None
    goal_infer: float = 2.0
    goal_memory: float = None
    note: str = ""
    hidden: bool = field(default=False, compare=False)

    @property
    def rank(self):
        return len(self.input_shape) - 1

    @property
    def n_classes(self):
        return self.spec[-1][1]


# vision.networks.lenet5 on 28x28x1: convolutions 'same', ReLU, max pooling,
# dropout 0.25 before the hidden dense layers
LENET5 = (("conv", 6, 5, "same", "relu"), ("maxpool", 2, "same"),
          ("conv", 16, 5, "same", "relu"), ("maxpool", 2, "same"),
          ("flatten",),
          ("dropout", 0.25), ("dense", 120, "relu"),
          ("dropout", 0.25), ("dense", 84, "relu"),
          ("dense", 10, "softmax"))
# vision.networks.tiny: the classic tutorial network
TUTORIAL = (("conv", 8, 3, "valid", "relu"), ("maxpool", 2, "valid"), ("flatten",), ("dense", 10, "softmax"))
# the usual 1-D CNN for UCI HAR (9 inertial channels x 128 steps, 6 activities)
HAR = (("conv", 64, 3, "valid", "relu"), ("conv", 64, 3, "valid", "relu"), ("dropout", 0.5),
       ("maxpool", 2, "valid"), ("flatten",), ("dense", 100, "relu"), ("dense", 6, "softmax"))
# a small volumetric classifier
CONV3D = (("conv", 8, 3, "valid", "relu"), ("maxpool", 2, "valid"),
          ("conv", 16, 3, "valid", "relu"), ("maxpool", 2, "valid"),
          ("flatten",), ("dense", 2, "softmax"))
# a case small enough for the smoke test
TINY = (("conv", 4, 3, "valid", "relu"), ("maxpool", 2, "valid"), ("flatten",), ("dense", 3, "softmax"))

CASES = {c.name: c for c in (
    Case("lenet5_b64", (28, 28, 1), 64, LENET5, goal_train=1.5),
    Case("tutorial_b1", (28, 28, 1), 1, TUTORIAL, goal_train=1.0),
    Case("tutorial_b64", (28, 28, 1), 64, TUTORIAL, goal_train=1.0),
    Case("har_conv1d_b64", (128, 9), 64, HAR, goal_train=1.2),
    Case("conv3d_32_b8", (32, 32, 32, 1), 8, CONV3D, goal_train=1.5),
    Case("conv3d_64_b4", (64, 64, 64, 1), 4, CONV3D, goal_train=1.5, goal_memory=2.0),
    Case("tiny", (8, 8, 1), 4, TINY, note="smoke-test case", hidden=True),
)}

DEFAULT_CASES = [name for name, c in CASES.items() if not c.hidden]


def _axis_out(n, k, padding, stride=1):
    if padding == "same":
        return -(-n // stride)
    return (n - k) // stride + 1


def walk(case):
    """Shapes and forward FLOPs layer by layer.

    Returns
    -------
    list of (layer_tuple, input_shape, output_shape, flops)
        shapes without the batch axis (channels last); ``flops`` counts the
        multiply-adds of convolutions and dense layers as 2 FLOPs each, for
        the whole batch.
    """
    shape = tuple(case.input_shape)
    rows = []
    for lay in case.spec:
        kind = lay[0]
        flops = 0
        if kind == "conv":
            _, filters, k, padding, _ = lay
            spatial = tuple(_axis_out(n, k, padding) for n in shape[:-1])
            out = spatial + (filters,)
            flops = 2 * case.batch * math.prod(spatial) * filters * (k ** case.rank) * shape[-1]
        elif kind == "maxpool":
            _, p, padding = lay
            out = tuple(_axis_out(n, p, padding, p) for n in shape[:-1]) + (shape[-1],)
        elif kind == "flatten":
            out = (math.prod(shape),)
        elif kind == "dropout":
            out = shape
        elif kind == "dense":
            out = shape[:-1] + (lay[1],)
            flops = 2 * case.batch * math.prod(shape) * lay[1]
        else:  # pragma: no cover - specs are written here
            raise ValueError(f"unknown layer kind {kind!r}")
        rows.append((lay, shape, out, flops))
        shape = out
    return rows


def forward_flops(case):
    """Forward-pass FLOPs of the whole batch (convolutions and dense layers)."""
    return sum(r[3] for r in walk(case))


# ------------------------------------------------------------------ builders
def build_ours(case, seed=0):
    """The case's network as an uncompiled ``core.Sequential`` (float32, channels last)."""
    from core import Input, Sequential, layers

    conv = {1: layers.Conv1D, 2: layers.Conv2D, 3: layers.Conv3D}[case.rank]
    pool = {1: layers.MaxPooling1D, 2: layers.MaxPooling2D, 3: layers.MaxPooling3D}[case.rank]
    stack = [Input(shape=case.input_shape)]
    for lay in case.spec:
        kind = lay[0]
        if kind == "conv":
            stack.append(conv(lay[1], lay[2], padding=lay[3], activation=lay[4]))
        elif kind == "maxpool":
            stack.append(pool(lay[1], padding=lay[2]))
        elif kind == "flatten":
            stack.append(layers.Flatten())
        elif kind == "dropout":
            stack.append(layers.Dropout(lay[1]))
        elif kind == "dense":
            stack.append(layers.Dense(lay[1], activation=lay[2]))
    return Sequential(stack, seed=seed)


def build_torch(case, seed=0):
    """The case's network as a ``torch.nn.Sequential`` over ``(N, C, *spatial)``.

    The last dense layer gives logits (PyTorch's cross-entropy applies the
    log-softmax itself); inference applies the softmax explicitly.
    """
    import torch
    from torch import nn

    torch.manual_seed(seed)
    conv = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}[case.rank]
    pool = {1: nn.MaxPool1d, 2: nn.MaxPool2d, 3: nn.MaxPool3d}[case.rank]
    acts = {"relu": nn.ReLU, "linear": None, None: None, "softmax": None}
    mods = []
    for lay, shape_in, _, _ in walk(case):
        kind = lay[0]
        if kind == "conv":
            _, filters, k, padding, act = lay
            mods.append(conv(shape_in[-1], filters, k, padding=k // 2 if padding == "same" else 0))
            if acts[act]:
                mods.append(acts[act]())
        elif kind == "maxpool":
            # 'same' max pooling with stride = pool pads at the end only: PyTorch's ceil_mode
            mods.append(pool(lay[1], ceil_mode=lay[2] == "same"))
        elif kind == "flatten":
            mods.append(nn.Flatten())
        elif kind == "dropout":
            mods.append(nn.Dropout(lay[1]))
        elif kind == "dense":
            mods.append(nn.Linear(shape_in[-1], lay[1]))
            if acts[lay[2]]:
                mods.append(acts[lay[2]]())
    return nn.Sequential(*mods)

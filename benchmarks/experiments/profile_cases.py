"""Where our engine spends a training step and an inference, per case (cProfile).

Usage: ``python -m benchmarks.experiments.profile_cases [CASE ...] [--steps N] [--top K]``
(run with OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE unset, as the harness does).
Prints, for each case, the functions with the largest own time ("tottime")
over ``--steps`` training steps, then over as many inferences.
"""
import argparse
import cProfile
import io
import pstats

import numpy as np

from core import optimizers

from ..cases import CASES, DEFAULT_CASES, build_ours


def setup(case, seed=0):
    """Compiled model (SGD momentum 0.9) and one batch ``(x, y)`` for ``case``."""
    model = build_ours(case, seed=seed)
    model.compile(optimizer=optimizers.SGD(learning_rate=1e-3, momentum=0.9), loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((case.batch,) + tuple(case.input_shape), dtype=np.float32)
    y = rng.integers(0, case.n_classes, case.batch)
    return model, x, y


def profile(fn, steps, top):
    fn()
    fn()
    pr = cProfile.Profile()
    pr.enable()
    for _ in range(steps):
        fn()
    pr.disable()
    s = io.StringIO()
    st = pstats.Stats(pr, stream=s)
    st.sort_stats("tottime").print_stats(top)
    total = st.total_tt
    return total / steps, s.getvalue()


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("cases", nargs="*", default=DEFAULT_CASES)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--top", type=int, default=14)
    args = p.parse_args(argv)
    for name in args.cases:
        case = CASES[name]
        model, x, y = setup(case)
        steps = max(2, args.steps // (10 if "conv3d_64" in name else 1))
        per, text = profile(lambda: model.train_on_batch(x, y), steps, args.top)
        print(f"==== {name}: train_on_batch, {per * 1e3:.2f} ms per step under the profiler")
        print("\n".join(line for line in text.splitlines()[6:] if line.strip()))
        per, text = profile(lambda: model.predict(x, batch_size=len(x)), steps, args.top // 2)
        print(f"==== {name}: predict, {per * 1e3:.2f} ms per call under the profiler")
        print("\n".join(line for line in text.splitlines()[6:] if line.strip()))


if __name__ == "__main__":
    main()

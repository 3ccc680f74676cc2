"""im2col layouts at the shapes of the benchmark cases (one thread).

Compares, for each conv layer of the cases, the current layout
``cols (N, *out, K, C)`` -> ``(M, K*C)`` (``cols @ W``) with the transposed
layout ``cols (K, C, N, *out)`` -> ``(K*C, M)`` (``cols.T @ W``: the BLAS
reads the transpose without copying): time of the K slice copies (im2col),
of the forward product, of the two backward products and of col2im.

Usage: ``python -m benchmarks.experiments.im2col_layouts``
"""
import itertools
import math

import numpy as np

from ..cases import CASES, DEFAULT_CASES, walk


from .layer_times import best as best_of  # one timing helper for the experiments


def conv_layers():
    seen = set()
    for name in DEFAULT_CASES:
        case = CASES[name]
        for lay, shp_in, shp_out, _ in walk(case):
            if lay[0] != "conv":
                continue
            key = (case.batch, shp_in, lay[1], lay[2], lay[3])
            if key in seen:
                continue
            seen.add(key)
            yield name, case.batch, shp_in, shp_out, lay


def main():
    rng = np.random.default_rng(0)
    print(f"{'layer':40s} {'M':>8s} {'K*C':>5s}  im2col cur/new  fwd-mm cur/new  bwd-mm cur/new  col2im cur/new (ms)")
    for name, n, shp_in, shp_out, lay in conv_layers():
        _, f, k, padding, _ = lay
        rank = len(shp_in) - 1
        c = shp_in[-1]
        out = shp_out[:-1]
        pad = [(k - 1) // 2, k - 1 - (k - 1) // 2] if padding == "same" else [0, 0]
        x = rng.standard_normal((n,) + shp_in, dtype=np.float32)
        xp = np.pad(x, [(0, 0)] + [tuple(pad)] * rank + [(0, 0)])
        offs = list(itertools.product(range(k), repeat=rank))
        K = len(offs)
        sls = [(slice(None),) + tuple(slice(o, o + m) for o, m in zip(off, out)) for off in offs]
        m = n * math.prod(out)
        w = rng.standard_normal((K * c, f), dtype=np.float32)
        dz = rng.standard_normal((m, f), dtype=np.float32)
        cur = np.empty((n,) + out + (K, c), np.float32)
        new = np.empty((K, c, n) + out, np.float32)

        def im_cur():
            for i, sl in enumerate(sls):
                cur[..., i, :] = xp[sl]

        def im_new():
            for i, sl in enumerate(sls):
                new[i] = np.moveaxis(xp[sl], -1, 0)

        im_cur()
        im_new()
        c2 = cur.reshape(m, K * c)
        n2 = new.reshape(K * c, m)
        assert np.array_equal(c2, n2.T)
        t = [best_of(im_cur), best_of(im_new),
             best_of(lambda: c2 @ w), best_of(lambda: n2.T @ w),
             best_of(lambda: (c2.T @ dz, dz @ w.T)), best_of(lambda: (n2 @ dz, w @ dz.T))]
        dc = dz @ w.T
        dn = w @ dz.T

        def col_cur():
            dxp = np.zeros(xp.shape, np.float32)
            d = dc.reshape((n,) + out + (K, c))
            for i, sl in enumerate(sls):
                dxp[sl] += d[..., i, :]
            return dxp

        def col_new():
            dxp = np.zeros(xp.shape, np.float32)
            d = dn.reshape((K, c, n) + out)
            for i, sl in enumerate(sls):
                dxp[sl] += np.moveaxis(d[i], 0, -1)
            return dxp

        assert np.allclose(col_cur(), col_new(), atol=1e-4)
        t += [best_of(col_cur), best_of(col_new)]
        label = f"{name} {shp_in}->{f}x{k}{padding[0]}"
        pairs = "  ".join(f"{a * 1e3:6.2f}/{b * 1e3:<6.2f}" for a, b in zip(t[::2], t[1::2]))
        print(f"{label:40s} {m:8d} {K * c:5d}  {pairs}")


if __name__ == "__main__":
    main()

"""Random geometric augmentation of image batches: rotation, scaling and shifts in one warp.

Each image of a batch gets its own small affine map about the image centre,
drawn from the generator passed in (so the same seed gives the same
images): a rotation by up to ``rotation`` degrees, a zoom by a factor in
``[1 - zoom, 1 + zoom]`` and a shift of up to ``shift`` of the height and
width. The warped image is read back with bilinear interpolation; points
that fall outside the image take the value of the nearest edge pixel, which
for digits and most small images is the background.

The maps are small on purpose: a handwritten "1" rotated by 10 degrees is
still a "1", a "6" rotated by 180 degrees is a "9". Elastic distortion was
measured too (see ``benchmarks/RESULTS.md``, vision) and is not used.
"""
import numpy as np

from core.exceptions import ConfigError


class RandomAffine:
    """A batch transform ``(x_batch, rng) -> x_batch`` for :meth:`core.Sequential.fit`.

    Parameters
    ----------
    rotation : float
        Largest rotation in degrees, either way (0 for none).
    zoom : float in [0, 1)
        Largest relative change of scale, either way (0 for none).
    shift : float in [0, 0.5)
        Largest shift as a fraction of the height and width, either way.

    Input and output: ``(N, H, W, C)`` float arrays, any scaling.
    """

    def __init__(self, rotation=10.0, zoom=0.1, shift=0.1):
        for name, value, hi in (("rotation", rotation, 180.0), ("zoom", zoom, 1.0), ("shift", shift, 0.5)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < hi:
                raise ConfigError(f"RandomAffine: {name} must be a number in [0, {hi:g}), found {value!r}")
        self.rotation, self.zoom, self.shift = float(rotation), float(zoom), float(shift)

    def draw(self, n, shape, rng):
        """``(n, 2, 3)`` maps from output pixel (row, col, 1) to source (row, col), about the centre."""
        h, w = shape
        angle = np.deg2rad(rng.uniform(-self.rotation, self.rotation, n))
        scale = rng.uniform(1 - self.zoom, 1 + self.zoom, n)
        dy = rng.uniform(-self.shift, self.shift, n) * h
        dx = rng.uniform(-self.shift, self.shift, n) * w
        cos, sin = np.cos(angle) / scale, np.sin(angle) / scale
        cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
        # source = A @ (out - centre - shift) + centre, A the inverse of (rotate, then scale)
        maps = np.empty((n, 2, 3))
        maps[:, 0, 0], maps[:, 0, 1] = cos, sin
        maps[:, 1, 0], maps[:, 1, 1] = -sin, cos
        oy, ox = cy + dy, cx + dx
        maps[:, 0, 2] = cy - cos * oy - sin * ox
        maps[:, 1, 2] = cx + sin * oy - cos * ox
        return maps

    def __call__(self, x, rng):
        n, h, w, c = x.shape
        return warp(x, self.draw(n, (h, w), rng))

    def __repr__(self):
        return f"RandomAffine(rotation={self.rotation:g}, zoom={self.zoom:g}, shift={self.shift:g})"


def warp(x, maps):
    """Resample every image of ``x (N, H, W, C)`` at ``maps (N, 2, 3)`` applied to its pixel
    grid: bilinear, edge pixels repeated outside. Returns a new float32 array.

    Each output pixel reads its four neighbours with ``take`` at one flat index and three
    fixed offsets from it (one row down, one column right), and mixes them in place, where
    fancy indexing of rows and new arrays for every product took 1.6x the time: a batch of
    128 MNIST images between the ``ImageClassifier``'s training steps (one thread) 2.98
    against 4.65 ms, the same images to the bit."""
    n, h, w, c = x.shape
    rows, cols = np.meshgrid(np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64), indexing="ij")
    grid = np.stack([rows.ravel(), cols.ravel(), np.ones(h * w)])          # (3, H*W)
    src = maps @ grid                                                      # (N, 2, H*W)
    sy = np.clip(src[:, 0], 0, h - 1)
    sx = np.clip(src[:, 1], 0, w - 1)
    # (the coordinates are at least 0, so truncation is the floor; the last row and column
    # interpolate from the one before, with a weight of 1 on themselves)
    y0 = np.minimum(sy.astype(np.intp), max(h - 2, 0))
    x0 = np.minimum(sx.astype(np.intp), max(w - 2, 0))
    fy = (sy - y0).astype(np.float32)
    fx = (sx - x0).astype(np.float32)
    index = y0 * w + x0
    index += (np.arange(n) * (h * w))[:, None]
    down, right = (w if h > 1 else 0), (1 if w > 1 else 0)
    flat = np.ascontiguousarray(x, dtype=np.float32).reshape(n * h * w, c)
    if c == 1:
        flat = flat.reshape(-1)
    else:
        fy, fx = fy[..., None], fx[..., None]

    def at(offset):                                                        # (N, H*W) or (N, H*W, C)
        return flat.take(index + offset if offset else index, axis=0)

    # weights (1 - f) and f rather than a + (b - a) * f: a pixel that falls on the grid (f = 0
    # on one neighbour, 1 on the other) is copied exactly
    gy, gx = 1 - fy, 1 - fx
    top = at(0)
    top *= gx
    top += at(right) * fx
    bottom = at(down)
    bottom *= gx
    bottom += at(down + right) * fx
    top *= gy
    bottom *= fy
    top += bottom
    return top.reshape(n, h, w, c)

"""Weight initializers with Keras 3 names, defaults and fan rules.

Each initializer is called as ``init(shape, dtype, rng)`` with a NumPy
``Generator``; a ``seed`` given to the constructor overrides ``rng`` so the
same initializer object always gives the same values.
"""
import math

import numpy as np

from .registry import resolve, serialize


def compute_fans(shape):
    """``(fan_in, fan_out)`` as Keras computes them: for a conv kernel
    ``(k1..kd, in, out)`` both are multiplied by the receptive field ``k1*..*kd``."""
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    if len(shape) == 2:
        return shape[0], shape[1]
    receptive = math.prod(shape[:-2])
    return shape[-2] * receptive, shape[-1] * receptive


class Initializer:
    def __init__(self, seed=None):
        self.seed = seed

    def _rng(self, rng):
        return np.random.default_rng(self.seed) if self.seed is not None else rng

    def __call__(self, shape, dtype="float32", rng=None):
        rng = self._rng(rng if rng is not None else np.random.default_rng())
        return np.asarray(self.sample(tuple(shape), rng), dtype=dtype)

    def get_config(self):
        return {"seed": self.seed}


class Zeros(Initializer):
    def sample(self, shape, rng):
        return np.zeros(shape)

    def get_config(self):
        return {}

    def __init__(self):
        super().__init__(None)


class Ones(Zeros):
    def sample(self, shape, rng):
        return np.ones(shape)


class Constant(Initializer):
    def __init__(self, value=0.0):
        super().__init__(None)
        self.value = float(value)

    def sample(self, shape, rng):
        return np.full(shape, self.value)

    def get_config(self):
        return {"value": self.value}


class RandomNormal(Initializer):
    def __init__(self, mean=0.0, stddev=0.05, seed=None):
        super().__init__(seed)
        self.mean, self.stddev = mean, stddev

    def sample(self, shape, rng):
        return rng.normal(self.mean, self.stddev, shape)

    def get_config(self):
        return {"mean": self.mean, "stddev": self.stddev, "seed": self.seed}


class RandomUniform(Initializer):
    def __init__(self, minval=-0.05, maxval=0.05, seed=None):
        super().__init__(seed)
        self.minval, self.maxval = minval, maxval

    def sample(self, shape, rng):
        return rng.uniform(self.minval, self.maxval, shape)

    def get_config(self):
        return {"minval": self.minval, "maxval": self.maxval, "seed": self.seed}


def truncated_normal(rng, stddev, shape):
    """Normal samples redrawn until they lie within two standard deviations."""
    out = rng.normal(0.0, stddev, shape)
    bad = np.abs(out) > 2 * stddev
    while bad.any():
        out[bad] = rng.normal(0.0, stddev, int(bad.sum()))
        bad = np.abs(out) > 2 * stddev
    return out


class VarianceScaling(Initializer):
    """Keras' variance scaling: variance ``scale / fan`` with ``fan`` from ``mode``;
    'truncated_normal' rescales so the truncated draw keeps that variance."""

    def __init__(self, scale=1.0, mode="fan_in", distribution="truncated_normal", seed=None):
        super().__init__(seed)
        self.scale, self.mode, self.distribution = scale, mode, distribution

    def sample(self, shape, rng):
        fan_in, fan_out = compute_fans(shape)
        fan = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[self.mode]
        scale = self.scale / max(1.0, fan)
        if self.distribution == "truncated_normal":
            return truncated_normal(rng, math.sqrt(scale) / 0.87962566103423978, shape)
        if self.distribution == "untruncated_normal":
            return rng.normal(0.0, math.sqrt(scale), shape)
        limit = math.sqrt(3.0 * scale)
        return rng.uniform(-limit, limit, shape)

    def get_config(self):
        return {"scale": self.scale, "mode": self.mode, "distribution": self.distribution, "seed": self.seed}


def _preset(name, scale, mode, distribution):
    def __init__(self, seed=None):
        VarianceScaling.__init__(self, scale, mode, distribution, seed)

    def get_config(self):
        return {"seed": self.seed}

    return type(name, (VarianceScaling,), {"__init__": __init__, "get_config": get_config,
                                          "__doc__": f"VarianceScaling(scale={scale}, mode={mode!r}, distribution={distribution!r})."})


GlorotUniform = _preset("GlorotUniform", 1.0, "fan_avg", "uniform")
GlorotNormal = _preset("GlorotNormal", 1.0, "fan_avg", "truncated_normal")
HeUniform = _preset("HeUniform", 2.0, "fan_in", "uniform")
HeNormal = _preset("HeNormal", 2.0, "fan_in", "truncated_normal")
LecunUniform = _preset("LecunUniform", 1.0, "fan_in", "uniform")
LecunNormal = _preset("LecunNormal", 1.0, "fan_in", "truncated_normal")

_REGISTRY = {c.__name__: c for c in (Zeros, Ones, Constant, RandomNormal, RandomUniform, VarianceScaling,
                                     GlorotUniform, GlorotNormal, HeUniform, HeNormal, LecunUniform, LecunNormal)}


def get(identifier):
    """An initializer from a name (``"glorot_uniform"``), a config dict or an instance."""
    return resolve(identifier, _REGISTRY, "initializer", aliases={"zeros": Zeros, "ones": Ones})


def serialize_initializer(init):
    return serialize(init)

"""Size limits that keep a model description from exhausting memory.

A layer's weights are allocated when it is built, from sizes that may come
from a file someone else wrote (``Dense(units=10**12)``) or from a typo in
code (``Conv3D(10**10, 2)``). Every weight is checked here before it is
allocated: one layer may hold at most :func:`max_params` parameters, and
while a model file is loaded the whole architecture may hold at most that
many.

The default cap is 100 million parameters (400 MB as float32; the networks of
this project hold well under a million). Raise it with
``core.limits.set_max_params(n)``, for a block of code with
``core.limits.max_params_scope(n)``, or for a whole process with the
environment variable ``NUMPY_CNN_MAX_PARAMS``; ``None`` (or ``0`` in the
variable) removes the cap.
"""
import contextlib
import contextvars
import math
import os

import numpy as np

from .exceptions import ConfigError

DEFAULT_MAX_PARAMS = 100_000_000
_ENV = "NUMPY_CNN_MAX_PARAMS"


def _from_env():
    text = os.environ.get(_ENV)
    if text is None or not text.strip():
        return DEFAULT_MAX_PARAMS
    try:
        value = int(text)
    except ValueError:
        raise ConfigError(f"environment variable {_ENV} must be a whole number of parameters "
                          f"(0 for no cap), got {text!r}") from None
    if value < 0:
        raise ConfigError(f"environment variable {_ENV} must be >= 0 (0 for no cap), got {text!r}")
    return value or None


_MAX_PARAMS = _from_env()
_model_budget = contextvars.ContextVar("numpy_cnn_model_budget", default=None)


def max_params():
    """The current parameter cap (an int), or ``None`` when there is none."""
    return _MAX_PARAMS


def _check_cap(value):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(f"max_params must be a positive int or None (no cap), got {value!r}")
    return int(value)


def set_max_params(value):
    """Set the parameter cap (a positive int, or ``None`` for no cap)."""
    global _MAX_PARAMS
    _MAX_PARAMS = _check_cap(value)


@contextlib.contextmanager
def max_params_scope(value):
    """Use the cap ``value`` inside a ``with`` block."""
    global _MAX_PARAMS
    old, _MAX_PARAMS = _MAX_PARAMS, _check_cap(value)
    try:
        yield
    finally:
        _MAX_PARAMS = old


@contextlib.contextmanager
def model_budget(what):
    """Count every weight built inside the block against one cap, so a whole
    architecture (not only each layer) stays under it; ``what`` names it in
    the error ("the architecture")."""
    token = _model_budget.set({"used": 0, "what": what})
    try:
        yield
    finally:
        _model_budget.reset(token)


def _how_to_raise(cap):
    return (f"the cap is {cap:,} parameters; raise it with core.limits.set_max_params(n), "
            f"core.limits.max_params_scope(n) or the environment variable {_ENV}")


def check_weight(layer, name, shape, existing=0):
    """Check a weight of ``shape`` before it is allocated: every dimension a
    positive int, and the layer (``existing`` parameters so far plus this
    weight) and, while a model file is loaded, the whole model under the cap.
    Returns the shape as a tuple of ints."""
    label = f"layer {getattr(layer, 'name', None)!r} ({type(layer).__name__}) weight {name!r}"
    try:
        dims = tuple(shape)
    except TypeError:
        raise ConfigError(f"{label}: shape must be a tuple of ints, got {shape!r}") from None
    for d in dims:
        if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 1:
            raise ConfigError(f"{label}: every dimension must be a positive int, got shape {shape!r}")
    dims = tuple(int(d) for d in dims)
    count = math.prod(dims)
    cap = _MAX_PARAMS
    budget = _model_budget.get()
    if cap is not None:
        if count + existing > cap:
            raise ConfigError(f"{label} of shape {dims} would bring the layer to {count + existing:,} parameters "
                              f"({(count + existing) * 4 / 2**30:.1f} GiB as float32); {_how_to_raise(cap)}")
        if budget is not None and budget["used"] + count > cap:
            raise ConfigError(f"{budget['what']} needs more than {budget['used'] + count:,} "
                              f"parameters (reached at {label}); {_how_to_raise(cap)}")
    if budget is not None:
        budget["used"] += count
    return dims

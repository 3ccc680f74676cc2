"""Luigi parameter types used by the pipelines.

Each one normalizes its value, so that ``--shape 32``, ``--shape 32x32x32``
and ``shape=(32, 32, 32)`` give the same task (same task id, same output
folder), and paths are made absolute (the same ``--source`` given from two
directories names the same data).
"""
import json
import os
import re

import luigi

from core.exceptions import ConfigError

__all__ = ["AbsPathParameter", "OptionalAbsPathParameter", "SizeParameter", "SpacingParameter"]

_NONE_WORDS = ("", "none", "null")


def _is_none(x):
    return x is None or (isinstance(x, str) and x.strip().lower() in _NONE_WORDS)


class AbsPathParameter(luigi.Parameter):
    """A path, made absolute (``~`` expanded) and kept as a string."""

    def normalize(self, x):
        if _is_none(x):
            raise ConfigError("a path is required here, got an empty value")
        return os.path.abspath(os.path.expanduser(os.fspath(x)))


class OptionalAbsPathParameter(luigi.Parameter):
    """Like :class:`AbsPathParameter`, or ``None`` (given as ``""`` or ``none`` on the command line)."""

    def __init__(self, default=None, **kwargs):
        super().__init__(default=default, **kwargs)

    def parse(self, x):
        return None if _is_none(x) else x

    def serialize(self, x):
        return "" if x is None else str(x)

    def normalize(self, x):
        if _is_none(x):
            return None
        return os.path.abspath(os.path.expanduser(os.fspath(x)))


class _Labelled:
    """Mixin for a Luigi parameter whose parse errors name its option (``label``), since Luigi
    does not tell ``parse`` which option it reads: by default the option of the class attribute
    it is assigned to (``batch_size = IntParameter()`` -> ``--batch-size``, set by Python's
    ``__set_name__`` when the class is made)."""

    def __init__(self, *args, label=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.label = label or "the value"
        self._label_given = label is not None

    def __set_name__(self, owner, name):
        super().__set_name__(owner, name)  # (Luigi records the attribute's name)
        if not self._label_given:  # (the first class that names it: its subclasses share the object)
            self.label = "--" + name.replace("_", "-")
            self._label_given = True


class _TupleParameter(_Labelled, luigi.Parameter):
    """A tuple of ``ndim`` numbers, or None when ``optional``.

    Accepted forms: one number (repeated on every axis), ``32x32x32``,
    ``32,32,32``, ``[32, 32, 32]``, ``(32, 32, 32)``, or a Python sequence.
    Serialized as ``32x32x32`` (or ``""`` for None).
    """

    kind = int
    what = "integers"

    def __init__(self, ndim, default=None, optional=False, **kwargs):
        self.ndim = ndim
        self.optional = optional
        super().__init__(default=default, **kwargs)

    def _convert(self, x):
        if _is_none(x):
            if self.optional:
                return None
            raise ConfigError(f"{self.label}: expected {self.ndim} {self.what}, got an empty value")
        if isinstance(x, str):
            text = x.strip()
            if text.startswith(("[", "(")):
                text = text.strip("[]()")
            parts = [p for p in re.split(r"[x,\s]+", text.lower()) if p]
        elif isinstance(x, (int, float)):
            parts = [x]
        else:
            parts = list(x)
        try:
            values = [self.kind(float(p) if self.kind is float else _as_int(p)) for p in parts]
        except (TypeError, ValueError):
            raise ConfigError(f"{self.label}: expected {self.ndim} {self.what} like "
                              f"{'x'.join(['32'] * self.ndim)}, got {x!r}") from None
        if len(values) == 1:
            values = values * self.ndim
        if len(values) != self.ndim or any(v <= 0 for v in values):
            raise ConfigError(f"{self.label}: expected 1 or {self.ndim} positive {self.what} "
                              f"(like {'x'.join(['32'] * self.ndim)}), got {x!r}")
        return tuple(values)

    def parse(self, x):
        return self._convert(x)

    def normalize(self, x):
        return self._convert(x)

    def serialize(self, x):
        if x is None:
            return ""
        return "x".join(f"{v:g}" if isinstance(v, float) else str(v) for v in x)


def _as_int(p):
    if isinstance(p, bool):
        raise TypeError
    if isinstance(p, str):
        return int(p)
    f = float(p)
    if f != int(f):
        raise ValueError
    return int(f)


class SizeParameter(_TupleParameter):
    """Grid or image size: a tuple of ``ndim`` positive ints (``28x28``, ``32x32x32``)."""

    kind = int
    what = "integers"


class SpacingParameter(_TupleParameter):
    """Voxel size in mm: a tuple of ``ndim`` positive floats (``1.5``, ``1x1x2``)."""

    kind = float
    what = "numbers"


def sweep_values(values, name, kind):
    """Check a sweep's list parameter: a non-empty list of ``kind``; returns a list."""
    if isinstance(values, str):
        values = json.loads(values)
    values = list(values)
    if not values:
        raise ConfigError(f"{name} must list at least one value, got an empty list")
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or (kind is int and int(v) != v):
            raise ConfigError(f"{name} must hold {kind.__name__} values, got {v!r} in {values!r}")
        out.append(kind(v))
    if len(set(out)) != len(out):
        raise ConfigError(f"{name} repeats a value: {values!r}")
    return out


class SweepListParameter(_Labelled, luigi.ListParameter):
    """A sweep's values on the command line: a JSON list (``'[0.001, 0.003]'``) or one value
    (``0.001``, a list of one; Luigi's own list parameter fails on it with a ``TypeError``).
    The values are checked by ``sweep_values`` as ``kind`` (``float`` or ``int``) when read, so a
    bad one fails before any task is scheduled."""

    def __init__(self, *args, kind=float, **kwargs):
        super().__init__(*args, **kwargs)
        self.kind = kind

    def parse(self, x):
        if _is_none(x):  # (``serialize(None)``: a task rebuilt from its string parameters, by Luigi's workers)
            return None
        try:
            value = json.loads(x)
        except ValueError:
            example = "'[0, 1, 2]'" if self.kind is int else "'[0.001, 0.003]'"
            raise ConfigError(f"{self.label} must be a JSON list such as {example} or one number, "
                              f"got {x!r}") from None
        if value is None:
            return None
        return self.normalize(sweep_values(value if isinstance(value, list) else [value], self.label, self.kind))


class IntParameter(_Labelled, luigi.IntParameter):
    """Luigi's integer parameter, whose parse error names its option (Luigi's says only
    ``invalid literal for int()``, with a traceback)."""

    def parse(self, x):
        try:
            return int(x)
        except ValueError:
            raise ConfigError(f"{self.label}: expected a whole number, got {x!r}") from None


class FloatParameter(_Labelled, luigi.FloatParameter):
    """Luigi's float parameter, whose parse error names its option."""

    def parse(self, x):
        try:
            return float(x)
        except ValueError:
            raise ConfigError(f"{self.label}: expected a number, got {x!r}") from None


class AutoIntParameter(_Labelled, luigi.Parameter):
    """A positive integer, or ``auto`` (the classifier decides from the data)."""

    def parse(self, x):
        if str(x).strip().lower() == "auto":
            return "auto"
        try:
            return int(x)
        except ValueError:
            raise ConfigError(f"{self.label}: expected a whole number or 'auto', got {x!r}") from None

    def serialize(self, x):
        return str(x)


class NoneOrIntParameter(_Labelled, luigi.Parameter):
    """A whole number, or ``none`` (also empty): the setting is off."""

    def parse(self, x):
        if x is None or str(x).strip().lower() in ("", "none"):
            return None
        try:
            return int(x)
        except ValueError:
            raise ConfigError(f"{self.label}: expected a whole number or 'none', got {x!r}") from None

    def serialize(self, x):
        return "none" if x is None else str(x)

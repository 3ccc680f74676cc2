"""Declarative constraints on an estimator's settings (scikit-learn's
``_parameter_constraints`` idea, written here).

An estimator class lists, for each constructor setting, the kinds of value it
accepts; ``validate_settings`` checks every setting against its list once,
before any work, and raises ``ConfigError`` naming the setting, what it
accepts and what it got. A subclass extends its parent's table::

    _parameter_constraints = {**BaseClassifier._parameter_constraints,
                              "window": [None, Interval(int, 1, None)]}

A constraint is ``None`` (the value None), an ``Interval``, ``Options``,
``Boolean()``, ``Callable()``, ``Mapping()``, ``Checked(function, description)``,
a type (``str``: any instance),
or any object with ``accepts(value) -> bool`` and a ``str()`` that describes it.
"""
import numbers

import numpy as np

from .exceptions import ConfigError


class Interval:
    """Numbers of ``kind`` (``int`` or ``float``; a float interval also takes ints)
    between ``low`` and ``high`` (``None``: unbounded), ``closed`` on
    ``"both"``, ``"left"``, ``"right"`` or ``"neither"`` side."""

    def __init__(self, kind, low, high, closed="both"):
        if kind not in (int, float):
            raise TypeError("Interval kind must be int or float")
        if closed not in ("both", "left", "right", "neither"):
            raise TypeError(f"Interval closed must be 'both', 'left', 'right' or 'neither', got {closed!r}")
        self.kind, self.low, self.high, self.closed = kind, low, high, closed

    def accepts(self, value):
        if isinstance(value, (bool, np.bool_)):
            return False
        if self.kind is int and not isinstance(value, numbers.Integral):
            return False
        if self.kind is float and not isinstance(value, numbers.Real):
            return False
        if not np.isfinite(float(value)):
            return False
        if self.low is not None:
            if value < self.low or (value == self.low and self.closed in ("right", "neither")):
                return False
        if self.high is not None:
            if value > self.high or (value == self.high and self.closed in ("left", "neither")):
                return False
        return True

    def __str__(self):
        kind = "an int" if self.kind is int else "a number"
        if self.low is None and self.high is None:
            return kind
        left = "[" if self.closed in ("both", "left") else "("
        right = "]" if self.closed in ("both", "right") else ")"
        low = "-inf" if self.low is None else self.low
        high = "inf" if self.high is None else self.high
        return f"{kind} in {left}{low}, {high}{right}"


class Options:
    """One of the given values (compared with ``==``, type-strict for bools)."""

    def __init__(self, *values):
        self.values = values

    def accepts(self, value):
        return any(value == v and isinstance(value, (bool, np.bool_)) == isinstance(v, bool) for v in self.values
                   if _comparable(value, v))

    def __str__(self):
        if len(self.values) == 1:
            return repr(self.values[0])
        return "one of " + ", ".join(repr(v) for v in self.values)


def _comparable(a, b):
    try:
        return bool(a == b) in (True, False)
    except (TypeError, ValueError):
        return False


class Boolean:
    def accepts(self, value):
        return isinstance(value, (bool, np.bool_))

    def __str__(self):
        return "True or False"


class Callable:
    def accepts(self, value):
        return callable(value)

    def __str__(self):
        return "a function"


class Mapping:
    """A dict whose keys and values satisfy ``key`` and ``value`` constraints (when given)."""

    def __init__(self, key=None, value=None):
        self.key, self.value = key, value

    def accepts(self, value):
        if not isinstance(value, dict):
            return False
        return all((self.key is None or _accepts(self.key, k)) and (self.value is None or _accepts(self.value, v))
                   for k, v in value.items())

    def __str__(self):
        inner = ""
        if self.key is not None or self.value is not None:
            inner = f" {{{self.key or 'any'}: {self.value or 'any'}}}"
        return "a dict" + inner


class Checked:
    """Whatever ``check(value)`` accepts without raising ``ValueError`` (a domain's own
    validation function, for settings with a structure of their own); ``description``
    says what it accepts."""

    def __init__(self, check, description):
        self.check, self.description = check, description

    def accepts(self, value):
        try:
            self.check(value)
        except (ValueError, TypeError):
            return False
        return True

    def __str__(self):
        return self.description


def _accepts(constraint, value):
    if constraint is None:
        return value is None
    if isinstance(constraint, type):
        return isinstance(value, constraint) and not (constraint is not bool and isinstance(value, bool))
    return constraint.accepts(value)


def _describe(constraint):
    if constraint is None:
        return "None"
    if isinstance(constraint, type):
        return f"a {constraint.__name__}"
    return str(constraint)


def validate_settings(owner, constraints, settings):
    """Check each of ``settings`` (name -> value) that ``constraints`` lists; ``owner``
    (a class name) appears in the message. Settings without constraints pass."""
    for name, value in settings.items():
        allowed = constraints.get(name)
        if allowed is None:
            continue
        if not any(_accepts(c, value) for c in allowed):
            kinds = [_describe(c) for c in allowed]
            expected = kinds[0] if len(kinds) == 1 else ", ".join(kinds[:-1]) + " or " + kinds[-1]
            raise ConfigError(f"{owner}: {name} must be {expected}, got {value!r}")


__all__ = ["Interval", "Options", "Boolean", "Callable", "Mapping", "Checked", "validate_settings"]

"""Optimizers and learning-rate schedules, following Keras 3's update rules.

An optimizer updates weights in place: ``apply(triples)`` takes
``(key, weight, grad)`` triples, where ``key`` is a stable name such as
``"3/kernel"`` under which the optimizer keeps that weight's slots (momentum,
moments...). Those slots and the step counter are what ``get_state`` returns
and what a saved model carries, so training resumes where it stopped.

Common arguments (Keras 3): ``learning_rate`` (a float or a schedule),
``weight_decay`` (decoupled: ``w -= lr * weight_decay * w`` before the update),
``clipnorm`` (each gradient rescaled to at most this L2 norm), ``clipvalue``,
``global_clipnorm`` (all gradients rescaled together).
"""
import math

import numpy as np

from .exceptions import ConfigError
from .registry import resolve, serialize


# ----------------------------------------------------------------- schedules
class LearningRateSchedule:
    def __call__(self, step):
        raise NotImplementedError

    def get_config(self):
        return dict(self.__dict__)


class ExponentialDecay(LearningRateSchedule):
    """``initial * decay_rate ** (step / decay_steps)``, the exponent floored if ``staircase``."""

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False):
        if decay_steps <= 0:
            raise ConfigError(f"decay_steps must be positive, got {decay_steps}")
        self.initial_learning_rate, self.decay_steps = float(initial_learning_rate), int(decay_steps)
        self.decay_rate, self.staircase = float(decay_rate), bool(staircase)

    def __call__(self, step):
        p = step / self.decay_steps
        return self.initial_learning_rate * self.decay_rate ** (math.floor(p) if self.staircase else p)


class StepDecay(LearningRateSchedule):
    """Step schedule: ``initial * factor ** floor(step / step_size)``
    (multiply the rate by ``factor`` every ``step_size`` optimizer steps)."""

    def __init__(self, initial_learning_rate, step_size, factor=0.1):
        if step_size <= 0:
            raise ConfigError(f"step_size must be positive, got {step_size}")
        self.initial_learning_rate, self.step_size, self.factor = float(initial_learning_rate), int(step_size), float(factor)

    def __call__(self, step):
        return self.initial_learning_rate * self.factor ** (step // self.step_size)


class PiecewiseConstantDecay(LearningRateSchedule):
    """``values[i]`` while ``boundaries[i-1] < step <= boundaries[i]`` (Keras' rule)."""

    def __init__(self, boundaries, values):
        if len(values) != len(boundaries) + 1:
            raise ConfigError(f"values needs one more entry than boundaries, got {len(values)} and {len(boundaries)}")
        self.boundaries, self.values = [int(b) for b in boundaries], [float(v) for v in values]

    def __call__(self, step):
        for b, v in zip(self.boundaries, self.values):
            if step <= b:
                return v
        return self.values[-1]


class CosineDecay(LearningRateSchedule):
    """Cosine decay from ``initial`` to ``initial * alpha`` over ``decay_steps``,
    after an optional linear warm-up to ``warmup_target`` over ``warmup_steps``."""

    def __init__(self, initial_learning_rate, decay_steps, alpha=0.0, warmup_target=None, warmup_steps=0):
        if decay_steps <= 0:
            raise ConfigError(f"decay_steps must be positive, got {decay_steps}")
        self.initial_learning_rate, self.decay_steps, self.alpha = float(initial_learning_rate), int(decay_steps), float(alpha)
        self.warmup_target = None if warmup_target is None else float(warmup_target)
        self.warmup_steps = int(warmup_steps)

    def __call__(self, step):
        start = self.initial_learning_rate
        if self.warmup_target is not None and step < self.warmup_steps:
            return start + (self.warmup_target - start) * step / self.warmup_steps
        peak = self.warmup_target if self.warmup_target is not None else start
        t = min(max(step - self.warmup_steps, 0), self.decay_steps) / self.decay_steps
        return peak * ((1 - self.alpha) * 0.5 * (1 + math.cos(math.pi * t)) + self.alpha)


_SCHEDULES = {c.__name__: c for c in (ExponentialDecay, StepDecay, PiecewiseConstantDecay, CosineDecay)}


# ---------------------------------------------------------------- optimizers
class Optimizer:
    slots = ()

    def __init__(self, learning_rate=0.001, weight_decay=None, clipnorm=None, clipvalue=None,
                 global_clipnorm=None, name=None):
        if isinstance(learning_rate, dict):
            learning_rate = resolve(learning_rate, _SCHEDULES, "learning-rate schedule")
        if not isinstance(learning_rate, LearningRateSchedule):
            learning_rate = float(learning_rate)
            if not learning_rate > 0:
                raise ConfigError(f"learning_rate must be positive, got {learning_rate}")
        if sum(v is not None for v in (clipnorm, clipvalue, global_clipnorm)) > 1:
            raise ConfigError("use only one of clipnorm, clipvalue and global_clipnorm")
        self._learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.clipnorm, self.clipvalue, self.global_clipnorm = clipnorm, clipvalue, global_clipnorm
        self.name = name or type(self).__name__
        self.iterations = 0
        self.state = {}  # slot name -> {key: array}

    @property
    def learning_rate(self):
        """The rate used by the next step (a schedule is evaluated at ``iterations``)."""
        lr = self._learning_rate
        return float(lr(self.iterations)) if isinstance(lr, LearningRateSchedule) else lr

    @learning_rate.setter
    def learning_rate(self, value):
        if isinstance(self._learning_rate, LearningRateSchedule):
            raise ConfigError("this optimizer follows a learning-rate schedule; its rate cannot be set directly")
        self._learning_rate = float(value)

    def _slot(self, name, key, like):
        table = self.state.setdefault(name, {})
        arr = table.get(key)
        if arr is None or arr.shape != like.shape:
            arr = table[key] = np.zeros_like(like)
        return arr

    def _clip(self, triples):
        if self.global_clipnorm is not None:
            total = math.sqrt(sum(float(np.vdot(g, g)) for _, _, g in triples))
            if total > self.global_clipnorm:
                f = self.global_clipnorm / total
                triples = [(k, w, g * g.dtype.type(f)) for k, w, g in triples]
        elif self.clipnorm is not None:
            out = []
            for k, w, g in triples:
                norm = math.sqrt(float(np.vdot(g, g)))
                out.append((k, w, g * g.dtype.type(self.clipnorm / norm) if norm > self.clipnorm else g))
            triples = out
        elif self.clipvalue is not None:
            triples = [(k, w, np.clip(g, -self.clipvalue, self.clipvalue)) for k, w, g in triples]
        return triples

    def apply(self, triples):
        """Update every weight in place from its gradient, then count one step."""
        lr = self.learning_rate
        triples = self._clip(list(triples))
        for key, w, g in triples:
            if self.weight_decay:
                w -= w * w.dtype.type(lr * self.weight_decay)
            self._update(key, w, g, lr)
        self.iterations += 1

    def _update(self, key, w, g, lr):
        raise NotImplementedError

    # ---------------------------------------------------------------- state
    def get_state(self):
        """``{"iterations": array, "<slot>/<key>": array}``: everything needed to resume."""
        out = {"iterations": np.asarray(self.iterations, np.int64)}
        for slot, table in self.state.items():
            for key, arr in table.items():
                out[f"{slot}/{key}"] = arr
        return out

    def set_state(self, state):
        self.iterations = int(state.get("iterations", 0))
        self.state = {}
        for name, arr in state.items():
            if name == "iterations":
                continue
            slot, key = name.split("/", 1)
            self.state.setdefault(slot, {})[key] = np.array(arr)

    def get_config(self):
        lr = self._learning_rate
        return {"learning_rate": serialize(lr) if isinstance(lr, LearningRateSchedule) else lr,
                "weight_decay": self.weight_decay, "clipnorm": self.clipnorm, "clipvalue": self.clipvalue,
                "global_clipnorm": self.global_clipnorm, "name": self.name}


class SGD(Optimizer):
    """``v = momentum * v - lr * g``; ``w += v`` (or ``w += momentum * v - lr * g`` with nesterov)."""

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, **kwargs):
        super().__init__(learning_rate, **kwargs)
        if not 0 <= momentum < 1:
            raise ConfigError(f"momentum must be in [0, 1), got {momentum}")
        self.momentum, self.nesterov = float(momentum), bool(nesterov)

    def _update(self, key, w, g, lr):
        t = w.dtype.type
        if self.momentum == 0:
            w -= t(lr) * g
            return
        v = self._slot("momentum", key, w)
        v *= t(self.momentum)
        v -= t(lr) * g
        if self.nesterov:
            w += t(self.momentum) * v - t(lr) * g
        else:
            w += v

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}


class Adam(Optimizer):
    """Adam with Keras' bias correction folded into the step size:
    ``w -= lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + epsilon)``."""

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.beta_1, self.beta_2, self.epsilon, self.amsgrad = float(beta_1), float(beta_2), float(epsilon), bool(amsgrad)

    def _update(self, key, w, g, lr):
        t = w.dtype.type
        step = self.iterations + 1
        alpha = lr * math.sqrt(1 - self.beta_2 ** step) / (1 - self.beta_1 ** step)
        m = self._slot("m", key, w)
        v = self._slot("v", key, w)
        m += (g - m) * t(1 - self.beta_1)
        v += (np.square(g) - v) * t(1 - self.beta_2)
        if self.amsgrad:
            vhat = self._slot("vhat", key, w)
            np.maximum(vhat, v, out=vhat)
            v = vhat
        w -= t(alpha) * m / (np.sqrt(v) + t(self.epsilon))

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon,
                "amsgrad": self.amsgrad}


class AdamW(Adam):
    """Adam with decoupled weight decay (Keras default ``weight_decay=0.004``)."""

    def __init__(self, learning_rate=0.001, weight_decay=0.004, **kwargs):
        super().__init__(learning_rate, weight_decay=weight_decay, **kwargs)


class RMSprop(Optimizer):
    """``s = rho * s + (1 - rho) * g^2``; ``w -= lr * g / sqrt(s + epsilon)``
    (Keras 3 form, optional momentum and centering)."""

    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.rho, self.momentum, self.epsilon, self.centered = float(rho), float(momentum), float(epsilon), bool(centered)

    def _update(self, key, w, g, lr):
        t = w.dtype.type
        s = self._slot("velocity", key, w)
        s *= t(self.rho)
        s += t(1 - self.rho) * np.square(g)
        denom = s
        if self.centered:
            a = self._slot("average_gradient", key, w)
            a *= t(self.rho)
            a += t(1 - self.rho) * g
            denom = s - np.square(a)
        step = t(lr) * g / np.sqrt(denom + t(self.epsilon))
        if self.momentum > 0:
            mom = self._slot("momentum", key, w)
            mom *= t(self.momentum)
            mom += step
            w -= mom
        else:
            w -= step

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "momentum": self.momentum, "epsilon": self.epsilon,
                "centered": self.centered}


_REGISTRY = {c.__name__: c for c in (SGD, Adam, AdamW, RMSprop)}


def get(identifier):
    """An optimizer from a name (``"adam"``, ``"sgd"``...), config dict or instance."""
    return resolve(identifier, _REGISTRY, "optimizer", aliases={"adamw": AdamW, "rmsprop": RMSprop})

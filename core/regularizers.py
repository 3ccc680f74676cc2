"""Weight penalties added to the loss (Keras names: ``L2``, ``L1``, ``L1L2``)."""
import numpy as np

from .registry import resolve


class Regularizer:
    def __call__(self, w):
        """Penalty value for weights ``w``."""
        raise NotImplementedError

    def gradient(self, w):
        """Gradient of the penalty with respect to ``w``."""
        raise NotImplementedError


class L1L2(Regularizer):
    def __init__(self, l1=0.0, l2=0.0):
        self.l1, self.l2 = float(l1), float(l2)

    def __call__(self, w):
        out = 0.0
        if self.l1:
            out += self.l1 * float(np.abs(w).sum())
        if self.l2:
            out += self.l2 * float(np.square(w).sum())
        return out

    def gradient(self, w):
        g = np.zeros_like(w)
        if self.l1:
            g += self.l1 * np.sign(w)
        if self.l2:
            g += (2.0 * self.l2) * w
        return g

    def get_config(self):
        return {"l1": self.l1, "l2": self.l2}


class L2(L1L2):
    def __init__(self, l2=0.01):
        super().__init__(0.0, l2)

    def get_config(self):
        return {"l2": self.l2}


class L1(L1L2):
    def __init__(self, l1=0.01):
        super().__init__(l1, 0.0)

    def get_config(self):
        return {"l1": self.l1}


_REGISTRY = {"L1L2": L1L2, "L2": L2, "L1": L1}


def get(identifier):
    if identifier is None:
        return None
    return resolve(identifier, _REGISTRY, "regularizer", aliases={"l2": L2, "l1": L1, "l1_l2": L1L2})

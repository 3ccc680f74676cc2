"""A pool of reusable arrays that layers borrow their outputs and
temporaries from.

A training step allocates the same large arrays step after step (layer
outputs, column matrices, gradients). Allocating them afresh makes the
process fault every page of them in again, which on small networks costs as
much as the arithmetic. A ``Workspace`` keeps them: ``take`` lends an array
of the asked tag, shape and dtype, reusing one given back earlier, and
``reclaim`` gives back everything lent since the last ``reclaim``. The model
owns one workspace and calls ``reclaim`` before each step or batch, when the
contexts that referred to the lent arrays are dropped; an array is never
lent twice at the same time.

A reused array holds what its previous borrower of the same tag left in it.
``init`` fills a *new* array only (``"zeros"`` or a number); it is for
buffers whose borrowers never write some part of them (the zero border of a
padded copy, a vector of ones).

``UNPOOLED`` allocates a new array on every call: the default for a layer
called on its own, outside a model.
"""
import numpy as np

#: pooled arrays not asked for during this many reclaims are dropped
KEEP_UNUSED = 4


class Workspace:
    def __init__(self):
        self._free = {}        # key -> list of arrays given back
        self._lent = []        # (key, array) lent since the last reclaim
        self._last_used = {}   # key -> reclaim count when last lent
        self._reclaims = 0

    def take(self, tag, shape, dtype, init=None):
        """An array of ``shape`` (a tuple) and ``dtype`` lent until the next ``reclaim``."""
        key = (tag, shape, dtype)
        stack = self._free.get(key)
        arr = stack.pop() if stack else _allocate(shape, dtype, init)
        self._lent.append((key, arr))
        return arr

    def reclaim(self):
        """Give back every array lent since the last call (their borrowers must be done)."""
        count = self._reclaims = self._reclaims + 1
        free, used = self._free, self._last_used
        for key, arr in self._lent:
            stack = free.get(key)
            if stack is None:
                free[key] = [arr]
            else:
                stack.append(arr)
            used[key] = count
        self._lent.clear()
        if count % KEEP_UNUSED == 0:
            for key in [k for k, last in used.items() if count - last > KEEP_UNUSED]:
                free.pop(key, None)
                del used[key]

    def clear(self):
        """Forget every array, lent or free."""
        self._free.clear()
        self._lent.clear()
        self._last_used.clear()

    @property
    def nbytes(self):
        """Bytes held, lent or free."""
        return sum(a.nbytes for arrs in self._free.values() for a in arrs) + sum(a.nbytes for _, a in self._lent)


class _Unpooled:
    """``take`` without reuse: a new array every time."""

    def take(self, tag, shape, dtype, init=None):
        return _allocate(shape, dtype, init)

    def reclaim(self):
        pass


def _allocate(shape, dtype, init):
    if init is None:
        return np.empty(shape, dtype)
    if isinstance(init, str) and init == "zeros":
        return np.zeros(shape, dtype)
    return np.full(shape, init, dtype)


UNPOOLED = _Unpooled()

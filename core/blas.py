"""Matrix products that let other threads run: ``dot`` (``a @ b``) and ``gemm_into``, which adds
into its output in place: ``out = beta * out + a @ b``.

``dot``: NumPy's ``matmul`` (the ``@`` operator) releases the GIL only when its result has
more than 500 elements, however long the product takes: a kernel gradient ``(K*C, filters)``
summed over every position of a batch, or a batch-norm sum ``ones @ (rows, channels)``, held
it from start to end, and the partner shard of a sharded step (``core.parallel``) stood still
meanwhile. ``np.dot`` of the same 1-D/2-D operands calls the same BLAS routines and releases
it for any size.

NumPy's ``matmul`` always overwrites its output, so adding a product into an
existing array costs a temporary and one more pass over both. BLAS's ``gemm``
takes that ``beta`` itself. SciPy wraps it (``scipy.linalg.blas.sgemm``), but
those wrappers hold the GIL for the whole call: two shards of a batch on two
threads would take turns (measured: two threads no faster than one). So this
module calls the same routine through the function pointers SciPy publishes
for Cython (``scipy.linalg.cython_blas``, a public API) with ``ctypes``, which
releases the GIL around a foreign call. Where that is not available, or the
arrays do not suit it, it falls back to ``matmul`` and an add (same result up
to float rounding).

The BLAS behind it is SciPy's, which ``core.parallel`` limits to one thread
inside a sharded pass like NumPy's (threadpoolctl sees both).
"""
import ctypes

import numpy as np

from . import parallel

_routines = {}  # dtype -> the ctypes function, or None where unavailable


_NAMES = {np.dtype(np.float32): ("sgemm", ctypes.c_float), np.dtype(np.float64): ("dgemm", ctypes.c_double)}


def _routine(dtype):
    if dtype not in _routines:
        _routines[dtype] = _load(dtype) if dtype in _NAMES else None
    return _routines[dtype]


def _load(dtype):
    name, real = _NAMES[dtype]
    try:
        from scipy.linalg import cython_blas
        capsule = cython_blas.__pyx_capi__[name]
        api = ctypes.pythonapi
        api.PyCapsule_GetName.restype = ctypes.c_char_p
        api.PyCapsule_GetName.argtypes = [ctypes.py_object]
        api.PyCapsule_GetPointer.restype = ctypes.c_void_p
        api.PyCapsule_GetPointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
        address = api.PyCapsule_GetPointer(capsule, api.PyCapsule_GetName(capsule))
    except (ImportError, AttributeError, KeyError, ValueError):  # pragma: no cover - SciPy without it
        return None
    if not address:  # pragma: no cover
        return None
    integer, pointer = ctypes.POINTER(ctypes.c_int), ctypes.c_void_p
    # Fortran gemm(transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc), every argument by reference
    prototype = ctypes.CFUNCTYPE(None, ctypes.c_char_p, ctypes.c_char_p, integer, integer, integer,
                                 ctypes.POINTER(real), pointer, integer, pointer, integer, ctypes.POINTER(real),
                                 pointer, integer)
    return prototype(address), real


_INT_MAX = 2 ** 31 - 1


def dot(a, b):
    """``a @ b``; for 1-D or 2-D ``a`` and ``b``, releasing the GIL whatever the result's size (see
    the module's docstring): for products with a small result, such as weight gradients and sums
    over the rows of a tall matrix.

    A 2-D operand that is neither C- nor Fortran-contiguous (a block of a larger array), which
    ``np.dot`` would copy element by element (2.9x slower than ``matmul``): beside partner
    threads (``core.parallel.beside_partners``) it is copied here along its axis of unit stride
    first, which also lets the partners run; alone, ``matmul`` takes it as it is (the copy made
    a Conv3D block's kernel gradient 1.3x slower)."""
    if a.ndim > 2 or b.ndim > 2:  # np.dot's N-D product is not matmul's
        return np.matmul(a, b)
    if (a.ndim == 2 and not _contiguous(a)) or (b.ndim == 2 and not _contiguous(b)):
        if not parallel.beside_partners():
            return np.matmul(a, b)
        a, b = _runs(a), _runs(b)
    return np.dot(a, b)


def _runs(x):
    """``x``, or for a 2-D ``x`` that is not contiguous, a contiguous copy laid out in the order
    of its axis of smaller stride (so the copy reads runs)."""
    if x.ndim != 2 or _contiguous(x):
        return x
    return np.asfortranarray(x) if abs(x.strides[0]) < abs(x.strides[1]) else np.ascontiguousarray(x)


def _contiguous(x):
    return x.flags.c_contiguous or x.flags.f_contiguous


def gemm_into(out, a, b, beta):
    """``out[...] = beta * out + a @ b`` for 2-D ``a (m, k)``, ``b (k, f)``, ``out (m, f)``; returns
    ``out``. With ``beta == 0`` what ``out`` held is not read. Aligned, C-contiguous float32 or
    float64 arrays of one dtype in native byte order, ``out`` writeable and sharing no memory
    with ``a`` or ``b``, take BLAS's gemm directly (releasing the GIL); anything else ``matmul``
    (which raises for a read-only ``out``)."""
    routine = None
    if (a.dtype == b.dtype == out.dtype and a.dtype.isnative
            and all(arr.flags.c_contiguous and arr.flags.aligned for arr in (a, b, out))
            and out.flags.writeable and out.shape == (a.shape[0], b.shape[1]) and a.shape[1] == b.shape[0]
            and max(a.shape + b.shape) <= _INT_MAX and a.size and b.size
            and not np.may_share_memory(out, a) and not np.may_share_memory(out, b)):
        routine = _routine(a.dtype)
    if routine is None:
        if beta == 0:
            return np.matmul(a, b, out=out)
        if beta != 1:
            out *= beta
        out += a @ b
        return out
    gemm, real = routine
    m, k = a.shape
    f = b.shape[1]
    ref = ctypes.byref
    c_int = ctypes.c_int
    # in column-major terms, C-ordered out (m, f) is out.T (f, m) = b.T (f, k) @ a.T (k, m)
    gemm(b"N", b"N", ref(c_int(f)), ref(c_int(m)), ref(c_int(k)), ref(real(1.0)), b.ctypes.data, ref(c_int(f)),
         a.ctypes.data, ref(c_int(k)), ref(real(beta)), out.ctypes.data, ref(c_int(f)))
    return out

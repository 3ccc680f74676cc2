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

``matmul`` and ``dot`` cut a skinny product into pieces for OpenBLAS's small-matrix kernels
(``pieces``). OpenBLAS built for Skylake-X and the cores that extend it (Cooper Lake,
Sapphire Rapids, what threadpoolctl names its ``architecture``) multiplies a product of at
most ``SMALL_KERNEL_MNK`` multiply-adds ``m * n * k`` straight from its operands; a larger one
goes to the general kernel, which first packs the operands into panels. For the products of
a convolution with few input channels, where one operand is a small kernel matrix and the
other tens of thousands of columns long, the packing and the general kernel's 16-wide tiles
cost more than the arithmetic: on the 2-core Xeon (Emerald Rapids) of benchmarks/RESULTS.md,
one thread, ``(8, 27) @ (27, 4640)`` took 52 microseconds, ``(8, 27) @ (27, 4620)`` (just
under the limit) 22. Cut into pieces under the limit, such products ran in 0.3-0.8x the time
where the reduction is at most ``SPLIT_MAX_DEPTH`` long (a kernel matrix of few input
channels; pieces along the long output axis) or the first of two row-major operands is a
small matrix of several rows (``SPLIT_MAX_KERNEL``), and where the result has at most
``SPLIT_MAX_RESULT`` elements (a kernel gradient summed over many positions; pieces along the
reduction, added up); longer reductions and larger results ran as fast or up to 1.7x slower
in pieces, so those stay whole, as do products whose layout OpenBLAS keeps from its small
kernels (``pieces``). Elsewhere (other cores, other BLAS libraries) nothing is cut.
"""
import ctypes
import math
import os

import numpy as np

from . import parallel

#: the most multiply-adds (``m * n * k``) OpenBLAS gives its small-matrix kernels
SMALL_KERNEL_MNK = 1_000_000
#: threadpoolctl's names for the OpenBLAS cores that have them (Skylake-X's kernels)
SMALL_KERNEL_CORES = frozenset({"SkylakeX", "Cooperlake", "SapphireRapids"})
#: a product is cut along its longest output axis only if its reduction is at most this long
SPLIT_MAX_DEPTH = 32
#: ... and only if its other output axis is at most this long (a few filters or units)
SPLIT_MAX_SIDE = 64
#: ... or, two operands read row by row cut along the columns, if the first has more than one
#: row and at most this many elements (a slice of a kernel)
SPLIT_MAX_KERNEL = 1024
#: a product is cut along its reduction only if its result has at most this many elements
SPLIT_MAX_RESULT = 1024
#: cut products into pieces: ``None`` decides from the BLAS libraries loaded (``small_kernels``);
#: ``True`` / ``False`` force it (tests)
SPLIT = None
_small = {}

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


def small_kernels():
    """Whether NumPy's matrix products run on OpenBLAS's small-matrix kernels up to
    ``SMALL_KERNEL_MNK`` (see the module's docstring): NumPy's BLAS (the one in NumPy's own
    folder; where none is there, every BLAS library loaded) is OpenBLAS running one of
    ``SMALL_KERNEL_CORES``. Asked once (threadpoolctl)."""
    if "answer" not in _small:
        from threadpoolctl import threadpool_info
        _small["answer"] = cores_have_small_kernels(threadpool_info(), os.path.dirname(np.__file__))
    return _small["answer"]


def cores_have_small_kernels(info, numpy_dir=None):
    """``small_kernels`` for threadpoolctl's ``threadpool_info()`` list: the BLAS libraries
    inside ``numpy_dir`` or its wheel's ``.libs`` folder beside it, or where there are none
    every BLAS library listed, are OpenBLAS with an ``architecture`` in ``SMALL_KERNEL_CORES``
    (in any case: builds for one core name it in capitals); and there is at least one."""
    libraries = [lib for lib in info if lib.get("user_api") == "blas"]
    if numpy_dir:
        folders = tuple(os.path.join(folder, "") for folder in (numpy_dir, numpy_dir + ".libs"))
        own = [lib for lib in libraries if str(lib.get("filepath", "")).startswith(folders)]
        libraries = own or libraries
    cores = {name.lower() for name in SMALL_KERNEL_CORES}
    return bool(libraries) and all(lib.get("internal_api") == "openblas"
                                   and str(lib.get("architecture")).lower() in cores for lib in libraries)


def pieces(m, k, n, dtype, a_transposed=False, b_transposed=False):
    """How to cut the product of an ``(m, k)`` and a ``(k, n)`` matrix of ``dtype`` for the
    small-matrix kernels: ``(axis, length)``, pieces of ``length`` along ``axis`` (0: the rows
    of the result, 1: the reduction, 2: its columns; the last piece may be shorter), or
    ``None`` to leave it whole. Cut only where it pays (the module's docstring): the product
    is over ``SMALL_KERNEL_MNK``, its longest axis is an output axis with a reduction of at
    most ``SPLIT_MAX_DEPTH`` and another output axis of at most ``SPLIT_MAX_SIDE`` (the sizes
    measured) or, for two operands read row by row, the columns with a first operand of more
    than one row and at most ``SPLIT_MAX_KERNEL`` elements (measured: ``(8, 48) @ (48, 3604)``
    0.56-0.74x the time in pieces, ``(8, 96)`` 0.59x, ``(16, 64)`` 0.94x, ``(32, 64)``
    0.83-1.07x, ``(16, 216)`` 1.05x; a single row 1.15-1.43x), or the reduction with a result
    of at most ``SPLIT_MAX_RESULT`` elements;
    float32 and float64 only. Pieces of near-equal length, as few as fit.

    ``a_transposed`` / ``b_transposed``: NumPy hands that operand to BLAS transposed (it is not
    laid out row by row, ``_rows_major``). OpenBLAS keeps its small kernels from a product whose
    second operand only is transposed when the reduction is shorter than 32 or the result has
    more than 1200 elements, and from two transposed operands when the reduction is shorter
    than 4 (``sgemm_small_kernel_permit_skylakex.c``): such output-axis pieces would only add
    calls, so those products stay whole."""
    split = small_kernels() if SPLIT is None else SPLIT
    if not split or np.dtype(dtype) not in _NAMES or m * k * n <= SMALL_KERNEL_MNK:
        return None
    dims = (m, k, n)
    axis = max(range(3), key=dims.__getitem__)
    if axis == 1:
        small = m * n <= SPLIT_MAX_RESULT
    elif axis == 2 and not (a_transposed or b_transposed) and m > 1:
        small = m * k <= SPLIT_MAX_KERNEL
    else:
        small = k <= SPLIT_MAX_DEPTH and min(m, n) <= SPLIT_MAX_SIDE
    if not small:
        return None
    if axis != 1 and (b_transposed and not a_transposed or a_transposed and b_transposed and k < 4):
        return None
    rest = m * k * n // dims[axis]  # (at most SPLIT_MAX_DEPTH * SPLIT_MAX_SIDE or SPLIT_MAX_RESULT)
    count = math.ceil(dims[axis] / (SMALL_KERNEL_MNK // rest))
    return axis, math.ceil(dims[axis] / count)


def _rows_major(x):
    """Whether NumPy hands the 2-D ``x`` to BLAS as it is, row by row (unit stride along its
    rows, rows at least a row apart), rather than transposed."""
    step, unit = x.strides
    return unit == x.itemsize and step % x.itemsize == 0 and step // x.itemsize >= x.shape[1]


def _plan(a, b, out):
    """``pieces`` for ``a @ b`` into ``out`` (``None``: a new array), or ``None`` where NumPy's
    own call is to run it: operands other than two 2-D ones of one dtype with matching inner
    dimensions, or an ``out`` not of the result's shape and dtype, or sharing memory with
    ``a`` or ``b`` (NumPy then raises, or copies, as it would)."""
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0] or a.dtype != b.dtype:
        return None
    plan = pieces(a.shape[0], a.shape[1], b.shape[1], a.dtype, not _rows_major(a), not _rows_major(b))
    if plan is not None and out is not None and (
            out.shape != (a.shape[0], b.shape[1]) or out.dtype != a.dtype
            or np.may_share_memory(out, a) or np.may_share_memory(out, b)):
        return None
    return plan


def matmul(a, b, out=None):
    """``np.matmul(a, b, out=out)``, in pieces where OpenBLAS's small-matrix kernels run it
    faster (``pieces``)."""
    plan = _plan(a, b, out)
    if plan is None:
        return np.matmul(a, b, out=out)
    return _in_pieces(a, b, out, *plan)


def _in_pieces(a, b, out, axis, length):
    """``a @ b`` piece by piece (``pieces``'s ``axis`` and ``length``), into ``out`` (``None``: a
    new array); returns it."""
    if out is None:
        out = np.empty((a.shape[0], b.shape[1]), a.dtype)
    if axis == 0:
        for i in range(0, a.shape[0], length):
            np.matmul(a[i:i + length], b, out=out[i:i + length])
    elif axis == 2:
        for i in range(0, b.shape[1], length):
            np.matmul(a, b[:, i:i + length], out=out[:, i:i + length])
    else:
        np.matmul(a[:, :length], b[:length], out=out)
        for i in range(length, a.shape[1], length):
            out += np.matmul(a[:, i:i + length], b[i:i + length])
    return out


def dot(a, b):
    """``a @ b``; for 1-D or 2-D ``a`` and ``b``, releasing the GIL whatever the result's size (see
    the module's docstring): for products with a small result, such as weight gradients and sums
    over the rows of a tall matrix.

    A 2-D operand that is neither C- nor Fortran-contiguous (a block of a larger array), which
    ``np.dot`` would copy element by element (2.9x slower than ``matmul``): beside partner
    threads (``core.parallel.beside_partners``) it is copied here along its axis of unit stride
    first, which also lets the partners run; alone, ``matmul`` takes it as it is (the copy made
    a Conv3D block's kernel gradient 1.3x slower).

    Alone, a product that the small-matrix kernels run faster goes in pieces (``matmul``);
    beside partner threads it stays whole, as ``matmul`` would hold the GIL for each piece."""
    if a.ndim > 2 or b.ndim > 2:  # np.dot's N-D product is not matmul's
        return np.matmul(a, b)
    alone = not parallel.beside_partners()
    plan = _plan(a, b, None) if alone else None
    if plan is not None:
        return _in_pieces(a, b, None, *plan)
    if (a.ndim == 2 and not _contiguous(a)) or (b.ndim == 2 and not _contiguous(b)):
        if alone:
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

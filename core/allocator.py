"""Keep freed memory in the process for reuse (glibc only).

A training step allocates and frees the same large temporary arrays (layer
outputs, gradients) again and again. By default glibc hands every block over
128 KB back to the operating system when it is freed, so the next step gets
fresh pages and pays a page fault for every 4 KB it touches: on the tutorial
network (batch 64) that was half of the step (2.8 ms -> 1.5 ms without it).
``keep_freed_memory`` raises glibc's mmap and trim thresholds so freed blocks
stay in the heap and are reused, which is what the deep-learning frameworks'
caching allocators do. The process then keeps its peak memory until exit.

It is applied when ``core`` is imported, on Linux with glibc; set the
environment variable ``NUMPY_CNN_MALLOC=default`` to leave glibc's defaults.
"""
import ctypes
import os
import sys

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 256 << 20  # blocks up to this size come from the reusable heap
TRIM_THRESHOLD = 512 << 20  # free memory at the heap top kept before returning it


def keep_freed_memory():
    """Raise glibc's mmap/trim thresholds; returns True if they were set."""
    if os.environ.get("NUMPY_CNN_MALLOC", "").lower() == "default" or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
            libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    except (OSError, AttributeError):  # not glibc (musl, macOS...): nothing to tune
        return False


ACTIVE = keep_freed_memory()

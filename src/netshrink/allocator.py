"""Keep freed memory in the process: no page faults for the large temporaries of deep learning.

glibc serves every allocation above its mmap threshold (at most 32 MB) from fresh pages and
returns them on free; the kernel then zeroes each page on first touch. A conv net's activations
are such allocations, made and freed every batch: measured on this book's `Conv4Net` (evaluation
in batches of 1,000 and training in batches of 128, one thread), 33 % of the CPU time went to
the kernel (4.2 M page faults) and the same work took 1.4x longer than with the memory kept.
`keep_freed_memory` tells glibc (`mallopt`, part of the C library, no package) to serve large
blocks from its heap and keep what is freed for reuse. Elsewhere (macOS, musl) it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_MAX = -1, -2, -4  # <malloc.h>
_applied: bool | None = None


def keep_freed_memory() -> bool:
    """Make glibc keep freed memory for reuse (no mmap for large blocks, no trimming of the heap).
    Returns whether it applied; idempotent."""
    global _applied
    if _applied is not None:
        return _applied
    _applied = False
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    _applied = all(
        mallopt(option, value) == 1
        for option, value in ((_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, 1 << 30), (_M_TOP_PAD, 64 << 20))
    )
    return _applied


def keeps_freed_memory() -> bool:
    """Whether `keep_freed_memory` has applied in this process."""
    return bool(_applied)

"""Process-level settings of the CPU runtime (the tools, the demos and :class:`~ovdense.runner.OVRunner` apply them;
a script of one's own calls :func:`keep_freed_memory` once)."""
from __future__ import annotations

import ctypes
import ctypes.util
import sys

__all__ = ['keep_freed_memory']

# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def keep_freed_memory(limit: int = 1 << 30) -> bool:
    """Let the C library's malloc keep freed blocks of up to ``limit`` bytes for reuse instead of giving them back to
    the operating system.

    PyTorch's CPU allocator has no cache: every activation of a forward is a fresh ``malloc``, and glibc serves a
    block above its mmap threshold (128 KB at start, raised to at most 32 MB as blocks are freed) with a new
    ``mmap`` and trims its heap once the free top exceeds twice that, so the next layer's buffers fault in again,
    a zeroed 4 KB page at a time. A ViT-B/16 segmentation of one COCO image took 20-45 thousand page faults and
    5-25 % of its time for that here (SCLIP's protocol: 0.72-0.99 s per image, 0.68-0.70 s with this). With both
    thresholds at ``limit`` the blocks are reused; the peak RSS is the same (freed memory is kept, not added to), the
    process just does not shrink after its peak. PyTorch's CPU launcher (``torch.backends.xeon.run_cpu``) gets the
    same from outside the process by preloading jemalloc or tcmalloc.

    Args:
        limit: the largest block kept (bytes, at most 2 GiB: glibc's setting is an int).

    Returns:
        True when set; False where the C library has no ``mallopt`` (not glibc: macOS, musl), nothing changed.

    Raises:
        ValueError: ``limit`` is not in (0, 2 GiB).
    """
    if not 0 < limit < 1 << 31:
        raise ValueError(f'limit must be in (0, 2 GiB) bytes, got {limit}')
    if not sys.platform.startswith('linux'):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6')
    except OSError:
        return False
    mallopt = getattr(libc, 'mallopt', None)
    if mallopt is None or not hasattr(libc, 'gnu_get_libc_version'):  # musl has a mallopt that does nothing
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_TRIM_THRESHOLD, limit)) and bool(mallopt(_M_MMAP_THRESHOLD, limit))

"""Keeping a long-running scoring process's C heap bounded: large buffers mapped and unmapped on their own
(glibc ``mallopt``), Arrow on the system allocator, and free pages handed back between batches
(``malloc_trim``)."""
from __future__ import annotations

# Allocations at least this large get their own mapping, returned to the system when freed (glibc's default
# threshold starts at 128 KiB but rises, after the first large free, up to 32 MiB: from then on tensors and
# Arrow buffers of a few MB are carved from the heap, and their freed space fragments it).
MMAP_THRESHOLD = 128 * 1024
_M_MMAP_THRESHOLD = -3          # glibc's mallopt parameter number

_LIBC: list = []


def _libc():
    if not _LIBC:
        try:
            import ctypes
            libc = ctypes.CDLL("libc.so.6")
            libc.malloc_trim.argtypes = [ctypes.c_size_t]
            libc.malloc_trim.restype = ctypes.c_int
            libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
            libc.mallopt.restype = ctypes.c_int
            _LIBC.append(libc)
        except (OSError, AttributeError):
            _LIBC.append(None)
    return _LIBC[0]


def bound_heap(arrow: bool = True) -> bool:
    """For a process that scores batch after batch for hours (the Ray scoring actor): fix glibc's mmap
    threshold at :data:`MMAP_THRESHOLD` (so the dynamic threshold never moves large, short-lived buffers into
    the heap) and, with ``arrow``, make Arrow allocate from the system allocator (its default, mimalloc, keeps
    freed pages for reuse, out of reach of :func:`release_free_heap`). Returns whether glibc's setting took."""
    if arrow:
        try:
            import pyarrow as pa
            pa.set_memory_pool(pa.system_memory_pool())
        except (ImportError, AttributeError):
            pass
    libc = _libc()
    return bool(libc is not None and libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1)


def release_free_heap() -> bool:
    """Hand the C heap's free pages back to the system (glibc ``malloc_trim(0)``; a no-op elsewhere). Returns
    whether it ran.

    Why the Ray scoring actor needs it: Ray runs an actor's calls on a thread of its own, whose allocations come
    from a separate glibc arena. Each batch allocates and frees tens of MB of short-lived buffers (tensors,
    Arrow columns, Python lists) of varying sizes; the freed space of that arena is kept, fragmented, and grows
    batch after batch (measured with ``EXPERTLENS_TRIAGE_MEMDEBUG``: glibc's in-use bytes stay flat while its
    free-but-kept bytes climb by 1-2 MB per 1,000 lines). Trimming after each call returns those pages, so
    the actor's memory stays bounded; the cost is a walk over the free lists, milliseconds per batch. The local
    engine calls it once per written part (and its worker processes once per window)."""
    libc = _libc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True

"""Returning the C heap's free pages to the system between batches (glibc's ``malloc_trim``)."""
from __future__ import annotations

_LIBC: list = []


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
    if not _LIBC:
        try:
            import ctypes
            libc = ctypes.CDLL("libc.so.6")
            libc.malloc_trim.argtypes = [ctypes.c_size_t]
            libc.malloc_trim.restype = ctypes.c_int
            _LIBC.append(libc)
        except (OSError, AttributeError):
            _LIBC.append(None)
    if _LIBC[0] is None:
        return False
    _LIBC[0].malloc_trim(0)
    return True


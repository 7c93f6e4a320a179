"""Handing memory freed after a page back to the system (glibc).

glibc gives each thread that allocates under contention an arena of its own (up to eight per
core) and keeps what a thread freed in that thread's arena. The embedded engine decodes each
page of records on its own threads, so with two pages in flight the memory of one page is
often not reused for the next: exporting the 659 MB benchmark dump as in a 2 GiB container
peaked at 363 MB; calling malloc_trim after each page, which returns the free pages of every
arena, at 286-288 MB, in the same time (by hand, 16 MiB pages). Capping the arenas instead
(mallopt M_ARENA_MAX = 2) bounded memory as well but halved the engine's speed on large
queries (a whole-table read: 12.0 s against 5.8 s), so it is not done.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform
from functools import cache
from typing import Any


@cache
def _glibc() -> Any:
    if platform.libc_ver()[0] != "glibc":
        return None
    name = ctypes.util.find_library("c")
    return ctypes.CDLL(name) if name else None


def release_freed_memory() -> bool:
    """Return the free memory of every malloc arena to the system; whether any was (False
    where the C library is not glibc)."""
    libc = _glibc()
    return bool(libc is not None and libc.malloc_trim(0))

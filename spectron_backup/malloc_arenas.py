"""Fewer malloc arenas for the embedded engine's threads.

glibc gives each thread that allocates under contention an arena of its own, up to eight per
core, and keeps memory a thread freed in that thread's arena. The embedded engine decodes
each page of records on its own threads and the next page often lands in another arena, so
memory freed after one page is not reused for the next: exporting two pages at a time, as in
a 2 GiB container, peaked at 370-407 MB with glibc's default and at 299 MB with two arenas,
in the same time (by hand; one arena serialised the engine's threads and took twice as
long). `MALLOC_ARENA_MAX` in the environment says the same, but only if set before the
process starts; mallopt sets it for arenas not yet created, so it is called before the
engine starts its threads.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform
from functools import cache

#: glibc's mallopt parameter for the most arenas (malloc.h: M_ARENA_MAX).
_M_ARENA_MAX = -8


@cache
def limit_malloc_arenas() -> bool:
    """Cap glibc's arenas at one per core (2 to 4), unless MALLOC_ARENA_MAX is set; whether
    the cap was set (False on other C libraries)."""
    if "MALLOC_ARENA_MAX" in os.environ or platform.libc_ver()[0] != "glibc":
        return False
    libc_name = ctypes.util.find_library("c")
    if libc_name is None:
        return False
    arenas = max(2, min(4, os.cpu_count() or 2))
    return bool(ctypes.CDLL(libc_name).mallopt(_M_ARENA_MAX, arenas))

"""Large allocations straight from and back to the system (glibc), for flat memory.

glibc serves a large allocation with mmap and returns it on free, but after the first such
free it raises that threshold to the freed size (up to 32 MiB): from then on buffers of a
page's size come from a malloc arena and stay there when freed. The embedded engine builds
each page's buffers on its own threads, which glibc gives arenas of their own (up to eight
per core), so with two pages in flight the memory of one page is seldom reused for the next.
Exporting the 659 MB benchmark dump as in a 2 GiB container peaked at 363-407 MB with glibc's
defaults and at 255-295 MB with the threshold fixed at 1 MiB, in about the same time; the
benchmark's whole-table floor read took the same time either way (by hand). The two other
ways tried: malloc_trim after every page (311-316 MB, and slower: freed pages were faulted
in again), and capping the arenas at two (bounded, but the whole-table read took 12.0 s
instead of 5.8 s).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform
from functools import cache

#: glibc's mallopt parameter (malloc.h: M_MMAP_THRESHOLD) and what it is set to
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 1 << 20


@cache
def mmap_large_allocations() -> bool:
    """Fix glibc's mmap threshold at MMAP_THRESHOLD, unless MALLOC_MMAP_THRESHOLD_ is set in
    the environment; whether it was set (False on other C libraries)."""
    if "MALLOC_MMAP_THRESHOLD_" in os.environ or platform.libc_ver()[0] != "glibc":
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    return bool(ctypes.CDLL(name).mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD))

"""Memory freed after a page is handed back to the system where the C library can."""

from __future__ import annotations

import platform

import pytest

from spectron_backup.freed_memory import release_freed_memory


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
def test_freed_memory_goes_back_to_the_system_on_glibc() -> None:
    chunks = [bytearray(64 << 10) for _ in range(256)]  # 16 MiB from the heap, not mmap
    del chunks
    assert release_freed_memory() is True

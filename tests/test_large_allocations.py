"""Opening an embedded store fixes glibc's mmap threshold (flat memory while pages are in
flight), unless the operator set MALLOC_MMAP_THRESHOLD_."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

PROBE = (
    "from spectron_backup.surreal import connect\n"
    "from spectron_backup.large_allocations import mmap_large_allocations\n"
    "with connect('mem://') as conn:\n"
    "    print(mmap_large_allocations())\n"
)


def probe(**env: str) -> str:
    environ = {k: v for k, v in os.environ.items() if k != "MALLOC_MMAP_THRESHOLD_"} | env
    done = subprocess.run(
        [sys.executable, "-c", PROBE], env=environ, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_an_embedded_store_gets_large_allocations_mmapped_on_glibc() -> None:
    assert probe() == "True"


def test_an_operators_mmap_threshold_is_left_alone() -> None:
    assert probe(MALLOC_MMAP_THRESHOLD_="4194304") == "False"

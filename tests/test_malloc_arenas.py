"""The process caps glibc's malloc arenas before the embedded engine starts its threads,
unless the operator set MALLOC_ARENA_MAX."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

PROBE = (
    "from spectron_backup.malloc_arenas import limit_malloc_arenas; print(limit_malloc_arenas())"
)


def probe(**env: str) -> str:
    environ = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"} | env
    done = subprocess.run(
        [sys.executable, "-c", PROBE], env=environ, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_arenas_are_capped_on_glibc() -> None:
    assert probe() == "True"


def test_an_operators_malloc_arena_max_is_left_alone() -> None:
    assert probe(MALLOC_ARENA_MAX="8") == "False"

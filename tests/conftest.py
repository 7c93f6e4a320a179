"""Fixtures shared by the whole suite."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
EXPORT_FIXTURES = FIXTURES / "surreal-3.0.2-export"


def run_cli(*args: str, input: str | None = None, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real `spectron-backup` command line in a child process."""
    return subprocess.run(
        [sys.executable, "-m", "spectron_backup.cli", *args],
        capture_output=True,
        text=True,
        input=input,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
        cwd=cwd or ROOT,
        timeout=600,
    )


@pytest.fixture
def cli():
    return run_cli

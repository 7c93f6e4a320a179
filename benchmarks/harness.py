"""Shared benchmark plumbing: run a phase in a child process, measure wall time and peak RSS,
describe the machine, write results as JSON under benchmarks/results/."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
WORK = ROOT / "work"


@dataclass
class PhaseResult:
    seconds: float
    peak_rss_mb: float
    output: dict[str, Any]
    #: user + system CPU time of the child, all its threads (less sensitive than wall time
    #: to other work on a shared machine)
    cpu_seconds: float = 0.0


def run_phase(module: str, *args: str) -> PhaseResult:
    """Run `python -m <module> args...` in a fresh process.

    The child prints one JSON document on its last stdout line; peak RSS is the child's own
    (wait4's ru_maxrss), so each phase is measured alone.
    """
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", module, *args],
        stdout=subprocess.PIPE,
        cwd=ROOT.parent,
        text=True,
    )
    assert proc.stdout is not None
    out = proc.stdout.read()
    _pid, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"{module} {' '.join(args)} exited {proc.returncode}")
    lines = [line for line in out.strip().splitlines() if line.strip()]
    return PhaseResult(
        seconds,
        usage.ru_maxrss / 1024,
        json.loads(lines[-1]) if lines else {},
        usage.ru_utime + usage.ru_stime,
    )


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": round(mem_gb, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def write_result(name: str, result: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    document = {
        "benchmark": name,
        "measured_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": machine(),
        # e.g. "other jobs were running": what the numbers cannot show about the run
        **({"conditions": os.environ["BENCH_NOTE"]} if os.environ.get("BENCH_NOTE") else {}),
        **result,
    }
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(document, indent=2) + "\n")
    return path

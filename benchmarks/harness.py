"""Shared benchmark plumbing: run a phase in a child process, measure wall time and peak RSS,
describe the machine, write results as JSON under benchmarks/results/."""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
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


def run_phase(module: str, *args: str, prefix: Sequence[str] = ()) -> PhaseResult:
    """Run `python -m <module> args...` in a fresh process (after `prefix`, a command that
    execs the rest, such as `memory_limited`'s).

    The child prints one JSON document on its last stdout line; peak RSS is the child's own
    (wait4's ru_maxrss), so each phase is measured alone.
    """
    started = time.perf_counter()
    proc = subprocess.Popen(
        [*prefix, sys.executable, "-m", module, *args],
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


class NoMemoryLimit(Exception):
    """A memory-limited run is not possible here (the message says why)."""


#: Joins the cgroup, shows it as the cgroup root (as a container's runtime does), then execs.
_ENTER_CGROUP = 'echo $$ > "$0/cgroup.procs" && mount --bind "$0" "$1" && shift && exec "$@"'


@contextmanager
def memory_limited(limit_bytes: int, name: str = "spectron-bench") -> Iterator[list[str]]:
    """A command prefix that runs a phase as in a container with `limit_bytes` of memory.

    The embedded engine sizes its block cache from the memory it sees (half of it, less
    1 GiB, at least 16 MiB: the cgroup limit inside a container, the host's RAM outside), and
    that cache keeps what an export reads. The prefix puts the phase in a memory cgroup with
    the limit and, in a private mount namespace, binds that cgroup over the cgroup root, where
    the engine (and any container) reads the limit. Needs root and `unshare`.
    """
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        raise NoMemoryLimit("needs root and unshare(1) to create a memory cgroup")
    v1 = Path("/sys/fs/cgroup/memory")
    if (v1 / "memory.limit_in_bytes").exists():
        root, limit_file = v1, "memory.limit_in_bytes"
    elif "memory" in _read(Path("/sys/fs/cgroup/cgroup.subtree_control")):
        root, limit_file = Path("/sys/fs/cgroup"), "memory.max"
    else:
        raise NoMemoryLimit("no cgroup memory controller to limit a phase with")
    group = root / name
    group.mkdir(exist_ok=True)
    try:
        (group / limit_file).write_text(str(limit_bytes))
        yield ["unshare", "-m", "sh", "-c", _ENTER_CGROUP, str(group), str(root)]
    finally:
        group.rmdir()


#: The memory of the container-like runs of the dump and backup benchmarks.
CONTAINER_MEMORY = 2 << 30


def run_in_container(module: str, *args: str) -> dict[str, Any]:
    """One phase as in a container with CONTAINER_MEMORY: its time and peak RSS, or why it
    could not be measured here."""
    try:
        with memory_limited(CONTAINER_MEMORY) as prefix:
            phase = run_phase(module, *args, prefix=prefix)
    except NoMemoryLimit as exc:
        return {"not_measured": str(exc)}
    return {
        "memory_limit_gib": CONTAINER_MEMORY / 2**30,
        "seconds": round(phase.output["seconds"], 2),
        "peak_rss_mb": round(phase.peak_rss_mb),
    }


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


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

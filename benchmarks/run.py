"""`make bench`: run every benchmark (or those named on the command line)."""

from __future__ import annotations

import importlib
import sys

BENCHMARKS = [
    "benchmarks.dump_bench",
    "benchmarks.backup_bench",
    "benchmarks.encryption_bench",
    "benchmarks.drill_bench",
    "benchmarks.sweep_bench",
]


def main(argv: list[str]) -> None:
    selected = [b for b in BENCHMARKS if not argv or any(a in b for a in argv)]
    for name in selected:
        print(f"== {name}", flush=True)
        importlib.import_module(name).main()


if __name__ == "__main__":
    main(sys.argv[1:])

"""`spectron-backup demo`, the README's first command, as a new user runs it (twice)."""

from __future__ import annotations

import json
from pathlib import Path

from spectron_backup.surreal import connect


def record_counts(workdir: Path) -> dict[str, int]:
    """Records per database and table of the demo's embedded Spectron."""
    counts = {}
    with connect(f"surrealkv://{workdir / 'spectron'}") as conn:
        for ns in conn.namespaces():
            for db in conn.databases(ns):
                conn.use(ns, db)
                for table in (conn.run_one("INFO FOR DB") or {}).get("tables", {}):
                    rows = conn.run_one(f"SELECT count() FROM `{table}` GROUP ALL") or []
                    counts[f"{ns}/{db}/{table}"] = rows[0]["count"] if rows else 0
    return counts


def test_demo_runs_the_whole_pipeline_and_reruns(tmp_path: Path, cli_with_prefect) -> None:
    workdir = tmp_path / "demo"
    first = cli_with_prefect("demo", "--workdir", str(workdir))
    assert first.returncode == 0, first.stderr
    out = first.stderr
    assert "1. backup" in out and "drill passed" in out and "3. expire sweep, dry run" in out
    assert "would delete" in out and "nothing deleted" in out
    assert "Traceback" not in out
    # the seeded uncertainty tables are mostly past their 30-day default: the guard says so
    assert "uncertainty" in out and "a real sweep needs --force" in out
    counts = record_counts(workdir)

    config = workdir / "config.yaml"
    listing = cli_with_prefect("list", "--config", str(config), "--json")
    assert listing.returncode == 0, listing.stderr
    backups = json.loads(listing.stdout)["backups"]
    assert len(backups) == 1 and backups[0]["complete"]
    assert backups[0]["last_drill"]["passed"] is True

    again = cli_with_prefect("demo", "--workdir", str(workdir))
    assert again.returncode == 0, again.stderr
    assert record_counts(workdir) == counts  # the dry runs deleted nothing
    assert "using the Spectron instance seeded in" in again.stderr
    listing = cli_with_prefect("list", "--config", str(config), "--json")
    assert len(json.loads(listing.stdout)["backups"]) == 2

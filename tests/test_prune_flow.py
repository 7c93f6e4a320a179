"""Pruning as an operator runs it: `prune --dry-run`, then `prune`, and after each backup."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from flows.backup import backup
from spectron_backup.repository import Repository
from spectron_backup.seed import SeedPlan, seed_instance
from spectron_backup.stores import open_store
from spectron_backup.surreal import connect
from tests.test_prune import write_backup

pytestmark = pytest.mark.usefixtures("prefect_api")
NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def history(store, days: int) -> list[str]:
    """One complete backup a day for `days` days before NOW, oldest first."""
    return [write_backup(store, NOW - timedelta(days=d, hours=1)) for d in range(days, 0, -1)]


def config(tmp_path: Path, source: str = "mem://", keep: str = "") -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(
        f"source: {{url: '{source}'}}\ntarget: {{url: 'file://{tmp_path / 'target'}'}}\nbackups: {{keep: {{daily_days: 7, weekly_days: 28{keep}}}}}\n"
    )
    return path


def test_dry_run_then_real_run(tmp_path: Path, cli_with_prefect) -> None:
    store = open_store(f"file://{tmp_path / 'target'}")
    ids = history(store, 60)
    cfg = config(tmp_path)
    dry = cli_with_prefect(
        "prune", "--config", str(cfg), "--dry-run", "--now", NOW.isoformat(), "--json"
    )
    assert dry.returncode == 0, dry.stderr
    planned = json.loads(dry.stdout)
    assert planned["dry_run"] is True
    to_delete = {d["backup_id"] for d in planned["decisions"] if d["action"] == "delete"}
    assert to_delete and set(ids) - to_delete  # some go, some stay
    assert {b.backup_id for b in Repository(store).intact_backups()} == set(ids)  # nothing deleted
    for decision in planned["decisions"]:
        assert decision["reasons"], decision  # every decision says which rule decided

    real = cli_with_prefect("prune", "--config", str(cfg), "--now", NOW.isoformat(), "--json")
    assert real.returncode == 0, real.stderr
    done = json.loads(real.stdout)
    assert [d for d in done["decisions"]] == planned[
        "decisions"
    ]  # the run does what the dry run said
    assert {b.backup_id for b in Repository(store).intact_backups()} == set(ids) - to_delete
    # The six backups younger than the daily window (7 days) are all still there.
    assert set(ids[-6:]) <= set(ids) - to_delete


def test_human_output_and_bad_now(tmp_path: Path, cli_with_prefect) -> None:
    store = open_store(f"file://{tmp_path / 'target'}")
    history(store, 10)
    cfg = config(tmp_path)
    shown = cli_with_prefect("prune", "--config", str(cfg), "--dry-run", "--now", NOW.isoformat())
    assert shown.returncode == 0, shown.stderr
    assert "dry run: nothing deleted" in shown.stderr and "would delete" in shown.stderr
    bad = cli_with_prefect("prune", "--config", str(cfg), "--now", "yesterday")
    assert bad.returncode == 2
    assert "--now: 'yesterday' is not a time" in bad.stderr


def test_backup_prunes_after_success_only(tmp_path: Path) -> None:
    source = f"surrealkv://{tmp_path / 'spectron'}"
    with connect(source) as conn:
        seed_instance(conn, SeedPlan(contexts=1, scale=0.1, embedding_width=8))
    store = open_store(f"file://{tmp_path / 'target'}")
    old = history(store, 400)[:5]  # the oldest five are past every window
    cfg = config(tmp_path, source, keep=", min_keep: 3")
    result = backup(config_path=str(cfg))
    assert set(old) <= set(result["pruned"])
    remaining = {b.backup_id for b in Repository(store).intact_backups()}
    assert result["backup_id"] in remaining and not set(old) & remaining

    # A failing backup prunes nothing.
    before = {b.backup_id for b in Repository(store).intact_backups()}
    bad = config(tmp_path, "ws://127.0.0.1:9/rpc")
    with pytest.raises(Exception):  # noqa: B017 - the cause is asserted in the backup tests
        backup(config_path=str(bad))
    assert {b.backup_id for b in Repository(store).intact_backups()} == before

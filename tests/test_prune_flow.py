"""Pruning as an operator runs it: `prune --dry-run`, then `prune`, and after each backup."""

from __future__ import annotations

import json
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from flows.backup import backup
from flows.prune import prune
from spectron_backup.leases import hold_lease
from spectron_backup.manifest import rfc3339
from spectron_backup.repository import Repository
from spectron_backup.seed import SeedPlan, seed_instance
from spectron_backup.stores import open_store
from spectron_backup.surreal import connect
from tests.flow_runs import artifacts_of
from tests.test_prune import write_backup

pytestmark = pytest.mark.usefixtures("prefect_api")
NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def history(store, days: int) -> list[str]:
    """One complete backup a day for `days` days before NOW, oldest first."""
    return [write_backup(store, NOW - timedelta(days=d, hours=1)) for d in range(days, 0, -1)]


def config(tmp_path: Path, source: str = "mem://", keep: str = "", retries: str = "") -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(
        f"source: {{url: '{source}'}}\ntarget: {{url: 'file://{tmp_path / 'target'}'}}\nbackups: {{keep: {{daily_days: 7, weekly_days: 28{keep}}}{retries}}}\n"
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
    with hold_lease(Repository(store), old[0], "restore"):  # a restore reads the oldest
        result = backup(config_path=str(cfg))
    assert set(old[1:]) <= set(result["pruned"]) and old[0] not in result["pruned"]
    remaining = {b.backup_id for b in Repository(store).intact_backups()}
    assert result["backup_id"] in remaining and not set(old[1:]) & remaining
    assert old[0] in remaining  # kept in use, and not reported as pruned

    # A failing backup prunes nothing.
    before = {b.backup_id for b in Repository(store).intact_backups()}
    bad = config(tmp_path, "ws://127.0.0.1:9/rpc", retries=", retries: 0")
    with pytest.raises(Exception):  # noqa: B017 - the cause is asserted in the backup tests
        backup(config_path=str(bad))
    assert {b.backup_id for b in Repository(store).intact_backups()} == before


def test_a_backup_in_use_is_kept_and_shown(tmp_path: Path, cli_with_prefect) -> None:
    """A restore reads the oldest backup: the dry run, the run, its output and the flow's
    artifact say it was kept, by whom and until when."""
    store = open_store(f"file://{tmp_path / 'target'}")
    ids = history(store, 60)
    cfg = config(tmp_path)
    repo = Repository(store)
    with hold_lease(repo, ids[0], "restore") as hold:
        until = rfc3339(hold.lease.expires_at)
        shown = cli_with_prefect(
            "prune", "--config", str(cfg), "--dry-run", "--now", NOW.isoformat()
        )
        assert shown.returncode == 0, shown.stderr
        assert f"kept in use: {ids[0]}: restore on {socket.gethostname()}" in shown.stderr
        assert until in shown.stderr
        state = prune(config_path=str(cfg), now=NOW.isoformat(), return_state=True)
        assert state.is_completed(), state.message
        report = state.result()
        assert [item["backup_id"] for item in report["kept_in_use"]] == [ids[0]]
        assert ids[0] not in report["deleted"] and ids[1] in report["deleted"]
        rows = artifacts_of(state.state_details.flow_run_id)["spectron-backup-retention"]
        rows = json.loads(rows) if isinstance(rows, str) else rows
        [row] = [r for r in rows if r["backup"] == ids[0]]
        assert row["action"] == "kept: in use" and f"until {until}" in row["reasons"]
    assert {b.backup_id for b in Repository(store).intact_backups()} >= {ids[0]}

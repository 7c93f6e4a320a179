"""`spectron-backup restore` as the restore runbook uses it: everything, one Context, a time."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from spectron_backup.backup import backup_instance
from spectron_backup.config import SourceConfig
from spectron_backup.dump.pages import table_digest
from spectron_backup.seed import SeedPlan, seed_instance
from spectron_backup.stores import open_store
from spectron_backup.surreal import connect
from tests.conftest import run_cli


def snapshot(
    url: str, only: set[str] | None = None, prefix: str = ""
) -> dict[str, dict[str, tuple[int, str]]]:
    """Per database (as in the source), per table: (count, content hash)."""
    result: dict[str, dict[str, tuple[int, str]]] = {}
    with connect(url) as conn:
        for ns in conn.namespaces():
            for db in conn.databases(ns):
                name = f"{ns.removeprefix(prefix)}/{db}"
                if only is not None and name not in only:
                    continue
                conn.use(ns, db)
                tables = (conn.run_one("INFO FOR DB") or {}).get("tables", {})
                result[name] = {
                    t: (d.count, d.hexdigest()) for t in tables for d in [table_digest(conn, t)]
                }
    return result


@pytest.fixture(scope="module")
def backed_up(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path, list[str]]:
    """A seeded instance and two backups of it (the first taken 'a day earlier')."""
    root = tmp_path_factory.mktemp("restore")
    source = f"surrealkv://{root / 'spectron'}"
    store = open_store(f"file://{root / 'target'}")
    with connect(source) as conn:
        seed_instance(conn, SeedPlan(contexts=2, scale=0.3, seed=11, embedding_width=8))
        earlier = backup_instance(
            conn, store, SourceConfig(url=source), started_at=datetime.now(UTC) - timedelta(days=1)
        )
        conn.use("ctx_acme_prod", "acme_prod")
        conn.run(
            "CREATE instruction:added_later SET label = 'late', description = 'after the first backup', scope = []"
        )
        later = backup_instance(conn, store, SourceConfig(url=source))
    config = root / "config.yaml"
    config.write_text(f"source: {{url: '{source}'}}\ntarget: {{url: 'file://{root / 'target'}'}}\n")
    return source, config, [earlier.backup_id, later.backup_id]


def test_restore_latest_gives_every_database_back(backed_up, tmp_path: Path) -> None:
    source, config, _ids = backed_up
    target = f"surrealkv://{tmp_path / 'restored'}"
    result = run_cli("restore", "latest", "--config", str(config), "--target", target, "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] and all(row["ok"] for row in report["databases"])
    assert snapshot(target) == snapshot(source)


def test_restore_one_context_gives_exactly_its_records(backed_up, tmp_path: Path) -> None:
    source, config, _ids = backed_up
    target = f"surrealkv://{tmp_path / 'restored'}"
    result = run_cli(
        "restore",
        "--config",
        str(config),
        "--target",
        target,
        "--context",
        "acme-prod",
        "--ns-prefix",
        "r_",
    )
    assert result.returncode == 0, result.stderr
    restored = snapshot(target, prefix="r_")
    assert list(restored) == ["ctx_acme_prod/acme_prod"]
    assert restored == snapshot(source, only={"ctx_acme_prod/acme_prod"})


def test_restore_before_a_time_takes_the_older_backup(backed_up, tmp_path: Path) -> None:
    _source, config, ids = backed_up
    target = f"surrealkv://{tmp_path / 'restored'}"
    before = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    result = run_cli(
        "restore",
        "--config",
        str(config),
        "--target",
        target,
        "--before",
        before,
        "--database",
        "ctx_acme_prod/acme_prod",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["backup_id"] == ids[0]
    with connect(target) as conn:
        conn.use("ctx_acme_prod", "acme_prod")
        assert (
            conn.run_one("SELECT VALUE id FROM instruction:added_later") == []
        )  # not yet written then


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["20200101T000000Z-abcdef"], "backup 20200101T000000Z-abcdef does not exist"),
        (["--context", "nope"], "has no Context 'nope'"),
        (["--database", "a/b"], "has no database 'a/b'"),
        (["--before", "1999-01-01T00:00:00Z"], "no complete backup"),
        (["--before", "soon"], "--before: 'soon' is not a time"),
        (["latest", "--before", "2026-01-01"], "not both"),
    ],
)
def test_bad_requests_exit_2_with_one_line(
    backed_up, tmp_path: Path, args: list[str], expected: str
) -> None:
    _source, config, _ids = backed_up
    result = run_cli(
        "restore", *args, "--config", str(config), "--target", f"surrealkv://{tmp_path / 'r'}"
    )
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and expected in errors[0], result.stderr


def test_a_non_empty_target_is_refused_before_anything_is_restored(
    backed_up, tmp_path: Path
) -> None:
    _source, config, _ids = backed_up
    target = f"surrealkv://{tmp_path / 'r'}"
    with connect(target) as conn:
        conn.use("ctx_globex_main", "globex_main")
        conn.run("CREATE something:1")
    result = run_cli("restore", "--config", str(config), "--target", target)
    assert result.returncode == 2
    assert "not empty: ctx_globex_main/globex_main" in result.stderr
    assert set(snapshot(target)) == {"ctx_globex_main/globex_main"}  # nothing else was written


def test_a_corrupted_object_is_not_imported_and_fails_the_restore(
    backed_up, tmp_path: Path
) -> None:
    source, config, ids = backed_up
    copy = tmp_path / "target"
    import shutil

    shutil.copytree(Path(str(config).rsplit("/", 1)[0]) / "target", copy)
    victim = next(copy.glob(f"backups/{ids[1]}/ctx_acme_prod/acme_prod.surql.zst"))
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0x01
    victim.write_bytes(bytes(data))
    bad_config = tmp_path / "config.yaml"
    bad_config.write_text(f"source: {{url: '{source}'}}\ntarget: {{url: 'file://{copy}'}}\n")
    target = f"surrealkv://{tmp_path / 'r'}"
    result = run_cli("restore", "--config", str(bad_config), "--target", target, "--json")
    assert result.returncode == 1
    rows = {row["database"]: row for row in json.loads(result.stdout)["databases"]}
    assert (
        rows["ctx_acme_prod/acme_prod"]["ok"] is False
        and "sha256" in rows["ctx_acme_prod/acme_prod"]["error"]
    )
    assert all(row["ok"] for name, row in rows.items() if name != "ctx_acme_prod/acme_prod")
    assert "ctx_acme_prod/acme_prod" not in snapshot(target)  # nothing of it was imported

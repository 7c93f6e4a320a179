"""`spectron-backup restore` as the restore runbook uses it: everything, one Context, a time."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from spectron_backup.backup import backup_instance
from spectron_backup.config import KeepConfig, SourceConfig
from spectron_backup.dump.pages import table_digest
from spectron_backup.prune import PruneResult, apply_prune, plan_prune
from spectron_backup.repository import Repository, manifest_key
from spectron_backup.seed import SeedPlan, seed_instance
from spectron_backup.stores import S3Store, open_store
from spectron_backup.surreal import connect
from tests.conftest import run_cli
from tests.faults import RefusingProxy


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


# -- leases: a prune while a restore runs ----------------------------------------------------------


def s3_copy(
    backed_up: tuple[str, Path, list[str]], s3_server: str, bucket: str, tmp_path: Path, proxy: str
) -> tuple[S3Store, Path]:
    """The fixture's backups copied into S3 as the backup wrote them; (the S3 store, seen
    directly, and a config whose target reaches it through `proxy`)."""
    source, config, _ids = backed_up
    files = open_store(f"file://{config.parent / 'target'}")
    store = open_store(f"s3://{bucket}/prod", endpoint_url=s3_server)
    assert isinstance(store, S3Store)
    for info in files.list():
        head = files.head(info.key)
        store.put_bytes(info.key, files.get_bytes(info.key), metadata=head.metadata if head else {})
    path = tmp_path / "s3.yaml"
    path.write_text(
        f"source: {{url: '{source}'}}\n"
        f"target: {{url: 's3://{bucket}/prod', endpoint_url: '{proxy}', max_attempts: 1}}\n"
    )
    return store, path


def leases_of(store: S3Store, backup_id: str) -> list[str]:
    return [info.key for info in store.list(f"backups/{backup_id}/leases/")]


def test_a_prune_while_a_restore_reads_an_old_backup_leaves_it_whole(
    backed_up, tmp_path: Path, s3_server: str, s3_bucket: str
) -> None:
    """`restore --before` of the older backup while the daily backup's prune ages it out: the
    prune runs (for real, on the same bucket) when the restore has read its first object, and
    must leave the rest of the backup to the restore."""
    _source, _config, ids = backed_up
    keep = KeepConfig(daily_days=0, weekly_days=0, min_keep=1)  # only the newest stays
    pruned: list[PruneResult] = []

    def prune_now(method: str, path: str) -> bool:
        first_object = f"/backups/{ids[0]}/" in path and path.endswith(".surql.zst")
        if method == "GET" and first_object and not pruned:
            repo = Repository(store)
            pruned.append(
                apply_prune(repo, plan_prune(repo, keep, datetime.now(UTC)), dry_run=False)
            )
        return False

    proxy = RefusingProxy(s3_server, after=prune_now)
    try:
        store, config = s3_copy(backed_up, s3_server, s3_bucket, tmp_path, proxy.url)
        target = f"surrealkv://{tmp_path / 'restored'}"
        before = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        result = run_cli(
            "restore", "--config", str(config), "--target", target, "--before", before, "--json"
        )
    finally:
        proxy.close()
    [during] = pruned
    assert during.plan.to_delete == [ids[0]]
    assert during.deleted == [] and during.kept_in_use == [ids[0]] and during.problems == []
    assert [lease.purpose for lease in during.leases[ids[0]]] == ["restore"]
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["backup_id"] == ids[0] and report["ok"] and report["warnings"] == []
    assert len(report["databases"]) > 1 and all(row["ok"] for row in report["databases"])
    # The restore ended: its lease is gone, and the next prune deletes the backup.
    assert leases_of(store, ids[0]) == []
    repo = Repository(store)
    after = apply_prune(repo, plan_prune(repo, keep, datetime.now(UTC)), dry_run=False)
    assert after.deleted == [ids[0]] and list(store.list(f"backups/{ids[0]}/")) == []
    store.close()


def test_the_restore_lease_is_gone_after_a_failed_restore(
    backed_up, tmp_path: Path, s3_server: str, s3_bucket: str
) -> None:
    _source, _config, ids = backed_up
    seen: list[list[str]] = []

    def look(method: str, path: str) -> bool:
        if method == "GET" and path.endswith(".surql.zst"):
            seen.append(leases_of(store, ids[1]))
        return False

    proxy = RefusingProxy(s3_server, after=look)
    try:
        store, config = s3_copy(backed_up, s3_server, s3_bucket, tmp_path, proxy.url)
        victim = f"backups/{ids[1]}/ctx_acme_prod/acme_prod.surql.zst"
        data = bytearray(store.get_bytes(victim))
        data[len(data) // 2] ^= 0x01
        store.put_bytes(victim, bytes(data))
        target = f"surrealkv://{tmp_path / 'restored'}"
        result = run_cli("restore", "latest", "--config", str(config), "--target", target)
    finally:
        proxy.close()
    assert result.returncode == 1, result.stderr
    assert "sha256" in result.stderr
    assert seen and all(len(keys) == 1 for keys in seen)  # held while it read every object
    assert leases_of(store, ids[1]) == []
    store.close()


def test_a_restore_that_cannot_write_its_lease_warns_and_restores(
    backed_up, tmp_path: Path, s3_server: str, s3_bucket: str
) -> None:
    """A read-only credential (legitimate for a restore in a disaster): the restore runs,
    unprotected from a concurrent prune, and says so."""
    source, _config, ids = backed_up
    proxy = RefusingProxy(
        s3_server, refuse=lambda method, path: method in ("PUT", "POST", "DELETE")
    )
    try:
        store, config = s3_copy(backed_up, s3_server, s3_bucket, tmp_path, proxy.url)
        target = f"surrealkv://{tmp_path / 'restored'}"
        result = run_cli(
            "restore",
            "--config",
            str(config),
            "--target",
            target,
            "--context",
            "acme-prod",
            "--json",
        )
    finally:
        proxy.close()
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] and report["backup_id"] == ids[1]
    [warning] = report["warnings"]
    assert warning.startswith(f"backup {ids[1]} is not protected from a concurrent prune")
    assert "access to bucket" in warning
    [line] = [x for x in result.stderr.splitlines() if x.startswith("warning:")]
    assert "not protected from a concurrent prune" in line
    assert proxy.refused and all(r.startswith("PUT ") and "/leases/" in r for r in proxy.refused)
    assert snapshot(target) == snapshot(source, only={"ctx_acme_prod/acme_prod"})
    store.close()


def test_a_backup_deleted_under_its_restore_by_an_earlier_prune_is_a_clear_error(
    backed_up, tmp_path: Path, s3_server: str, s3_bucket: str
) -> None:
    """The race a lease leaves: a prune that listed the folder just before the lease was
    written deletes the backup anyway. The restore then says so, naming the backup."""
    _source, _config, ids = backed_up
    deleted: list[str] = []

    def delete_now(method: str, path: str) -> bool:
        if method == "GET" and path.endswith(".surql.zst") and not deleted:
            # as prune deletes: the manifest first, then the rest of what it had listed
            for key in [manifest_key(ids[1])] + [
                info.key for info in store.list(f"backups/{ids[1]}/") if "/leases/" not in info.key
            ]:
                store.delete(key)
                deleted.append(key)
        return False

    proxy = RefusingProxy(s3_server, after=delete_now)
    try:
        store, config = s3_copy(backed_up, s3_server, s3_bucket, tmp_path, proxy.url)
        target = f"surrealkv://{tmp_path / 'restored'}"
        result = run_cli("restore", "latest", "--config", str(config), "--target", target)
    finally:
        proxy.close()
    assert deleted and result.returncode == 1, result.stderr
    [line] = [x for x in result.stderr.splitlines() if x.startswith("error:")]
    assert f"backup {ids[1]} was deleted during the restore" in line
    assert "restore another backup" in line
    assert list(store.list(f"backups/{ids[1]}/")) == []  # its lease went at the end
    store.close()

"""The backup flow as an operator relies on it: through a real Prefect API, into a local
directory and into an S3 server over HTTP; faults caused for real on loopback."""

from __future__ import annotations

import json
import socket
from contextlib import nullcontext
from datetime import UTC, datetime
from pathlib import Path

import pytest
import zstandard

from flows.backup import backup
from spectron_backup.backup import (
    AfterBackupFailed,
    BackupFailed,
    backup_database,
    backup_instance,
    build_manifest,
    write_checked_manifest,
)
from spectron_backup.config import SourceConfig
from spectron_backup.discovery import discover
from spectron_backup.dump.pages import table_digest
from spectron_backup.errors import OperationFailed, UsageError
from spectron_backup.manifest import new_backup_id
from spectron_backup.repository import Repository, manifest_key
from spectron_backup.restore import dump_text, fetch_verified, restore_database, select_databases
from spectron_backup.seed import SeedPlan, seed_instance
from spectron_backup.stores import open_store
from spectron_backup.surreal import connect
from tests.conftest import run_cli

pytestmark = pytest.mark.usefixtures("prefect_api")


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A seeded Spectron instance in an embedded store: control plane, job queue, 2 Contexts,
    plus a third Context registered in the control plane whose database does not exist."""
    path = tmp_path_factory.mktemp("spectron") / "store"
    url = f"surrealkv://{path}"
    with connect(url) as conn:
        seed_instance(conn, SeedPlan(contexts=2, scale=0.3, seed=3, embedding_width=16))
        conn.use("spectron", "metadata")
        conn.run("CREATE context:`ghost-ctx` SET namespace = 'ctx_ghost', database = 'gone'")
    return url


def write_config(tmp_path: Path, source: str, target: str, target_extra: str = "") -> Path:
    attempts = ", max_attempts: 2" if target.startswith("s3://") else ""
    lines = [f"source: {{url: '{source}'}}", f"target: {{url: '{target}'{attempts}{target_extra}}}"]
    lines.append("backups: {retries: 1, retry_delay_seconds: 0}")
    path = tmp_path / "config.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def source_tables(url: str) -> dict[str, dict[str, tuple[int, str]]]:
    """Per database, per table: (count, content hash) computed from the source itself."""
    result: dict[str, dict[str, tuple[int, str]]] = {}
    with connect(url) as conn:
        for ns in conn.namespaces():
            for db in conn.databases(ns):
                conn.use(ns, db)
                tables = (conn.run_one("INFO FOR DB") or {}).get("tables", {})
                result[f"{ns}/{db}"] = {
                    t: (d.count, d.hexdigest()) for t in tables for d in [table_digest(conn, t)]
                }
    return result


def check_backup(store, source_url: str) -> None:
    repo = Repository(store)
    [entry] = repo.backups()
    assert entry.complete
    manifest = entry.manifest
    assert manifest is not None
    keys = sorted(o.key for o in entry.objects)
    expected_keys = sorted(
        [f"backups/{entry.backup_id}/manifest.json"] + [d.key for d in manifest.databases]
    )
    assert keys == expected_keys  # one object per database, plus the manifest
    truth = source_tables(source_url)
    assert sorted(f"{d.ns}/{d.db}" for d in manifest.databases) == sorted(truth)
    for database in manifest.databases:
        assert {t: (e.count, e.hash) for t, e in database.tables.items()} == truth[
            f"{database.ns}/{database.db}"
        ]
        assert store.head(database.key).metadata["sha256"] == database.sha256
        with fetch_verified(store, database) as blob:  # raises if the sha256 does not match
            assert blob.read(4) == b"\x28\xb5\x2f\xfd"  # zstd
    assert [m.context for m in manifest.missing_contexts] == ["ghost-ctx"]
    # Decompressed objects import to the same records.
    with connect("mem://") as scratch:
        for database in manifest.databases:
            restored = restore_database(store, database, scratch)
            assert restored.imported.ok, restored.imported.failures
            assert restored.mismatches == []


def test_backup_into_a_local_directory(source: str, tmp_path: Path) -> None:
    config = write_config(tmp_path, source, f"file://{tmp_path / 'target'}")
    result = backup(config_path=str(config))
    assert result["tiers"] == ["daily", "weekly"]
    assert result["missing_contexts"] == ["ghost-ctx"]
    check_backup(open_store(f"file://{tmp_path / 'target'}"), source)


def test_backup_into_s3_over_http(
    source: str, tmp_path: Path, s3_server: str, s3_bucket: str
) -> None:
    target = f"s3://{s3_bucket}/prod"
    config = write_config(
        tmp_path, source, target, target_extra=f", endpoint_url: '{s3_server}', sse: AES256"
    )
    backup(config_path=str(config))
    store = open_store(target, endpoint_url=s3_server)
    check_backup(store, source)
    import boto3

    s3 = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1")
    manifest_key = next(
        k["Key"]
        for k in s3.list_objects_v2(Bucket=s3_bucket)["Contents"]
        if k["Key"].endswith("manifest.json")
    )
    assert s3.head_object(Bucket=s3_bucket, Key=manifest_key)["ServerSideEncryption"] == "AES256"


def test_second_backup_of_the_week_is_daily_only_unless_weekly_is_asked(
    source: str, tmp_path: Path
) -> None:
    config = write_config(tmp_path, source, f"file://{tmp_path / 'target'}")
    assert backup(config_path=str(config))["tiers"] == ["daily", "weekly"]
    assert backup(config_path=str(config))["tiers"] == ["daily"]
    assert backup(config_path=str(config), tier="weekly")["tiers"] == ["daily", "weekly"]
    assert len(Repository(open_store(f"file://{tmp_path / 'target'}")).intact_backups()) == 3


def test_a_connection_dropped_mid_upload_fails_the_run_without_manifest_and_a_rerun_succeeds(
    source: str, tmp_path: Path, s3_server: str, s3_bucket: str, cutting_proxy
) -> None:
    proxy = cutting_proxy(cut_upstream_after=20_000)  # every connection that gets that far
    target = f"s3://{s3_bucket}/prod"
    config = write_config(tmp_path, source, target, target_extra=f", endpoint_url: '{proxy.url}'")
    with pytest.raises(OperationFailed) as failed:
        backup(config_path=str(config))
    assert "no manifest written" in str(failed.value)
    assert "ctx_" in str(failed.value)  # names the database
    store = open_store(target, endpoint_url=s3_server)
    assert [b for b in Repository(store).backups() if b.complete] == []
    assert proxy.cut_count >= 2  # the first attempt and its retry

    config = write_config(tmp_path, source, target, target_extra=f", endpoint_url: '{s3_server}'")
    backup(config_path=str(config))
    assert len(Repository(store).intact_backups()) == 1


def test_a_transient_cut_is_retried_within_the_run(
    source: str, tmp_path: Path, s3_bucket: str, cutting_proxy
) -> None:
    proxy = cutting_proxy(cut_upstream_after=20_000, cuts=1)
    target = f"s3://{s3_bucket}/prod"
    config = write_config(tmp_path, source, target, target_extra=f", endpoint_url: '{proxy.url}'")
    result = backup(config_path=str(config))
    assert proxy.cut_count == 1
    assert result["databases"] == 4


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_wrong_bucket_is_a_usage_error(
    source: str, tmp_path: Path, s3_server: str, s3_bucket: str
) -> None:
    config = write_config(
        tmp_path,
        source,
        "s3://no-such-bucket-here/prod",
        target_extra=f", endpoint_url: '{s3_server}'",
    )
    with pytest.raises(UsageError, match="no-such-bucket-here"):
        backup(config_path=str(config))


def test_an_unreachable_source_is_retried_by_the_flow(tmp_path: Path) -> None:
    """A scheduled run retries a source that does not answer (a server restarting), with the
    configured retries (here 1): the discovery runs twice, then the run fails, naming it."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    config = write_config(tmp_path, f"ws://127.0.0.1:{closed_port()}", f"file://{tmp_path / 't'}")
    state = backup(config_path=str(config), return_state=True)
    assert state.is_failed()
    with pytest.raises(UsageError, match="cannot reach SurrealDB at ws://"):
        state.result()
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(
                id=FlowRunFilterId(any_=[state.state_details.flow_run_id])
            )
        )
    assert [(r.name.split("-")[0], r.run_count) for r in runs] == [("discover", 2)]


@pytest.mark.parametrize("what", ["unreachable source", "wrong bucket", "bad config"])
def test_cli_backup_errors_are_one_line_with_exit_2(
    source: str, tmp_path: Path, s3_server: str, s3_bucket: str, what: str, cli_with_prefect
) -> None:
    if what == "unreachable source":
        config = write_config(
            tmp_path, f"ws://127.0.0.1:{closed_port()}", f"file://{tmp_path / 't'}"
        )
        expected = "cannot reach SurrealDB"
    elif what == "wrong bucket":
        config = write_config(
            tmp_path,
            source,
            "s3://no-such-bucket-here/x",
            target_extra=f", endpoint_url: '{s3_server}'",
        )
        expected = "no-such-bucket-here"
    else:
        config = tmp_path / "bad.yaml"
        config.write_text("source: {url: mem://}\ntarget: {url: 'ftp://x'}\n")
        expected = "target.url"
    result = cli_with_prefect("backup", "--config", str(config))
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and expected in errors[0], result.stderr


def test_cli_backup_then_list(source: str, tmp_path: Path, cli_with_prefect) -> None:
    config = write_config(tmp_path, source, f"file://{tmp_path / 'target'}")
    result = cli_with_prefect("backup", "--config", str(config), "--json")
    assert result.returncode == 0, result.stderr
    backup_id = json.loads(result.stdout)["backup_id"]
    # An interrupted backup: objects, no manifest.
    partial = tmp_path / "target" / "backups" / "20200101T000000Z-abcdef" / "x"
    partial.mkdir(parents=True)
    (partial / "y.surql.zst").write_bytes(zstandard.ZstdCompressor().compress(b"OPTION IMPORT;"))
    # What else lands in a bucket: a stray file, and a drill record cut short.
    (tmp_path / "target" / "backups" / "README.txt").write_text("our backups\n")
    drills = tmp_path / "target" / "backups" / backup_id / "drills"
    drills.mkdir()
    (drills / "20200101T000000Z.json").write_text('{"passed": tr')
    listing = run_cli("list", "--config", str(config), "--json")
    assert listing.returncode == 0, listing.stderr
    rows = json.loads(listing.stdout)["backups"]
    assert [(r["backup_id"], r["complete"], r["intact"]) for r in rows] == [
        (backup_id, True, True),
        ("20200101T000000Z-abcdef", False, False),
    ]
    assert rows[0]["databases"] == 4 and rows[0]["tiers"] == ["daily", "weekly"]
    assert rows[0]["last_drill"]["passed"] is False
    assert "drill record cannot be read" in rows[0]["last_drill"]["problem"]
    # a damaged backup says so
    next((tmp_path / "target" / "backups" / backup_id / "spectron").glob("metadata.*")).unlink()
    listing = run_cli("list", "--config", str(config), "--json")
    damaged = json.loads(listing.stdout)["backups"][0]
    assert (damaged["complete"], damaged["intact"]) == (True, False)
    assert damaged["problem"] == (
        f"backup {backup_id} is damaged: backups/{backup_id}/spectron/metadata.surql.zst is missing"
    )
    assert run_cli("list", "--config", str(config)).returncode == 0
    human = cli_with_prefect("backup", "--config", str(config))
    assert human.returncode == 0, human.stderr
    assert (
        "warning: Context ghost-ctx: ctx_ghost/gone: database does not exist; not backed up"
        in human.stderr
    )


def test_dump_inside_a_backup_is_a_plain_surreal_export_dump(source: str, tmp_path: Path) -> None:
    config = write_config(tmp_path, source, f"file://{tmp_path / 'target'}")
    backup(config_path=str(config))
    store = open_store(f"file://{tmp_path / 'target'}")
    manifest = Repository(store).intact_backups()[0].manifest
    assert manifest is not None
    entry = next(d for d in manifest.databases if d.role == "control")
    with fetch_verified(store, entry) as blob, dump_text(blob) as text:
        head = text.read(4096)
    assert "OPTION IMPORT;" in head
    assert entry.raw_bytes > entry.bytes > 0


def test_backup_publishes_artifacts_and_the_completed_event(source: str, tmp_path: Path) -> None:
    import time

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.events.filters import EventFilter, EventNameFilter

    config = write_config(tmp_path, source, f"file://{tmp_path / 'target'}")
    backup_id = backup(config_path=str(config))["backup_id"]
    with get_client(sync_client=True) as client:
        [table] = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=["spectron-backup-databases"])
            ),
            limit=1,
            sort="CREATED_DESC",
        )
        rows = json.loads(table.data) if isinstance(table.data, str) else table.data
        assert sorted(r["database"] for r in rows) == sorted(
            [
                "spectron/metadata",
                "spectron/_jobqueue",
                "ctx_acme_prod/acme_prod",
                "ctx_globex_main/globex_main",
            ]
        )
        assert all(len(r["sha256"]) == 64 and r["records"] > 0 for r in rows)
        [summary] = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["spectron-backup-summary"])),
            limit=1,
            sort="CREATED_DESC",
        )
        assert backup_id in summary.data and "ghost-ctx" in summary.data
        deadline = time.monotonic() + 20
        while True:  # events are delivered asynchronously
            events = client.read_events(
                EventFilter(event=EventNameFilter(name=["spectron.backup.completed"])), limit=50
            ).events
            if (
                any(e.payload.get("backup_id") == backup_id for e in events)
                or time.monotonic() > deadline
            ):
                break
            time.sleep(0.5)
        assert any(e.payload.get("backup_id") == backup_id for e in events)


def spectron_events(name: str, backup_id: str, *, wait: bool) -> list:
    """The events `name` about `backup_id` (waiting up to 20 s for one when `wait`)."""
    import time

    from prefect.client.orchestration import get_client
    from prefect.events.filters import EventFilter, EventNameFilter

    deadline = time.monotonic() + 20
    with get_client(sync_client=True) as client:
        while True:  # events are delivered asynchronously
            events = [
                e
                for e in client.read_events(
                    EventFilter(event=EventNameFilter(name=[name])), limit=50
                ).events
                if e.payload.get("backup_id") == backup_id
            ]
            if events or not wait or time.monotonic() > deadline:
                return events
            time.sleep(0.3)


def test_a_failure_after_the_manifest_is_not_reported_as_a_failed_backup(
    source: str, tmp_path: Path, s3_server: str, s3_bucket: str
) -> None:
    """Access to the bucket is revoked right after the manifest is written: pruning fails.
    The run fails and says so, but the backup is complete: the operator must not be told no
    backup was written, and the "no backup in 26 hours" alert gets its completed event."""
    from tests.faults import RefusingProxy

    proxy = RefusingProxy(
        s3_server, after=lambda method, path: method == "PUT" and path.endswith("/manifest.json")
    )
    try:
        target = f"s3://{s3_bucket}/prod"
        config = write_config(
            tmp_path, source, target, target_extra=f", endpoint_url: '{proxy.url}'"
        )
        with pytest.raises(AfterBackupFailed) as failed:
            backup(config_path=str(config))
    finally:
        proxy.close()
    assert proxy.refused  # the fault happened, after the manifest
    backup_id = failed.value.backup_id
    message = str(failed.value)
    assert f"backup {backup_id} is complete and restorable" in message
    assert "pruning old backups failed afterwards" in message and "access" in message.lower()
    store = open_store(target, endpoint_url=s3_server)
    assert [b.backup_id for b in Repository(store).intact_backups()] == [backup_id]
    assert spectron_events("spectron.backup.completed", backup_id, wait=True)
    assert spectron_events("spectron.backup.failed", backup_id, wait=False) == []


def test_context_filter_backs_up_what_it_names_and_warns_about_ids_it_does_not_know(
    source: str,
) -> None:
    config = SourceConfig(
        url=source, contexts={"include": ["acme-prod", "acme-prd"], "exclude": ["globex"]}
    )
    with connect(source) as conn:
        found = discover(conn, config)
    assert [r.context for r in found.databases if r.role == "context"] == ["acme-prod"]
    assert "globex-main" in found.excluded
    assert found.unknown == [
        "source.contexts.include names Context 'acme-prd', which is not registered in the "
        "control plane",
        "source.contexts.exclude names Context 'globex', which is not registered in the "
        "control plane",
    ]


def test_an_include_list_that_names_no_registered_context_is_a_usage_error(source: str) -> None:
    """A backup of the control plane alone, while the operator believes a Context is in it,
    must not pass as a good backup."""
    config = SourceConfig(url=source, contexts={"include": ["acme-prd"]})
    with connect(source) as conn, pytest.raises(UsageError) as refused:
        discover(conn, config)
    assert "source.contexts.include (acme-prd) names no registered Context" in str(refused.value)
    assert "registered: acme-prod, ghost-ctx, globex-main" in str(refused.value)


def test_backup_reports_a_context_id_it_does_not_know(source: str, tmp_path: Path) -> None:
    config = write_config(tmp_path, source, f"file://{tmp_path / 'target'}")
    plain = f"source: {{url: '{source}'}}"
    assert plain in config.read_text()
    config.write_text(
        config.read_text().replace(
            plain, f"source: {{url: '{source}', contexts: {{exclude: [globex]}}}}"
        )
    )
    result = backup(config_path=str(config))
    assert result["databases"] == 4
    assert result["warnings"] == [
        "source.contexts.exclude names Context 'globex', which is not registered in the "
        "control plane"
    ]


def test_seed_command_writes_instance_and_documents(tmp_path: Path) -> None:
    result = run_cli(
        "seed",
        "--target",
        f"surrealkv://{tmp_path / 's'}",
        "--documents",
        f"file://{tmp_path / 'docs'}",
        "--contexts",
        "1",
        "--scale",
        "0.1",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["documents"] > 0
    stored = open_store(f"file://{tmp_path / 'docs'}")
    assert len(list(stored.list())) == report["documents"]
    result = run_cli(
        "seed", "--target", f"surrealkv://{tmp_path / 's'}", "--contexts", "1", "--scale", "0.1"
    )
    assert result.returncode == 2 and "seed into an empty SurrealDB" in result.stderr


def test_two_contexts_on_one_database_are_one_object_restorable_by_either(
    tmp_path: Path,
) -> None:
    url = f"surrealkv://{tmp_path / 'store'}"
    with connect(url) as conn:
        seed_instance(conn, SeedPlan(contexts=1, scale=0.1, seed=3, embedding_width=8))
        conn.use("spectron", "metadata")
        conn.run(
            "CREATE context:`acme-prod-alias` SET namespace = 'ctx_acme_prod', database = 'acme_prod'"
        )
        store = open_store(f"file://{tmp_path / 'target'}")
        manifest = backup_instance(conn, store, SourceConfig(url=url))
    keys = [d.key for d in manifest.databases]
    assert len(keys) == len(set(keys)) == 3  # control plane, job queue, the one Context
    (shared,) = [d for d in manifest.databases if d.db == "acme_prod"]
    assert (shared.context, shared.shared_with) == ("acme-prod", ["acme-prod-alias"])
    assert "also the database of Context acme-prod-alias" in shared.warnings[0]
    assert select_databases(manifest, context="acme-prod-alias") == [shared]
    with fetch_verified(store, shared) as verified:  # its one object verifies
        assert verified.read(4)


def test_no_manifest_for_objects_that_are_not_as_written(tmp_path: Path, source: str) -> None:
    store = open_store(f"file://{tmp_path / 'target'}")
    with connect(source) as conn:
        found = discover(conn, SourceConfig(url=source))
        backup_id = new_backup_id()
        entries = [
            backup_database(nullcontext(conn), store, backup_id, ref) for ref in found.databases
        ]
        manifest = build_manifest(
            backup_id, datetime.now(UTC), ["daily"], "3", conn.display_url, found, entries
        )
    gone, replaced = entries[0], entries[1]
    store.delete(gone.key)  # e.g. collected while the backup stalled
    store.put_bytes(replaced.key, b"x" * replaced.bytes, metadata={"sha256": "0" * 64})
    with pytest.raises(BackupFailed) as failed:
        write_checked_manifest(store, manifest)
    assert f"{gone.key} is gone" in str(failed.value)
    assert f"{replaced.key} carries another sha256" in str(failed.value)
    assert not store.exists(manifest_key(backup_id))
    assert Repository(store).intact_backups() == []


def test_a_context_deleted_while_the_backup_runs_is_recorded_as_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Context's database exists at discovery and is gone when its export begins (the
    Context was deleted meanwhile): the backup completes, and the manifest names it."""
    import tasks.backup

    url = f"surrealkv://{tmp_path / 'store'}"
    with connect(url) as conn:
        seed_instance(conn, SeedPlan(contexts=2, scale=0.05, seed=5, embedding_width=8))
    real_discover = tasks.backup.discover

    def discover_then_delete_a_context(conn, source_config):  # the race, caused for real
        found = real_discover(conn, source_config)
        doomed = next(r for r in found.databases if r.role == "context")
        conn.use(doomed.ns, doomed.db)
        conn.run(f"REMOVE DATABASE {doomed.db}")
        discover_then_delete_a_context.doomed = doomed
        return found

    monkeypatch.setattr(tasks.backup, "discover", discover_then_delete_a_context)
    target = tmp_path / "target"
    result = backup(config_path=str(write_config(tmp_path, url, f"file://{target}")))
    doomed = discover_then_delete_a_context.doomed
    assert result["missing"] == [
        {
            "context": doomed.context,
            "ns": doomed.ns,
            "db": doomed.db,
            "reason": "database removed during the backup (after discovery)",
        }
    ]
    [entry] = Repository(open_store(f"file://{target}")).backups()
    assert entry.complete and entry.manifest is not None
    assert doomed.name not in [f"{d.ns}/{d.db}" for d in entry.manifest.databases]
    assert [m.context for m in entry.manifest.missing_contexts] == [doomed.context]
    # nothing of it was left in the store, not even a temporary file
    leftovers = [p.name for p in target.rglob("*") if p.is_file() and doomed.db in p.name]
    assert leftovers == []
    assert len(entry.manifest.databases) == 3  # control plane, job queue, the other Context


def test_a_control_plane_database_that_is_gone_fails_its_backup(tmp_path: Path) -> None:
    from spectron_backup.discovery import DatabaseRef

    store = open_store(f"file://{tmp_path / 'target'}")
    with connect("mem://") as conn, pytest.raises(UsageError) as gone:
        backup_database(
            nullcontext(conn),
            store,
            new_backup_id(),
            DatabaseRef("spectron", "metadata", "control"),
        )
    assert str(gone.value).startswith("spectron/metadata: namespace 'spectron' does not exist")
    assert list((tmp_path / "target").rglob("*.zst*")) == []

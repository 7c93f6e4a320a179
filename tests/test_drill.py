"""The restore drill as an operator relies on it: through a real Prefect API, on small
seeded instances with a document store; every fault is caused for real on a copy of a good
backup, and every failure must reach the drill record, the flow run's state, the events and
a webhook listening on loopback, while the scratch store is always gone afterwards."""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

import pytest

from flows.drill import restore_drill
from spectron_backup.backup import backup_instance
from spectron_backup.commands.list_backups import describe
from spectron_backup.config import SourceConfig
from spectron_backup.drill import DrillFailed, choose_backup, run_drill
from spectron_backup.errors import UsageError
from spectron_backup.leases import live_leases
from spectron_backup.manifest import Manifest
from spectron_backup.repository import Repository, manifest_key
from spectron_backup.seed import SeedPlan, seed_instance
from spectron_backup.stores import FileStore, ObjectInfo, open_store
from spectron_backup.surreal import connect
from tests.flow_runs import HOOK_SECRET, Webhook, artifacts_of, logs_of, wait_for_event
from tests.surreal_edge import surreal_edge

pytestmark = pytest.mark.usefixtures("prefect_api")

PLAN = SeedPlan(contexts=1, scale=0.3, seed=5, embedding_width=8)
CONTEXT_DB = "ctx_acme_prod/acme_prod"
MISSING_ID = "20200101T000000Z-abcdef"


# -- fixtures ---------------------------------------------------------------------------------


@dataclass
class Origin:
    """A seeded instance, its documents and one good backup of it (never modified)."""

    source: str
    target: Path
    documents: Path
    backup_id: str


def make_origin(root: Path, plant: str | None = None) -> Origin:
    source = f"surrealkv://{root / 'spectron'}"
    documents = open_store(f"file://{root / 'documents'}")
    store = open_store(f"file://{root / 'target'}")
    with connect(source) as conn:
        seed_instance(conn, PLAN, documents=documents)
        if plant:
            conn.use(*CONTEXT_DB.split("/"))
            conn.run(plant)
        manifest = backup_instance(conn, store, SourceConfig(url=source))
    return Origin(source, root / "target", root / "documents", manifest.backup_id)


@pytest.fixture(scope="module")
def origin(tmp_path_factory: pytest.TempPathFactory) -> Origin:
    return make_origin(tmp_path_factory.mktemp("origin"))


@pytest.fixture(scope="module")
def gossip_origin(tmp_path_factory: pytest.TempPathFactory) -> Origin:
    """A backup of an instance holding a memory record of category 'gossip'. The schema's
    ASSERT refuses it; `OPTION IMPORT` (as a dump's import would) skips the assertion."""
    return make_origin(
        tmp_path_factory.mktemp("gossip"),
        plant="OPTION IMPORT; UPDATE entity SET memory_category = 'gossip' "
        "WHERE id = (SELECT VALUE id FROM entity ORDER BY id LIMIT 1)[0] RETURN NONE",
    )


@pytest.fixture
def scratch_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The temporary directory of everything the drill creates (its embedded scratch store)."""
    root = tmp_path / "tmp"
    root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    return root


@dataclass
class Setup:
    config: Path
    target: Path
    documents: Path
    backup_id: str

    @property
    def store(self):
        return open_store(f"file://{self.target}")

    def manifest(self) -> Manifest:
        return Repository(self.store).read_manifest(self.backup_id)


def setup_from(origin: Origin, tmp_path: Path, webhook: Webhook | None) -> Setup:
    """A copy of the origin's backup and documents that a test may damage, and its config."""
    target, documents = tmp_path / "target", tmp_path / "documents"
    shutil.copytree(origin.target, target)
    shutil.copytree(origin.documents, documents)
    lines = [
        f"source: {{url: '{origin.source}'}}",
        f"target: {{url: 'file://{target}'}}",
        f"documents: {{url: 'file://{documents}'}}",
    ]
    if webhook is not None:
        lines.append(f"alerts: {{webhook_url: '{webhook.url}'}}")
    config = tmp_path / "config.yaml"
    config.write_text("\n".join(lines) + "\n")
    return Setup(config, target, documents, origin.backup_id)


# -- helpers ----------------------------------------------------------------------------------


def drill(setup: Setup, **params: Any):
    """Run the flow; (final state, flow run id)."""
    state = restore_drill(config_path=str(setup.config), return_state=True, **params)
    return state, state.state_details.flow_run_id


def drill_records(setup: Setup) -> list[dict[str, Any]]:
    repo = Repository(setup.store)
    return [repo.read_json(key) for b in repo.backups() for key in b.drills]


def assert_failed_drill(
    state: Any,
    flow_run_id: Any,
    setup: Setup,
    webhook: Webhook,
    scratch_root: Path,
    *,
    database: str,
    words: list[str],
    table: str | None = None,
    check: str | None = None,
) -> dict[str, Any]:
    """The run is Failed with a reason naming the problem, the drill record says so, the
    webhook received an alert naming the backup, the flow run and the problem, and the
    scratch is gone. Returns the drill record."""
    assert state.is_failed(), state
    failure = state.result(raise_on_failure=False)
    assert isinstance(failure, DrillFailed)
    assert failure.backup_id == setup.backup_id

    def matches(text: str) -> bool:
        return all(w in text for w in words)

    assert any(database in f and matches(f) for f in failure.failures), failure.failures

    [record] = drill_records(setup)
    assert record["passed"] is False and record["backup_id"] == setup.backup_id
    bad = [c for c in record["checks"] if not c["passed"]]
    assert any(
        c["database"] == database
        and (table is None or c["table"] == table)
        and (check is None or c["check"] == check)
        for c in bad
    ), bad
    assert any(matches(f) for f in record["failures"]), record["failures"]
    assert {d["ns"] + "/" + d["db"]: d["passed"] for d in record["databases"]}[database] is False

    [message] = webhook.received
    text = message["json"]["text"]
    assert setup.backup_id in text and str(flow_run_id) in text, text
    assert database in text and (check or words[0]) in text, text
    assert message["json"]["blocks"]

    assert list(scratch_root.iterdir()) == []
    return record


# -- a good backup ------------------------------------------------------------------------------


def test_a_drill_of_a_good_backup_passes_and_reports(
    origin: Origin, tmp_path: Path, webhook: Webhook, scratch_root: Path
) -> None:
    setup = setup_from(origin, tmp_path, webhook)
    state, flow_run_id = drill(setup)
    assert state.is_completed(), state.message
    result = state.result()
    assert result["passed"] is True and result["backup_id"] == origin.backup_id
    assert result["failures"] == []
    manifest = setup.manifest()
    # drilled largest first, reported in the manifest's order
    assert [f"{d['ns']}/{d['db']}" for d in result["databases"]] == [
        f"{d.ns}/{d.db}" for d in manifest.databases
    ]
    assert max(manifest.databases, key=lambda d: d.records) != manifest.databases[0]
    assert result["records"] == manifest.records
    assert result["restore_seconds"] > 0 and result["validation_seconds"] > 0
    assert result["backup_age_seconds"] >= 0
    # Counts, hashes and more were checked on every database.
    checked = {(c["database"], c["table"]) for c in result["checks"]}
    for entry in manifest.databases:
        for table in entry.tables:
            assert (f"{entry.ns}/{entry.db}", table) in checked

    [record] = drill_records(setup)
    assert record == {k: v for k, v in result.items() if k != "record"}
    assert result["record"].startswith(f"backups/{origin.backup_id}/drills/")
    repo = Repository(setup.store)
    [entry] = repo.backups()
    assert describe(repo, entry)["last_drill"] == {
        "at": record["finished_at"],
        "passed": True,
        "problem": None,
    }

    artifacts = artifacts_of(flow_run_id)
    summary = artifacts["spectron-drill-summary"]
    assert "PASSED" in summary and origin.backup_id in summary and "RTO" in summary
    rows = artifacts["spectron-drill-checks"]
    rows = json.loads(rows) if isinstance(rows, str) else rows
    assert len(rows) == len(result["checks"]) and all(r["passed"] for r in rows)
    assert {"database", "table", "check", "passed", "detail", "failing ids"} <= set(rows[0])

    payload = wait_for_event("spectron.drill.passed", flow_run_id)
    assert payload["backup_id"] == origin.backup_id and payload["passed"] is True
    assert webhook.received == []
    assert list(scratch_root.iterdir()) == []


# -- faults -------------------------------------------------------------------------------------


def test_a_flipped_byte_fails_the_drill_and_alerts_without_leaking_the_webhook(
    origin: Origin,
    tmp_path: Path,
    webhook: Webhook,
    scratch_root: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    setup = setup_from(origin, tmp_path, webhook)
    victim = next(setup.target.glob(f"backups/{origin.backup_id}/{CONTEXT_DB}.surql.zst"))
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0x01
    victim.write_bytes(bytes(data))

    state, flow_run_id = drill(setup)
    record = assert_failed_drill(
        state,
        flow_run_id,
        setup,
        webhook,
        scratch_root,
        database=CONTEXT_DB,
        check="object_sha256_matches",
        words=["sha256"],
    )
    # The other databases were still restored and checked.
    assert [d["passed"] for d in record["databases"] if d["ns"] == "spectron"] == [True, True]
    payload = wait_for_event("spectron.drill.failed", flow_run_id)
    assert payload["backup_id"] == origin.backup_id
    assert any("sha256" in r for r in payload["reasons"])

    # The webhook URL is a secret: not in any log, artifact or record.
    artifacts = artifacts_of(flow_run_id)
    assert "spectron-drill-summary" in artifacts and "spectron-drill-checks" in artifacts
    assert "FAILED" in artifacts["spectron-drill-summary"]
    captured = capfd.readouterr()
    logs = logs_of(flow_run_id)
    assert "alert posted" in logs
    for text in (
        captured.out,
        captured.err,
        logs,
        json.dumps(artifacts, default=str),
        json.dumps(record),
    ):
        assert HOOK_SECRET not in text


def test_a_changed_manifest_count_fails_the_drill_and_the_scratch_server_is_cleaned(
    origin: Origin, tmp_path: Path, webhook: Webhook, scratch_root: Path
) -> None:
    setup = setup_from(origin, tmp_path, webhook)
    manifest = json.loads(setup.store.get_bytes(manifest_key(origin.backup_id)))
    [entry] = [d for d in manifest["databases"] if f"{d['ns']}/{d['db']}" == CONTEXT_DB]
    entry["tables"]["turn"]["count"] += 1
    setup.store.put_bytes(manifest_key(origin.backup_id), json.dumps(manifest).encode())

    scratch_url = f"surrealkv://{tmp_path / 'scratch-server'}"
    with connect(scratch_url) as conn:  # a scratch server that holds something of its own
        conn.use("keep", "me")
        conn.run("CREATE thing:1")
    state, flow_run_id = drill(setup, scratch_url=scratch_url)
    record = assert_failed_drill(
        state,
        flow_run_id,
        setup,
        webhook,
        scratch_root,
        database=CONTEXT_DB,
        table="turn",
        check="count_matches_manifest",
        words=["turn", "the manifest says"],
    )
    assert record["databases"][0]["into"].startswith("drill_")
    with connect(scratch_url) as conn:
        assert conn.namespaces() == ["keep"]  # every drill_* namespace removed


def test_a_record_that_breaks_a_spectron_expectation_fails_the_drill(
    gossip_origin: Origin, tmp_path: Path, webhook: Webhook, scratch_root: Path
) -> None:
    setup = setup_from(gossip_origin, tmp_path, webhook)
    state, flow_run_id = drill(setup)
    record = assert_failed_drill(
        state,
        flow_run_id,
        setup,
        webhook,
        scratch_root,
        database=CONTEXT_DB,
        table="entity",
        check="memory_category_in_set",
        words=["memory_category", "gossip"],
    )
    [bad] = [c for c in record["checks"] if not c["passed"]]  # nothing else is wrong
    assert bad["table"] == "entity" and bad["failing_ids"]
    assert all(ident.startswith("entity:") for ident in bad["failing_ids"])


def test_a_missing_document_object_fails_the_drill(
    origin: Origin, tmp_path: Path, webhook: Webhook, scratch_root: Path
) -> None:
    setup = setup_from(origin, tmp_path, webhook)
    documents = open_store(f"file://{setup.documents}")
    victim = sorted(info.key for info in documents.list())[0]
    documents.delete(victim)
    state, flow_run_id = drill(setup)
    record = assert_failed_drill(
        state,
        flow_run_id,
        setup,
        webhook,
        scratch_root,
        database=CONTEXT_DB,
        table="document",
        check="document_objects_exist",
        words=["storage_key", victim],
    )
    [bad] = [c for c in record["checks"] if not c["passed"]]  # nothing else is wrong
    assert bad["table"] == "document" and bad["failing_ids"]


def test_a_backup_that_does_not_exist_fails_the_drill_and_alerts(
    origin: Origin, tmp_path: Path, webhook: Webhook, scratch_root: Path
) -> None:
    setup = setup_from(origin, tmp_path, webhook)
    state, flow_run_id = drill(setup, backup=MISSING_ID)
    assert state.is_failed()
    failure = state.result(raise_on_failure=False)
    assert isinstance(failure, DrillFailed) and failure.backup_id == MISSING_ID
    assert "does not exist" in str(failure)
    [message] = webhook.received
    assert MISSING_ID in message["json"]["text"] and "does not exist" in message["json"]["text"]
    assert str(flow_run_id) in message["json"]["text"]
    payload = wait_for_event("spectron.drill.failed", flow_run_id)
    assert payload["backup_id"] == MISSING_ID and "does not exist" in payload["reasons"][0]
    assert "does not exist" in artifacts_of(flow_run_id)["spectron-drill-summary"]
    # No record (there is no backup to put it next to), and no phantom backup was created.
    assert [b.backup_id for b in Repository(setup.store).backups()] == [origin.backup_id]
    assert drill_records(setup) == []
    assert list(scratch_root.iterdir()) == []


# -- the core, without Prefect ------------------------------------------------------------------


def test_choosing_the_backup(origin: Origin, tmp_path: Path) -> None:
    repo = Repository(open_store(f"file://{origin.target}"))
    now = datetime.now(UTC)
    rng = random.Random(1)
    assert choose_backup(repo, "latest", 30, None, now, rng).backup_id == origin.backup_id
    assert choose_backup(repo, "latest", 30, "random", now, rng).backup_id == origin.backup_id
    assert choose_backup(repo, "random", 30, origin.backup_id, now, rng).backup_id == (
        origin.backup_id
    )
    later = now.replace(year=now.year + 1)
    with pytest.raises(DrillFailed, match="from the last 30 days"):
        choose_backup(repo, "random", 30, None, later, rng)
    with pytest.raises(DrillFailed, match="does not exist"):
        choose_backup(repo, "latest", 30, MISSING_ID, now, rng)
    with pytest.raises(UsageError, match="not a backup to drill"):
        choose_backup(repo, "latest", 30, "lastest", now, rng)
    empty = Repository(open_store(f"file://{tmp_path / 'empty'}"))
    with pytest.raises(DrillFailed, match="no complete backup"):
        choose_backup(empty, "latest", 30, None, now, rng)


def test_keep_scratch_leaves_the_restored_store(origin: Origin, tmp_path: Path) -> None:
    store = open_store(f"file://{origin.target}")
    manifest = Repository(store).read_manifest(origin.backup_id)
    report = run_drill(
        store,
        manifest,
        documents=open_store(f"file://{origin.documents}"),
        keep_scratch=True,
        scratch_root=str(tmp_path),
    )
    assert report.passed, report.failures
    assert report.kept_scratch and Path(report.kept_scratch).parent == tmp_path
    with connect(f"surrealkv://{report.kept_scratch}") as conn:
        assert "ctx_acme_prod" in conn.namespaces()


# -- the command line ---------------------------------------------------------------------------


def test_cli_drill_exit_status_and_json(
    origin: Origin, tmp_path: Path, cli_with_prefect, scratch_root: Path
) -> None:
    good = setup_from(origin, tmp_path / "good", None)
    env = {"TMPDIR": str(scratch_root)}
    result = cli_with_prefect("drill", "--config", str(good.config), "--json", env=env)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["passed"] is True and report["backup_id"] == origin.backup_id

    bad = setup_from(origin, tmp_path / "bad", None)
    victim = next(bad.target.glob(f"backups/{origin.backup_id}/spectron/metadata.surql.zst"))
    victim.write_bytes(victim.read_bytes()[:-7])  # truncated
    result = cli_with_prefect(
        "drill", "--config", str(bad.config), "--backup", "latest", "--json", env=env
    )
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert report["passed"] is False
    assert any("spectron/metadata" in f and "sha256" in f for f in report["failures"])

    result = cli_with_prefect("drill", "--config", str(good.config), "--backup", MISSING_ID)
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and f"backup {MISSING_ID} does not exist" in errors[0], result.stderr
    assert list(scratch_root.iterdir()) == []


def test_cli_drill_bad_usage_exits_2(origin: Origin, tmp_path: Path, cli_with_prefect) -> None:
    setup = setup_from(origin, tmp_path, None)
    result = cli_with_prefect("drill", "--config", str(setup.config), "--backup", "lastest")
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "not a backup to drill" in errors[0], result.stderr


def test_a_scratch_server_is_signed_in_to_with_the_drill_credentials(
    origin: Origin, tmp_path: Path, cli_with_prefect
) -> None:
    """drill.scratch_username and the secret drill.scratch_password reach the scratch server.

    There is no SurrealDB server binary here: tests/surreal_edge.py imitates one's sign-in and
    refusals. A wrong password is refused (exit 2, nothing secret printed); the right one is
    accepted, after which this imitation refuses every statement, which must be reported as a
    permission problem, not as a failed sign-in."""
    setup = setup_from(origin, tmp_path, None)
    with setup.config.open("a") as config:
        config.write("drill: {scratch_username: drill}\n")
    right, wrong = "scratch-right-7c1f", "scratch-wrong-9d2e"
    with surreal_edge(username="drill", password=right, refuse_queries=True) as server:
        refused = cli_with_prefect(
            "drill",
            "--config",
            str(setup.config),
            "--scratch",
            server.url,
            env={"SPECTRON_BACKUP__DRILL__SCRATCH_PASSWORD": wrong},
        )
        signed_in = cli_with_prefect(
            "drill",
            "--config",
            str(setup.config),
            "--scratch",
            server.url,
            env={"SPECTRON_BACKUP__DRILL__SCRATCH_PASSWORD": right},
        )
        methods = list(server.methods)

    assert refused.returncode == 2, refused.stderr
    [line] = [x for x in refused.stderr.splitlines() if x.startswith("error:")]
    assert "refused user 'drill'" in line and server.url in line
    assert "problem with authentication" in line
    assert signed_in.returncode == 2, signed_in.stderr
    [line] = [x for x in signed_in.stderr.splitlines() if x.startswith("error:")]
    assert "Not enough permissions" in line and "problem with authentication" not in line
    assert methods.count("signin") == 2 and "query" in methods
    for result in (refused, signed_in):
        assert wrong not in result.stdout + result.stderr
        assert right not in result.stdout + result.stderr


def test_a_dump_that_stops_mid_statement_is_a_failed_drill_not_bad_usage(
    origin: Origin, tmp_path: Path, cli_with_prefect
) -> None:
    """An object whose sha256 matches the manifest (both rewritten) but whose dump is cut off:
    the importer refuses it, which is the backup's fault (exit 1 and a drill record), not a
    configuration problem (exit 2) like a scratch server refusing the drill's user."""
    import zstandard

    setup = setup_from(origin, tmp_path, None)
    path = manifest_key(origin.backup_id)
    document = json.loads(setup.store.get_bytes(path))
    [entry] = [d for d in document["databases"] if f"{d['ns']}/{d['db']}" == CONTEXT_DB]
    victim = setup.target / entry["key"]
    dump = zstandard.ZstdDecompressor().decompressobj().decompress(victim.read_bytes())
    cut = zstandard.ZstdCompressor().compress(dump[: len(dump) // 2])
    victim.write_bytes(cut)
    entry["sha256"], entry["bytes"] = hashlib.sha256(cut).hexdigest(), len(cut)
    setup.store.put_bytes(path, json.dumps(document).encode())

    result = cli_with_prefect("drill", "--config", str(setup.config), "--json")
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert report["passed"] is False
    assert any(CONTEXT_DB in f and "restore" in f for f in report["failures"]), report["failures"]
    assert len(drill_records(setup)) == 1


# -- leases: a prune while the drill runs ------------------------------------------------------------


class Watched(FileStore):
    """A file store that, whenever the drill reads (a backup object from the target, or a
    document's head during the validation), notes the live leases on the drilled backup; with
    `interrupt`, the first read of a backup object is then interrupted (Ctrl-C)."""

    def __init__(
        self,
        root: Path,
        target: FileStore,
        backup_id: str,
        seen: list[tuple[str, list[str]]],
        interrupt: bool = False,
    ) -> None:
        super().__init__(root)
        self.target, self.backup_id, self.seen, self.interrupt = target, backup_id, seen, interrupt

    def note(self, what: str) -> None:
        repo = Repository(self.target)
        keys = [info.key for info in self.target.list(f"backups/{self.backup_id}/leases/")]
        self.seen.append((what, [lease.purpose for lease in live_leases(repo, keys)]))

    @contextmanager
    def reader(self, key: str) -> Iterator[BinaryIO]:
        if key.endswith(".surql.zst"):
            self.note("restore")
            if self.interrupt:
                raise KeyboardInterrupt
        with super().reader(key) as source:
            yield source

    def head(self, key: str) -> ObjectInfo | None:
        if self.root != self.target.root:  # the document store, asked by the validation
            self.note("validation")
        return super().head(key)


def test_the_drill_holds_a_lease_until_its_validation_ends(origin: Origin, tmp_path: Path) -> None:
    seen: list[tuple[str, list[str]]] = []
    plain = FileStore(origin.target)
    target = Watched(origin.target, plain, origin.backup_id, seen)
    documents = Watched(origin.documents, plain, origin.backup_id, seen)
    manifest = Repository(plain).read_manifest(origin.backup_id)
    report = run_drill(target, manifest, documents=documents, scratch_root=str(tmp_path))
    assert report.passed, report.failures
    assert {what for what, _ in seen} == {"restore", "validation"}
    assert all(purposes == ["drill"] for _, purposes in seen), seen
    assert list(plain.list(f"backups/{origin.backup_id}/leases/")) == []
    assert report.warnings == [] and report.to_record()["warnings"] == []


def test_an_interrupted_drill_leaves_no_lease(origin: Origin, tmp_path: Path) -> None:
    seen: list[tuple[str, list[str]]] = []
    plain = FileStore(origin.target)
    target = Watched(origin.target, plain, origin.backup_id, seen, interrupt=True)
    manifest = Repository(plain).read_manifest(origin.backup_id)
    with pytest.raises(KeyboardInterrupt):
        run_drill(target, manifest, scratch_root=str(tmp_path))
    assert seen == [("restore", ["drill"])]
    assert list(plain.list(f"backups/{origin.backup_id}/leases/")) == []
    assert list(tmp_path.iterdir()) == []  # the scratch is gone too


def test_a_drill_of_a_backup_pruned_after_its_choice_fails(origin: Origin, tmp_path: Path) -> None:
    setup = setup_from(origin, tmp_path, None)
    store = setup.store
    manifest = choose_backup(
        Repository(store), "latest", 30, None, datetime.now(UTC), random.Random(1)
    )
    for info in list(store.list(f"backups/{origin.backup_id}/")):  # a prune, meanwhile
        store.delete(info.key)
    with pytest.raises(DrillFailed) as failed:
        run_drill(store, manifest, scratch_root=str(tmp_path))
    assert failed.value.backup_id == origin.backup_id
    assert f"backup {origin.backup_id} was deleted after it was chosen" in str(failed.value)
    assert list(store.list("backups/")) == []  # not even an empty folder with its lease

"""Backups encrypted with age, as an operator relies on them: the backup flow holds only public
keys; restore and the drill open a backup with the identity, and without it (or with the wrong
one) fail with one message naming the recipients; damage is caught by the sha256 and, if the
manifest was changed too, by age's authentication; the standard `age` CLI and `zstd` open a
stored object; a new recipient applies to new backups and `list` says who can open which;
and the private key appears in no log, artifact, record or manifest."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyrage
import pytest
from pyrage import x25519

from flows.backup import backup
from flows.drill import restore_drill
from spectron_backup.drill import DrillFailed
from spectron_backup.dump.pages import table_digest
from spectron_backup.dump.schema import schema_fingerprint
from spectron_backup.encryption import IdentityMismatch, short_key
from spectron_backup.keyed_hashes import HashKey
from spectron_backup.manifest import Manifest
from spectron_backup.repository import Repository, manifest_key
from spectron_backup.restore import fetch_verified
from spectron_backup.seed import SeedPlan, seed_instance
from spectron_backup.stores import open_store
from spectron_backup.surreal import connect
from tests.conftest import run_cli
from tests.flow_runs import artifacts_of, logs_of, wait_for_event
from tests.test_restore_cli import snapshot

pytestmark = pytest.mark.usefixtures("prefect_api")

PLAN = SeedPlan(contexts=1, scale=0.3, seed=9, embedding_width=8)
CONTEXT_DB = "ctx_acme_prod/acme_prod"
IDENTITY_ENV = "SPECTRON_BACKUP__ENCRYPTION__IDENTITY"


@dataclass
class Key:
    identity: x25519.Identity
    file: Path

    @property
    def public(self) -> str:
        return str(self.identity.to_public())

    @property
    def secret(self) -> str:
        return str(self.identity)

    @property
    def text(self) -> str:
        """The key file's text, as age-keygen writes it."""
        return self.file.read_text()


def make_key(directory: Path, name: str) -> Key:
    identity = x25519.Identity.generate()
    path = directory / f"{name}.txt"
    path.write_text(
        f"# created: 2026-11-24T00:00:00Z\n# public key: {identity.to_public()}\n{identity}\n"
    )
    return Key(identity, path)


@dataclass
class Origin:
    source: str
    target: Path
    documents: Path
    backup_id: str
    flow_run_id: Any
    alice: Key
    bob: Key


@pytest.fixture(scope="module")
def origin(tmp_path_factory: pytest.TempPathFactory) -> Origin:
    """A seeded instance and one backup of it by the backup flow, encrypted to alice's key."""
    root = tmp_path_factory.mktemp("encrypted")
    keys = root / "keys"
    keys.mkdir()
    alice, bob = make_key(keys, "alice"), make_key(keys, "bob")
    source = f"surrealkv://{root / 'spectron'}"
    documents = open_store(f"file://{root / 'documents'}")
    with connect(source) as conn:
        seed_instance(conn, PLAN, documents=documents)
    config = write_config(root, source, root / "target", root / "documents", [alice.public])
    state = backup(config_path=str(config), return_state=True)
    assert state.is_completed(), state.message
    return Origin(
        source,
        root / "target",
        root / "documents",
        state.result()["backup_id"],
        state.state_details.flow_run_id,
        alice,
        bob,
    )


def write_config(
    directory: Path,
    source: str,
    target: Path,
    documents: Path,
    recipients: list[str],
    extra: str = "",
    name: str = "config.yaml",
) -> Path:
    path = directory / name
    path.write_text(
        f"source: {{url: '{source}'}}\n"
        f"target: {{url: 'file://{target}'}}\n"
        f"documents: {{url: 'file://{documents}'}}\n"
        f"encryption: {{recipients: {json.dumps(recipients)}{extra}}}\n"
    )
    return path


@dataclass
class Setup:
    config: Path
    target: Path

    @property
    def store(self):
        return open_store(f"file://{self.target}")

    def manifest(self, backup_id: str) -> Manifest:
        return Repository(self.store).read_manifest(backup_id)

    def drill_records(self) -> list[dict[str, Any]]:
        repo = Repository(self.store)
        return [repo.read_json(key) for b in repo.backups() for key in b.drills]


def setup_from(origin: Origin, tmp_path: Path, extra: str = "") -> Setup:
    """A copy of the origin's backup (a test may damage it) and a configuration for it."""
    target = tmp_path / "target"
    shutil.copytree(origin.target, target)
    config = write_config(
        tmp_path, origin.source, target, origin.documents, [origin.alice.public], extra
    )
    return Setup(config, target)


@pytest.fixture
def scratch_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "tmp"
    root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    return root


@pytest.fixture
def opened(
    origin: Origin, tmp_path: Path, scratch_root: Path, monkeypatch: pytest.MonkeyPatch
) -> Setup:
    """A copy of the origin's backup to damage, with alice's identity configured to open it."""
    monkeypatch.setenv(IDENTITY_ENV, origin.alice.text)
    return setup_from(origin, tmp_path)


def drill(setup: Setup, **params: Any):
    state = restore_drill(config_path=str(setup.config), return_state=True, **params)
    return state, state.state_details.flow_run_id


def failed_drill(state: Any) -> DrillFailed:
    assert state.is_failed(), state
    failure = state.result(raise_on_failure=False)
    assert isinstance(failure, DrillFailed), failure
    return failure


def errors_of(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]


def flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def hmac_hex(key: bytes, digest: str) -> str:
    """A hash as an encrypted backup's manifest holds it (see keyed_hashes)."""
    return hmac.new(key, digest.encode(), hashlib.sha256).hexdigest()


def context_object(setup: Setup, backup_id: str) -> Path:
    return setup.target / "backups" / backup_id / f"{CONTEXT_DB}.surql.zst.age"


# -- what is stored ---------------------------------------------------------------------------


def test_every_object_is_age_encrypted_and_the_manifest_holds_only_public_keys(
    origin: Origin,
) -> None:
    store = open_store(f"file://{origin.target}")
    manifest = Repository(store).read_manifest(origin.backup_id)
    assert manifest.encrypted and manifest.recipients == [origin.alice.public]
    assert len(manifest.databases) == 3
    for entry in manifest.databases:
        assert entry.encrypted and entry.recipients == [origin.alice.public]
        assert entry.key.endswith(".surql.zst.age")
        stored = store.get_bytes(entry.key)
        assert stored.startswith(b"age-encryption.org/v1\n-> X25519 ")
        # Verification needs no key: the sha256 is of the stored, encrypted bytes.
        assert hashlib.sha256(stored).hexdigest() == entry.sha256
        assert store.head(entry.key).metadata["sha256"] == entry.sha256
        assert len(stored) == entry.bytes and entry.raw_bytes > 0
        with pytest.raises(IdentityMismatch, match=origin.alice.public):
            fetch_verified(store, entry)
    text = store.get_bytes(manifest_key(origin.backup_id)).decode()
    assert origin.alice.secret not in text and "AGE-SECRET-KEY" not in text.upper()


def test_the_manifest_holds_no_content_hash_that_could_be_checked_without_the_identity(
    origin: Origin,
) -> None:
    """A plain content hash of a one-record table is the sha256 of that record's text: anyone
    reading the bucket could confirm a guess. Encrypted entries hold HMACs under a key that
    only the recipients can open."""
    manifest = Repository(open_store(f"file://{origin.target}")).read_manifest(origin.backup_id)
    with connect(origin.source) as conn:
        for entry in manifest.databases:
            conn.use(entry.ns, entry.db)
            assert entry.hash_key.startswith("-----BEGIN AGE ENCRYPTED FILE-----\n")
            key = pyrage.decrypt(entry.hash_key.encode(), [origin.alice.identity])
            with pytest.raises(pyrage.DecryptError):
                pyrage.decrypt(entry.hash_key.encode(), [origin.bob.identity])
            assert entry.tables
            for name, table in entry.tables.items():
                plain = table_digest(conn, name)
                assert table.count == plain.count
                assert table.hash != plain.hexdigest()
                assert table.hash == hmac_hex(key, plain.hexdigest()), name
            plain_schema = schema_fingerprint(conn)
            assert entry.schema_hash not in ("", plain_schema)
            assert entry.schema_hash == hmac_hex(key, plain_schema)
    keys = [
        pyrage.decrypt(d.hash_key.encode(), [origin.alice.identity]) for d in manifest.databases
    ]
    assert len(set(keys)) == len(keys)  # one key per database


# -- the drill --------------------------------------------------------------------------------


def test_a_drill_of_an_encrypted_backup_passes_and_no_secret_leaks(
    origin: Origin,
    tmp_path: Path,
    scratch_root: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    setup = setup_from(origin, tmp_path)
    monkeypatch.setenv(IDENTITY_ENV, origin.alice.text)
    state, flow_run_id = drill(setup)
    assert state.is_completed(), state.message
    record = state.result()
    assert record["passed"] is True and record["backup_id"] == origin.backup_id
    decrypted = {c["database"] for c in record["checks"] if c["check"] == "object_decrypts"}
    assert decrypted == {f"{d.ns}/{d.db}" for d in setup.manifest(origin.backup_id).databases}
    assert all(c["passed"] for c in record["checks"])
    assert list(scratch_root.iterdir()) == []

    # The private key is nowhere: logs and artifacts of the backup and the drill runs, the
    # drill record, the manifest, every stored file (objects, sidecars), the console.
    captured = capfd.readouterr()
    texts = [
        captured.out,
        captured.err,
        logs_of(flow_run_id),
        logs_of(origin.flow_run_id),
        json.dumps(artifacts_of(flow_run_id), default=str),
        json.dumps(artifacts_of(origin.flow_run_id), default=str),
        json.dumps(setup.drill_records()),
        json.dumps(record),
    ]
    texts += [p.read_bytes().decode("latin-1") for p in setup.target.rglob("*") if p.is_file()]
    secret_body = origin.alice.secret.removeprefix("AGE-SECRET-KEY-1")
    hash_keys = [
        pyrage.decrypt(d.hash_key.encode(), [origin.alice.identity])
        for d in setup.manifest(origin.backup_id).databases
    ]
    for text in texts:
        assert secret_body not in text.upper()
        for key in hash_keys:
            assert key.hex() not in text and base64.b64encode(key).decode() not in text
    # ... while the backup's artifacts do say who can open it.
    summary = artifacts_of(origin.flow_run_id)["spectron-backup-summary"]
    assert "age, to 1 recipient(s)" in summary and short_key(origin.alice.public) in summary


def test_a_drill_without_the_identity_fails_naming_the_recipients(
    origin: Origin, tmp_path: Path, scratch_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(IDENTITY_ENV, raising=False)
    setup = setup_from(origin, tmp_path)
    state, flow_run_id = drill(setup)
    failure = failed_drill(state)
    [reason] = failure.failures
    assert "identity_opens_backup" in reason and "no identity is configured" in reason
    assert origin.alice.public in reason and "encryption.identity" in reason
    [record] = setup.drill_records()
    assert record["passed"] is False and record["failures"] == [reason]
    assert not any(d["passed"] for d in record["databases"])
    assert list(scratch_root.iterdir()) == []  # nothing was restored
    payload = wait_for_event("spectron.drill.failed", flow_run_id)
    assert any(origin.alice.public in r for r in payload["reasons"])


def test_a_drill_with_the_wrong_identity_fails_naming_the_recipients(
    origin: Origin, tmp_path: Path, scratch_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(IDENTITY_ENV, origin.bob.text)
    setup = setup_from(origin, tmp_path)
    state, _ = drill(setup)
    [reason] = failed_drill(state).failures
    assert origin.alice.public in reason and "none of them" in reason
    assert origin.bob.public in reason  # which key was tried (its public half)
    assert origin.bob.secret.removeprefix("AGE-SECRET-KEY-1") not in reason.upper()
    assert list(scratch_root.iterdir()) == []


def test_a_flipped_byte_fails_the_sha256(origin: Origin, opened: Setup) -> None:
    setup = opened
    flip_a_byte(context_object(setup, origin.backup_id))
    state, _ = drill(setup)
    failure = failed_drill(state)
    assert len(failure.failures) == 1
    assert CONTEXT_DB in failure.failures[0] and "object_sha256_matches" in failure.failures[0]
    [record] = setup.drill_records()
    assert {f"{d['ns']}/{d['db']}": d["passed"] for d in record["databases"]} == {
        "spectron/metadata": True,
        "spectron/_jobqueue": True,
        CONTEXT_DB: False,
    }


def test_a_flipped_byte_with_the_manifest_sha256_changed_too_fails_age_authentication(
    origin: Origin, tmp_path: Path, opened: Setup
) -> None:
    setup = opened
    victim = context_object(setup, origin.backup_id)
    flip_a_byte(victim)
    change_context_entry(
        setup, origin.backup_id, sha256=hashlib.sha256(victim.read_bytes()).hexdigest()
    )
    reason = drill_and_restore_refuse_the_context(setup, tmp_path, "fails age authentication")
    assert "object_decrypts" in reason


def manifest_json(setup: Setup, backup_id: str) -> dict[str, Any]:
    return json.loads(setup.store.get_bytes(manifest_key(backup_id)))


def rewrite_manifest(setup: Setup, backup_id: str, manifest: dict[str, Any]) -> None:
    """Replace a backup's manifest, as an attacker with write access to the bucket might."""
    setup.store.put_bytes(manifest_key(backup_id), json.dumps(manifest).encode())


def context_entry(manifest: dict[str, Any]) -> dict[str, Any]:
    [entry] = [d for d in manifest["databases"] if f"{d['ns']}/{d['db']}" == CONTEXT_DB]
    return entry


def change_context_entry(setup: Setup, backup_id: str, **values: Any) -> None:
    """Change the context database's entry of a backup's manifest."""
    manifest = manifest_json(setup, backup_id)
    context_entry(manifest).update(values)
    rewrite_manifest(setup, backup_id, manifest)


def drill_and_restore_refuse_the_context(setup: Setup, tmp_path: Path, message: str) -> str:
    """The drill fails on the context database alone with `message`; restore exits 1 with it,
    restoring the other databases and importing nothing of the context. The drill's reason."""
    state, _ = drill(setup)
    [reason] = failed_drill(state).failures
    assert CONTEXT_DB in reason and message in reason
    target = f"surrealkv://{tmp_path / 'restored'}"
    result = run_cli("restore", "--config", str(setup.config), "--target", target)
    assert result.returncode == 1, result.stderr
    assert message in result.stderr
    assert set(snapshot(target)) == {"spectron/metadata", "spectron/_jobqueue"}
    return reason


def test_a_manifest_whose_hash_key_was_replaced_fails_the_drill_and_is_not_restored(
    origin: Origin, tmp_path: Path, opened: Setup
) -> None:
    setup = opened
    change_context_entry(
        setup, origin.backup_id, hash_key=HashKey.new().sealed([origin.bob.identity.to_public()])
    )
    reason = drill_and_restore_refuse_the_context(
        setup, tmp_path, "the manifest's hash_key does not open"
    )
    assert "hash_key_opens" in reason


#: a hash as a check's detail would show it (its first 16 hex digits)
SHOWN_HASH = re.compile(r"[0-9a-f]{16}")


def hash_details(record: dict[str, Any]) -> list[str]:
    return [
        c["detail"]
        for c in record["checks"]
        if c["check"] in ("hash_matches_manifest", "schema_matches_manifest")
    ]


def test_a_changed_keyed_hash_fails_the_drill_and_the_restore_and_no_hash_is_shown(
    origin: Origin, tmp_path: Path, opened: Setup
) -> None:
    setup = opened
    entry = context_entry(manifest_json(setup, origin.backup_id))
    table = sorted(entry["tables"])[0]
    tables = {**entry["tables"], table: {**entry["tables"][table], "hash": "0" * 64}}
    change_context_entry(setup, origin.backup_id, tables=tables, schema_hash="0" * 64)

    state, _ = drill(setup)
    reasons = failed_drill(state).failures
    assert len(reasons) == 2, reasons
    assert any("schema_matches_manifest" in r for r in reasons), reasons
    assert any(f"{table}" in r and "hash_matches_manifest" in r for r in reasons), reasons
    [record] = setup.drill_records()
    details = hash_details(record)
    assert len(details) > len(entry["tables"]), details  # every table's hash and the schema
    assert not [d for d in details if SHOWN_HASH.search(d)], details

    target = f"surrealkv://{tmp_path / 'restored'}"
    result = run_cli("restore", "--config", str(setup.config), "--target", target)
    assert result.returncode == 1, result.stderr
    assert f"table {table}: content hash differs from the manifest" in result.stderr, result.stderr


def test_an_encrypted_backup_from_before_keyed_hashes_still_drills(
    origin: Origin, opened: Setup
) -> None:
    """Manifests of encrypted backups written by earlier versions hold plain hashes and no
    hash_key: they verify as written, and the drill's details still show no hash."""
    setup = opened
    manifest = manifest_json(setup, origin.backup_id)
    with connect(origin.source) as conn:
        for entry in manifest["databases"]:
            conn.use(entry["ns"], entry["db"])
            del entry["hash_key"]
            entry["schema_hash"] = schema_fingerprint(conn)
            for name, table in entry["tables"].items():
                table["hash"] = table_digest(conn, name).hexdigest()
    rewrite_manifest(setup, origin.backup_id, manifest)

    state, _ = drill(setup)
    assert state.is_completed(), state.message
    record = state.result()
    assert record["passed"] is True and all(c["passed"] for c in record["checks"])
    details = hash_details(record)
    assert details and not [d for d in details if SHOWN_HASH.search(d)]


# -- restore ----------------------------------------------------------------------------------


def test_restore_with_the_identity_gives_every_record_back(origin: Origin, tmp_path: Path) -> None:
    setup = setup_from(origin, tmp_path)
    target = f"surrealkv://{tmp_path / 'restored'}"
    result = run_cli(
        "restore",
        "--config",
        str(setup.config),
        "--target",
        target,
        "--json",
        env={IDENTITY_ENV: origin.alice.text},
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["ok"] is True
    assert snapshot(target) == snapshot(origin.source)
    assert (
        origin.alice.secret.removeprefix("AGE-SECRET-KEY-1")
        not in (result.stdout + result.stderr).upper()
    )


@pytest.mark.parametrize("who", ["nobody", "bob"])
def test_restore_without_a_matching_identity_exits_2_naming_the_recipients(
    origin: Origin, tmp_path: Path, who: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(IDENTITY_ENV, raising=False)
    setup = setup_from(origin, tmp_path)
    target = tmp_path / "restored"
    env = {IDENTITY_ENV: origin.bob.text} if who == "bob" else {}
    result = run_cli(
        "restore", "--config", str(setup.config), "--target", f"surrealkv://{target}", env=env
    )
    assert result.returncode == 2, result.stderr
    [error] = errors_of(result)
    assert origin.backup_id in error and origin.alice.public in error
    assert ("none of them" if who == "bob" else "no identity is configured") in error
    assert not target.exists()  # the target was not even opened


# -- interchange: the age CLI and zstd, without this tool --------------------------------------


def test_the_age_cli_and_zstd_open_an_object_into_a_dump_that_imports_to_the_same_records(
    origin: Origin, tmp_path: Path
) -> None:
    # not a skip: CI must prove the interchange, so a missing CLI fails with what to do
    assert shutil.which("age") and shutil.which("zstd"), (
        "the age and zstd command lines are needed: `make install` installs Debian's age as "
        "root, or run `apt-get install age zstd`"
    )
    store = open_store(f"file://{origin.target}")
    manifest = Repository(store).read_manifest(origin.backup_id)
    [entry] = [d for d in manifest.databases if f"{d.ns}/{d.db}" == CONTEXT_DB]
    dump = tmp_path / "acme_prod.surql"
    # The README's runbook, verbatim in spirit: age -d -i KEY OBJECT | zstd -d > DUMP
    subprocess.run(
        [
            "bash",
            "-c",
            'set -o pipefail; age -d -i "$1" "$2" | zstd -d -q > "$3"',
            "-",
            str(origin.alice.file),
            str(origin.target / entry.key),
            str(dump),
        ],
        check=True,
        timeout=120,
    )
    assert "OPTION IMPORT;" in dump.read_text()[:4096]
    target = f"surrealkv://{tmp_path / 'imported'}"
    result = run_cli("import", str(dump), "--target", target, "--ns", "r", "--db", "acme", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["failed"] == 0
    imported = snapshot(target)["r/acme"]
    assert imported == snapshot(origin.source, only={CONTEXT_DB})[CONTEXT_DB]
    # The manifest's hashes are keyed: `age -d` opens the key, and the import's hashes
    # under it are the manifest's.
    sealed = tmp_path / "hash_key.age"
    sealed.write_text(entry.hash_key)
    key = subprocess.run(
        ["age", "-d", "-i", str(origin.alice.file), str(sealed)],
        check=True,
        capture_output=True,
        timeout=60,
    ).stdout
    assert {
        table: (count, hmac_hex(key, digest)) for table, (count, digest) in imported.items()
    } == {t: (e.count, e.hash) for t, e in entry.tables.items()}


# -- key rotation and list --------------------------------------------------------------------


def test_a_new_recipient_applies_to_new_backups_and_list_shows_who_can_open_which(
    origin: Origin, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(IDENTITY_ENV, raising=False)
    setup = setup_from(origin, tmp_path)
    both = [origin.alice.public, origin.bob.public]
    rotated = write_config(
        tmp_path, origin.source, setup.target, origin.documents, both, name="rotated.yaml"
    )
    second = backup(config_path=str(rotated))["backup_id"]
    assert setup.manifest(second).recipients == [origin.alice.public, origin.bob.public]
    assert setup.manifest(origin.backup_id).recipients == [origin.alice.public]
    plain = write_config(
        tmp_path, origin.source, setup.target, origin.documents, [], name="plain.yaml"
    )
    third = backup(config_path=str(plain))["backup_id"]
    assert setup.manifest(third).encrypted is False

    listing = run_cli("list", "--config", str(rotated), "--json")
    assert listing.returncode == 0, listing.stderr
    rows = {r["backup_id"]: r for r in json.loads(listing.stdout)["backups"]}
    assert rows[origin.backup_id]["encrypted"] is True
    assert rows[origin.backup_id]["recipients"] == [origin.alice.public]
    assert rows[second]["recipients"] == [origin.alice.public, origin.bob.public]
    assert rows[third]["encrypted"] is False and rows[third]["recipients"] == []
    human = run_cli("list", "--config", str(rotated))
    assert human.returncode == 0, human.stderr
    assert short_key(origin.bob.public) in human.stderr
    assert "not encrypted" in human.stderr

    # Bob's key opens the new backup, not the old one.
    bob = {IDENTITY_ENV: origin.bob.text}
    one = ["--database", "spectron/metadata", "--config", str(rotated)]
    opened = run_cli("restore", second, *one, "--target", f"surrealkv://{tmp_path / 'r2'}", env=bob)
    assert opened.returncode == 0, opened.stderr
    refused = run_cli(
        "restore", origin.backup_id, *one, "--target", f"surrealkv://{tmp_path / 'r1'}", env=bob
    )
    assert refused.returncode == 2
    [error] = errors_of(refused)
    assert origin.alice.public in error and "none of them" in error


# -- the identity from a Prefect Secret block -------------------------------------------------


def test_the_identity_can_come_from_a_prefect_secret_block(
    origin: Origin,
    tmp_path: Path,
    scratch_root: Path,
    monkeypatch: pytest.MonkeyPatch,
    cli_with_prefect,
) -> None:
    from prefect.blocks.system import Secret

    monkeypatch.delenv(IDENTITY_ENV, raising=False)
    Secret(value=origin.alice.text).save("spectron-test-age-identity", overwrite=True)
    setup = setup_from(origin, tmp_path, extra=", identity_block: spectron-test-age-identity")
    state, flow_run_id = drill(setup)
    assert state.is_completed(), state.message
    assert state.result()["passed"] is True
    assert origin.alice.secret.removeprefix("AGE-SECRET-KEY-1") not in logs_of(flow_run_id).upper()

    target = f"surrealkv://{tmp_path / 'restored'}"
    result = cli_with_prefect("restore", "--config", str(setup.config), "--target", target)
    assert result.returncode == 0, result.stderr
    assert snapshot(target) == snapshot(origin.source)

    missing = setup_from(origin, tmp_path / "other", extra=", identity_block: no-such-block")
    state, _ = drill(missing)
    assert state.is_failed()
    assert "no Prefect Secret block named 'no-such-block'" in str(
        state.result(raise_on_failure=False)
    )


# -- S3 ---------------------------------------------------------------------------------------


def test_an_encrypted_backup_into_s3_restores_with_the_identity(
    origin: Origin, tmp_path: Path, s3_server: str, s3_bucket: str, s3_client
) -> None:
    config = tmp_path / "s3.yaml"
    config.write_text(
        f"source: {{url: '{origin.source}'}}\n"
        f"target: {{url: 's3://{s3_bucket}/prod', endpoint_url: '{s3_server}', max_attempts: 2}}\n"
        f"encryption: {{recipients: ['{origin.alice.public}']}}\n"
    )
    backup_id = backup(config_path=str(config))["backup_id"]
    listed = s3_client.list_objects_v2(Bucket=s3_bucket, Prefix=f"prod/backups/{backup_id}/")
    keys = sorted(o["Key"] for o in listed["Contents"])
    assert len(keys) == 4 and all(
        k.endswith(".surql.zst.age") for k in keys if not k.endswith("manifest.json")
    )
    target = f"surrealkv://{tmp_path / 'restored'}"
    result = run_cli(
        "restore",
        backup_id,
        "--config",
        str(config),
        "--target",
        target,
        env={IDENTITY_ENV: origin.alice.text},
    )
    assert result.returncode == 0, result.stderr
    assert snapshot(target) == snapshot(origin.source)

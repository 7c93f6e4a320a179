"""Encryption with age, as the configuration and the backup pipeline use it: recipients and
identities checked at load without ever repeating a private key, a streaming encrypting
writer whose output any age implementation opens, and failures that keep their cause."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import threading
import tracemalloc
from pathlib import Path

import pyrage
import pytest
from pyrage import x25519

from spectron_backup.config import load_config
from spectron_backup.encryption import (
    AgeAuthenticationFailed,
    NoMatchingIdentity,
    can_open,
    decrypt_to,
    encrypting_writer,
    parse_identities,
)
from spectron_backup.errors import UsageError
from spectron_backup.manifest import Manifest
from spectron_backup.stores.base import TransientStoreError
from spectron_backup.streams import HashingWriter
from tests.conftest import run_cli

MINIMAL = "source: {url: 'mem://'}\ntarget: {url: 'file:///tmp/never-written'}\n"


@pytest.fixture(scope="module")
def identity() -> x25519.Identity:
    return x25519.Identity.generate()


@pytest.fixture(scope="module")
def ssh_public_key(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A real OpenSSH ed25519 public key line (with its comment)."""
    path = tmp_path_factory.mktemp("ssh") / "id_ed25519"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "ops@backup-host", "-f", str(path)],
        check=True,
    )
    return path.with_suffix(".pub").read_text().strip()


def write_config(tmp_path: Path, encryption: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(MINIMAL + encryption + "\n")
    return path


# -- configuration ----------------------------------------------------------------------------


def test_age_and_ssh_recipients_are_accepted_and_normalized(
    tmp_path: Path, identity: x25519.Identity, ssh_public_key: str
) -> None:
    age_key = str(identity.to_public())
    spaced = ssh_public_key.replace(" ", "   ")
    config = load_config(
        write_config(tmp_path, f"encryption: {{recipients: ['  {age_key} ', '{spaced}']}}")
    )
    assert config.encryption.recipients == [age_key, ssh_public_key]
    assert config.encryption.identity is None


def test_recipients_from_the_environment(
    tmp_path: Path, identity: x25519.Identity, monkeypatch: pytest.MonkeyPatch
) -> None:
    age_key = str(identity.to_public())
    monkeypatch.setenv("SPECTRON_BACKUP__ENCRYPTION__RECIPIENTS", f'["{age_key}"]')
    assert load_config(write_config(tmp_path, "")).encryption.recipients == [age_key]


def test_a_bad_recipient_is_named_by_position(tmp_path: Path, identity: x25519.Identity) -> None:
    good = str(identity.to_public())
    path = write_config(tmp_path, f"encryption: {{recipients: ['{good}', 'age1notakey']}}")
    with pytest.raises(UsageError) as caught:
        load_config(path)
    assert "encryption.recipients[1]" in str(caught.value)
    assert "encryption.recipients[0]" not in str(caught.value)
    # Through the command line: exit 2, one line naming the key.
    result = run_cli("list", "--config", str(path))
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "encryption.recipients[1]" in errors[0], result.stderr


def test_a_private_key_given_as_recipient_is_refused_and_never_repeated(
    tmp_path: Path, identity: x25519.Identity
) -> None:
    secret = str(identity)
    path = write_config(tmp_path, f"encryption: {{recipients: ['{secret}']}}")
    result = run_cli("list", "--config", str(path))
    assert result.returncode == 2
    assert "encryption.recipients[0]" in result.stderr and "private key" in result.stderr
    body = secret.removeprefix("AGE-SECRET-KEY-1")
    assert body not in result.stderr.upper() and body not in result.stdout.upper()


def test_the_identity_is_checked_at_load_and_never_repeated(
    tmp_path: Path, identity: x25519.Identity, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = str(identity)
    keyfile = f"# created: 2026-01-01\n# public key: {identity.to_public()}\n{secret}\n"
    monkeypatch.setenv("SPECTRON_BACKUP__ENCRYPTION__IDENTITY", keyfile)
    config = load_config(write_config(tmp_path, ""))
    assert [str(i.to_public()) for i in config.encryption.identities()] == [
        str(identity.to_public())
    ]
    assert secret not in repr(config) + str(config) + config.model_dump_json()
    # A damaged key (one character changed): the line is named, the key is not shown.
    damaged = secret[:-3] + ("A" if secret[-3] != "A" else "C") + secret[-2:]
    monkeypatch.setenv("SPECTRON_BACKUP__ENCRYPTION__IDENTITY", f"# my key\n{damaged}\n")
    with pytest.raises(UsageError) as caught:
        load_config(write_config(tmp_path, ""))
    message = str(caught.value)
    assert "encryption.identity" in message and "line 2" in message
    assert damaged[16:] not in message and secret[16:] not in message
    # A public key where the private key belongs.
    monkeypatch.setenv("SPECTRON_BACKUP__ENCRYPTION__IDENTITY", str(identity.to_public()))
    with pytest.raises(UsageError, match=r"encryption\.identity: line 1 is a public key"):
        load_config(write_config(tmp_path, ""))


def test_manifests_without_encryption_keys_still_load() -> None:
    """A manifest written before encryption existed: not encrypted, no recipients."""
    old = {
        "format": 1,
        "backup_id": "20260101T000000Z-abcdef",
        "started_at": "2026-01-01T00:00:00.000000Z",
        "finished_at": "2026-01-01T00:00:01.000000Z",
        "tiers": ["daily"],
        "tool_version": "0.1.0",
        "engine_version": "surrealdb-3.2.4",
        "databases": [
            {
                "ns": "spectron",
                "db": "metadata",
                "key": "backups/20260101T000000Z-abcdef/spectron/metadata.surql.zst",
                "bytes": 10,
                "raw_bytes": 20,
                "sha256": "0" * 64,
            }
        ],
    }
    manifest = Manifest.model_validate(old)
    assert manifest.encrypted is False and manifest.recipients == []
    assert manifest.databases[0].encrypted is False


# -- the encrypting writer --------------------------------------------------------------------


class NullSink(io.RawIOBase):
    def writable(self) -> bool:
        return True

    def write(self, data) -> int:  # type: ignore[override]
        return len(data)


def test_encrypting_a_large_stream_keeps_memory_flat_and_decrypts_to_the_same_bytes(
    tmp_path: Path, identity: x25519.Identity
) -> None:
    block = os.urandom(1 << 20)
    plain_sha = hashlib.sha256()
    path = tmp_path / "big.age"
    tracemalloc.start()
    try:
        with path.open("wb") as out, encrypting_writer(out, [identity.to_public()]) as writer:
            for n in range(96):  # 96 MiB, written 128 KiB at a time as zstd would
                piece = bytes([n]) + block[1:]
                plain_sha.update(piece)
                view = memoryview(piece)
                for start in range(0, len(view), 128 << 10):
                    writer.write(view[start : start + (128 << 10)])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 32 << 20, f"peak {peak / 2**20:.0f} MiB while encrypting 96 MiB"
    assert path.stat().st_size > 96 << 20
    assert path.read_bytes()[:22] == b"age-encryption.org/v1\n"
    decrypted = HashingWriter(NullSink())
    with path.open("rb") as source:
        decrypt_to(source, decrypted, [identity])
    assert decrypted.hexdigest() == plain_sha.hexdigest()


def test_a_failing_sink_surfaces_with_its_own_type_and_stops_the_thread(
    identity: x25519.Identity,
) -> None:
    class Cut(io.RawIOBase):
        written = 0

        def writable(self) -> bool:
            return True

        def write(self, data) -> int:  # type: ignore[override]
            self.written += len(data)
            if self.written > 3 << 20:
                raise TransientStoreError("s3://bucket/key: connection reset")
            return len(data)

    threads = threading.active_count()
    block = os.urandom(1 << 20)
    with (
        pytest.raises(TransientStoreError, match="connection reset"),
        encrypting_writer(Cut(), [identity.to_public()]) as writer,
    ):
        for _ in range(64):
            writer.write(block)
    assert threading.active_count() == threads


def test_a_failure_of_the_writer_leaves_no_valid_age_file(identity: x25519.Identity) -> None:
    sink = io.BytesIO()
    with pytest.raises(KeyError), encrypting_writer(sink, [identity.to_public()]) as writer:
        writer.write(b"x" * 100_000)
        raise KeyError("the export failed")
    with pytest.raises((pyrage.DecryptError, OSError)):
        pyrage.decrypt(sink.getvalue(), [identity])


def test_wrong_key_and_tampering_are_told_apart(identity: x25519.Identity) -> None:
    plaintext = os.urandom(300_000)
    sink = io.BytesIO()
    with encrypting_writer(sink, [identity.to_public()]) as writer:
        writer.write(plaintext)
    stored = sink.getvalue()
    other = x25519.Identity.generate()
    with pytest.raises(NoMatchingIdentity):
        decrypt_to(io.BytesIO(stored), io.BytesIO(), [other])
    tampered = bytearray(stored)
    tampered[len(tampered) // 2] ^= 0x01
    with pytest.raises(AgeAuthenticationFailed):
        decrypt_to(io.BytesIO(bytes(tampered)), io.BytesIO(), [identity])
    with pytest.raises(AgeAuthenticationFailed):  # truncated: the last chunk is missing
        decrypt_to(io.BytesIO(stored[:-1000]), io.BytesIO(), [identity])
    out = io.BytesIO()
    decrypt_to(io.BytesIO(stored), out, [other, identity])  # one of several keys is enough
    assert out.getvalue() == plaintext


def test_can_open_compares_public_keys(identity: x25519.Identity, ssh_public_key: str) -> None:
    mine = str(identity.to_public())
    other = str(x25519.Identity.generate().to_public())
    assert can_open([other, mine], [identity]) is True
    assert can_open([other], [identity]) is False
    assert can_open([ssh_public_key], [identity]) is False
    assert parse_identities(f"\n# comment\n{identity}\n")[0].to_public() is not None

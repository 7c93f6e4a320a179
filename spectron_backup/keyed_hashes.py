"""Keyed content hashes for encrypted backups: the manifest says nothing about their records.

A table's content hash (`content_hash`) and a database's schema fingerprint are functions of
the data alone. The manifest is plain JSON that anyone who can read the bucket can read, so
in an encrypted backup they would let someone confirm a guess without any key: a table of one
record has the sha256 of that record's text as its hash. So each encrypted database entry
gets a random 32-byte key of its own, stored in the manifest encrypted with age to the same
recipients as the object (`hash_key`, ASCII-armored), and its hashes are written as
HMAC-SHA256(key, hash). A restore or a drill holds an identity anyway: it opens the key and
compares keyed hashes. Record counts stay readable (the object's size says as much).
`jq -r '.databases[0].hash_key' manifest.json | age -d -i key.txt` prints the 32 raw bytes.

A key that does not open means the manifest was changed; one that opens proves nothing (the
recipients are public keys: anyone can seal a key to them). So the drill's check details,
stored in the clear beside the backup, show no hash of an encrypted entry, keyed or not:
otherwise replacing or removing `hash_key` and waiting for a drill would reveal them.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence

import pyrage

from spectron_backup.encryption import AgeAuthenticationFailed, Identity, Recipient

KEY_BYTES = 32


class HashKeyRefused(AgeAuthenticationFailed):
    """The manifest's `hash_key` does not open with the configured identities (exit status 1,
    a failed drill: check `hash_key_opens`)."""


class HashKey:
    """How a database entry's hashes are written: plain (`PLAIN`), or keyed."""

    __slots__ = ("_key",)

    def __init__(self, key: bytes | None = None) -> None:
        self._key = key

    @classmethod
    def new(cls) -> HashKey:
        return cls(secrets.token_bytes(KEY_BYTES))

    @property
    def keyed(self) -> bool:
        return self._key is not None

    def apply(self, digest: str) -> str:
        """The hash as the manifest holds it (an empty digest stays empty: nothing known)."""
        if self._key is None or not digest:
            return digest
        return hmac.new(self._key, digest.encode("utf-8"), hashlib.sha256).hexdigest()

    def sealed(self, recipients: Sequence[Recipient]) -> str:
        """The key encrypted to `recipients` (ASCII-armored age); "" for plain hashes."""
        if self._key is None:
            return ""
        return pyrage.encrypt(self._key, list(recipients), armored=True).decode("ascii")

    def __repr__(self) -> str:  # never the key itself
        return "HashKey(keyed)" if self.keyed else "HashKey(plain)"


PLAIN = HashKey()


def open_hash_key(sealed: str, identities: Sequence[Identity], where: str) -> HashKey:
    """The key of an entry's hashes (`PLAIN` when it has none: unencrypted, or written before
    hashes were keyed). Called once its object has opened with `identities`, so a key that
    does not open means the manifest was changed: HashKeyRefused."""
    if not sealed:
        return PLAIN
    try:
        key = pyrage.decrypt(sealed.encode("ascii"), list(identities))
    except (pyrage.DecryptError, UnicodeEncodeError) as exc:
        raise HashKeyRefused(
            f"{where}: the manifest's hash_key does not open with the configured identity "
            f"({exc}), though the backup object does: the manifest was changed after the backup"
        ) from None
    if len(key) != KEY_BYTES:
        raise HashKeyRefused(
            f"{where}: the manifest's hash_key holds {len(key)} bytes, not {KEY_BYTES}: "
            "the manifest was changed after the backup"
        )
    return HashKey(key)

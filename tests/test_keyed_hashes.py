"""Keyed hashes of encrypted backups: plain entries compare as before, keyed ones only with
the key, which opens only with an identity of the recipients."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from pyrage import x25519

from spectron_backup.encryption import AgeAuthenticationFailed
from spectron_backup.keyed_hashes import PLAIN, HashKey, open_hash_key

DIGEST = hashlib.sha256(b"{ id: t:1, secret: 'hunter2' }").hexdigest()


def test_plain_hashes_are_the_digests_themselves() -> None:
    assert PLAIN.apply(DIGEST) == DIGEST
    assert PLAIN.sealed([x25519.Identity.generate().to_public()]) == ""
    # an entry without a hash_key (unencrypted, or from an older version) reads as plain
    assert open_hash_key("", [], "ns/db") is PLAIN


def test_a_keyed_hash_is_an_hmac_that_only_the_recipients_can_recompute() -> None:
    alice, bob = x25519.Identity.generate(), x25519.Identity.generate()
    key = HashKey.new()
    keyed = key.apply(DIGEST)
    assert keyed != DIGEST and len(keyed) == 64
    assert key.apply("") == ""  # nothing known stays nothing

    sealed = key.sealed([alice.to_public()])
    assert sealed.startswith("-----BEGIN AGE ENCRYPTED FILE-----")
    opened = open_hash_key(sealed, [alice], "ns/db")
    assert opened.apply(DIGEST) == keyed
    assert HashKey.new().apply(DIGEST) != keyed  # every backup its own key
    raw = hmac.new(opened._key or b"", DIGEST.encode(), hashlib.sha256).hexdigest()
    assert raw == keyed

    with pytest.raises(AgeAuthenticationFailed, match="ns/db: the manifest's hash_key"):
        open_hash_key(sealed, [bob], "ns/db")
    with pytest.raises(AgeAuthenticationFailed, match="hash_key"):
        open_hash_key("-----BEGIN AGE ENCRYPTED FILE-----\nnot age\n", [alice], "ns/db")


def test_the_key_never_shows_in_its_repr() -> None:
    key = HashKey.new()
    assert repr(key) == "HashKey(keyed)" and repr(PLAIN) == "HashKey(plain)"
    assert (key._key or b"").hex() not in repr(key)

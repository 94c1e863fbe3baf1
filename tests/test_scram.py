"""The native SCRAM key derivation gives slixmpp's bytes, and a real login still works with it."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from slixmpp.util.sasl.mechanisms import SCRAM

from agentchat.xmpp import scram


def mechanism(hash_name: str) -> SCRAM:
    mech = object.__new__(SCRAM)  # only the hash matters to Hi()
    mech.hash = getattr(hashlib, hash_name)
    return mech


@pytest.mark.parametrize("hash_name", ["sha1", "sha256", "sha512"])
@settings(max_examples=20, deadline=None)
@given(password=st.text(max_size=40), salt=st.binary(min_size=1, max_size=32), iterations=st.integers(1, 300))
def test_native_hi_is_slixmpps_hi(hash_name: str, password: str, salt: bytes, iterations: int) -> None:
    mech = mechanism(hash_name)
    assert scram._native_hi(mech, password, salt, iterations) == scram.python_hi(mech, password, salt, iterations)


def test_the_service_uses_the_native_hi() -> None:
    import agentchat.xmpp.session  # noqa: F401 - installs it

    assert SCRAM.Hi is scram._native_hi


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=40) | st.binary(max_size=20))
def test_the_quick_saslprep_is_saslprep(text: str | bytes) -> None:
    try:
        expected = scram._slow_saslprep(text)
    except Exception as exc:  # noqa: BLE001 - SASLprep refuses some input: so must the quick one
        with pytest.raises(type(exc)):
            scram._quick_saslprep(text)
        return
    assert scram._quick_saslprep(text) == expected


def test_a_remembered_salted_password_spares_the_derivation() -> None:
    mech = mechanism("sha1")
    salt, iterations = b"0123456789abcdef", 10_000
    known = scram.SaltedPassword("sha1", salt, iterations, b"k" * 20)
    scram.remember("a-password-of-ours", known)
    assert scram._native_hi(mech, "a-password-of-ours", salt, iterations) == b"k" * 20
    assert scram.SaltedPassword.decode(known.encode()) == known
    # Another salt (the password was set anew): derived again, and that is what is remembered next.
    fresh = scram._native_hi(mech, "a-password-of-ours", b"another salt", iterations)
    assert fresh == hashlib.pbkdf2_hmac("sha1", b"a-password-of-ours", b"another salt", iterations)
    assert scram.derived("a-password-of-ours") == scram.SaltedPassword("sha1", b"another salt", iterations, fresh)
    scram.forget("a-password-of-ours")
    assert scram.derived("a-password-of-ours") is None

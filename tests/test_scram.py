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

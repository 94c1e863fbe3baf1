"""SCRAM's key derivation in C: slixmpp computes it in Python, 4096 HMACs per login.

That is ~19 ms of the event loop's CPU per login here (every bot logs in at start-up: 500 agents
restored spent ~10 s in it). Hi() is PBKDF2-HMAC with the hash's own output length (RFC 5802 §2.2),
which hashlib.pbkdf2_hmac computes natively; the result is the same bytes
(tests/test_scram.py checks it against slixmpp's own loop).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import cast

from slixmpp.util import bytes as to_bytes
from slixmpp.util.sasl.mechanisms import SCRAM

_python_hi = cast(Callable[[SCRAM, str, bytes, int], bytes], SCRAM.__dict__["Hi"])


def _native_hi(self: SCRAM, text: str, salt: bytes, iterations: int) -> bytes:
    digest = cast(Callable[[], "hashlib._Hash"], self.hash)  # set by SCRAM.setup() from the mechanism's name
    return hashlib.pbkdf2_hmac(digest().name, to_bytes(text), salt, iterations)


def install() -> None:
    """Use the native Hi() in every SCRAM login of this process (idempotent)."""
    SCRAM.Hi = _native_hi  # type: ignore[method-assign]


def python_hi(mechanism: SCRAM, text: str, salt: bytes, iterations: int) -> bytes:
    """slixmpp's own implementation, for the comparison in the tests."""
    return _python_hi(mechanism, text, salt, iterations)

"""SCRAM's key derivation in C: slixmpp computes it in Python, 4096 HMACs per login.

That is ~19 ms of the event loop's CPU per login here (every bot logs in at start-up: 500 agents
restored spent ~10 s in it). Hi() is PBKDF2-HMAC with the hash's own output length (RFC 5802 §2.2),
which hashlib.pbkdf2_hmac computes natively; the result is the same bytes
(tests/test_scram.py checks it against slixmpp's own loop).

Even in C, Prosody's 10,000 iterations cost ~7 ms per login, on the event loop: 7 s for 1000 agents
logging in at a restart. A client may keep the salted password instead of deriving it at every login
(RFC 5802 §5.1), so each derivation is remembered (``derived``) and a caller may hand one back
(``remember``), keyed by password, salt and iteration count: a changed salt (a new password) is
derived afresh.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

from slixmpp.util import bytes as to_bytes
from slixmpp.util.sasl.mechanisms import SCRAM
from slixmpp.util.sasl import client as sasl_client
from slixmpp.util.sasl.client import saslprep

_slow_saslprep = saslprep

_python_hi = cast(Callable[[SCRAM, str, bytes, int], bytes], SCRAM.__dict__["Hi"])


@dataclass(frozen=True)
class SaltedPassword:
    """Hi(password, salt, iterations) for one hash, as a login derived it (a secret: it logs in)."""

    hash_name: str
    salt: bytes
    iterations: int
    value: bytes

    def encode(self) -> str:
        b64 = base64.b64encode
        return f"{self.hash_name}:{self.iterations}:{b64(self.salt).decode()}:{b64(self.value).decode()}"

    @classmethod
    def decode(cls, text: str) -> SaltedPassword:
        """ValueError if ``text`` is not what ``encode`` writes."""
        hash_name, iterations, salt, value = text.split(":")
        return cls(hash_name, base64.b64decode(salt, validate=True), int(iterations), base64.b64decode(value, validate=True))


# password (as SASL prepared it) -> its last derivation (a password is one account's: agents' are random).
_derived: dict[bytes, SaltedPassword] = {}


def _key(password: str) -> bytes:
    if password.isascii() and password.isprintable():
        return password.encode()  # what SASLprep leaves unchanged (agents' passwords): its Python costs ~0.6 ms
    return to_bytes(saslprep(password))


def remember(password: str, salted: SaltedPassword) -> None:
    """Use ``salted`` when a login of this process meets the same password, salt and iterations."""
    _derived[_key(password)] = salted


def derived(password: str) -> SaltedPassword | None:
    """What the last login with this password derived (or was handed by ``remember``)."""
    return _derived.get(_key(password))


def forget(password: str) -> None:
    _derived.pop(_key(password), None)


def _native_hi(self: SCRAM, text: str, salt: bytes, iterations: int) -> bytes:
    digest = cast(Callable[[], "hashlib._Hash"], self.hash)  # set by SCRAM.setup() from the mechanism's name
    hash_name, password = digest().name, to_bytes(text)  # slixmpp hands the password SASL-prepared, as bytes
    known = _derived.get(password)
    if known is not None and (known.hash_name, known.salt, known.iterations) == (hash_name, salt, iterations):
        return known.value
    value = hashlib.pbkdf2_hmac(hash_name, password, salt, iterations)
    _derived[password] = SaltedPassword(hash_name, salt, iterations, value)
    return value


def _quick_saslprep(text: str | bytes) -> str:
    """SASLprep (RFC 4013) as slixmpp's, without its Python stringprep for printable ASCII text, which it leaves
    unchanged: the service's account names and passwords. Three per login, ~0.5 ms of the event loop."""
    if isinstance(text, str) and text.isascii() and text.isprintable():
        return text
    return cast(str, _slow_saslprep(text))


def install() -> None:
    """Use the native Hi() and the quick SASLprep in every SCRAM login of this process (idempotent)."""
    SCRAM.Hi = _native_hi  # type: ignore[method-assign]
    sasl_client.saslprep = _quick_saslprep


def python_hi(mechanism: SCRAM, text: str, salt: bytes, iterations: int) -> bytes:
    """slixmpp's own implementation, for the comparison in the tests."""
    return _python_hi(mechanism, text, salt, iterations)


class ScramLoginCache:
    """The salted passwords of this process's logins as text, to keep with the passwords (a secret each)."""

    def seed(self, password: str, cached: str) -> None:
        try:
            remember(password, SaltedPassword.decode(cached))
        except ValueError:
            pass  # unreadable: the next login derives it again

    def export(self, password: str) -> str | None:
        salted = derived(password)
        return salted.encode() if salted is not None else None

"""SecretFilter: every registered secret is masked wherever it sits in a record, however many
there are; an unregistered one no longer is."""

from __future__ import annotations

import logging
import secrets as random_secrets
import sys

from hypothesis import given
from hypothesis import strategies as st

from agentchat.logs import (
    MASK,
    SecretFilter,
    register_secret,
    secrets,
    unregister_secret,
)


def record(msg: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord("agentchat.test", logging.INFO, __file__, 1, msg, args, None)


def test_a_secret_in_the_arguments_is_masked() -> None:
    scrubber = SecretFilter()
    scrubber.add("hunter2-hunter2")
    entry = record("login %s with %s", "alice", "hunter2-hunter2")
    assert scrubber.filter(entry)
    assert entry.getMessage() == f"login alice with {MASK}"


def test_a_secret_in_a_traceback_is_masked() -> None:
    scrubber = SecretFilter()
    scrubber.add("token-0123456789")
    try:
        raise ValueError("bad token token-0123456789")
    except ValueError:
        entry = logging.LogRecord("agentchat.test", logging.ERROR, __file__, 1, "failed", None, sys.exc_info())
    scrubber.filter(entry)
    assert entry.exc_text is not None and "token-0123456789" not in entry.exc_text and MASK in entry.exc_text


def test_short_strings_are_not_secrets() -> None:
    scrubber = SecretFilter()
    scrubber.add("abc")
    scrubber.add("")
    scrubber.add(None)
    assert scrubber.scrub("abc abc") == "abc abc"


def test_a_secret_that_contains_another_is_masked_whole() -> None:
    scrubber = SecretFilter()
    scrubber.add("swordfish")
    scrubber.add("swordfish-and-chips")
    assert scrubber.scrub("x swordfish-and-chips y swordfish") == f"x {MASK} y {MASK}"


def test_a_thousand_secrets_are_all_masked_and_ordinary_text_is_untouched() -> None:
    scrubber = SecretFilter()
    tokens = [random_secrets.token_urlsafe(24) for _ in range(1000)]
    for token in tokens:
        scrubber.add(token)
    scrubber.add("short1")  # the shortest secret decides how closely a text is looked at
    plain = "agent brave-otter: turn done in 3.2 s, session 1234-5678"
    assert scrubber.scrub(plain) == plain
    text = f"{tokens[0]} {plain} {tokens[500]}{tokens[999]}short1"
    assert scrubber.scrub(text) == f"{MASK} {plain} {MASK}{MASK}{MASK}"


def test_after_unregistering_only_the_others_are_masked() -> None:
    scrubber = SecretFilter()
    for secret in ("first-secret", "second-secret", "tiny42"):
        scrubber.add(secret)
    scrubber.remove("tiny42")
    scrubber.remove("first-secret")
    scrubber.remove("never-registered")
    assert scrubber.scrub("first-secret second-secret tiny42") == f"first-secret {MASK} tiny42"
    scrubber.add("first-secret")
    assert scrubber.scrub("first-secret second-secret") == f"{MASK} {MASK}"
    scrubber.remove("first-secret")
    scrubber.remove("second-secret")
    assert scrubber.scrub("first-secret second-secret") == "first-secret second-secret"


def test_register_and_unregister_reach_the_service_filter() -> None:
    secret = random_secrets.token_urlsafe(16)
    register_secret(secret)
    try:
        assert secrets.scrub(f"key={secret}") == f"key={MASK}"
    finally:
        unregister_secret(secret)
    assert secrets.scrub(f"key={secret}") == f"key={secret}"


# A small alphabet makes secrets overlap, repeat and touch each other in the text.
_secret = st.text("abc-", min_size=6, max_size=14)


@given(
    registered=st.lists(_secret, min_size=1, max_size=6, unique=True),
    removed=st.sets(st.integers(0, 5), max_size=3),
    pieces=st.lists(st.one_of(st.text("abc- xy", max_size=9), st.integers(0, 5)), max_size=12),
)
def test_no_registered_secret_survives_and_nothing_else_changes(
    registered: list[str], removed: set[int], pieces: list[str | int]
) -> None:
    scrubber = SecretFilter()
    for secret in registered:
        scrubber.add(secret)
    for index in removed:
        if index < len(registered):
            scrubber.remove(registered[index])
    kept = [s for i, s in enumerate(registered) if i not in removed]
    text = "".join(p if isinstance(p, str) else registered[p % len(registered)] for p in pieces)
    scrubbed = scrubber.scrub(text)
    assert not any(secret in scrubbed for secret in kept)
    if not any(secret in text for secret in kept):
        assert scrubbed == text

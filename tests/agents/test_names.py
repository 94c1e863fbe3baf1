"""Agent names: friendly, unique, valid as XMPP localparts."""

from __future__ import annotations

import random
import re

import pytest

from agentchat.agents.names import ADJECTIVES, ANIMALS, RESERVED_NAMES, new_agent_name
from agentchat.errors import AgentChatError

NAME = re.compile(r"[a-z]+-[a-z]+(-[0-9]+)?")
# RFC 7622 forbids these in a localpart; uppercase would be folded by the server.
FORBIDDEN_IN_LOCALPART = set("\"&'/:<>@ ") | set("ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def test_word_lists_are_long_unique_and_plain_ascii() -> None:
    for words in (ADJECTIVES, ANIMALS):
        assert len(words) >= 100
        assert len(set(words)) == len(words)
        assert all(re.fullmatch(r"[a-z]+", word) for word in words)


def test_a_name_looks_like_swift_fox() -> None:
    name = new_agent_name(set(), random.Random(7))
    assert NAME.fullmatch(name)
    adjective, animal = name.split("-")
    assert adjective in ADJECTIVES and animal in ANIMALS
    assert not set(name) & FORBIDDEN_IN_LOCALPART


def test_the_same_seed_gives_the_same_name() -> None:
    assert new_agent_name(set(), random.Random(42)) == new_agent_name(set(), random.Random(42))


def test_names_never_repeat() -> None:
    rng = random.Random(1)
    taken: set[str] = set()
    for _ in range(2000):
        name = new_agent_name(taken, rng)
        assert name not in taken
        taken.add(name)


def test_when_plain_names_are_all_taken_a_number_is_added() -> None:
    every_plain_name = {f"{adjective}-{animal}" for adjective in ADJECTIVES for animal in ANIMALS}
    name = new_agent_name(every_plain_name, random.Random(3))
    assert re.fullmatch(r"[a-z]+-[a-z]+-[0-9]+", name)
    assert name.endswith("-2")
    taken = every_plain_name | {name}
    second = new_agent_name(taken, random.Random(3))
    assert second not in taken and second.endswith("-3")


class Everything:
    """A registry in which every name is taken."""

    def __contains__(self, name: object) -> bool:
        return True


def test_no_free_name_at_all_is_an_error_not_a_hang() -> None:
    with pytest.raises(AgentChatError, match="No free agent name"):
        new_agent_name(Everything(), random.Random(0))


def test_the_service_accounts_are_reserved() -> None:
    assert {"manager", "admin"} <= RESERVED_NAMES


def test_reserved_names_are_never_returned(monkeypatch: pytest.MonkeyPatch) -> None:
    # With one possible plain name, and that one reserved, the numbered fallback is used.
    monkeypatch.setattr("agentchat.agents.names.ADJECTIVES", ("manager",))
    monkeypatch.setattr("agentchat.agents.names.ANIMALS", ("bot",))
    monkeypatch.setattr("agentchat.agents.names.RESERVED_NAMES", frozenset({"manager-bot"}))
    assert new_agent_name(set(), random.Random(0)) == "manager-bot-2"

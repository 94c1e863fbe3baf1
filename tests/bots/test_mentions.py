"""Whom a room message is for."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from agentchat.bots.room.mentions import mentioned

AGENTS = ("swift-fox", "keen-hare", "fox")


def test_at_mentions_anywhere_in_order() -> None:
    assert mentioned("ask @keen-hare, then @swift-fox", AGENTS) == ["keen-hare", "swift-fox"]


def test_a_name_and_a_colon_at_the_start() -> None:
    assert mentioned("swift-fox: run the tests", AGENTS) == ["swift-fox"]
    assert mentioned("Swift-Fox, please", AGENTS) == ["swift-fox"]
    assert mentioned("tell swift-fox: later", AGENTS) == []  # not at the start: just a word


def test_a_nick_inside_a_longer_one_is_not_a_mention() -> None:
    assert mentioned("@swift-foxes are fast", AGENTS) == []
    assert mentioned("@fox!", AGENTS) == ["fox"]
    assert mentioned("@swift-fox", AGENTS) == ["swift-fox"]  # not "fox" too


def test_references_come_first_and_unknown_nicks_are_ignored() -> None:
    assert mentioned("hey", AGENTS, references=("keen-hare", "someone-else")) == ["keen-hare"]


def test_no_mention_is_no_one() -> None:
    assert mentioned("the build is red", AGENTS) == []


@given(st.text())
def test_never_raises_and_only_known_nicks(text: str) -> None:
    assert set(mentioned(text, AGENTS)) <= set(AGENTS)

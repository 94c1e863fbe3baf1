"""What recognises a message that arrives a second time (agentchat.chat.dedup)."""

from __future__ import annotations

from datetime import UTC, datetime

from agentchat.chat.dedup import identity_of
from agentchat.chat.port import Inbound


def message(**fields: object) -> Inbound:
    values: dict[str, object] = {"sender": "alice@x", "text": "yes", "raw_body": "yes"}
    values.update(fields)
    return Inbound(**values)  # type: ignore[arg-type]


def test_a_server_stanza_id_and_a_client_id_both_identify_it() -> None:
    identity = identity_of(message(stanza_id="s1", origin_id="o1", message_id="m1"))
    assert len(identity.keys) == 2
    # The origin-id wins over the id attribute: a client resending keeps its origin-id.
    assert identity.keys == identity_of(message(stanza_id="s1", origin_id="o1", message_id="other")).keys


def test_a_reused_id_with_another_text_is_another_message() -> None:
    first = identity_of(message(message_id="1", raw_body="first"))
    second = identity_of(message(message_id="1", raw_body="second"))
    assert set(first.keys).isdisjoint(second.keys)


def test_the_same_id_from_two_people_is_two_messages() -> None:
    assert set(identity_of(message(message_id="1")).keys).isdisjoint(identity_of(message(sender="bob@x", message_id="1")).keys)


def test_an_id_less_message_is_matched_only_as_a_resent_copy() -> None:
    live = identity_of(message())
    assert live.id_less and live.resent_at is None
    stamp = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)
    resent = identity_of(message(resent_at=stamp))
    assert resent.text_key == live.text_key and resent.resent_at == stamp.timestamp()

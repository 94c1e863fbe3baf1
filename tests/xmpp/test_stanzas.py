"""Stanza ↔ chat port, on stanzas as clients send them (Gajim/Dino replies, Conversations' quotes,
corrections, reactions, invitations) and as Prosody hands them back after a lost session."""

from __future__ import annotations

from datetime import UTC, datetime
from xml.etree import ElementTree as ET

import pytest
import slixmpp
from slixmpp.stanza import Message

from agentchat.chat.port import ChatState, MessageKind, Outbound
from agentchat.xmpp.stanzas import to_inbound, to_message

OWN = "swift-fox@localhost"


@pytest.fixture
def client() -> slixmpp.ClientXMPP:
    xmpp = slixmpp.ClientXMPP(f"{OWN}/agentchat", "pw")
    for plugin in ("xep_0085", "xep_0184", "xep_0308", "xep_0359", "xep_0461", "xep_0444"):
        xmpp.register_plugin(plugin)
    return xmpp


def stanza(client: slixmpp.ClientXMPP, xml: str) -> Message:
    return Message(client, ET.fromstring(xml))


def test_a_reply_with_its_fallback_gives_the_answer_and_the_quote(client: slixmpp.ClientXMPP) -> None:
    quoted = "> swift-fox:\n> 🔐 Permission #cd7a — Bash\n"
    body = quoted + "yes"
    msg = stanza(client, f"""
        <message xmlns="jabber:client" from="Alice@localhost/phone" to="{OWN}" type="chat" id="m1">
          <body>{body}</body>
          <reply xmlns="urn:xmpp:reply:0" to="{OWN}/agentchat" id="prompt-1"/>
          <fallback xmlns="urn:xmpp:fallback:0" for="urn:xmpp:reply:0"><body start="0" end="{len(quoted)}"/></fallback>
          <origin-id xmlns="urn:xmpp:sid:0" id="o1"/>
        </message>""")
    inbound = to_inbound(msg, OWN)
    assert inbound is not None
    assert inbound.sender == "alice@localhost" and inbound.resource == "phone"
    assert inbound.text == "yes" and inbound.raw_body == body and inbound.quoted == quoted
    assert inbound.reply_to == "prompt-1" and inbound.origin_id == "o1" and inbound.message_id == "m1"


def test_a_fallback_without_a_range_is_the_whole_body(client: slixmpp.ClientXMPP) -> None:
    msg = stanza(client, f"""
        <message xmlns="jabber:client" from="alice@localhost/a" to="{OWN}" type="chat">
          <body>&gt; old</body><reply xmlns="urn:xmpp:reply:0" id="x"/>
          <fallback xmlns="urn:xmpp:fallback:0" for="urn:xmpp:reply:0"/>
        </message>""")
    inbound = to_inbound(msg, OWN)
    assert inbound is not None and inbound.text == "" and inbound.quoted == "> old"


def test_a_fallback_for_something_else_is_left_in_the_text(client: slixmpp.ClientXMPP) -> None:
    msg = stanza(client, f"""
        <message xmlns="jabber:client" from="alice@localhost/a" to="{OWN}" type="chat">
          <body>hello there</body>
          <fallback xmlns="urn:xmpp:fallback:0" for="urn:xmpp:other:0"><body start="0" end="5"/></fallback>
        </message>""")
    inbound = to_inbound(msg, OWN)
    assert inbound is not None and inbound.text == "hello there" and inbound.reply_to is None


def test_a_copy_the_server_resends_is_marked_with_its_first_sending(client: slixmpp.ClientXMPP) -> None:
    # mod_smacks stamps what it queues for us with our own address; mod_offline adds its own, from the host.
    msg = stanza(client, f"""
        <message xmlns="jabber:client" from="alice@localhost/a" to="{OWN}" type="chat">
          <body>again</body>
          <delay xmlns="urn:xmpp:delay" from="{OWN}" stamp="2026-12-01T12:00:00Z"/>
          <delay xmlns="urn:xmpp:delay" from="localhost" stamp="2026-12-01T12:00:05Z"/>
          <stanza-id xmlns="urn:xmpp:sid:0" by="{OWN}" id="srv-1"/>
        </message>""")
    inbound = to_inbound(msg, OWN)
    assert inbound is not None
    assert inbound.resent_at == datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)
    assert inbound.delayed_at == datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)
    assert inbound.stanza_id == "srv-1"


def test_offline_storage_alone_is_not_a_resent_copy_and_a_foreign_stanza_id_is_ignored(client: slixmpp.ClientXMPP) -> None:
    msg = stanza(client, f"""
        <message xmlns="jabber:client" from="alice@localhost/a" to="{OWN}" type="chat">
          <body>written while away</body>
          <delay xmlns="urn:xmpp:delay" from="localhost" stamp="2026-12-01T12:00:05Z"/>
          <stanza-id xmlns="urn:xmpp:sid:0" by="alice@localhost" id="forged"/>
        </message>""")
    inbound = to_inbound(msg, OWN)
    assert inbound is not None and inbound.resent_at is None and inbound.delayed_at is not None
    assert inbound.stanza_id is None


def test_corrections_reactions_and_uploads(client: slixmpp.ClientXMPP) -> None:
    correction = to_inbound(stanza(client, f"""
        <message xmlns="jabber:client" from="alice@localhost/a" to="{OWN}" type="chat" id="m2">
          <body>fixed text</body><replace xmlns="urn:xmpp:message-correct:0" id="m1"/>
        </message>"""), OWN)
    assert correction is not None and correction.replaces == "m1" and correction.text == "fixed text"
    reaction = to_inbound(stanza(client, f"""
        <message xmlns="jabber:client" from="alice@localhost/a" to="{OWN}" type="chat">
          <reactions xmlns="urn:xmpp:reactions:0" id="prompt-1"><reaction>👍</reaction></reactions>
          <store xmlns="urn:xmpp:hints"/>
        </message>"""), OWN)
    assert reaction is not None and reaction.reaction is not None
    assert reaction.reaction.target_id == "prompt-1" and reaction.reaction.emojis == {"👍"}
    assert not reaction.durable
    upload = to_inbound(stanza(client, f"""
        <message xmlns="jabber:client" from="alice@localhost/a" to="{OWN}" type="chat">
          <body>https://upload.localhost/x/shot.png</body>
          <x xmlns="jabber:x:oob"><url>https://upload.localhost/x/shot.png</url></x>
        </message>"""), OWN)
    assert upload is not None and [a.url for a in upload.attachments] == ["https://upload.localhost/x/shot.png"]


def test_invitations_direct_and_mediated(client: slixmpp.ClientXMPP) -> None:
    direct = to_inbound(stanza(client, f"""
        <message xmlns="jabber:client" from="alice@localhost/a" to="{OWN}">
          <body>join us</body><x xmlns="jabber:x:conference" jid="team@rooms.localhost" reason="standup"/>
        </message>"""), OWN)
    assert direct is not None and direct.invite is not None
    assert (direct.invite.room, direct.invite.reason) == ("team@rooms.localhost", "standup")
    mediated = to_inbound(stanza(client, f"""
        <message xmlns="jabber:client" from="team@rooms.localhost" to="{OWN}">
          <x xmlns="http://jabber.org/protocol/muc#user"><invite from="alice@localhost"><reason>hi</reason></invite></x>
        </message>"""), OWN)
    assert mediated is not None and mediated.invite is not None and mediated.invite.room == "team@rooms.localhost"


def test_chat_states_receipts_and_errors_bring_nothing(client: slixmpp.ClientXMPP) -> None:
    for xml in (
        f'<message xmlns="jabber:client" from="alice@localhost/a" to="{OWN}" type="chat"><composing xmlns="http://jabber.org/protocol/chatstates"/></message>',
        f'<message xmlns="jabber:client" from="alice@localhost/a" to="{OWN}"><received xmlns="urn:xmpp:receipts" id="x"/></message>',
        f'<message xmlns="jabber:client" from="alice@localhost" to="{OWN}" type="error"><body>bounced</body></message>',
    ):
        assert to_inbound(stanza(client, xml), OWN) is None


def test_a_groupchat_message_says_so(client: slixmpp.ClientXMPP) -> None:
    inbound = to_inbound(stanza(client, f"""
        <message xmlns="jabber:client" from="team@rooms.localhost/alice" to="{OWN}" type="groupchat">
          <body>@swift-fox hi</body></message>"""), OWN)
    assert inbound is not None and inbound.kind is MessageKind.GROUPCHAT


def test_an_outbound_message_carries_its_id_state_receipt_and_correction(client: slixmpp.ClientXMPP) -> None:
    msg = to_message(client, Outbound("alice@localhost", "🔐 Permission #a1b2", receipt=True, replaces="old-1"), "new-1")
    xml = ET.tostring(msg.xml, encoding="unicode")
    assert msg["id"] == "new-1" and msg["origin_id"]["id"] == "new-1"
    assert msg["body"] == "🔐 Permission #a1b2" and msg["type"] == "chat"
    assert "urn:xmpp:receipts" in xml and msg["replace"]["id"] == "old-1"
    assert msg["chat_state"] == ChatState.ACTIVE.value
    quiet = to_message(client, Outbound("alice@localhost", "x", chat_state=None), "n2")
    assert "chatstates" not in ET.tostring(quiet.xml, encoding="unicode")


def test_a_status_line_is_marked_not_for_keeping_both_ways(client: slixmpp.ClientXMPP) -> None:
    status = Outbound("api-team@rooms.localhost", "🟡 swift-fox: working", MessageKind.GROUPCHAT, transient=True)
    xml = ET.tostring(to_message(client, status, "s1").xml, encoding="unicode")
    assert "urn:xmpp:hints" in xml and "no-permanent-store" in xml
    plain = ET.tostring(to_message(client, Outbound("alice@localhost", "hi"), "s2").xml, encoding="unicode")
    assert "urn:xmpp:hints" not in plain
    for hint in ("no-store", "no-permanent-store"):
        inbound = to_inbound(stanza(client, f"""
            <message xmlns="jabber:client" from="api-team@rooms.localhost/swift-fox" to="{OWN}" type="groupchat" id="x">
              <body>🟡 swift-fox: working</body><{hint} xmlns="urn:xmpp:hints"/>
            </message>"""), OWN)
        assert inbound is not None and inbound.transient
    said = to_inbound(stanza(client, f'<message xmlns="jabber:client" from="alice@localhost/a" to="{OWN}" type="chat"><body>hi</body></message>'), OWN)
    assert said is not None and not said.transient

"""Messages as real clients send them, beyond a plain body: without an id or with a reused one (XEP-0359
origin-id or not), a XEP-0461 reply with its XEP-0428 fallback (Gajim, Dino), a Conversations-style quote, a
XEP-0308 correction, a XEP-0249 room invitation."""

from __future__ import annotations

from xml.etree import ElementTree as ET

from tests.harness.clients import ReceivedMessage, UserClient

NS_REPLY = "urn:xmpp:reply:0"
NS_FALLBACK = "urn:xmpp:fallback:0"


def send(
    client: UserClient,
    to: str,
    body: str,
    *,
    message_id: str | None = None,
    origin_id: str | None = None,
    replaces: str | None = None,
    invite_room: str | None = None,
) -> None:
    """A chat message; ``message_id=None`` sends none at all (as some clients do)."""
    message = client.xmpp.make_message(mto=to, mbody=body, mtype="chat")
    if message_id is not None:
        message["id"] = message_id
    else:
        del message["id"]
    if origin_id is not None:
        element = ET.SubElement(message.xml, "{urn:xmpp:sid:0}origin-id")
        element.set("id", origin_id)
    if replaces is not None:
        element = ET.SubElement(message.xml, "{urn:xmpp:message-correct:0}replace")
        element.set("id", replaces)
    if invite_room is not None:
        element = ET.SubElement(message.xml, "{jabber:x:conference}x")
        element.set("jid", invite_room)
    message.send()


def send_reply(client: UserClient, to: str, original: ReceivedMessage, answer: str, *, nickname: str | None = None,
               groupchat: bool = False) -> str:
    """A XEP-0461 reply to ``original``: its text quoted as a XEP-0428 fallback, then the answer (as Gajim)."""
    quoted = "\n".join("> " + line for line in original.body.splitlines()) + "\n"
    if nickname:
        quoted = f"> {nickname}:\n" + quoted
    message = client.xmpp.make_message(mto=to, mbody=quoted + answer, mtype="groupchat" if groupchat else "chat")
    message_id = client.xmpp.new_id()
    message["id"] = message_id
    reply = ET.SubElement(message.xml, f"{{{NS_REPLY}}}reply")
    reply.set("to", original.from_)
    reply.set("id", original.id)
    fallback = ET.SubElement(message.xml, f"{{{NS_FALLBACK}}}fallback")
    fallback.set("for", NS_REPLY)
    span = ET.SubElement(fallback, f"{{{NS_FALLBACK}}}body")
    span.set("start", "0")
    span.set("end", str(len(quoted)))
    message.send()
    return message_id


def send_quote(client: UserClient, to: str, original: ReceivedMessage, answer: str) -> None:
    """What Conversations' "Quote" sends: the original's lines behind "> ", then the answer, no XEP markers."""
    quoted = "\n".join("> " + line for line in original.body.splitlines())
    send(client, to, f"{quoted}\n{answer}", message_id=client.xmpp.new_id())


def send_reaction(client: UserClient, to: str, target_id: str, emojis: list[str], *, groupchat: bool = False) -> None:
    """XEP-0444 reactions to one message (in a room: to its stanza-id, as clients do there)."""
    message = client.xmpp.make_message(mto=to, mtype="groupchat" if groupchat else "chat")
    reactions = ET.SubElement(message.xml, "{urn:xmpp:reactions:0}reactions")
    reactions.set("id", target_id)
    for emoji in emojis:
        ET.SubElement(reactions, "{urn:xmpp:reactions:0}reaction").text = emoji
    message.send()

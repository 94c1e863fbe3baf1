"""Stanza ↔ chat port: what an inbound ``<message/>`` means, and the ``<message/>`` an ``Outbound`` becomes.

Inbound stanzas are read from their XML, so the meaning does not depend on which slixmpp plugins happen to be
registered. The XEPs involved:

* XEP-0359 (unique ids): ``origin-id`` from the sender's client; ``stanza-id`` only when our own server
  assigned it (``by`` is our account), else anyone could forge it.
* XEP-0203 (delayed delivery): every ``<delay/>``; one stamped by our own account is the mark of a copy
  the server resends (mod_smacks stamps what it queues for us), see ``Inbound.resent_at``.
* XEP-0461 (replies) with XEP-0428 (fallback): the id replied to, and the quoted fallback cut out of the body.
* XEP-0308 (corrections), XEP-0444 (reactions), XEP-0066 (out-of-band URLs, as uploads arrive),
  XEP-0249 / XEP-0045 (room invitations, direct or mediated).
"""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from datetime import datetime

import slixmpp
from slixmpp.jid import JID, InvalidJID
from slixmpp.plugins import xep_0082
from slixmpp.stanza import Message

from agentchat.chat.port import Attachment, Inbound, Invite, MessageKind, Outbound, Reaction

log = logging.getLogger(__name__)

NS_CLIENT = "jabber:client"
NS_SID = "urn:xmpp:sid:0"
NS_DELAY = "urn:xmpp:delay"
NS_REPLY = "urn:xmpp:reply:0"
NS_FALLBACK = "urn:xmpp:fallback:0"
NS_CORRECT = "urn:xmpp:message-correct:0"
NS_REACTIONS = "urn:xmpp:reactions:0"
NS_OOB = "jabber:x:oob"
NS_CONFERENCE = "jabber:x:conference"
NS_MUC_USER = "http://jabber.org/protocol/muc#user"
NS_REFERENCE = "urn:xmpp:reference:0"
NS_HINTS = "urn:xmpp:hints"


def _q(namespace: str, name: str) -> str:
    return f"{{{namespace}}}{name}"


def to_inbound(msg: Message, own_jid: str) -> Inbound | None:
    """What ``msg`` brings, or None when it brings nothing to act on (chat states, receipts, errors)."""
    kind = msg["type"]
    if kind == "error":
        return None
    xml = msg.xml
    raw_body = _text(xml.find(_q(NS_CLIENT, "body")))
    reaction = _reaction(xml)
    invite = _invite(xml)
    if not raw_body and reaction is None and invite is None:
        return None
    own = own_jid.lower()
    sender = JID(msg["from"])
    room = sender.bare.lower() if kind == "groupchat" else None
    text, quoted = _strip_reply_fallback(xml, raw_body)
    delays = [(element.get("from", "").lower(), element.get("stamp")) for element in xml.findall(_q(NS_DELAY, "delay"))]
    resent_at = next((_stamp(stamp) for source, stamp in delays if source == own), None)
    delayed_at = next((_stamp(stamp) for _, stamp in delays), None)
    # A stanza-id is ours to trust when our own server (for a chat) or the room (for a room message) set it.
    trusted = {own} if room is None else {room}
    return Inbound(
        sender=sender.bare.lower(),
        resource=sender.resource,
        text=text,
        kind=MessageKind.GROUPCHAT if kind == "groupchat" else MessageKind.CHAT,
        raw_body=raw_body,
        quoted=quoted,
        message_id=msg["id"] or None,
        origin_id=_attribute(xml.find(_q(NS_SID, "origin-id")), "id"),
        stanza_id=next(
            (element.get("id") for element in xml.findall(_q(NS_SID, "stanza-id"))
             if element.get("by", "").lower() in trusted and element.get("id")),
            None,
        ),
        reply_to=_attribute(xml.find(_q(NS_REPLY, "reply")), "id"),
        replaces=_attribute(xml.find(_q(NS_CORRECT, "replace")), "id"),
        reaction=reaction,
        attachments=tuple(
            Attachment(url, _text(element.find(_q(NS_OOB, "desc"))))
            for element in xml.findall(_q(NS_OOB, "x"))
            if (url := _text(element.find(_q(NS_OOB, "url"))).strip())
        ),
        invite=invite,
        delayed_at=delayed_at,
        resent_at=resent_at,
        nick=sender.resource if room is not None else "",
        mentions=_mentions(xml, room),
        transient=any(xml.find(_q(NS_HINTS, hint)) is not None for hint in ("no-store", "no-permanent-store")),
    )


def to_message(client: slixmpp.ClientXMPP, message: Outbound, message_id: str) -> Message:
    """The stanza for ``message`` (id, chat state, receipt request, correction, origin-id)."""
    stanza = client.make_message(mto=message.to, mbody=message.text, mtype=message.kind.value)
    stanza["id"] = message_id
    stanza["origin_id"]["id"] = message_id
    if message.chat_state is not None:
        stanza["chat_state"] = message.chat_state.value
    if message.receipt:
        stanza["request_receipt"] = True
    if message.replaces:
        stanza["replace"]["id"] = message.replaces
    if message.attachment_url:
        oob = ET.SubElement(stanza.xml, _q(NS_OOB, "x"))
        ET.SubElement(oob, _q(NS_OOB, "url")).text = message.attachment_url
    if message.transient:
        ET.SubElement(stanza.xml, _q(NS_HINTS, "no-permanent-store"))
    return stanza


def _text(element: object) -> str:
    text = getattr(element, "text", None)
    return text or ""


def _attribute(element: object, name: str) -> str | None:
    if element is None:
        return None
    value = element.get(name)  # type: ignore[attr-defined]
    return value or None


def _stamp(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return xep_0082.parse(value)
    except (ValueError, TypeError):
        log.debug("unreadable delay stamp %r", value)
        return None


def _reaction(xml: object) -> Reaction | None:
    element = xml.find(_q(NS_REACTIONS, "reactions"))  # type: ignore[attr-defined]
    if element is None or not element.get("id"):
        return None
    emojis = frozenset(_text(item).strip() for item in element.findall(_q(NS_REACTIONS, "reaction")))
    return Reaction(element.get("id"), frozenset(e for e in emojis if e))


def _mentions(xml: object, room: str | None) -> tuple[str, ...]:
    """XEP-0372 mentions: the nicks (in a room) or bare JIDs they point at, in order."""
    found: list[str] = []
    for element in xml.findall(_q(NS_REFERENCE, "reference")):  # type: ignore[attr-defined]
        if element.get("type") != "mention":
            continue
        uri = (element.get("uri") or "").removeprefix("xmpp:").split("?", 1)[0]
        try:
            target = JID(uri) if uri else None
        except InvalidJID:
            continue
        if target is None or not target.bare:
            continue
        if room is not None and target.bare.lower() == room and target.resource:
            found.append(target.resource)
        else:
            found.append(target.bare.lower())
    return tuple(found)


def _invite(xml: object) -> Invite | None:
    direct = xml.find(_q(NS_CONFERENCE, "x"))  # type: ignore[attr-defined]
    if direct is not None and direct.get("jid"):
        return Invite(direct.get("jid"), direct.get("reason") or "")
    mediated = xml.find(f"{_q(NS_MUC_USER, 'x')}/{_q(NS_MUC_USER, 'invite')}")  # type: ignore[attr-defined]
    if mediated is not None:
        room = JID(xml.get("from") or "").bare  # type: ignore[attr-defined]
        return Invite(room, _text(mediated.find(_q(NS_MUC_USER, "reason"))))
    return None


def _strip_reply_fallback(xml: object, body: str) -> tuple[str, str]:
    """(body without the XEP-0428 fallback of a XEP-0461 reply, the fallback text). Ranges count code points."""
    if not body or xml.find(_q(NS_REPLY, "reply")) is None:  # type: ignore[attr-defined]
        return body, ""
    for fallback in xml.findall(_q(NS_FALLBACK, "fallback")):  # type: ignore[attr-defined]
        if fallback.get("for") != NS_REPLY:
            continue
        ranges = fallback.findall(_q(NS_FALLBACK, "body"))
        if not ranges:
            return "", body  # the whole body is fallback
        cut: list[tuple[int, int]] = []
        for element in ranges:
            try:
                start, end = int(element.get("start", "0")), int(element.get("end", "0"))
            except ValueError:
                continue
            if 0 <= start < end <= len(body):
                cut.append((start, end))
        if not cut:
            return body, ""
        kept, quoted, position = [], [], 0
        for start, end in sorted(cut):
            if start < position:
                continue  # overlapping ranges: keep the first
            kept.append(body[position:start])
            quoted.append(body[start:end])
            position = end
        kept.append(body[position:])
        return "".join(kept).strip(), "".join(quoted)
    return body, ""

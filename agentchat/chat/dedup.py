"""How a message is recognised when it arrives a second time.

The same stanza can reach us twice: the server resends what we had not acknowledged when a session ended
(XEP-0198 queue, then offline storage), and a client resends what its own server never confirmed. Each
copy must be answered and run once. A message is the same as one already recorded, within a bounded window,
when one of its keys matches:

* the server's XEP-0359 stanza-id (assigned by our own server, so unique);
* the client's XEP-0359 origin-id, or else its ``id`` attribute, together with the text: clients that
  reuse ids (counters restarted per session) then lose nothing, only an identical text under the same id
  counts as the same message;
* for a message without any id, only a copy the server says it resent (a delay stamped by our own
  account's address) whose text matches a message recorded within a few seconds of that stamp: two
  identical "yes" typed a minute apart are two messages.

The window (24 h) and that slack (5 s) are applied where messages are recorded (agentchat.store.database).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from agentchat.chat.port import Inbound

_SEP = "\x1f"


@dataclass(frozen=True)
class Identity:
    keys: tuple[str, ...]  # any one recorded within the window means: already received
    text_key: str  # sender and text: what an id-less resent copy is matched on
    resent_at: float | None  # POSIX time the server first sent it, when this is a resent copy

    @property
    def id_less(self) -> bool:
        return not self.keys


def text_digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def identity_of(inbound: Inbound) -> Identity:
    digest = text_digest(inbound.raw_body)
    sender = inbound.sender
    keys: list[str] = []
    if inbound.stanza_id:
        keys.append(_SEP.join((sender, "sid", inbound.stanza_id)))
    client_id = inbound.origin_id or inbound.message_id
    if client_id:
        keys.append(_SEP.join((sender, "cid", client_id, digest)))
    resent = inbound.resent_at.timestamp() if inbound.resent_at is not None else None
    return Identity(tuple(keys), _SEP.join((sender, "text", digest)), resent)

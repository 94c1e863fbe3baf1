"""The chat port: the one interface between the chat logic (agentchat.bots) and a transport (agentchat.xmpp).

A transport turns what arrives into ``Inbound`` values and hands each one, in arrival order, to its sink
together with a ``Release``: calling it tells the transport the message is taken (durably recorded, or not
worth keeping), so the server may forget it (XEP-0198 counts it as handled only then). The chat side answers
through the transport's ``ChatTransport`` methods with ``Outbound`` values. Nothing here knows XMPP stanzas;
nothing in the transport knows agents, prompts or commands.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol


class PeerFeature(enum.StrEnum):
    """What a peer's client may support, as a bot cares about it."""

    CORRECTIONS = "corrections"  # shows a corrected message in place (XMPP: XEP-0308)
    FORMS = "forms"  # runs a bot's commands with forms (XMPP: XEP-0050 with XEP-0004)


class MessageKind(enum.StrEnum):
    CHAT = "chat"  # one to one (also XMPP's "normal" type)
    GROUPCHAT = "groupchat"  # a room


class ChatState(enum.StrEnum):
    """XEP-0085 states a bot shows."""

    ACTIVE = "active"
    COMPOSING = "composing"
    PAUSED = "paused"


@dataclass(frozen=True)
class Reaction:
    """XEP-0444: the sender's reactions to one of our messages (the full set they now have on it)."""

    target_id: str
    emojis: frozenset[str]


@dataclass(frozen=True)
class Attachment:
    """A file the sender points to (XEP-0066 out-of-band URL, as XEP-0363 uploads arrive)."""

    url: str
    description: str = ""


@dataclass(frozen=True)
class Invite:
    """An invitation to a room (XEP-0249 direct, or mediated by the room: XEP-0045)."""

    room: str
    reason: str = ""


@dataclass(frozen=True)
class Inbound:
    """One message that reached one of our accounts.

    ``text`` is what the person wrote: the body with a reply fallback (XEP-0428) removed. ``raw_body`` is
    the body as sent; ``quoted`` the fallback that was removed. Identities (``message_id``: the client's id,
    ``origin_id`` and ``stanza_id``: XEP-0359) serve deduplication and corrections; ``resent_at`` is set when
    the server hands us again a copy of a stanza it had already sent to this very account (XEP-0198 queue or
    offline storage after a lost session), with the time it first sent it.
    """

    sender: str  # bare JID, lower-cased; for a room message, the room's
    text: str = ""
    resource: str = ""
    kind: MessageKind = MessageKind.CHAT
    raw_body: str = ""
    quoted: str = ""
    message_id: str | None = None
    origin_id: str | None = None
    stanza_id: str | None = None
    reply_to: str | None = None  # XEP-0461: the id of the message this one replies to
    replaces: str | None = None  # XEP-0308: the id of the message this one corrects
    reaction: Reaction | None = None
    attachments: tuple[Attachment, ...] = ()
    invite: Invite | None = None
    delayed_at: datetime | None = None  # XEP-0203: stored while we were away (or resent), at this time
    resent_at: datetime | None = None
    received_at: float = field(default_factory=time.time)
    # A room message: who wrote it (the occupant's nick, and their bare JID when the room tells us),
    # and whom it mentions by XEP-0372 reference (nicks).
    nick: str = ""
    real_jid: str | None = None
    mentions: tuple[str, ...] = ()

    @property
    def durable(self) -> bool:
        """Whether it carries something to act on later (text), rather than a passing signal (a reaction)."""
        return bool(self.raw_body) and self.reaction is None


Release = Callable[[], None]


class InboundSink(Protocol):
    """What a transport hands every inbound message to, synchronously and in arrival order."""

    def __call__(self, inbound: Inbound, release: Release) -> None: ...


@dataclass(frozen=True)
class Outbound:
    """One message from a bot."""

    to: str  # bare JID (or a room's JID with kind GROUPCHAT)
    text: str
    kind: MessageKind = MessageKind.CHAT
    # XEP-0184: ask the recipient's client to confirm delivery (permission prompts do).
    receipt: bool = False
    # XEP-0085 state that goes with the message (None: no chat state element).
    chat_state: ChatState | None = ChatState.ACTIVE
    # XEP-0308: this corrects our earlier message with that id.
    replaces: str | None = None
    # XEP-0066: the message shares this uploaded file (the text is then the URL itself, as clients expect).
    attachment_url: str | None = None


class RoomTransport(Protocol):
    """What a bot may ask of its account in rooms (XEP-0045), besides sending groupchat Outbounds."""

    async def join_room(self, room: str, nick: str, *, history_since: datetime | None = None) -> None:
        """Join (again after every new session, with only the history asked for the first time)."""

    async def leave_room(self, room: str) -> None: ...

    def occupant_jid(self, room: str, nick: str) -> str | None:
        """The bare JID behind a nick, when the room shows it (to its owners always)."""

    def affiliation(self, room: str, jid: str) -> str | None:
        """owner, admin, member, … of a bare JID, as far as the room told us."""


class ChatTransport(Protocol):
    """What the chat side may ask of the account it speaks through."""

    @property
    def address(self) -> str:
        """Our own bare JID."""

    def send(self, message: Outbound) -> str:
        """Queue a message for delivery (at least once, in order); returns its id."""

    def send_chat_state(self, to: str, state: ChatState) -> None:
        """A passing signal: sent while online, never queued."""

    def set_presence(self, status: str, show: str | None = None) -> None:
        """Our presence (kept and sent again on every new session)."""

    def request_subscription(self, jid: str) -> None:
        """Ask ``jid`` to see our presence, and pre-approve theirs."""

    async def upload_file(self, name: str, data: bytes, content_type: str) -> str:
        """Put a file on the server's upload service (XEP-0363); the URL to share. FileRefused when it cannot."""

    async def peer_supports(self, jid: str, feature: PeerFeature) -> bool | None:
        """Whether every client ``jid`` (a bare JID) has online supports ``feature``; None when none is
        known (the answer the clients gave when they were last seen, if any, stands meanwhile)."""

"""XEP-0045 Multi-User Chat for one session: the rooms it is in, joined again after every new session.

Transport only (it implements agentchat.chat.port.RoomTransport): joining, creating and configuring a room
(members-only, persistent, non-anonymous, archived: XEP-0313 through Prosody's mod_muc_mam), affiliations,
XEP-0249 direct invitations, and what the room told us about its occupants (real JIDs, affiliations).

Room messages reach the session's sink like any other message (kind GROUPCHAT); so does the history a room
sends on join, with its stanza-ids (by the room), which the inbox uses to recognise what it had already.

A room refuses a line from someone who is not in it (§7.4: not-acceptable), and a new session is in no room
until it joined again: ``present()`` says which rooms this session is in, and ``on_presence`` tells the
session's outbox when that changes, so that a room's lines wait for the join instead of being refused.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

import slixmpp
from slixmpp.exceptions import IqError, IqTimeout, PresenceError
from slixmpp.jid import JID

from agentchat.errors import AgentChatError

log = logging.getLogger(__name__)

PLUGINS = ("xep_0004", "xep_0045", "xep_0082", "xep_0249")
JOIN_TIMEOUT = 10.0
# How many messages a room keeps to hand to an occupant that joins (from its archive): enough for the
# messages of a restart of the service.
HISTORY_LENGTH = 200


class RoomError(AgentChatError):
    """A room could not be joined, created or changed."""


class RoomMembership:
    """The rooms of one session. ``history_since(room)`` says, at each rejoin, from when the room should
    send its history (None: none)."""

    def __init__(self, client: slixmpp.ClientXMPP, own_jid: str) -> None:
        self._client = client
        self._own = own_jid.lower()
        self._joined: dict[str, str] = {}  # room -> our nick
        self._present: set[str] = set()  # the rooms this session has joined since it started
        self.history_since: Callable[[str], datetime | None] = lambda room: None
        # (room, True) once this session is in the room, (room, False) when we left it for good.
        self.on_presence: Callable[[str, bool], None] = lambda room, present: None
        client.add_event_handler("session_start", self._rejoin)

    @property
    def _muc(self) -> Any:
        return self._client.plugin["xep_0045"]

    @property
    def rooms(self) -> dict[str, str]:
        return dict(self._joined)

    def present(self, room: str) -> bool:
        """Whether this session is in the room (joined since the session started), so may speak there."""
        return room.lower() in self._present

    def session_restarted(self) -> None:
        """A new session (not a resumed one) is in no room until it joins again."""
        self._present.clear()

    async def join_room(self, room: str, nick: str, *, history_since: datetime | None = None) -> None:
        room = room.lower()
        self._joined[room] = nick
        await self._join(room, nick, history_since)

    async def _join(self, room: str, nick: str, since: datetime | None) -> None:
        try:
            if since is None:
                await self._muc.join_muc_wait(JID(room), nick, maxstanzas=0, timeout=JOIN_TIMEOUT)
            else:
                await self._muc.join_muc_wait(JID(room), nick, since=since, timeout=JOIN_TIMEOUT)
        except PresenceError as exc:
            raise RoomError(f"cannot join {room} as {nick}: {exc.condition} {exc.text or ''}".strip()) from None
        except (TimeoutError, asyncio.TimeoutError):
            raise RoomError(f"cannot join {room} as {nick}: no answer in {JOIN_TIMEOUT:g} s") from None
        if room in self._joined:  # not left while the join was on its way
            self._present.add(room)
            self.on_presence(room, True)

    async def leave_room(self, room: str) -> None:
        room = room.lower()
        self._gone(room)
        nick = self._joined.pop(room, None)
        if nick is not None and self._client.transport is not None:
            self._muc.leave_muc(JID(room), nick)

    async def create_room(self, room: str, nick: str, *, name: str) -> None:
        """Create (or take over again) a members-only, persistent, non-anonymous, archived room, as its owner."""
        await self.join_room(room, nick)
        form = self._client.plugin["xep_0004"].make_form(ftype="submit")
        form.add_field(var="FORM_TYPE", value="http://jabber.org/protocol/muc#roomconfig")
        for var, value in (
            ("muc#roomconfig_roomname", name),
            ("muc#roomconfig_persistentroom", True),
            ("muc#roomconfig_membersonly", True),
            ("muc#roomconfig_whois", "anyone"),
            ("muc#roomconfig_publicroom", False),
            ("muc#roomconfig_enablearchiving", True),
            ("muc#roomconfig_historylength", str(HISTORY_LENGTH)),
        ):
            form.add_field(var=var, value=value)
        try:
            # Also unlocks a room just created (Prosody locks it until its owner configures it).
            await self._muc.set_room_config(JID(room), form, timeout=JOIN_TIMEOUT)
        except (IqError, IqTimeout) as exc:
            raise RoomError(f"cannot configure {room}: {_why(exc)}") from None

    async def set_affiliation(self, room: str, jid: str, affiliation: str) -> None:
        try:
            await self._muc.set_affiliation(JID(room), affiliation, jid=JID(jid), timeout=JOIN_TIMEOUT)
        except (IqError, IqTimeout) as exc:
            raise RoomError(f"cannot make {jid} {affiliation} of {room}: {_why(exc)}") from None

    def invite(self, room: str, jid: str, reason: str = "") -> None:
        """A XEP-0249 direct invitation (what Conversations, Gajim, Dino and Profanity show)."""
        self._client.plugin["xep_0249"].send_invitation(JID(jid), JID(room), reason=reason or None)

    async def destroy_room(self, room: str, reason: str = "") -> None:
        room = room.lower()
        self._gone(room)
        self._joined.pop(room, None)
        try:
            await self._muc.destroy(JID(room), reason=reason, timeout=JOIN_TIMEOUT)
        except (IqError, IqTimeout) as exc:
            raise RoomError(f"cannot close {room}: {_why(exc)}") from None

    def _gone(self, room: str) -> None:
        if room in self._joined:
            self._present.discard(room)
            self.on_presence(room, False)

    def occupant_jid(self, room: str, nick: str) -> str | None:
        jid = self._muc.get_jid_property(JID(room), nick, "jid")
        return JID(jid).bare.lower() if jid else None

    def affiliation(self, room: str, jid: str) -> str | None:
        wanted = jid.lower()
        try:
            nicks = self._muc.get_roster(JID(room)) or ()
        except ValueError:  # not in that room
            return None
        for nick in nicks:
            if self.occupant_jid(room, nick) == wanted:
                value = self._muc.get_jid_property(JID(room), nick, "affiliation")
                return str(value) if value else None
        return None

    async def _rejoin(self, _event: object) -> None:
        for room, nick in list(self._joined.items()):
            try:
                await self._join(room, nick, self.history_since(room))
            except RoomError as exc:
                log.warning("%s: %s", self._own, exc)


def _why(exc: IqError | IqTimeout) -> str:
    if isinstance(exc, IqTimeout):
        return "no answer"
    return f"{exc.condition} {exc.text or ''}".strip()

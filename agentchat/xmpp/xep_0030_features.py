"""What each peer's online clients support: XEP-0030 disco#info of every resource that comes online, reused
for resources that announce the same XEP-0115 entity capabilities (``<c ver=…/>`` in their presence).

A bot asks ``supports(bare_jid, feature)``: whether *every* client the person has online shows it (one
that cannot show a corrected message in place would see each correction as a new message). While no
client is online the verdict of the last ones seen stands; before any, the answer is None.

Caps are cached per person and ``ver``, never shared between people: a client could announce the ``ver``
of another client without having its features.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

import slixmpp
from slixmpp.exceptions import IqError, IqTimeout
from slixmpp.jid import JID
from slixmpp.stanza import Presence

from agentchat.chat.port import PeerFeature

log = logging.getLogger(__name__)

NS_CAPS = "http://jabber.org/protocol/caps"
# The disco#info features that mean each PeerFeature (all of them must be there).
FEATURES: dict[PeerFeature, frozenset[str]] = {
    PeerFeature.CORRECTIONS: frozenset({"urn:xmpp:message-correct:0"}),
    PeerFeature.FORMS: frozenset({"http://jabber.org/protocol/commands", "jabber:x:data"}),
}
QUERY_TIMEOUT = 5.0
# How long supports() waits for a disco#info answer still under way before it answers from what it knows.
WAIT_FOR_QUERIES = 2.0


@dataclass
class _Person:
    online: dict[str, frozenset[str] | None] = field(default_factory=dict)  # resource -> features (None: asking)
    by_caps: dict[str, frozenset[str]] = field(default_factory=dict)  # caps ver -> features
    last: dict[PeerFeature, bool] = field(default_factory=dict)
    queries: set[asyncio.Task[None]] = field(default_factory=set)


class PeerFeatures:
    """Learns the features of the clients whose presence reaches ``client`` (our contacts)."""

    def __init__(self, client: slixmpp.ClientXMPP) -> None:
        self._client = client
        self._people: dict[str, _Person] = {}
        # "presence", not "presence_available": slixmpp names an available presence with a <show/> after it.
        client.add_event_handler("presence", self._presence)
        client.add_event_handler("disconnected", self._disconnected)

    async def supports(self, bare_jid: str, feature: PeerFeature) -> bool | None:
        person = self._people.get(bare_jid.lower())
        if person is None:
            return None
        if person.queries:
            await asyncio.wait(set(person.queries), timeout=WAIT_FOR_QUERIES)
        _remember(person)
        return person.last.get(feature)

    async def close(self) -> None:
        """End the queries still under way (the session stops)."""
        tasks = [task for person in self._people.values() for task in person.queries]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _presence(self, presence: Presence) -> None:
        kind = presence.xml.get("type")
        if kind is None:
            self._available(presence)
        elif kind == "unavailable":
            self._unavailable(presence)

    def _available(self, presence: Presence) -> None:
        sender = JID(presence["from"])
        if not sender.resource or sender.bare.lower() == self._client.boundjid.bare.lower():
            return
        person = self._people.setdefault(sender.bare.lower(), _Person())
        caps = presence.xml.find(f"{{{NS_CAPS}}}c")
        ver = caps.get("ver") if caps is not None else None
        if ver and ver in person.by_caps:
            person.online[sender.resource] = person.by_caps[ver]
            return
        if sender.resource in person.online and person.online[sender.resource] is not None and not ver:
            return  # a status change of a client we know
        person.online[sender.resource] = None
        task = asyncio.get_running_loop().create_task(self._ask(person, sender, ver), name=f"disco:{sender}")
        person.queries.add(task)
        task.add_done_callback(person.queries.discard)

    async def _ask(self, person: _Person, jid: JID, ver: str | None) -> None:
        features: frozenset[str] = frozenset()
        try:
            info = await self._client.plugin["xep_0030"].get_info(jid=jid, timeout=QUERY_TIMEOUT, cached=False)
            features = frozenset(str(var) for var in info["disco_info"]["features"])
            if ver:
                person.by_caps[ver] = features
        except (IqError, IqTimeout) as exc:
            # A client that does not answer disco#info shows none of the features.
            log.debug("%s: no disco#info from %s: %s", self._client.boundjid.bare, jid, exc)
        if jid.resource in person.online:
            person.online[jid.resource] = features

    def _unavailable(self, presence: Presence) -> None:
        sender = JID(presence["from"])
        person = self._people.get(sender.bare.lower())
        if person is None:
            return
        _remember(person)  # the verdict of the clients seen last stands while none is online
        if sender.resource:
            person.online.pop(sender.resource, None)
        else:
            person.online.clear()

    def _disconnected(self, _reason: object) -> None:
        # Presences come again with the next session; until then the last verdicts stand.
        for person in self._people.values():
            _remember(person)
            person.online.clear()


def _remember(person: _Person) -> None:
    """Keep the verdict of the clients online now, if any is known."""
    known = [features for features in person.online.values() if features is not None]
    if known:
        for feature, needed in FEATURES.items():
            person.last[feature] = all(needed <= features for features in known)

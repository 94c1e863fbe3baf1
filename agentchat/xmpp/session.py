"""One service account's XMPP session: the transport behind the chat port (agentchat.chat.port).

It logs in, stays logged in until stop(), and carries messages both ways:

* inbound: every ``<message/>`` becomes an ``Inbound`` (agentchat.xmpp.stanzas), handed in arrival order to
  the sink with a release that XEP-0198 waits for (agentchat.xmpp.xep_0198);
* outbound: an outbox keeps each message until the server acknowledged it (XEP-0198) and sends again what
  a new session could not resume; a room's lines wait until the session is in that room (after a new
  session, until it joined again: the room would refuse them);
* reconnection of our own: slixmpp does not reconnect by itself, its back-off turns a 5 s outage into 12 s,
  and calling its ``connect()`` again cancels the attempt in flight (on a link slower than the retry
  interval it never got through). Each attempt here has its own timeout and runs to its end; the next one
  waits a back-off with jitter;
* a keepalive ping of our own that notices a dead link (slixmpp's keepalive reconnects behind our back and
  kept going after its account was deleted); a link that kept bringing stanzas while the answer was late is
  busy, not dead, and stays;
* presence on every new session (else bare-JID chats go to offline storage).

Nothing here knows agents, prompts or commands.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import re
import ssl
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import slixmpp
from slixmpp.exceptions import IqError, IqTimeout
from slixmpp.jid import JID
from slixmpp.plugins.xep_0198.stanza import RequestAck
from slixmpp.stanza import Message
from slixmpp.xmlstream import StanzaBase
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

from agentchat.chat.port import ChatState, Inbound, InboundSink, MessageKind, Outbound, PeerFeature, Release
from agentchat.config import XmppSettings
from agentchat.errors import AgentChatError
from agentchat.logs import secrets as known_secrets
from agentchat.tasks import TaskGroup
from agentchat.xmpp import scram
from agentchat.xmpp.stanzas import to_inbound, to_message
from agentchat.xmpp.tls import client_tls_context
from agentchat.xmpp.xep_0045_rooms import PLUGINS as ROOM_PLUGINS
from agentchat.xmpp.xep_0045_rooms import RoomMembership
from agentchat.xmpp.xep_0363 import http_upload
from agentchat.xmpp.xep_0030_features import PeerFeatures
from agentchat.xmpp.xep_0198 import AckGate

# Every login of this process derives its SCRAM key in C (see scram.py).
scram.install()

log = logging.getLogger(__name__)

# How long an ack request waits for more stanzas to cover. Acks only trim the outbox; each request
# costs a stanza each way through Prosody, and one per stanza made a 1000-event burst twice as slow.
ACK_REQUEST_DELAY = 0.05
# Back-off between reconnect attempts: xmpp.reconnectInterval during the first FAST_PHASE seconds of an
# outage, then times BACKOFF_FACTOR per failed attempt up to xmpp.reconnectMaxInterval; each wait between
# 80 and 120 % of that, so the bots of one service do not all come back in the same instant.
FAST_PHASE = 10.0
BACKOFF_FACTOR = 1.5
JITTER = 0.2
KEEPALIVE_INTERVAL = 30.0
KEEPALIVE_TIMEOUT = 10.0

PLUGINS = (
    "xep_0030",  # service discovery
    "xep_0085",  # chat states
    "xep_0184",  # delivery receipts
    "xep_0198",  # stream management: acks both ways, resumption after a dropped link
    "xep_0199",  # ping: our keepalive
    "xep_0203",  # delayed delivery
    "xep_0308",  # corrections
    "xep_0359",  # stanza ids
    "xep_0444",  # reactions
)

# The resource every service account binds (see XmppSession.__init__).
RESOURCE = "agentchat"

# Characters XML 1.0 cannot carry (NUL and other C0 controls, lone surrogates, U+FFFE/U+FFFF). One in a
# stanza makes the server close the stream, and the outbox would send it again after every reconnect.
_NOT_XML = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


class LoginFailed(AgentChatError):
    """The server refused the account's credentials."""


@dataclass
class _Queued:
    message: Outbound
    stanza_id: str
    # Which session (by number) the stanza was last written to; 0 means never.
    session: int = 0


def _release_nothing() -> None:
    pass


class XmppSession:
    """A logged-in service account that stays logged in until stop(). Implements ChatTransport."""

    def __init__(
        self,
        jid: str,
        password: str,
        settings: XmppSettings,
        *,
        extra_plugins: tuple[str, ...] = (),
        rooms: bool = False,
        upload_via: Callable[[str], str] | None = None,
        discover_peers: bool = False,
        keepalive_interval: float = KEEPALIVE_INTERVAL,
    ) -> None:
        self.jid = jid
        # How this process reaches an upload URL the server hands out (e.g. its public HTTPS URL → loopback).
        self._upload_via = upload_via
        # How often the link is checked; a runner's own session checks more often (agentchat.runners.runner).
        self.keepalive_interval = keepalive_interval
        self._settings = settings
        plugin_config = {"feature_mechanisms": {"unencrypted_scram": True}} if settings.security == "plain" else {}
        # A fixed resource: after a crash of the service, the new session replaces the old one that
        # Prosody keeps hibernating (XEP-0198), and what waited there goes to offline storage and on
        # to us. With a random resource it would wait for the hibernation timeout, then bounce.
        client = slixmpp.ClientXMPP(
            f"{jid}/{RESOURCE}", password, plugin_config=plugin_config,
            ssl_context=client_tls_context(settings.verify_tls, settings.ca_file),
        )
        client.enable_plaintext = settings.security == "plain"
        client.enable_starttls = settings.security == "starttls"
        client.enable_direct_tls = settings.security == "directtls"
        if settings.security != "plain" and not settings.verify_tls:
            client.ssl_context.check_hostname = False
            client.ssl_context.verify_mode = ssl.CERT_NONE
        for plugin in dict.fromkeys(PLUGINS + extra_plugins + (ROOM_PLUGINS if rooms else ())):
            client.register_plugin(plugin)
        # We ask for acks ourselves, once per burst (see _request_ack_soon), not every N stanzas.
        client.plugin["xep_0198"].window = 1_000_000
        # One attempt at a time, retried by our loop: slixmpp must not reschedule its own behind it.
        client.reschedule_connection_attempt = self._no_reschedule  # type: ignore[method-assign]
        self._gate = AckGate(client)
        self._heard = 0  # stanzas received so far: a link that brings them is alive, however late a ping's answer
        client.add_filter("in", self._hear)
        client.add_filter("out_sync", self._unless_link_gone)
        client.register_handler(Callback("agentchat inbound", MatchXPath("{jabber:client}message"), self._on_message))
        client.add_event_handler("session_start", self._session_started)
        client.add_event_handler("session_resumed", self._session_resumed)
        client.add_event_handler("disconnected", self._disconnected)
        client.add_event_handler("connection_failed", self._connection_failed)
        client.add_event_handler("stream_error", self._stream_error)
        client.add_event_handler("failed_auth", self._failed_auth)
        client.add_event_handler("stanza_acked", self._acked)
        client.add_event_handler("presence_subscribe", self._subscription_request)
        self.client = client
        # XEP-0045, for the accounts that sit in rooms (the manager, agents invited to one).
        self.rooms: RoomMembership | None = RoomMembership(client, jid) if rooms else None
        if self.rooms is not None:
            self.rooms.on_presence = self._room_presence
        # What our contacts' clients support (disco#info of each that comes online): agents ask their owner's.
        self.peer_features = PeerFeatures(client) if discover_peers else None
        self.online = False
        self.session_number = 0
        self.presence_status: str | None = None
        self.presence_show: str | None = None
        self.subscribe_to: set[str] = set()
        self._sink: InboundSink | None = None
        self._on_online: Callable[[bool], Awaitable[None]] | None = None
        self._outbox: OrderedDict[str, _Queued] = OrderedDict()
        self._stopping = False
        # Another login took our resource (another agentchat with these accounts): we give way.
        self.replaced = False
        self._attempt: asyncio.Future[bool] | None = None
        self._refused = False
        self._reconnector: asyncio.Task[None] | None = None
        self._keepalive: asyncio.Task[None] | None = None
        self._ack_scheduled = False
        self.attempts = 0  # connection attempts since start (for tests and logs)
        self._probes = TaskGroup(f"probe:{jid}")

    @property
    def address(self) -> str:
        return self.jid

    def attach(self, sink: InboundSink, on_online: Callable[[bool], Awaitable[None]] | None = None) -> None:
        """Where inbound messages go (before start(): nothing may arrive unheard)."""
        self._sink = sink
        self._on_online = on_online

    # life cycle

    async def start(self, timeout: float = 15.0) -> None:
        """Log in; raise LoginFailed (refused) or TimeoutError (no session within ``timeout``)."""
        self._stopping = False
        self.replaced = False
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            while True:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise TimeoutError(f"{self.jid}: no session within {timeout:g} s")
                if await self._connect_once(remaining):
                    return
                if self._refused:
                    raise LoginFailed(f"{self.jid}: the server refused the password")
                await asyncio.sleep(min(self._settings.reconnect_interval, max(0.0, deadline - loop.time())))
        except BaseException:
            await self.stop(acknowledge=False)
            raise

    async def stop(self, *, acknowledge: bool = True) -> None:
        """Log out for good. With ``acknowledge``, first tell the server which messages we took, so it
        keeps nothing of them for the next login (the chat side must have recorded them before)."""
        self._stopping = True
        for task in (self._reconnector, self._keepalive):
            if task is not None:
                task.cancel()
        self._reconnector = self._keepalive = None
        await self._probes.cancel_all()
        self._finish_attempt(False)
        self.client.cancel_connection_attempt()
        if self.peer_features is not None:
            await self.peer_features.close()
        if self.client.transport is not None:
            if acknowledge:
                self._gate.acknowledge()
            # From here nothing new goes on this stream (a message, an ack request): it is closing, and what
            # slixmpp would write after its end raised NotConnectedError in its send queue (a traceback).
            self.online = False
            try:
                await asyncio.wait_for(self.client.disconnect(wait=1.0), 3)
            except (TimeoutError, asyncio.TimeoutError):
                self.client.abort()
        self.online = False
        # slixmpp's outgoing-filter task waits on a queue for the client's whole life and is cancelled only
        # in __del__: left pending, the garbage collector destroyed it with a "Task was destroyed" error.
        filters: asyncio.Future[None] | None = getattr(self.client, "_run_out_filters", None)
        if filters is not None and not filters.done():
            filters.cancel()
            await asyncio.gather(filters, return_exceptions=True)

    @property
    def unacked(self) -> int:
        return len(self._outbox)

    def outbox_report(self) -> str:
        """What waits for the server's ack, and what slixmpp tracks of it (for a failure's message)."""
        sm = self.client.plugin["xep_0198"]
        tracked = self._tracked_ids()
        lines = [f"{self.jid}: session {self.session_number}, online={self.online}, sm seq={sm.seq} "
                 f"last_ack={sm.last_ack} tracked={len(tracked)}"]
        for item in self._outbox.values():
            state = "tracked" if item.stanza_id in tracked else "untracked"
            lines.append(f"  written in session {item.session}, {state}: {item.message.text[:60]!r}")
        return "\n".join(lines)

    # sending (ChatTransport)

    def send(self, message: Outbound) -> str:
        """Queue a message for delivery; returns its id. Delivered at least once, in order."""
        stanza_id = uuid.uuid4().hex
        # A registered secret (a password, a token, an API key a CLI printed) never goes out in a chat.
        text = _NOT_XML.sub("\ufffd", known_secrets.scrub(message.text))
        if text != message.text:
            message = dataclasses.replace(message, text=text)
        item = _Queued(message, stanza_id)
        self._outbox[stanza_id] = item
        if self.online and self._may_write(message):
            self._write(item)
        return stanza_id

    def _may_write(self, message: Outbound) -> bool:
        """A room's line waits until this session is in the room: the room refuses it before (XEP-0045 §7.4)."""
        return message.kind is not MessageKind.GROUPCHAT or self.rooms is None or self.rooms.present(message.to)

    def _room_presence(self, room: str, present: bool) -> None:
        """In the room now: its lines that waited go, in order. Left it for good: they never will."""
        waiting = [item for item in self._outbox.values() if item.message.kind is MessageKind.GROUPCHAT
                   and item.message.to.lower() == room and item.session != self.session_number]  # fmt: skip
        if present:
            if self.online:
                for item in waiting:
                    self._write(item)
            return
        for item in waiting:
            del self._outbox[item.stanza_id]
        if waiting:
            log.info("%s: %d line(s) for %s not sent: we left the room", self.jid, len(waiting), room)

    def send_chat_state(self, to: str, state: ChatState) -> None:
        """Chat states are ephemeral: sent only while online, never queued."""
        if not self.online:
            return
        msg = self.client.make_message(mto=to, mtype="chat")
        msg["chat_state"] = state.value
        msg.send()

    def set_presence(self, status: str, show: str | None = None) -> None:
        self.presence_status, self.presence_show = status, show
        if self.online:
            self.client.send_presence(pstatus=status, pshow=show)

    def request_subscription(self, jid: str) -> None:
        """Ask ``jid`` to see our presence and pre-approve theirs (RFC 6121 pre-approval)."""
        self.subscribe_to.add(jid)
        if self.online:
            self._subscribe(jid)

    async def upload_file(self, name: str, data: bytes, content_type: str) -> str:
        """XEP-0363: a slot from the server's upload service, the bytes PUT to it; returns the URL to share.
        The PUT goes where ``upload_via`` says this process reaches the server's HTTP (its loopback port)."""
        return await http_upload(self.client, self._settings.domain, name, data, content_type, self._upload_via)

    async def peer_supports(self, jid: str, feature: PeerFeature) -> bool | None:
        if self.peer_features is None:
            return None
        return await self.peer_features.supports(jid, feature)

    def _subscribe(self, jid: str) -> None:
        self.client.send_presence(pto=jid, ptype="subscribed")
        self.client.send_presence(pto=jid, ptype="subscribe")

    def _write(self, item: _Queued) -> None:
        item.session = self.session_number
        to_message(self.client, item.message, item.stanza_id).send()
        if self._sm_enabled():
            self._request_ack_soon()
        else:
            # Without stream management there will be no ack: written is as good as it gets.
            self._outbox.pop(item.stanza_id, None)

    def _tracked_ids(self) -> set[str]:
        """The ids of the stanzas slixmpp keeps for resending until the server acknowledges them."""
        return {stanza["id"] for _seq, stanza in self.client.plugin["xep_0198"].unacked_queue}

    def _sm_enabled(self) -> bool:
        return bool(getattr(self.client.plugin["xep_0198"], "enabled_out", False))

    def _request_ack_soon(self) -> None:
        if self._ack_scheduled:
            return
        self._ack_scheduled = True

        def request() -> None:
            self._ack_scheduled = False
            if self.online and self._sm_enabled():
                # Through slixmpp's send queue, behind the stanzas it must cover. slixmpp's request_ack() writes
                # at once: a message queued in the same loop iteration went out after the <r/>, its ack never
                # came, and the outbox would have sent it again (a duplicate) after the next new session.
                self.client.send(RequestAck(self.client))

        asyncio.get_running_loop().call_later(ACK_REQUEST_DELAY, request)

    # receiving

    def _on_message(self, msg: StanzaBase) -> None:
        assert isinstance(msg, Message)
        hold = self._gate.take()
        release: Release = hold.release if hold is not None else _release_nothing
        try:
            inbound: Inbound | None = to_inbound(msg, self.jid)
        except Exception:  # one odd stanza must not cost us the stream
            log.exception("%s: could not read a message from %s", self.jid, msg["from"])
            inbound = None
        if inbound is None or self._sink is None:
            release()
            return
        try:
            self._sink(inbound, release)
        except Exception:
            log.exception("%s: the chat side refused a message from %s", self.jid, inbound.sender)
            release()

    # connecting

    def _no_reschedule(self) -> None:
        self.client._current_connection_attempt = None
        return None

    async def _connect_once(self, timeout: float) -> bool:
        """One attempt, to its end: True once a session started (or resumed)."""
        loop = asyncio.get_running_loop()
        self._attempt = attempt = loop.create_future()
        self._refused = False
        self.attempts += 1
        self.client.connect(self._settings.host, self._settings.port)
        try:
            return await asyncio.wait_for(asyncio.shield(attempt), timeout)
        except TimeoutError:
            log.info("%s: login did not complete within %.0f s; trying again", self.jid, timeout)
            self.client.cancel_connection_attempt()
            self.client.abort()
            return False
        finally:
            if self._attempt is attempt:
                self._attempt = None

    def _finish_attempt(self, success: bool) -> None:
        if self._attempt is not None and not self._attempt.done():
            self._attempt.set_result(success)

    async def _reconnect_loop(self) -> None:
        settings = self._settings
        loop = asyncio.get_running_loop()
        began = loop.time()
        failures = 0
        while not self._stopping and not self.online and not self.replaced:
            # Quick retries while the outage is young (a server restart takes a second or two), then longer
            # and longer waits: a server away for good must not be hammered by every bot at once.
            grown = failures if loop.time() - began > FAST_PHASE else 0
            wait = min(settings.reconnect_max_interval, settings.reconnect_interval * BACKOFF_FACTOR**grown)
            await asyncio.sleep(wait * random.uniform(1 - JITTER, 1 + JITTER))
            if self._stopping or self.online or self.replaced:
                return
            if await self._connect_once(settings.connect_timeout):
                # Online, unless the link dropped again before we got here (a server that resumed the stream
                # and closed it at once): then this loop goes on, as nobody else will.
                continue
            if loop.time() - began > FAST_PHASE:
                failures += 1

    def _unless_link_gone(self, stanza: StanzaBase) -> StanzaBase | None:
        """A stanza slixmpp's send queue reaches after the link dropped is not written (slixmpp raised
        NotConnectedError and logged a traceback for it). What mattered of it is in the outbox, which sends it
        again on the next stream; an ack request or a chat state belonged to the lost one."""
        if self.client.transport is None:
            log.debug("%s: not written, the link is gone: %s", self.jid, stanza.name)
            return None
        return stanza

    def _hear(self, stanza: StanzaBase) -> StanzaBase:
        self._heard += 1
        return stanza

    async def _keep_alive(self) -> None:
        """Ping the server; a link that neither answers nor brings anything else is cut, and the reconnect loop
        takes over."""
        while True:
            await asyncio.sleep(self.keepalive_interval)
            heard = self._heard
            try:
                await self.client.plugin["xep_0199"].ping(JID(self._settings.domain), timeout=KEEPALIVE_TIMEOUT)
            except IqTimeout:
                if self._busy_since(heard):
                    continue
                log.info("%s: the server did not answer a ping within %.0f s; reconnecting", self.jid, KEEPALIVE_TIMEOUT)
                self.client.abort()
                return
            except IqError:
                pass  # an answer, even an error, proves the link

    def _busy_since(self, heard: int) -> bool:
        """Whether stanzas came while a ping's answer was late: it waits behind them (at the server, and in what
        we have still to read), and the link works. Cut, a busy Prosody resumed the stream over a connection it
        had not yet seen close and lost what we sent on it."""
        if self._heard == heard:
            return False
        log.info("%s: a ping's answer is late (%d stanzas came meanwhile): a busy link, kept", self.jid, self._heard - heard)
        return True

    def probe(self) -> None:
        """Check the link now, not at the next keepalive: a connection the server closed while the network was
        away looks alive here until something is sent on it (then it is reset, and the reconnect loop runs)."""
        if self.online:
            self._probes.spawn(self._probe_once(self.session_number), "ping")

    async def _probe_once(self, session: int) -> None:
        heard = self._heard
        try:
            await self.client.plugin["xep_0199"].ping(JID(self._settings.domain), timeout=KEEPALIVE_TIMEOUT)
        except IqTimeout:
            # Not a newer session's link, nor a busy one.
            if self.online and self.session_number == session and not self._busy_since(heard):
                log.info("%s: the server did not answer a ping within %.0f s; reconnecting", self.jid, KEEPALIVE_TIMEOUT)
                self.client.abort()
        except IqError:
            pass

    # events

    async def _session_started(self, _event: object) -> None:
        self.session_number += 1
        self._online()
        # Presence on every new session, or bare-JID chats go to offline storage.
        self.client.send_presence(pstatus=self.presence_status, pshow=self.presence_show)
        for jid in self.subscribe_to:
            self._subscribe(jid)
        # A new session cannot resume the old stream: everything not acknowledged goes again (a room's lines
        # once we are back in the room).
        if self.rooms is not None:
            self.rooms.session_restarted()
        for item in list(self._outbox.values()):
            if self._may_write(item.message):
                self._write(item)
        await self._notify_online(True)

    async def _session_resumed(self, _event: object) -> None:
        self._online()
        # slixmpp resends what it tracked as unacknowledged on the old stream; we send the rest: what never went
        # out, and what we handed to slixmpp just before the link dropped (its send queue reached the stanza
        # after the drop: untracked, never written, and neither side would have sent it again).
        tracked = self._tracked_ids()
        for item in list(self._outbox.values()):
            if item.stanza_id not in tracked and self._may_write(item.message):
                self._write(item)
        if self._outbox:
            # What slixmpp resent is acknowledged only when asked: ask, or it waits for our next message.
            self._request_ack_soon()
        await self._notify_online(True)

    def _online(self) -> None:
        self.online = True
        self._finish_attempt(True)
        if self._keepalive is None or self._keepalive.done():
            self._keepalive = asyncio.get_running_loop().create_task(self._keep_alive(), name=f"keepalive:{self.jid}")

    async def _notify_online(self, online: bool) -> None:
        if self._on_online is not None:
            try:
                await self._on_online(online)
            except Exception:  # a listener bug must not break the connection
                log.exception("%s: online handler failed", self.jid)

    def _connection_failed(self, reason: object) -> None:
        log.debug("%s: connection failed: %s", self.jid, reason)
        self._finish_attempt(False)

    def _disconnected(self, reason: object) -> None:
        was_online, self.online = self.online, False
        if self._keepalive is not None:
            self._keepalive.cancel()
            self._keepalive = None
        # An attempt still in flight is retried by whoever made it (start() or the reconnect loop). One that
        # already got its session is over, though its owner may not have seen it yet: the link dropped after.
        in_flight = self._attempt is not None and not self._attempt.done()
        self._finish_attempt(False)
        if self._stopping:
            return
        if was_online:
            if not self.replaced:
                log.info("%s disconnected (%s); reconnecting", self.jid, reason or "connection lost")
            if self._on_online is not None:
                asyncio.get_running_loop().create_task(self._notify_online(False))
        if not self.replaced and (self._reconnector is None or self._reconnector.done()) and not in_flight:
            self._reconnector = asyncio.get_running_loop().create_task(self._reconnect_loop(), name=f"reconnect:{self.jid}")

    def _stream_error(self, error: object) -> None:
        if error["condition"] != "conflict":  # type: ignore[index]
            return
        # Our fixed resource was bound by another login: another agentchat runs with these accounts.
        # Taking it back would make the two replace each other twice a second, forever.
        self.replaced = True
        log.error("%s: replaced by another login (%s); not reconnecting: run one agentchat per set of accounts",
                  self.jid, error["text"] or "conflict")  # type: ignore[index]

    def _failed_auth(self, _event: object) -> None:
        self._refused = True
        self._finish_attempt(False)

    def _acked(self, stanza: object) -> None:
        if isinstance(stanza, Message):
            self._outbox.pop(stanza["id"], None)

    def _subscription_request(self, presence: object) -> None:
        # Approve subscriptions from whoever we asked to subscribe to (the owner).
        sender = presence["from"].bare  # type: ignore[index]
        if sender in self.subscribe_to:
            self.client.send_presence(pto=sender, ptype="subscribed")

"""One service account's XMPP session: login, our own reconnect loop, presence on every new
session, and an outbox that keeps each message until the server acknowledged it (XEP-0198).

slixmpp does not reconnect by itself, its back-off turns a 5 s outage into 12 s, and it drops
unacknowledged stanzas when a stream cannot be resumed; this class covers all three.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import ssl
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import slixmpp
from slixmpp.stanza import Message

from agentchat.config import XmppSettings
from agentchat.errors import AgentChatError
from agentchat.logs import secrets as known_secrets
from agentchat.xmpp import scram
from agentchat.xmpp.tls import client_tls_context

# Every login of this process derives its SCRAM key in C (see scram.py).
scram.install()

log = logging.getLogger(__name__)

MessageHandler = Callable[[Message], Awaitable[None]]

# How long an ack request waits for more stanzas to cover. Acks only trim the outbox; each request
# costs a stanza each way through Prosody, and one per stanza made a 1000-event burst twice as slow.
ACK_REQUEST_DELAY = 0.05

PLUGINS = (
    "xep_0030",  # service discovery
    "xep_0085",  # chat states
    "xep_0184",  # delivery receipts
    "xep_0198",  # stream management: acks for the outbox, resumption after a dropped link
    "xep_0199",  # ping: notices a dead TCP link
    "xep_0203",  # delayed delivery: offline messages carry <delay/>
    "xep_0359",  # stanza ids
    "xep_0444",  # reactions (👍/👎 on a permission prompt)
)


# The resource every service account binds (see BotConnection.__init__).
RESOURCE = "agentchat"

# Characters XML 1.0 cannot carry (NUL and other C0 controls, lone surrogates, U+FFFE/U+FFFF). One in a
# stanza makes the server close the stream, and the outbox would send it again after every reconnect.
_NOT_XML = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


@functools.cache
def shared_tls_context(verify: bool) -> ssl.SSLContext:
    """One TLS context for every bot. Left alone, slixmpp builds one per client and loads the
    system CA store into it twice: ~40 ms of CPU and ~0.8 MB of memory per agent (docs/performance.md)."""
    context = ssl.create_default_context()
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class LoginFailed(AgentChatError):
    """The server refused the account's credentials."""


@dataclass
class OutboxItem:
    stanza_id: str
    to: str
    body: str
    # Which session (by number) the stanza was last written to; 0 means never.
    session: int = 0
    extra: dict[str, str] = field(default_factory=dict)


class BotConnection:
    """A logged-in service account that stays logged in until stop()."""

    def __init__(
        self,
        jid: str,
        password: str,
        settings: XmppSettings,
        *,
        on_message: MessageHandler,
        on_reactions: MessageHandler | None = None,
        on_online: Callable[[bool], Awaitable[None]] | None = None,
        extra_plugins: tuple[str, ...] = (),
    ) -> None:
        self.jid = jid
        self._settings = settings
        self._on_message = on_message
        self._on_reactions = on_reactions
        self._on_online = on_online
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
        for plugin in PLUGINS + extra_plugins:
            client.register_plugin(plugin)
        # We ask for acks ourselves, once per burst (see _request_ack_soon), not every N stanzas.
        client.plugin["xep_0198"].window = 1_000_000
        client.plugin["xep_0199"].enable_keepalive(interval=30, timeout=10)
        client.add_event_handler("session_start", self._session_started)
        client.add_event_handler("session_resumed", self._session_resumed)
        client.add_event_handler("disconnected", self._disconnected)
        client.add_event_handler("stream_error", self._stream_error)
        client.add_event_handler("failed_auth", self._failed_auth)
        client.add_event_handler("stanza_acked", self._acked)
        client.add_event_handler("message", self._message)
        client.add_event_handler("reactions", self._reactions)
        client.add_event_handler("presence_subscribe", self._subscription_request)
        self.client = client
        self.online = False
        self.session_number = 0
        self.presence_status: str | None = None
        self.presence_show: str | None = None
        self.subscribe_to: set[str] = set()
        self._outbox: OrderedDict[str, OutboxItem] = OrderedDict()
        self._stopping = False
        # Another login took our resource (another agentchat with these accounts): we give way.
        self.replaced = False
        self._first_session: asyncio.Future[None] | None = None
        self._reconnector: asyncio.Task[None] | None = None
        self._ack_scheduled = False

    # life cycle

    async def start(self, timeout: float = 15.0) -> None:
        """Log in; raise LoginFailed or TimeoutError if the first session does not start."""
        self._stopping = False
        self.replaced = False
        self._first_session = asyncio.get_running_loop().create_future()
        self.client.connect(self._settings.host, self._settings.port)
        try:
            await asyncio.wait_for(asyncio.shield(self._first_session), timeout)
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        self._stopping = True
        if self._reconnector is not None:
            self._reconnector.cancel()
            self._reconnector = None
        self.client.cancel_connection_attempt()
        if self.client.transport is not None:
            try:
                await asyncio.wait_for(self.client.disconnect(wait=1.0), 3)
            except (TimeoutError, asyncio.TimeoutError):
                self.client.abort()
        self.online = False

    @property
    def unacked(self) -> int:
        return len(self._outbox)

    # sending

    def send_chat(self, to: str, body: str, *, chat_state: str | None = "active", receipt: bool = False) -> str:
        """Queue a chat message for delivery; returns its id. Delivered at least once."""
        stanza_id = uuid.uuid4().hex
        extra = {"chat_state": chat_state} if chat_state else {}
        if receipt:
            extra["receipt"] = "1"
        # A registered secret (a password, a token, an API key a CLI printed) never goes out in a chat.
        body = _NOT_XML.sub("\ufffd", known_secrets.scrub(body))
        item = OutboxItem(stanza_id=stanza_id, to=to, body=body, extra=extra)
        self._outbox[stanza_id] = item
        if self.online:
            self._write(item)
        return stanza_id

    def send_chat_state(self, to: str, state: str) -> None:
        """Chat states are ephemeral: sent only while online, never queued."""
        if not self.online:
            return
        msg = self.client.make_message(mto=to, mtype="chat")
        msg["chat_state"] = state
        msg.send()

    def set_presence(self, status: str, show: str | None = None) -> None:
        self.presence_status, self.presence_show = status, show
        if self.online:
            self.client.send_presence(pstatus=status, pshow=show)

    def request_subscription(self, owner: str) -> None:
        """Ask the owner to see our presence and pre-approve theirs (RFC 6121 pre-approval)."""
        self.subscribe_to.add(owner)
        if self.online:
            self._subscribe(owner)

    def _subscribe(self, owner: str) -> None:
        self.client.send_presence(pto=owner, ptype="subscribed")
        self.client.send_presence(pto=owner, ptype="subscribe")

    def _write(self, item: OutboxItem) -> None:
        msg = self.client.make_message(mto=item.to, mbody=item.body, mtype="chat")
        msg["id"] = item.stanza_id
        if "chat_state" in item.extra:
            msg["chat_state"] = item.extra["chat_state"]
        if "receipt" in item.extra:
            msg["request_receipt"] = True
        item.session = self.session_number
        msg.send()
        if self._sm_enabled():
            self._request_ack_soon()
        else:
            # Without stream management there will be no ack: written is as good as it gets.
            self._outbox.pop(item.stanza_id, None)

    def _sm_enabled(self) -> bool:
        return bool(getattr(self.client.plugin["xep_0198"], "enabled_out", False))

    def _request_ack_soon(self) -> None:
        if self._ack_scheduled:
            return
        self._ack_scheduled = True

        def request() -> None:
            self._ack_scheduled = False
            if self.online and self._sm_enabled():
                self.client.plugin["xep_0198"].request_ack()

        asyncio.get_running_loop().call_later(ACK_REQUEST_DELAY, request)

    # events

    async def _session_started(self, _event: object) -> None:
        self.session_number += 1
        self.online = True
        # Presence on every new session, or bare-JID chats go to offline storage.
        self.client.send_presence(pstatus=self.presence_status, pshow=self.presence_show)
        for owner in self.subscribe_to:
            self._subscribe(owner)
        # A new session cannot resume the old stream: everything not acknowledged goes again.
        for item in list(self._outbox.values()):
            self._write(item)
        if self._first_session is not None and not self._first_session.done():
            self._first_session.set_result(None)
        await self._notify_online(True)

    async def _session_resumed(self, _event: object) -> None:
        self.online = True
        # slixmpp resends what the old stream left unacknowledged; we send what never went out.
        for item in list(self._outbox.values()):
            if item.session == 0:
                self._write(item)
        await self._notify_online(True)

    async def _notify_online(self, online: bool) -> None:
        if self._on_online is not None:
            try:
                await self._on_online(online)
            except Exception:  # a listener bug must not break the connection
                log.exception("%s: online handler failed", self.jid)

    def _disconnected(self, reason: object) -> None:
        was_online, self.online = self.online, False
        if self._stopping:
            return
        if not self.replaced:
            log.info("%s disconnected (%s); reconnecting", self.jid, reason or "connection lost")
        if was_online and self._on_online is not None:
            asyncio.get_running_loop().create_task(self._notify_online(False))
        if not self.replaced and (self._reconnector is None or self._reconnector.done()):
            self._reconnector = asyncio.get_running_loop().create_task(self._reconnect_loop())

    async def _reconnect_loop(self) -> None:
        """Retry every reconnect_interval; a login stuck past 10 s is abandoned and retried."""
        interval = self._settings.reconnect_interval
        stuck_for = 0.0
        while not self._stopping and not self.online:
            if self.client.transport is None and not self.client.is_connecting():
                stuck_for = 0.0
                self.client.connect(self._settings.host, self._settings.port)
            elif self.client.transport is None:
                # slixmpp is in its own back-off sleep: cut it short.
                self.client.connect(self._settings.host, self._settings.port)
            else:
                stuck_for += interval
                if stuck_for > 10:
                    self.client.abort()
            await asyncio.sleep(interval)

    def _stream_error(self, error: object) -> None:
        if error["condition"] != "conflict":  # type: ignore[index]
            return
        # Our fixed resource was bound by another login: another agentchat runs with these accounts.
        # Taking it back would make the two replace each other twice a second, forever.
        self.replaced = True
        log.error("%s: replaced by another login (%s); not reconnecting: run one agentchat per set of accounts",
                  self.jid, error["text"] or "conflict")  # type: ignore[index]

    def _failed_auth(self, _event: object) -> None:
        if self._first_session is not None and not self._first_session.done():
            self._first_session.set_exception(LoginFailed(f"{self.jid}: the server refused the password"))

    def _acked(self, stanza: object) -> None:
        if isinstance(stanza, Message):
            self._outbox.pop(stanza["id"], None)

    def _subscription_request(self, presence: object) -> None:
        # Approve subscriptions from whoever we asked to subscribe to (the owner).
        sender = presence["from"].bare  # type: ignore[index]
        if sender in self.subscribe_to:
            self.client.send_presence(pto=sender, ptype="subscribed")

    async def _message(self, msg: Message) -> None:
        if msg["type"] not in ("chat", "normal") or msg["type"] == "error":
            return
        try:
            await self._on_message(msg)
        except Exception:  # one bad message must not kill the listener
            log.exception("%s: message handler failed", self.jid)

    async def _reactions(self, msg: Message) -> None:
        if self._on_reactions is None:
            return
        try:
            await self._on_reactions(msg)
        except Exception:
            log.exception("%s: reactions handler failed", self.jid)

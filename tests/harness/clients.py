"""A test-side XMPP user: a thin slixmpp wrapper that records what arrives and waits with timeouts."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import slixmpp
from slixmpp.jid import JID

from tests.harness.certs import local_ca, verifying_context

log = logging.getLogger(__name__)

DEFAULT_PLUGINS: tuple[str, ...] = ("xep_0030", "xep_0004", "xep_0050", "xep_0085", "xep_0184", "xep_0199", "xep_0444")

Security = Literal["starttls", "directtls", "plain"]


class LoginFailed(Exception):
    """The client could not log in (bad credentials, deleted account, server away)."""


@dataclass(frozen=True)
class ReceivedMessage:
    body: str
    id: str
    from_: str
    to: str
    type: str
    stanza: slixmpp.Message = field(repr=False, compare=False)
    received_at: float = field(default_factory=time.monotonic, compare=False)

    @property
    def from_bare(self) -> str:
        return JID(self.from_).bare


@dataclass(frozen=True)
class ChatState:
    from_: str
    state: str  # active, composing, paused, inactive, gone
    received_at: float = field(default_factory=time.monotonic, compare=False)


@dataclass(frozen=True)
class RosterPush:
    """One roster item the server pushed (RFC 6121 §2.1.6), as the client received it."""

    jid: str
    subscription: str  # "remove" when the item left the roster
    name: str
    groups: tuple[str, ...]


@dataclass(frozen=True)
class ReceivedPresence:
    from_: str
    type: str  # "available", "unavailable", "subscribe", …
    status: str


MessagePredicate = Callable[[ReceivedMessage], bool]


def _matches_sender(message: ReceivedMessage, from_: str | None) -> bool:
    if from_ is None:
        return True
    return message.from_ == from_ if "/" in from_ else message.from_bare == JID(from_).bare


class UserClient:
    """One logged-in account. ``messages`` keeps every chat/normal message with a body, in order;
    ``next_message``/``expect`` hand each one out once.

    Like Conversations or Gajim, it logs in with STARTTLS and verifies the server's certificate
    (chain and name: the JID's domain) against ``ca_file``, the test CA by default; with a server's
    own self-signed certificate as ``ca_file``, that certificate is pinned. ``security="plain"``
    only where a test asks for plaintext on loopback.
    """

    def __init__(
        self,
        jid: str,
        password: str,
        host: str,
        port: int,
        *,
        plugins: Sequence[str] = DEFAULT_PLUGINS,
        security: Security = "starttls",
        ca_file: Path | None = None,
    ) -> None:
        self.jid = jid
        self.host = host
        self.port = port
        self.security = security
        if security == "plain":
            # slixmpp refuses SASL on an unencrypted stream otherwise (G5).
            self.xmpp = slixmpp.ClientXMPP(jid, password, plugin_config={"feature_mechanisms": {"unencrypted_scram": True}})
        else:
            # A context of its own (tests may loosen it), trusting only the CA: no system store to load.
            self.xmpp = slixmpp.ClientXMPP(jid, password, ssl_context=verifying_context(ca_file or local_ca().cert_path))
        self.xmpp.enable_plaintext = security == "plain"
        self.xmpp.enable_starttls = security == "starttls"
        self.xmpp.enable_direct_tls = security == "directtls"
        # The certificate the server showed (DER), once TLS is up.
        self.server_certificate: bytes | None = None
        self.xmpp.add_event_handler("ssl_cert", self._on_ssl_cert)
        self.xmpp.add_event_handler("ssl_invalid_chain", self._on_invalid_chain)
        for plugin in plugins:
            self.xmpp.register_plugin(plugin)
        self.messages: list[ReceivedMessage] = []
        self.chat_states: list[ChatState] = []
        self.error_messages: list[slixmpp.Message] = []
        # Stream errors the server sent, as (condition, text): ("not-authorized", "Account deleted").
        self.stream_errors: list[tuple[str, str]] = []
        self.roster_pushes: list[RosterPush] = []
        # The roster as the server sent it (the answer to our roster get, then every push).
        self.roster: dict[str, RosterPush] = {}
        self.presences: list[ReceivedPresence] = []
        self.disconnected = asyncio.Event()
        self._changed = asyncio.Condition()
        self._notifications: set[asyncio.Task[None]] = set()
        self._consumed: set[int] = set()
        self._arrived = asyncio.Condition()
        self._outcome: asyncio.Future[None] | None = None
        self.xmpp.add_event_handler("message", self._on_message)
        self.xmpp.add_event_handler("chatstate", self._on_chatstate)
        self.xmpp.add_event_handler("stream_error", self._on_stream_error)
        self.xmpp.add_event_handler("session_start", self._on_session_start)
        self.xmpp.add_event_handler("failed_all_auth", self._on_failed_auth)
        self.xmpp.add_event_handler("connection_failed", self._on_connection_failed)
        self.xmpp.add_event_handler("disconnected", self._on_disconnected)
        self.xmpp.add_event_handler("roster_update", self._on_roster_update)
        self.xmpp.add_event_handler("presence", self._on_presence)

    @property
    def bare_jid(self) -> str:
        return JID(self.jid).bare

    @property
    def full_jid(self) -> str:
        return str(self.xmpp.boundjid)

    async def connect(self, timeout: float = 10.0) -> None:
        """Log in, send presence and fetch the roster; LoginFailed if that does not happen."""
        self._outcome = asyncio.get_running_loop().create_future()
        self.disconnected.clear()
        self.xmpp.connect(self.host, self.port)  # host AND port, never an SRV lookup
        try:
            await asyncio.wait_for(asyncio.shield(self._outcome), timeout)
        except TimeoutError:
            await self.disconnect()
            raise LoginFailed(f"{self.jid}: no session within {timeout:g} s") from None
        except LoginFailed:
            await self.disconnect()
            raise
        self.xmpp.send_presence()  # else bare-JID chats go to offline storage (G13)
        await self.xmpp.get_roster(timeout=timeout)

    async def send(self, to: str, body: str, *, mtype: str = "chat") -> str:
        message = self.xmpp.make_message(mto=to, mbody=body, mtype=mtype)
        message_id = self.xmpp.new_id()
        message["id"] = message_id
        message.send()
        return message_id

    async def send_chat_state(self, to: str, state: str) -> None:
        message = self.xmpp.make_message(mto=to, mtype="chat")
        message["chat_state"] = state
        message.send()

    async def next_message(self, from_: str | None = None, timeout: float = 10.0) -> ReceivedMessage:
        """The oldest message not handed out yet (from ``from_``: bare or full JID)."""
        return await self.expect(lambda m: True, timeout=timeout, from_=from_)

    async def expect(
        self,
        predicate: MessagePredicate | str,
        timeout: float = 10.0,
        *,
        from_: str | None = None,
    ) -> ReceivedMessage:
        """The oldest unhanded message whose body contains ``predicate`` (a str) or satisfies it.

        Messages skipped over stay available to later calls. TimeoutError names what came instead.
        """
        test: MessagePredicate = (lambda m: predicate in m.body) if isinstance(predicate, str) else predicate

        def find() -> int | None:
            for index, message in enumerate(self.messages):
                if index not in self._consumed and _matches_sender(message, from_) and test(message):
                    return index
            return None

        try:
            async with asyncio.timeout(timeout):
                async with self._arrived:
                    await self._arrived.wait_for(lambda: find() is not None)
        except TimeoutError:
            pending = [m.body[:60] for i, m in enumerate(self.messages) if i not in self._consumed][-5:]
            raise TimeoutError(
                f"{self.jid}: no matching message from {from_ or 'anyone'} in {timeout:g} s; unhandled: {pending}"
            ) from None
        index = find()
        assert index is not None
        self._consumed.add(index)
        return self.messages[index]

    async def wait_until(self, condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
        """Wait until ``condition()`` holds; it is checked after every roster push and presence."""
        try:
            async with asyncio.timeout(timeout):
                async with self._changed:
                    await self._changed.wait_for(condition)
        except TimeoutError:
            raise TimeoutError(
                f"{self.jid}: {what} did not happen in {timeout:g} s; roster pushes {self.roster_pushes[-5:]}, "
                f"presences {self.presences[-5:]}"
            ) from None

    def roster_item(self, jid: str) -> dict[str, object] | None:
        """The roster entry for ``jid`` as a client shows it (from the server's roster and its pushes,
        not from slixmpp's presence cache): subscription, name, groups; None if absent."""
        item = self.roster.get(jid)
        if item is None:
            return None
        return {"subscription": item.subscription, "name": item.name, "groups": list(item.groups)}

    async def wait_disconnected(self, timeout: float = 10.0) -> None:
        await asyncio.wait_for(self.disconnected.wait(), timeout)

    async def disconnect(self, timeout: float = 2.0) -> None:
        """Close the stream (abort after ``timeout``); safe to call twice."""
        self.xmpp.cancel_connection_attempt()  # stop slixmpp's own reconnect back-off
        if self.disconnected.is_set() and self.xmpp.transport is None:
            return
        with contextlib.suppress(TimeoutError, ConnectionError):
            await asyncio.wait_for(self.xmpp.disconnect(wait=min(timeout, 1.0)), timeout)
        if self.xmpp.transport is not None:
            self.xmpp.abort()

    # --- slixmpp event handlers -------------------------------------------------------------

    async def _on_message(self, msg: slixmpp.Message) -> None:
        if msg["type"] == "error":
            self.error_messages.append(msg)
            return
        if msg["type"] not in ("chat", "normal", "groupchat") or not msg["body"]:
            return
        received = ReceivedMessage(
            body=msg["body"], id=msg["id"], from_=str(msg["from"]), to=str(msg["to"]), type=msg["type"], stanza=msg
        )
        async with self._arrived:
            self.messages.append(received)
            self._arrived.notify_all()

    def _on_roster_update(self, iq: slixmpp.Iq) -> None:
        # Synchronous, so that the roster is up to date when get_roster() returns.
        for jid, item in iq["roster"]["items"].items():
            entry = RosterPush(str(jid), item["subscription"], item["name"], tuple(sorted(item["groups"])))
            if iq["type"] == "set":  # a push; a "result" is the answer to our own roster get
                self.roster_pushes.append(entry)
            if entry.subscription == "remove":
                self.roster.pop(entry.jid, None)
            else:
                self.roster[entry.jid] = entry
        self._notify_soon()

    def _on_presence(self, presence: slixmpp.Presence) -> None:
        self.presences.append(ReceivedPresence(str(presence["from"]), presence["type"], presence["status"]))
        self._notify_soon()

    def _notify_soon(self) -> None:
        async def notify() -> None:
            async with self._changed:
                self._changed.notify_all()

        task = asyncio.get_running_loop().create_task(notify())
        self._notifications.add(task)
        task.add_done_callback(self._notifications.discard)

    def _on_chatstate(self, msg: slixmpp.Message) -> None:
        self.chat_states.append(ChatState(from_=str(msg["from"]), state=msg["chat_state"]))

    def _on_stream_error(self, error: object) -> None:
        condition = error["condition"]  # type: ignore[index]
        text = error["text"]  # type: ignore[index]
        self.stream_errors.append((condition, text))
        log.info("%s got stream error %s: %s", self.jid, condition, text)

    def _on_ssl_cert(self, pem: str) -> None:
        self.server_certificate = ssl.PEM_cert_to_DER_cert(pem)

    def _on_invalid_chain(self, error: object) -> None:
        # Handled, so slixmpp leaves the stream open: we fail the login now instead of hanging (G6).
        self._fail(f"{self.jid}: the server's certificate was refused: {error}")
        self.xmpp.abort()

    def _on_session_start(self, _: object) -> None:
        if self._outcome is not None and not self._outcome.done():
            self._outcome.set_result(None)

    def _on_failed_auth(self, _: object) -> None:
        self._fail(f"{self.jid}: authentication failed")

    def _on_connection_failed(self, error: object) -> None:
        self._fail(f"{self.jid}: cannot connect to {self.host}:{self.port}: {error}")

    def _on_disconnected(self, reason: object) -> None:
        self.disconnected.set()
        self._fail(f"{self.jid}: disconnected before the session started ({reason})")

    def _fail(self, reason: str) -> None:
        if self._outcome is not None and not self._outcome.done():
            self._outcome.set_exception(LoginFailed(reason))

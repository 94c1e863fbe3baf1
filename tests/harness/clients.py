"""A test-side XMPP user: a thin slixmpp wrapper that records what arrives and waits with timeouts."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import slixmpp
from slixmpp.jid import JID

log = logging.getLogger(__name__)

DEFAULT_PLUGINS: tuple[str, ...] = ("xep_0030", "xep_0004", "xep_0050", "xep_0085", "xep_0184", "xep_0199", "xep_0444")


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


MessagePredicate = Callable[[ReceivedMessage], bool]


def _matches_sender(message: ReceivedMessage, from_: str | None) -> bool:
    if from_ is None:
        return True
    return message.from_ == from_ if "/" in from_ else message.from_bare == JID(from_).bare


class UserClient:
    """One logged-in account. ``messages`` keeps every chat/normal message with a body, in order;
    ``next_message``/``expect`` hand each one out once."""

    def __init__(
        self,
        jid: str,
        password: str,
        host: str,
        port: int,
        *,
        plugins: Sequence[str] = DEFAULT_PLUGINS,
    ) -> None:
        self.jid = jid
        self.host = host
        self.port = port
        # Plaintext on loopback: slixmpp refuses SASL on an unencrypted stream otherwise (G5).
        self.xmpp = slixmpp.ClientXMPP(jid, password, plugin_config={"feature_mechanisms": {"unencrypted_scram": True}})
        self.xmpp.enable_plaintext = True
        self.xmpp.enable_starttls = False
        self.xmpp.enable_direct_tls = False
        for plugin in plugins:
            self.xmpp.register_plugin(plugin)
        self.messages: list[ReceivedMessage] = []
        self.chat_states: list[ChatState] = []
        self.error_messages: list[slixmpp.Message] = []
        # Stream errors the server sent, as (condition, text): ("not-authorized", "Account deleted").
        self.stream_errors: list[tuple[str, str]] = []
        self.disconnected = asyncio.Event()
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
        if msg["type"] not in ("chat", "normal") or not msg["body"]:
            return
        received = ReceivedMessage(
            body=msg["body"], id=msg["id"], from_=str(msg["from"]), to=str(msg["to"]), type=msg["type"], stanza=msg
        )
        async with self._arrived:
            self.messages.append(received)
            self._arrived.notify_all()

    def _on_chatstate(self, msg: slixmpp.Message) -> None:
        self.chat_states.append(ChatState(from_=str(msg["from"]), state=msg["chat_state"]))

    def _on_stream_error(self, error: object) -> None:
        condition = error["condition"]  # type: ignore[index]
        text = error["text"]  # type: ignore[index]
        self.stream_errors.append((condition, text))
        log.info("%s got stream error %s: %s", self.jid, condition, text)

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

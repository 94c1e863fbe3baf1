"""The measuring XMPP user: a lean slixmpp client that timestamps every message as it arrives.

The test harness's UserClient keeps every message and scans them all on each ``expect``, which
costs more per message the longer a run goes; a benchmark cannot have its ruler stretch. Here a
message is stamped with ``time.monotonic_ns()`` in a synchronous handler (no task hop) and offered
to the listeners registered at that moment, then dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

import slixmpp
from slixmpp.jid import JID

# The same in every mode (baseline and agentchat): what a typical client announces.
PLUGINS = ("xep_0030", "xep_0085", "xep_0184", "xep_0199")

# (body, sender's bare JID, arrival monotonic_ns) -> True when the message was for this listener.
Listener = Callable[[str, str, int], bool]


class BenchClient:
    def __init__(self, jid: str, password: str, host: str, port: int) -> None:
        self.jid = jid
        self.host = host
        self.port = port
        self.xmpp = slixmpp.ClientXMPP(jid, password, plugin_config={"feature_mechanisms": {"unencrypted_scram": True}})
        self.xmpp.enable_plaintext = True
        self.xmpp.enable_starttls = False
        self.xmpp.enable_direct_tls = False
        for plugin in PLUGINS:
            self.xmpp.register_plugin(plugin)
        self.listeners: list[Listener] = []
        self.received = 0
        self._started: asyncio.Future[None] | None = None
        self.xmpp.add_event_handler("message", self._on_message)
        self.xmpp.add_event_handler("session_start", self._on_session_start)
        self.xmpp.add_event_handler("failed_all_auth", self._on_failed)

    @property
    def bare_jid(self) -> str:
        return JID(self.jid).bare

    async def connect(self, timeout: float = 15.0) -> None:
        self._started = asyncio.get_running_loop().create_future()
        self.xmpp.connect(self.host, self.port)
        await asyncio.wait_for(asyncio.shield(self._started), timeout)
        self.xmpp.send_presence()  # else bare-JID chats go to offline storage
        await self.xmpp.get_roster(timeout=timeout)

    async def disconnect(self) -> None:
        self.xmpp.cancel_connection_attempt()
        with contextlib.suppress(TimeoutError, ConnectionError):
            await asyncio.wait_for(self.xmpp.disconnect(wait=0.5), 3)
        if self.xmpp.transport is not None:
            self.xmpp.abort()

    def send(self, to: str, body: str) -> int:
        """Send a chat message; returns monotonic_ns taken just before it was handed to slixmpp."""
        message = self.xmpp.make_message(mto=to, mbody=body, mtype="chat")
        sent = time.monotonic_ns()
        message.send()
        return sent

    def expect(self, predicate: Callable[[str, str], bool]) -> asyncio.Future[tuple[str, int]]:
        """A future for the next message (body, sender) that satisfies ``predicate``: (body, arrival ns).

        Register it before sending what it waits for.
        """
        future: asyncio.Future[tuple[str, int]] = asyncio.get_running_loop().create_future()

        def listener(body: str, sender: str, arrived: int) -> bool:
            if future.done():  # cancelled or timed out: never consumes anything again
                return False
            if not predicate(body, sender):
                return False
            future.set_result((body, arrived))
            return True

        future.add_done_callback(lambda _: self._forget(listener))

        self.listeners.append(listener)
        return future

    def _forget(self, listener: Listener) -> None:
        with contextlib.suppress(ValueError):
            self.listeners.remove(listener)

    def _on_message(self, msg: slixmpp.Message) -> None:
        arrived = time.monotonic_ns()
        body = msg["body"]
        if not body or msg["type"] not in ("chat", "normal"):
            return
        self.received += 1
        sender = msg["from"].bare
        for listener in list(self.listeners):
            if listener(body, sender, arrived):
                break

    def _on_session_start(self, _event: object) -> None:
        if self._started is not None and not self._started.done():
            self._started.set_result(None)

    def _on_failed(self, _event: object) -> None:
        if self._started is not None and not self._started.done():
            self._started.set_exception(RuntimeError(f"{self.jid}: login refused"))


class Collector:
    """A permanent listener that keeps (body, arrival ns) of matching messages and wakes waiters."""

    def __init__(self, client: BenchClient, predicate: Callable[[str, str], bool]) -> None:
        self.items: list[tuple[str, str, int]] = []
        self._predicate = predicate
        self._changed = asyncio.Event()
        self._client = client
        client.listeners.insert(0, self._listen)

    def _listen(self, body: str, sender: str, arrived: int) -> bool:
        if not self._predicate(body, sender):
            return False
        self.items.append((body, sender, arrived))
        self._changed.set()
        return True

    async def wait_count(self, count: int, timeout: float) -> None:
        async with asyncio.timeout(timeout):
            while len(self.items) < count:
                self._changed.clear()
                await self._changed.wait()

    def close(self) -> None:
        with contextlib.suppress(ValueError):
            self._client.listeners.remove(self._listen)

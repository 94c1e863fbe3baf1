"""One ordered inbox per conversation: recorded before it is acknowledged, handled once, in arrival order.

A transport delivers messages synchronously, in the order they arrived; slixmpp would run every coroutine
handler as a task of its own, so a burst of "new", "1", "api" sent from a phone's offline queue could be
read out of order. Here each conversation (one bot and one peer) has a queue and one consumer:

    deliver() ──► queue ──► record (deduplicated, one commit per batch) ──► release ──► handler, one at a time

* *Recorded before acknowledged*: ``release`` (which lets the server forget the stanza, XEP-0198) is called
  only after the store committed the message, so a crash in between loses nothing: the server sends it
  again and the duplicate is recognised (``agentchat.chat.dedup``).
* *Once*: a duplicate is recorded nowhere and handled never (logged).
* *Nothing lost silently*: a message the store cannot save is handled from memory, and the handler is told
  (``Received.save_error``) so it can say so in one line.

Passing signals (reactions) go through the same queue, for order, but are not recorded.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from agentchat.chat.dedup import identity_of
from agentchat.chat.port import Attachment, Inbound, Release
from agentchat.errors import StateError
from agentchat.store.records import Arrival, InboundMessage

log = logging.getLogger(__name__)

# Messages recorded in one commit when a burst is waiting.
BATCH = 100


@dataclass(frozen=True)
class Received:
    """A message for a bot's handler: what arrived, and where it is kept."""

    inbound: Inbound
    record_id: int | None  # None: not recorded (a reaction, or the store refused it)
    save_error: str | None = None
    # Recovered from the store after a restart (handled before anything new).
    recovered: bool = False


Handler = Callable[[Received], Awaitable[None]]


class InboxStore(Protocol):
    async def record_arrivals(self, bot: str, arrivals: Sequence[Arrival]) -> list[int | None]: ...

    async def finish_inbound(self, record_id: int) -> None: ...


@dataclass
class _Item:
    inbound: Inbound
    release: Release | None
    recovered: InboundMessage | None = None


def _no_release() -> None:
    pass


@dataclass(frozen=True)
class HistoryLog:
    """Where a conversation's messages go in the searchable history, and whose they are."""

    conversation: str  # "agent:<id>", "room:<jid>"
    owner: str | None = None  # who may read it (None: a room's members)


class Inbox:
    """The queue and the one consumer of one conversation."""

    def __init__(self, bot: str, peer: str, store: InboxStore, handler: Handler, log: HistoryLog | None = None) -> None:
        self.bot = bot
        self.peer = peer
        self._log = log
        self._store = store
        self._handler = handler
        self._queue: asyncio.Queue[_Item] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None
        self._busy = False
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def waiting(self) -> int:
        return self._queue.qsize()

    def deliver(self, inbound: Inbound, release: Release) -> None:
        self._enqueue(_Item(inbound, release))

    def recover(self, messages: Sequence[InboundMessage]) -> None:
        """Messages a previous run recorded but never handled: they go first, in their order."""
        for message in messages:
            inbound = Inbound(sender=message.peer, text=message.body, raw_body=message.body,
                              message_id=message.message_id, received_at=message.received_at,
                              attachments=tuple(Attachment(url) for url in message.attachments))
            self._enqueue(_Item(inbound, None, recovered=message))

    def _enqueue(self, item: _Item) -> None:
        self._idle.clear()
        self._queue.put_nowait(item)
        if self._worker is None or self._worker.done():
            self._worker = asyncio.get_running_loop().create_task(self._work(), name=f"inbox:{self.bot}:{self.peer}")

    async def drain(self, timeout: float) -> bool:
        """Wait until everything delivered so far is handled; False if that took longer than ``timeout``."""
        try:
            async with asyncio.timeout(timeout):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True

    async def close(self) -> None:
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.cancel()
            await asyncio.gather(worker, return_exceptions=True)
        # What never reached the store stays unacknowledged: the server keeps it for the next session.
        while not self._queue.empty():
            self._queue.get_nowait()
        self._idle.set()

    async def _work(self) -> None:
        while True:
            if self._queue.empty():
                self._idle.set()
            batch = [await self._queue.get()]
            while len(batch) < BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            for received in await self._record(batch):
                if received is None:
                    continue
                try:
                    await self._handler(received)
                except asyncio.CancelledError:
                    raise
                except Exception:  # a bug in one message's handling must not stop the conversation
                    log.exception("%s: handling a message from %s failed", self.bot, self.peer)
                    if received.record_id is not None:
                        await self._finish_quietly(received.record_id)

    async def _record(self, batch: list[_Item]) -> list[Received | None]:
        """Record the batch's new messages in one commit, then release every stanza of the batch."""
        fresh = [item for item in batch if item.recovered is None and item.inbound.durable]
        ids: list[int | None] = []
        error: str | None = None
        if fresh:
            try:
                ids = await self._store.record_arrivals(self.bot, [_arrival(item.inbound, self._log) for item in fresh])
            except StateError as exc:
                # Keep serving from memory; only a crash before the answer loses these now.
                log.error("%s: messages from %s kept in memory only: %s", self.bot, self.peer, exc)
                error, ids = str(exc), []
        recorded = dict(zip((id(item) for item in fresh), ids, strict=False))
        results: list[Received | None] = []
        for item in batch:
            (item.release or _no_release)()
            if item.recovered is not None:
                results.append(Received(item.inbound, item.recovered.id, recovered=True))
            elif not item.inbound.durable:
                results.append(Received(item.inbound, None))
            elif error is not None:
                results.append(Received(item.inbound, None, save_error=error))
            elif recorded.get(id(item)) is None:
                log.info("%s: a message from %s arrived again (id %s); not handled twice",
                         self.bot, self.peer, item.inbound.origin_id or item.inbound.message_id or "none")
                results.append(None)
            else:
                results.append(Received(item.inbound, recorded[id(item)]))
        return results

    async def _finish_quietly(self, record_id: int) -> None:
        try:
            await self._store.finish_inbound(record_id)
        except StateError as exc:
            log.error("%s: %s", self.bot, exc)


def _arrival(inbound: Inbound, log: HistoryLog | None = None) -> Arrival:
    identity = identity_of(inbound)
    return Arrival(
        # A line marked as not for keeping (a turn's status line) is handled but not kept in the history.
        log=log.conversation if log is not None and not inbound.transient else None,
        author=inbound.nick or inbound.sender,
        owner=log.owner if log is not None else None,
        peer=inbound.sender,
        message_id=inbound.origin_id or inbound.message_id,
        body=inbound.raw_body,
        keys=identity.keys,
        text_key=identity.text_key,
        resent_at=identity.resent_at,
        received_at=inbound.received_at,
        attachments=tuple(attachment.url for attachment in inbound.attachments),
    )


class Conversations:
    """A bot's inboxes, one per peer, made on first contact."""

    def __init__(self, bot: str, store: InboxStore, handler: Handler,
                 log: Callable[[str], HistoryLog | None] | None = None) -> None:
        self.bot = bot
        self._store = store
        self._handler = handler
        self._log = log
        self._inboxes: dict[str, Inbox] = {}

    def inbox(self, peer: str) -> Inbox:
        inbox = self._inboxes.get(peer)
        if inbox is None:
            log = self._log(peer) if self._log is not None else None
            inbox = self._inboxes[peer] = Inbox(self.bot, peer, self._store, self._handler, log)
        return inbox

    def deliver(self, inbound: Inbound, release: Release) -> None:
        self.inbox(inbound.sender).deliver(inbound, release)

    def recover(self, messages: Sequence[InboundMessage]) -> None:
        for message in messages:
            self.inbox(message.peer).recover([message])

    async def drain(self, timeout: float) -> bool:
        results = await asyncio.gather(*(inbox.drain(timeout) for inbox in list(self._inboxes.values())))
        return all(results)

    async def close(self) -> None:
        await asyncio.gather(*(inbox.close() for inbox in list(self._inboxes.values())))

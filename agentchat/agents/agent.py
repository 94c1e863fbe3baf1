"""One agent: its backend process, its queue of user messages, its turns and its persisted record.

The Agent knows nothing about XMPP: it talks to its chat side through the ChatPort protocol, and
to its owner's permission prompts through the PermissionRegistry.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from agentchat.agents.backends.base import (
    AgentBackend,
    AgentEvent,
    BackendSpec,
    ProcessExited,
    SessionStarted,
    TurnResult,
)
from agentchat.errors import AgentChatError, StateError
from agentchat.store.database import StateStore
from agentchat.store.records import AgentRecord, AgentStatus

log = logging.getLogger(__name__)

BackendFactory = Callable[[BackendSpec], AgentBackend]


class ChatPort(Protocol):
    """What an agent needs from its chat side (the XMPP bot implements it)."""

    async def show_event(self, event: AgentEvent) -> None: ...

    async def notify(self, text: str) -> None: ...

    def status_changed(self, status: AgentStatus) -> None: ...


class SlotPool(Protocol):
    """Limits how many backend processes run at once (agents.maxConcurrent)."""

    async def acquire(self, agent: Agent) -> None: ...

    def release(self, agent: Agent) -> None: ...

    def agent_became_idle(self, agent: Agent) -> None: ...


@dataclass(frozen=True)
class Submitted:
    duplicate: bool = False
    # How many messages wait before this one (0: it starts now, or right after the current turn).
    ahead: int = 0
    busy: bool = False
    # Why the message could not be saved (the disk is full…); it is handled from memory all the same.
    save_error: str | None = None


@dataclass
class _QueuedMessage:
    inbound_id: int | None  # None: never saved (the store refused it)
    text: str


class Agent:
    """Serialises its own work: one worker task takes queued messages one turn at a time."""

    def __init__(
        self,
        record: AgentRecord,
        *,
        store: StateStore,
        backend_factory: BackendFactory,
        spec_factory: Callable[[AgentRecord], BackendSpec],
        slots: SlotPool,
        idle_timeout: float,
    ) -> None:
        self.record = record
        self.chat: ChatPort | None = None
        self._store = store
        self._backend_factory = backend_factory
        self._spec_factory = spec_factory
        self._slots = slots
        self._idle_timeout = idle_timeout
        self._queue: asyncio.Queue[_QueuedMessage] = asyncio.Queue()
        self._backend: AgentBackend | None = None
        self._pump: asyncio.Task[None] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._turn_done: asyncio.Event | None = None
        self._turn_outcome: AgentEvent | None = None
        self.in_turn = False
        self.turn_started_at: float | None = None
        self.waiting_for_slot = False
        # Set while _discard_backend() ends the process and cleans up after it (the slot is held until then).
        self._discarding: asyncio.Event | None = None

    @property
    def id(self) -> str:
        return self.record.id

    @property
    def owner(self) -> str:
        return self.record.owner

    @property
    def process_running(self) -> bool:
        return self._backend is not None and self._backend.running

    @property
    def queued(self) -> int:
        return self._queue.qsize()

    @property
    def backend_pid(self) -> int | None:
        return self._backend.pid if self._backend is not None else None

    # life cycle

    async def start(self) -> None:
        """Start the worker and re-queue every message a previous run received but never finished."""
        for message in await self._store.pending_inbound(self.id):
            self._queue.put_nowait(_QueuedMessage(message.id, message.body))
        self._worker = asyncio.get_running_loop().create_task(self._work(), name=f"agent:{self.id}")

    async def shutdown(self) -> None:
        """Service stop: end the worker and the process; the record stays for the next start."""
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
            self._worker = None
        await self.stop_process(AgentStatus.STOPPED)

    # what the chat side calls

    async def submit(self, text: str, stanza_id: str | None) -> Submitted:
        """Record the message (so a crash cannot lose it), then queue it for the next turn."""
        save_error: str | None = None
        try:
            inbound_id = await self._store.record_inbound(self.id, stanza_id, text)
        except StateError as exc:
            # Keep serving: the message is handled from memory; only a crash before its turn loses it.
            log.error("agent %s: message kept in memory only: %s", self.id, exc)
            inbound_id, save_error = None, str(exc)
        else:
            if inbound_id is None:
                return Submitted(duplicate=True)
        ahead = self._queue.qsize()
        busy = self.in_turn or self.waiting_for_slot
        self._queue.put_nowait(_QueuedMessage(inbound_id, text))
        return Submitted(ahead=ahead, busy=busy, save_error=save_error)

    async def interrupt(self) -> bool:
        """Stop the running turn (the process and session stay); False when nothing runs."""
        if not self.in_turn or self._backend is None:
            return False
        await self._backend.interrupt()
        return True

    # the worker

    async def _work(self) -> None:
        while True:
            timeout = self._idle_timeout if self.process_running else None
            try:
                # asyncio.timeout, not wait_for: wait_for makes a task per message.
                async with asyncio.timeout(timeout):
                    message = await self._queue.get()
            except TimeoutError:
                await self.stop_process(AgentStatus.STOPPED)
                if self.chat is not None:
                    await self.chat.notify("💤 Stopped after being idle; your next message resumes the session.")
                continue
            try:
                await self._run_turn(message)
            except asyncio.CancelledError:
                raise
            except AgentChatError as exc:
                log.error("agent %s: turn failed: %s", self.id, exc)
                await self._finish_message(message)
                if self.chat is not None:
                    await self.chat.notify(f"⚠️ {exc}")
            except Exception:  # a bug of ours: the agent must keep taking messages all the same
                log.exception("agent %s: turn failed", self.id)
                self.in_turn = False
                await self._finish_message(message)  # not again at every restart: the owner is told
                if self.chat is not None:
                    await self.chat.notify("⚠️ Internal error while handling your message (see the service log).")
            if self._queue.empty():
                self._slots.agent_became_idle(self)  # an agent waiting for a slot may have this one's

    async def _run_turn(self, message: _QueuedMessage) -> None:
        for attempt in range(2):
            # Busy from here on: while its process starts, the agent holds a slot without a process,
            # and must not look idle to ProcessSlots (stopping it frees nothing: acquire() spun forever).
            self.in_turn = True
            try:
                await self._ensure_process()
            except BaseException:
                self.in_turn = False
                raise
            assert self._backend is not None
            self._turn_done = asyncio.Event()
            self._turn_outcome = None
            self.turn_started_at = time.monotonic()
            # Nothing is written between the message and the backend: a restart re-queues whatever
            # is not DONE, and a turn's statuses are never restored (restore() says STOPPED).
            self._apply_status(AgentStatus.WORKING)
            try:
                await self._backend.send(message.text)
                await self._turn_done.wait()
            finally:
                self.in_turn = False
                self.turn_started_at = None
            outcome = self._turn_outcome
            if isinstance(outcome, ProcessExited) and outcome.session_not_found and attempt == 0:
                await self._start_fresh_session()
                continue
            break
        self.record.last_active = time.time()
        self._apply_status(AgentStatus.IDLE if self.process_running else AgentStatus.STOPPED)
        await self._finish_message(message)

    async def _finish_message(self, message: _QueuedMessage) -> None:
        """One commit per turn: the message is DONE, and the counters, status and pid are saved."""
        try:
            await self._store.finish_turn(self.record, message.inbound_id)
        except StateError as exc:
            # Bookkeeping: the worker must go on (at worst a restart runs the message again).
            log.error("agent %s: %s", self.id, exc)

    async def _start_fresh_session(self) -> None:
        self.record.session_id = str(uuid.uuid4())
        self.record.session_started = False
        await self._save()
        if self.chat is not None:
            await self.chat.notify("🆕 The previous Claude session no longer exists; starting a fresh one.")

    async def _ensure_process(self) -> None:
        if self._discarding is not None:
            # The last process is still being ended (to make room for another agent): its clean-up
            # (slot, pump, turn) must be over before a new one starts, or it would hit the new one.
            await self._discarding.wait()
        if self.process_running:
            return
        if self._backend is not None:
            await self._discard_backend()
        self.waiting_for_slot = True
        try:
            await self._slots.acquire(self)
        finally:
            self.waiting_for_slot = False
        self._apply_status(AgentStatus.STARTING)
        backend = self._backend_factory(self._spec_factory(self.record))
        try:
            await backend.start()
        except BaseException:
            self._slots.release(self)
            raise
        self._backend = backend
        self.record.pid = backend.pid
        await self._save()
        self._pump = asyncio.get_running_loop().create_task(self._pump_events(backend), name=f"pump:{self.id}")

    async def stop_process(self, status: AgentStatus) -> None:
        """End the backend process, if any, and free its slot."""
        if self._backend is not None:
            await self._discard_backend()
        elif self._discarding is not None:
            # Already ending (two agents picked this one to make room): wait until its slot is
            # free. Returning at once made ProcessSlots.acquire() spin without ever yielding.
            await self._discarding.wait()
        if self.record.status != AgentStatus.KILLED and self._apply_status(status):
            await self._save()

    async def _discard_backend(self) -> None:
        backend, self._backend = self._backend, None
        discarding = self._discarding = asyncio.Event()
        try:
            if backend is not None:
                try:
                    await backend.stop()
                finally:
                    self._slots.release(self)
            if self._pump is not None:
                self._pump.cancel()
                await asyncio.gather(self._pump, return_exceptions=True)
                self._pump = None
            if self._turn_done is not None:
                self._turn_done.set()
            self.record.pid = None
        finally:
            self._discarding = None
            discarding.set()

    async def _pump_events(self, backend: AgentBackend) -> None:
        async for event in backend.events():
            try:
                await self._handle_event(event)
            except asyncio.CancelledError:
                raise
            except Exception:  # a rendering bug must not stop the agent's event stream
                log.exception("agent %s: handling %s failed", self.id, type(event).__name__)
            if isinstance(event, ProcessExited):
                return

    async def _handle_event(self, event: AgentEvent) -> None:
        if isinstance(event, SessionStarted):
            if event.session_id and event.session_id != self.record.session_id:
                self.record.session_id = event.session_id
            self.record.session_started = True
            await self._save()
        elif isinstance(event, TurnResult):
            self.record.turns += 1
            if event.total_cost_usd is not None:
                self.record.total_cost_usd = event.total_cost_usd
            elif event.turn_cost_usd is not None:
                self.record.total_cost_usd += event.turn_cost_usd
        if isinstance(event, ProcessExited):
            await self._process_exited(event)
        elif self.chat is not None:
            await self.chat.show_event(event)
        if isinstance(event, TurnResult):
            # The counters are saved with the end of the turn (_finish_message), in one commit.
            if self._turn_done is not None:
                self._turn_outcome = event
                self._turn_done.set()

    async def _process_exited(self, event: ProcessExited) -> None:
        self._slots.release(self)
        self._backend = None
        self.record.pid = None
        if not event.expected and not event.session_not_found and self.chat is not None:
            await self.chat.show_event(event)
        self._turn_outcome = event
        if self._turn_done is not None:
            self._turn_done.set()
        if not self.in_turn and self._apply_status(AgentStatus.STOPPED):
            await self._save()

    def _apply_status(self, status: AgentStatus) -> bool:
        """Take the status and tell the chat side at once; False if it is unchanged. Not saved:
        the status is written with the next save, and only KILLED matters to a restart."""
        if self.record.status == status:
            return False
        self.record.status = status
        if self.chat is not None:
            self.chat.status_changed(status)
        return True

    async def mark_waiting(self, waiting: bool) -> None:
        """The permission side tells us a prompt opened or closed."""
        if self.in_turn:
            self._apply_status(AgentStatus.WAITING if waiting else AgentStatus.WORKING)

    async def _save(self) -> None:
        try:
            await self._store.save_agent(self.record)
        except StateError as exc:
            # Keep serving: the chat works without the disk; the next save may succeed.
            log.error("agent %s: %s", self.id, exc)

    def repo_path(self) -> Path:
        return Path(self.record.repo)

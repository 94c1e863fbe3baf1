"""One agent: its backend process, its queue of user messages, its turns and its persisted record.

The Agent knows nothing about XMPP: it talks to its chat side through the ChatPort protocol, and
to its owner's permission prompts through the PermissionRegistry.
"""

from __future__ import annotations

import asyncio
import enum
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
    PermissionModeChanged,
    ProcessExited,
    SessionStarted,
    TurnImage,
    TurnResult,
    UserTurn,
)
from agentchat.agents.backends.process import wait_event
from agentchat.errors import AgentChatError, BackendError, StateError
from agentchat.store.database import StateStore
from agentchat.store.records import AgentRecord, AgentStatus, InboundMessage, MessageState
from agentchat.tasks import TaskGroup

log = logging.getLogger(__name__)

BackendFactory = Callable[[BackendSpec], AgentBackend]

# How long a process that died at start takes to report its end (its pipes are drained first).
PROCESS_END_WAIT = 5.0


def _final_state(outcome: AgentEvent | None) -> tuple[TurnState, str]:
    """How a turn ended, from its last event."""
    if isinstance(outcome, TurnResult):
        if outcome.stopped:
            return TurnState.CANCELLED, ""
        if outcome.is_error or outcome.subtype != "success":
            return TurnState.FAILED, "; ".join(outcome.errors) or (outcome.text or outcome.subtype)
        return TurnState.COMPLETED, ""
    if isinstance(outcome, ProcessExited):
        return TurnState.FAILED, f"the process exited ({outcome.exit_code})"
    return TurnState.CANCELLED, ""


class ChatPort(Protocol):
    """What an agent needs from its chat side (its bot implements it)."""

    async def show_event(self, event: AgentEvent) -> None: ...

    async def notify(self, text: str) -> None: ...

    def status_changed(self, status: AgentStatus) -> None: ...

    def recover_unhandled(self, messages: list[InboundMessage]) -> None:
        """Messages a previous run recorded but whose handling never finished: the chat side reads them again."""

    def turn_changed(self, turn: Turn) -> None:
        """A turn was submitted, began, waits for the user, or ended (its state says which)."""


class SlotPool(Protocol):
    """Limits how many backend processes run at once (agents.maxConcurrent)."""

    async def acquire(self, agent: Agent) -> None: ...

    def release(self, agent: Agent) -> None: ...

    def agent_became_idle(self, agent: Agent) -> None: ...


@dataclass(frozen=True)
class Submitted:
    # How many messages wait before this one (0: it starts now, or right after the current turn).
    ahead: int = 0
    busy: bool = False


class Interrupted(enum.Enum):
    NOTHING = "nothing"  # no turn was running
    STOPPED = "stopped"  # the backend acknowledged the interrupt; the turn ends with ⏹ Stopped
    FORCED = "forced"  # the backend did not acknowledge: its process was ended


@dataclass(frozen=True)
class InterruptOutcome:
    how: Interrupted
    reason: str = ""


class TurnState(enum.StrEnum):
    """A turn's life (the task life cycle shown in `list`, `status` and rooms)."""

    SUBMITTED = "submitted"  # waits for its turn
    WORKING = "working"
    INPUT_REQUIRED = "input-required"  # a prompt waits for the user
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"  # stopped, or cut by a stop of the service

    @property
    def final(self) -> bool:
        return self in (TurnState.COMPLETED, TurnState.FAILED, TurnState.CANCELLED)


@dataclass
class _QueuedMessage:
    inbound_id: int | None  # None: never saved (the store refused it)
    text: str
    message_id: str | None = None  # the client's id, for corrections (XEP-0308)
    # Where it came from when not from the owner's chat (a room's JID): the turn's answers go back there.
    origin: str | None = None
    # How many agents handed it on before it reached this one (0: a person wrote it); limits loops.
    chain: int = 0
    state: TurnState = TurnState.SUBMITTED
    images: tuple[TurnImage, ...] = ()  # pictures that came with it (read again from their saved files at a restart)


@dataclass(frozen=True)
class Turn:
    """What the chat side is told of a turn."""

    record_id: int | None
    text: str
    origin: str | None
    chain: int
    state: TurnState
    detail: str = ""  # why it failed, which prompt waits

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
        # In a turn whose message is not with the agent yet (its process starting, or a slot awaited), a stop
        # is kept here: the message is then never sent, and the turn ends as stopped.
        self._message_sent = False
        self._stop_before_sent = False
        self.turn_started_at: float | None = None
        self.waiting_for_slot = False
        # Set while _discard_backend() ends the process and cleans up after it (the slot is held until then).
        self._discarding: asyncio.Event | None = None
        # The message whose turn runs now, and the one a stop or a crash cut (the owner may `retry` it).
        self._running: _QueuedMessage | None = None
        self.interrupted: _QueuedMessage | None = None
        # How the last process ended (for a turn whose process died before it could be sent the message).
        self._last_exit: ProcessExited | None = None
        # Bookkeeping writes nothing waits for (a message's state), kept and logged if they fail.
        self._writes = TaskGroup(f"agent-state:{record.id}")

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

    @property
    def engine(self) -> str:
        """"Claude Code 2.1.332", "Codex 0.171.0": the engine and, once its process told, its version."""
        if self._backend is None:
            return self.record.backend
        version = self._backend.engine_version
        return f"{self._backend.engine_name} {version}" if version else self._backend.engine_name

    @property
    def live_backend(self) -> AgentBackend | None:
        """The running backend, to switch a setting on it (agentchat.agents.modes); None without a process."""
        return self._backend if self.process_running else None

    async def save_record(self) -> None:
        """Persist the record now (a setting changed from the chat)."""
        await self._save()

    # life cycle

    async def load(self, pending: list[InboundMessage] | None = None) -> None:
        """Pick up what a previous run left, before the chat goes online: queued messages run (they never
        did), a message whose turn was cut is kept for `retry`, what was never handled goes to the chat side.
        ``pending``: this agent's messages not done, when the caller read every agent's at once."""
        unhandled: list[InboundMessage] = []
        for message in pending if pending is not None else await self._store.pending_inbound(self.id):
            if message.state is MessageState.QUEUED:
                self._queue.put_nowait(await self._requeued(message))
            elif message.state in (MessageState.RUNNING, MessageState.INTERRUPTED):
                if self.interrupted is not None and self.interrupted.inbound_id is not None:
                    await self._set_state(self.interrupted.inbound_id, MessageState.DONE)  # only the last one
                self.interrupted = await self._requeued(message)
                if message.state is MessageState.RUNNING:
                    await self._set_state(message.id, MessageState.INTERRUPTED)
            else:
                unhandled.append(message)
        if unhandled and self.chat is not None:
            self.chat.recover_unhandled(unhandled)

    async def _requeued(self, message: InboundMessage) -> _QueuedMessage:
        """A message of a previous run, as the agent was to get it: with its files taken, their text and
        the pictures read again from where they were saved (one that is gone is a path only)."""
        images: list[TurnImage] = []
        for media_type, path in message.turn_images:
            try:
                data = await asyncio.to_thread((self.repo_path() / path).read_bytes)
            except OSError as exc:
                log.warning("agent %s: the picture %s is gone: %s", self.id, path, exc)
                continue
            images.append(TurnImage(media_type, data, path))
        text = message.turn_text if message.turn_text is not None else message.body
        return _QueuedMessage(message.id, text, message.message_id, origin=self._origin_of(message),
                              images=tuple(images))

    async def start(self) -> None:
        """Start taking turns; tell the owner about a turn a restart cut."""
        if self.interrupted is not None and self.chat is not None:
            flat = " ".join(self.interrupted.text.split())
            await self.chat.notify(
                f"🔄 agentchat restarted while the agent was working on “{flat[:60]}{'…' if len(flat) > 60 else ''}”; "
                "that turn did not finish and was not run again. Send `retry` to run it again."
            )
        self._worker = asyncio.get_running_loop().create_task(self._work(), name=f"agent:{self.id}")

    async def shutdown(self) -> None:
        """Service stop: end the worker and the process; the record stays for the next start. A turn
        cut here is kept for `retry` and the owner is told."""
        running = self._running
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
            self._worker = None
        if running is not None and self._running is running:
            self._running = None
            self.interrupted = running
            if running.inbound_id is not None:
                await self._set_state(running.inbound_id, MessageState.INTERRUPTED)
            if self.chat is not None:
                await self.chat.notify(
                    "⏹ agentchat is stopping: the current turn was cut before it finished. "
                    "After the restart, send `retry` to run your message again."
                )
        await self.stop_process(AgentStatus.STOPPED)
        await self._writes.wait_all()

    # what the chat side calls

    def submit(self, text: str, record_id: int | None, message_id: str | None = None, *,
               origin: str | None = None, chain: int = 0, images: tuple[TurnImage, ...] = (),
               files_taken: bool = False) -> Submitted:
        """Queue a message (already recorded by the chat side) for the next turn. ``origin``: the room it
        came from (its answers go there); ``chain``: how many agents handed it on before; ``images``:
        pictures that came with it; ``files_taken``: its files were saved, so ``text`` is not its recorded
        body (the record learns it, for a restart)."""
        if files_taken and record_id is not None:
            self._writes.spawn(self._record_turn(record_id, text, images), f"turn:{record_id}")
        ahead = self._queue.qsize()
        busy = self.in_turn or self.waiting_for_slot
        message = _QueuedMessage(record_id, text, message_id, origin=origin, chain=chain, images=images)
        self._queue.put_nowait(message)
        if (busy or ahead) and record_id is not None:
            # It waits: a restart must run it (a message still RECEIVED would go through the chat side again).
            self._write_state(record_id, MessageState.QUEUED)
        if origin is not None and (busy or ahead):
            # A room hears that its turn waits; one that starts at once goes straight to "working".
            self._tell_turn(message)
        return Submitted(ahead=ahead, busy=busy)

    @property
    def current_turn(self) -> Turn | None:
        """The running turn, if any."""
        message = self._running
        return self._turn_of(message) if message is not None else None

    @property
    def current_chain(self) -> int:
        """The chain of the running turn (what an agent's message to another one continues)."""
        return self._running.chain if self._running is not None else 0

    def _turn_of(self, message: _QueuedMessage, detail: str = "") -> Turn:
        return Turn(message.inbound_id, message.text, message.origin, message.chain, message.state, detail)

    def _tell_turn(self, message: _QueuedMessage, state: TurnState | None = None, detail: str = "") -> None:
        if state is not None:
            message.state = state
        if self.chat is not None:
            self.chat.turn_changed(self._turn_of(message, detail))

    def _origin_of(self, message: InboundMessage) -> str | None:
        """A message recorded for this agent by a room (its peer is the room, not the owner)."""
        return message.peer if message.peer and message.peer != self.owner else None

    def correct_queued(self, message_id: str, text: str) -> bool:
        """Replace the text of a message that still waits for its turn (XEP-0308); False if none does."""
        for message in self._queue._queue:  # type: ignore[attr-defined]  # asyncio.Queue keeps a deque
            if message.message_id == message_id:
                message.text = text
                return True
        return False

    def retry(self) -> str | None:
        """Queue again the message whose turn was cut; its text, or None when there is none."""
        message, self.interrupted = self.interrupted, None
        if message is None:
            return None
        self._queue.put_nowait(message)
        if message.inbound_id is not None:
            self._write_state(message.inbound_id, MessageState.QUEUED)
        return message.text

    async def interrupt(self) -> InterruptOutcome:
        """Stop the running turn (the process and session stay). A backend that does not acknowledge
        the interrupt has its process ended (the next message resumes the session)."""
        if not self.in_turn:
            return InterruptOutcome(Interrupted.NOTHING)
        if not self._message_sent:
            self._stop_before_sent = True
            return InterruptOutcome(Interrupted.STOPPED)
        if self._backend is None:
            return InterruptOutcome(Interrupted.NOTHING)
        try:
            await self._backend.interrupt()
        except BackendError as exc:
            log.warning("agent %s: %s; ending its process", self.id, exc)
            await self.stop_process(AgentStatus.STOPPED)
            return InterruptOutcome(Interrupted.FORCED, str(exc))
        return InterruptOutcome(Interrupted.STOPPED)

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
        self._running = message
        self._tell_turn(message, TurnState.WORKING)
        if message.inbound_id is not None:
            # Not awaited: the turn must not wait for the disk. The store runs its work in order, so the
            # turn's end (DONE) is written after this.
            self._write_state(message.inbound_id, MessageState.RUNNING)
        for attempt in range(2):
            # Busy from here on: while its process starts, the agent holds a slot without a process,
            # and must not look idle to ProcessSlots (stopping it frees nothing: acquire() spun forever).
            self.in_turn = True
            self._message_sent = False
            try:
                await self._ensure_process()
            except BaseException:
                self.in_turn = False
                self._stop_before_sent = False
                raise
            if self._stop_before_sent:
                # Stopped while its process started: the agent never gets the message.
                self.in_turn = self._stop_before_sent = False
                self._turn_outcome = TurnResult(is_error=False, subtype="error_during_execution", interrupted=True)
                if self.chat is not None:
                    await self.chat.show_event(self._turn_outcome)
                break
            backend = self._backend
            self._turn_done = asyncio.Event()
            self._turn_outcome = None
            self.turn_started_at = time.monotonic()
            # A turn's statuses are never written: restore() says STOPPED.
            self._apply_status(AgentStatus.WORKING)
            try:
                try:
                    if backend is None:
                        raise BackendError("the agent's process ended before it could take the message")
                    self._message_sent = True  # from here a stop goes to the process
                    await backend.send_turn(UserTurn(message.text, message.images))
                except BackendError:
                    if backend is not None and backend.running:
                        raise
                    # It died before taking the message (a CLI that refuses its session): how it ended
                    # decides what comes next.
                    if self._last_exit is None and not await wait_event(self._turn_done, PROCESS_END_WAIT):
                        raise
                    self._turn_outcome = self._turn_outcome or self._last_exit
                else:
                    await self._turn_done.wait()
            finally:
                self.in_turn = False
                self.turn_started_at = None
            outcome = self._turn_outcome
            if isinstance(outcome, ProcessExited) and attempt == 0:
                if outcome.session_not_found:
                    await self._start_fresh_session()
                    continue
                if outcome.session_in_use:
                    # The CLI already has this session (our record said it had not started): resume it.
                    self.record.session_started = True
                    await self._save()
                    continue
            break
        self._running = None
        self._tell_turn(message, *_final_state(self._turn_outcome))
        self.record.last_active = time.time()
        self._apply_status(AgentStatus.IDLE if self.process_running else AgentStatus.STOPPED)
        await self._finish_message(message)

    async def _finish_message(self, message: _QueuedMessage) -> None:
        """One commit per turn: the message is DONE, and the counters, status and pid are saved."""
        self._running = None
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
            await self.chat.notify("🆕 The agent's previous session no longer exists; starting a fresh one.")

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
        self._last_exit = None
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
        elif isinstance(event, PermissionModeChanged):
            # The CLI switched by itself (an approved plan leaves plan mode): the next start keeps it.
            self.record.permission_mode = None if event.mode == "default" else event.mode
            await self._save()
        elif isinstance(event, TurnResult):
            self.record.turns += 1
            # Added up here, over every process: a backend's own total starts again with each process.
            if event.turn_cost_usd is not None:
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
        self._last_exit = event
        self._slots.release(self)
        self._backend = None
        self.record.pid = None
        if not event.expected and not event.session_not_found and not event.session_in_use and self.chat is not None:
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

    async def mark_waiting(self, waiting: bool, detail: str = "") -> None:
        """The permission side tells us a prompt opened or closed."""
        if self.in_turn:
            self._apply_status(AgentStatus.WAITING if waiting else AgentStatus.WORKING)
            if self._running is not None:
                self._tell_turn(self._running, TurnState.INPUT_REQUIRED if waiting else TurnState.WORKING, detail)

    async def _record_turn(self, record_id: int, text: str, images: tuple[TurnImage, ...]) -> None:
        try:
            await self._store.set_inbound_turn(record_id, text, [(image.media_type, image.path) for image in images])
        except StateError as exc:
            log.error("agent %s: %s", self.id, exc)

    def _write_state(self, record_id: int, state: MessageState) -> None:
        self._writes.spawn(self._set_state(record_id, state), f"{state.value}:{record_id}")

    async def _set_state(self, record_id: int, state: MessageState) -> None:
        try:
            await self._store.set_inbound_state(record_id, state)
        except StateError as exc:
            log.error("agent %s: %s", self.id, exc)

    async def _save(self) -> None:
        try:
            await self._store.save_agent(self.record)
        except StateError as exc:
            # Keep serving: the chat works without the disk; the next save may succeed.
            log.error("agent %s: %s", self.id, exc)

    def repo_path(self) -> Path:
        return Path(self.record.repo)

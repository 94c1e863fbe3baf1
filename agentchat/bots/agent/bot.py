"""An agent's bot (swift-fox@domain): its owner's messages in, the agent's events out, its prompts.

It speaks through a ChatTransport (agentchat.chat.port) and reads its owner's messages from one ordered,
exactly-once inbox (agentchat.chat.inbox). What a message is for, in this order: a reaction to a prompt, a
room invitation or room message (declined), a correction of a queued message, an answer to a pending prompt
(by text, by reply or quote of the prompt), one of the bot's commands, else a message for the agent.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from agentchat.agents.agent import Agent, Turn, TurnState
from agentchat.agents.backends.base import (
    AgentEvent,
    AssistantText,
    BackendNotice,
    PermissionModeChanged,
    ProcessExited,
    ToolResult,
    ToolUse,
    TurnImage,
    TurnResult,
)
from agentchat.bots.agent.commands import AGENT_COMMANDS
from agentchat.bots.agent.progress import TurnProgress
from agentchat.bots.agent.resolved import PromptMessages
from agentchat.chat.events import render_process_exit, render_tool_error, render_tool_use, render_turn_summary
from agentchat.chat.inbox import Conversations, HistoryLog, Received
from agentchat.chat.port import ChatState, ChatTransport, Inbound, MessageKind, Outbound, Release, RoomTransport
from agentchat.chat.prompts import render_prompt_resolved, render_prompt_timeout, render_request
from agentchat.chat.quoting import split_leading_quote
from agentchat.chat.splitting import split_message
from agentchat.chat.styling import markdown_to_styling
from agentchat.config import ClaudeSettings
from agentchat.errors import StateError
from agentchat.files.agent_files import AgentFiles
from agentchat.permissions.registry import AnswerResult, AnswerStatus, PermissionRegistry
from agentchat.permissions.replies import looks_like_reply
from agentchat.permissions.requests import Behavior, DecidedBy, Decision, PermissionRequest
from agentchat.store.database import StateStore
from agentchat.store.records import AgentStatus, InboundMessage, MessageState

log = logging.getLogger(__name__)

# Gajim drops a remote "composing" after 30 s, Dino after 60 s: refresh well before.
COMPOSING_REFRESH = 25.0
QUEUE_NOTICE_INTERVAL = 10.0
# A busy status (starting, working, waiting) is shown once it has lasted this long: a turn that is
# over sooner needs no "working" and "idle" presence around its answer (four stanzas through
# Prosody, half its work per turn: docs/performance.md). Resting statuses are shown at once.
ANNOUNCE_BUSY_AFTER = 0.25
BUSY = frozenset({AgentStatus.STARTING, AgentStatus.WORKING, AgentStatus.WAITING})
HISTORY_BATCH = 100  # outgoing messages per history commit
HANDING_ON_KEPT = 200
# How long the bot waits at close for messages being recorded and handled.
DRAIN_SECONDS = 3.0

# The state at a glance: chat idle, away working, dnd waiting for the owner, xa stopped.
PRESENCE = {
    AgentStatus.STARTING: ("starting", "away"),
    AgentStatus.IDLE: ("idle", "chat"),
    AgentStatus.WORKING: ("working", "away"),
    AgentStatus.WAITING: ("waiting for permission", "dnd"),
    AgentStatus.STOPPED: ("stopped — send a message to resume", "xa"),
    AgentStatus.KILLED: ("stopped", "xa"),
}


def presence_of(status: AgentStatus, permission_mode: str | None) -> tuple[str, str | None]:
    """The presence status text and show for ``status``; a permission mode other than default is shown too."""
    text, show = PRESENCE[status]
    if permission_mode and permission_mode != "default" and status is not AgentStatus.KILLED:
        text = f"{text} · {permission_mode} mode"
    return text, show


THUMBS_UP = {"👍", "👍🏻", "👍🏼", "👍🏽", "👍🏾", "👍🏿", "✅"}
THUMBS_DOWN = {"👎", "👎🏻", "👎🏼", "👎🏽", "👎🏾", "👎🏿", "❌"}

# A prompt's id as its first line shows it: "🔐 Permission #a1b2", "❓ Question #c3d4", "📋 Plan #e5f6".
_PROMPT_ID = re.compile(r"(?:Permission|Question|Plan) #([0-9a-f]{4})\b")


class AgentBot:
    """The chat side of one Agent; implements the agent's ChatPort and the permission PromptListener."""

    def __init__(
        self,
        agent: Agent,
        transport: ChatTransport,
        *,
        permissions: PermissionRegistry,
        store: StateStore,
        kill_agent: Callable[[str, str], Coroutine[Any, Any, object]],
        open_transport: Callable[[], Awaitable[None]],
        close_transport: Callable[[], Awaitable[None]],
        rooms: RoomTransport | None = None,
        files: AgentFiles | None = None,
        claude_settings: ClaudeSettings | None = None,
        cli_uid: int | None = None,
    ) -> None:
        self.agent = agent
        # Files both ways (agentchat.files): the owner's uploads in, long texts and send_file out.
        self.files = files
        self.transport = transport
        self._permissions = permissions
        self._store = store
        self._kill_agent = kill_agent
        self._open_transport = open_transport
        self._close_transport = close_transport
        # The owner's messages are kept in the searchable history of this agent's chat.
        self.conversations = Conversations(
            agent.id, store, self._handle, log=lambda peer: HistoryLog(f"agent:{agent.id}", owner=peer)
        )
        self._refused: set[str] = set()
        self._prompt_messages: dict[str, str] = {}  # outgoing stanza id -> permission request id
        # Prompts whose owner was already told that a new message waits behind them.
        self._told_waiting: set[str] = set()
        self._composing: asyncio.Task[None] | None = None
        self._announced = agent.record.status  # what the owner's client shows
        self._announce_later: asyncio.TimerHandle | None = None
        # Whether "composing" is the last chat state the owner saw: each of our messages says "active".
        self._composing_shown = False
        self._kill_task: asyncio.Task[object] | None = None
        # The room whose turn runs now (its answers go there), and each room turn's status line (its first id).
        self._room_turn: str | None = None
        self._status_lines: dict[object, str] = {}
        # Room lines that are the agent's own words -> the chain of their turn (only recent ones matter).
        self._handing_on: dict[str, int] = {}
        self._rooms = rooms
        self._last_queue_notice = float("-inf")
        # `quit` asks again: the loop time until which a second `quit` ends the agent.
        self.quit_confirm_until = float("-inf")
        # Outgoing text waiting to be written to the history, and the one task writing it.
        self._history: deque[str] = deque()
        self._history_writer: asyncio.Task[None] | None = None
        # Modes, progress and closed prompts (agentchat.agents.modes, progress.py, resolved.py).
        self.claude_settings = claude_settings or ClaudeSettings()
        self.cli_uid = cli_uid  # the uid its CLI runs as (the sandbox's); None: the service's
        self.bypass_confirm_until = float("-inf")
        self.progress = TurnProgress(transport, agent.owner, setting=lambda: self.agent.record.progress,
                                     say=self.say, repo=self.agent.repo_path)
        self.prompt_messages = PromptMessages(transport, agent.owner, agent.repo_path)

    @property
    def owner(self) -> str:
        return self.agent.owner

    @property
    def jid(self) -> str:
        return self.transport.address

    def deliver(self, inbound: Inbound, release: Release) -> None:
        """The transport's sink: the owner's messages go to their inbox, anyone else is refused. Room
        lines are read by the manager, which sits in every room (agentchat.bots.room)."""
        if inbound.kind is MessageKind.GROUPCHAT:
            release()
            return
        if inbound.sender != self.owner:
            release()
            self._refuse(inbound)
            return
        self.conversations.deliver(inbound, release)

    async def open(self) -> None:
        self._announced = self.agent.record.status
        status, show = presence_of(self._announced, self.agent.record.permission_mode)
        self.transport.set_presence(status, show)
        await self._open_transport()

    def refresh_presence(self) -> None:
        """Say the announced state again (the permission mode changed)."""
        self.transport.set_presence(*presence_of(self._announced, self.agent.record.permission_mode))

    def request_contact(self) -> None:
        """Ask the owner for a presence subscription (where the server's rosters cannot be edited)."""
        self.transport.request_subscription(self.owner)

    async def close(self) -> None:
        self._cancel_announcement()
        self._stop_composing()
        self.progress.close()
        # What arrived is recorded before the server hears we took it (the transport acknowledges at stop).
        await self.conversations.drain(DRAIN_SECONDS)
        await self._close_transport()
        await self.conversations.close()
        if self._history_writer is not None:
            # Let the history catch up: the store closes (or the agent's rows go) after the bots.
            await asyncio.wait({self._history_writer}, timeout=5)

    # output (ChatPort)

    async def say(self, text: str, *, hands_on: bool = False) -> None:
        """Send text to the owner (or to the room whose turn runs): styled, split below the stanza size
        limit (or to the owner as one file when that would take many messages), persisted.
        ``hands_on``: the agent's own words, whose mentions of other agents in a room reach them."""
        room = self._room_turn
        if room is None and self.files is not None and await self.files.sender.send_long_text(text):
            chunks: list[str] = []
        else:
            chunks = split_message(text)
        for chunk in chunks:
            if room is not None:
                sent = self.transport.send(Outbound(room, chunk, MessageKind.GROUPCHAT, chat_state=None))
                if hands_on:
                    self._hand_on(sent)
            else:
                self.transport.send(Outbound(self.owner, chunk))
                self._composing_shown = False
        if room is not None:
            return  # a room's lines are kept by the room's own history
        # Written behind the chat, in order: a commit per message must not hold up the next event
        # (a burst of 1000 events took seconds with the write awaited here: docs/performance.md).
        self._history.append(text)
        if self._history_writer is None or self._history_writer.done():
            self._history_writer = asyncio.get_running_loop().create_task(
                self._write_history(), name=f"history:{self.agent.id}"
            )

    async def _write_history(self) -> None:
        while self._history:
            batch = [self._history.popleft() for _ in range(min(len(self._history), HISTORY_BATCH))]
            try:
                await self._store.record_outbound(self.agent.id, self.owner, batch)
            except StateError as exc:  # history is a convenience; the message itself went out
                log.warning("agent %s: history not saved: %s", self.agent.id, exc)

    async def notify(self, text: str) -> None:
        await self.say(text)

    def recover_unhandled(self, messages: list[InboundMessage]) -> None:
        self.conversations.recover(messages)

    def turn_changed(self, turn: Turn) -> None:
        """A room's turn: its answers go to the room, and one status line there follows its state."""
        if turn.origin is None:
            return
        if turn.state is TurnState.WORKING:
            self._room_turn = turn.origin
        key = turn.record_id if turn.record_id is not None else id(turn.text)
        text = _room_status_line(self.agent.id, turn)
        first = self._status_lines.get(key)
        sent = self.transport.send(
            Outbound(turn.origin, text, MessageKind.GROUPCHAT, chat_state=None, replaces=first, transient=True)
        )
        if first is None:
            self._status_lines[key] = sent
        if turn.state.final:
            self._status_lines.pop(key, None)
            if self._room_turn == turn.origin:
                self._room_turn = None

    async def post_to_room(self, room: str, text: str) -> str:
        """A message of the agent's own in a room (the send_message tool): it may hand the talk on."""
        return self._hand_on(self.transport.send(Outbound(room, text, MessageKind.GROUPCHAT, chat_state=None)))

    def _hand_on(self, message_id: str) -> str:
        self._handing_on[message_id] = self.agent.current_chain
        while len(self._handing_on) > HANDING_ON_KEPT:
            self._handing_on.pop(next(iter(self._handing_on)))
        return message_id

    def hands_on(self, message_id: str | None) -> int | None:
        """For a room line of ours that the agent wrote (its answer, a message it sent), whose mentions of
        other agents hand the conversation on: the chain of the turn it came from. None for status, tool
        and summary lines, said and not meant for anyone."""
        return self._handing_on.get(message_id) if message_id is not None else None

    async def join_room(self, room: str) -> None:
        if self._rooms is not None:
            await self._rooms.join_room(room, self.agent.id)

    async def leave_room(self, room: str) -> None:
        if self._rooms is not None:
            await self._rooms.leave_room(room)

    async def show_event(self, event: AgentEvent) -> None:
        if isinstance(event, PermissionModeChanged):
            self.refresh_presence()
        # Progress goes into one status message (or nowhere) where the owner's setting says so.
        if await self.progress.absorb(event):
            return
        if isinstance(event, AssistantText):
            if event.text.strip():
                await self.say(markdown_to_styling(event.text), hands_on=True)
        elif isinstance(event, ToolUse):
            await self.say(render_tool_use(event.name, event.input, self.agent.repo_path()))
        elif isinstance(event, ToolResult):
            if event.is_error:
                await self.say(render_tool_error(event.content))
        elif isinstance(event, TurnResult):
            # In a room the turn's status line, corrected to "completed", says it already: one line less for
            # every occupant. A stop or a failure keeps its line (what happened, and why).
            if self._room_turn is None or event.stopped or event.is_error or event.subtype != "success":
                await self.say(render_turn_summary(event))
        elif isinstance(event, ProcessExited):
            await self.say(render_process_exit(event.exit_code, event.stderr_tail))
            # The process that asked is gone: its prompts must not stay answerable.
            self._permissions.deny_all(self.agent.id, "The agent's process exited before the answer.", DecidedBy.KILLED)
        elif isinstance(event, BackendNotice):
            await self.say(f"ℹ️ {event.message}")
        elif isinstance(event, PermissionModeChanged):
            await self.say(f"🔧 Claude Code is in {event.mode} mode now.")

    def status_changed(self, status: AgentStatus) -> None:
        if status not in BUSY:
            self.progress.turn_over()
        self._cancel_announcement()
        if status in BUSY:
            self._announce_later = asyncio.get_running_loop().call_later(
                ANNOUNCE_BUSY_AFTER, self._announce_current
            )
        else:
            self._announce(status)

    def _cancel_announcement(self) -> None:
        if self._announce_later is not None:
            self._announce_later.cancel()
            self._announce_later = None

    def _announce_current(self) -> None:
        self._announce_later = None
        self._announce(self.agent.record.status)

    def _announce(self, status: AgentStatus) -> None:
        """Presence, and "composing" while busy with a turn."""
        if status == self._announced:
            return
        self._announced = status
        text, show = presence_of(status, self.agent.record.permission_mode)
        self.transport.set_presence(text, show)
        if status in (AgentStatus.WORKING, AgentStatus.WAITING):
            self._start_composing()
        else:
            self._stop_composing()

    def _start_composing(self) -> None:
        if self._composing is None or self._composing.done():
            self._composing = asyncio.get_running_loop().create_task(self._keep_composing())

    def _stop_composing(self) -> None:
        if self._composing is not None and not self._composing.done():
            self._composing.cancel()
            self._composing = None
            if self._composing_shown:  # else a message of ours already said "active"
                self.transport.send_chat_state(self.owner, ChatState.ACTIVE)
                self._composing_shown = False

    async def _keep_composing(self) -> None:
        while True:
            self.transport.send_chat_state(self.owner, ChatState.COMPOSING)
            self._composing_shown = True
            await asyncio.sleep(COMPOSING_REFRESH)

    # permission prompts (PromptListener)

    async def prompt_opened(self, request: PermissionRequest) -> None:
        await self.progress.prompt_opened()
        pending = len(self._permissions.pending(self.agent.id))
        text = render_request(request, self.agent.repo_path(), pending)
        room = self._room_turn
        # Ask for a receipt: the owner's client confirms the prompt reached the phone.
        for chunk in split_message(text):
            if room is not None:
                stanza_id = self.transport.send(Outbound(room, chunk, MessageKind.GROUPCHAT, chat_state=None))
            else:
                stanza_id = self.transport.send(Outbound(self.owner, chunk, receipt=True))
                self._composing_shown = False
                # Corrected in place once answered (on every device of the owner's).
                self.prompt_messages.shown(request.request_id, stanza_id)
            self._prompt_messages[stanza_id] = request.request_id
        await self.agent.mark_waiting(True, f"#{request.request_id}")

    async def prompt_timed_out(self, request: PermissionRequest) -> None:
        await self.prompt_messages.close(request, Decision.deny("", DecidedBy.TIMEOUT))
        await self.say(render_prompt_timeout(request.request_id, request.tool_name))
        await self._prompt_closed(request)

    async def prompt_cancelled(self, request: PermissionRequest) -> None:
        await self.prompt_messages.close(request, None)
        await self.say(f"↩️ Permission #{request.request_id} withdrawn (the turn was interrupted).")
        await self._prompt_closed(request)

    async def prompt_resolved(self, request: PermissionRequest, decision: Decision) -> None:
        corrected = await self.prompt_messages.close(request, decision)
        # The owner who answered sees the corrected prompt; a decision made without them is news.
        if not corrected or decision.decided_by != self.owner:
            await self.say(render_prompt_resolved(request.request_id, describe_decision(decision)))
        await self._prompt_closed(request)

    async def _prompt_closed(self, request: PermissionRequest) -> None:
        self._told_waiting.discard(request.request_id)
        if not self._permissions.pending(self.agent.id):
            await self.agent.mark_waiting(False)

    # input

    async def _handle(self, received: Received) -> None:
        """One message of the owner's, in order; its record is DONE once handled (unless the agent has it)."""
        if received.save_error is not None:
            await self.say(
                f"⚠️ Your message could not be saved ({received.save_error}). "
                "It is handled all the same, but a restart before its answer would lose it."
            )
        handed_to_agent = False
        try:
            handed_to_agent = await self._act_on(received)
        finally:
            # Not when a stop cut the handling short: the message stays for the next run.
            if received.record_id is not None and not handed_to_agent and not _cancelling():
                await self._finish(received.record_id)

    async def _act_on(self, received: Received) -> bool:
        """Do what the message asks; True when it went to the agent (whose turn marks it done)."""
        inbound = received.inbound
        if inbound.reaction is not None:
            await self._on_reaction(inbound)
            return False
        if inbound.invite is not None or inbound.kind is MessageKind.GROUPCHAT:
            await self.say(f"🚪 An agent joins a room through the manager: `room invite {self.agent.id} <room>` "
                           "there (an invitation sent to the agent itself is not followed).")
            return False
        if inbound.replaces is not None:
            await self._correct(inbound)
            return False
        text = inbound.text
        target = self._prompt_replied_to(inbound)
        if target is not None:
            request_id, answer = target
            text = f"{request_id} {answer}"
        answer_result = self._permissions.answer(self.agent.id, text, inbound.sender)
        if answer_result.status is not AnswerStatus.NOT_A_REPLY:
            await self._show_answer(answer_result)
            return False
        command = AGENT_COMMANDS.find(inbound.text)
        if command is not None:
            await command.run(self, inbound.text)
            return False
        self.quit_confirm_until = float("-inf")  # `quit` twice in a row, nothing between
        if not inbound.text.strip() and not inbound.attachments:
            await self.say("(An empty message: nothing to send to the agent.)")
            return False
        if received.recovered and looks_like_reply(inbound.text):
            # An answer that arrived while the service restarted: the prompt it answered was denied at shutdown.
            await self.say(
                f"↩️ Your reply “{_excerpt(inbound.text)}” arrived while agentchat restarted; the prompt it answered "
                "was denied then, so it was not sent to the agent."
            )
            return False
        # A reply to one of our other messages keeps its quote: it tells the agent what is meant.
        body = inbound.raw_body if inbound.reply_to is not None else inbound.text
        images: tuple[TurnImage, ...] = ()
        if inbound.attachments and self.files is not None:
            taken = await self.files.intake.take(inbound, body, self.say)
            if taken is None:  # every file refused (each said why), nothing else to pass on
                return False
            body, images = taken.text, taken.images
        submitted = self.agent.submit(body, received.record_id, inbound.origin_id or inbound.message_id, images=images,
                                      files_taken=bool(inbound.attachments and self.files is not None))
        await self._tell_waiting_prompt()
        if submitted.busy or submitted.ahead:
            await self._tell_queued(submitted.ahead + 1)
        return received.record_id is not None

    def _prompt_replied_to(self, inbound: Inbound) -> tuple[str, str] | None:
        """(request id, answer) when the message replies to or quotes one of our prompts."""
        if inbound.reply_to is not None:
            request_id = self._prompt_messages.get(inbound.reply_to)
            if request_id is not None:
                return request_id, inbound.text
            found = _PROMPT_ID.search(inbound.quoted)
            return (found.group(1), inbound.text) if found else None
        quote = split_leading_quote(inbound.text)
        if quote.quote and quote.rest:
            found = _PROMPT_ID.search(quote.quote)
            if found is not None:
                return found.group(1), quote.rest
        return None

    async def _correct(self, inbound: Inbound) -> None:
        target = inbound.replaces or ""
        if self.agent.correct_queued(target, inbound.text):
            try:
                await self._store.replace_queued(self.agent.id, inbound.sender, target, inbound.text)
            except StateError as exc:
                log.error("agent %s: correction not saved: %s", self.agent.id, exc)
            await self.say("✏️ Corrected: the agent will get the new text of your queued message.")
            return
        state = None
        try:
            state = await self._store.replace_queued(self.agent.id, inbound.sender, target, inbound.text)
        except StateError as exc:
            log.error("agent %s: %s", self.agent.id, exc)
        if state in (MessageState.RECEIVED, MessageState.QUEUED):
            await self.say("✏️ Corrected: the agent will get the new text of your queued message.")
        else:
            await self.say("✏️ That message was already sent to the agent, so it cannot be changed: "
                           "send a new message instead.")

    async def _tell_waiting_prompt(self) -> None:
        """Once per prompt: a message that is not an answer waits behind it."""
        for request in self._permissions.pending(self.agent.id):
            if request.request_id in self._told_waiting:
                continue
            self._told_waiting.add(request.request_id)
            await self.say(f"🔐 #{request.request_id} is still waiting for an answer; your message is queued "
                           "for after it.")
            return

    async def _tell_queued(self, waiting: int) -> None:
        """One notice when messages start to wait, then at most one per QUEUE_NOTICE_INTERVAL:
        a burst of 500 messages must not bring back 500 notices."""
        now = asyncio.get_running_loop().time()
        if waiting > 1 and now - self._last_queue_notice < QUEUE_NOTICE_INTERVAL:
            return
        self._last_queue_notice = now
        await self.say(f"⏳ Queued ({waiting} waiting): it goes to the agent when the current turn ends.")

    async def _finish(self, record_id: int) -> None:
        try:
            await self._store.finish_inbound(record_id)
        except StateError as exc:
            log.error("agent %s: %s", self.agent.id, exc)

    def _refuse(self, inbound: Inbound) -> None:
        sender = inbound.sender
        if inbound.reaction is not None:
            what = "a prompt" if inbound.reaction.target_id in self._prompt_messages else "a message"
            log.warning("agent %s: %s reacted to %s it does not own", self.agent.id, sender, what)
            return
        log.warning("agent %s: refused a message from %s (not the owner)", self.agent.id, sender)
        if sender in self._refused:
            return
        self._refused.add(sender)
        self.transport.send(Outbound(sender, "⛔ This agent only talks to its owner."))

    async def _on_reaction(self, inbound: Inbound) -> None:
        reaction = inbound.reaction
        assert reaction is not None
        request_id = self._prompt_messages.get(reaction.target_id)
        if request_id is None:
            return
        if reaction.emojis & THUMBS_UP:
            decision = Decision(Behavior.ALLOW, inbound.sender)
        elif reaction.emojis & THUMBS_DOWN:
            decision = Decision.deny("The user declined (👎).", inbound.sender)
        else:
            return
        await self._show_answer(self._permissions.resolve(self.agent.id, request_id, decision))

    async def _show_answer(self, answer: AnswerResult) -> None:
        # RESOLVED is shown by prompt_resolved, which also covers decisions made elsewhere.
        if answer.text:
            await self.say(answer.text)

    def pending_prompt_ids(self) -> list[str]:
        return [r.request_id for r in self._permissions.pending(self.agent.id)]

    async def kill(self) -> None:
        # Not awaited here: killing closes this very bot, whose inbox we are running in.
        self._kill_task = asyncio.get_running_loop().create_task(self._kill_agent(self.agent.id, self.owner))


_STATUS_ICONS = {
    TurnState.SUBMITTED: "📥", TurnState.WORKING: "🟡", TurnState.INPUT_REQUIRED: "🟠",
    TurnState.COMPLETED: "✅", TurnState.FAILED: "❌", TurnState.CANCELLED: "⏹",
}


def _room_status_line(agent_id: str, turn: Turn) -> str:
    """One line per room turn, corrected in place as it goes: "🟡 swift-fox: working — “fix the build”"."""
    asked = _excerpt(turn.text.split("\n", 2)[1] if turn.text.startswith("[Room ") and "\n" in turn.text else turn.text)
    detail = f" ({_excerpt(turn.detail, 60)})" if turn.detail else ""
    return f"{_STATUS_ICONS[turn.state]} {agent_id}: {turn.state.value}{detail} — “{asked}”"


def _cancelling() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def _excerpt(text: str, limit: int = 40) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def describe_decision(decision: Decision) -> str:
    who = {
        DecidedBy.TIMEOUT.value: "no answer in time",
        DecidedBy.SHUTDOWN.value: "the service is shutting down",
        DecidedBy.KILLED.value: "the agent stopped",
        DecidedBy.ALWAYS_RULE.value: "an earlier “always”",
        DecidedBy.LIMIT.value: "too many pending prompts",
    }.get(decision.decided_by)
    verdict = "allowed" if decision.allowed else "denied"
    if not decision.allowed and decision.message and who is None:
        verdict += f": {decision.message}"
    if decision.allowed and decision.rule:
        verdict += f": {decision.rule}"
    return f"{verdict} ({who})" if who else verdict

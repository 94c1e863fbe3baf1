"""An agent's XMPP bot (swift-fox@domain): the owner's messages in, the agent's events out.

It renders through agentchat.chat and answers permission prompts through the PermissionRegistry;
the agent's logic stays in agentchat.agents.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable

from slixmpp.stanza import Message

from agentchat.agents.agent import Agent
from agentchat.agents.backends.base import (
    AgentEvent,
    AssistantText,
    BackendNotice,
    ProcessExited,
    ToolResult,
    ToolUse,
    TurnResult,
)
from agentchat.chat.events import render_process_exit, render_tool_error, render_tool_use, render_turn_summary
from agentchat.chat.prompts import render_prompt_resolved, render_prompt_timeout, render_request
from agentchat.chat.splitting import split_message
from agentchat.chat.styling import markdown_to_styling
from agentchat.config import XmppSettings
from agentchat.permissions.registry import AnswerResult, AnswerStatus, PermissionRegistry
from agentchat.permissions.requests import Behavior, DecidedBy, Decision, PermissionRequest
from agentchat.store.database import StateStore
from agentchat.store.records import AgentStatus
from agentchat.xmpp.agent_commands import AGENT_COMMANDS
from agentchat.xmpp.connection import BotConnection

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

PRESENCE = {
    AgentStatus.STARTING: ("starting", None),
    AgentStatus.IDLE: ("idle", "chat"),
    AgentStatus.WORKING: ("working", None),
    AgentStatus.WAITING: ("waiting for permission", "dnd"),
    AgentStatus.STOPPED: ("stopped — send a message to resume", "away"),
    AgentStatus.KILLED: ("stopped", "xa"),
}

THUMBS_UP = {"👍", "👍🏻", "👍🏼", "👍🏽", "👍🏾", "👍🏿", "✅"}
THUMBS_DOWN = {"👎", "👎🏻", "👎🏼", "👎🏽", "👎🏾", "👎🏿", "❌"}


class AgentBot:
    """The chat side of one Agent; implements ChatPort and the permission PromptListener."""

    def __init__(
        self,
        agent: Agent,
        jid: str,
        password: str,
        settings: XmppSettings,
        *,
        permissions: PermissionRegistry,
        store: StateStore,
        kill_agent: Callable[[str], Awaitable[object]],
    ) -> None:
        self.agent = agent
        self.jid = jid
        self._permissions = permissions
        self._store = store
        self._kill_agent = kill_agent
        self._refused: set[str] = set()
        self._prompt_messages: dict[str, str] = {}  # outgoing stanza id -> permission request id
        self._composing: asyncio.Task[None] | None = None
        self._announced = agent.record.status  # what the owner's client shows
        self._announce_later: asyncio.TimerHandle | None = None
        # Whether "composing" is the last chat state the owner saw: each of our messages says "active".
        self._composing_shown = False
        self._kill_task: asyncio.Task[object] | None = None
        self._last_queue_notice = float("-inf")
        # Outgoing text waiting to be written to the history, and the one task writing it.
        self._history: deque[str] = deque()
        self._history_writer: asyncio.Task[None] | None = None
        self.connection = BotConnection(
            jid,
            password,
            settings,
            on_message=self._on_message,
            on_reactions=self._on_reactions,
        )

    @property
    def owner(self) -> str:
        return self.agent.owner

    async def open(self) -> None:
        self._announced = self.agent.record.status
        status, show = PRESENCE[self._announced]
        self.connection.set_presence(status, show)
        self.connection.request_subscription(self.owner)
        await self.connection.start()

    async def close(self) -> None:
        self._cancel_announcement()
        self._stop_composing()
        await self.connection.stop()
        if self._history_writer is not None:
            # Let the history catch up: the store closes (or the agent's rows go) after the bots.
            await asyncio.wait({self._history_writer}, timeout=5)

    # output

    async def say(self, text: str) -> None:
        """Send text to the owner: styled, split below the stanza size limit, persisted."""
        for chunk in split_message(text):
            self.connection.send_chat(self.owner, chunk)
            self._composing_shown = False
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
                await self._store.record_outbound(self.agent.id, batch)
            except Exception as exc:  # history is a convenience; the message itself went out
                log.warning("agent %s: history not saved: %s", self.agent.id, exc)

    async def notify(self, text: str) -> None:
        await self.say(text)

    async def show_event(self, event: AgentEvent) -> None:
        if isinstance(event, AssistantText):
            if event.text.strip():
                await self.say(markdown_to_styling(event.text))
        elif isinstance(event, ToolUse):
            await self.say(render_tool_use(event.name, event.input, self.agent.repo_path()))
        elif isinstance(event, ToolResult):
            if event.is_error:
                await self.say(render_tool_error(event.content))
        elif isinstance(event, TurnResult):
            await self.say(render_turn_summary(event))
        elif isinstance(event, ProcessExited):
            await self.say(render_process_exit(event.exit_code, event.stderr_tail))
            # The process that asked is gone: its prompts must not stay answerable.
            self._permissions.deny_all(self.agent.id, "Claude Code exited before the answer.", DecidedBy.KILLED)
        elif isinstance(event, BackendNotice):
            await self.say(f"ℹ️ {event.message}")

    def status_changed(self, status: AgentStatus) -> None:
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
        text, show = PRESENCE[status]
        self.connection.set_presence(text, show)
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
                self.connection.send_chat_state(self.owner, "active")
                self._composing_shown = False

    async def _keep_composing(self) -> None:
        while True:
            self.connection.send_chat_state(self.owner, "composing")
            self._composing_shown = True
            await asyncio.sleep(COMPOSING_REFRESH)

    # permission prompts (PromptListener)

    async def prompt_opened(self, request: PermissionRequest) -> None:
        pending = len(self._permissions.pending(self.agent.id))
        text = render_request(request, self.agent.repo_path(), pending)
        # Ask for a receipt: the owner's client confirms the prompt reached the phone.
        for chunk in split_message(text):
            stanza_id = self.connection.send_chat(self.owner, chunk, receipt=True)
            self._prompt_messages[stanza_id] = request.request_id
            self._composing_shown = False
        await self.agent.mark_waiting(True)

    async def prompt_timed_out(self, request: PermissionRequest) -> None:
        await self.say(render_prompt_timeout(request.request_id, request.tool_name))
        await self._prompt_closed()

    async def prompt_cancelled(self, request: PermissionRequest) -> None:
        await self.say(f"↩️ Permission #{request.request_id} withdrawn (the turn was interrupted).")
        await self._prompt_closed()

    async def prompt_resolved(self, request: PermissionRequest, decision: Decision) -> None:
        await self.say(render_prompt_resolved(request.request_id, describe_decision(decision)))
        await self._prompt_closed()

    async def _prompt_closed(self) -> None:
        if not self._permissions.pending(self.agent.id):
            await self.agent.mark_waiting(False)

    # input

    async def _on_message(self, msg: Message) -> None:
        body = msg["body"]
        if not body:
            return  # chat states, receipts, reactions: no text to act on
        sender = msg["from"].bare
        if sender != self.owner:
            await self._refuse(sender)
            return
        # Replies to prompts first (also a late "yes" after a timeout, which gets a polite refusal).
        answer = self._permissions.answer(self.agent.id, body, sender)
        if answer.status is not AnswerStatus.NOT_A_REPLY:
            await self._show_answer(answer)
            return
        command = AGENT_COMMANDS.find(body)
        if command is not None:
            await command.run(self, body)
            return
        if not body.strip():
            await self.say("(An empty message: nothing to send to the agent.)")
            return
        submitted = await self.agent.submit(body, msg["id"] or None)
        if submitted.save_error is not None:
            await self.say(
                f"⚠️ Your message could not be saved ({submitted.save_error}). "
                "It goes to the agent all the same, but a restart before its answer would lose it."
            )
        if submitted.duplicate:
            log.info("agent %s: duplicate message %s ignored", self.agent.id, msg["id"])
        elif submitted.busy or submitted.ahead:
            await self._tell_queued(submitted.ahead + 1)

    async def _tell_queued(self, waiting: int) -> None:
        """One notice when messages start to wait, then at most one per QUEUE_NOTICE_INTERVAL:
        a burst of 500 messages must not bring back 500 notices."""
        now = asyncio.get_running_loop().time()
        if waiting > 1 and now - self._last_queue_notice < QUEUE_NOTICE_INTERVAL:
            return
        self._last_queue_notice = now
        await self.say(f"⏳ Queued ({waiting} waiting): it goes to the agent when the current turn ends.")

    async def _refuse(self, sender: str) -> None:
        log.warning("agent %s: refused a message from %s (not the owner)", self.agent.id, sender)
        if sender in self._refused:
            return
        self._refused.add(sender)
        self.connection.send_chat(sender, "⛔ This agent only talks to its owner.")

    async def _on_reactions(self, msg: Message) -> None:
        sender = msg["from"].bare
        target = msg["reactions"]["id"]
        request_id = self._prompt_messages.get(target)
        if request_id is None:
            return
        if sender != self.owner:
            log.warning("agent %s: %s reacted to a prompt it does not own", self.agent.id, sender)
            return
        values = set(msg["reactions"].get_values(all_chars=True))
        if values & THUMBS_UP:
            decision = Decision(Behavior.ALLOW, sender)
        elif values & THUMBS_DOWN:
            decision = Decision.deny("The user declined (👎).", sender)
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
        # Not awaited here: killing closes this very connection, whose handler we are running in.
        self._kill_task = asyncio.get_running_loop().create_task(self._kill_agent(self.agent.id))


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

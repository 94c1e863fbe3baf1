"""How an agent's turn shows its progress, so that the owner's phone buzzes only when the agent needs them.

A message with a body wakes a phone (and, through the owner's server, a push notification), so only what
needs the owner gets one: a prompt, a question, a plan, the answer and the turn's end, an error. The rest
(tool lines, the agent's remarks between tools) depends on the agent's ``progress`` setting:

* ``full``: every tool line and remark is a message of its own (what a client without corrections gets);
* ``status``: one status message per turn, corrected in place (XEP-0308, every correction naming the
  original) at most every ``CORRECTION_INTERVAL`` seconds, plus the chat states "typing…";
* ``quiet``: no progress at all, only the chat states.

Unset, it is ``status`` when every client the owner has online shows corrections, else ``full``.
The agent's remarks are held back until the next event says what they were: a remark followed by a tool
is progress; the last one of a turn is the answer, sent as a message with the turn's end.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections import deque
from collections.abc import Awaitable, Callable
from pathlib import Path

from agentchat.agents.backends.base import (
    AgentEvent,
    AssistantText,
    PermissionModeChanged,
    ProcessExited,
    ToolResult,
    ToolUse,
    TurnResult,
)
from agentchat.chat.events import first_line, format_duration, render_tool_error, render_tool_use
from agentchat.chat.port import ChatTransport, Outbound, PeerFeature
from agentchat.chat.styling import markdown_to_styling

# A status message is corrected at most this often: each correction refreshes a notification in
# Conversations (xmpp-client-support.md: "correct it at most about every 3-5 s").
CORRECTION_INTERVAL = 3.0
STATUS_LINES = 5
REMARK_CHARS = 160


class ProgressMode(enum.StrEnum):
    FULL = "full"
    STATUS = "status"
    QUIET = "quiet"


AUTO = "auto"
SETTINGS = (*(mode.value for mode in ProgressMode), AUTO)

DESCRIPTIONS = {
    ProgressMode.FULL: "every tool line as a message",
    ProgressMode.STATUS: "one status message per turn, corrected in place",
    ProgressMode.QUIET: "no progress messages, only “typing…”",
}


class TurnProgress:
    """The progress of one agent's turns, shown to its owner (one per agent bot)."""

    def __init__(
        self,
        transport: ChatTransport,
        owner: str,
        *,
        setting: Callable[[], str | None],
        say: Callable[[str], Awaitable[None]],
        repo: Callable[[], Path],
    ) -> None:
        self._transport = transport
        self._owner = owner
        self._setting = setting
        self._say = say
        self._repo = repo
        self._mode: ProgressMode | None = None  # resolved at the first event of a turn
        self._remark: str | None = None  # the agent's last text, not yet known to be progress or the answer
        self._status_id: str | None = None  # the turn's status message (the original every correction names)
        self._lines: deque[str] = deque(maxlen=STATUS_LINES)
        self._tools = 0
        self._started = 0.0
        self._shown = ""  # the status text the owner has
        self._last_sent = float("-inf")
        self._timer: asyncio.TimerHandle | None = None
        self.messages_sent = 0  # status messages and corrections (for tests and logs)

    async def resolved_mode(self) -> tuple[ProgressMode, bool]:
        """The mode this agent's progress uses now, and whether it was chosen automatically."""
        chosen = self._setting()
        if chosen in {mode.value for mode in ProgressMode}:
            return ProgressMode(chosen), False
        corrections = await self._transport.peer_supports(self._owner, PeerFeature.CORRECTIONS)
        return (ProgressMode.STATUS if corrections else ProgressMode.FULL), True

    async def absorb(self, event: AgentEvent) -> bool:
        """Take ``event`` into the turn's progress; False when the bot shows it as a message, as before
        (whatever was held back then goes first, so the order stays)."""
        if self._mode is None:
            self._mode, _ = await self.resolved_mode()
            self._started = time.monotonic()
        mode = self._mode
        if mode is ProgressMode.FULL:
            if isinstance(event, TurnResult | ProcessExited):
                self._end_turn()
            return False
        if isinstance(event, AssistantText):
            if event.text.strip():
                self._fold_remark()
                self._remark = event.text
            return True
        if isinstance(event, ToolUse):
            self._tools += 1
            self._fold_remark(show=False)  # shown with the tool line, in one message
            self._progress(render_tool_use(event.name, event.input, self._repo()))
            return True
        if isinstance(event, ToolResult):
            if event.is_error:
                self._progress(render_tool_error(event.content))
            return True
        if isinstance(event, PermissionModeChanged):
            self._progress(f"🔧 now in {event.mode} mode")
            return True
        # The turn's end, an error, a notice: the answer held back goes first, as its own message.
        await self._flush_remark()
        if isinstance(event, TurnResult | ProcessExited):
            self._finish_status()
            self._end_turn()
        return False

    async def prompt_opened(self) -> None:
        """A prompt is about to be shown: the agent's remark before it (why it asks) goes into the status."""
        if self._mode is not None and self._mode is not ProgressMode.FULL:
            self._fold_remark()

    def turn_over(self) -> None:
        """The agent is idle or stopped: a turn that ended without its result (its process was ended) closes
        here, so that the next turn has a status message of its own."""
        if self._mode is None:
            return
        self._fold_remark(show=False)
        self._finish_status()
        self._end_turn()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # the status message

    def _progress(self, line: str, *, show: bool = True) -> None:
        if self._mode is not ProgressMode.STATUS:
            return
        self._lines.append(line)
        if not show:
            return
        now = time.monotonic()
        if self._status_id is None:
            self._send_status()
        elif self._timer is None:
            wait = max(0.0, self._last_sent + CORRECTION_INTERVAL - now)
            self._timer = asyncio.get_running_loop().call_later(wait, self._send_status)

    def _status_text(self, finished: bool = False) -> str:
        tools = f"{self._tools} tool{'' if self._tools == 1 else 's'}"
        elapsed = format_duration(time.monotonic() - self._started)
        head = f"🔧 {tools} used · {elapsed}" if finished else f"⏳ Working · {tools} · {elapsed}"
        return "\n".join([head, *self._lines])

    def _send_status(self, finished: bool = False) -> None:
        self._timer = None
        text = self._status_text(finished)
        if text == self._shown:
            return
        # A status message is no news: it asks for no receipt, and "composing" goes on around it.
        message_id = self._transport.send(Outbound(self._owner, text, chat_state=None, replaces=self._status_id))
        if self._status_id is None:
            self._status_id = message_id
        self._shown = text
        self._last_sent = time.monotonic()
        self.messages_sent += 1

    def _finish_status(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._status_id is not None:
            self._send_status(finished=True)

    def _end_turn(self) -> None:
        self._mode = None
        self._remark = None
        self._status_id = None
        self._lines.clear()
        self._tools = 0
        self._shown = ""
        self._last_sent = float("-inf")

    # the agent's remarks

    def _fold_remark(self, *, show: bool = True) -> None:
        """The remark held back was progress (a tool or a prompt came after it)."""
        remark, self._remark = self._remark, None
        if remark is not None:
            self._progress(f"💬 {first_line(remark, REMARK_CHARS)}", show=show)

    async def _flush_remark(self) -> None:
        """The remark held back was the answer: a message of its own."""
        remark, self._remark = self._remark, None
        if remark is not None:
            await self._say(markdown_to_styling(remark))

"""The one interface every agent backend implements, and the typed events it yields.

The chat side only ever sees these events; nothing here knows about XMPP.
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from agentchat.permissions.requests import Decision

from agentchat.agents.sandbox import AgentDirs, Sandbox

from agentchat.errors import BackendError


@dataclass(frozen=True)
class AgentEvent:
    """Base of everything a backend reports."""


@dataclass(frozen=True)
class SessionStarted(AgentEvent):
    session_id: str
    model: str | None = None
    cwd: str | None = None


@dataclass(frozen=True)
class AssistantText(AgentEvent):
    text: str


@dataclass(frozen=True)
class ToolUse(AgentEvent):
    tool_use_id: str
    name: str
    input: Mapping[str, Any]


@dataclass(frozen=True)
class ToolResult(AgentEvent):
    tool_use_id: str
    content: str
    is_error: bool = False


@dataclass(frozen=True)
class TurnResult(AgentEvent):
    """The end of one turn (one user message answered, interrupted, or failed)."""

    is_error: bool
    subtype: str = "success"
    text: str | None = None
    num_turns: int = 0
    duration_ms: int = 0
    # Cost of this turn alone and of the whole session so far, in USD, when the backend knows.
    turn_cost_usd: float | None = None
    total_cost_usd: float | None = None
    usage: Mapping[str, Any] = field(default_factory=dict)
    errors: tuple[str, ...] = ()
    # The turn ended because it was asked to stop (an interrupt), whatever the CLI's diagnostics say.
    interrupted: bool = False

    @property
    def stopped(self) -> bool:
        """Ended by a stop, not by a failure. Claude Code 2.1.332 adds "[ede_diagnostic] …" lines to a plain
        interrupt's result: those are no error."""
        real = [e for e in self.errors if e.strip() and not e.lstrip().startswith("[ede_diagnostic]")]
        return self.interrupted or (self.subtype == "error_during_execution" and not real)


@dataclass(frozen=True)
class PermissionModeChanged(AgentEvent):
    """The backend's permission mode is now ``mode`` (switched by us, or by the CLI itself: an approved plan
    leaves plan mode)."""

    mode: str


@dataclass(frozen=True)
class BackendNotice(AgentEvent):
    """Something went wrong but the backend lives on (a garbage line, an unknown event, an API retry)."""

    message: str


@dataclass(frozen=True)
class ProcessExited(AgentEvent):
    """The backend's process ended. ``expected`` is true when we asked it to stop."""

    exit_code: int | None
    stderr_tail: str = ""
    expected: bool = False
    # The CLI did not know the session it was asked to resume ("No conversation found").
    session_not_found: bool = False
    # The CLI already had the session it was asked to start (--session-id "is already in use").
    session_in_use: bool = False


@dataclass(frozen=True)
class TurnImage:
    """A picture the person sent, for the model to see; ``path`` is where it was saved (repository-relative)."""

    media_type: str  # image/png, image/jpeg, image/gif or image/webp
    data: bytes
    path: str


@dataclass(frozen=True)
class UserTurn:
    """One message for the agent: its text, and the pictures that came with it."""

    text: str
    images: tuple[TurnImage, ...] = ()

    def text_with_paths(self) -> str:
        """The text, and a line per picture saying where it was saved."""
        lines = [self.text] if self.text else []
        lines += [f"The user sent an image, saved at {image.path}" for image in self.images]
        return "\n".join(lines)


class EventChannel:
    """A backend's ordered event stream: its tasks emit(), one consumer iterates.

    close() ends the iteration once everything emitted before it was delivered; reopen()
    (on a restart) lets a new iteration carry on from there.
    """

    def __init__(self) -> None:
        self._queue: asyncio.Queue[AgentEvent | None] = asyncio.Queue()
        self._closed = False

    def emit(self, event: AgentEvent) -> None:
        self._queue.put_nowait(event)

    def reopen(self) -> None:
        self._closed = False

    def close(self) -> None:
        self._closed = True
        self._queue.put_nowait(None)  # wakes a consumer waiting on an empty queue

    async def stream(self) -> AsyncIterator[AgentEvent]:
        while True:
            if self._closed and self._queue.empty():
                return
            item = await self._queue.get()
            if item is not None:
                yield item


class PermissionAsker(Protocol):
    """Asks the agent's owner for a permission, for engines that ask through their own protocol
    (Codex approvals, ACP's session/request_permission) rather than through our MCP tool."""

    async def ask(self, tool_name: str, tool_input: Mapping[str, Any], tool_use_id: str | None) -> Decision:
        """The owner's decision; cancelling the call withdraws the prompt."""
        ...


@dataclass
class BackendSpec:
    """What a backend needs to run one agent."""

    agent_id: str
    cwd: Path
    session_id: str
    resume: bool = False
    # Where the permission prompt tool is served, and this agent's bearer token for it.
    mcp_url: str | None = None
    mcp_token: str | None = None
    # How long a person may take to answer a permission prompt, in seconds.
    permission_timeout: float = 300.0
    # The service's own tools on that endpoint (send a file, a room message…): used without asking.
    service_tools: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    # How engines without our MCP tool ask the owner (None: every request they make is declined).
    permissions: PermissionAsker | None = None
    # Where an engine keeps its generated configuration and sessions for this agent (HOME,
    # CODEX_HOME, XDG dirs); None: a directory of the backend's own choosing.
    state_dir: Path | None = None
    # How the process is started (bubblewrap, or unconfined with a filtered environment), and the
    # agent's own directories under the state directory (its sandbox's home and /tmp).
    sandbox: Sandbox = field(default_factory=Sandbox.off)
    dirs: AgentDirs | None = None
    # Chosen from the chat (`mode`, `model`): the process starts with them; None is the CLI's default.
    permission_mode: str | None = None
    model: str | None = None
    # bypassPermissions may be switched on while the process runs (agents.claude.allowBypassPermissions).
    allow_bypass: bool = False


class SettingNotApplied(BackendError):
    """The running process did not take a setting (``code`` says why, as the backend named it); the setting
    still applies from the next start of the process."""

    def __init__(self, message: str, code: str = "") -> None:
        super().__init__(message)
        self.code = code


class AgentBackend(abc.ABC):
    """A running agent. One owner (the Agent object) calls these; events() is read by one task."""

    kind: str

    @abc.abstractmethod
    async def start(self) -> None:
        """Start (or restart after an exit) the process; raise BackendError if it cannot run."""

    @abc.abstractmethod
    async def send(self, text: str) -> None:
        """Send one user message; it starts a turn. Only called when no turn is running."""

    async def send_turn(self, turn: UserTurn) -> None:
        """Send one user message with its pictures. Engines that take text only get each picture's saved path."""
        await self.send(turn.text_with_paths())

    @abc.abstractmethod
    async def interrupt(self) -> None:
        """End the running turn; the process and its session stay."""

    @abc.abstractmethod
    async def stop(self) -> None:
        """End the process (and its process group), waiting for it; idempotent."""

    @abc.abstractmethod
    def events(self) -> AsyncIterator[AgentEvent]:
        """Every event, in order, across restarts. Never ends before stop()."""

    @property
    @abc.abstractmethod
    def running(self) -> bool:
        """Whether the process is up."""

    @property
    def pid(self) -> int | None:
        return None

    async def set_permission_mode(self, mode: str) -> None:
        """Switch the running process to permission ``mode``; SettingNotApplied if it cannot now."""
        raise SettingNotApplied(f"the {self.kind} backend has no permission modes", "unsupported")

    async def set_model(self, model: str | None) -> str | None:
        """Switch the running process to ``model`` (None: its default); returns the model it now uses.
        SettingNotApplied if it cannot now."""
        raise SettingNotApplied(f"the {self.kind} backend has no model to choose", "unsupported")

    @property
    def session_id(self) -> str | None:
        return None

    @property
    def engine_name(self) -> str:
        """What runs the agent, for people ("Claude Code", "Codex", "Gemini CLI", …)."""
        return self.kind

    @property
    def engine_version(self) -> str | None:
        """The engine's version as it reported it (known once started), or None."""
        return None

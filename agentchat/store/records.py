"""What the store keeps, as plain dataclasses."""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field


class AgentStatus(str, enum.Enum):
    STARTING = "starting"
    IDLE = "idle"
    WORKING = "working"
    WAITING = "waiting for permission"
    STOPPED = "stopped"  # no process (idle timeout or after a restart); the next message resumes
    KILLED = "killed"  # being ended: a restart finishes the job (process, account, row)


@dataclass
class AgentRecord:
    id: str
    owner: str
    repo: str
    backend: str
    session_id: str
    status: AgentStatus = AgentStatus.STARTING
    # True once a turn ran, so the next process must --resume instead of --session-id.
    session_started: bool = False
    created_at: float = field(default_factory=time.time)
    last_active: float = field(default_factory=time.time)
    # What the agent's work cost so far, over every process and session (USD).
    total_cost_usd: float = 0.0
    # Messages the agent answered (one turn each).
    turns: int = 0
    # The backend's process group from the last run, cleaned up if a crash left it behind.
    pid: int | None = None
    # Claude Code's permission mode and model chosen from the chat (`mode`, `model`); None: the CLI's default.
    permission_mode: str | None = None
    model: str | None = None
    # How progress is shown (`progress full|status|quiet`); None: chosen by what the owner's client shows.
    progress: str | None = None


class MessageState(str, enum.Enum):
    """Where a message from a person is. Everything but DONE is picked up again after a restart."""

    RECEIVED = "received"  # recorded; its bot has not finished handling it (a restart hands it over again)
    QUEUED = "queued"  # waits for its agent's turn
    RUNNING = "running"  # its turn started; a restart does not run it again unasked (see INTERRUPTED)
    INTERRUPTED = "interrupted"  # its turn was cut by a stop or a crash: the owner may `retry` it
    DONE = "done"  # handled (a command answered, or the agent's turn for it ended)


@dataclass(frozen=True)
class Arrival:
    """A message to record, with what recognises it if it arrives again (agentchat.chat.dedup)."""

    peer: str
    message_id: str | None
    body: str
    keys: tuple[str, ...]
    text_key: str
    resent_at: float | None
    received_at: float
    # The searchable history's conversation it belongs to ("agent:<id>", "room:<jid>"; None: not logged),
    # who wrote it as shown there, and whose it is (an agent's chat: the owner; a room: None).
    log: str | None = None
    author: str | None = None
    owner: str | None = None
    attachments: tuple[str, ...] = ()  # the files' URLs


@dataclass
class InboundMessage:
    id: int
    bot: str  # the agent's id, or "manager"
    peer: str  # the sender's bare JID
    message_id: str | None
    body: str
    state: MessageState
    received_at: float
    attachments: tuple[str, ...] = ()  # the files' URLs it carried
    # What the agent gets, once its files were taken: the text, and the pictures as (media type, saved path).
    turn_text: str | None = None
    turn_images: tuple[tuple[str, str], ...] = ()

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
    KILLED = "killed"


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
    total_cost_usd: float = 0.0
    turns: int = 0
    # The backend's process group from the last run, cleaned up if a crash left it behind.
    pid: int | None = None


class MessageState(str, enum.Enum):
    QUEUED = "queued"  # received from the user, not yet given to the agent
    SENT = "sent"  # given to the agent (written by earlier versions; read as not DONE)
    DONE = "done"  # the agent's turn for it ended


@dataclass
class InboundMessage:
    id: int
    agent_id: str
    stanza_id: str | None
    body: str
    state: MessageState
    received_at: float

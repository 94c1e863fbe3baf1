"""What the hub and its runners say to each other: typed at the edge, carried as IQs (agentchat.xmpp.iq).

The hub is the manager's account; a runner is an account of its own (``runner-NAME@domain``) on another
machine. The hub commands runners (create, kill, state, status, repos); a runner tells the hub it is there
(hello), that it is going (goodbye), or that an agent's owner asked it to end (end-agent). Each op has one
request model and one answer model; unknown fields are ignored (a newer peer may send more), a malformed
body is refused with ``bad-request``.
"""

from __future__ import annotations

import enum
import logging
import re
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agentchat.xmpp.iq import IqRefused

log = logging.getLogger(__name__)

NAMESPACE = "urn:agentchat:runner:0"
PROTOCOL_VERSION = 0
# A runner's account: runner-NAME@domain.
ACCOUNT_PREFIX = "runner-"
_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?$")


def check_runner_name(name: str) -> str:
    """The name, lower-cased; ValueError unless it is 1–32 letters, digits and inner dashes."""
    name = name.strip().lower()
    if not _NAME.match(name):
        raise ValueError(f"invalid runner name {name!r}: use 1-32 letters, digits and dashes, such as 'laptop'")
    return name


def runner_username(name: str) -> str:
    return ACCOUNT_PREFIX + check_runner_name(name)


class Op(enum.StrEnum):
    # runner -> hub
    HELLO = "hello"
    GOODBYE = "goodbye"
    END_AGENT = "end-agent"
    # hub -> runner
    CREATE = "create"
    KILL = "kill"
    STATE = "state"
    STATUS = "status"
    REPOS = "repos"


RUNNER_OPS = frozenset({Op.HELLO, Op.GOODBYE, Op.END_AGENT})
HUB_OPS = frozenset({Op.CREATE, Op.KILL, Op.STATE, Op.STATUS, Op.REPOS})


class Message(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Empty(Message):
    pass


class BackendInfo(Message):
    kind: str
    label: str


class RepositoryInfo(Message):
    name: str
    path: str
    git: bool = False


class AgentSummary(Message):
    id: str
    status: str
    queued: int = 0
    # Set when the agent's account refused its password at the runner's start: it is not online.
    login_refused: bool = False


class RunnerState(Message):
    """What the hub shows in `runners` and `list`; the answer to STATE, and part of HELLO."""

    name: str
    version: str = ""
    protocol: int = PROTOCOL_VERSION
    base_path: str = ""
    backends: list[BackendInfo] = Field(default_factory=list)
    agents: list[AgentSummary] = Field(default_factory=list)
    running: int = 0  # backend processes
    max_concurrent: int = 0
    load: float = 0.0  # 1-minute load average
    cpus: int = 1


class Hello(Message):
    state: RunnerState
    # What it offers, as it starts: its repositories (the hub asks again when someone chooses).
    repositories: list[RepositoryInfo] = Field(default_factory=list)


class HelloAccepted(Message):
    # The hub's agents on this runner; the runner ends any other it has (ended while it was away).
    agents: list[str] = Field(default_factory=list)


class EndAgent(Message):
    agent_id: str
    ended_by: str


class CreateAgent(Message):
    agent_id: str
    owner: str
    backend: str
    repository: str  # a name under the runner's base path
    password: str  # the agent's account, provisioned by the hub (a secret: registered on both sides)
    first_task: str | None = None
    # Where the hub cannot edit rosters (XEP-0133): the agent's own session asks the owner to subscribe.
    request_contact: bool = False


class AgentCreated(Message):
    agent_id: str
    repository_path: str


class KillAgent(Message):
    agent_id: str
    ended_by: str


class AgentKilled(Message):
    existed: bool


class StatusQuery(Message):
    agent_id: str


class AgentDetails(Message):
    id: str
    status: str
    repository_path: str
    backend: str
    session_id: str
    turns: int = 0
    total_cost_usd: float = 0.0
    last_active: float = 0.0
    queued: int = 0
    pending_prompts: int = 0


class Repositories(Message):
    base_path: str
    repositories: list[RepositoryInfo] = Field(default_factory=list)
    error: str | None = None  # the base path cannot be read


REQUESTS: dict[Op, type[Message]] = {
    Op.HELLO: Hello, Op.GOODBYE: Empty, Op.END_AGENT: EndAgent,
    Op.CREATE: CreateAgent, Op.KILL: KillAgent, Op.STATE: Empty, Op.STATUS: StatusQuery, Op.REPOS: Empty,
}  # fmt: skip
ANSWERS: dict[Op, type[Message]] = {
    Op.HELLO: HelloAccepted, Op.GOODBYE: Empty, Op.END_AGENT: Empty,
    Op.CREATE: AgentCreated, Op.KILL: AgentKilled, Op.STATE: RunnerState, Op.STATUS: AgentDetails, Op.REPOS: Repositories,
}  # fmt: skip

M = TypeVar("M", bound=Message)


def parse_op(text: str) -> Op:
    """The op of a request; IqRefused (bad-request) for one we do not know."""
    try:
        return Op(text)
    except ValueError:
        raise IqRefused("bad-request", f"unknown op {text[:40]!r}") from None


def decode(model: type[M], body: str) -> M:
    """A request or answer body as its model; IqRefused (bad-request) if it is not one."""
    try:
        return model.model_validate_json(body or "{}")
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        raise IqRefused("bad-request", f"{model.__name__}: {where}: {first['msg']}") from None


def encode(message: Message) -> str:
    return message.model_dump_json()

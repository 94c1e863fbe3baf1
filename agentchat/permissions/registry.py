"""The permission registry: the one place that knows which prompts are pending, for which agent.

Claude Code's ``permission_prompt`` calls come in through the MCP server (``mcp_server.py``), which
calls ``ask()`` and waits. The chat side is told through the agent's ``PromptListener``, renders the
prompt, and hands the owner's replies back through ``answer()`` (text) or ``resolve()`` (reactions).

Life of a prompt::

    ask() ──► prompt_opened ──► answer()/resolve() ──► prompt_resolved ──► Decision to the CLI
                             ├─► timeout            ──► prompt_timed_out ──► deny "timed out"
                             ├─► CLI drops the call ──► prompt_cancelled (nothing goes back)
                             └─► deny_all / unregister_agent / close ──► prompt_resolved ──► deny

Every decision is written to the audit log. Everything here runs on the event loop; the methods the
chat side calls are synchronous and take effect at once (the waiting ``ask()`` wakes up afterwards).
"""

from __future__ import annotations

import asyncio
import enum
import hmac
import logging
import os
import secrets
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from agentchat.errors import PermissionPromptError
from agentchat.permissions.audit import AuditLog, AuditRecord
from agentchat.permissions.replies import (
    Ambiguous,
    InvalidReply,
    Reply,
    ReplyAction,
    UnknownRequest,
    parse_reply,
)
from agentchat.permissions.requests import (
    DecidedBy,
    Decision,
    PermissionRequest,
    PromptKind,
    parse_questions,
    prompt_kind,
)

log = logging.getLogger(__name__)

SHUTDOWN_MESSAGE = "The agentchat service is shutting down; nothing was run."
NOT_OWNER_TEXT = "Only the owner of this agent can answer its permission requests."
# Tools that touch files: an "always" for one of them covers that tool inside the repository only.
FILE_TOOLS = frozenset({"Write", "Edit", "MultiEdit", "NotebookEdit", "Read", "Glob", "Grep", "LS"})
SEARCH_TOOLS = frozenset({"Glob", "Grep", "LS"})
PATH_KEYS = ("file_path", "notebook_path", "path")
# How much of an ended prompt's input is remembered (for "already answered" replies).
CLOSED_SUMMARY_LIMIT = 60


class PromptListener(Protocol):
    """How the registry tells the chat side about one agent's prompts (one listener per agent).

    All four are awaited on the path of the MCP call, so keep them short (send a message, edit one);
    the answer to Claude waits for them, which also keeps chat messages in order. Exceptions are
    logged with the agent and request id and otherwise ignored; a call that takes longer than
    ``listener_timeout`` is abandoned.
    """

    async def prompt_opened(self, request: PermissionRequest) -> None:
        """A new prompt waits for the owner: show it (``summary()``, ``questions``, ``plan``, ``how_to_answer``)."""

    async def prompt_resolved(self, request: PermissionRequest, decision: Decision) -> None:
        """The prompt is decided, by the owner or by deny_all / unregister / shutdown / an "always" rule."""

    async def prompt_timed_out(self, request: PermissionRequest) -> None:
        """Nobody answered in time; Claude was told no."""

    async def prompt_cancelled(self, request: PermissionRequest) -> None:
        """Claude Code withdrew the prompt (the turn was interrupted); nothing went back to it."""


class AnswerStatus(enum.Enum):
    RESOLVED = "resolved"  # a prompt was decided: see request and decision
    AMBIGUOUS = "ambiguous"  # several prompts pending and the reply did not say which: request_ids
    UNKNOWN_ID = "unknown_id"  # the reply named an id that is not (and was not recently) pending
    EXPIRED = "expired"  # the prompt already ended (timed out, answered, withdrawn): text says how
    INVALID = "invalid"  # meant for a prompt but not a valid answer to it: text says how to answer
    NOT_A_REPLY = "not_a_reply"  # forward the text to the agent as a normal message
    NOT_OWNER = "not_owner"  # only the agent's owner may answer


@dataclass(frozen=True)
class AnswerResult:
    status: AnswerStatus
    # One line for the person (empty for RESOLVED and NOT_A_REPLY: prompt_resolved renders those).
    text: str = ""
    request: PermissionRequest | None = None
    decision: Decision | None = None
    request_ids: tuple[str, ...] = ()


@dataclass
class _Pending:
    request: PermissionRequest
    future: asyncio.Future[Decision]
    timer: asyncio.TimerHandle
    listener: PromptListener
    # A file tool's target, symlinks resolved (None: not a file tool, or no path given).
    path: Path | None = None


@dataclass(frozen=True)
class _Closed:
    """A prompt that ended recently, remembered to answer late replies politely. Only a bounded
    summary is kept: a Write prompt's input can be a whole file of many megabytes."""

    request: PermissionRequest  # with its input emptied
    summary: str
    decision: Decision | None  # None: the CLI withdrew it; without its updated_input
    closed_at: float  # loop time

    @classmethod
    def of(cls, request: PermissionRequest, decision: Decision | None, closed_at: float) -> _Closed:
        slim_request = replace(request, input={}, questions=())
        slim_decision = replace(decision, updated_input=None) if decision is not None else None
        return cls(slim_request, request.summary(CLOSED_SUMMARY_LIMIT), slim_decision, closed_at)


@dataclass
class _Rules:
    """The "always" answers of one session: file tools inside the repository, exact Bash
    commands, and whole tools for the rest (they touch neither files nor the shell)."""

    session: str | None = None
    file_tools: set[str] = field(default_factory=set)
    commands: set[str] = field(default_factory=set)
    tools: set[str] = field(default_factory=set)

    def clear(self, session: str | None) -> None:
        self.session = session
        self.file_tools.clear()
        self.commands.clear()
        self.tools.clear()


@dataclass
class _Agent:
    agent_id: str
    owner: str
    listener: PromptListener
    token: bytes
    # The agent's repository (real path): where an "always" on a file tool applies.
    repository: Path | None = None
    # The agent's current session id: rules end with the session.
    session: Callable[[], str | None] | None = None
    pending: dict[str, _Pending] = field(default_factory=dict)  # oldest first
    closed: OrderedDict[str, _Closed] = field(default_factory=OrderedDict)
    rules: _Rules = field(default_factory=_Rules)

    def current_rules(self) -> _Rules:
        """The rules of the running session; those of an earlier session are forgotten here."""
        session = self.session() if self.session is not None else None
        if session != self.rules.session:
            self.rules.clear(session)
        return self.rules

    def inside_repository(self, path: Path | None) -> bool:
        return path is not None and self.repository is not None and path.is_relative_to(self.repository)

    def covered_by_rule(self, tool_name: str, tool_input: Mapping[str, Any], path: Path | None) -> bool:
        rules = self.current_rules()
        if tool_name == "Bash":
            command = tool_input.get("command")
            return isinstance(command, str) and command in rules.commands
        if tool_name in FILE_TOOLS:
            return tool_name in rules.file_tools and self.inside_repository(path)
        return tool_name in rules.tools


class PermissionRegistry:
    """Pending prompts of every agent, the agents' bearer tokens and their "always" rules."""

    def __init__(
        self,
        timeout_seconds: float,
        audit: AuditLog | None,
        *,
        max_pending_per_agent: int = 100,
        listener_timeout: float = 10.0,
        # How long a bare "yes" after a timeout is still read as a late answer (then it is chat again),
        # and how long ids of ended prompts are remembered for "#a1b2 yes" sent too late.
        late_reply_seconds: float = 600.0,
        closed_memory_seconds: float = 3600.0,
    ) -> None:
        if timeout_seconds <= 0:
            raise ValueError("timeout_seconds must be positive")
        self.timeout_seconds = timeout_seconds
        self._audit = audit
        self._max_pending = max_pending_per_agent
        self._listener_timeout = listener_timeout
        self._late_reply_seconds = late_reply_seconds
        self._closed_memory_seconds = closed_memory_seconds
        self._agents: dict[str, _Agent] = {}
        self._closing = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._asking = 0
        self._idle = asyncio.Event()
        self._idle.set()

    # -- agents -----------------------------------------------------------------------------------

    def register_agent(
        self,
        agent_id: str,
        owner: str,
        listener: PromptListener,
        *,
        repository: Path | None = None,
        session: Callable[[], str | None] | None = None,
    ) -> str:
        """Register (or re-register) an agent; returns its new bearer token. An older token stops working.

        ``repository``: where an "always" on a file tool applies (without one, such an "always"
        allows once). ``session``: the agent's current session id; "always" rules end with it.
        """
        if self._closing:
            raise PermissionPromptError("the permission registry is shut down")
        token = secrets.token_urlsafe(32)
        real_repository = Path(os.path.realpath(repository)) if repository is not None else None
        agent = self._agents.get(agent_id)
        if agent is None:
            self._agents[agent_id] = _Agent(
                agent_id, bare_jid(owner), listener, token.encode(), repository=real_repository, session=session
            )
        else:
            agent.owner, agent.listener, agent.token = bare_jid(owner), listener, token.encode()
            agent.repository, agent.session = real_repository, session
        return token

    def unregister_agent(self, agent_id: str, reason: str = "The agent was stopped.") -> None:
        """Forget the agent, its token and its rules; pending prompts are denied with ``reason`` (and interrupt
        the turn, in case the CLI outlives this). Their listener still gets ``prompt_resolved``."""
        agent = self._agents.pop(agent_id, None)
        if agent is not None:
            self._deny_pending(agent, Decision.deny(reason, DecidedBy.KILLED, interrupt=True))

    def agent_for_token(self, token: str) -> str | None:
        """The agent this bearer token belongs to. Compares against every token in constant time."""
        candidate = token.encode("utf-8", "surrogateescape")
        found: str | None = None
        for agent in self._agents.values():
            if hmac.compare_digest(agent.token, candidate):
                found = agent.agent_id
        return found

    def pending(self, agent_id: str) -> list[PermissionRequest]:
        """The agent's open prompts, oldest first."""
        agent = self._agents.get(agent_id)
        return [] if agent is None else [entry.request for entry in agent.pending.values()]

    def reset_session(self, agent_id: str) -> None:
        """A new Claude session: forget the "always" rules (also done by itself when ``session`` changes)."""
        agent = self._agents.get(agent_id)
        if agent is not None:
            agent.rules.clear(agent.session() if agent.session is not None else None)

    # -- the MCP side -----------------------------------------------------------------------------

    async def ask(
        self, agent_id: str, tool_name: str, tool_input: Mapping[str, Any], tool_use_id: str | None
    ) -> Decision:
        """Ask the agent's owner; returns when decided, timed out, denied by shutdown. Cancellable."""
        agent = self._agents.get(agent_id)
        if agent is None:
            raise PermissionPromptError(f"unknown agent {agent_id!r}")
        # Resolving symlinks touches the file system: off the loop, and only for file tools.
        path = await asyncio.to_thread(target_path, tool_name, tool_input, agent.repository) if tool_name in FILE_TOOLS else None
        # Decided without asking anyone: shutting down, covered by an "always" rule, or too many waiting.
        immediate: Decision | None = None
        if self._closing:
            immediate = Decision.deny(SHUTDOWN_MESSAGE, DecidedBy.SHUTDOWN)
        elif prompt_kind(tool_name) is PromptKind.TOOL and agent.covered_by_rule(tool_name, tool_input, path):
            immediate = replace(Decision.allow(tool_input, DecidedBy.ALWAYS_RULE), rule=self._rule_text(agent, tool_name))
        elif len(agent.pending) >= self._max_pending:
            log.warning("agent %s: %d permission prompts pending, refusing another", agent_id, len(agent.pending))
            immediate = Decision.deny(
                "Too many permission requests are waiting for the user; ask again later.", DecidedBy.LIMIT
            )
        if immediate is not None:
            await self._write_audit(self._new_request(agent, tool_name, tool_input, tool_use_id, "----"), immediate)
            return immediate

        request = self._new_request(agent, tool_name, tool_input, tool_use_id, self._new_request_id(agent))
        loop = asyncio.get_running_loop()
        entry = _Pending(
            request=request,
            future=loop.create_future(),
            timer=loop.call_later(self.timeout_seconds, self._expire, agent, request.request_id),
            listener=agent.listener,
            path=path,
        )
        agent.pending[request.request_id] = entry
        self._asking += 1
        self._idle.clear()
        try:
            await self._notify(request, entry.listener.prompt_opened, request)
            decision = await entry.future
            # A task of its own, so the audit line and the chat update happen even if the call is dropped now.
            finishing = self._spawn(self._after_decision(entry, decision), f"prompt-decided-{agent_id}")
        except asyncio.CancelledError:
            # The CLI dropped the HTTP call (an interrupt), or the server is stopping.
            if agent.pending.get(request.request_id) is entry:
                self._close(agent, entry, None)
                self._spawn(self._after_cancel(entry), f"prompt-cancelled-{agent_id}")
            elif entry.future.done() and not entry.future.cancelled():
                # Decided in the same instant as dropped: still audit it and tell the chat.
                self._spawn(self._after_decision(entry, entry.future.result()), f"prompt-decided-{agent_id}")
            raise
        finally:
            self._asking -= 1
            if self._asking == 0:
                self._idle.set()
        await asyncio.shield(finishing)
        return decision

    # -- the chat side ----------------------------------------------------------------------------

    def answer(self, agent_id: str, reply_text: str, decided_by: str, *, delegated: bool = False) -> AnswerResult:
        """Apply the owner's chat reply (see replies.py for the grammar). ``delegated``: someone the owner
        lets answer (a room's owners and admins, when the room says so), checked by the caller."""
        agent = self._agents.get(agent_id)
        if agent is None:
            return AnswerResult(AnswerStatus.NOT_A_REPLY)
        outcome = parse_reply(reply_text, [entry.request for entry in agent.pending.values()])
        late = self._late_reply(agent, reply_text) if outcome is None else None
        if outcome is None and late is None:
            return AnswerResult(AnswerStatus.NOT_A_REPLY)
        if bare_jid(decided_by) != agent.owner and not delegated:
            log.warning("agent %s: %s tried to answer a permission prompt of %s", agent_id, decided_by, agent.owner)
            return AnswerResult(AnswerStatus.NOT_OWNER, NOT_OWNER_TEXT)
        if late is not None:
            return late
        match outcome:
            case Reply():
                return self._apply(agent, outcome, bare_jid(decided_by))
            case Ambiguous(request_ids=ids):
                listed = ", ".join(f"{rid} ({agent.pending[rid].request.tool_name})" for rid in ids)
                return AnswerResult(
                    AnswerStatus.AMBIGUOUS,
                    f"Several requests are waiting: {listed}. Which one? Reply e.g. '{ids[0]} yes'.",
                    request_ids=ids,
                )
            case UnknownRequest(request_id=rid):
                return self._unknown_id(agent, rid)
            case InvalidReply(request_id=rid, reason=reason):
                entry = agent.pending.get(rid)
                return AnswerResult(AnswerStatus.INVALID, reason, request=entry.request if entry else None)
        raise AssertionError(f"unhandled reply outcome {outcome!r}")  # pragma: no cover

    def decide(self, agent_id: str, reply: Reply, decided_by: str) -> AnswerResult:
        """Apply a reply given as values rather than text (a form): the same rules as ``answer``'s."""
        agent = self._agents.get(agent_id)
        if agent is None:
            return AnswerResult(AnswerStatus.UNKNOWN_ID, f"No agent {agent_id}.")
        if bare_jid(decided_by) != agent.owner:
            log.warning("agent %s: %s tried to answer a permission prompt of %s", agent_id, decided_by, agent.owner)
            return AnswerResult(AnswerStatus.NOT_OWNER, NOT_OWNER_TEXT)
        if reply.request_id not in agent.pending:
            return self._unknown_id(agent, reply.request_id)
        request = agent.pending[reply.request_id].request
        if reply.action is ReplyAction.ALLOW_ALWAYS and request.kind is not PromptKind.TOOL:
            return AnswerResult(AnswerStatus.INVALID, "'always' only applies to tool permissions.", request=request)
        if reply.action is ReplyAction.ANSWER and request.kind is not PromptKind.QUESTION:
            return AnswerResult(AnswerStatus.INVALID, "Only a question takes answers.", request=request)
        return self._apply(agent, reply, bare_jid(decided_by))

    def resolve(self, agent_id: str, request_id: str, decision: Decision, *, delegated: bool = False) -> AnswerResult:
        """Decide one prompt directly (a 👍/👎 reaction). An allow without updated_input allows the input as is."""
        agent = self._agents.get(agent_id)
        if agent is None:
            return AnswerResult(AnswerStatus.UNKNOWN_ID, f"No agent {agent_id}.")
        automatic = decision.decided_by in {member.value for member in DecidedBy}
        if not automatic and not delegated and bare_jid(decision.decided_by) != agent.owner:
            return AnswerResult(AnswerStatus.NOT_OWNER, NOT_OWNER_TEXT)
        entry = agent.pending.get(request_id)
        if entry is None:
            return self._unknown_id(agent, request_id)
        request = entry.request
        if decision.allowed:
            updated = dict(decision.updated_input if decision.updated_input is not None else request.input)
            if request.kind is PromptKind.QUESTION and "answers" not in updated:
                text = "A question needs an answer, not a 👍: reply with an option."
                return AnswerResult(AnswerStatus.INVALID, text, request=request)
            decision = replace(decision, updated_input=updated)
        if not automatic:
            decision = replace(decision, decided_by=bare_jid(decision.decided_by))
        self._close(agent, entry, decision)
        return AnswerResult(AnswerStatus.RESOLVED, request=request, decision=decision)

    def deny_all(
        self, agent_id: str, reason: str, decided_by: str, *, interrupt: bool = False
    ) -> list[PermissionRequest]:
        """Deny every pending prompt of the agent (e.g. the owner said "stop"); returns those denied."""
        agent = self._agents.get(agent_id)
        if agent is None:
            return []
        return self._deny_pending(agent, Decision.deny(reason, decided_by, interrupt=interrupt))

    async def close(self, drain_timeout: float = 5.0) -> None:
        """Deny everything pending with "shutting down", refuse new prompts, and let the answers go out."""
        self._closing = True
        for agent in list(self._agents.values()):
            self._deny_pending(agent, Decision.deny(SHUTDOWN_MESSAGE, DecidedBy.SHUTDOWN))
        try:
            async with asyncio.timeout(drain_timeout):
                await self._idle.wait()
                while self._tasks:
                    await asyncio.wait(set(self._tasks))
        except TimeoutError:
            log.warning(
                "permission registry: %d prompt(s) still finishing after %.1f s", len(self._tasks), drain_timeout
            )

    # -- internals --------------------------------------------------------------------------------

    def _apply(self, agent: _Agent, reply: Reply, decided_by: str) -> AnswerResult:
        entry = agent.pending[reply.request_id]
        request = entry.request
        # What runs: the input asked about, or the owner's edit of it (a Bash command changed in a form).
        runs = reply.updated_input if reply.updated_input is not None else request.input
        match reply.action:
            case ReplyAction.ALLOW:
                decision = Decision.allow(runs, decided_by)
            case ReplyAction.ALLOW_ALWAYS:
                rule, kept = self._add_rule(agent, entry, runs)
                # ``always`` tells engines with their own session approvals (Codex, ACP) to keep it too.
                decision = replace(Decision.allow(runs, decided_by), always=kept, rule=rule)
            case ReplyAction.DENY:
                decision = Decision.deny(reply.message or _default_deny_message(request), decided_by)
            case ReplyAction.ANSWER:
                decision = Decision.allow({**request.input, "answers": dict(reply.answers)}, decided_by)
        self._close(agent, entry, decision)
        if reply.action is ReplyAction.ALLOW_ALWAYS:
            # Other prompts already waiting that the new rule covers need no answer either.
            for other in list(agent.pending.values()):
                if other.request.kind is PromptKind.TOOL and agent.covered_by_rule(
                    other.request.tool_name, other.request.input, other.path
                ):
                    rule = self._rule_text(agent, other.request.tool_name)
                    self._close(agent, other, replace(Decision.allow(other.request.input, DecidedBy.ALWAYS_RULE), rule=rule))
        return AnswerResult(AnswerStatus.RESOLVED, request=request, decision=decision)

    def _close(self, agent: _Agent, entry: _Pending, decision: Decision | None) -> None:
        """End a pending prompt (decision None: withdrawn by the CLI). Synchronous, so no answer races another."""
        request = entry.request
        agent.pending.pop(request.request_id, None)
        entry.timer.cancel()
        loop_time = asyncio.get_running_loop().time()
        agent.closed[request.request_id] = _Closed.of(request, decision, loop_time)
        self._prune_closed(agent, loop_time)
        if entry.future.done():
            return
        if decision is None:
            entry.future.cancel()
        else:
            entry.future.set_result(decision)

    def _expire(self, agent: _Agent, request_id: str) -> None:
        entry = agent.pending.get(request_id)
        if entry is not None:
            message = (
                f"The permission request timed out: the user did not answer within {_duration(self.timeout_seconds)}, "
                "so it was denied."
            )
            self._close(agent, entry, Decision.deny(message, DecidedBy.TIMEOUT))

    def _deny_pending(self, agent: _Agent, decision: Decision) -> list[PermissionRequest]:
        denied = [entry.request for entry in agent.pending.values()]
        for entry in list(agent.pending.values()):
            self._close(agent, entry, decision)
        return denied

    async def _after_decision(self, entry: _Pending, decision: Decision) -> None:
        request = entry.request
        await self._write_audit(request, decision)
        if decision.decided_by == DecidedBy.TIMEOUT:
            await self._notify(request, entry.listener.prompt_timed_out, request)
        else:
            await self._notify(request, entry.listener.prompt_resolved, request, decision)

    async def _after_cancel(self, entry: _Pending) -> None:
        await self._write_audit(entry.request, None)
        await self._notify(entry.request, entry.listener.prompt_cancelled, entry.request)

    async def _write_audit(self, request: PermissionRequest, decision: Decision | None) -> None:
        if self._audit is None:
            return
        try:
            await self._audit.append(AuditRecord.of(request, decision))
        except PermissionPromptError:
            log.exception("agent %s request %s: audit record lost", request.agent_id, request.request_id)

    async def _notify(
        self, request: PermissionRequest, method: Callable[..., Awaitable[None]], *args: Any
    ) -> None:
        """Call a listener method; its failure is logged, never passed on to the MCP call."""
        try:
            async with asyncio.timeout(self._listener_timeout):
                await method(*args)
        except TimeoutError:
            log.error("agent %s request %s: listener %s took longer than %g s",
                      request.agent_id, request.request_id, getattr(method, "__name__", method), self._listener_timeout)
        except Exception:
            log.exception("agent %s request %s: listener %s failed",
                          request.agent_id, request.request_id, getattr(method, "__name__", method))

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        """A background task the registry keeps a reference to; close() waits for it."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("permission task %s failed", task.get_name(), exc_info=task.exception())

    def _new_request(
        self,
        agent: _Agent,
        tool_name: str,
        tool_input: Mapping[str, Any],
        tool_use_id: str | None,
        request_id: str,
    ) -> PermissionRequest:
        created = datetime.now(UTC)
        kind = prompt_kind(tool_name)
        return PermissionRequest(
            request_id=request_id,
            agent_id=agent.agent_id,
            owner=agent.owner,
            tool_name=tool_name,
            input=dict(tool_input),
            tool_use_id=tool_use_id,
            kind=kind,
            created_at=created,
            deadline=created + timedelta(seconds=self.timeout_seconds),
            questions=parse_questions(tool_input) if kind is PromptKind.QUESTION else (),
        )

    def _new_request_id(self, agent: _Agent) -> str:
        # Also avoid ids of recently ended prompts, so a late "#a1b2 yes" never hits a new prompt.
        self._prune_closed(agent, asyncio.get_running_loop().time())
        for _ in range(10_000):
            request_id = secrets.token_hex(2)
            if request_id not in agent.pending and request_id not in agent.closed:
                return request_id
        raise PermissionPromptError(f"agent {agent.agent_id}: no free request id")  # pragma: no cover

    def _prune_closed(self, agent: _Agent, now: float) -> None:
        while agent.closed:
            oldest = next(iter(agent.closed.values()))
            if now - oldest.closed_at <= self._closed_memory_seconds and len(agent.closed) <= 1024:
                break
            agent.closed.popitem(last=False)

    def _late_reply(self, agent: _Agent, reply_text: str) -> AnswerResult | None:
        """A bare reply that would have answered a prompt which timed out a short while ago, or None.

        Replies naming an id are handled by _unknown_id; a bare "yes" long after a timeout is chat again.
        """
        now = asyncio.get_running_loop().time()
        timed_out: list[_Closed] = []
        # Newest first, and only as far back as a late reply counts: the agent remembers up to
        # 1024 closed prompts, and this runs on every message its owner sends.
        for closed in reversed(agent.closed.values()):
            if now - closed.closed_at > self._late_reply_seconds:
                break
            if closed.decision is not None and closed.decision.decided_by == DecidedBy.TIMEOUT:
                timed_out.append(closed)
        timed_out.reverse()
        outcome = parse_reply(reply_text, [closed.request for closed in timed_out]) if timed_out else None
        if isinstance(outcome, Reply):
            closed = agent.closed[outcome.request_id]
            return AnswerResult(AnswerStatus.EXPIRED, _too_late(closed), request=closed.request)
        if isinstance(outcome, Ambiguous):
            closed = timed_out[-1]
            return AnswerResult(AnswerStatus.EXPIRED, _too_late(closed), request=closed.request)
        return None

    def _add_rule(self, agent: _Agent, entry: _Pending, runs: Mapping[str, Any]) -> tuple[str, bool]:
        """Record the "always" answer to this prompt (``runs``: its input as it runs, a Bash command perhaps
        edited by the owner); returns what it covers, for the chat line, and whether a rule was kept (a file
        outside the repository is allowed once only)."""
        request, rules = entry.request, agent.current_rules()
        command = runs.get("command") if request.bash_command is not None else None
        if isinstance(command, str):
            rules.commands.add(command)
            return "this exact command, for this session", True
        if request.tool_name in FILE_TOOLS:
            if not agent.inside_repository(entry.path):
                where = f"under {display_path(agent.repository)}" if agent.repository else "of a known repository"
                target = display_path(entry.path) if entry.path is not None else "this one"
                return f"once only: “always” covers files {where}, not {target}", False
            rules.file_tools.add(request.tool_name)
            return self._rule_text(agent, request.tool_name), True
        rules.tools.add(request.tool_name)
        return self._rule_text(agent, request.tool_name), True

    @staticmethod
    def _rule_text(agent: _Agent, tool_name: str) -> str:
        if tool_name == "Bash":
            return "this exact command, for this session"
        if tool_name in FILE_TOOLS and agent.repository is not None:
            return f"{tool_name} under {display_path(agent.repository)} for this session"
        return f"{tool_name} for this session"

    def _unknown_id(self, agent: _Agent, request_id: str) -> AnswerResult:
        closed = agent.closed.get(request_id)
        if closed is not None:
            return AnswerResult(AnswerStatus.EXPIRED, _too_late(closed), request=closed.request)
        waiting = ", ".join(agent.pending) or "none"
        return AnswerResult(
            AnswerStatus.UNKNOWN_ID,
            f"There is no pending request {request_id}. Waiting: {waiting}.",
            request_ids=tuple(agent.pending),
        )


def target_path(tool_name: str, tool_input: Mapping[str, Any], repository: Path | None) -> Path | None:
    """The real path a file tool would touch (relative paths from the repository), or None.

    Blocking (it resolves symlinks): call through asyncio.to_thread.
    """
    if tool_name not in FILE_TOOLS:
        return None
    raw = next((tool_input[key] for key in PATH_KEYS if isinstance(tool_input.get(key), str)), None)
    if raw is None:
        # Glob, Grep and LS without a path search the working directory: the repository.
        return repository if tool_name in SEARCH_TOOLS else None
    if "\0" in raw or not raw:
        return None
    path = Path(raw)
    if not path.is_absolute():
        if repository is None:
            return None
        path = repository / path
    return Path(os.path.realpath(path))


def display_path(path: Path) -> str:
    """A path as the owner knows it: ~ for their home."""
    home = Path.home()
    return f"~/{path.relative_to(home)}" if path.is_relative_to(home) and path != home else str(path)


def bare_jid(jid: str) -> str:
    """``user@domain`` of a JID, lower-cased (local part and domain compare case-insensitively)."""
    return jid.split("/", 1)[0].strip().lower()


def _default_deny_message(request: PermissionRequest) -> str:
    if request.kind is PromptKind.QUESTION:
        return "The user declined to answer these questions."
    if request.kind is PromptKind.PLAN:
        return "The user rejected the plan. Do not start; keep planning or ask what to change."
    return f"The user denied permission to use {request.tool_name}."


def _too_late(closed: _Closed) -> str:
    request, decision = closed.request, closed.decision
    what = f"{request.request_id} ({request.tool_name}: {closed.summary})"
    if decision is None:
        return f"Request {what} was withdrawn by Claude before you answered; nothing was run."
    if decision.decided_by == DecidedBy.TIMEOUT:
        at = f" at {request.deadline.strftime('%H:%M')} UTC"
        return (
            f"Sorry, request {what} timed out{at} and Claude was told no. "
            "Ask Claude to try again if you still want it."
        )
    verdict = "allowed" if decision.allowed else "denied"
    return f"Request {what} was already {verdict} ({decision.decided_by})."


def _duration(seconds: float) -> str:
    if seconds >= 120 and seconds % 60 == 0:
        return f"{int(seconds // 60)} minutes"
    return f"{seconds:g} seconds"

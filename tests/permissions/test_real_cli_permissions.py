"""The REAL Claude Code CLI (2.1.330, bundled in claude-agent-sdk) against our MCP server and a mock API.

Each test starts the CLI as reference §2 does (stream-json in and out, throwaway HOME and TMPDIR, only
127.0.0.1 reachable, a temporary git repository as cwd), scripts the model through
``tests/support/mock_anthropic.py`` and plays the owner through the registry, as the chat side would.

What running the CLI showed (2.1.330), beyond reference §5:

* AskUserQuestion reaches the permission tool with the model's input unchanged:
  ``{"questions":[{"question","header","options":[{"label","description"}],"multiSelect"}]}``. The
  CLI's own schema for the tool also has ``answers`` (question text -> answer string), "collected by
  the permission component": we answer allow with ``updatedInput = input + {"answers": {...}}``. The
  model then reads ``Your questions have been answered: "Which color?"="Blue". You can now continue
  with these answers in mind.`` A multiSelect answer is the labels joined with ", " (a JSON list is
  accepted too and rendered "S,L"). An answer that is no option's label is accepted as free text and
  read as ``The user answered: … Read the answers carefully …``. Allow without ``answers``: ``The user
  did not answer the questions.`` Deny: the model reads the deny message (``is_error``).
* ExitPlanMode is a deferred tool in 2.1.330 (the model loads it with ``ToolSearch select:ExitPlanMode``;
  neither asks permission). Its schema takes no plan: in plan mode the model writes the plan to
  ``$HOME/.claude/plans/<slug>.md`` (named in the plan-mode system prompt; writing it asks nobody),
  and the CLI calls the permission tool with ``{"plan": <that file's text>, "planFilePath": <path>}``
  (just ``{}`` when no plan file exists). Approve = allow with that input unchanged: the model reads
  "User has approved your plan. You can now start coding. …" and the session leaves plan mode
  (``system/status`` ``permissionMode: default``). A changed ``updatedInput.plan`` is taken as the
  owner's edit ("Approved Plan (edited by user)", written to the plan file). Reject = deny: the
  model reads the message and stays in plan mode.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import os
import re
import logging
import signal
import statistics
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from agentchat.permissions.audit import AuditLog
from agentchat.permissions.mcp_server import PermissionMcpServer
from agentchat.permissions.registry import AnswerStatus, PermissionRegistry
from agentchat.permissions.requests import Decision, PermissionRequest, PromptKind
from tests.support.mock_anthropic import MockAnthropic, TextResponse, ToolUseResponse

pytestmark = pytest.mark.claude_cli
log = logging.getLogger(__name__)

AGENT = "agent-cli"
OWNER = "owner@example.org"
TURN_TIMEOUT = 30.0


def _bundled_cli() -> Path | None:
    spec = importlib.util.find_spec("claude_agent_sdk")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "_bundled" / "claude"
    return path if path.is_file() and os.access(path, os.X_OK) else None


@pytest.fixture(scope="module")
def cli_binary() -> Path:
    path = _bundled_cli()
    if path is None:
        pytest.skip("the Claude Code CLI is not installed: pip install claude-agent-sdk (it bundles _bundled/claude)")
    return path


class OwnerListener:
    """The chat side, reduced to queues: the test body plays the owner."""

    def __init__(self) -> None:
        self.opened: asyncio.Queue[PermissionRequest] = asyncio.Queue()
        self.timed_out: asyncio.Queue[PermissionRequest] = asyncio.Queue()
        self.resolved: list[tuple[PermissionRequest, Decision]] = []
        # When set, answers every prompt at once (for timing), as well as queueing it.
        self.auto_reply: Callable[[PermissionRequest], object] | None = None

    async def prompt_opened(self, request: PermissionRequest) -> None:
        if self.auto_reply is not None:
            self.auto_reply(request)
        self.opened.put_nowait(request)

    async def prompt_resolved(self, request: PermissionRequest, decision: Decision) -> None:
        self.resolved.append((request, decision))

    async def prompt_timed_out(self, request: PermissionRequest) -> None:
        self.timed_out.put_nowait(request)

    async def prompt_cancelled(self, request: PermissionRequest) -> None:
        pass

    async def next_opened(self, timeout: float = TURN_TIMEOUT) -> PermissionRequest:
        return await asyncio.wait_for(self.opened.get(), timeout)


@dataclass
class Stack:
    api: MockAnthropic
    registry: PermissionRegistry
    server: PermissionMcpServer
    listener: OwnerListener
    token: str
    home: Path
    repo: Path
    audit: AuditLog


@dataclass
class CliProcess:
    """One running CLI; ``turn()`` sends a user message and reads events up to its ``result``."""

    process: asyncio.subprocess.Process
    events: list[dict[str, Any]] = field(default_factory=list)

    async def send(self, text: str) -> None:
        assert self.process.stdin is not None
        line = {"type": "user", "message": {"role": "user", "content": text}}
        self.process.stdin.write((json.dumps(line) + "\n").encode())
        await self.process.stdin.drain()

    async def read_until_result(self, timeout: float = TURN_TIMEOUT) -> dict[str, Any] | None:
        """Events until this turn's result; None if the process ended first."""
        assert self.process.stdout is not None
        async with asyncio.timeout(timeout):
            while True:
                line = await self.process.stdout.readline()
                if not line:
                    return None
                event = json.loads(line)
                self.events.append(event)
                if event.get("type") == "result":
                    return event

    async def turn(self, text: str, timeout: float = TURN_TIMEOUT) -> dict[str, Any] | None:
        await self.send(text)
        return await self.read_until_result(timeout)

    def tool_results(self) -> list[dict[str, Any]]:
        return [
            block
            for event in self.events
            if event.get("type") == "user"
            for block in event["message"].get("content", [])
            if isinstance(block, dict) and block.get("type") == "tool_result"
        ]

    async def close(self) -> tuple[int, str]:
        """End stdin, wait for the exit (killing the process group if it hangs); return code and stderr."""
        assert self.process.stdin is not None and self.process.stderr is not None
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.process.stdin.close()
        try:
            async with asyncio.timeout(10):
                stderr = await self.process.stderr.read()
                code = await self.process.wait()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            code = await self.process.wait()
            stderr = b""
        return code, stderr.decode(errors="replace")


@pytest.fixture
async def stack(tmp_path: Path, cli_binary: Path) -> AsyncIterator[Stack]:
    audit = AuditLog(tmp_path / "permissions.jsonl")
    registry = PermissionRegistry(timeout_seconds=20, audit=audit)
    listener = OwnerListener()
    token = registry.register_agent(AGENT, OWNER, listener)
    server = PermissionMcpServer(registry, port=0)
    await server.start()  # before any CLI: a missing tool at the first tool use kills the CLI
    repo = tmp_path / "repo"
    repo.mkdir()
    git = await asyncio.create_subprocess_exec("git", "init", "-q", str(repo))
    assert await git.wait() == 0
    async with MockAnthropic() as api:
        yield Stack(api, registry, server, listener, token, tmp_path / "home", repo, audit)
    await registry.close()
    await server.stop()
    await audit.close()


@contextlib.asynccontextmanager
async def run_cli(stack: Stack, cli_binary: Path, *extra: str, token: str | None = None) -> AsyncIterator[CliProcess]:
    mcp_config = {
        "mcpServers": {
            "agentchat": {
                "type": "http",
                "url": stack.server.url,
                "headers": {"Authorization": f"Bearer {token or stack.token}"},
            }
        }
    }
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        **stack.api.cli_env(home=stack.home),
        # Above the registry's timeout, so our "timed out" deny arrives before the CLI's own MCP timeout.
        "MCP_TOOL_TIMEOUT": str(int((stack.registry.timeout_seconds + 30) * 1000)),
    }
    process = await asyncio.create_subprocess_exec(
        str(cli_binary), "-p", "--output-format", "stream-json", "--input-format", "stream-json", "--verbose",
        *extra,
        "--mcp-config", json.dumps(mcp_config),
        "--permission-prompt-tool", "mcp__agentchat__permission_prompt",
        cwd=stack.repo, env=env, start_new_session=True,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        limit=64 * 1024 * 1024,
    )
    cli = CliProcess(process)
    try:
        yield cli
    finally:
        if process.returncode is None:
            await cli.close()


def last_tool_result(api: MockAnthropic) -> dict[str, Any]:
    """The tool_result block of the newest API request: what the model was told."""
    return api.requests[-1].tool_results()[-1]


def tool_result_text(block: dict[str, Any]) -> str:
    content = block.get("content")
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return str(content)


# -- tools ----------------------------------------------------------------------------------------

async def test_allow_writes_the_file(stack: Stack, cli_binary: Path) -> None:
    target = stack.repo / "allowed.txt"
    stack.api.script_tool_use("Write", {"file_path": str(target), "content": "allowed\n"}, final_text="done")
    async with run_cli(stack, cli_binary) as cli:
        await cli.send("please write the file")
        request = await stack.listener.next_opened()
        assert request.tool_name == "Write" and request.kind is PromptKind.TOOL
        assert request.input == {"file_path": str(target), "content": "allowed\n"}
        assert request.tool_use_id and request.tool_use_id.startswith("toolu_mock_")
        assert stack.registry.answer(AGENT, "yes", OWNER).status is AnswerStatus.RESOLVED
        result = await cli.read_until_result()
    assert result is not None and result["subtype"] == "success" and result["permission_denials"] == []
    assert target.read_text() == "allowed\n"
    assert not last_tool_result(stack.api).get("is_error")


async def test_deny_keeps_the_file_away_and_the_model_reads_why(stack: Stack, cli_binary: Path) -> None:
    target = stack.repo / "denied.txt"
    stack.api.script_tool_use("Write", {"file_path": str(target), "content": "nope\n"}, final_text="understood")
    async with run_cli(stack, cli_binary) as cli:
        await cli.send("please write the file")
        await stack.listener.next_opened()
        stack.registry.answer(AGENT, "no, write it under docs/ instead", OWNER)
        result = await cli.read_until_result()
    assert result is not None and result["permission_denials"][0]["tool_name"] == "Write"
    assert not target.exists()
    told = last_tool_result(stack.api)
    assert told["is_error"] is True and tool_result_text(told) == "write it under docs/ instead"


async def test_timeout_denies(stack: Stack, cli_binary: Path) -> None:
    stack.registry.timeout_seconds = 1.0  # only new prompts read it
    target = stack.repo / "late.txt"
    stack.api.script_tool_use("Write", {"file_path": str(target), "content": "x\n"}, final_text="ok")
    async with run_cli(stack, cli_binary) as cli:
        await cli.send("please write the file")
        request = await stack.listener.next_opened()
        timed_out = await asyncio.wait_for(stack.listener.timed_out.get(), TURN_TIMEOUT)
        assert timed_out.request_id == request.request_id
        late = stack.registry.answer(AGENT, "yes", OWNER)
        assert late.status is AnswerStatus.EXPIRED
        result = await cli.read_until_result()
    assert result is not None and not target.exists()
    told = last_tool_result(stack.api)
    assert told["is_error"] is True and "timed out" in tool_result_text(told)


async def test_allow_always_skips_the_second_identical_bash(stack: Stack, cli_binary: Path) -> None:
    command = "echo hi >> always.txt"
    stack.api.script(
        ToolUseResponse(name="Bash", input={"command": command, "description": "append hi"}),
        ToolUseResponse(name="Bash", input={"command": command, "description": "append hi again"}),
        ToolUseResponse(name="Bash", input={"command": "echo other > other.txt", "description": "other"}),
        TextResponse(text="done"),
    )
    async with run_cli(stack, cli_binary) as cli:
        await cli.send("append twice")
        first = await stack.listener.next_opened()
        assert first.bash_command == command
        stack.registry.answer(AGENT, "always", OWNER)
        other = await stack.listener.next_opened()  # the second identical command was not asked
        assert other.bash_command == "echo other > other.txt"
        stack.registry.answer(AGENT, "no", OWNER)
        result = await cli.read_until_result()
    assert result is not None and result["subtype"] == "success"
    assert (stack.repo / "always.txt").read_text() == "hi\nhi\n"
    assert not (stack.repo / "other.txt").exists()
    decided_by = [json.loads(line)["decided_by"] for line in stack.audit.path.read_text().splitlines()]
    assert decided_by == [OWNER, "always-rule", OWNER]


async def test_wrong_token_makes_the_cli_exit_at_the_first_tool_use(stack: Stack, cli_binary: Path) -> None:
    stack.api.script_tool_use("Write", {"file_path": str(stack.repo / "x.txt"), "content": "x"}, final_text="no")
    async with run_cli(stack, cli_binary, token="not-the-token") as cli:
        result = await cli.turn("please write the file")
        code, stderr = await cli.close()
    assert result is None and code == 1
    assert "mcp__agentchat__permission_prompt" in stderr and "not found" in stderr
    init = next(event for event in cli.events if event.get("subtype") == "init")
    assert init["mcp_servers"] == [{"name": "agentchat", "status": "failed", "source": "dynamic"}]
    assert stack.listener.opened.empty() and not (stack.repo / "x.txt").exists()


# -- questions and plans --------------------------------------------------------------------------

async def test_ask_user_question_answered_by_number(stack: Stack, cli_binary: Path) -> None:
    questions = {
        "questions": [
            {
                "question": "Which color?",
                "header": "Color",
                "options": [{"label": "Red", "description": "warm"}, {"label": "Blue", "description": "cool"}],
                "multiSelect": False,
            },
            {
                "question": "Which sizes?",
                "header": "Sizes",
                "options": [
                    {"label": "S", "description": "small"},
                    {"label": "M", "description": "medium"},
                    {"label": "L", "description": "large"},
                ],
                "multiSelect": True,
            },
        ]
    }
    stack.api.script_tool_use("AskUserQuestion", questions, final_text="thanks")
    async with run_cli(stack, cli_binary) as cli:
        await cli.send("ask me")
        request = await stack.listener.next_opened()
        assert request.kind is PromptKind.QUESTION and request.input == questions
        assert [q.question for q in request.questions] == ["Which color?", "Which sizes?"]
        assert stack.registry.answer(AGENT, "2; 1,3", OWNER).status is AnswerStatus.RESOLVED
        result = await cli.read_until_result()
    assert result is not None
    told = last_tool_result(stack.api)
    assert not told.get("is_error")
    assert tool_result_text(told) == (
        'Your questions have been answered: "Which color?"="Blue", "Which sizes?"="S, L". '
        "You can now continue with these answers in mind."
    )


async def test_exit_plan_mode_rejected_then_approved(stack: Stack, cli_binary: Path) -> None:
    async with run_cli(stack, cli_binary, "--permission-mode", "plan") as cli:
        # Turn 1 only reveals where plan mode wants the plan written (the path is random per session).
        stack.api.script_text("let me think")
        assert await cli.turn("plan a change") is not None
        found = re.search(r"create your plan at (\S+?\.md)", json.dumps(stack.api.requests[-1].body))
        assert found is not None, "plan mode no longer names the plan file"
        plan_path = found.group(1)
        plan = "# Plan\n1. Add tests\n2. Change auth.ts\n"
        stack.api.script(
            ToolUseResponse(name="Write", input={"file_path": plan_path, "content": plan}),
            ToolUseResponse(name="ToolSearch", input={"query": "select:ExitPlanMode", "max_results": 1}),
            ToolUseResponse(name="ExitPlanMode", input={}),
            ToolUseResponse(name="ExitPlanMode", input={}),
            TextResponse(text="starting"),
        )
        await cli.send("write the plan and ask me")
        rejected = await stack.listener.next_opened()  # writing the plan file asked nobody
        assert rejected.kind is PromptKind.PLAN
        assert rejected.input == {"plan": plan, "planFilePath": plan_path} and rejected.plan == plan
        stack.registry.answer(AGENT, "reject: split step 2", OWNER)
        approved = await stack.listener.next_opened()
        assert approved.plan == plan
        assert stack.registry.answer(AGENT, "approve", OWNER).status is AnswerStatus.RESOLVED
        result = await cli.read_until_result()
    assert result is not None and result["subtype"] == "success"
    rejection, approval = cli.tool_results()[-2:]
    assert rejection["is_error"] is True and tool_result_text(rejection) == "split step 2"
    assert tool_result_text(approval).startswith("User has approved your plan.")
    modes = [event.get("permissionMode") for event in cli.events if event.get("subtype") == "status"]
    assert modes[-1] == "default"


async def test_cli_call_overhead(stack: Stack, cli_binary: Path) -> None:
    """What a permission prompt answered at once adds to a tool call, in the CLI's own timestamps.

    tool_use -> tool_result gap of a no-op Bash asked through us, minus the same with --allowedTools Bash
    (no prompt). Logged as the figure; the assertion is only a sanity bound.
    """
    calls = 8
    stack.listener.auto_reply = lambda request: stack.registry.answer(AGENT, f"#{request.request_id} yes", OWNER)

    async def gaps(*extra: str) -> list[float]:
        uses = [ToolUseResponse(name="Bash", input={"command": f"echo {n} > out{n}.txt"}) for n in range(calls)]
        stack.api.script(*uses, TextResponse(text="done"))
        async with run_cli(stack, cli_binary, *extra) as cli:
            result = await cli.turn("run them")
        assert result is not None and result["subtype"] == "success"
        return tool_gaps_ms(cli.events)

    asked = await gaps()
    not_asked = await gaps("--allowedTools", "Bash")
    assert len(asked) == len(not_asked) == calls and stack.listener.opened.qsize() == calls
    overhead = statistics.median(asked) - statistics.median(not_asked)
    log.warning("real CLI tool_use->tool_result p50: asked %.1f ms, not asked %.1f ms, permission call adds %.1f ms",
                statistics.median(asked), statistics.median(not_asked), overhead)
    assert overhead < 1000


def tool_gaps_ms(events: list[dict[str, Any]]) -> list[float]:
    """Per tool use: the assistant line's timestamp to its tool_result line's, in ms."""
    started: dict[str, datetime] = {}
    gaps: list[float] = []
    for event in events:
        content = event.get("message", {}).get("content") if event.get("type") in ("assistant", "user") else None
        for block in content if isinstance(content, list) else []:
            if block.get("type") == "tool_use":
                started[block["id"]] = datetime.fromisoformat(event["timestamp"])
            elif block.get("type") == "tool_result" and block.get("tool_use_id") in started:
                ended = datetime.fromisoformat(event["timestamp"])
                gaps.append((ended - started[block["tool_use_id"]]).total_seconds() * 1000)
    return gaps

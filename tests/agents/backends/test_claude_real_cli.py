"""ClaudeCodeBackend with the real Claude Code CLI, offline against MockAnthropic.

The CLI comes from the project's own test setup (``pip install -e '.[claude,dev]'``: the
claude-agent-sdk wheel bundles it), or CLAUDE_PATH, or PATH. Without it these tests skip, and
``-ra`` prints why. Each CLI process gets a throwaway HOME and TMPDIR and
CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1, so nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agentchat.agents.backends.base import (
    AgentBackend,
    AssistantText,
    BackendNotice,
    BackendSpec,
    ProcessExited,
    SessionStarted,
    ToolResult,
    ToolUse,
    TurnResult,
)
from agentchat.agents.backends.claude import ClaudeCodeBackend, claude_version, locate_claude
from agentchat.config import ClaudeSettings
from agentchat.errors import BackendError
from agentchat.chat.events import render_turn_summary
from tests.support import EventReader, of
from tests.support.claude_versions import CliUnderTest, clis_on_this_machine
from tests.support.mock_anthropic import MockAnthropic, PermissionStub

pytestmark = pytest.mark.claude_cli

MakeSpec = Callable[..., BackendSpec]


@pytest.fixture(scope="module")
def claude_cli() -> Path:
    try:
        return locate_claude(os.environ.get("CLAUDE_PATH"))
    except BackendError as exc:
        pytest.skip(f"real Claude Code CLI not available: {exc}")


@pytest.fixture
def start_real(claude_cli: Path, mock_anthropic: MockAnthropic, make_spec: MakeSpec, home: Path, backends: list[AgentBackend]) -> Callable[..., Any]:
    """Start the real CLI for a spec (HOME/TMPDIR throwaway, API = the mock)."""

    async def start(spec: BackendSpec | None = None, **overrides: Any) -> tuple[ClaudeCodeBackend, EventReader]:
        spec = spec or make_spec(**overrides)
        spec.env = {**mock_anthropic.cli_env(home=home), **spec.env, "HOME": str(home)}
        backend = ClaudeCodeBackend(spec, ClaudeSettings(path=str(claude_cli)))
        backends.append(backend)
        reader = EventReader(backend)
        await backend.start()
        return backend, reader

    return start


async def test_cli_version(claude_cli: Path) -> None:
    version = await claude_version(claude_cli)
    assert "Claude Code" in version


def _tested() -> list[CliUnderTest]:
    found = clis_on_this_machine()
    return found if len(found) >= 2 else [*found, CliUnderTest("oldest-missing", Path("/nonexistent"))]


@pytest.mark.parametrize("cli", _tested(), ids=lambda cli: cli.label)
async def test_stop_reads_as_stopped_on_every_tested_version(
    cli: CliUnderTest, mock_anthropic: MockAnthropic, make_spec: MakeSpec, home: Path, backends: list[AgentBackend]
) -> None:
    """2.1.332 adds "[ede_diagnostic] …" errors to an interrupted turn's result: still a stop, not a failure."""
    if not cli.path.exists():
        pytest.skip("the oldest Claude Code of the tested range is not unpacked (make test unpacks it into .cache)")
    spec = make_spec()
    spec.env = {**mock_anthropic.cli_env(home=home), "HOME": str(home)}
    backend = ClaudeCodeBackend(spec, ClaudeSettings(path=str(cli.path)))
    backends.append(backend)
    reader = EventReader(backend)
    await backend.start()
    mock_anthropic.script_text("Once upon a time " * 20, chunks=20, chunk_delay=0.5)
    await backend.send("a long story please")
    await mock_anthropic.wait_for_requests(1, timeout=30)
    await backend.interrupt()
    _, stopped = await reader.until(TurnResult, timeout=10)
    assert stopped.interrupted and stopped.subtype == "error_during_execution"
    assert render_turn_summary(stopped) == "⏹ Stopped"
    version = await claude_version(cli.path)
    assert "Claude Code" in version


async def test_turns_interrupt_and_api_error_on_one_process(start_real: Any, mock_anthropic: MockAnthropic) -> None:
    backend, reader = await start_real()
    pid = backend.pid

    await backend.send("hello there")
    before, first = await reader.until(TurnResult, timeout=30)
    assert isinstance(before[0], SessionStarted) and before[0].session_id == backend.session_id
    assert of(AssistantText, before) == [AssistantText("MOCK_REPLY: hello there")]
    assert not first.is_error and first.turn_cost_usd and first.turn_cost_usd > 0

    # Interrupt mid-turn: the answer streams for ~10 s; the process survives.
    mock_anthropic.script_text("Once upon a time " * 20, chunks=20, chunk_delay=0.5)
    await backend.send("a long story please")
    await mock_anthropic.wait_for_requests(2)
    started = time.monotonic()
    await backend.interrupt()
    _, interrupted = await reader.until(TurnResult, timeout=10)
    assert time.monotonic() - started < 3
    assert interrupted.is_error and interrupted.subtype == "error_during_execution"
    assert backend.running and backend.pid == pid

    await backend.send("are you still there?")
    before, second = await reader.until(TurnResult, timeout=30)
    assert not of(SessionStarted, before), "one SessionStarted per process"
    assert not second.is_error and second.text == "MOCK_REPLY: are you still there?"
    assert mock_anthropic.requests[-1].user_texts()[0] == "hello there", "same conversation"

    # The API fails (no retries configured): is_error with subtype success; the next turn works.
    mock_anthropic.script_error(500)
    await backend.send("this will fail")
    before, failed = await reader.until(TurnResult, timeout=30)
    assert failed.is_error and failed.subtype == "success" and (failed.text or "").startswith("API Error: 500")
    assert not of(AssistantText, before)
    await backend.send("and now?")
    _, recovered = await reader.until(TurnResult, timeout=30)
    assert not recovered.is_error and recovered.text is not None and recovered.text.startswith("MOCK_REPLY: ")
    assert recovered.total_cost_usd == pytest.approx(sum(r.turn_cost_usd or 0 for r in of(TurnResult, reader.seen)))
    assert backend.pid == pid


async def test_resume_in_a_new_process_keeps_the_conversation(start_real: Any, mock_anthropic: MockAnthropic, make_spec: MakeSpec) -> None:
    spec = make_spec()
    first, reader = await start_real(spec)
    await first.send("remember the number 42")
    await reader.until(TurnResult, timeout=30)
    await first.stop()
    _, exited = await reader.until(ProcessExited)
    assert exited.expected and exited.exit_code == 0

    # Owner forgot resume=True: the CLI refuses the id, the backend resumes on the next start.
    second, reader = await start_real(make_spec(session_id=spec.session_id))
    _, refused = await reader.until(ProcessExited, timeout=30)
    assert refused.exit_code == 1 and "already in use" in refused.stderr_tail
    await second.start()
    await second.send("what was the number?")
    before, result = await reader.until(TurnResult, timeout=30)
    assert of(SessionStarted, before)[0].session_id == spec.session_id
    assert result.text == "MOCK_REPLY: what was the number?"
    assert mock_anthropic.requests[-1].user_texts() == ["remember the number 42", "what was the number?"]


async def test_unknown_session_is_reported(start_real: Any) -> None:
    _, reader = await start_real(resume=True)
    started = time.monotonic()
    before, exited = await reader.until(ProcessExited, timeout=30)
    assert exited.session_not_found and exited.exit_code == 1
    assert time.monotonic() - started < 10 and not of(TurnResult, before)


async def test_permission_tool_over_mcp(start_real: Any, mock_anthropic: MockAnthropic, repo: Path) -> None:
    async with PermissionStub(token="real-token") as stub:
        mock_anthropic.script_tool_use("Write", {"file_path": str(repo / "hello.txt"), "content": "from the model\n"})
        backend, reader = await start_real(mcp_url=stub.url, mcp_token=stub.token)
        await backend.send("write hello.txt")
        before, result = await reader.until(TurnResult, timeout=30)
        assert not of(BackendNotice, before), "the permission server is connected"
        [use] = of(ToolUse, before)
        assert [(call.tool_name, call.tool_use_id) for call in stub.calls] == [("Write", use.tool_use_id)]
        [tool_result] = of(ToolResult, before)
        assert not tool_result.is_error and (repo / "hello.txt").read_text() == "from the model\n"
        assert not result.is_error and result.num_turns == 2
        assert stub.unauthorized == 0
        await backend.stop()


async def test_sigkill_mid_turn(start_real: Any, mock_anthropic: MockAnthropic) -> None:
    mock_anthropic.script_text("slow " * 40, chunks=40, chunk_delay=0.5)
    backend, reader = await start_real()
    await backend.send("go slowly")
    await mock_anthropic.wait_for_requests(1, timeout=30)
    assert backend.pid is not None
    started = time.monotonic()
    os.kill(backend.pid, signal.SIGKILL)
    _, exited = await reader.until(ProcessExited, timeout=10)
    assert time.monotonic() - started < 2.5
    assert exited.exit_code == -signal.SIGKILL and not exited.expected and not backend.running

"""ClaudeCodeBackend against the fake CLI (tests/support/fake_claude.py) replaying recorded fixtures."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import stat
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
from agentchat.agents.backends.claude import PERMISSION_TOOL, ClaudeCodeBackend
from agentchat.config import ClaudeSettings
from agentchat.errors import BackendError
from tests.support import EventReader, of, wait_process_gone
from tests.support.mock_anthropic import PermissionStub

MakeSpec = Callable[..., BackendSpec]


@pytest.fixture
def start_claude(fake_claude_bin: Path, backends: list[AgentBackend]) -> Callable[..., Any]:
    """Start a ClaudeCodeBackend on the fake CLI; returns (backend, reader)."""

    async def start(spec: BackendSpec, **settings: Any) -> tuple[ClaudeCodeBackend, EventReader]:
        options = {key: settings.pop(key) for key in ("stop_grace", "drain_timeout") if key in settings}
        backend = ClaudeCodeBackend(spec, ClaudeSettings(path=str(settings.pop("path", fake_claude_bin)), **settings), **options)
        backends.append(backend)
        reader = EventReader(backend)
        await backend.start()
        return backend, reader

    return start





def _log(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


async def test_echo_turns_report_session_once_and_per_turn_cost(make_spec: MakeSpec, start_claude: Any) -> None:
    spec = make_spec()
    backend, reader = await start_claude(spec)
    assert backend.running and backend.pid is not None
    await backend.send("hello")
    before, first = await reader.until(TurnResult)
    assert before == [
        SessionStarted(session_id=spec.session_id, model="claude-opus-5-5", cwd=str(spec.cwd)),
        AssistantText("MOCK_REPLY: hello"),
    ]
    assert not first.is_error and first.text == "MOCK_REPLY: hello"
    await backend.send("again")
    before, second = await reader.until(TurnResult)
    # init comes with every turn; SessionStarted only once per process.
    assert before == [AssistantText("MOCK_REPLY: again")]
    assert second.turn_cost_usd == pytest.approx(0.0005)
    assert second.total_cost_usd == pytest.approx(0.001)
    assert backend.session_id == spec.session_id


async def test_command_line_environment_and_mcp_config(make_spec: MakeSpec, start_claude: Any, tmp_path: Path) -> None:
    log = tmp_path / "fake.log"
    spec = make_spec(
        mcp_url="http://127.0.0.1:9/mcp",
        mcp_token="secret-token",
        permission_timeout=120,
        env={"FAKE_CLAUDE_LOG": str(log), "FAKE_SPEC": "spec", "FAKE_BOTH": "spec"},
    )
    backend, reader = await start_claude(spec, model="claude-test", extra_args=["--max-turns", "3"], env={"FAKE_SETTINGS": "settings", "FAKE_BOTH": "settings"})
    await backend.send("hi")
    await reader.until(TurnResult)
    start = _log(log)[0]
    argv = start["argv"]
    assert argv[:7] == ["-p", "--input-format", "stream-json", "--output-format", "stream-json", "--verbose", "--model"]
    assert argv[argv.index("--session-id") + 1] == spec.session_id
    assert argv[argv.index("--permission-prompt-tool") + 1] == PERMISSION_TOOL
    assert "--max-turns" in argv and argv[-2] == "--mcp-config"
    assert not any("secret-token" in arg for arg in argv), "the token must not be on the command line"
    config_path = Path(argv[-1])
    config = json.loads(config_path.read_text())
    assert config == {"mcpServers": {"agentchat": {"type": "http", "url": "http://127.0.0.1:9/mcp", "headers": {"Authorization": "Bearer secret-token"}}}}
    assert stat.S_IMODE(config_path.stat().st_mode) == 0o600
    assert start["cwd"] == str(spec.cwd)
    assert start["env"]["MCP_TOOL_TIMEOUT"] == "150000"  # above the permission timeout
    assert start["env"]["FAKE_SETTINGS"] == "settings" and start["env"]["FAKE_SPEC"] == "spec"
    assert start["env"]["FAKE_BOTH"] == "spec"  # the agent's own env wins over the service-wide one
    await backend.stop()
    assert not config_path.exists(), "the config file (with the token) is removed with the process"


async def test_new_process_resumes_the_session(make_spec: MakeSpec, start_claude: Any) -> None:
    spec = make_spec()
    first, reader = await start_claude(spec)
    await first.send("remember the number 42")
    await reader.until(TurnResult)
    await first.stop()
    _, exited = await reader.until(ProcessExited)
    assert exited.expected and exited.exit_code == 0
    second, reader = await start_claude(make_spec(session_id=spec.session_id, resume=True))
    await second.send("[[recall]]")
    before, result = await reader.until(TurnResult)
    assert of(SessionStarted, before)[0].session_id == spec.session_id
    assert result.text == "MOCK_HISTORY: remember the number 42"


async def test_restart_after_a_crash_resumes(make_spec: MakeSpec, start_claude: Any, tmp_path: Path) -> None:
    log = tmp_path / "fake.log"
    backend, reader = await start_claude(make_spec(env={"FAKE_CLAUDE_LOG": str(log)}))
    await backend.send("first")
    await reader.until(TurnResult)
    await backend.send("[[exit:7]]")
    _, exited = await reader.until(ProcessExited)
    assert exited.exit_code == 7 and not exited.expected and "exiting with code 7" in exited.stderr_tail
    assert not backend.running
    await backend.start()
    await backend.send("[[recall]]")
    _, result = await reader.until(TurnResult)
    assert result.text == "MOCK_HISTORY: first | [[exit:7]]"
    argv = [entry["argv"] for entry in _log(log) if entry["event"] == "start"][-1]
    assert "--resume" in argv and "--session-id" not in argv


async def test_unknown_session_is_reported_as_session_not_found(make_spec: MakeSpec, start_claude: Any) -> None:
    _, reader = await start_claude(make_spec(resume=True))
    started = time.monotonic()
    # The CLI prints the error, then waits for stdin to end: the driver must close it.
    before, exited = await reader.until(ProcessExited, timeout=5)
    assert time.monotonic() - started < 3
    assert exited.session_not_found and exited.exit_code == 1 and not exited.expected
    assert "No conversation found" in exited.stderr_tail
    assert not of(TurnResult, before)


async def test_session_id_in_use_makes_the_next_start_resume(make_spec: MakeSpec, start_claude: Any) -> None:
    spec = make_spec()
    first, reader = await start_claude(spec)
    await first.send("one")
    await reader.until(TurnResult)
    await first.stop()
    # An owner that forgot resume=True: the CLI refuses the id, the next start resumes.
    second, reader = await start_claude(make_spec(session_id=spec.session_id, resume=False))
    _, exited = await reader.until(ProcessExited)
    assert exited.exit_code == 1 and "already in use" in exited.stderr_tail
    await second.start()
    await second.send("[[recall]]")
    _, result = await reader.until(TurnResult)
    assert result.text == "MOCK_HISTORY: one"


async def test_recorded_tool_use_turn(make_spec: MakeSpec, start_claude: Any) -> None:
    backend, reader = await start_claude(make_spec())
    await backend.send("[[fixture:tool_use]]")
    before, result = await reader.until(TurnResult)
    texts = [event.text for event in of(AssistantText, before)]
    assert texts[0] == "I'll create hello.txt."
    [use] = of(ToolUse, before)
    assert use.name == "Write" and use.input["content"] == "hello from the mock\n"
    [tool_result] = of(ToolResult, before)
    assert tool_result.tool_use_id == use.tool_use_id and not tool_result.is_error
    assert tool_result.content.startswith("File created successfully")
    assert texts[-1].startswith("MOCK_TOOL_RESULT: File created") and result.num_turns == 2 and not result.is_error


async def test_thinking_is_not_assistant_text(make_spec: MakeSpec, start_claude: Any) -> None:
    backend, reader = await start_claude(make_spec())
    await backend.send("[[fixture:thinking]]")
    before, _ = await reader.until(TurnResult)
    assert of(AssistantText, before) == [AssistantText("Thought about it.")]
    assert not of(BackendNotice, before)  # system/thinking_tokens is known and quiet


async def test_api_error_is_reported_and_the_next_turn_works(make_spec: MakeSpec, start_claude: Any) -> None:
    backend, reader = await start_claude(make_spec())
    await backend.send("[[fixture:api_error]]")
    before, failed = await reader.until(TurnResult)
    assert failed.is_error and failed.subtype == "success"  # as the CLI reports API errors
    assert failed.text is not None and failed.text.startswith("API Error: 500")
    retries = [notice.message for notice in of(BackendNotice, before)]
    assert retries == ["API error (500), retry 1/2 in 0.6 s", "API error (500), retry 2/2 in 1.2 s"]
    assert not of(AssistantText, before), "the synthetic error text comes once, in the result"
    await backend.send("next")
    _, ok = await reader.until(TurnResult)
    assert not ok.is_error and ok.text == "MOCK_REPLY: next"


async def test_interrupt_keeps_the_process(make_spec: MakeSpec, start_claude: Any) -> None:
    backend, reader = await start_claude(make_spec())
    await backend.send("[[fixture:interrupt]]")
    await reader.until(SessionStarted)
    pid = backend.pid
    await backend.interrupt()
    _, result = await reader.until(TurnResult)
    assert result.is_error and result.subtype == "error_during_execution"
    assert backend.running and backend.pid == pid
    await backend.send("still there?")
    _, result = await reader.until(TurnResult)
    assert result.text == "MOCK_REPLY: still there?"


async def test_interrupt_during_a_sleeping_turn(make_spec: MakeSpec, start_claude: Any) -> None:
    backend, reader = await start_claude(make_spec())
    await backend.send("[[sleep:30]]")
    await reader.until(SessionStarted)
    started = time.monotonic()
    await backend.interrupt()
    _, result = await reader.until(TurnResult, timeout=5)
    assert time.monotonic() - started < 2 and result.subtype == "error_during_execution"


async def test_interrupt_and_send_when_not_running(make_spec: MakeSpec, fake_claude_bin: Path) -> None:
    backend = ClaudeCodeBackend(make_spec(), ClaudeSettings(path=str(fake_claude_bin)))
    await backend.interrupt()  # nothing to interrupt: no error
    with pytest.raises(BackendError, match="not running"):
        await backend.send("hello")
    await backend.stop()
    assert [event async for event in backend.events()] == []


async def test_garbage_lines_are_reported_not_fatal(make_spec: MakeSpec, start_claude: Any) -> None:
    backend, reader = await start_claude(make_spec())
    await backend.send("[[fixture:garbage]]")
    before, result = await reader.until(TurnResult)
    notices = [notice.message for notice in of(BackendNotice, before)]
    assert len(notices) == 4
    assert "not JSON" in notices[0] and "this is not JSON" in notices[0]
    assert "not a JSON object (a list)" in notices[1]
    assert of(AssistantText, before) and not result.is_error and backend.running


async def test_unknown_events_are_skipped_and_reported_once(make_spec: MakeSpec, start_claude: Any) -> None:
    backend, reader = await start_claude(make_spec())
    await backend.send("[[fixture:unknown_events]]")
    before, _ = await reader.until(TurnResult)
    notices = [notice.message for notice in of(BackendNotice, before)]
    assert any("brand_new_event" in message for message in notices)
    assert any("server_tool_use" in message for message in notices)
    assert any("unexpected assistant event" in message for message in notices)
    assert of(AssistantText, before) == [AssistantText("MOCK_REPLY: hello there")]
    await backend.send("[[fixture:unknown_events]]")
    before, _ = await reader.until(TurnResult)
    assert not of(BackendNotice, before), "each unknown kind is reported once per process"


async def test_huge_line(make_spec: MakeSpec, start_claude: Any) -> None:
    backend, reader = await start_claude(make_spec())
    started = time.monotonic()
    await backend.send("[[fixture:huge_line]]")
    before, result = await reader.until(TurnResult, timeout=20)
    [text] = of(AssistantText, before)
    assert len(text.text) == 10 * 1024 * 1024 and not result.is_error
    assert time.monotonic() - started < 10


async def test_half_lines_are_joined(make_spec: MakeSpec, start_claude: Any) -> None:
    backend, reader = await start_claude(make_spec())
    await backend.send("[[fixture:half_lines]]")
    before, _ = await reader.until(TurnResult)
    assert of(AssistantText, before) == [AssistantText("MOCK_REPLY: hello there")]
    assert not of(BackendNotice, before)


async def test_crash_mid_turn(make_spec: MakeSpec, start_claude: Any) -> None:
    backend, reader = await start_claude(make_spec())
    await backend.send("[[fixture:crash]]")
    before, exited = await reader.until(ProcessExited)
    assert exited.exit_code == 3 and not exited.expected
    assert "simulated crash" in exited.stderr_tail
    assert of(AssistantText, before) == [AssistantText("MOCK_REPLY: hello there")]
    # The cut-off last line is reported, not fatal, and comes before the exit.
    assert any("not JSON" in notice.message for notice in of(BackendNotice, before))
    assert not backend.running and not of(TurnResult, before)


async def test_exit_before_init(make_spec: MakeSpec, start_claude: Any) -> None:
    backend, reader = await start_claude(make_spec())
    await backend.send("[[fixture:exit_before_init]]")
    before, exited = await reader.until(ProcessExited)
    assert exited.exit_code == 1 and "simulated failure before init" in exited.stderr_tail
    assert before == []


async def test_exit_at_start(make_spec: MakeSpec, start_claude: Any) -> None:
    _, reader = await start_claude(make_spec(env={"FAKE_CLAUDE_EXIT_BEFORE_INIT": "2:Error: broken install"}))
    _, exited = await reader.until(ProcessExited)
    assert exited.exit_code == 2 and exited.stderr_tail == "Error: broken install"


async def test_sigkill_mid_turn_with_a_child_holding_stdout(make_spec: MakeSpec, start_claude: Any, repo: Path) -> None:
    backend, reader = await start_claude(make_spec(), drain_timeout=0.5)
    # A background child writes into the CLI's stdout, so stdout stays open after the CLI dies.
    command = "sleep 60 > /proc/$PPID/fd/1 2>&1 & echo $! > orphan.pid"
    await backend.send(f"[[tool:Bash {json.dumps({'command': command})}]]")
    await reader.until(TurnResult)
    orphan = int((repo / "orphan.pid").read_text())
    await backend.send('[[tool:Bash {"command": "sleep 30"}]]')
    await reader.until(ToolUse)  # mid-turn
    assert backend.pid is not None
    started = time.monotonic()
    os.kill(backend.pid, signal.SIGKILL)
    _, exited = await reader.until(ProcessExited, timeout=5)
    assert time.monotonic() - started < 2
    assert exited.exit_code == -signal.SIGKILL and not exited.expected
    # The driver ended the rest of the process group.
    await wait_process_gone(orphan, timeout=2)


async def test_stop_is_idempotent_and_ends_the_events(make_spec: MakeSpec, start_claude: Any) -> None:
    backend, reader = await start_claude(make_spec())
    await backend.send("hi")
    await reader.until(TurnResult)
    await asyncio.gather(backend.stop(), backend.stop())
    await backend.stop()
    rest = await reader.rest()
    assert rest == [ProcessExited(exit_code=0, stderr_tail="", expected=True)]
    assert not backend.running


async def test_stop_escalates_to_sigterm_when_a_turn_runs(make_spec: MakeSpec, start_claude: Any) -> None:
    backend, reader = await start_claude(make_spec(), stop_grace=0.3)
    await backend.send("[[sleep:30]]")
    await reader.until(SessionStarted)
    started = time.monotonic()
    await backend.stop()
    _, exited = await reader.until(ProcessExited)
    assert exited.expected and exited.exit_code == 143  # the CLI exits 143 on SIGTERM
    assert time.monotonic() - started < 2


async def test_stop_escalates_to_sigkill(make_spec: MakeSpec, start_claude: Any, tmp_path: Path) -> None:
    stubborn = tmp_path / "stubborn"
    stubborn.write_text("#!/bin/sh\ntrap '' TERM\nwhile :; do sleep 0.05; done\n")
    stubborn.chmod(0o755)
    backend, reader = await start_claude(make_spec(), path=stubborn, stop_grace=0.2)
    await backend.stop()
    _, exited = await reader.until(ProcessExited)
    assert exited.expected and exited.exit_code == -signal.SIGKILL


async def test_control_request_from_the_cli_is_refused(make_spec: MakeSpec, start_claude: Any, tmp_path: Path) -> None:
    fixture = tmp_path / "asks.jsonl"
    text = Path(__file__).parents[2] / "fixtures" / "text.jsonl"
    lines = text.read_text().splitlines()
    ask = {"type": "control_request", "request_id": "cli-1", "request": {"subtype": "can_use_tool", "tool_name": "Write"}}
    fixture.write_text("\n".join([lines[0], lines[1], json.dumps(ask), *lines[2:]]) + "\n")
    log = tmp_path / "fake.log"
    backend, reader = await start_claude(make_spec(env={"FAKE_CLAUDE_LOG": str(log)}))
    await backend.send(f"[[fixture:{fixture}]]")
    await reader.until(TurnResult)
    await backend.stop()
    answers = [json.loads(entry["line"]) for entry in _log(log) if entry["event"] == "stdin" and "control_response" in entry["line"]]
    assert answers == [{"type": "control_response", "response": {"subtype": "error", "request_id": "cli-1", "error": "agentchat does not handle this request"}}]


async def test_start_errors_are_backend_errors(make_spec: MakeSpec, fake_claude_bin: Path, tmp_path: Path) -> None:
    missing = ClaudeCodeBackend(make_spec(), ClaudeSettings(path=str(tmp_path / "no-such-claude")))
    with pytest.raises(BackendError, match="CLAUDE_PATH"):
        await missing.start()
    no_repo = ClaudeCodeBackend(make_spec(cwd=tmp_path / "gone"), ClaudeSettings(path=str(fake_claude_bin)))
    with pytest.raises(BackendError, match="gone"):
        await no_repo.start()
    assert not no_repo.running


# --- the permission prompt tool through MCP (PermissionStub is an mcp 2.3 MCPServer) ---------------


def _mcp_spec(make_spec: MakeSpec, stub: PermissionStub, **overrides: Any) -> BackendSpec:
    return make_spec(mcp_url=stub.url, mcp_token=stub.token, **overrides)


async def test_permission_allowed_runs_the_tool(make_spec: MakeSpec, start_claude: Any, permission_stub: PermissionStub, repo: Path) -> None:
    seen: list[str] = []

    def allow_changed(tool_name: str, tool_input: dict[str, Any], tool_use_id: str) -> dict[str, Any]:
        seen.append(tool_use_id)
        return {"behavior": "allow", "updatedInput": {**tool_input, "content": "changed by the user\n"}}

    permission_stub.decide = allow_changed
    backend, reader = await start_claude(_mcp_spec(make_spec, permission_stub))
    await backend.send('[[tool:Write {"file_path": "notes/a.txt", "content": "original\\n"}]]')
    before, result = await reader.until(TurnResult)
    assert not of(BackendNotice, before), "connected: no warning about the permission server"
    [use] = of(ToolUse, before)
    [call] = permission_stub.calls
    assert (call.tool_name, call.input, call.tool_use_id) == ("Write", {"file_path": "notes/a.txt", "content": "original\n"}, use.tool_use_id)
    assert seen == [use.tool_use_id]
    assert (repo / "notes" / "a.txt").read_text() == "changed by the user\n"
    [tool_result] = of(ToolResult, before)
    assert not tool_result.is_error and not result.is_error


async def test_permission_denied_is_a_tool_error_the_model_sees(make_spec: MakeSpec, start_claude: Any, permission_stub: PermissionStub, repo: Path) -> None:
    permission_stub.decide = lambda name, tool_input, tool_use_id: {"behavior": "deny", "message": "not today"}
    backend, reader = await start_claude(_mcp_spec(make_spec, permission_stub))
    await backend.send('[[tool:Bash {"command": "touch ran.txt"}]]')
    before, result = await reader.until(TurnResult)
    [tool_result] = of(ToolResult, before)
    assert tool_result.is_error and tool_result.content == "not today"
    assert result.text == "MOCK_TOOL_RESULT (error): not today" and not result.is_error
    assert not (repo / "ran.txt").exists()


async def test_permission_denied_with_interrupt_ends_the_turn(make_spec: MakeSpec, start_claude: Any, permission_stub: PermissionStub) -> None:
    permission_stub.decide = lambda name, tool_input, tool_use_id: {"behavior": "deny", "message": "stop", "interrupt": True}
    backend, reader = await start_claude(_mcp_spec(make_spec, permission_stub))
    await backend.send("[[fixture:tool_use]]")
    before, result = await reader.until(TurnResult)
    assert result.is_error and result.subtype == "error_during_execution"
    assert of(ToolResult, before)[0].content.startswith("The user doesn't want to proceed")
    assert backend.running


async def test_interrupt_while_permission_is_pending(make_spec: MakeSpec, start_claude: Any, permission_stub: PermissionStub) -> None:
    cancelled = asyncio.Event()

    async def hold(tool_name: str, tool_input: dict[str, Any], tool_use_id: str) -> dict[str, Any]:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return {"behavior": "allow", "updatedInput": tool_input}

    permission_stub.decide = hold
    backend, reader = await start_claude(_mcp_spec(make_spec, permission_stub))
    await backend.send('[[tool:Bash {"command": "true"}]]')
    await asyncio.wait_for(permission_stub.called.wait(), 5)
    await backend.interrupt()
    before, result = await reader.until(TurnResult)
    assert result.subtype == "error_during_execution" and of(ToolResult, before)[0].is_error
    await asyncio.wait_for(cancelled.wait(), 5)  # the dropped request cancelled the server side
    await backend.send("after")
    _, result = await reader.until(TurnResult)
    assert result.text == "MOCK_REPLY: after"


async def test_permission_answer_slower_than_mcp_tool_timeout(make_spec: MakeSpec, start_claude: Any, permission_stub: PermissionStub) -> None:
    async def slow(tool_name: str, tool_input: dict[str, Any], tool_use_id: str) -> dict[str, Any]:
        await asyncio.sleep(5)
        return {"behavior": "allow", "updatedInput": tool_input}

    permission_stub.decide = slow
    backend, reader = await start_claude(_mcp_spec(make_spec, permission_stub, env={"MCP_TOOL_TIMEOUT": "300"}))
    await backend.send('[[tool:Bash {"command": "true"}]]')
    before, result = await reader.until(TurnResult)
    [tool_result] = of(ToolResult, before)
    assert tool_result.is_error and "timed out after 0.3s" in tool_result.content and not result.is_error


async def test_wrong_token_fails_the_first_tool_use(make_spec: MakeSpec, start_claude: Any, permission_stub: PermissionStub) -> None:
    backend, reader = await start_claude(make_spec(mcp_url=permission_stub.url, mcp_token="wrong-token"))
    await backend.send('[[tool:Write {"file_path": "a.txt", "content": "x"}]]')
    before, exited = await reader.until(ProcessExited)
    assert any("permission server is failed" in notice.message for notice in of(BackendNotice, before))
    assert exited.exit_code == 1 and "passed via --permission-prompt-tool" in exited.stderr_tail
    assert "wrong-token" not in exited.stderr_tail
    assert permission_stub.unauthorized >= 1 and not permission_stub.calls


async def test_recorded_fixture_follows_the_live_decision(make_spec: MakeSpec, start_claude: Any, permission_stub: PermissionStub, repo: Path) -> None:
    backend, reader = await start_claude(_mcp_spec(make_spec, permission_stub))
    await backend.send("[[fixture:tool_denied]]")  # recorded as denied, allowed now
    before, _ = await reader.until(TurnResult)
    assert not of(ToolResult, before)[0].is_error
    assert (repo / "hello.txt").read_text() == "hello from the mock\n"

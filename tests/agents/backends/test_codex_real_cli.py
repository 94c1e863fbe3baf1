"""CodexBackend with the real Codex CLI (``codex app-server``, 0.171.0) offline against MockResponses.

Skipped with the reason printed when Codex is not installed (``make install-engines``). Each test
starts one app-server and takes it through several turns; its CODEX_HOME and repository live under
``.cache/test-engines`` (Codex's sandbox hides /tmp).
"""

from __future__ import annotations

import logging
import os
import signal
import stat
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agentchat.agents.backends.base import (
    AssistantText,
    BackendNotice,
    BackendSpec,
    ProcessExited,
    SessionStarted,
    ToolResult,
    ToolUse,
    TurnResult,
)
from agentchat.agents.backends.codex import CodexBackend
from agentchat.agents.sandbox import Sandbox
from agentchat.config import CodexSettings
from agentchat.errors import BackendError
from tests.support import EventReader, of
from tests.support.engines import TURN_TIMEOUT, Owner, agent_dirs, agent_sandbox, engine_binary, engine_dir, engine_settings
from tests.support.mock_responses import MockResponses

pytestmark = pytest.mark.engines
# A long answer streamed over ~20 s, varied so that no loop detection cuts it short.
SLOW = "".join(f"word{n} " for n in range(40))

T = TURN_TIMEOUT


@pytest.fixture(scope="module")
def codex() -> Path:
    return engine_binary("codex")


@pytest.fixture
async def api() -> AsyncIterator[MockResponses]:
    async with MockResponses() as mock:
        yield mock


@pytest.fixture
def scratch() -> AsyncIterator[Path]:
    with engine_dir() as path:
        (path / "repo").mkdir()
        yield path


@pytest.fixture
async def sandbox(scratch: Path) -> Sandbox:
    return await agent_sandbox(scratch)


def make_backend(scratch: Path, settings: CodexSettings, owner: Owner | None, sandbox: Sandbox | None = None,
                 **spec: object) -> CodexBackend:
    """Codex for agent-1 in ``scratch/repo``: in the agent's sandbox as the service starts it, or
    without ``sandbox`` a bare backend (no sandbox, its own directory under ``scratch/state``)."""
    values: dict[str, object] = {"agent_id": "agent-1", "cwd": scratch / "repo", "session_id": str(uuid.uuid4()),
                                 "state_dir": scratch / "state", "permissions": owner, **spec}
    if sandbox is not None:
        values |= {"sandbox": sandbox, "dirs": agent_dirs(scratch)}
    return CodexBackend(BackendSpec(**values), settings)  # type: ignore[arg-type]


async def test_turns_streaming_approvals_and_stop_on_one_process(codex: Path, api: MockResponses, scratch: Path, sandbox: Sandbox) -> None:
    owner = Owner()
    backend = make_backend(scratch, engine_settings("codex", api.base_url, path=str(codex)), owner, sandbox)
    reader = EventReader(backend)
    try:
        await backend.start()
        assert backend.engine_name == "Codex" and backend.engine_version == "0.171.0"
        started = await reader.next()
        assert isinstance(started, SessionStarted) and started.session_id == backend.session_id
        pid = backend.pid

        await backend.send("hello there")
        before, result = await reader.until(TurnResult, timeout=T)
        assert of(AssistantText, before) == [AssistantText("MOCK_REPLY: hello there")]
        assert not result.is_error and result.num_turns == 1

        # A streamed answer arrives whole, as one message.
        story = "".join(f"Chapter {n} begins. " for n in range(12))  # not repetitive: Gemini cuts loops
        api.script_text(story, chunks=12, chunk_delay=0.05)
        await backend.send("a story")
        before, result = await reader.until(TurnResult, timeout=T)
        assert of(AssistantText, before) == [AssistantText(story)]

        # A command that needs approval: allowed.
        repo = scratch / "repo"
        api.script_call("exec_command", {"cmd": "echo hi > hi.txt", "sandbox_permissions": "require_escalated",
                                         "justification": "write hi.txt"})
        await backend.send("write hi.txt")
        prompt = await owner.next_prompt()
        assert prompt.tool_name == "Bash" and prompt.input == {"command": "echo hi > hi.txt", "description": "write hi.txt"}
        owner.answer("yes")
        before, result = await reader.until(TurnResult, timeout=T)
        assert (repo / "hi.txt").read_text() == "hi\n" and not result.is_error
        [use] = of(ToolUse, before)
        assert use.name == "Bash" and use.input == {"command": "echo hi > hi.txt"}

        # A file change denied with a reason: the model reads the reason in the same turn.
        api.script_patch("*** Begin Patch\n*** Add File: new.txt\n+hello\n*** End Patch\n")
        await backend.send("create new.txt")
        prompt = await owner.next_prompt()
        assert prompt.tool_name == "Write" and prompt.input["file_path"] == str(repo / "new.txt")
        assert prompt.input["content"] == "hello\n"
        owner.answer("no use notes.md instead")
        before, result = await reader.until(TurnResult, timeout=T)
        assert not (repo / "new.txt").exists()
        assert "Permission denied: use notes.md instead" in api.requests[-1].user_texts()
        assert "rejected" in api.requests[-1].tool_outputs()[-1]
        assert any(r.is_error for r in of(ToolResult, before))

        # "always": Codex is told acceptForSession and does not ask again for that command.
        escalated = {"cmd": "echo again >> log.txt", "sandbox_permissions": "require_escalated", "justification": "log"}
        api.script_call("exec_command", escalated)
        await backend.send("log once")
        await owner.next_prompt()
        owner.answer("always")
        await reader.until(TurnResult, timeout=T)
        owner.registry.reset_session("agent-1")  # our own rule forgotten: only Codex's can skip the prompt
        asked = len(owner.asked)
        api.script_call("exec_command", escalated)
        await backend.send("log twice")
        await reader.until(TurnResult, timeout=T)
        assert len(owner.asked) == asked, "Codex asked again despite acceptForSession"
        assert (repo / "log.txt").read_text() == "again\nagain\n"

        # Stop mid-turn: the process and the session stay.
        api.script_text(SLOW, chunks=40, chunk_delay=0.5)
        requests = len(api.requests)
        await backend.send("go slowly")
        await api.wait_for_requests(requests + 1)
        stopped_at = time.monotonic()
        await backend.interrupt()
        _, interrupted = await reader.until(TurnResult, timeout=10)
        assert time.monotonic() - stopped_at < 5
        assert interrupted.is_error and interrupted.subtype == "error_during_execution"
        assert backend.running and backend.pid == pid
        await backend.send("still there?")
        _, after = await reader.until(TurnResult, timeout=T)
        assert not after.is_error
        assert api.requests[-1].user_texts()[0] == "hello there", "same thread"
    finally:
        await backend.stop()
    rest = await reader.rest()
    assert of(ProcessExited, rest)[-1].expected


async def test_a_stop_withdraws_a_pending_approval(codex: Path, api: MockResponses, scratch: Path, sandbox: Sandbox) -> None:
    owner = Owner()
    backend = make_backend(scratch, engine_settings("codex", api.base_url, path=str(codex)), owner, sandbox)
    reader = EventReader(backend)
    try:
        await backend.start()
        api.script_call("exec_command", {"cmd": "touch x", "sandbox_permissions": "require_escalated", "justification": "x"})
        await backend.send("touch x")
        await owner.next_prompt()
        await backend.interrupt()
        _, result = await reader.until(TurnResult, timeout=10)
        assert result.subtype == "error_during_execution"
        assert len(owner.cancelled) == 1 and not owner.registry.pending("agent-1")
        assert not (scratch / "repo" / "x").exists()
    finally:
        await backend.stop()


async def test_a_crash_is_reported_and_the_next_process_resumes_the_thread(
    codex: Path, api: MockResponses, scratch: Path, sandbox: Sandbox
) -> None:
    settings = engine_settings("codex", api.base_url, path=str(codex))
    first = make_backend(scratch, settings, Owner(), sandbox)
    reader = EventReader(first)
    await first.start()
    await first.send("remember the number 42")
    await reader.until(TurnResult, timeout=T)
    api.script_text(SLOW, chunks=40, chunk_delay=0.5)
    await first.send("go slowly")
    await api.wait_for_requests(2)
    assert first.pid is not None
    os.kill(first.pid, signal.SIGKILL)
    _, exited = await reader.until(ProcessExited, timeout=10)
    assert exited.exit_code == -signal.SIGKILL and not exited.expected and not first.running
    await first.stop()

    second = make_backend(scratch, settings, Owner(), sandbox, session_id=first.session_id, resume=True)
    reader = EventReader(second)
    try:
        await second.start()
        started = await reader.next()
        assert isinstance(started, SessionStarted) and started.session_id == first.session_id
        await second.send("what was the number?")
        before, result = await reader.until(TurnResult, timeout=T)
        assert not of(BackendNotice, before) and not result.is_error
        assert api.requests[-1].user_texts()[0] == "remember the number 42"
    finally:
        await second.stop()


def _script(path: Path, body: str) -> Path:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


async def test_bad_installs_fail_with_one_clear_line(api: MockResponses, scratch: Path, sandbox: Sandbox) -> None:
    missing = make_backend(scratch, CodexSettings(path=str(scratch / "nowhere" / "codex")), Owner(), sandbox)
    with pytest.raises(BackendError, match=r"Codex '.*nowhere/codex' \(agents.codex.path / CODEX_PATH\) does not exist"):
        await missing.start()

    broken = _script(scratch / "broken-codex", 'echo "Error: broken install" >&2\nexit 3\n')
    exits = make_backend(scratch, CodexSettings(path=str(broken)), Owner(), sandbox)
    with pytest.raises(BackendError, match=r"^Codex exited at start with code 3: Error: broken install$"):
        await exits.start()
    assert not exits.running


async def test_unknown_and_garbage_messages_are_logged_not_fatal(
    codex: Path, api: MockResponses, scratch: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A wrapper prints what Codex never would, then becomes Codex on the same stdout.
    wrapper = _script(
        scratch / "odd-codex",
        'echo \'{"jsonrpc":"2.0","method":"agentchat/fromTheFuture","params":{"x":1}}\'\n'
        "echo 'this is not JSON'\n"
        f'exec "{codex}" "$@"\n',
    )
    backend = make_backend(scratch, engine_settings("codex", api.base_url, path=str(wrapper)), Owner())
    reader = EventReader(backend)
    caplog.set_level(logging.INFO, logger="agentchat")
    try:
        await backend.start()
        await backend.send("hello")
        before, result = await reader.until(TurnResult, timeout=T)
        assert not result.is_error and of(AssistantText, before) == [AssistantText("MOCK_REPLY: hello")]
        notices = [n.message for n in of(BackendNotice, reader.seen)]
        assert notices == ["unreadable line from Codex, not JSON (Expecting value: line 1 column 1 (char 0)): this is not JSON"]
        assert "ignored unknown notification 'agentchat/fromTheFuture' from Codex" in caplog.text
    finally:
        await backend.stop()

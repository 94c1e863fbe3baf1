"""The ACP backend with the real Gemini CLI (``gemini --acp``, 0.61.0) against MockGemini, and the real
OpenCode (``opencode acp``, 1.18.33) against MockAnthropic with OpenCode's tool names.

Skipped with the reason printed when an engine is not installed (``make install-engines``). Each test
starts one agent process and takes it through several turns.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from agentchat.agents.backends.acp import AcpBackend, GeminiBackend, OpencodeBackend
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
from agentchat.agents.sandbox import Sandbox
from agentchat.chat.prompts import render_request
from agentchat.config import EngineSettings, OpencodeSettings
from agentchat.errors import BackendError
from tests.support import EventReader, of
from tests.support.engines import TURN_TIMEOUT, Owner, agent_dirs, agent_sandbox, engine_binary, engine_dir, engine_settings
from tests.support.mock_anthropic import MockAnthropic
from tests.support.mock_gemini import MockGemini

pytestmark = pytest.mark.engines
# A long answer streamed over ~20 s, varied so that no loop detection cuts it short.
SLOW = "".join(f"word{n} " for n in range(40))
T = TURN_TIMEOUT


@dataclass
class Api:
    """One engine's mock, scripted in that engine's own tool names."""

    kind: str
    mock: Any

    @property
    def base_url(self) -> str:
        return str(self.mock.base_url)

    def text(self, text: str, chunks: int = 1, delay: float = 0.0) -> None:
        self.mock.script_text(text, chunks=chunks, chunk_delay=delay)

    def shell(self, command: str) -> None:
        if self.kind == "gemini":
            self.mock.script_call("run_shell_command", {"command": command, "description": "run it"})
        else:
            self.mock.script_tool_use("bash", {"command": command, "description": "run it"})

    def write(self, path: Path, content: str) -> None:
        if self.kind == "gemini":
            self.mock.script_call("write_file", {"file_path": str(path), "content": content})
        else:
            self.mock.script_tool_use("write", {"filePath": str(path), "content": content})

    def fetch(self, url: str) -> None:
        if self.kind == "gemini":
            self.mock.script_call("web_fetch", {"prompt": f"Summarize {url}"})
        else:
            self.mock.script_tool_use("webfetch", {"url": url, "format": "text"})

    @property
    def requests(self) -> list[Any]:
        return list(self.mock.requests)

    async def wait_for_requests(self, count: int) -> None:
        await self.mock.wait_for_requests(count, timeout=T)


@pytest.fixture(params=["gemini", "opencode"])
async def api(request: pytest.FixtureRequest) -> AsyncIterator[Api]:
    kind = request.param
    engine_binary(kind)
    mock = MockGemini() if kind == "gemini" else MockAnthropic(answer_titles=True)
    async with mock:
        yield Api(kind, mock)


@pytest.fixture
def scratch() -> AsyncIterator[Path]:
    with engine_dir() as path:
        (path / "repo").mkdir()
        yield path


@pytest.fixture
async def sandbox(scratch: Path) -> Sandbox:
    return await agent_sandbox(scratch)


def make_backend(api: Api, scratch: Path, owner: Owner | None, settings: EngineSettings | None = None,
                 sandbox: Sandbox | None = None, **spec: Any) -> AcpBackend:
    """The engine for agent-1 in ``scratch/repo``: in the agent's sandbox as the service starts it, or
    without ``sandbox`` a bare backend (no sandbox, its own directory under ``scratch/state``)."""
    values: dict[str, Any] = {"agent_id": "agent-1", "cwd": scratch / "repo", "session_id": str(uuid.uuid4()),
                              "state_dir": scratch / "state", "permissions": owner, **spec}
    if sandbox is not None:
        values |= {"sandbox": sandbox, "dirs": agent_dirs(scratch)}
    settings = settings or engine_settings(api.kind, api.base_url, path=str(engine_binary(api.kind)))
    cls = GeminiBackend if api.kind == "gemini" else OpencodeBackend
    return cls(BackendSpec(**values), settings)  # type: ignore[arg-type]


async def test_turns_streaming_approvals_and_stop_on_one_process(api: Api, scratch: Path, sandbox: Sandbox) -> None:
    owner = Owner()
    backend = make_backend(api, scratch, owner, sandbox=sandbox)
    reader = EventReader(backend)
    repo = scratch / "repo"
    label, version = {"gemini": ("Gemini CLI", "0.61.0"), "opencode": ("OpenCode", "1.18.33")}[api.kind]
    try:
        await backend.start()
        assert backend.engine_name == label and backend.engine_version == version
        started = await reader.next()
        assert isinstance(started, SessionStarted) and started.session_id == backend.session_id
        pid = backend.pid

        await backend.send("hello there")
        before, result = await reader.until(TurnResult, timeout=T)
        assert of(AssistantText, before) == [AssistantText("MOCK_REPLY: hello there")]
        assert not result.is_error and result.duration_ms > 0

        story = "".join(f"Chapter {n} begins. " for n in range(12))  # not repetitive: Gemini cuts loops
        api.text(story, chunks=12, delay=0.05)
        await backend.send("a story")
        before, _ = await reader.until(TurnResult, timeout=T)
        assert of(AssistantText, before) == [AssistantText(story)]

        # A command that asks: allowed.
        api.shell("echo hi > hi.txt")
        await backend.send("write hi.txt")
        prompt = await owner.next_prompt()
        assert prompt.tool_name == "Bash" and prompt.input["command"] == "echo hi > hi.txt"
        owner.answer("yes")
        before, result = await reader.until(TurnResult, timeout=T)
        assert (repo / "hi.txt").read_text() == "hi\n" and not result.is_error
        assert [(u.name, u.input["command"]) for u in of(ToolUse, before)] == [("Bash", "echo hi > hi.txt")]

        # A new file, denied with a reason: ACP carries none, and the chat says so.
        api.write(repo / "new.txt", "hello\n")
        await backend.send("create new.txt")
        prompt = await owner.next_prompt()
        assert prompt.tool_name == "Write" and prompt.input == {"file_path": str(repo / "new.txt"), "content": "hello\n"}
        owner.answer("no use notes.md instead")
        before, result = await reader.until(TurnResult, timeout=T)
        assert not (repo / "new.txt").exists()
        assert [n.message for n in of(BackendNotice, before)] == [
            f"{label}'s protocol (ACP) carries no reason: the model was only told no."
        ]
        assert any(r.is_error for r in of(ToolResult, before)) or api.kind == "gemini"

        # "always": the engine's own session rule, not ours, spares the second prompt.
        api.shell("echo again >> log.txt")
        await backend.send("log once")
        await owner.next_prompt()
        owner.answer("always")
        await reader.until(TurnResult, timeout=T)
        owner.registry.reset_session("agent-1")
        asked = len(owner.asked)
        api.shell("echo again >> log.txt")
        await backend.send("log twice")
        await reader.until(TurnResult, timeout=T)
        assert len(owner.asked) == asked, f"{label} asked again despite allow_always"
        assert (repo / "log.txt").read_text() == "again\nagain\n"

        # A tool the chat has no rendering for: its input as raw JSON, and still answerable.
        api.fetch("http://127.0.0.1:9/nothing")
        await backend.send("fetch it")
        prompt = await owner.next_prompt()
        text = render_request(prompt, repo, 1)
        assert "```\n{" in text and "127.0.0.1:9" in text and text.endswith("Reply: yes / no / always, or no <reason>")
        owner.answer("no")
        await reader.until(TurnResult, timeout=T)

        # Stop mid-turn: the process and the session stay.
        api.text(SLOW, chunks=40, delay=0.5)
        count = len(api.requests)
        await backend.send("go slowly")
        await api.wait_for_requests(count + 1)
        stopped_at = time.monotonic()
        await backend.interrupt()
        _, interrupted = await reader.until(TurnResult, timeout=10)
        assert time.monotonic() - stopped_at < 5
        assert interrupted.is_error and interrupted.subtype == "error_during_execution"
        assert backend.running and backend.pid == pid
        await backend.send("still there?")
        _, after = await reader.until(TurnResult, timeout=T)
        assert not after.is_error
        assert api.requests[-1].user_texts()[0] == "hello there", "same session"
    finally:
        await backend.stop()
    assert of(ProcessExited, await reader.rest())[-1].expected


async def test_the_next_process_loads_the_session_after_a_clean_stop_and_after_a_crash(
    api: Api, scratch: Path, sandbox: Sandbox
) -> None:
    first = make_backend(api, scratch, Owner(), sandbox=sandbox)
    reader = EventReader(first)
    await first.start()
    await first.send("remember the number 42")
    await reader.until(TurnResult, timeout=T)
    await first.stop()

    second, reader, resumed = await expect_resumed(api, scratch, sandbox, first, "remember the number 42")
    try:
        api.text(SLOW, chunks=40, delay=0.5)
        count = len(api.requests)
        await second.send("go slowly")
        await api.wait_for_requests(count + 1)
        assert second.pid is not None
        os.kill(second.pid, signal.SIGKILL)
        _, exited = await reader.until(ProcessExited, timeout=10)
        assert exited.exit_code == -signal.SIGKILL and not exited.expected and not second.running
    finally:
        await second.stop()
    third, _, _ = await expect_resumed(api, scratch, sandbox, second, "what was the number?")
    await third.stop()


async def expect_resumed(
    api: Api, scratch: Path, sandbox: Sandbox | None, before: AcpBackend, remembered: str
) -> tuple[AcpBackend, EventReader, bool]:
    """A new process for the same agent asked what it remembers. OpenCode loads the session; Gemini CLI
    0.61.0 cannot within the minute the session started (it names the session's file by the minute and
    resets that very file before reading it): then the owner is told and a new session starts."""
    backend = make_backend(api, scratch, Owner(), sandbox=sandbox, session_id=before.session_id, resume=True)
    reader = EventReader(backend)
    await backend.start()
    first_event = await reader.next()
    # Gemini resumes when the minute changed in between: the test takes either outcome from it.
    resumed = api.kind == "opencode" or isinstance(first_event, SessionStarted)
    started = first_event
    if not resumed:
        assert isinstance(first_event, BackendNotice)
        assert first_event.message == (
            "Gemini CLI could not resume the session (session/load failed: Internal error (code -32603): "
            "No previous sessions found for this project.); starting a new one"
        )
        started = await reader.next()
    assert isinstance(started, SessionStarted) and (started.session_id == before.session_id) is resumed
    await backend.send("what was the number?")
    events, result = await reader.until(TurnResult, timeout=T)
    assert not of(BackendNotice, events) and not result.is_error
    assert of(AssistantText, events) == [AssistantText("MOCK_REPLY: what was the number?")], "no replayed history"
    assert (remembered in api.requests[-1].user_texts()[:-1]) is resumed
    return backend, reader, resumed


async def test_an_engine_that_exits_at_start(api: Api, scratch: Path, sandbox: Sandbox) -> None:
    script = scratch / "broken"
    script.write_text('#!/bin/sh\necho "Error: broken install" >&2\nexit 3\n')
    script.chmod(0o755)
    settings = (OpencodeSettings if api.kind == "opencode" else EngineSettings)(path=str(script))
    backend = make_backend(api, scratch, Owner(), settings, sandbox)
    label = "Gemini CLI" if api.kind == "gemini" else "OpenCode"
    with pytest.raises(BackendError, match=rf"^{label} exited at start with code 3: Error: broken install$"):
        await backend.start()


def test_unknown_updates_are_logged_once(caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    backend = GeminiBackend(BackendSpec(agent_id="a", cwd=tmp_path, session_id="s"), EngineSettings())
    caplog.set_level(logging.DEBUG, logger="agentchat")
    from agentchat.agents.backends.jsonrpc import decode_message
    for _ in range(2):
        message = decode_message(json.dumps({"jsonrpc": "2.0", "method": "session/update",
                                             "params": {"sessionId": "s", "update": {"sessionUpdate": "hologram"}}}).encode())
        assert not isinstance(message, str)
        backend._dispatch_notification(message)
    infos = [r for r in caplog.records if "hologram" in r.getMessage() and r.levelno == logging.INFO]
    assert len(infos) == 1

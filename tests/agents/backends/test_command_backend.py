"""CommandBackend (any CLI per message) and the backend factory."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agentchat.agents.backends.base import AgentBackend, AssistantText, BackendSpec, ProcessExited, SessionStarted, TurnResult
from agentchat.agents.backends.claude import ClaudeCodeBackend
from agentchat.agents.backends.command import CommandBackend
from agentchat.agents.backends.factory import available_backends, create_backend
from agentchat.config import AgentSettings, CommandBackendSettings
from agentchat.errors import BackendError
from tests.support import EventReader, of, wait_process_gone

MakeSpec = Callable[..., BackendSpec]


@pytest.fixture
def start_command(make_spec: MakeSpec, backends: list[AgentBackend]) -> Callable[..., Any]:
    async def start(command: list[str], spec: BackendSpec | None = None, **settings: Any) -> tuple[CommandBackend, EventReader]:
        backend = CommandBackend(spec or make_spec(), CommandBackendSettings(label="Test CLI", command=command, **settings), kind="test")
        backends.append(backend)
        reader = EventReader(backend)
        await backend.start()
        return backend, reader

    return start


async def test_prompt_on_stdin_reply_from_stdout(start_command: Any, make_spec: MakeSpec) -> None:
    spec = make_spec()
    backend, reader = await start_command(["sh", "-c", 'printf "you said: "; cat'], spec=spec)
    assert backend.running and backend.kind == "test"
    assert await reader.next() == SessionStarted(session_id=spec.session_id, model=None, cwd=str(spec.cwd))
    await backend.send("hello\nworld")
    before, result = await reader.until(TurnResult)
    assert before == [AssistantText("you said: hello\nworld")]
    assert not result.is_error and result.text == "you said: hello\nworld" and result.num_turns == 1
    await backend.send("again")  # one process per message, the backend stays usable
    _, result = await reader.until(TurnResult)
    assert result.text == "you said: again"


async def test_prompt_as_last_argument_in_the_repository(start_command: Any, repo: Path) -> None:
    backend, reader = await start_command(["sh", "-c", 'printf "%s in %s" "$1" "$(pwd)"', "sh"], prompt_via="argument")
    await backend.send("it's -- a prompt; with $(no) expansion")
    _, result = await reader.until(TurnResult)
    assert result.text == f"it's -- a prompt; with $(no) expansion in {repo}"


async def test_environment_layers(start_command: Any, make_spec: MakeSpec) -> None:
    spec = make_spec(env={"LAYER_SPEC": "spec", "LAYER_BOTH": "spec"})
    backend, reader = await start_command(["sh", "-c", 'echo "$LAYER_SETTINGS $LAYER_SPEC $LAYER_BOTH"'], spec=spec, env={"LAYER_SETTINGS": "settings", "LAYER_BOTH": "settings"})
    await backend.send("x")
    _, result = await reader.until(TurnResult)
    assert result.text == "settings spec spec"


async def test_failure_reports_exit_code_and_stderr_tail(start_command: Any) -> None:
    script = 'for i in $(seq 1 30); do echo "line $i" >&2; done; echo partial; exit 4'
    backend, reader = await start_command(["sh", "-c", script])
    await backend.send("x")
    before, result = await reader.until(TurnResult)
    assert not of(AssistantText, before)
    assert result.is_error and result.subtype == "error" and result.text == "partial"
    message, tail = result.errors
    assert message == "sh exited with code 4"
    assert tail.splitlines() == [f"line {i}" for i in range(11, 31)]


async def test_timeout_kills_the_process_group(start_command: Any, repo: Path) -> None:
    backend, reader = await start_command(["sh", "-c", "sleep 30 & echo $! > child.pid; wait"], timeout=300)
    started = time.monotonic()
    await backend.send("x")
    _, result = await reader.until(TurnResult)
    assert result.is_error and result.subtype == "timeout" and result.errors[0] == "timed out after 0.3 s"
    assert time.monotonic() - started < 3
    child = int((repo / "child.pid").read_text())
    await wait_process_gone(child, timeout=2)


async def test_interrupt_kills_the_running_command(start_command: Any) -> None:
    backend, reader = await start_command(["sh", "-c", "echo started; exec sleep 30"])
    await backend.send("x")
    started = time.monotonic()
    await backend.interrupt()
    _, result = await reader.until(TurnResult)
    assert result.is_error and result.subtype == "interrupted"
    assert time.monotonic() - started < 3
    assert backend.running and backend.pid is None
    await backend.interrupt()  # nothing running: no-op


async def test_interrupt_escalates_to_sigkill(make_spec: MakeSpec, backends: list[AgentBackend]) -> None:
    settings = CommandBackendSettings(label="Stubborn", command=["sh", "-c", "trap '' TERM; while :; do sleep 0.05; done"])
    backend = CommandBackend(make_spec(), settings, kill_grace=0.2)
    backends.append(backend)
    reader = EventReader(backend)
    await backend.start()
    await backend.send("x")
    await reader.until(SessionStarted)
    await backend.interrupt()
    _, result = await reader.until(TurnResult, timeout=5)
    assert result.subtype == "interrupted"


async def test_busy_and_stopped_are_refused(start_command: Any) -> None:
    backend, reader = await start_command(["sh", "-c", "exec sleep 30"])
    await backend.send("x")
    with pytest.raises(BackendError, match="still answering"):
        await backend.send("y")
    await backend.stop()
    assert not backend.running
    rest = await reader.rest()
    assert [type(event) for event in rest] == [SessionStarted, TurnResult, ProcessExited]
    assert rest[-1] == ProcessExited(exit_code=None, expected=True)
    with pytest.raises(BackendError, match="not running"):
        await backend.send("z")


async def test_restart_after_stop_does_not_repeat_session_started(start_command: Any) -> None:
    backend, reader = await start_command(["cat"])
    await backend.stop()
    await reader.rest()
    await backend.start()
    reader = EventReader(backend)
    await backend.send("back")
    before, result = await reader.until(TurnResult)
    assert before == [AssistantText("back")] and result.text == "back"


async def test_start_checks_command_and_repository(make_spec: MakeSpec, tmp_path: Path) -> None:
    missing = CommandBackend(make_spec(), CommandBackendSettings(label="Nope", command=["no-such-agent-cli"]))
    with pytest.raises(BackendError, match="no-such-agent-cli"):
        await missing.start()
    assert not missing.running
    no_repo = CommandBackend(make_spec(cwd=tmp_path / "gone"), CommandBackendSettings(label="Cat", command=["cat"]))
    with pytest.raises(BackendError, match="does not exist"):
        await no_repo.start()


async def test_command_that_cannot_be_run_is_a_failed_turn(start_command: Any, tmp_path: Path) -> None:
    script = tmp_path / "agent.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o755)
    backend, reader = await start_command([str(script)])
    script.chmod(0o644)  # not executable any more when the message comes
    await backend.send("x")
    _, result = await reader.until(TurnResult)
    assert result.is_error and "cannot run" in result.errors[0]


async def test_output_decoding_is_tolerant(start_command: Any) -> None:
    backend, reader = await start_command(["sh", "-c", r"printf 'caf\303\251 \377\n'"])
    await backend.send("x")
    _, result = await reader.until(TurnResult)
    assert result.text == "café \ufffd"


# --- factory -----------------------------------------------------------------------------------------


def _settings() -> AgentSettings:
    return AgentSettings.model_validate(
        {
            "commandBackends": {
                "codex": {"label": "Codex", "command": ["codex", "exec"], "promptVia": "argument"},
                "claude": {"label": "Not Claude", "command": ["echo"]},
                "gemini": {"label": "Gemini CLI", "command": ["gemini"]},
            }
        }
    )


@pytest.fixture
def no_engines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The engines' prefix empty (make install-engines may have filled the project's)."""
    monkeypatch.setenv("AGENTCHAT_ENGINES_DIR", str(tmp_path / "no-engines"))


def test_available_backends_claude_first_in_config_order(no_engines: None) -> None:
    assert available_backends(_settings()) == [("claude", "Claude Code"), ("codex", "Codex"), ("gemini", "Gemini CLI")]
    assert available_backends(AgentSettings()) == [("claude", "Claude Code")]


def test_create_backend(make_spec: MakeSpec, no_engines: None) -> None:
    settings = _settings()
    claude = create_backend("claude", make_spec(), settings)
    assert isinstance(claude, ClaudeCodeBackend) and claude.kind == "claude"
    codex = create_backend("codex", make_spec(), settings)
    assert isinstance(codex, CommandBackend) and codex.kind == "codex" and not codex.running
    with pytest.raises(BackendError, match="unknown agent backend 'aider'; available: claude, codex, gemini"):
        create_backend("aider", make_spec(), settings)

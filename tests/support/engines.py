"""Test support for the optional engines (Codex, Gemini CLI, OpenCode) run for real against local mocks.

* ``engine_binary(engine)``: the installed CLI, or ``pytest.skip`` with the reason (``make install-engines``).
* ``engine_dir()``: a directory outside /tmp (Codex's sandbox hides /tmp), removed afterwards.
* ``Owner``: the chat side reduced to a queue of prompts, answering through a real PermissionRegistry,
  as the agent bot does.
* ``engine_settings`` / ``engine_env``: the config section and environment that point an engine at its mock.
* ``agent_sandbox`` / ``agent_dirs``: the sandbox and directories the service gives an agent whose state
  directory is ``<scratch>/state`` (bubblewrap where it works here, as by default).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agentchat.agents.backends.engines import ENGINES, engine_prefixes, find_engine
from agentchat.agents.sandbox import AgentDirs, Sandbox, open_sandbox
from agentchat.config import CodexSettings, EngineSettings, OpencodeSettings, SandboxSettings
from agentchat.permissions.registry import AnswerStatus, PermissionRegistry
from agentchat.permissions.requests import Decision, PermissionRequest

PROJECT = Path(__file__).resolve().parents[2]
# Codex's sandbox (bubblewrap) mounts its own /tmp: its CODEX_HOME and repositories must live elsewhere.
SCRATCH = PROJECT / ".cache" / "test-engines"
TURN_TIMEOUT = 45.0
OWNER = "owner@example.org"

# The models each mock serves: Codex's metadata for gpt-5.5 offers its apply_patch tool; an explicit
# Gemini model skips the CLI's model router.
CODEX_MODEL = "gpt-5.5"
GEMINI_MODEL = "gemini-2.5-flash"
OPENCODE_MODEL = "anthropic/claude-sonnet-4-5"


def engine_binary(kind: str) -> Path:
    """The pinned install of ``make install-engines`` first (PATH may hold another version), else PATH."""
    engine = ENGINES[kind]
    pinned = engine_prefixes()[0] / "node_modules" / ".bin" / engine.binary
    found = pinned if pinned.is_file() else find_engine(engine)
    if found is None:
        pytest.skip(f"{engine.label} {engine.pinned_version} is not installed (make install-engines needs npm)")
    return found


@contextlib.contextmanager
def engine_dir() -> Iterator[Path]:
    path = SCRATCH / secrets.token_hex(6)
    path.mkdir(parents=True)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


async def agent_sandbox(scratch: Path, **settings: Any) -> Sandbox:
    """The service's sandbox for a state directory ``scratch/state``: on where bubblewrap works (else off,
    and the tests run unconfined, as the service would); the repositories under ``scratch`` stay visible."""
    state = scratch / "state"
    state.mkdir(exist_ok=True)
    return await open_sandbox(SandboxSettings(**settings), state_dir=state, protected=(state, Path.home()))


def agent_dirs(scratch: Path, agent_id: str = "agent-1") -> AgentDirs:
    return AgentDirs.of(scratch / "state", agent_id)


def engine_settings(kind: str, base_url: str, **overrides: Any) -> EngineSettings:
    """The engine's config section pointing at a mock, with no retries (a forced error fails at once)."""
    if kind == "codex":
        return CodexSettings(
            model=CODEX_MODEL,
            base_url=base_url,
            env_key="MOCK_API_KEY",
            env={"MOCK_API_KEY": "dummy"},
            extra_args=["-c", "model_providers.agentchat.request_max_retries=0",
                        "-c", "model_providers.agentchat.stream_max_retries=0"],
            **overrides,
        )
    if kind == "gemini":
        return EngineSettings(model=GEMINI_MODEL, base_url=base_url, env={"GEMINI_API_KEY": "dummy"}, **overrides)
    return OpencodeSettings(model=OPENCODE_MODEL, base_url=base_url + "/v1", env={"ANTHROPIC_API_KEY": "dummy"}, **overrides)


def config_section(kind: str, base_url: str, path: Path) -> dict[str, Any]:
    """The same, in config-file form (``agents.<kind>``), for the service tests."""
    settings = engine_settings(kind, base_url)
    data: dict[str, Any] = settings.model_dump(by_alias=True, exclude_none=True)
    data["path"] = str(path)
    return data


class Owner:
    """The agent's owner: prompts arrive in ``opened``; ``answer`` replies as a chat message would."""

    def __init__(self, agent_id: str = "agent-1") -> None:
        self.agent_id = agent_id
        self.registry = PermissionRegistry(60, None)
        self.registry.register_agent(agent_id, OWNER, self)
        self.opened: asyncio.Queue[PermissionRequest] = asyncio.Queue()
        self.asked: list[PermissionRequest] = []
        self.resolved: list[tuple[PermissionRequest, Decision]] = []
        self.cancelled: list[PermissionRequest] = []

    # PermissionAsker
    async def ask(self, tool_name: str, tool_input: Any, tool_use_id: str | None) -> Decision:
        return await self.registry.ask(self.agent_id, tool_name, tool_input, tool_use_id)

    # PromptListener
    async def prompt_opened(self, request: PermissionRequest) -> None:
        self.asked.append(request)
        self.opened.put_nowait(request)

    async def prompt_resolved(self, request: PermissionRequest, decision: Decision) -> None:
        self.resolved.append((request, decision))

    async def prompt_timed_out(self, request: PermissionRequest) -> None:
        pass

    async def prompt_cancelled(self, request: PermissionRequest) -> None:
        self.cancelled.append(request)

    async def next_prompt(self, timeout: float = TURN_TIMEOUT) -> PermissionRequest:
        return await asyncio.wait_for(self.opened.get(), timeout)

    def answer(self, text: str) -> None:
        result = self.registry.answer(self.agent_id, text, OWNER)
        assert result.status is AnswerStatus.RESOLVED, result

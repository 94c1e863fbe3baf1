"""Fixtures for backend tests: the fake CLI, specs in throwaway repositories, event readers, mocks."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from agentchat.agents.backends.base import AgentBackend, BackendSpec
from tests.support.fake_claude import write_launcher
from tests.support.mock_anthropic import PermissionStub, mock_anthropic  # noqa: F401  (a fixture)


@pytest.fixture(scope="session")
def fake_claude_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_launcher(tmp_path_factory.mktemp("fake-claude-bin"))


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    path.mkdir()
    return path


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


@pytest.fixture
def make_spec(repo: Path, home: Path) -> Callable[..., BackendSpec]:
    """A BackendSpec in the test's repository with HOME (and so the fake's sessions) in tmp."""

    def make(**overrides: Any) -> BackendSpec:
        env = {"HOME": str(home), "TMPDIR": str(home), **overrides.pop("env", {})}
        values: dict[str, Any] = {"agent_id": "agent-1", "cwd": repo, "session_id": str(uuid.uuid4()), **overrides}
        return BackendSpec(env=env, **values)

    return make


@pytest.fixture
async def backends() -> AsyncIterator[list[AgentBackend]]:
    """Register backends here: they are stopped at the end of the test whatever happened."""
    started: list[AgentBackend] = []
    yield started
    for backend in started:
        await backend.stop()


@pytest.fixture
async def permission_stub() -> AsyncIterator[PermissionStub]:
    async with PermissionStub(token="test-token") as stub:
        yield stub

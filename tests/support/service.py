"""Run the whole agentchat service in the test's event loop, against the harness's real Prosody."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from agentchat.app import Service
from agentchat.config import Settings
from tests.harness.prosody import ProsodyServer

FAKE_CLAUDE = Path(__file__).with_name("fake_claude.py")
# The fake CLI and its fixtures, for agents' sandboxes to see (read-only).
TESTS_DIR = Path(__file__).resolve().parent.parent


def make_repositories(base: Path, names: tuple[str, ...] = ("api", "web")) -> Path:
    """A work base path with a git repository and a plain directory per name."""
    base.mkdir(parents=True, exist_ok=True)
    for index, name in enumerate(names):
        repo = base / name
        repo.mkdir(exist_ok=True)
        if index == 0:
            subprocess.run(["git", "init", "-q", str(repo)], check=True)
    return base


def service_config(prosody: ProsodyServer, home: Path, **sections: dict[str, Any]) -> dict[str, Any]:
    """The config (file form) pointing at the harness's server, a fake CLI and a free MCP port;
    override by section. Used in-process (service_settings) and as a config file (tests/faults)."""
    data: dict[str, Any] = {
        "xmpp": {
            "host": prosody.host,
            "port": prosody.c2s_port,
            "domain": prosody.domain,
            "adminUsername": prosody.admin_jid.split("@")[0],
            "adminPassword": prosody.admin_password,
        },
        "manager": {
            "username": prosody.manager_jid.split("@")[0],
            "password": prosody.manager_password,
            # Required outside --embedded-prosody; every user the tests create is of this domain.
            "allowedUsers": [f"*@{prosody.domain}"],
        },
        "mcp": {"port": 0, "permissionTimeout": 30_000},
        "work": {"basePath": str(home / "work")},
        "agents": {
            # Unsandboxed, the fake CLI keeps its sessions under this HOME; sandboxed, every agent's
            # own home is below it (agents/<id>/home): wiping it forgets every session either way.
            "claude": {"path": str(FAKE_CLAUDE), "env": {"HOME": str(home / "agents")}},
            # On where bubblewrap works (as by default); the fake CLI's fixtures are in tests/.
            "sandbox": {"readOnly": [str(TESTS_DIR)]},
        },
        "provisioning": {"method": "admin_rest", "adminRestUrl": prosody.admin_rest_url},
        "prosody": {"serviceJidsFile": str(prosody.service_jids.path)},
    }
    for section, values in sections.items():
        data.setdefault(section, {}).update(values)
    return data


def show_to_agents(settings: Settings, directory: Path, *, writable: bool = False) -> Path:
    """Let the agents' sandboxes see ``directory`` (a test's fixture or log directory; never one
    inside the state directory, which no agent may see): read-only, or read-write."""
    directory.mkdir(parents=True, exist_ok=True)
    sandbox = settings.agents.sandbox
    (sandbox.read_write if writable else sandbox.read_only).append(directory)
    return directory


def service_settings(prosody: ProsodyServer, home: Path, **sections: dict[str, Any]) -> Settings:
    """Settings for running the service in the test's event loop (see service_config)."""
    data = service_config(prosody, home, **sections)
    settings = Settings.model_validate(data)
    settings.home = home
    return settings


@contextlib.asynccontextmanager
async def running_service(settings: Settings) -> AsyncIterator[Service]:
    service = Service(settings)
    try:
        await service.start()
        yield service
    finally:
        await service.stop()


async def create_agent(
    client: Any, manager_jid: str, repo: str = "api", task: str = "skip", timeout: float = 20, kind: str = "1"
) -> tuple[str, str]:
    """Walk the manager's `new` dialogue as a user (``kind``: the type's number or name);
    returns (agent id, agent JID)."""
    await client.send(manager_jid, "new")
    await client.expect("Which type?", from_=manager_jid)
    await client.send(manager_jid, kind)
    await client.expect("Which repository?", from_=manager_jid)
    await client.send(manager_jid, repo)
    await client.expect("first task", from_=manager_jid)
    await client.send(manager_jid, task)
    created = await client.expect("created. Chat at", from_=manager_jid, timeout=timeout)
    words = created.body.split()
    return words[1], words[-1]

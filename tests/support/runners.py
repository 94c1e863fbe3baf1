"""Runners for tests: `runner add` on the hub's side, and a RunnerService in the test's event loop."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from agentchat.config import Settings
from agentchat.runners.registration import Registered, add_runner
from agentchat.runners.runner import RunnerService
from tests.harness.prosody import ProsodyServer
from tests.support.service import FAKE_CLAUDE, make_repositories

CREATED_ON = re.compile(r"Agent (\S+) \(on (\S+)\) created\. Chat at (\S+)")


async def register(hub: Settings, name: str) -> Registered:
    """`agentchat runner add NAME` against the hub's settings (a copy: add_runner fills in what it finds)."""
    return await add_runner(hub.model_copy(deep=True), name, None, None)


def runner_settings(prosody: ProsodyServer, home: Path, registered: Registered, repos: tuple[str, ...] = ("api", "site"),
                    **sections: dict[str, Any]) -> Settings:
    """A runner's settings as its join leaves them: STARTTLS to the server, verified against the test CA."""
    work = make_repositories(home / "work", repos)
    data: dict[str, Any] = {
        "xmpp": {"host": prosody.host, "port": prosody.c2s_port, "domain": prosody.domain,
                 "security": "starttls", "verifyTls": True, "caFile": str(prosody.ca_file)},
        "runner": {"jid": registered.jid, "password": registered.password, "hub": registered.hub},
        "mcp": {"port": 0, "permissionTimeout": 30_000},
        "work": {"basePath": str(work)},
        "agents": {"claude": {"path": str(FAKE_CLAUDE), "env": {"HOME": str(home / "claude-home")}}},
    }
    for section, values in sections.items():
        data.setdefault(section, {}).update(values)
    settings = Settings.model_validate(data)
    settings.home = home
    return settings


@contextlib.asynccontextmanager
async def running_runner(settings: Settings) -> AsyncIterator[RunnerService]:
    runner = RunnerService(settings)
    try:
        await runner.start()
        yield runner
    finally:
        await runner.stop()


async def create_on(client: Any, manager_jid: str, machine: str, repo: str = "api", task: str = "skip",
                    timeout: float = 30, kind: str = "1") -> tuple[str, str]:
    """Walk `new` choosing the machine first (there are runners; ``kind``: the type's number or name);
    returns (agent id, agent JID)."""
    await client.send(manager_jid, "new")
    await client.expect("Which machine?", from_=manager_jid)
    await client.send(manager_jid, machine)
    await client.expect("Which type?", from_=manager_jid)
    await client.send(manager_jid, kind)
    await client.expect("Which repository?", from_=manager_jid)
    await client.send(manager_jid, repo)
    await client.expect("first task", from_=manager_jid)
    await client.send(manager_jid, task)
    created = await client.expect("created. Chat at", from_=manager_jid, timeout=timeout)
    words = created.body.split()
    return words[1], words[-1]

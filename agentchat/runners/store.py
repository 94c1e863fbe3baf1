"""The hub's registry of runners and of the agents they host, in the hub's state database.

Two tables next to the service's own (agentchat.store.database): ``runners`` (every machine `agentchat
runner add` registered) and ``runner_agents`` (which agent runs where, for whom). Written by the running
hub and by `agentchat runner add` in another process: SQLite's WAL lets both.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from agentchat.store.database import StateStore

SCHEMA = [
    ("CREATE TABLE IF NOT EXISTS runners ("
     " name TEXT PRIMARY KEY, jid TEXT NOT NULL UNIQUE, created_at REAL NOT NULL)", ()),
    ("CREATE TABLE IF NOT EXISTS runner_agents ("
     " id TEXT PRIMARY KEY, runner TEXT NOT NULL, owner TEXT NOT NULL, repo TEXT NOT NULL, backend TEXT NOT NULL,"
     " created_at REAL NOT NULL, killed INTEGER NOT NULL DEFAULT 0)", ()),
]  # fmt: skip


@dataclass(frozen=True)
class RunnerRecord:
    name: str
    jid: str  # runner-NAME@domain
    created_at: float = field(default_factory=time.time)


@dataclass
class RemoteAgent:
    """An agent that runs on a runner: the hub knows where and for whom; the runner knows the rest."""

    id: str
    runner: str
    owner: str
    repo: str  # its path on the runner
    backend: str
    created_at: float = field(default_factory=time.time)
    # Being ended: a restart of the hub finishes the job (account, roster, row).
    killed: bool = False


class RunnerStore:
    def __init__(self, store: StateStore) -> None:
        self._store = store

    async def open(self) -> None:
        await self._store.execute(SCHEMA)

    async def add_runner(self, runner: RunnerRecord) -> None:
        await self._store.execute([
            ("INSERT OR REPLACE INTO runners (name, jid, created_at) VALUES (?,?,?)", (runner.name, runner.jid, runner.created_at)),
        ])  # fmt: skip

    async def remove_runner(self, name: str) -> None:
        await self._store.execute([("DELETE FROM runners WHERE name = ?", (name,))])

    async def runners(self) -> list[RunnerRecord]:
        rows = await self._store.query("SELECT name, jid, created_at FROM runners ORDER BY created_at")
        return [RunnerRecord(row[0], row[1], row[2]) for row in rows]

    async def save_agent(self, agent: RemoteAgent) -> None:
        await self._store.execute([(
            "INSERT OR REPLACE INTO runner_agents (id, runner, owner, repo, backend, created_at, killed) VALUES (?,?,?,?,?,?,?)",
            (agent.id, agent.runner, agent.owner, agent.repo, agent.backend, agent.created_at, int(agent.killed)),
        )])  # fmt: skip

    async def delete_agent(self, agent_id: str) -> None:
        await self._store.execute([("DELETE FROM runner_agents WHERE id = ?", (agent_id,))])

    async def agents(self) -> list[RemoteAgent]:
        rows = await self._store.query(
            "SELECT id, runner, owner, repo, backend, created_at, killed FROM runner_agents ORDER BY created_at"
        )
        return [RemoteAgent(r[0], r[1], r[2], r[3], r[4], r[5], bool(r[6])) for r in rows]

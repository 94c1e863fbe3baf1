"""An agent's permission mode, model and progress setting kept with its record; a state file of version 2 (no
such columns) opens, keeps its agents, and gets them."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from agentchat.store.database import SCHEMA_VERSION, StateStore
from agentchat.store.records import AgentRecord, AgentStatus

# The agents table as version 2 made it.
VERSION_2_AGENTS = """
CREATE TABLE agents (
    id TEXT PRIMARY KEY, owner TEXT NOT NULL, repo TEXT NOT NULL, backend TEXT NOT NULL, session_id TEXT NOT NULL,
    status TEXT NOT NULL, session_started INTEGER NOT NULL DEFAULT 0, created_at REAL NOT NULL,
    last_active REAL NOT NULL, total_cost_usd REAL NOT NULL DEFAULT 0, turns INTEGER NOT NULL DEFAULT 0, pid INTEGER
);
INSERT INTO agents VALUES ('swift-fox', 'alice@x', '/work/api', 'claude', 's-1', 'stopped', 1, 1.0, 2.0, 0.5, 3, NULL);
PRAGMA user_version = 2;
"""


async def test_a_version_2_file_gets_the_columns_and_keeps_its_agents(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    with sqlite3.connect(path) as connection:
        connection.executescript(VERSION_2_AGENTS)
    store = StateStore(path)
    await store.open()
    try:
        [agent] = await store.load_agents()
        assert (agent.id, agent.turns, agent.total_cost_usd, agent.session_started) == ("swift-fox", 3, 0.5, True)
        assert (agent.permission_mode, agent.model, agent.progress) == (None, None, None)
        agent.permission_mode, agent.model, agent.progress = "plan", "sonnet", "quiet"
        await store.save_agent(agent)
        assert (await store.query("PRAGMA user_version"))[0][0] == SCHEMA_VERSION == 5
    finally:
        await store.close()
    again = StateStore(path)  # opening twice adds nothing twice
    await again.open()
    try:
        [agent] = await again.load_agents()
        assert (agent.permission_mode, agent.model, agent.progress) == ("plan", "sonnet", "quiet")
        columns = [row[1] for row in await again.query("PRAGMA table_info(agents)")]
        assert columns[-3:] == ["permission_mode", "model", "progress"] and len(columns) == len(set(columns))
    finally:
        await again.close()


async def test_settings_are_saved_with_the_turn(store: StateStore) -> None:
    record = AgentRecord("brave-owl", "bob@x", "/work/web", "claude", "s-2", AgentStatus.IDLE, model="opus")
    await store.save_agent(record)
    record.turns += 1
    record.permission_mode = "acceptEdits"
    await store.finish_turn(record, None)
    [loaded] = await store.load_agents()
    assert (loaded.permission_mode, loaded.model, loaded.turns) == ("acceptEdits", "opus", 1)

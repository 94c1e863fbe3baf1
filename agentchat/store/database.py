"""The state database: SQLite in WAL mode through aiosqlite (a thread of its own, never the loop).

Every change is one transaction, so a kill -9 at any moment leaves either the old or the new state.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from pathlib import Path

import aiosqlite

from agentchat.errors import StateError
from agentchat.store.records import AgentRecord, AgentStatus, InboundMessage, MessageState

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS agents (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    repo TEXT NOT NULL,
    backend TEXT NOT NULL,
    session_id TEXT NOT NULL,
    status TEXT NOT NULL,
    session_started INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    last_active REAL NOT NULL,
    total_cost_usd REAL NOT NULL DEFAULT 0,
    turns INTEGER NOT NULL DEFAULT 0,
    pid INTEGER
);
CREATE TABLE IF NOT EXISTS inbound (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    agent_id TEXT NOT NULL,
    stanza_id TEXT,
    body TEXT NOT NULL,
    state TEXT NOT NULL,
    received_at REAL NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS inbound_dedup ON inbound(agent_id, stanza_id) WHERE stanza_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS inbound_pending ON inbound(agent_id, state);
CREATE TABLE IF NOT EXISTS outbound (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    agent_id TEXT NOT NULL,
    body TEXT NOT NULL,
    sent_at REAL NOT NULL
);
"""

async def _abandon(connection: aiosqlite.Connection) -> None:
    """Close a connection that failed to open and let aiosqlite's thread end while the loop runs:
    the thread reports into the loop, and once the loop is closed it prints a traceback instead."""
    with contextlib.suppress(sqlite3.Error, ValueError):  # it may never have opened
        await connection.close()
    # aiosqlite does not expose its worker thread.
    await asyncio.to_thread(connection._thread.join, 5)


_AGENT_COLUMNS = (
    "id, owner, repo, backend, session_id, status, session_started, created_at, last_active, "
    "total_cost_usd, turns, pid"
)


class StateStore:
    """One connection, one writer: aiosqlite serialises every call on its own thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: aiosqlite.Connection | None = None

    async def open(self) -> None:
        connection: aiosqlite.Connection | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            connection = aiosqlite.connect(self.path, isolation_level=None)
            self._db = await connection
            await self._db.execute("PRAGMA journal_mode=WAL")
            # FULL: a committed transaction survives power loss too; the cost is small at chat rates.
            await self._db.execute("PRAGMA synchronous=FULL")
            await self._db.execute("PRAGMA busy_timeout=5000")
            await self._db.executescript(SCHEMA)
        except (sqlite3.Error, OSError) as exc:
            self._db = None
            if connection is not None:
                await _abandon(connection)
            raise StateError(f"cannot open the state database {self.path}: {exc}") from exc

    async def close(self) -> None:
        if self._db is not None:
            await self._db.close()
            self._db = None

    @property
    def db(self) -> aiosqlite.Connection:
        if self._db is None:
            raise StateError("the state database is not open")
        return self._db

    async def _write(self, sql: str, params: tuple[object, ...]) -> int:
        try:
            cursor = await self.db.execute(sql, params)
            return cursor.lastrowid or 0
        except (sqlite3.Error, OSError) as exc:
            raise StateError(f"cannot write state ({self.path}): {exc}") from exc

    # agents

    async def save_agent(self, agent: AgentRecord) -> None:
        await self._write(
            f"INSERT OR REPLACE INTO agents ({_AGENT_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                agent.id,
                agent.owner,
                agent.repo,
                agent.backend,
                agent.session_id,
                agent.status.value,
                int(agent.session_started),
                agent.created_at,
                agent.last_active,
                agent.total_cost_usd,
                agent.turns,
                agent.pid,
            ),
        )

    async def delete_agent(self, agent_id: str) -> None:
        try:
            await self.db.execute("BEGIN")
            await self.db.execute("DELETE FROM agents WHERE id = ?", (agent_id,))
            await self.db.execute("DELETE FROM inbound WHERE agent_id = ?", (agent_id,))
            await self.db.execute("DELETE FROM outbound WHERE agent_id = ?", (agent_id,))
            await self.db.execute("COMMIT")
        except (sqlite3.Error, OSError) as exc:
            await self._rollback()
            raise StateError(f"cannot delete agent {agent_id}: {exc}") from exc

    async def _rollback(self) -> None:
        try:
            await self.db.execute("ROLLBACK")
        except sqlite3.Error:
            log.debug("no transaction to roll back")

    async def load_agents(self) -> list[AgentRecord]:
        async with self.db.execute(f"SELECT {_AGENT_COLUMNS} FROM agents ORDER BY created_at") as cursor:
            rows = await cursor.fetchall()
        return [
            AgentRecord(
                id=row[0],
                owner=row[1],
                repo=row[2],
                backend=row[3],
                session_id=row[4],
                status=AgentStatus(row[5]),
                session_started=bool(row[6]),
                created_at=row[7],
                last_active=row[8],
                total_cost_usd=row[9],
                turns=row[10],
                pid=row[11],
            )
            for row in rows
        ]

    # messages from users: recorded before they are acknowledged, so a crash loses none

    async def record_inbound(self, agent_id: str, stanza_id: str | None, body: str) -> int | None:
        """Store a user message; None when this stanza id was already recorded (a duplicate)."""
        try:
            return await self._write(
                "INSERT INTO inbound (agent_id, stanza_id, body, state, received_at) VALUES (?,?,?,?,?)",
                (agent_id, stanza_id, body, MessageState.QUEUED.value, time.time()),
            )
        except StateError as exc:
            if isinstance(exc.__cause__, sqlite3.IntegrityError):
                return None
            raise

    async def mark_inbound(self, message_id: int, state: MessageState) -> None:
        await self._write("UPDATE inbound SET state = ? WHERE id = ?", (state.value, message_id))

    async def pending_inbound(self, agent_id: str) -> list[InboundMessage]:
        """Messages not yet answered (queued, or sent to an agent whose turn never ended), oldest first."""
        async with self.db.execute(
            "SELECT id, agent_id, stanza_id, body, state, received_at FROM inbound "
            "WHERE agent_id = ? AND state != ? ORDER BY id",
            (agent_id, MessageState.DONE.value),
        ) as cursor:
            rows = await cursor.fetchall()
        return [InboundMessage(r[0], r[1], r[2], r[3], MessageState(r[4]), r[5]) for r in rows]

    async def record_outbound(self, agent_id: str, body: str) -> None:
        await self._write(
            "INSERT INTO outbound (agent_id, body, sent_at) VALUES (?,?,?)", (agent_id, body, time.time())
        )

    async def history(self, agent_id: str, limit: int = 50) -> list[tuple[str, str, float]]:
        """The last messages both ways, oldest first: (direction, body, time)."""
        async with self.db.execute(
            "SELECT * FROM (SELECT 'in', body, received_at AS t FROM inbound WHERE agent_id = ? "
            "UNION ALL SELECT 'out', body, sent_at AS t FROM outbound WHERE agent_id = ?) "
            "ORDER BY t DESC LIMIT ?",
            (agent_id, agent_id, limit),
        ) as cursor:
            rows = await cursor.fetchall()
        return [(r[0], r[1], r[2]) for r in reversed(rows)]

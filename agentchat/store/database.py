"""The state database: SQLite in WAL mode, on a thread of its own (never the event loop).

Every operation is one function run on that thread: its statements are one transaction and cost
one hop between the loop and the thread, whatever their number (a hop is ~40 µs when the loop is
idle, hundreds when it is busy: docs/performance.md). The thread runs one operation at a time, so
operations never interleave; a kill -9 at any moment leaves either the old or the new state.

synchronous=NORMAL: in WAL mode a commit survives the process being killed at any moment (it is in
the WAL file before the commit returns); only a power loss or an OS crash can take back the last
commits, and never leaves the file corrupt. FULL added an fsync per commit: 1.2 ms of a 6 ms
round trip here.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from agentchat.errors import StateError
from agentchat.store.records import AgentRecord, AgentStatus, InboundMessage, MessageState

log = logging.getLogger(__name__)

T = TypeVar("T")
Statement = tuple[str, Sequence[object]]

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

_AGENT_COLUMNS = (
    "id, owner, repo, backend, session_id, status, session_started, created_at, last_active, "
    "total_cost_usd, turns, pid"
)

_SAVE_AGENT = f"INSERT OR REPLACE INTO agents ({_AGENT_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)"


def _agent_row(agent: AgentRecord) -> tuple[object, ...]:
    return (
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
    )


def _connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    # check_same_thread=False: made on the store's thread, used there only, closed there too.
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        connection.execute("PRAGMA busy_timeout=5000")
        connection.executescript(SCHEMA)
    except BaseException:
        connection.close()
        raise
    return connection


def _in_transaction(connection: sqlite3.Connection, statements: Sequence[Statement]) -> None:
    connection.execute("BEGIN")
    try:
        for sql, params in statements:
            connection.execute(sql, params)
        connection.execute("COMMIT")
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise


class StateStore:
    """One connection, used by one thread: every operation runs there, one after the other."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._connection: sqlite3.Connection | None = None
        self._thread: ThreadPoolExecutor | None = None

    async def open(self) -> None:
        thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="state-db")
        try:
            self._connection = await asyncio.get_running_loop().run_in_executor(thread, _connect, self.path)
        except (sqlite3.Error, OSError) as exc:
            thread.shutdown(wait=False)
            raise StateError(f"cannot open the state database {self.path}: {exc}") from exc
        self._thread = thread

    async def close(self) -> None:
        connection, thread = self._connection, self._thread
        self._connection = self._thread = None
        if connection is not None and thread is not None:
            # After every operation already handed to the thread: it runs them in order.
            await asyncio.get_running_loop().run_in_executor(thread, connection.close)
            thread.shutdown(wait=False)

    async def _run(self, work: Callable[[sqlite3.Connection], T], failure: str | None = None) -> T:
        """Run work(connection) on the store's thread; a database error becomes a StateError.
        Once called, the work is done, whole, even if the caller is cancelled meanwhile (a service
        stop cancels the agents' workers while their last turn is being saved)."""
        connection, thread = self._connection, self._thread
        if connection is None or thread is None:
            raise StateError("the state database is not open")
        try:
            done = asyncio.get_running_loop().run_in_executor(thread, work, connection)
            # Read by nobody once the caller is gone: fetched here so asyncio does not report it.
            done.add_done_callback(lambda future: future.cancelled() or future.exception())
            # shield: cancelling run_in_executor's future would drop work still in the thread's queue.
            return await asyncio.shield(done)
        except (sqlite3.Error, OSError) as exc:
            raise StateError(f"{failure or f'cannot write state ({self.path})'}: {exc}") from exc

    async def query(self, sql: str, params: Sequence[object] = ()) -> list[Any]:
        """Rows of a read-only query (for the service's own reads, and for tests)."""
        return await self._run(lambda c: c.execute(sql, params).fetchall(), f"cannot read state ({self.path})")

    # agents

    async def save_agent(self, agent: AgentRecord) -> None:
        row = _agent_row(agent)
        await self._run(lambda c: c.execute(_SAVE_AGENT, row))

    async def delete_agent(self, agent_id: str) -> None:
        statements = [
            (f"DELETE FROM {table} WHERE {column} = ?", (agent_id,))
            for table, column in (("agents", "id"), ("inbound", "agent_id"), ("outbound", "agent_id"))
        ]
        await self._run(lambda c: _in_transaction(c, statements), f"cannot delete agent {agent_id}")

    async def load_agents(self) -> list[AgentRecord]:
        rows = await self.query(f"SELECT {_AGENT_COLUMNS} FROM agents ORDER BY created_at")
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
        params = (agent_id, stanza_id, body, MessageState.QUEUED.value, time.time())

        def insert(connection: sqlite3.Connection) -> int | None:
            try:
                cursor = connection.execute(
                    "INSERT INTO inbound (agent_id, stanza_id, body, state, received_at) VALUES (?,?,?,?,?)", params
                )
            except sqlite3.IntegrityError:
                return None
            return cursor.lastrowid

        return await self._run(insert)

    async def finish_turn(self, agent: AgentRecord, message_id: int | None) -> None:
        """The end of a turn in one commit: the message is DONE and the agent's counters saved."""
        statements: list[Statement] = [(_SAVE_AGENT, _agent_row(agent))]
        if message_id is not None:
            statements.append(("UPDATE inbound SET state = ? WHERE id = ?", (MessageState.DONE.value, message_id)))
        await self._run(lambda c: _in_transaction(c, statements))

    async def pending_inbound(self, agent_id: str) -> list[InboundMessage]:
        """Messages not yet answered (queued, or sent to an agent whose turn never ended), oldest first."""
        rows = await self.query(
            "SELECT id, agent_id, stanza_id, body, state, received_at FROM inbound "
            "WHERE agent_id = ? AND state != ? ORDER BY id",
            (agent_id, MessageState.DONE.value),
        )
        return [InboundMessage(r[0], r[1], r[2], r[3], MessageState(r[4]), r[5]) for r in rows]

    async def record_outbound(self, agent_id: str, bodies: list[str]) -> None:
        """Messages sent to the owner, in one commit (a turn's answer and its summary usually go together)."""
        now = time.time()
        statements = [("INSERT INTO outbound (agent_id, body, sent_at) VALUES (?,?,?)", (agent_id, body, now)) for body in bodies]
        if statements:
            await self._run(lambda c: _in_transaction(c, statements))

    async def history(self, agent_id: str, limit: int = 50) -> list[tuple[str, str, float]]:
        """The last messages both ways, oldest first: (direction, body, time)."""
        rows = await self.query(
            "SELECT * FROM (SELECT 'in', body, received_at AS t FROM inbound WHERE agent_id = ? "
            "UNION ALL SELECT 'out', body, sent_at AS t FROM outbound WHERE agent_id = ?) "
            "ORDER BY t DESC LIMIT ?",
            (agent_id, agent_id, limit),
        )
        return [(r[0], r[1], r[2]) for r in reversed(rows)]

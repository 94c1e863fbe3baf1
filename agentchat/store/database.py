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
import json
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from agentchat.errors import StateError
from agentchat.store.records import AgentRecord, AgentStatus, Arrival, InboundMessage, MessageState

log = logging.getLogger(__name__)

T = TypeVar("T")

# How long the keys that recognise a message arriving again are kept (agentchat.chat.dedup), and how many
# recorded messages go by between two prunings of older keys.
DEDUP_WINDOW = 24 * 3600
PRUNE_EVERY = 1000
# An id-less message resent by the server matches one recorded this close to the time it was first sent.
RESENT_SLACK = 5.0
Statement = tuple[str, Sequence[object]]

SCHEMA_VERSION = 5

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
    pid INTEGER,
    permission_mode TEXT,
    model TEXT,
    progress TEXT
);
-- Messages from people, to a bot (an agent, or the manager), kept until handled and after (history).
CREATE TABLE IF NOT EXISTS inbound (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    bot TEXT NOT NULL,
    peer TEXT NOT NULL,
    message_id TEXT,
    body TEXT NOT NULL,
    state TEXT NOT NULL,
    received_at REAL NOT NULL,
    attachments TEXT,  -- JSON: the files' URLs it carried (XEP-0066), for a restart before they were taken
    turn TEXT  -- JSON {"text", "images": [[type, path]]}: what the agent gets, when files made it other than body
);
CREATE INDEX IF NOT EXISTS inbound_pending ON inbound(bot, state);
CREATE INDEX IF NOT EXISTS inbound_message ON inbound(bot, peer, message_id);
-- What recognises a message that arrives again (agentchat.chat.dedup), for DEDUP_WINDOW.
CREATE TABLE IF NOT EXISTS inbound_keys (
    bot TEXT NOT NULL,
    key TEXT NOT NULL,
    inbound_id INTEGER NOT NULL,
    received_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS inbound_keys_lookup ON inbound_keys(bot, key, received_at);
-- Every conversation as it was said, searchable (SQLite FTS5): an agent's chat with its owner
-- ("agent:<id>", owner set) and rooms ("room:<jid>", who may read it: room_members). Kept after a kill.
CREATE TABLE IF NOT EXISTS history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    conversation TEXT NOT NULL,
    direction TEXT NOT NULL,
    author TEXT NOT NULL,
    owner TEXT,
    body TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS history_conversation ON history(conversation, at);
CREATE VIRTUAL TABLE IF NOT EXISTS history_fts USING fts5(body, content='history', content_rowid='id');
CREATE TRIGGER IF NOT EXISTS history_indexed AFTER INSERT ON history BEGIN
    INSERT INTO history_fts(rowid, body) VALUES (new.id, new.body);
END;
CREATE TRIGGER IF NOT EXISTS history_unindexed AFTER DELETE ON history BEGIN
    INSERT INTO history_fts(history_fts, rowid, body) VALUES ('delete', old.id, old.body);
END;
-- Rooms (XEP-0045) and who is in them: people by bare JID, agents by id.
CREATE TABLE IF NOT EXISTS rooms (
    jid TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    owner TEXT NOT NULL,
    mode TEXT NOT NULL DEFAULT 'mentions',
    prompts TEXT NOT NULL DEFAULT 'owner',
    created_at REAL NOT NULL,
    last_seen REAL
);
CREATE TABLE IF NOT EXISTS room_members (
    room TEXT NOT NULL,
    member TEXT NOT NULL,
    kind TEXT NOT NULL,
    PRIMARY KEY (room, member)
);
-- Each agent's account password, and the SCRAM salted password a login derived from it (agentchat.xmpp.scram),
-- so that a restart logs the agents in as they are, without a password reset each (the file is 0600).
CREATE TABLE IF NOT EXISTS agent_secrets (
    agent_id TEXT PRIMARY KEY,
    password TEXT NOT NULL,
    login_cache TEXT
);
-- A person's `new` dialogue with the manager, so that a restart continues it instead of replaying it.
CREATE TABLE IF NOT EXISTS dialogues (
    peer TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    updated_at REAL NOT NULL
);
"""

_AGENT_COLUMNS = (
    "id, owner, repo, backend, session_id, status, session_started, created_at, last_active, "
    "total_cost_usd, turns, pid, permission_mode, model, progress"
)
# Columns added after version 3, with their type: a file of an older version gets them at open.
_ADDED_AGENT_COLUMNS = (("permission_mode", "TEXT"), ("model", "TEXT"), ("progress", "TEXT"))
_ADDED_INBOUND_COLUMNS = (("attachments", "TEXT"), ("turn", "TEXT"))
_INBOUND_COLUMNS = "id, bot, peer, message_id, body, state, received_at, attachments, turn"

_SAVE_AGENT = f"INSERT OR REPLACE INTO agents ({_AGENT_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"


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
        agent.permission_mode,
        agent.model,
        agent.progress,
    )


def _connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    _make_private(path)
    # check_same_thread=False: made on the store's thread, used there only, closed there too.
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        connection.execute("PRAGMA busy_timeout=5000")
        _set_aside_version_1(connection)
        connection.executescript(SCHEMA)
        _migrate_version_1(connection)
        _migrate_version_2(connection)
        _add_agent_columns(connection)
        _add_inbound_columns(connection)
        connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    except BaseException:
        connection.close()
        raise
    return connection


def _make_private(path: Path) -> None:
    """The file holds people's messages and the agents' passwords: owner only (SQLite gives its -wal and
    -shm files the database file's mode)."""
    try:
        os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))
        if path.stat().st_mode & 0o077:
            path.chmod(0o600)
    except OSError:
        pass  # sqlite3.connect reports what is wrong with the path in its own words


def _tables(connection: sqlite3.Connection) -> set[str]:
    return {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def _set_aside_version_1(connection: sqlite3.Connection) -> None:
    """Wave 1 kept agents' messages in inbound(agent_id, stanza_id, …): rename it out of the way."""
    if "inbound" not in _tables(connection):
        return
    columns = {row[1] for row in connection.execute("PRAGMA table_info(inbound)")}
    if "agent_id" not in columns:
        return
    _in_transaction(connection, [
        ("DROP INDEX IF EXISTS inbound_dedup", ()),
        ("DROP INDEX IF EXISTS inbound_pending", ()),
        ("ALTER TABLE inbound RENAME TO inbound_v1", ()),
    ])


def _migrate_version_1(connection: sqlite3.Connection) -> None:
    """Copy wave 1's messages into the new table (idempotent: a crash half-way is finished next time)."""
    if "inbound_v1" not in _tables(connection):
        return
    _in_transaction(connection, [
        (
            "INSERT OR IGNORE INTO inbound (id, bot, peer, message_id, body, state, received_at) "
            "SELECT i.id, i.agent_id, COALESCE(a.owner, ''), i.stanza_id, i.body, "
            "CASE i.state WHEN 'done' THEN 'done' WHEN 'sent' THEN 'running' ELSE 'queued' END, i.received_at "
            "FROM inbound_v1 i LEFT JOIN agents a ON a.id = i.agent_id",
            (),
        ),
        ("DROP TABLE inbound_v1", ()),
    ])
    log.info("state database: messages moved to the version %d layout", SCHEMA_VERSION)


def _migrate_version_2(connection: sqlite3.Connection) -> None:
    """Version 2 kept what agents said in outbound(agent_id, body, sent_at): into the searchable history,
    with what their owners said (the inbound rows of agents)."""
    if "outbound" not in _tables(connection):
        return
    _in_transaction(connection, [
        (
            "INSERT INTO history (conversation, direction, author, owner, body, at) "
            "SELECT * FROM (SELECT 'agent:' || i.bot, 'in', i.peer, i.peer, i.body, i.received_at FROM inbound i "
            "WHERE i.bot != 'manager' UNION ALL SELECT 'agent:' || o.agent_id, 'out', o.agent_id, a.owner, o.body, "
            "o.sent_at FROM outbound o LEFT JOIN agents a ON a.id = o.agent_id) ORDER BY 6",
            (),
        ),
        ("DROP TABLE outbound", ()),
    ])
    log.info("state database: history moved to the version %d layout (searchable)", SCHEMA_VERSION)
def _add_agent_columns(connection: sqlite3.Connection) -> None:
    """Version 4: an agent's permission mode, model and progress setting (NULL, the defaults, for old rows)."""
    columns = {row[1] for row in connection.execute("PRAGMA table_info(agents)")}
    missing = [(name, kind) for name, kind in _ADDED_AGENT_COLUMNS if name not in columns]
    if missing:
        _in_transaction(connection, [(f"ALTER TABLE agents ADD COLUMN {name} {kind}", ()) for name, kind in missing])
        log.info("state database: agents have their %s now", ", ".join(name for name, _ in missing))


def _add_inbound_columns(connection: sqlite3.Connection) -> None:
    """Version 5: a message's files, and what the agent gets of it once they were taken."""
    columns = {row[1] for row in connection.execute("PRAGMA table_info(inbound)")}
    missing = [(name, kind) for name, kind in _ADDED_INBOUND_COLUMNS if name not in columns]
    if missing:
        _in_transaction(connection, [(f"ALTER TABLE inbound ADD COLUMN {name} {kind}", ()) for name, kind in missing])
        log.info("state database: messages keep their files now")


def _inbound_row(r: Sequence[Any]) -> InboundMessage:
    attachments = tuple(json.loads(r[7])) if r[7] else ()
    turn = json.loads(r[8]) if r[8] else None
    return InboundMessage(
        r[0], r[1], r[2], r[3], r[4], MessageState(r[5]), r[6], attachments=attachments,
        turn_text=turn["text"] if turn else None,
        turn_images=tuple((kind, path) for kind, path in turn["images"]) if turn else (),
    )


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
        self._recorded = 0

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

    async def execute(self, statements: Sequence[Statement]) -> None:
        """Statements in one transaction (for stores of their own on this database: agentchat.runners.store)."""
        await self._run(lambda c: _in_transaction(c, statements))

    async def query(self, sql: str, params: Sequence[object] = ()) -> list[Any]:
        """Rows of a read-only query (for the service's own reads, and for tests)."""
        return await self._run(lambda c: c.execute(sql, params).fetchall(), f"cannot read state ({self.path})")

    # agents

    async def save_agent(self, agent: AgentRecord) -> None:
        row = _agent_row(agent)
        await self._run(lambda c: c.execute(_SAVE_AGENT, row))

    async def save_agents(self, agents: Sequence[AgentRecord]) -> None:
        """Several agents in one commit (a restart saves every restored agent at once)."""
        statements = [(_SAVE_AGENT, _agent_row(agent)) for agent in agents]
        if statements:
            await self._run(lambda c: _in_transaction(c, statements))

    async def delete_agent(self, agent_id: str) -> None:
        statements = [
            (f"DELETE FROM {table} WHERE {column} = ?", (agent_id,))
            for table, column in (("agents", "id"), ("inbound", "bot"), ("inbound_keys", "bot"), ("room_members", "member"),
                                  ("agent_secrets", "agent_id"))
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
                permission_mode=row[12],
                model=row[13],
                progress=row[14],
            )
            for row in rows
        ]

    # agents' account passwords (see agent_secrets in SCHEMA)

    async def save_agent_secrets(self, secrets: Sequence[tuple[str, str, str | None]]) -> None:
        """(agent id, password, login cache) for each, in one commit."""
        statements = [("INSERT OR REPLACE INTO agent_secrets (agent_id, password, login_cache) VALUES (?,?,?)", row)
                      for row in secrets]
        if statements:
            await self._run(lambda c: _in_transaction(c, statements))

    async def load_agent_secrets(self) -> dict[str, tuple[str, str | None]]:
        """agent id -> (password, login cache)."""
        rows = await self.query("SELECT agent_id, password, login_cache FROM agent_secrets")
        return {row[0]: (row[1], row[2]) for row in rows}

    # messages from people: recorded before they are acknowledged, so a crash loses none

    async def record_arrivals(self, bot: str, arrivals: Sequence[Arrival]) -> list[int | None]:
        """Record messages to ``bot`` in one commit; for each, its row id, or None when it is one already
        recorded (see agentchat.chat.dedup: any of its keys within the window, or an id-less resent copy
        whose text was recorded close to the time the server first sent it)."""
        now = time.time()

        def record(connection: sqlite3.Connection) -> list[int | None]:
            ids: list[int | None] = []
            connection.execute("BEGIN")
            try:
                for arrival in arrivals:
                    ids.append(_record_one(connection, bot, arrival, now))
                connection.execute("COMMIT")
            except BaseException:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
                raise
            return ids

        ids = await self._run(record)
        self._recorded += len(arrivals)
        if self._recorded >= PRUNE_EVERY:
            self._recorded = 0
            await self._run(lambda c: c.execute("DELETE FROM inbound_keys WHERE received_at < ?", (now - DEDUP_WINDOW,)))
        return ids

    async def add_inbound(self, bot: str, peer: str, body: str) -> int:
        """Record a message that did not come over the chat (an agent's first task, given to the manager)."""
        params = (bot, peer, body, MessageState.RECEIVED.value, time.time())

        def insert(connection: sqlite3.Connection) -> int:
            cursor = connection.execute(
                "INSERT INTO inbound (bot, peer, message_id, body, state, received_at) VALUES (?,?,NULL,?,?,?)", params
            )
            assert cursor.lastrowid is not None
            return cursor.lastrowid

        return await self._run(insert)

    async def set_inbound_turn(self, record_id: int, text: str, images: Sequence[tuple[str, str]]) -> None:
        """What the agent gets of a message whose files were taken (the saved paths, not the URLs)."""
        turn = json.dumps({"text": text, "images": [list(image) for image in images]})
        await self._run(lambda c: c.execute("UPDATE inbound SET turn = ? WHERE id = ?", (turn, record_id)))

    async def set_inbound_state(self, record_id: int, state: MessageState) -> None:
        await self._run(lambda c: c.execute("UPDATE inbound SET state = ? WHERE id = ?", (state.value, record_id)))

    async def finish_inbound(self, record_id: int) -> None:
        await self.set_inbound_state(record_id, MessageState.DONE)

    async def replace_queued(self, bot: str, peer: str, message_id: str, body: str) -> MessageState | None:
        """A correction (XEP-0308): the newest message of ``peer`` with that id gets ``body`` if it still
        waits for its turn. Returns the message's state (None: no such message)."""

        def replace(connection: sqlite3.Connection) -> MessageState | None:
            row = connection.execute(
                "SELECT id, state FROM inbound WHERE bot = ? AND peer = ? AND message_id = ? ORDER BY id DESC LIMIT 1",
                (bot, peer, message_id),
            ).fetchone()
            if row is None:
                return None
            state = MessageState(row[1])
            if state in (MessageState.RECEIVED, MessageState.QUEUED):
                connection.execute("UPDATE inbound SET body = ? WHERE id = ?", (body, row[0]))
            return state

        return await self._run(replace)

    async def finish_turn(self, agent: AgentRecord, message_id: int | None) -> None:
        """The end of a turn in one commit: the message is DONE and the agent's counters saved."""
        statements: list[Statement] = [(_SAVE_AGENT, _agent_row(agent))]
        if message_id is not None:
            statements.append(("UPDATE inbound SET state = ? WHERE id = ?", (MessageState.DONE.value, message_id)))
        await self._run(lambda c: _in_transaction(c, statements))

    async def pending_inbound(self, bot: str) -> list[InboundMessage]:
        """Messages to ``bot`` not yet done, oldest first."""
        rows = await self.query(
            f"SELECT {_INBOUND_COLUMNS} FROM inbound WHERE bot = ? AND state != ? ORDER BY id",
            (bot, MessageState.DONE.value),
        )
        return [_inbound_row(r) for r in rows]

    async def pending_inbound_by_bot(self) -> dict[str, list[InboundMessage]]:
        """Every bot's messages not yet done, oldest first (one query for a restart's thousand agents)."""
        rows = await self.query(
            f"SELECT {_INBOUND_COLUMNS} FROM inbound WHERE state != ? ORDER BY id", (MessageState.DONE.value,)
        )
        pending: dict[str, list[InboundMessage]] = {}
        for r in rows:
            pending.setdefault(r[1], []).append(_inbound_row(r))
        return pending

    # the manager's dialogues

    async def save_dialogue(self, peer: str, state: str | None) -> None:
        """Keep (or, with None, forget) a person's `new` dialogue."""
        if state is None:
            await self._run(lambda c: c.execute("DELETE FROM dialogues WHERE peer = ?", (peer,)))
        else:
            params = (peer, state, time.time())
            await self._run(lambda c: c.execute("INSERT OR REPLACE INTO dialogues (peer, state, updated_at) VALUES (?,?,?)", params))

    async def load_dialogues(self) -> dict[str, str]:
        return {peer: state for peer, state in await self.query("SELECT peer, state FROM dialogues")}

    # the searchable history

    async def record_outbound(self, agent_id: str, owner: str, bodies: list[str]) -> None:
        """What an agent said to its owner, in one commit (a turn's answer and its summary usually go together)."""
        now = time.time()
        statements: list[Statement] = [
            (_LOG, (f"agent:{agent_id}", "out", agent_id, owner, body, now)) for body in bodies
        ]
        if statements:
            await self._run(lambda c: _in_transaction(c, statements))

    async def log_messages(self, conversation: str, entries: Sequence[tuple[str, str, str, float]]) -> None:
        """History lines (direction, author, body, time) of a conversation that has no inbox of its own."""
        statements: list[Statement] = [(_LOG, (conversation, d, a, None, b, t)) for d, a, b, t in entries]
        if statements:
            await self._run(lambda c: _in_transaction(c, statements))

    async def history(self, agent_id: str, limit: int = 50) -> list[tuple[str, str, float]]:
        """The last messages of an agent's chat both ways, oldest first: (direction, body, time)."""
        return [(d, b, t) for d, _, b, t in await self.conversation(f"agent:{agent_id}", limit=limit)]

    async def conversation(self, conversation: str, *, since: float = 0.0, limit: int = 50) -> list[tuple[str, str, str, float]]:
        """The last lines of a conversation after ``since``, oldest first: (direction, author, body, time)."""
        rows = await self.query(
            "SELECT * FROM (SELECT direction, author, body, at FROM history WHERE conversation = ? AND at > ? "
            "ORDER BY at DESC, id DESC LIMIT ?) ORDER BY at",
            (conversation, since, limit),
        )
        return [(r[0], r[1], r[2], r[3]) for r in rows]

    async def search(self, words: str, *, person: str | None = None, agent: str | None = None,
                     limit: int = 20) -> list[tuple[str, str, str, float]]:
        """Full-text search (every word must appear) in what ``person`` (their agents' chats, their rooms) or
        ``agent`` (its own chat, its rooms) may read; newest first: (conversation, author, body, time)."""
        query = _fts_query(words)
        if not query or (person is None) == (agent is None):
            return []
        member = person if person is not None else agent
        visible = "h.owner = ?" if person is not None else "h.conversation = ?"
        own = person if person is not None else f"agent:{agent}"
        rows = await self.query(
            "SELECT h.conversation, h.author, h.body, h.at FROM history_fts f JOIN history h ON h.id = f.rowid "
            f"WHERE history_fts MATCH ? AND ({visible} OR h.conversation IN "
            "(SELECT 'room:' || room FROM room_members WHERE member = ?)) ORDER BY h.at DESC LIMIT ?",
            (query, own, member, limit),
        )
        return [(r[0], r[1], r[2], r[3]) for r in rows]

    # rooms

    async def save_room(self, jid: str, name: str, owner: str) -> None:
        params = (jid, name, owner, time.time())
        await self._run(lambda c: c.execute(
            "INSERT OR IGNORE INTO rooms (jid, name, owner, created_at) VALUES (?,?,?,?)", params))

    async def set_room(self, jid: str, *, mode: str | None = None, prompts: str | None = None,
                       last_seen: float | None = None) -> None:
        changes = [(column, value) for column, value in (("mode", mode), ("prompts", prompts), ("last_seen", last_seen))
                   if value is not None]
        if not changes:
            return
        sets = ", ".join(f"{column} = ?" for column, _ in changes)
        params = (*(value for _, value in changes), jid)
        await self._run(lambda c: c.execute(f"UPDATE rooms SET {sets} WHERE jid = ?", params))

    async def delete_room(self, jid: str) -> None:
        await self._run(lambda c: _in_transaction(c, [
            ("DELETE FROM rooms WHERE jid = ?", (jid,)), ("DELETE FROM room_members WHERE room = ?", (jid,)),
        ]))

    async def load_rooms(self) -> list[tuple[str, str, str, str, str, float | None]]:
        """(jid, name, owner, mode, prompts, last_seen) of every room."""
        rows = await self.query("SELECT jid, name, owner, mode, prompts, last_seen FROM rooms ORDER BY created_at")
        return [(r[0], r[1], r[2], r[3], r[4], r[5]) for r in rows]

    async def add_room_member(self, room: str, member: str, kind: str) -> None:
        params = (room, member, kind)
        await self._run(lambda c: c.execute("INSERT OR IGNORE INTO room_members (room, member, kind) VALUES (?,?,?)", params))

    async def remove_room_member(self, room: str, member: str) -> None:
        params = (room, member)
        await self._run(lambda c: c.execute("DELETE FROM room_members WHERE room = ? AND member = ?", params))

    async def room_members(self) -> list[tuple[str, str, str]]:
        """(room, member, kind) for every room."""
        rows = await self.query("SELECT room, member, kind FROM room_members ORDER BY room, member")
        return [(r[0], r[1], r[2]) for r in rows]

_LOG = "INSERT INTO history (conversation, direction, author, owner, body, at) VALUES (?,?,?,?,?,?)"


def _fts_query(words: str) -> str:
    """Each word as a quoted FTS5 string (so punctuation means nothing), all of them required."""
    terms = [word.replace('"', '""') for word in words.split() if word.strip('"')]
    return " ".join(f'"{term}"' for term in terms[:20])


def _record_one(connection: sqlite3.Connection, bot: str, arrival: Arrival, now: float) -> int | None:
    """Insert one arrival unless it was recorded before; None for a duplicate. Inside the caller's transaction."""
    since = now - DEDUP_WINDOW
    if arrival.keys:
        marks = ",".join("?" * len(arrival.keys))
        seen = connection.execute(
            f"SELECT 1 FROM inbound_keys WHERE bot = ? AND key IN ({marks}) AND received_at >= ? LIMIT 1",
            (bot, *arrival.keys, since),
        ).fetchone()
    elif arrival.resent_at is not None:
        seen = connection.execute(
            "SELECT 1 FROM inbound_keys WHERE bot = ? AND key = ? AND received_at BETWEEN ? AND ? LIMIT 1",
            (bot, arrival.text_key, arrival.resent_at - RESENT_SLACK, arrival.resent_at + RESENT_SLACK),
        ).fetchone()
    else:
        seen = None
    if seen is not None:
        return None
    cursor = connection.execute(
        "INSERT INTO inbound (bot, peer, message_id, body, state, received_at, attachments) VALUES (?,?,?,?,?,?,?)",
        (bot, arrival.peer, arrival.message_id, arrival.body, MessageState.RECEIVED.value, arrival.received_at,
         json.dumps(arrival.attachments) if arrival.attachments else None),
    )
    row_id = cursor.lastrowid
    assert row_id is not None
    if arrival.log is not None:
        connection.execute(_LOG, (arrival.log, "in", arrival.author or arrival.peer, arrival.owner, arrival.body,
                                  arrival.received_at))
    connection.executemany(
        "INSERT INTO inbound_keys (bot, key, inbound_id, received_at) VALUES (?,?,?,?)",
        [(bot, key, row_id, arrival.received_at) for key in (*arrival.keys, arrival.text_key)],
    )
    return row_id

"""Recording messages from people: once each, recognised when they arrive again, and wave 1's file migrated."""

from __future__ import annotations

import contextlib
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path

from agentchat.chat.inbox import _arrival
from agentchat.chat.port import Inbound
from agentchat.store import database
from agentchat.store.database import StateStore
from agentchat.store.records import MessageState
from tests.faults.support import wait_until


def inbound(text: str = "yes", **fields: object) -> Inbound:
    values: dict[str, object] = {"sender": "alice@x", "text": text, "raw_body": text}
    values.update(fields)
    return Inbound(**values)  # type: ignore[arg-type]


async def record(store: StateStore, *messages: Inbound, bot: str = "swift-fox") -> list[int | None]:
    return await store.record_arrivals(bot, [_arrival(m) for m in messages])


async def test_a_message_with_an_id_is_recorded_once(store: StateStore) -> None:
    first, again = await record(store, inbound(message_id="m1"), inbound(message_id="m1"))
    assert first is not None and again is None
    assert await record(store, inbound(message_id="m1")) == [None]
    # Another bot, another sender, another text under the same id: other messages.
    assert None not in await record(store, inbound(message_id="m1"), bot="manager")
    assert None not in await record(store, inbound(message_id="m1", sender="bob@x"))
    assert None not in await record(store, inbound("no", message_id="m1"))
    [pending] = [m for m in await store.pending_inbound("swift-fox") if m.peer == "alice@x" and m.body == "yes"]
    assert pending.state is MessageState.RECEIVED and pending.message_id == "m1"


async def test_id_less_messages_are_all_kept_unless_resent_by_the_server(store: StateStore) -> None:
    now = time.time()
    ids = await record(store, inbound(received_at=now), inbound(received_at=now + 1))
    assert None not in ids  # "yes" twice, typed by a person: two messages
    # The server sends one of them again after a lost session, stamped with when it first sent it.
    resent = inbound(received_at=now + 30, resent_at=datetime.fromtimestamp(int(now), UTC))
    assert await record(store, resent) == [None]
    # A resent copy of a message never recorded (its first delivery was lost with the crash) is new.
    old = inbound(received_at=now + 31, resent_at=datetime.fromtimestamp(int(now) - 600, UTC))
    assert await record(store, old) != [None]


async def test_duplicates_are_forgotten_after_the_window(store: StateStore, monkeypatch) -> None:
    long_ago = time.time() - database.DEDUP_WINDOW - 60
    await record(store, inbound(message_id="old", received_at=long_ago))
    assert await record(store, inbound(message_id="old")) != [None]


async def test_a_correction_replaces_a_waiting_message_only(store: StateStore) -> None:
    [waiting] = await record(store, inbound("tpyo", message_id="m1"))
    assert waiting is not None
    assert await store.replace_queued("swift-fox", "alice@x", "m1", "typo") is MessageState.RECEIVED
    await store.set_inbound_state(waiting, MessageState.RUNNING)
    assert await store.replace_queued("swift-fox", "alice@x", "m1", "too late") is MessageState.RUNNING
    assert await store.replace_queued("swift-fox", "alice@x", "unknown", "x") is None
    [(body,)] = await store.query("SELECT body FROM inbound WHERE id = ?", (waiting,))
    assert body == "typo"


async def test_the_wave_1_state_file_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.executescript("""
            CREATE TABLE agents (id TEXT PRIMARY KEY, owner TEXT NOT NULL, repo TEXT NOT NULL, backend TEXT NOT NULL,
                session_id TEXT NOT NULL, status TEXT NOT NULL, session_started INTEGER NOT NULL DEFAULT 0,
                created_at REAL NOT NULL, last_active REAL NOT NULL, total_cost_usd REAL NOT NULL DEFAULT 0,
                turns INTEGER NOT NULL DEFAULT 0, pid INTEGER);
            CREATE TABLE inbound (id INTEGER PRIMARY KEY AUTOINCREMENT, agent_id TEXT NOT NULL, stanza_id TEXT,
                body TEXT NOT NULL, state TEXT NOT NULL, received_at REAL NOT NULL);
            CREATE UNIQUE INDEX inbound_dedup ON inbound(agent_id, stanza_id) WHERE stanza_id IS NOT NULL;
            CREATE INDEX inbound_pending ON inbound(agent_id, state);
            INSERT INTO agents VALUES ('swift-fox', 'alice@x', '/w/api', 'claude', 's1', 'idle', 1, 1, 1, 0, 2, NULL);
            INSERT INTO inbound VALUES (1, 'swift-fox', 'a', 'answered', 'done', 1);
            INSERT INTO inbound VALUES (2, 'swift-fox', NULL, 'was running', 'sent', 2);
            INSERT INTO inbound VALUES (3, 'swift-fox', 'c', 'waiting', 'queued', 3);
        """)
        db.commit()
    store = StateStore(path)
    await store.open()
    try:
        pending = await store.pending_inbound("swift-fox")
        assert [(m.body, m.peer, m.state) for m in pending] == [
            ("was running", "alice@x", MessageState.RUNNING),
            ("waiting", "alice@x", MessageState.QUEUED),
        ]
        assert [m.message_id for m in pending] == [None, "c"]
        [(version,)] = await store.query("PRAGMA user_version")
        assert version == database.SCHEMA_VERSION
    finally:
        await store.close()
    # A second open of the migrated file changes nothing.
    store = StateStore(path)
    await store.open()
    try:
        assert len(await store.pending_inbound("swift-fox")) == 2
    finally:
        await store.close()


async def test_a_messages_files_and_what_the_agent_gets_of_them_are_kept(store: StateStore) -> None:
    """For a restart: the files' URLs from the start (they are taken again if the message was never
    handled), and once taken, the text and the saved pictures' paths instead of the URLs."""
    from agentchat.chat.inbox import Conversations
    from agentchat.chat.port import Attachment

    url = "https://up.example/x/shot.png"
    [first, plain] = await record(store, inbound(url, attachments=(Attachment(url),)), inbound("no files"))
    assert first is not None and plain is not None
    pending = {m.id: m for m in await store.pending_inbound("swift-fox")}
    assert pending[first].attachments == (url,) and pending[plain].attachments == ()
    # The chat side hands a recovered message on with its files, for the intake to take again.
    handed: list[Inbound] = []

    async def handle(received) -> None:  # type: ignore[no-untyped-def]
        handed.append(received.inbound)

    Conversations("swift-fox", store, handle).recover([pending[first]])
    await wait_until(lambda: bool(handed), 5, "the recovered message handed on")
    assert [m.attachments for m in handed] == [(Attachment(url),)]

    await store.set_inbound_turn(first, "The user sent an image, saved at .agentchat/inbox/shot.png",
                                 [("image/png", ".agentchat/inbox/shot.png")])
    [taken] = [m for m in await store.pending_inbound("swift-fox") if m.id == first]
    assert taken.turn_text == "The user sent an image, saved at .agentchat/inbox/shot.png"
    assert taken.turn_images == (("image/png", ".agentchat/inbox/shot.png"),)
    assert taken.body == url  # the history keeps what was written


async def test_a_version_4_file_gets_the_message_columns(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.executescript("""
            CREATE TABLE inbound (id INTEGER PRIMARY KEY AUTOINCREMENT, bot TEXT NOT NULL, peer TEXT NOT NULL,
                message_id TEXT, body TEXT NOT NULL, state TEXT NOT NULL, received_at REAL NOT NULL);
            INSERT INTO inbound VALUES (1, 'swift-fox', 'alice@x', 'm1', 'waiting', 'queued', 1);
            PRAGMA user_version = 4;
        """)
        db.commit()
    store = StateStore(path)
    await store.open()
    try:
        [message] = await store.pending_inbound("swift-fox")
        assert (message.body, message.attachments, message.turn_text) == ("waiting", (), None)
        [(version,)] = await store.query("PRAGMA user_version")
        assert version == database.SCHEMA_VERSION == 5
    finally:
        await store.close()

"""The state file cannot be written: the disk is full, or the state directory is unusable.

What must hold: a clear error (in the chat where someone waits, in the log), the service keeps serving
what it can (a message that cannot be saved is still answered, the manager still answers), nothing
is corrupted (PRAGMA integrity_check), and everything works again once the disk has room.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agentchat.store.database import StateStore
from tests.faults.service_process import service_config
from tests.support.service import create_agent, make_repositories, running_service, service_settings

DISK_FULL = "database or disk is full"  # what SQLite says for SQLITE_FULL (ENOSPC, or max_page_count)
_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE", "BEGIN", "COMMIT")


class FullDisk:
    """Stands in for the store's SQLite connection: reads pass, every write fails as on a full disk.

    A real full disk is not reproducible (SQLite reuses WAL space, so some writes still succeed); this
    fails every write, at the same place and with the same error SQLite gives.
    """

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._connection = connection
        self.refused = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._connection, name)

    def execute(self, sql: str, parameters: Any = ()) -> sqlite3.Cursor:
        if sql.lstrip().upper().startswith(_WRITES):
            self.refused += 1
            raise sqlite3.OperationalError(DISK_FULL)
        return self._connection.execute(sql, parameters)


@contextlib.contextmanager
def disk_full(store: StateStore) -> Iterator[FullDisk]:
    real = store._connection
    assert real is not None
    full = FullDisk(real)
    store._connection = full  # type: ignore[assignment]
    try:
        yield full
    finally:
        store._connection = real


async def test_a_full_disk_is_reported_and_the_service_keeps_serving(
    prosody, user_client, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = service_settings(prosody, tmp_path)
    make_repositories(settings.work.base_path)
    manager = settings.manager_jid
    async with running_service(settings) as service:
        alice = await user_client("alice")
        agent_id, agent = await create_agent(alice, manager, task="before the disk filled up")
        await alice.expect("✅ Done", from_=agent, timeout=20)

        with disk_full(service.store) as full, caplog.at_level(logging.ERROR):
            await alice.send(agent, "written while the disk is full")
            warning = await alice.expect("⚠️", from_=agent, timeout=10)
            assert "disk is full" in warning.body, warning.body
            # The message is still handled, from memory.
            await alice.expect("MOCK_REPLY: written while the disk is full", from_=agent, timeout=20)
            await alice.expect("✅ Done", from_=agent, timeout=20)
            # A second message, and a second turn: the agent did not stop after the first error.
            await alice.send(agent, "again while full")
            await alice.expect("MOCK_REPLY: again while full", from_=agent, timeout=20)
            await alice.send(agent, "status")
            await alice.expect("📊", from_=agent)
            # The manager still answers; what needs the disk fails with one clear line.
            await alice.send(manager, "list")
            assert agent_id in (await alice.expect("Your agents", from_=manager)).body
            await alice.send(manager, "new")
            await alice.expect("Which type?", from_=manager)
            await alice.send(manager, "1")
            await alice.expect("Which repository?", from_=manager)
            await alice.send(manager, "web")
            await alice.expect("first task", from_=manager)
            await alice.send(manager, "skip")
            refusal = await alice.expect("could not be created", from_=manager, timeout=20)
            assert DISK_FULL in refusal.body
            assert full.refused > 0
            assert any(DISK_FULL in record.getMessage() for record in caplog.records)
        assert service.supervisor is not None and [a.id for a in service.supervisor.all()] == [agent_id]

        # Room again: everything is saved as before.
        await alice.send(agent, "after the disk was freed")
        await alice.expect("MOCK_REPLY: after the disk was freed", from_=agent, timeout=20)
        await alice.expect("✅ Done", from_=agent, timeout=20)
        bodies = [body for direction, body, _ in await service.store.history(agent_id) if direction == "in"]
        assert "after the disk was freed" in bodies

    with contextlib.closing(sqlite3.connect(tmp_path / "state.db")) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        # The messages of the full disk were never written; nothing half-written either.
        assert [row[0] for row in db.execute("SELECT body FROM inbound WHERE bot = ? ORDER BY id", (agent_id,))] == [
            "before the disk filled up",
            "after the disk was freed",
        ]


def test_an_unusable_state_directory_stops_the_start_with_a_clear_error(prosody, tmp_path: Path) -> None:
    home = tmp_path / "home"
    make_repositories(home / "work")
    # As root, permissions stop nothing: a directory where the database file should be does.
    (home / "state.db").mkdir(parents=True)
    config = home / "config.json"
    config.write_text(json.dumps(service_config(prosody, home)), encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "agentchat", "--config", str(config), "start"],
        env={**os.environ, "AGENTCHAT_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("agentchat: cannot open the state database") and "state.db" in last, result.stderr
    assert "Traceback" not in result.stderr

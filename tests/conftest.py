"""Shared fixtures: a real Prosody on free loopback ports, and logged-in XMPP users.

* ``prosody`` (session): one server for the whole run; admin and manager accounts exist.
* ``isolated_prosody`` (function): a server of the test's own, to kill or restart.
* ``user_client`` (function): ``await user_client("alice")`` creates a fresh account and logs in.
* ``store`` (function): a real state database in the test's temporary directory, open for the test.
"""

from __future__ import annotations

import secrets
import sys
from collections.abc import AsyncIterator, Awaitable, Iterator
from pathlib import Path
from typing import Protocol

import pytest

# `from tests.harness import ...` must work however pytest was started (pytest, python -m pytest).
_REPO_ROOT = str(Path(__file__).resolve().parents[1])
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)

from agentchat.store.database import StateStore  # noqa: E402
from tests.harness.clients import Security, UserClient  # noqa: E402
from tests.harness.prosody import ProsodyServer  # noqa: E402


@pytest.fixture(scope="session")
def prosody() -> Iterator[ProsodyServer]:
    with ProsodyServer.started() as server:
        yield server


@pytest.fixture
def isolated_prosody() -> Iterator[ProsodyServer]:
    with ProsodyServer.started() as server:
        yield server


class UserClientFactory(Protocol):
    def __call__(
        self,
        local: str,
        *,
        password: str | None = None,
        server: ProsodyServer | None = None,
        service: bool = False,
        create: bool = True,
        unique: bool = True,
        connect: bool = True,
        security: Security = "starttls",
    ) -> Awaitable[UserClient]: ...


@pytest.fixture
async def user_client(request: pytest.FixtureRequest) -> AsyncIterator[UserClientFactory]:
    """Factory of logged-in clients, all disconnected at teardown.

    ``local`` gets a random suffix unless ``unique=False`` (so messages left offline by another
    test never show up): address the client by ``client.bare_jid``. ``service=True`` lists the
    account as a service account (not throttled) before it logs in. ``create=False`` logs in to
    an existing account (``password`` required). ``server`` defaults to the session ``prosody``.
    Clients log in with STARTTLS and verify the server's certificate; ``security="plain"`` asks
    for plaintext (loopback only).
    """
    clients: list[UserClient] = []

    async def factory(
        local: str,
        *,
        password: str | None = None,
        server: ProsodyServer | None = None,
        service: bool = False,
        create: bool = True,
        unique: bool = True,
        connect: bool = True,
        security: Security = "starttls",
    ) -> UserClient:
        target = server or request.getfixturevalue("prosody")
        username = f"{local}-{secrets.token_hex(3)}" if unique else local
        if password is None:
            if not create:
                raise ValueError("create=False needs the account's password")
            password = secrets.token_urlsafe(12)
        if service:
            await target.mark_service(username)
        if create:
            await target.create_account(username, password)
        client = UserClient(f"{username}@{target.domain}", password, target.host, target.c2s_port,
                            security=security, ca_file=target.ca_file)
        clients.append(client)
        if connect:
            await client.connect()
        return client

    yield factory
    for client in clients:
        await client.disconnect()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[StateStore]:
    """A real state database in the test's temporary directory, open for the test."""
    state = StateStore(tmp_path / "state.db")
    await state.open()
    yield state
    await state.close()

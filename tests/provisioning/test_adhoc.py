"""AdhocProvisioner (XEP-0133) over an admin's live XMPP session, against a real Prosody."""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator

import pytest

from agentchat.errors import ProvisioningError
from agentchat.provisioning.adhoc import AdhocProvisioner
from agentchat.provisioning.base import AccountExists, AccountMissing
from tests.harness.clients import LoginFailed, UserClient
from tests.harness.prosody import ProsodyServer


@pytest.fixture
async def provisioner(prosody: ProsodyServer, user_client) -> AsyncIterator[AdhocProvisioner]:
    manager = await user_client("manager", password=prosody.manager_password, create=False, unique=False)
    async with AdhocProvisioner(manager.xmpp, prosody.domain) as p:
        yield p


def client_for(prosody: ProsodyServer, name: str, password: str) -> UserClient:
    return UserClient(f"{name}@{prosody.domain}", password, prosody.host, prosody.c2s_port)


async def test_account_life_cycle(prosody: ProsodyServer, provisioner: AdhocProvisioner) -> None:
    name = f"calm-heron-{secrets.token_hex(3)}"
    first, second = secrets.token_urlsafe(12), secrets.token_urlsafe(12)
    assert not await provisioner.account_exists(name)

    started = time.monotonic()
    await provisioner.create_account(name, first)
    print(f"adhoc create_account: {(time.monotonic() - started) * 1000:.1f} ms")
    assert await provisioner.account_exists(name)
    session = client_for(prosody, name, first)
    await session.connect()
    with pytest.raises(AccountExists):
        await provisioner.create_account(name, "another")

    await provisioner.change_password(name, second)
    await session.wait_disconnected(5)
    assert ("reset", "Password changed") in session.stream_errors
    with pytest.raises(LoginFailed):
        await client_for(prosody, name, first).connect(timeout=5)
    session = client_for(prosody, name, second)
    await session.connect()

    await provisioner.delete_account(name)
    await session.wait_disconnected(5)
    assert ("not-authorized", "Account deleted") in session.stream_errors
    with pytest.raises(LoginFailed):
        await client_for(prosody, name, second).connect(timeout=5)
    assert not await provisioner.account_exists(name)
    with pytest.raises(AccountMissing):
        await provisioner.delete_account(name)
    with pytest.raises(AccountMissing):
        await provisioner.change_password(name, first)


async def test_a_session_that_is_not_admin_is_refused(prosody: ProsodyServer, user_client) -> None:
    human = await user_client("human")
    not_admin = AdhocProvisioner(human.xmpp, prosody.domain)
    with pytest.raises(ProvisioningError, match="not an admin"):
        await not_admin.create_account(f"x-{secrets.token_hex(3)}", "pw")


async def test_many_accounts_in_a_row(provisioner: AdhocProvisioner) -> None:
    names = [f"agent-{secrets.token_hex(3)}" for _ in range(20)]
    started = time.monotonic()
    for name in names:
        await provisioner.create_account(name, "pw")
    per_account = (time.monotonic() - started) * 1000 / len(names)
    print(f"adhoc create_account x{len(names)}: {per_account:.1f} ms each")
    for name in names:
        await provisioner.delete_account(name)
    assert per_account < 200

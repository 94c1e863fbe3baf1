"""AdminRestProvisioner against our mod_admin_rest on a real Prosody."""

from __future__ import annotations

import base64
import secrets
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest

from agentchat.errors import ProvisioningError
from agentchat.provisioning.admin_rest import AdminRestProvisioner
from agentchat.provisioning.base import AccountExists, AccountMissing
from tests.harness.clients import LoginFailed, UserClient
from tests.harness.prosody import ProsodyServer


@pytest.fixture
async def provisioner(prosody: ProsodyServer) -> AsyncIterator[AdminRestProvisioner]:
    async with AdminRestProvisioner(prosody.admin_rest_url, prosody.domain, prosody.admin_jid, prosody.admin_password) as p:
        yield p


def client_for(prosody: ProsodyServer, name: str, password: str) -> UserClient:
    return UserClient(f"{name}@{prosody.domain}", password, prosody.host, prosody.c2s_port)


async def test_account_life_cycle(prosody: ProsodyServer, provisioner: AdminRestProvisioner) -> None:
    name = f"brave-otter-{secrets.token_hex(3)}"
    first, second = secrets.token_urlsafe(12), secrets.token_urlsafe(12)
    assert not await provisioner.account_exists(name)

    started = time.monotonic()
    await provisioner.create_account(name, first)
    print(f"admin_rest create_account: {(time.monotonic() - started) * 1000:.1f} ms")
    assert await provisioner.account_exists(name)
    session = client_for(prosody, name, first)
    await session.connect()
    with pytest.raises(AccountExists):
        await provisioner.create_account(name, "another")

    await provisioner.change_password(name, second)
    await session.wait_disconnected(5)  # a password change closes live sessions (G11)
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


async def test_wrong_admin_password_is_refused(prosody: ProsodyServer) -> None:
    async with AdminRestProvisioner(prosody.admin_rest_url, prosody.domain, prosody.admin_jid, "wrong") as bad:
        with pytest.raises(ProvisioningError, match="HTTP 401"):
            await bad.create_account(f"x-{secrets.token_hex(3)}", "pw")
        with pytest.raises(ProvisioningError, match="HTTP 401"):
            await bad.ping()


async def test_a_user_who_is_not_admin_is_refused(prosody: ProsodyServer, user_client) -> None:
    human = await user_client("human", connect=False)
    async with AdminRestProvisioner(prosody.admin_rest_url, prosody.domain, human.bare_jid,
                                    human.xmpp.password) as not_admin:
        with pytest.raises(ProvisioningError, match="not in Prosody's admins"):
            await not_admin.account_exists("anyone")


async def test_http_status_codes_match_upstream(prosody: ProsodyServer, user_client) -> None:
    auth = "Basic " + base64.b64encode(f"{prosody.admin_jid}:{prosody.admin_password}".encode()).decode()
    base = prosody.admin_rest_url
    name = f"raw-{secrets.token_hex(3)}"
    async with aiohttp.ClientSession(headers={"Authorization": auth}) as http:

        async def call(method: str, path: str, body: object = None, headers: dict[str, str] | None = None) -> tuple[int, object]:
            async with http.request(method, base + path, json=body, headers=headers or {}) as response:
                return response.status, (await response.json(content_type=None))["result"]

        assert await call("GET", "/ping") == (200, "PONG")
        assert (await call("POST", f"/user/{name}", {"password": "pw"}))[0] == 201
        assert (await call("POST", f"/user/{name}", {"password": "pw"}))[0] == 409
        assert (await call("POST", f"/user/{name}x", {"nopassword": 1}))[0] == 400
        status, result = await call("GET", f"/user/{name}")
        assert status == 200 and result["user"]["connected"] is False  # type: ignore[index]
        assert (await call("PATCH", f"/user/{name}/password", {"password": "pw2"}))[0] == 200
        assert (await call("PATCH", f"/user/{name}/password", {}))[0] == 400
        assert (await call("PATCH", f"/user/{name}/nickname", {"nickname": "x"}))[0] == 400
        assert (await call("DELETE", f"/user/{name}"))[0] == 200
        assert (await call("DELETE", f"/user/{name}"))[0] == 404
        assert (await call("GET", f"/user/{name}"))[0] == 404
        assert (await call("PATCH", f"/user/{name}/password", {"password": "pw3"}))[0] == 404
        online = await user_client("online")
        status, result = await call("GET", f"/user/{online.xmpp.boundjid.user}")
        sessions = result["user"]["sessions"]  # type: ignore[index]
        assert status == 200 and result["user"]["connected"] is True  # type: ignore[index]
        assert [s["resource"] for s in sessions] == [online.xmpp.boundjid.resource]
        # A loopback reverse proxy forwarding a remote client: refused.
        assert (await call("GET", "/ping", headers={"X-Forwarded-For": "203.0.113.9"}))[0] == 403
    async with aiohttp.ClientSession() as anonymous:
        async with anonymous.get(base + "/ping") as response:
            assert response.status == 401 and response.headers["WWW-Authenticate"].startswith("Basic")


async def test_unreachable_server_is_a_provisioning_error(prosody: ProsodyServer) -> None:
    url = "http://127.0.0.1:9/admin_rest"  # discard port: nothing listens
    async with AdminRestProvisioner(url, prosody.domain, prosody.admin_jid, "pw", timeout=2) as p:
        with pytest.raises(ProvisioningError, match="cannot reach"):
            await p.create_account("someone", "pw")
    assert "pw" not in repr(p)


async def test_invalid_names_never_reach_the_server(provisioner: AdminRestProvisioner) -> None:
    for bad in ("", "a b", "x@y", "a/b"):
        with pytest.raises(ProvisioningError, match="invalid account name"):
            await provisioner.create_account(bad, "pw")

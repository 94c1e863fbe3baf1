"""Provisioning over HTTP with mod_admin_rest (ours in prosody/modules, or upstream's unchanged)."""

from __future__ import annotations

import base64
import json
import logging
from typing import Any
from urllib.parse import quote

import aiohttp

from agentchat.errors import ProvisioningError
from agentchat.provisioning.base import (
    AccountExists,
    AccountMissing,
    Provisioner,
    RosterItem,
    check_password,
    check_username,
)

log = logging.getLogger(__name__)


class AdminRestUnreachable(ProvisioningError):
    """Nothing answers at the base URL (the server is down, or elsewhere)."""


class AdminRestRefused(ProvisioningError):
    """The module answered, and refused us: wrong admin password, not an admin, or not loopback."""


class AdminRestProvisioner(Provisioner):
    """Talks to ``base_url`` (e.g. ``http://127.0.0.1:5280/admin_rest``) as ``admin_jid``.

    Every request carries ``Host: <domain>``: Prosody routes HTTP by the Host header, and a
    request for 127.0.0.1 would otherwise miss the VirtualHost's module (pitfall G9).
    """

    def __init__(
        self,
        base_url: str,
        domain: str,
        admin_jid: str,
        admin_password: str,
        session: aiohttp.ClientSession | None = None,
        *,
        timeout: float = 10.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.domain = domain
        self.admin_jid = admin_jid
        credentials = base64.b64encode(f"{admin_jid}:{admin_password}".encode()).decode("ascii")
        self._headers = {"Authorization": f"Basic {credentials}", "Host": domain, "Accept": "application/json"}
        self._session = session
        self._owns_session = session is None
        self._timeout = aiohttp.ClientTimeout(total=timeout)

    edits_rosters = True

    def __repr__(self) -> str:  # never show the credentials
        return f"AdminRestProvisioner({self.base_url!r}, domain={self.domain!r}, admin_jid={self.admin_jid!r})"

    async def create_account(self, username: str, password: str) -> None:
        name = check_username(username)
        status, result = await self._request("POST", f"/user/{quote(name, safe='')}", {"password": check_password(password)})
        if status == 201:
            return
        if status == 409:
            raise AccountExists(f"account {name}@{self.domain} already exists")
        raise self._failure(f"create account {name}@{self.domain}", status, result)

    async def delete_account(self, username: str) -> None:
        name = check_username(username)
        status, result = await self._request("DELETE", f"/user/{quote(name, safe='')}")
        if status == 200:
            return
        if status == 404 and result is not None:
            raise AccountMissing(f"account {name}@{self.domain} does not exist")
        raise self._failure(f"delete account {name}@{self.domain}", status, result)

    async def change_password(self, username: str, password: str) -> None:
        name = check_username(username)
        path = f"/user/{quote(name, safe='')}/password"
        status, result = await self._request("PATCH", path, {"password": check_password(password)})
        if status == 200:
            return
        if status == 404 and result is not None:
            raise AccountMissing(f"account {name}@{self.domain} does not exist")
        raise self._failure(f"change the password of account {name}@{self.domain}", status, result)

    async def account_exists(self, username: str) -> bool:
        name = check_username(username)
        status, result = await self._request("GET", f"/user/{quote(name, safe='')}")
        if status == 200:
            return True
        if status == 404 and result is not None:
            return False
        raise self._failure(f"look up account {name}@{self.domain}", status, result)

    async def add_contact(self, username: str, contact_jid: str, name: str | None = None,
                          groups: tuple[str, ...] = ()) -> None:
        name_ = check_username(username)
        body: dict[str, Any] = {"contact": contact_jid, "groups": list(groups)}
        if name:
            body["name"] = name
        status, result = await self._request("POST", f"/roster/{quote(name_, safe='')}", body)
        if status == 200:
            return
        if status == 404 and result is not None:
            raise AccountMissing(f"cannot add {contact_jid} to the roster of {name_}@{self.domain}: {result}")
        raise self._failure(f"add {contact_jid} to the roster of {name_}@{self.domain}", status, result)

    async def remove_contact(self, username: str, contact_jid: str) -> None:
        name_ = check_username(username)
        status, result = await self._request("DELETE", f"/roster/{quote(name_, safe='')}", {"contact": contact_jid})
        if status == 200:
            return
        if status == 404 and result is not None:
            raise AccountMissing(f"cannot remove {contact_jid} from the roster of {name_}@{self.domain}: {result}")
        raise self._failure(f"remove {contact_jid} from the roster of {name_}@{self.domain}", status, result)

    async def roster(self, username: str) -> dict[str, RosterItem]:
        name_ = check_username(username)
        status, result = await self._request("GET", f"/roster/{quote(name_, safe='')}")
        if status == 404 and result is not None:
            raise AccountMissing(f"account {name_}@{self.domain} does not exist")
        if status != 200 or not isinstance(result, dict):
            raise self._failure(f"read the roster of {name_}@{self.domain}", status, result)
        items = result.get("roster") or {}
        return {
            jid: RosterItem(
                jid=jid,
                subscription=str(item.get("subscription") or "none"),
                name=item.get("name"),
                # Prosody's JSON encoder writes an empty list as {}.
                groups=tuple(item.get("groups") or ()),
                ask=item.get("ask"),
            )
            for jid, item in (items.items() if isinstance(items, dict) else ())
        }

    async def end_sessions(self, username: str, reason: str) -> int:
        name_ = check_username(username)
        status, result = await self._request("DELETE", f"/sessions/{quote(name_, safe='')}", {"reason": reason})
        if status == 404 and result is not None:
            raise AccountMissing(f"account {name_}@{self.domain} does not exist")
        if status != 200 or not isinstance(result, dict):
            raise self._failure(f"end the sessions of {name_}@{self.domain}", status, result)
        return int(result.get("count") or 0)

    async def ping(self) -> None:
        """Raise ProvisioningError unless the API answers and accepts our credentials."""
        status, result = await self._request("GET", "/ping")
        if status != 200:
            raise self._failure(f"ping mod_admin_rest at {self.base_url}", status, result)

    async def close(self) -> None:
        if self._owns_session and self._session is not None:
            await self._session.close()
        self._session = None

    async def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        """Status and the JSON ``result`` (None when the answer was not the module's JSON)."""
        if self._session is None:
            self._session = aiohttp.ClientSession()
            self._owns_session = True
        url = self.base_url + path
        data = None if body is None else json.dumps(body)
        headers = dict(self._headers)
        if data is not None:
            headers["Content-Type"] = "application/json"
        try:
            async with self._session.request(method, url, data=data, headers=headers, timeout=self._timeout) as response:
                text = await response.text()
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise AdminRestUnreachable(f"cannot reach mod_admin_rest at {self.base_url}: {exc or type(exc).__name__}") from exc
        try:
            payload = json.loads(text)
        except ValueError:
            payload = None
        result = payload.get("result", payload.get("message")) if isinstance(payload, dict) else None
        log.debug("admin_rest %s %s -> %d", method, path, status)
        return status, result

    def _failure(self, action: str, status: int, result: Any) -> ProvisioningError:
        if status == 401:
            reason = f"{self.admin_jid} was refused (wrong password or not in Prosody's admins)"
        elif status == 403:
            reason = "only loopback clients may use mod_admin_rest"
        elif status == 404:
            reason = f"no mod_admin_rest for {self.domain} at {self.base_url} (module not loaded or wrong Host)"
        else:
            reason = str(result) if result is not None else "unexpected answer"
        kind = AdminRestRefused if status in (401, 403) else ProvisioningError
        return kind(f"cannot {action}: HTTP {status}: {reason}")

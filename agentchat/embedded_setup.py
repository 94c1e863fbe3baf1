"""`agentchat start --embedded-prosody`: a Prosody of our own under the state directory."""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from agentchat.config import Settings
from agentchat.errors import ConfigError, StateError
from agentchat.logs import register_secret
from agentchat.server.embedded import SECRETS_FILE, EmbeddedProsody, ensure_service_secrets
from agentchat.server.prosody_config import ProsodyConfigParams, atomic_write_text, is_loopback_interface

LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "::1"}


@dataclass(frozen=True)
class HumanAccount:
    jid: str
    password: str
    created: bool


def embedded_params(settings: Settings) -> ProsodyConfigParams:
    """The embedded server listens where the service connects, on loopback only."""
    host = settings.xmpp.host
    if host not in LOOPBACK_HOSTS and not is_loopback_interface(host):
        raise ConfigError(
            f"xmpp.host: the embedded Prosody only listens on loopback, got {host!r} (set XMPP_HOST=127.0.0.1)"
        )
    return ProsodyConfigParams(
        domain=settings.xmpp.domain,
        run_dir=settings.home / "prosody",
        c2s_port=settings.xmpp.port,
        c2s_interface="::1" if host == "::1" else "127.0.0.1",
        http_port=settings.prosody.http_port,
        admins=(settings.xmpp.admin_jid, settings.manager_jid),
    )


def fill_service_secrets(settings: Settings) -> None:
    """Passwords not configured are generated once and kept in home/secrets.json (0600)."""
    admin_password, manager_password = ensure_service_secrets(settings.home)
    if settings.xmpp.admin_password is None:
        settings.xmpp.admin_password = SecretStr(admin_password)
    if settings.manager.password is None:
        settings.manager.password = SecretStr(manager_password)


async def start_embedded(settings: Settings) -> EmbeddedProsody:
    """Start Prosody, (re)set the admin and manager accounts, and point the service at it."""
    params = embedded_params(settings)
    fill_service_secrets(settings)
    prosody = EmbeddedProsody(params, prosody_binary=settings.prosody.binary)
    await prosody.start()
    assert settings.xmpp.admin_password is not None and settings.manager.password is not None
    await prosody.register(settings.xmpp.admin_username, settings.xmpp.domain, settings.xmpp.admin_password.get_secret_value())
    await prosody.register(settings.manager.username, settings.xmpp.domain, settings.manager.password.get_secret_value())
    settings.prosody.service_jids_file = params.effective_service_jids_file
    settings.provisioning.admin_rest_url = params.http_base_url + "/admin_rest"
    return prosody


_LOCALPART = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


def default_user_name() -> str:
    name = (os.environ.get("USER") or "").lower()
    return name if _LOCALPART.match(name) and name not in ("root", "admin", "manager") else "me"


async def ensure_human_account(prosody: EmbeddedProsody, settings: Settings, username: str) -> HumanAccount:
    """A first human account for `make run`, its password kept in secrets.json to print again."""
    path = settings.home / SECRETS_FILE
    data = await asyncio.to_thread(_read_json, path)
    known = data.get("users")
    users: dict[str, object] = known if isinstance(known, dict) else {}
    data["users"] = users
    created = username not in users
    if created:
        users[username] = secrets.token_urlsafe(12)
        await asyncio.to_thread(atomic_write_text, path, json.dumps(data, indent=2) + "\n", 0o600)
    password = str(users[username])
    register_secret(password)
    await prosody.register(username, settings.xmpp.domain, password)
    return HumanAccount(f"{username}@{settings.xmpp.domain}", password, created)


def _read_json(path: Path) -> dict[str, object]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise StateError(f"cannot read {path}: {exc}") from None
    return data if isinstance(data, dict) else {}

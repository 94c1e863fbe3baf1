"""`agentchat start --embedded-prosody`: a Prosody of our own under the state directory.

Loopback by default (plaintext allowed there, STARTTLS offered with a real certificate); with
``--public`` (``prosody.public``) c2s listens on ``prosody.interfaces`` and requires TLS, and the
service's own bots then use STARTTLS too, verifying the served certificate (pinned).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import re
import secrets
import socket
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from agentchat.config import Settings, is_loopback_host
from agentchat.errors import ConfigError, StateError
from agentchat.logs import register_secret
from agentchat.provisioning.admin_rest import AdminRestProvisioner, AdminRestRefused, AdminRestUnreachable
from agentchat.provisioning.base import AccountExists
from agentchat.provisioning.contacts import introduce
from agentchat.server.embedded import (
    SECRETS_FILE,
    EmbeddedProsody,
    check_ports_free,
    ensure_service_secrets,
    prosodyctl_register,
)
from agentchat.server.prosody_config import ProsodyConfigParams, atomic_write_text
from agentchat.server.tls import ServerCertificate, ensure_certificate, is_ip_address
from agentchat.server.web_client import write_web_root

log = logging.getLogger(__name__)

# How the manager appears in a user's roster.
MANAGER_CONTACT_NAME = "agentchat manager"
# Where a running embedded Prosody can be reached, for `agentchat user add` in another terminal.
ENDPOINTS_FILE = "endpoints.json"


@dataclass(frozen=True)
class HumanAccount:
    jid: str
    password: str
    created: bool


@dataclass(frozen=True)
class EmbeddedServer:
    """A started embedded Prosody and what a user needs to know about it."""

    prosody: EmbeddedProsody
    certificate: ServerCertificate
    public: bool

    @property
    def params(self) -> ProsodyConfigParams:
        return self.prosody.params


def run_dir(settings: Settings) -> Path:
    return settings.home / "prosody"


def embedded_params(settings: Settings, certificate: ServerCertificate) -> ProsodyConfigParams:
    """Loopback c2s where the service connects, or (public) every configured interface, TLS required."""
    host = settings.xmpp.host
    if not is_loopback_host(host):
        raise ConfigError(
            f"xmpp.host: the service reaches its embedded Prosody over loopback, got {host!r} (set XMPP_HOST=127.0.0.1)"
        )
    prosody = settings.prosody
    if prosody.public:
        if settings.xmpp.domain in ("localhost", "localhost.") or is_ip_address(settings.xmpp.domain):
            raise ConfigError(
                f"xmpp.domain: --public serves phones, which find the server by its domain's DNS records; "
                f"{settings.xmpp.domain!r} has none: set XMPP_DOMAIN (--domain) to a domain of yours"
            )
        interfaces = tuple(_usable_interfaces(prosody.interfaces))
        if not any(i in ("*", "0.0.0.0") or is_loopback_host(i) for i in interfaces):
            interfaces += ("127.0.0.1",)  # where the service's own bots connect (with TLS, as everyone)
    else:
        interfaces = ("::1",) if host == "::1" else ("127.0.0.1",)
    return ProsodyConfigParams(
        domain=settings.xmpp.domain,
        run_dir=run_dir(settings),
        c2s_port=settings.xmpp.port,
        c2s_interfaces=interfaces,
        c2s_direct_tls_port=prosody.direct_tls_port,
        http_port=prosody.http_port,
        admins=(settings.xmpp.admin_jid, settings.manager_jid),
        tls_cert=certificate.cert_path,
        tls_key=certificate.key_path,
        # Prosody 0.12 cannot require TLS on some interfaces only: public means TLS everywhere.
        allow_plaintext=not prosody.public,
        # Browsers elsewhere (the web client) and phones' uploads need HTTPS; loopback keeps plain http.
        https_port=prosody.https_port if prosody.public else None,
        c2s_rate=prosody.human_rate,
    )


def server_certificate(settings: Settings) -> ServerCertificate:
    """The configured certificate, Let's Encrypt's, or our generated one. Blocking: use a thread."""
    prosody = settings.prosody
    return ensure_certificate(
        settings.xmpp.domain,
        settings.home / "tls",
        certificate=prosody.certificate,
        key=prosody.key,
        letsencrypt_dir=prosody.letsencrypt_dir,
    )


def fill_service_secrets(settings: Settings) -> None:
    """Passwords not configured are generated once and kept in home/secrets.json (0600)."""
    admin_password, manager_password = ensure_service_secrets(settings.home)
    if settings.xmpp.admin_password is None:
        settings.xmpp.admin_password = SecretStr(admin_password)
    if settings.manager.password is None:
        settings.manager.password = SecretStr(manager_password)


async def start_embedded(settings: Settings) -> EmbeddedServer:
    """Check every port, start Prosody, (re)set the admin and manager accounts, point the service at it.

    Nothing is printed before the ports are known to be free: a busy one is one clear error.
    """
    certificate = await asyncio.to_thread(server_certificate, settings)
    params = embedded_params(settings, certificate)
    if settings.prosody.web_client:
        web_root = await asyncio.to_thread(write_web_root, params.run_dir / "www", settings.xmpp.domain,
                                           settings.manager_jid)
        params = dataclasses.replace(params, web_root=web_root)
    check_ports_free(params, [("MCP permission", settings.mcp.host, settings.mcp.port)])
    fill_service_secrets(settings)
    prosody = EmbeddedProsody(params, prosody_binary=settings.prosody.binary)
    await prosody.start()
    assert settings.xmpp.admin_password is not None and settings.manager.password is not None
    await prosody.register(settings.xmpp.admin_username, settings.xmpp.domain, settings.xmpp.admin_password.get_secret_value())
    await prosody.register(settings.manager.username, settings.xmpp.domain, settings.manager.password.get_secret_value())
    settings.prosody.service_jids_file = params.effective_service_jids_file
    # Files are taken from this server's uploads only, fetched (and put) over its loopback port.
    if settings.files.upload_url is None and params.upload_url is not None:
        settings.files.upload_url = params.upload_url
        settings.files.local_upload_url = params.local_upload_url
    settings.provisioning.admin_rest_url = params.http_base_url + "/admin_rest"
    endpoints = {"adminRestUrl": settings.provisioning.admin_rest_url, "domain": settings.xmpp.domain,
                 "c2sPort": settings.xmpp.port}
    await asyncio.to_thread(atomic_write_text, params.run_dir / ENDPOINTS_FILE, json.dumps(endpoints) + "\n", 0o644)
    # Our bots trust the certificate Prosody serves (pinned), whoever signed it.
    if settings.xmpp.ca_file is None:
        settings.xmpp.ca_file = certificate.cert_path
    if settings.prosody.public:
        # TLS is required on every interface, loopback included (see embedded_params).
        settings.xmpp.security = "starttls"
        settings.xmpp.verify_tls = True
    return EmbeddedServer(prosody, certificate, settings.prosody.public)


_LOCALPART = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


def default_user_name() -> str:
    name = (os.environ.get("USER") or "").lower()
    return name if _LOCALPART.match(name) and name not in ("root", "admin", "manager") else "me"


async def ensure_human_account(server: EmbeddedServer, settings: Settings, username: str) -> HumanAccount:
    """A first human account for `make run`, its password kept in secrets.json to print again;
    the manager is put into its roster."""
    path = settings.home / SECRETS_FILE
    data = await asyncio.to_thread(_read_json, path)
    users = data.setdefault("users", {})
    if not isinstance(users, dict):
        raise StateError(f"{path}: \"users\" must be a JSON object")
    created = username not in users
    if created:
        users[username] = secrets.token_urlsafe(12)
        await asyncio.to_thread(atomic_write_text, path, json.dumps(data, indent=2) + "\n", 0o600)
    password = str(users[username])
    register_secret(password)
    await server.prosody.register(username, settings.xmpp.domain, password)
    jid = f"{username}@{settings.xmpp.domain}"
    async with admin_provisioner(settings) as provisioner:
        await introduce_manager(provisioner, settings, jid)
    return HumanAccount(jid, password, created)


def admin_provisioner(settings: Settings) -> AdminRestProvisioner:
    """Our mod_admin_rest on the embedded Prosody, as the admin account."""
    assert settings.xmpp.admin_password is not None
    return AdminRestProvisioner(
        settings.admin_rest_url, settings.xmpp.domain, settings.xmpp.admin_jid,
        settings.xmpp.admin_password.get_secret_value(),
    )


async def introduce_manager(provisioner: AdminRestProvisioner, settings: Settings, user_jid: str) -> None:
    await introduce(provisioner, user_jid, settings.manager_jid, MANAGER_CONTACT_NAME)


async def adopt_embedded_endpoints(settings: Settings) -> None:
    """What a running (or last run) embedded server said of itself: its admin API, its domain (`start
    --domain`) and c2s port, for the commands run beside it; what the config or environment sets wins."""
    endpoints = await asyncio.to_thread(_read_json, run_dir(settings) / ENDPOINTS_FILE)
    if settings.provisioning.admin_rest_url is None and isinstance(endpoints.get("adminRestUrl"), str):
        settings.provisioning.admin_rest_url = str(endpoints["adminRestUrl"])
    if "domain" not in settings.xmpp.model_fields_set and isinstance(endpoints.get("domain"), str):
        settings.xmpp.domain = str(endpoints["domain"])
    port = endpoints.get("c2sPort")
    if "port" not in settings.xmpp.model_fields_set and isinstance(port, int):
        settings.xmpp.port = port


async def add_user(settings: Settings, username: str, password: str) -> str | None:
    """`agentchat user add`: create (or reset) an account on the embedded Prosody and put the manager
    into its roster, through the running server's mod_admin_rest.

    Returns None when the manager is in the roster, else why not: the account is then made with
    prosodyctl (the server is stopped, or refused the admin password this process has, as in the
    Docker image when the environment still holds a password the entrypoint replaced).
    """
    params_dir = run_dir(settings)
    config_path = params_dir / "prosody.cfg.lua"
    if not config_path.exists():
        raise StateError(f"no embedded Prosody under {params_dir}: run `agentchat start --embedded-prosody` once first")
    if settings.xmpp.admin_password is None:  # the one the embedded server generated, if any; none is made here
        stored = (await asyncio.to_thread(_read_json, settings.home / SECRETS_FILE)).get("admin_password")
        if isinstance(stored, str) and stored:
            settings.xmpp.admin_password = SecretStr(stored)
    if settings.xmpp.admin_password is None:
        await prosodyctl_register(config_path, username, settings.xmpp.domain, password)
        return "no admin password is known here (xmpp.adminPassword)"
    await adopt_embedded_endpoints(settings)  # where the running server said it listens
    jid = f"{username}@{settings.xmpp.domain}"
    async with admin_provisioner(settings) as provisioner:
        try:
            await provisioner.ping()
        except (AdminRestUnreachable, AdminRestRefused) as exc:
            log.debug("mod_admin_rest not usable, using prosodyctl: %s", exc)
            await prosodyctl_register(config_path, username, settings.xmpp.domain, password)
            if isinstance(exc, AdminRestUnreachable):
                return "the embedded Prosody is not running"
            return f"mod_admin_rest refused {settings.xmpp.admin_jid} (the admin password here is not the server's)"
        try:
            await provisioner.create_account(username, password)
        except AccountExists:
            await provisioner.change_password(username, password)
        await introduce_manager(provisioner, settings, jid)
    return None


def _usable_interfaces(interfaces: list[str]) -> list[str]:
    """The configured interfaces, without "::" on a machine that has no IPv6."""
    usable = [i for i in interfaces if i != "::" or _ipv6_available()]
    if len(usable) < len(interfaces):
        log.info("No IPv6 on this machine: c2s listens on %s only", ", ".join(usable))
    if not usable:
        raise ConfigError(f"prosody.interfaces: none of {interfaces} can be used on this machine")
    return usable


def _ipv6_available() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


def _read_json(path: Path) -> dict[str, object]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise StateError(f"cannot read {path}: {exc}") from None
    return data if isinstance(data, dict) else {}

"""`agentchat runner add|list|remove` on the hub, and `agentchat runner start`'s join on the other machine.

`runner add NAME` creates the runner's account through the hub's provisioner (as `user add` does, through
the running server's mod_admin_rest), records it as a registered runner in the hub's state database, and
prints the one line to run on the other machine: the server to reach, the runner's JID and password, the
hub's JID, and the fingerprint of the certificate the server presents (fetched from the server itself), to
be pinned there. The first `agentchat runner start` with those flags checks the fingerprint against what the
server shows, keeps the certificate as its ``xmpp.caFile`` and the rest in ``runner.json`` (0600) in its
state directory; later starts need no flags.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import shlex
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from agentchat.config import Settings
from agentchat.errors import ConfigError, StateError
from agentchat.provisioning.admin_rest import AdminRestProvisioner
from agentchat.provisioning.base import AccountExists, AccountMissing, Provisioner
from agentchat.runners import protocol as p
from agentchat.runners.store import RunnerRecord, RunnerStore
from agentchat.server.prosody_config import atomic_write_text
from agentchat.store.database import StateStore
from agentchat.xmpp.certificate import CertificateUnavailable, fingerprint_sha256, same_fingerprint, served_certificate

JOIN_FILE = "runner.json"
# The runner's password at its first start, from the environment (kept in runner.json after it).
RUNNER_PASSWORD_ENV = "AGENTCHAT_RUNNER_PASSWORD"
PINNED_CERTIFICATE = "hub.crt"


@dataclass(frozen=True)
class Registered:
    name: str
    jid: str
    password: str
    server: str
    port: int
    hub: str
    fingerprint: str | None
    fingerprint_note: str = ""

    def join_line(self) -> str:
        # The password in the command's environment, not on its command line, where `ps` would show it.
        parts = ["agentchat", "runner", "start", "--server", f"{self.server}:{self.port}", "--jid", self.jid,
                 "--hub", self.hub]  # fmt: skip
        if self.fingerprint:
            parts += ["--fingerprint", self.fingerprint]
        return f"{RUNNER_PASSWORD_ENV}={shlex.quote(self.password)} " + " ".join(shlex.quote(part) for part in parts)


async def _hub_provisioner(settings: Settings) -> Provisioner:
    from agentchat.embedded_setup import _read_json, adopt_embedded_endpoints
    from agentchat.server.embedded import SECRETS_FILE

    if settings.provisioning.method != "admin_rest":
        raise ConfigError("`agentchat runner add` creates the runner's account through mod_admin_rest "
                          "(provisioning.method admin_rest)")  # fmt: skip
    if settings.xmpp.admin_password is None:  # the one the embedded server generated, if any
        stored = (await asyncio.to_thread(_read_json, settings.home / SECRETS_FILE)).get("admin_password")
        if isinstance(stored, str) and stored:
            settings.xmpp.admin_password = SecretStr(stored)
    if settings.xmpp.admin_password is None:
        raise ConfigError("xmpp.adminPassword is not set (and no embedded server's is kept here): set XMPP_ADMIN_PASSWORD")
    await adopt_embedded_endpoints(settings)  # where a running embedded server listens, for which domain
    return AdminRestProvisioner(settings.admin_rest_url, settings.xmpp.domain, settings.xmpp.admin_jid,
                                settings.xmpp.admin_password.get_secret_value())  # fmt: skip


async def add_runner(settings: Settings, name: str, server: str | None, port: int | None) -> Registered:
    """Create (or give a new password to) the runner's account and register it; what to print."""
    try:
        name = p.check_runner_name(name)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    username = p.runner_username(name)
    password = secrets.token_urlsafe(24)
    provisioner = await _hub_provisioner(settings)  # settles the domain, too
    jid = f"{username}@{settings.xmpp.domain}"
    async with provisioner:
        try:
            await provisioner.create_account(username, password)
        except AccountExists:
            await provisioner.change_password(username, password)  # a running runner is logged out: it must join again
    store = StateStore(settings.home / "state.db")
    await store.open()
    try:
        runners = RunnerStore(store)
        await runners.open()
        await runners.add_runner(RunnerRecord(name, jid))
    finally:
        await store.close()
    fingerprint, note = None, ""
    try:
        der = await served_certificate(settings.xmpp.host, settings.xmpp.port, settings.xmpp.domain)
        fingerprint = "SHA256:" + fingerprint_sha256(der)
    except CertificateUnavailable as exc:
        note = f"the server's certificate could not be read ({exc}): the runner then trusts the system's CAs only"
    return Registered(name, jid, password, server or settings.xmpp.domain, port or settings.xmpp.port,
                      settings.manager_jid, fingerprint, note)  # fmt: skip


async def list_runners(settings: Settings) -> list[RunnerRecord]:
    store = StateStore(settings.home / "state.db")
    await store.open()
    try:
        runners = RunnerStore(store)
        await runners.open()
        return await runners.runners()
    finally:
        await store.close()


async def remove_runner(settings: Settings, name: str) -> None:
    """Unregister a runner that runs no agent any more, and delete its account."""
    store = StateStore(settings.home / "state.db")
    await store.open()
    try:
        runners = RunnerStore(store)
        await runners.open()
        known = {r.name: r for r in await runners.runners()}
        if name not in known:
            raise StateError(f"there is no runner {name!r} (see `agentchat runner list`)")
        left = [a.id for a in await runners.agents() if a.runner == name and not a.killed]
        if left:
            raise StateError(f"runner {name} still runs {', '.join(left)}: `kill` them at the manager first")
        async with await _hub_provisioner(settings) as provisioner:
            try:
                await provisioner.delete_account(p.runner_username(name))
            except AccountMissing:
                pass
        await runners.remove_runner(name)
    finally:
        await store.close()


# the other machine: `agentchat runner start --server … --jid … --password … [--fingerprint …]`


async def join(home: Path, server: str, jid: str, password: str, hub: str | None, fingerprint: str | None) -> dict[str, Any]:
    """Check the server's certificate against the fingerprint, pin it, and keep how to connect (runner.json)."""
    host, _, port_text = server.rpartition(":") if ":" in server else (server, "", "5222")
    try:
        port = int(port_text)
    except ValueError:
        raise ConfigError(f"--server: {server!r} is not HOST or HOST:PORT") from None
    local, _, domain = jid.partition("@")
    if not local.startswith(p.ACCOUNT_PREFIX) or not domain:
        raise ConfigError(f"--jid: {jid!r} is not a runner's JID (runner-NAME@domain)")
    data: dict[str, Any] = {
        "xmpp": {"host": host, "port": port, "domain": domain, "security": "starttls", "verifyTls": True},
        "runner": {"jid": jid.lower(), "password": password, "hub": (hub or f"manager@{domain}").lower()},
    }
    if fingerprint:
        try:
            der = await served_certificate(host, port, domain)
        except CertificateUnavailable as exc:
            raise ConfigError(f"cannot check the server's certificate: {exc}") from None
        if not same_fingerprint(fingerprint, der):
            raise ConfigError(f"the server at {host}:{port} shows a certificate with fingerprint SHA256:"
                              f"{fingerprint_sha256(der)}, not {fingerprint}: refusing to connect (is something in "
                              "between? or was the hub's certificate renewed: run `agentchat runner add` again)")  # fmt: skip
        pinned = home / "tls" / PINNED_CERTIFICATE
        await asyncio.to_thread(atomic_write_text, pinned, ssl.DER_cert_to_PEM_cert(der), 0o644)
        data["xmpp"]["caFile"] = str(pinned)
    await asyncio.to_thread(atomic_write_text, home / JOIN_FILE, json.dumps(data, indent=2) + "\n", 0o600)
    return data


def joined(home: Path) -> dict[str, Any]:
    """What the last join kept; ConfigError if this machine never joined."""
    path = home / JOIN_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"this machine has not joined a hub ({path} is missing): run the line "
                          "`agentchat runner add NAME` printed on the hub") from None  # fmt: skip
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a JSON object")
    return data


def overrides_from(data: dict[str, Any]) -> dict[str, Any]:
    """runner.json as load_settings overrides (dotted field -> value)."""
    fields = {"xmpp": ("host", "port", "domain", "security", "verify_tls", "ca_file"), "runner": ("jid", "password", "hub")}
    camel = {"verify_tls": "verifyTls", "ca_file": "caFile"}
    found: dict[str, Any] = {}
    for section, names in fields.items():
        for name in names:
            value = data.get(section, {}).get(camel.get(name, name))
            if value is not None:
                found[f"{section}.{name}"] = value
    return found


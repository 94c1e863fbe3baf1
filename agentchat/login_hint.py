"""The login hint `agentchat start --embedded-prosody` prints: what to type in a client, what its
certificate prompt shows, and in public mode the DNS records and ports a phone needs."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from agentchat.config import Settings
from agentchat.embedded_setup import EmbeddedServer
from agentchat.server.dns_records import dns_records, is_reachable_from_internet, local_addresses
from agentchat.server.prosody_config import ProsodyConfigParams
from agentchat.server.web_client import missing_hint, web_client_url


def login_hint(settings: Settings, server: EmbeddedServer, jid: str, password: str) -> str:
    """The hint, with the user's own credentials: for the terminal, never for the log.

    Blocking (it lists this machine's addresses): call it through a thread.
    """
    certificate = server.certificate
    params = server.params
    lines = ["", f"  Log in from Conversations, Gajim, Dino or Profanity as {jid}", f"  password: {password}"]
    tls_ports = f" (direct TLS: port {params.c2s_direct_tls_port})" if params.c2s_direct_tls_port else ""
    if server.public:
        lines.append(f"  server {settings.xmpp.domain} port {settings.xmpp.port}, STARTTLS required{tls_ports}")
    else:
        lines.append(f"  server {settings.xmpp.host} port {settings.xmpp.port}, STARTTLS{tls_ports} "
                     "(plaintext is allowed on loopback only)")
    names = ", ".join(certificate.names)
    if certificate.self_signed:
        lines.append(f"  certificate: self-signed for {names}: when the client asks whether to trust it,")
        lines.append("  check that its fingerprint is")
    else:
        lines.append(f"  certificate: {certificate.cert_path} for {names}, fingerprint")
    lines.append(f"    SHA-256 {certificate.fingerprint_sha256}")
    lines.append(f"    SHA-1   {certificate.fingerprint_sha1} (Profanity shows this one, lower case, no colons)")
    lines.append(f"  then send `help` to {settings.manager_jid} (in your contacts, group \"agentchat\")")
    lines.append(web_client_line(params, certificate.self_signed))
    lines.append(f"  more accounts, from another terminal: {command_name()} user add NAME")
    if server.public:
        addresses = local_addresses(params.c2s_interfaces)
        ports = [settings.xmpp.port] + ([params.c2s_direct_tls_port] if params.c2s_direct_tls_port else [])
        records = dns_records(settings.xmpp.domain, addresses, settings.xmpp.port, params.c2s_direct_tls_port)
        if params.https_port is not None:
            ports.append(params.https_port)  # HTTPS: the web client, and files to and from phones
        width = max(len(record.name) for record in records)
        where = ", ".join({"*": "every IPv4 address", "::": "every IPv6 address"}.get(i, i) for i in params.c2s_interfaces)
        lines += ["", f"  Serving phones on {where} (TLS required), "
                      f"TCP port{'s' if len(ports) > 1 else ''} {_and(ports)}.",
                  f"  DNS records for {settings.xmpp.domain}, at your DNS provider:"]
        lines += [f"    {record.zone_line(width)}" for record in records]
        hidden = [str(a) for a in addresses if not is_reachable_from_internet(a)]
        opened = _and(ports)
        if hidden:
            lines.append(f"  {', '.join(hidden)} cannot be reached from the internet: put your router's public")
            lines.append(f"  address in the A record and forward TCP {opened} to this machine.")
        lines.append(f"  Open TCP {opened} in the firewall.")
    return "\n".join(lines) + "\n"


def _and(items: list[int]) -> str:
    words = [str(item) for item in items]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def web_client_line(params: ProsodyConfigParams, self_signed: bool) -> str:
    """Where the browser client is, or why there is none."""
    url = web_client_url(params)
    if url is None:
        return f"  web client: {missing_hint()}"
    trust = " (the browser asks to trust the same certificate)" if url.startswith("https:") and self_signed else ""
    return f"  or in a browser, nothing to install: {url} with the same account{trust}"


def command_name() -> str:
    """How to run this very agentchat from another terminal: `agentchat` if that is what PATH finds,
    else the full path of the virtualenv's script (`make run` does not change PATH)."""
    script = Path(sys.executable).parent / "agentchat"
    found = shutil.which("agentchat")
    if found and script.exists() and Path(found).resolve() == script.resolve():
        return "agentchat"
    if script.exists():
        return str(script)
    return f"{sys.executable} -m agentchat"

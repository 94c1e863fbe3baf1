"""A user's client against the running image, as `make docker-check` runs it from another network
namespace: STARTTLS with certificate verification against the image's certificate, then `help`.

    AGENTCHAT_PROBE_PASSWORD=... python -m tests.docker.xmpp_probe --address 10.200.0.1 --port 5222 \
        --jid alice@agentchat.test --ca image-cert.pem --manager manager@agentchat.test

First the same login with the system's CAs only must fail (so verification is really on), then
the login trusting the copied certificate must succeed, with the server presenting exactly that
certificate. Prints one JSON object on stdout; exit status 0 when every step passed, else 1 and
the reason on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import ssl
import sys
import time
from pathlib import Path

from tests.harness.clients import LoginFailed, UserClient

PASSWORD_ENV = "AGENTCHAT_PROBE_PASSWORD"
LOGIN_TIMEOUT = 15.0
REFUSED_TIMEOUT = 10.0
HELP_TIMEOUT = 30.0


class ProbeFailed(Exception):
    """A step a user depends on did not happen; the message says which."""


def certificate_fingerprint(der: bytes) -> str:
    digest = hashlib.sha256(der).hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def starttls_client(jid: str, password: str, address: str, port: int, context: ssl.SSLContext) -> UserClient:
    """STARTTLS only (no plaintext, no direct TLS), verifying the server as ``context`` says."""
    client = UserClient(jid, password, address, port)
    client.xmpp.enable_plaintext = False
    client.xmpp.enable_starttls = True
    client.xmpp.enable_direct_tls = False
    client.xmpp.ssl_context = context
    return client


async def refused_without_the_certificate(jid: str, password: str, address: str, port: int) -> str:
    """With the system's CAs only, the self-signed certificate must stop the login."""
    client = starttls_client(jid, password, address, port, ssl.create_default_context())
    try:
        await client.connect(timeout=REFUSED_TIMEOUT)
    except LoginFailed as exc:
        return str(exc)
    finally:
        await client.disconnect()
    raise ProbeFailed("logged in although the system's CAs do not know the image's certificate")


async def probe(args: argparse.Namespace, password: str) -> dict[str, object]:
    expected = certificate_fingerprint(ssl.PEM_cert_to_DER_cert(Path(args.ca).read_text()))
    refused = await refused_without_the_certificate(args.jid, password, args.address, args.port)

    context = ssl.create_default_context(cafile=args.ca)  # CERT_REQUIRED, hostname = the JID's domain
    client = starttls_client(args.jid, password, args.address, args.port, context)
    started = time.monotonic()
    try:
        try:
            await client.connect(timeout=LOGIN_TIMEOUT)
        except LoginFailed as exc:
            raise ProbeFailed(f"STARTTLS login trusting the image's certificate failed: {exc}") from None
        logged_in = time.monotonic()
        transport = client.xmpp.transport
        tls = transport.get_extra_info("ssl_object") if transport is not None else None
        if not isinstance(tls, ssl.SSLObject):
            raise ProbeFailed("the session is not encrypted")
        presented = tls.getpeercert(binary_form=True)
        if presented is None or certificate_fingerprint(presented) != expected:
            raise ProbeFailed("the server presented another certificate than the image's")
        await client.send(args.manager, "help")
        try:
            reply = await client.expect("new", timeout=HELP_TIMEOUT, from_=args.manager)
        except TimeoutError as exc:
            raise ProbeFailed(f"no help from {args.manager}: {exc}") from None
        answered = time.monotonic()
    finally:
        await client.disconnect()
    return {
        "refused_with_system_cas": refused,
        "tls_version": tls.version(),
        "cipher": (tls.cipher() or ("?",))[0],
        "fingerprint": expected,
        "login_s": round(logged_in - started, 3),
        "help_s": round(answered - logged_in, 3),
        "help_first_line": reply.body.splitlines()[0] if reply.body else "",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--address", required=True, help="the server's address (no DNS here)")
    parser.add_argument("--port", type=int, default=5222)
    parser.add_argument("--jid", required=True)
    parser.add_argument("--ca", required=True, help="the image's certificate, PEM")
    parser.add_argument("--manager", required=True, help="the manager's JID")
    args = parser.parse_args()
    password = os.environ.get(PASSWORD_ENV)
    if not password:
        print(f"xmpp_probe: {PASSWORD_ENV} is not set", file=sys.stderr)
        return 1
    try:
        result = asyncio.run(probe(args, password))
    except ProbeFailed as exc:
        print(f"xmpp_probe: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())

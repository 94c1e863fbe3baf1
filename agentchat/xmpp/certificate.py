"""The certificate an XMPP server presents, fetched over STARTTLS (RFC 6120 §5) without trusting it yet.

What a runner pins when it joins its hub: the fingerprint `agentchat runner add` printed must be the one
of the certificate this connection sees, and that certificate is then the runner's ``xmpp.caFile``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ssl

from agentchat.errors import AgentChatError

_FEATURES_END = b"</stream:features>"


class CertificateUnavailable(AgentChatError):
    """The server could not be reached, or offered no TLS."""


def fingerprint_sha256(der: bytes) -> str:
    """"AB:CD:…", as agentchat.server.tls and clients' trust prompts write it."""
    digest = hashlib.sha256(der).hexdigest().upper()
    return ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))


def same_fingerprint(given: str, der: bytes) -> bool:
    """Whether ``given`` (any case, with or without colons, an optional "SHA256:" prefix) names ``der``."""
    text = given.strip().upper().removeprefix("SHA256:").removeprefix("SHA-256:").replace(":", "").replace(" ", "")
    return text == hashlib.sha256(der).hexdigest().upper()


async def served_certificate(host: str, port: int, domain: str, timeout: float = 10.0) -> bytes:
    """The leaf certificate (DER) the server at ``host:port`` shows for ``domain`` after STARTTLS."""
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(host, port)
            try:
                writer.write((f"<?xml version='1.0'?><stream:stream to='{domain}' version='1.0' xmlns='jabber:client' "
                              "xmlns:stream='http://etherx.jabber.org/streams'>").encode())  # fmt: skip
                features = await _read_until(reader, _FEATURES_END)
                if b"urn:ietf:params:xml:ns:xmpp-tls" not in features:
                    raise CertificateUnavailable(f"{host}:{port} offers no STARTTLS")
                writer.write(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
                answer = await _read_until(reader, b">")
                if b"proceed" not in answer:
                    raise CertificateUnavailable(f"{host}:{port} refused STARTTLS: {answer[:200]!r}")
                context = ssl.create_default_context()
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE  # not trusted yet: the caller compares its fingerprint
                await writer.start_tls(context, server_hostname=domain)
                ssl_object = writer.get_extra_info("ssl_object")
                der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
                if not der:
                    raise CertificateUnavailable(f"{host}:{port} showed no certificate")
                return bytes(der)
            finally:
                writer.close()
                with contextlib.suppress(OSError, ssl.SSLError):
                    await writer.wait_closed()
    except TimeoutError:
        raise CertificateUnavailable(f"{host}:{port} did not complete STARTTLS within {timeout:g} s") from None
    except (OSError, ssl.SSLError) as exc:
        raise CertificateUnavailable(f"cannot reach {host}:{port}: {exc}") from None


async def _read_until(reader: asyncio.StreamReader, marker: bytes) -> bytes:
    received = b""
    while marker not in received:
        chunk = await reader.read(4096)
        if not chunk:
            raise CertificateUnavailable(f"the server closed the connection: {received[-200:]!r}")
        received += chunk
    return received

"""A second, independent XMPP client library for interop tests: aioxmpp (pyOpenSSL underneath).

Logs in as a phone would: STARTTLS only (no plaintext fallback), the server's certificate verified
(PKIX chain to ``ca_file`` and the JID's domain), SASL over the encrypted stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

import aioxmpp
import aioxmpp.connector
import aioxmpp.dispatcher
import aioxmpp.security_layer
import OpenSSL.SSL
from cryptography import x509
from cryptography.x509.oid import NameOID

log = logging.getLogger(__name__)


def _names_of(certificate: OpenSSL.crypto.X509) -> dict[str, object]:
    """aioxmpp 0.13.3 reads the subjectAltName with ``X509.get_extension``, which pyOpenSSL removed
    (the pyOpenSSL that today's cryptography needs has none): the same structure, read with
    cryptography, for aioxmpp's own hostname check (``ssl.match_hostname``)."""
    leaf = certificate.to_cryptography()
    common = [str(a.value) for a in leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    result: dict[str, object] = {"subject": ((("commonName", common[0] if common else ""),),)}
    try:
        names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return result
    result["subjectAltName"] = [("DNS", name) for name in names.get_values_for_type(x509.DNSName)]
    return result


aioxmpp.security_layer.extract_python_dict_from_x509 = _names_of


class AioxmppClient:
    """One account: ``await connect()``, ``await send(...)``, ``await expect("text")``, ``await disconnect()``."""

    def __init__(self, jid: str, password: str, host: str, port: int, *, ca_file: Path) -> None:
        self.jid = aioxmpp.JID.fromstr(jid)
        self.host = host
        self.port = port

        def ssl_context() -> OpenSSL.SSL.Context:
            context = aioxmpp.security_layer.default_ssl_context()
            context.load_verify_locations(str(ca_file))
            return context

        security = aioxmpp.make_security_layer(password, ssl_context_factory=ssl_context)
        self.client = aioxmpp.Client(
            self.jid,
            security,
            # host and port, never the JID's DNS records; STARTTLS is the only way in
            override_peer=[(host, port, aioxmpp.connector.STARTTLSConnector())],
            logger=log,
        )
        self.messages: list[tuple[str, str]] = []  # (from, body)
        self._arrived = asyncio.Condition()
        self._notifications: set[asyncio.Task[None]] = set()
        self._session: contextlib.AbstractAsyncContextManager[object] | None = None
        self.client.summon(aioxmpp.dispatcher.SimpleMessageDispatcher).register_callback(
            aioxmpp.MessageType.CHAT, None, self._on_message
        )

    async def connect(self, timeout: float = 10.0) -> None:
        """Log in and become available; raises what aioxmpp raised (TLS, SASL) or TimeoutError."""
        self._session = self.client.connected()
        await asyncio.wait_for(self._session.__aenter__(), timeout)
        # Available, or chats to the bare JID wait in offline storage (G13).
        self.client.summon(aioxmpp.PresenceServer).set_presence(aioxmpp.PresenceState(True))

    async def send(self, to: str, body: str) -> None:
        message = aioxmpp.Message(to=aioxmpp.JID.fromstr(to), type_=aioxmpp.MessageType.CHAT)
        message.body[None] = body
        await self.client.send(message)

    async def expect(self, text: str, timeout: float = 10.0) -> str:
        """The first message received whose body contains ``text``."""
        def found() -> str | None:
            return next((body for _, body in self.messages if text in body), None)

        try:
            async with asyncio.timeout(timeout):
                async with self._arrived:
                    await self._arrived.wait_for(lambda: found() is not None)
        except TimeoutError:
            raise TimeoutError(f"{self.jid}: no message with {text!r} in {timeout:g} s; got {self.messages}") from None
        result = found()
        assert result is not None
        return result

    async def disconnect(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            with contextlib.suppress(Exception):
                await asyncio.wait_for(session.__aexit__(None, None, None), 5)

    def _on_message(self, message: aioxmpp.Message) -> None:
        body = message.body.any() if message.body else ""
        if not body:
            return
        self.messages.append((str(message.from_), str(body)))

        async def notify() -> None:
            async with self._arrived:
                self._arrived.notify_all()

        task = asyncio.get_running_loop().create_task(notify())
        self._notifications.add(task)
        task.add_done_callback(self._notifications.discard)

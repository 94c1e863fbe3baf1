"""TLS that stock clients accept, on `agentchat start --embedded-prosody` as a real process:
the printed fingerprint is the served certificate's, STARTTLS with verification works for slixmpp
and aioxmpp, a client that cannot verify it is refused at once, and a busy port is one clear error."""

from __future__ import annotations

import hashlib
import json
import socket
import stat
import time
from pathlib import Path

import pytest
from cryptography import x509

from tests.harness.aioxmpp_client import AioxmppClient
from tests.harness.certs import local_ca
from tests.harness.clients import LoginFailed, UserClient
from tests.harness.prosody import free_ports
from tests.support.embedded_process import launch_embedded, start_embedded


def sha256_colons(der: bytes) -> str:
    digest = hashlib.sha256(der).hexdigest().upper()
    return ":".join(digest[i:i + 2] for i in range(0, 64, 2))


async def test_clients_verify_the_generated_certificate_whose_fingerprint_was_printed(tmp_path: Path) -> None:
    running = await start_embedded(tmp_path)
    try:
        jid, password = running.login()
        cert_path, key_path = tmp_path / "tls" / "localhost.crt", tmp_path / "tls" / "localhost.key"
        assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
        certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert names.get_values_for_type(x509.DNSName) == ["localhost", "*.localhost"]
        assert "self-signed for localhost, *.localhost" in running.text
        assert "STARTTLS (plaintext is allowed on loopback only)" in running.text

        # slixmpp, STARTTLS only, trusting that one certificate: what it was shown is what was printed.
        started = time.monotonic()
        alice = UserClient(jid, password, "127.0.0.1", running.port, ca_file=cert_path)
        await alice.connect()
        print(f"STARTTLS login with verification: {(time.monotonic() - started) * 1000:.0f} ms")
        assert alice.server_certificate is not None
        assert sha256_colons(alice.server_certificate) == running.fingerprint()
        await alice.send("manager@localhost", "help")
        assert "Commands" in (await alice.expect("Commands")).body
        await alice.disconnect()

        # aioxmpp (pyOpenSSL, its own PKIX and name checks), STARTTLS only.
        other = AioxmppClient(jid, password, "127.0.0.1", running.port, ca_file=cert_path)
        await other.connect()
        try:
            await other.send("manager@localhost", "help")
            assert "Commands" in await other.expect("Commands")
        finally:
            await other.disconnect()

        # A client that does not trust it is refused during the handshake: no hang, no plaintext fallback.
        started = time.monotonic()
        with pytest.raises(LoginFailed, match="certificate was refused|CERTIFICATE_VERIFY_FAILED"):
            await UserClient(jid, password, "127.0.0.1", running.port, ca_file=local_ca().cert_path).connect(timeout=10)
        assert time.monotonic() - started < 3
        # Plaintext is still allowed here, on loopback (the service's own bots use it).
        plain = UserClient(jid, password, "127.0.0.1", running.port, security="plain")
        await plain.connect()
        await plain.disconnect()
    finally:
        assert await running.stop() == 0


async def test_a_certificate_of_ones_own_is_served_and_trusted_through_its_ca(tmp_path: Path) -> None:
    cert, key = local_ca().issue("localhost", tmp_path / "mine")
    (tmp_path / "config.json").write_text(json.dumps({"prosody": {"certificate": str(cert), "key": str(key)}}))
    running = await start_embedded(tmp_path)
    try:
        jid, password = running.login()
        assert f"certificate: {cert} for localhost, *.localhost" in running.text
        # Trusted through the CA that signed it, as a real certificate is through the system's CAs.
        alice = UserClient(jid, password, "127.0.0.1", running.port, ca_file=local_ca().cert_path)
        await alice.connect()
        assert alice.server_certificate is not None
        assert sha256_colons(alice.server_certificate) == running.fingerprint()
        await alice.disconnect()
        assert not (tmp_path / "tls").exists()  # nothing generated
    finally:
        assert await running.stop() == 0


@pytest.mark.parametrize("which", ["c2s", "Prosody HTTP", "MCP permission"])
async def test_a_busy_port_is_one_clear_error_and_no_login_hint(tmp_path: Path, which: str) -> None:
    ports = free_ports(3)
    busy = ports[["c2s", "Prosody HTTP", "MCP permission"].index(which)]
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", busy))
        blocker.listen()
        running = await launch_embedded(tmp_path, ports=(ports[0], ports[1], ports[2]))
        code = await running.exited()
    assert code == 1, running.text
    errors = [line for line in running.text.splitlines() if line.startswith("agentchat:")]
    assert errors == [f"agentchat: cannot start: the {which} port 127.0.0.1:{busy} is not available "
                      "(Address already in use); another program (another Prosody or agentchat?) uses it: "
                      "stop it or choose another port"], running.text
    assert "Log in from" not in running.text and "Traceback" not in running.text

"""GnuTLS, the TLS library under Dino (through glib-networking): does it trust the generated
self-signed certificate once that certificate is in its trust list (Dino has no trust prompt:
README tells Dino users to add it to the system store)? Checked with gnutls-cli over STARTTLS."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentchat.server.tls import ServerCertificate, ensure_certificate
from tests.harness.prosody import ProsodyServer

pytestmark = pytest.mark.skipif(shutil.which("gnutls-cli") is None,
                                reason="needs gnutls-cli (Debian's gnutls-bin; `make test` installs it with apt)")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[ProsodyServer, ServerCertificate]]:
    certificate = ensure_certificate("localhost", tmp_path / "tls")  # what --embedded-prosody generates
    with ProsodyServer.started(tmp_path / "run", tls_cert=certificate.cert_path, tls_key=certificate.key_path) as server:
        yield server, certificate


async def gnutls_status(port: int, ca_file: str) -> str:
    process = await asyncio.create_subprocess_exec(
        "gnutls-cli", "--starttls-proto=xmpp", f"--x509cafile={ca_file}", "--verify-hostname=localhost",
        "-p", str(port), "localhost",
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 20)
    return next((line.strip() for line in output.decode(errors="replace").splitlines() if "- Status:" in line),
                output.decode(errors="replace")[-500:])


async def test_gnutls_trusts_the_generated_certificate_from_its_trust_list(served) -> None:
    server, certificate = served
    assert await gnutls_status(server.c2s_port, str(certificate.cert_path)) == "- Status: The certificate is trusted."
    # Without it (the system's CAs only), the same handshake is refused: the check above is real.
    untrusted = await gnutls_status(server.c2s_port, "/etc/ssl/certs/ca-certificates.crt")
    assert "NOT trusted" in untrusted

"""The web client's files and the Prosody config that serves them: over plain http on loopback, over
HTTPS with the c2s certificate when public, WebSocket and BOSH next to it, uploads with limits."""

from __future__ import annotations

import re
import ssl
from pathlib import Path

import aiohttp
import pytest

from agentchat.server.prosody_config import ProsodyConfigParams, render_prosody_config
from agentchat.server.web_client import CONVERSE_VERSION, write_web_root
from tests.harness.certs import local_ca
from tests.harness.prosody import ProsodyServer

REPO = Path(__file__).resolve().parents[2]


def test_the_makefile_fetches_the_version_the_page_is_written_for() -> None:
    assert f"CONVERSE_VERSION := {CONVERSE_VERSION}\n" in (REPO / "Makefile").read_text()


def test_the_page_is_written_with_its_settings_and_converse_linked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dist = tmp_path / "dist"
    dist.mkdir()
    (dist / "converse.min.js").write_text("// converse")
    root = write_web_root(tmp_path / "www", "chat.example.org", "manager@chat.example.org", dist)
    assert root == tmp_path / "www"
    assert (root / "settings.js").read_text() == (
        'window.AGENTCHAT_SETTINGS = {"domain": "chat.example.org", "manager": "manager@chat.example.org"};\n')
    assert (root / "dist").resolve() == dist
    page = (root / "index.html").read_text()
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', page)
    assert csp is not None and "default-src 'self'" in csp.group(1) and "http" not in csp.group(1)
    assert '"converse-omemo"' in (root / "agentchat.js").read_text()
    # Again (every start): the same link is kept.
    assert write_web_root(tmp_path / "www", "chat.example.org", "manager@chat.example.org", dist) == root
    # Without Converse (no npm at make install): no page, nothing written.
    monkeypatch.setattr("agentchat.server.web_client.converse_dist_dir", lambda: None)
    assert write_web_root(tmp_path / "none", "x.org", "manager@x.org") is None
    assert not (tmp_path / "none").exists()


def test_loopback_serves_plain_http_on_localhost_and_public_mode_https_under_the_domain(tmp_path: Path) -> None:
    local = ProsodyConfigParams(domain="localhost", run_dir=tmp_path, http_port=5280, web_root=tmp_path / "www")
    text = render_prosody_config(local)
    assert 'http_external_url = "http://localhost:5280/"' in text
    assert 'http_paths = { files = "/"; bosh = "/http-bind"; websocket = "/xmpp-websocket" }' in text
    assert '"websocket";' in text and '"bosh";' in text and '"http_files";' in text
    assert "https_ports = {  }" in text and "consider_websocket_secure" not in text
    assert "http_file_share_size_limit = 10485760" in text and "http_file_share_daily_quota = 104857600" in text
    assert local.upload_url == "http://localhost:5280/file_share/"
    assert local.local_upload_url == "http://127.0.0.1:5280/file_share/"

    cert, key = tmp_path / "c.crt", tmp_path / "c.key"
    public = ProsodyConfigParams(domain="chat.example.org", run_dir=tmp_path, c2s_interfaces=("*",), tls_cert=cert,
                                 tls_key=key, allow_plaintext=False, https_port=5281, web_root=tmp_path / "www")
    text = render_prosody_config(public)
    assert 'https_interfaces = { "*" }' in text and "https_ports = { 5281 }" in text
    assert f'https_ssl = {{ certificate = "{cert}"; key = "{key}" }}' in text
    assert 'http_interfaces = { "127.0.0.1" }' in text  # mod_admin_rest's plain port stays local
    assert 'http_external_url = "https://chat.example.org:5281/"' in text
    assert "consider_websocket_secure = true" in text  # TLS is required: plain ws only on loopback
    assert public.local_upload_url == "http://127.0.0.1:5280/file_share/"


async def test_prosody_serves_the_page_over_https_with_the_c2s_certificate(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    dist.mkdir()
    (dist / "converse.min.js").write_text("// converse")
    root = write_web_root(tmp_path / "www", "localhost", "manager@localhost", dist)
    from tests.harness.prosody import free_ports

    https_port, = free_ports(1)
    server = ProsodyServer.create(run_dir=tmp_path / "run", web_root=root, https_port=https_port,
                                  https_interfaces=("127.0.0.1",))
    server.start_blocking()
    try:
        context = ssl.create_default_context(cafile=str(local_ca().cert_path))
        async with aiohttp.ClientSession() as session:
            async with session.get(f"https://localhost:{https_port}/", ssl=context) as response:
                assert response.status == 200
                assert "Content-Security-Policy" in await response.text()
            async with session.get(f"https://localhost:{https_port}/dist/converse.min.js", ssl=context) as response:
                assert await response.text() == "// converse"
            async with session.get(f"http://127.0.0.1:{server.http_port}/xmpp-websocket") as response:
                assert response.status == 200 and "WebSocket" in await response.text()
            async with session.get(f"http://127.0.0.1:{server.http_port}/http-bind") as response:
                assert response.status == 200 and "BOSH" in await response.text()
    finally:
        server.cleanup()
    with pytest.raises(Exception):
        ProsodyConfigParams(domain="localhost", run_dir=tmp_path, https_port=5281)  # HTTPS needs the certificate

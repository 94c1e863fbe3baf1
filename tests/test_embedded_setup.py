"""What --embedded-prosody asks of Prosody, loopback and public, before anything starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentchat.config import load_settings
from agentchat.embedded_setup import embedded_params, server_certificate
from agentchat.errors import ConfigError


def settings_for(tmp_path: Path, **prosody: object):  # type: ignore[no-untyped-def]
    overrides = {f"prosody.{key}": value for key, value in prosody.items()}
    return load_settings(overrides={"xmpp.domain": "chat.example.org", **overrides},
                         environ={"AGENTCHAT_HOME": str(tmp_path)}, dotenv_files=[])


def test_loopback_by_default_with_plaintext_and_a_certificate(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    params = embedded_params(settings, server_certificate(settings))
    assert params.c2s_interfaces == ("127.0.0.1",) and params.allow_plaintext
    assert params.tls_cert == tmp_path / "tls" / "chat.example.org.crt"


def test_public_requires_tls_everywhere_and_keeps_loopback_for_the_bots(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, public=True, interfaces=["100.101.102.103"], direct_tls_port=5223)
    params = embedded_params(settings, server_certificate(settings))
    assert params.c2s_interfaces == ("100.101.102.103", "127.0.0.1")
    assert not params.allow_plaintext and params.c2s_direct_tls_port == 5223


def test_public_needs_a_real_domain(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, public=True)
    settings.xmpp.domain = "localhost"
    with pytest.raises(ConfigError, match="--public serves phones"):
        embedded_params(settings, server_certificate(settings))


def test_the_service_reaches_its_embedded_server_over_loopback_only(tmp_path: Path) -> None:
    settings = load_settings(overrides={"xmpp.host": "chat.example.org"}, environ={"AGENTCHAT_HOME": str(tmp_path)},
                             dotenv_files=[])
    with pytest.raises(ConfigError, match="over loopback"):
        embedded_params(settings, server_certificate(settings))


def test_the_human_rate_reaches_prosodys_limits(tmp_path: Path) -> None:
    from agentchat.server.prosody_config import write_prosody_config

    settings = settings_for(tmp_path, humanRate="256kb/s")
    params = embedded_params(settings, server_certificate(settings))
    written = Path(write_prosody_config(params)).read_text(encoding="utf-8")
    assert 'c2s = { rate = "256kb/s"; burst = "2s" }' in written
    # People get 1 MB a second unless told otherwise; a rate that is not one is refused by name.
    default = embedded_params(settings_for(tmp_path), server_certificate(settings))
    assert default.c2s_rate == "1mb/s"
    with pytest.raises(ConfigError, match=r"humanRate.*not a rate"):
        settings_for(tmp_path, humanRate="fast")

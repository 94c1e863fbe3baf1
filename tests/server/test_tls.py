"""The certificate the embedded Prosody serves: generated once, kept, renewed; the user's own or
Let's Encrypt's checked before Prosody ever sees it."""

from __future__ import annotations

import datetime as dt
import stat
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agentchat.errors import ConfigError
from agentchat.server.tls import GENERATED_VALIDITY, ensure_certificate, name_matches
from tests.harness.certs import local_ca

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)


def test_a_generated_certificate_is_made_once_and_kept(tmp_path: Path) -> None:
    first = ensure_certificate("chat.example.org", tmp_path / "tls", now=NOW)
    assert first.source == "generated" and first.self_signed
    assert first.names == ("chat.example.org", "*.chat.example.org")
    assert first.covers("upload.chat.example.org") and not first.covers("a.b.chat.example.org")
    assert stat.S_IMODE(first.key_path.stat().st_mode) == 0o600
    assert first.not_after - NOW <= GENERATED_VALIDITY
    assert len(first.fingerprint_sha256.split(":")) == 32
    assert ensure_certificate("chat.example.org", tmp_path / "tls", now=NOW + dt.timedelta(days=100)) == first
    assert sorted(p.name for p in (tmp_path / "tls").iterdir()) == ["chat.example.org.crt", "chat.example.org.key"]


def test_a_generated_certificate_is_replaced_before_it_ends_or_when_broken(tmp_path: Path) -> None:
    first = ensure_certificate("localhost", tmp_path, now=NOW)
    renewed = ensure_certificate("localhost", tmp_path, now=first.not_after - dt.timedelta(days=10))
    assert renewed.fingerprint_sha256 != first.fingerprint_sha256
    renewed.key_path.write_text("not a key")
    repaired = ensure_certificate("localhost", tmp_path, now=NOW)
    assert repaired.fingerprint_sha256 not in (first.fingerprint_sha256, renewed.fingerprint_sha256)


def test_a_configured_certificate_is_used_as_it_is(tmp_path: Path) -> None:
    cert, key = local_ca().issue("chat.example.org", tmp_path / "mine")
    chosen = ensure_certificate("chat.example.org", tmp_path / "tls", certificate=cert, key=key)
    assert (chosen.source, chosen.cert_path, chosen.self_signed) == ("configured", cert, False)
    assert not (tmp_path / "tls").exists()


def test_a_lets_encrypt_live_directory_is_read_as_certbot_writes_it(tmp_path: Path) -> None:
    live = tmp_path / "live" / "chat.example.org"
    cert, key = local_ca().issue("chat.example.org", tmp_path / "archive")
    live.mkdir(parents=True)
    (live / "fullchain.pem").symlink_to(cert)  # certbot's live/ holds symlinks into archive/
    (live / "privkey.pem").symlink_to(key)
    chosen = ensure_certificate("chat.example.org", tmp_path / "tls", letsencrypt_dir=live)
    assert chosen.source == "letsencrypt" and chosen.cert_path == live / "fullchain.pem"


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("other domain", "is for other.example, \\*.other.example, not for the XMPP domain chat.example.org"),
        ("wrong key", "does not belong to the certificate"),
        ("only cert", "go together"),
        ("missing", "cannot read"),
        ("both", "not both"),
        ("not pem", "holds no PEM certificate"),
    ],
)
def test_an_unusable_certificate_is_one_clear_config_error(tmp_path: Path, case: str, message: str) -> None:
    cert, key = local_ca().issue("chat.example.org", tmp_path / "a")
    other_cert, other_key = local_ca().issue("other.example", tmp_path / "b")
    arguments: dict[str, Path | None] = {
        "other domain": {"certificate": other_cert, "key": other_key},
        "wrong key": {"certificate": cert, "key": other_key},
        "only cert": {"certificate": cert},
        "missing": {"certificate": tmp_path / "nope.pem", "key": key},
        "both": {"certificate": cert, "key": key, "letsencrypt_dir": tmp_path},
        "not pem": {"certificate": key, "key": key},
    }[case]  # type: ignore[assignment]
    with pytest.raises(ConfigError, match=message):
        ensure_certificate("chat.example.org", tmp_path / "tls", **arguments)  # type: ignore[arg-type]


@given(st.from_regex(r"[a-z0-9]{1,10}(\.[a-z0-9]{1,10}){0,3}", fullmatch=True),
       st.from_regex(r"[a-z0-9]{1,10}(\.[a-z0-9]{1,10}){0,3}", fullmatch=True))
def test_a_wildcard_covers_exactly_one_label(label: str, domain: str) -> None:
    assert name_matches(f"*.{domain}", f"{label}.{domain}") == ("." not in label)
    assert not name_matches(f"*.{domain}", domain)
    assert name_matches(domain, domain.upper())

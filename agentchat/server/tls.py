"""The embedded Prosody's TLS certificate: generated once (self-signed for the domain), the user's own,
or a Let's Encrypt live directory. One code path for all three; X.509 through ``cryptography``.

A generated certificate names the domain and ``*.domain`` (so ``upload.DOMAIN`` or ``rooms.DOMAIN``
are covered later), lives under ``$AGENTCHAT_HOME/tls/`` with its key at mode 0600, and is replaced
before it expires. Its SHA-256 fingerprint is what a client shows when it asks to trust it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from agentchat.errors import ConfigError, ProsodyError

log = logging.getLogger(__name__)

CertificateSource = Literal["generated", "configured", "letsencrypt"]

# Apple's clients refuse TLS server certificates valid for longer than 825 days, trusted by hand or not.
GENERATED_VALIDITY = dt.timedelta(days=825)
# A generated certificate this close to its end is replaced at start (clients then ask to trust the new one).
RENEW_BEFORE = dt.timedelta(days=30)
LETSENCRYPT_CERT = "fullchain.pem"
LETSENCRYPT_KEY = "privkey.pem"


@dataclass(frozen=True)
class ServerCertificate:
    """The certificate Prosody serves, as a user and a client see it."""

    cert_path: Path
    key_path: Path
    source: CertificateSource
    # SHA-256 of the leaf certificate (DER), "AB:CD:…": what clients show in their trust prompt.
    fingerprint_sha256: str
    # SHA-1 of the same, for clients that show only that one (Profanity 0.13).
    fingerprint_sha1: str
    # The DNS names (subjectAltName) the certificate is valid for.
    names: tuple[str, ...]
    not_after: dt.datetime
    self_signed: bool

    def covers(self, hostname: str) -> bool:
        return any(name_matches(name, hostname) for name in self.names)


def name_matches(pattern: str, hostname: str) -> bool:
    """RFC 6125 matching: exact, or one leftmost ``*`` label (``*.example.org`` covers ``a.example.org`` only)."""
    pattern, hostname = pattern.lower().rstrip("."), hostname.lower().rstrip(".")
    if pattern.startswith("*."):
        head, _, rest = hostname.partition(".")
        return bool(head) and rest == pattern[2:]
    return pattern == hostname


def fingerprint(certificate: x509.Certificate, algorithm: str = "sha256") -> str:
    """"AB:CD:…" of the certificate's DER encoding."""
    digest = hashlib.new(algorithm, certificate.public_bytes(serialization.Encoding.DER)).hexdigest().upper()
    return ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))


def generate_self_signed(domain: str, cert_path: Path, key_path: Path, *, now: dt.datetime | None = None) -> None:
    """Write a new EC P-256 key (0600) and a self-signed certificate for ``domain`` and ``*.domain``.

    Blocking file I/O: run it through ``asyncio.to_thread``. The key is written first, under its
    final mode from the start, and both files are replaced atomically.
    """
    now = now or dt.datetime.now(dt.timezone.utc)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, domain)])
    alt_names: list[x509.GeneralName] = [x509.DNSName(domain)]
    if not is_ip_address(domain):
        alt_names.append(x509.DNSName(f"*.{domain}"))
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))  # clocks of phones drift
        .not_valid_after(now + GENERATED_VALIDITY)
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        # No keyUsage: with one that lacks keyCertSign, OpenSSL no longer sees the certificate as
        # self-issued, and a client that trusts this very certificate still fails to verify it.
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    _write_atomically(key_path, key_pem, 0o600)
    _write_atomically(cert_path, certificate.public_bytes(serialization.Encoding.PEM), 0o644)


def load_certificate(cert_path: Path, key_path: Path, source: CertificateSource) -> ServerCertificate:
    """Read and check a certificate and its key; ConfigError (naming the files) if they are unusable.

    Blocking file I/O. The first certificate of the file is the leaf; the rest is its chain.
    """
    what = {"generated": "the generated certificate", "configured": "prosody.certificate",
            "letsencrypt": "prosody.letsencryptDir"}[source]
    try:
        pem = cert_path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{what}: cannot read {cert_path}: {exc.strerror or exc}") from None
    try:
        chain = x509.load_pem_x509_certificates(pem)
    except ValueError:
        raise ConfigError(f"{what}: {cert_path} holds no PEM certificate") from None
    try:
        key_pem = key_path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"{what}: cannot read the key {key_path}: {exc.strerror or exc} "
            "(Prosody runs as this user and needs to read it too)"
        ) from None
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError):
        raise ConfigError(f"{what}: {key_path} holds no unencrypted PEM private key") from None
    leaf = chain[0]
    if key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo) != \
            leaf.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo):
        raise ConfigError(f"{what}: the key {key_path} does not belong to the certificate {cert_path}")
    return ServerCertificate(
        cert_path=cert_path,
        key_path=key_path,
        source=source,
        fingerprint_sha256=fingerprint(leaf),
        fingerprint_sha1=fingerprint(leaf, "sha1"),
        names=_dns_names(leaf),
        not_after=leaf.not_valid_after_utc,
        self_signed=leaf.issuer == leaf.subject,
    )


def ensure_certificate(
    domain: str,
    tls_dir: Path,
    *,
    certificate: Path | None = None,
    key: Path | None = None,
    letsencrypt_dir: Path | None = None,
    now: dt.datetime | None = None,
) -> ServerCertificate:
    """The certificate to serve for ``domain``: the configured one, Let's Encrypt's, or our own.

    Ours is generated at first use (and again when it no longer fits: other domain, close to its
    end, unreadable). A configured certificate must name the domain. Blocking: use a thread.
    """
    now = now or dt.datetime.now(dt.timezone.utc)
    if (certificate is None) != (key is None):
        raise ConfigError("prosody.certificate and prosody.key go together: set both, or neither")
    if certificate is not None and letsencrypt_dir is not None:
        raise ConfigError("set prosody.certificate/prosody.key or prosody.letsencryptDir, not both")
    if certificate is not None and key is not None:
        chosen = load_certificate(certificate.expanduser(), key.expanduser(), "configured")
    elif letsencrypt_dir is not None:
        live = letsencrypt_dir.expanduser()
        chosen = load_certificate(live / LETSENCRYPT_CERT, live / LETSENCRYPT_KEY, "letsencrypt")
    else:
        return _ensure_generated(domain, tls_dir, now)
    if not chosen.covers(domain):
        raise ConfigError(
            f"the certificate {chosen.cert_path} is for {', '.join(chosen.names) or 'no DNS name'}, "
            f"not for the XMPP domain {domain}: clients would refuse it"
        )
    if chosen.not_after <= now:
        raise ConfigError(f"the certificate {chosen.cert_path} expired on {chosen.not_after:%Y-%m-%d}")
    return chosen


def _ensure_generated(domain: str, tls_dir: Path, now: dt.datetime) -> ServerCertificate:
    cert_path, key_path = tls_dir / f"{domain}.crt", tls_dir / f"{domain}.key"
    current: ServerCertificate | None = None
    if cert_path.exists() and key_path.exists():
        try:
            current = load_certificate(cert_path, key_path, "generated")
        except ConfigError as exc:
            log.warning("Replacing the generated certificate: %s", exc)
    if current is not None and current.covers(domain) and current.not_after - now > RENEW_BEFORE:
        if key_path.stat().st_mode & 0o077:
            key_path.chmod(0o600)
        return current
    try:
        tls_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        generate_self_signed(domain, cert_path, key_path, now=now)
    except OSError as exc:
        raise ProsodyError(f"cannot write a TLS certificate under {tls_dir}: {exc}") from exc
    created = load_certificate(cert_path, key_path, "generated")
    log.info("Generated a self-signed TLS certificate for %s (SHA-256 %s)", domain, created.fingerprint_sha256)
    return created


def _dns_names(certificate: x509.Certificate) -> tuple[str, ...]:
    try:
        extension = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        common = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        return tuple(str(attribute.value) for attribute in common)
    return tuple(extension.value.get_values_for_type(x509.DNSName))


def is_ip_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _write_atomically(path: Path, data: bytes, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)

"""The TLS context of the service's own XMPP sessions: one per trust setting, shared by every bot."""

from __future__ import annotations

import functools
import ssl
from pathlib import Path

from agentchat.errors import ConfigError


@functools.cache
def client_tls_context(verify: bool, ca_file: Path | None = None) -> ssl.SSLContext:
    """The system's CAs plus ``ca_file`` (a CA bundle, or the server's own certificate: pinned).

    One context per setting for every bot: slixmpp would otherwise build one per client and load
    the system CA store into it twice (~40 ms of CPU and ~0.8 MB each, docs/performance.md).
    slixmpp checks the name against the JID's domain, whatever address it connects to.
    """
    context = ssl.create_default_context()
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    if ca_file is not None:
        try:
            context.load_verify_locations(cafile=str(ca_file))
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"xmpp.caFile: cannot load {ca_file}: {exc}") from None
        # A pinned certificate that is not self-signed (a Let's Encrypt fullchain) is an anchor too.
        context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    return context

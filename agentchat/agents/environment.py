"""The environment an agent's process gets: an allow-list of the service's, never the whole of it.

The service's own environment holds its secrets (``XMPP_ADMIN_PASSWORD``, ``MANAGER_PASSWORD``, the
documented way to give them), so a child gets only what a CLI needs to run: the locale and terminal,
PATH, HOME, proxies and CA bundles, and the coding CLI's own variables (``ANTHROPIC_*``,
``CLAUDE_*``). An engine (Codex, Gemini CLI, OpenCode) gets its own credential variables instead of
Claude Code's (``own_variables``: ``OPENAI_API_KEY``, ``GEMINI_API_KEY`` …). On top come the layers
the configuration adds (``agents.claude.env``, a command backend's ``env``, ``agents.<engine>.env``)
and our own (``AGENTCHAT_AGENT_ID``, ``MCP_TOOL_TIMEOUT``). A value equal to a secret of the service
is dropped wherever it comes from.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Collection, Mapping

log = logging.getLogger(__name__)

# Exact names taken from the service's environment.
ALLOWED_NAMES = frozenset({
    "PATH", "HOME", "USER", "LOGNAME", "SHELL",
    "LANG", "LANGUAGE", "TERM", "COLORTERM", "TZ",
    # Reaching the API from behind a proxy, and trusting a local CA.
    "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "no_proxy", "all_proxy",
    "SSL_CERT_FILE", "SSL_CERT_DIR", "NODE_EXTRA_CA_CERTS", "REQUESTS_CA_BUNDLE",
})
# Name prefixes taken from the service's environment: the locale, and the Claude Code CLI's own variables.
LOCALE_PREFIXES = ("LC_",)
CLAUDE_PREFIXES = ("ANTHROPIC_", "CLAUDE_")
ALLOWED_PREFIXES = (*LOCALE_PREFIXES, *CLAUDE_PREFIXES)


def allowed(name: str, own_variables: Collection[str] | None = None) -> bool:
    """Whether a variable of the service's environment may reach an agent's process: the common
    allow-list, and Claude Code's own variables, or with ``own_variables`` exactly those names instead."""
    if name in ALLOWED_NAMES or name.startswith(LOCALE_PREFIXES):
        return True
    return name.startswith(CLAUDE_PREFIXES) if own_variables is None else name in own_variables


def child_environment(
    *layers: Mapping[str, str],
    base: Mapping[str, str] | None = None,
    forbidden_values: Collection[str] = (),
    own_variables: Collection[str] | None = None,
) -> dict[str, str]:
    """The allow-listed part of ``base`` (default: ``os.environ``), then each layer in order.

    ``own_variables``: the CLI's own variables to take from ``base`` instead of Claude Code's
    (``ANTHROPIC_*``, ``CLAUDE_*``): an engine's credentials. Layers are taken whole (the owner
    configured them); a variable whose value is one of ``forbidden_values`` (the service's
    passwords) is dropped from every layer, with a warning.
    """
    source = os.environ if base is None else base
    env = {name: value for name, value in source.items() if allowed(name, own_variables)}
    for layer in layers:
        env.update(layer)
    if forbidden_values:
        forbidden = {value for value in forbidden_values if value}
        for name in [name for name, value in env.items() if value in forbidden]:
            log.warning("not passing %s to an agent: its value is one of the service's secrets", name)
            del env[name]
    return env

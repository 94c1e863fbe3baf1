"""Choosing a backend by name: "claude", or a key of ``agents.commandBackends``."""

from __future__ import annotations

from agentchat.agents.backends.base import AgentBackend, BackendSpec
from agentchat.agents.backends.claude import ClaudeCodeBackend
from agentchat.agents.backends.command import CommandBackend
from agentchat.config import AgentSettings
from agentchat.errors import BackendError

CLAUDE = "claude"
CLAUDE_LABEL = "Claude Code"


def available_backends(settings: AgentSettings) -> list[tuple[str, str]]:
    """(kind, label) of every backend a user may pick, Claude Code first, then the configured
    commands in configuration order. A command keyed "claude" cannot shadow Claude Code."""
    choices = [(CLAUDE, CLAUDE_LABEL)]
    choices += [(kind, command.label) for kind, command in settings.command_backends.items() if kind != CLAUDE]
    return choices


def create_backend(kind: str, spec: BackendSpec, settings: AgentSettings) -> AgentBackend:
    """A backend of that kind for one agent (not started); BackendError naming the choices if unknown."""
    if kind == CLAUDE:
        return ClaudeCodeBackend(spec, settings.claude)
    command = settings.command_backends.get(kind)
    if command is None:
        known = ", ".join(name for name, _ in available_backends(settings))
        raise BackendError(f"unknown agent backend {kind!r}; available: {known}")
    return CommandBackend(spec, command, kind=kind)

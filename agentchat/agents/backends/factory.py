"""Choosing a backend by name: "claude", an installed engine ("codex", "gemini", "opencode"), or a key
of ``agents.commandBackends``."""

from __future__ import annotations

from agentchat.agents.backends.acp import GeminiBackend, OpencodeBackend
from agentchat.agents.backends.base import AgentBackend, BackendSpec
from agentchat.agents.backends.claude import ClaudeCodeBackend
from agentchat.agents.backends.codex import CodexBackend
from agentchat.agents.backends.command import CommandBackend
from agentchat.agents.backends.engines import CODEX, ENGINES, GEMINI, OPENCODE, installed
from agentchat.config import AgentSettings, EngineSettings
from agentchat.errors import BackendError

CLAUDE = "claude"
CLAUDE_LABEL = "Claude Code"


def _engine_settings(settings: AgentSettings, kind: str) -> EngineSettings:
    return {CODEX.kind: settings.codex, GEMINI.kind: settings.gemini, OPENCODE.kind: settings.opencode}[kind]


def available_backends(settings: AgentSettings) -> list[tuple[str, str]]:
    """(kind, label) of every backend a user may pick: Claude Code first, then the configured commands in
    configuration order, then the engines that are installed (or configured with a path). A command keyed
    "claude" cannot shadow Claude Code; one keyed like an engine replaces it (the config says so)."""
    choices = [(CLAUDE, CLAUDE_LABEL)]
    choices += [(kind, command.label) for kind, command in settings.command_backends.items() if kind != CLAUDE]
    for kind, engine in ENGINES.items():
        if kind not in settings.command_backends and installed(engine, _engine_settings(settings, kind).path):
            choices.append((kind, engine.label))
    return choices


def create_backend(kind: str, spec: BackendSpec, settings: AgentSettings) -> AgentBackend:
    """A backend of that kind for one agent (not started); BackendError naming the choices if unknown."""
    if kind == CLAUDE:
        return ClaudeCodeBackend(spec, settings.claude)
    command = settings.command_backends.get(kind)
    if command is not None:
        return CommandBackend(spec, command, kind=kind)
    if kind == CODEX.kind:
        return CodexBackend(spec, settings.codex)
    if kind == GEMINI.kind:
        return GeminiBackend(spec, settings.gemini)
    if kind == OPENCODE.kind:
        return OpencodeBackend(spec, settings.opencode)
    known = ", ".join(name for name, _ in available_backends(settings))
    raise BackendError(f"unknown agent backend {kind!r}; available: {known}")

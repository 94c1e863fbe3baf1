"""An agent's permission mode and model, switched from the chat (`mode`, `model`, and their forms).

One path for both: the choice is checked, saved with the agent's record (the next process starts with it:
``--permission-mode``, ``--model``), and sent to the running process if there is one (Claude Code's
stream-json control requests, agentchat.agents.backends.claude.modes). What the owner is told says which
of the two happened.
"""

from __future__ import annotations

import asyncio
import enum
import os
import re
from dataclasses import dataclass

from agentchat.agents.agent import Agent
from agentchat.agents.backends.base import SettingNotApplied
from agentchat.agents.backends.claude.locate import locate_claude
from agentchat.agents.backends.claude.modes import BASE_MODES, BYPASS, DEFAULT, bypass_possible, installed_modes
from agentchat.agents.backends.factory import CLAUDE
from agentchat.config import ClaudeSettings
from agentchat.errors import BackendError

# What each mode means, in one line (for `mode` and the form).
MODE_HELP = {
    DEFAULT: "asks before edits and commands",
    "acceptEdits": "edits files without asking; asks before other commands",
    "plan": "plans only, changes nothing; its plan comes to you for approval",
    BYPASS: "runs every tool without asking",
    "auto": "Claude Code's classifier decides what needs asking",
}
_MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@/\[\]-]{0,99}")


class Applied(enum.Enum):
    NOW = "now"  # the running process took it
    NEXT_START = "next start"  # no process now, or it did not take it: used when it starts
    UNCHANGED = "unchanged"
    NEEDS_CONFIRMATION = "needs confirmation"
    REFUSED = "refused"


@dataclass(frozen=True)
class SettingChange:
    applied: Applied
    text: str  # one line for the owner


def current_mode(agent: Agent) -> str:
    return agent.record.permission_mode or DEFAULT


def has_modes(agent: Agent) -> bool:
    return agent.record.backend == CLAUDE


async def available_modes(settings: ClaudeSettings) -> tuple[str, ...]:
    """The modes the installed Claude Code has (auto only where its --help lists it)."""
    try:
        binary = await asyncio.to_thread(locate_claude, settings.path)
    except BackendError:
        return BASE_MODES
    return await installed_modes(binary)


def mode_line(mode: str) -> str:
    return f"{mode}: {MODE_HELP.get(mode, 'a mode of Claude Code')}"


async def change_mode(
    agent: Agent, wanted: str, settings: ClaudeSettings, *, confirmed: bool, cli_uid: int | None = None
) -> SettingChange:
    """Switch ``agent`` to permission mode ``wanted`` (matched case-insensitively). ``cli_uid``: the uid the
    CLI runs as (the sandbox's; None: the service's own)."""
    if not has_modes(agent):
        return SettingChange(Applied.REFUSED, f"Permission modes are Claude Code's; {agent.id} is a {agent.record.backend} agent.")
    modes = await available_modes(settings)
    mode = next((m for m in modes if m.lower() == wanted.strip().lower()), None)
    if mode is None:
        return SettingChange(Applied.REFUSED, f"There is no mode {wanted.strip()[:40]!r}. Modes: {', '.join(modes)}.")
    if mode == current_mode(agent):
        return SettingChange(Applied.UNCHANGED, f"🔧 {agent.id} is in {mode} mode already.")
    if mode == BYPASS:
        if not settings.allow_bypass_permissions:
            return SettingChange(Applied.REFUSED, "⛔ bypassPermissions is not allowed on this server "
                                 "(agents.claude.allowBypassPermissions is off).")
        if not bypass_possible({**os.environ, **settings.env}, os.geteuid() if cli_uid is None else cli_uid):
            return SettingChange(Applied.REFUSED, "⛔ Claude Code refuses bypassPermissions when it runs as root outside a "
                                 "sandbox: set IS_SANDBOX=1 in agents.claude.env if this machine is one.")
        if not confirmed:
            return SettingChange(Applied.NEEDS_CONFIRMATION, "⚠️ bypassPermissions runs every tool without asking you, "
                                 "commands included.")
    agent.record.permission_mode = None if mode == DEFAULT else mode
    await agent.save_record()
    backend = agent.live_backend
    if backend is None:
        return SettingChange(Applied.NEXT_START, f"🔧 Permission mode: {mode} (from the next message on, when Claude Code starts).")
    try:
        await backend.set_permission_mode(mode)
    except SettingNotApplied as exc:
        return SettingChange(Applied.NEXT_START, f"🔧 Permission mode: {mode} from the next start of Claude Code; the running "
                             f"one did not switch ({exc}).")
    return SettingChange(Applied.NOW, f"🔧 Permission mode: {mode} (switched now).")


async def change_model(agent: Agent, wanted: str) -> SettingChange:
    """Switch ``agent`` to model ``wanted`` ("default": the CLI's, or agents.claude.model)."""
    if not has_modes(agent):
        return SettingChange(Applied.REFUSED, f"Models are Claude Code's; {agent.id} is a {agent.record.backend} agent.")
    name = wanted.strip()
    if not _MODEL_NAME.fullmatch(name):
        return SettingChange(Applied.REFUSED, f"{name[:40]!r} is not a model name (e.g. `model sonnet`, `model default`).")
    model = None if name.lower() == DEFAULT else name
    if model == agent.record.model:
        return SettingChange(Applied.UNCHANGED, f"🧠 {agent.id} uses {name} already.")
    agent.record.model = model
    await agent.save_record()
    backend = agent.live_backend
    if backend is None:
        return SettingChange(Applied.NEXT_START, f"🧠 Model: {name} (from the next message on, when Claude Code starts).")
    try:
        effective = await backend.set_model(model)
    except SettingNotApplied as exc:
        return SettingChange(Applied.NEXT_START, f"🧠 Model: {name} from the next start of Claude Code; the running one did "
                             f"not switch ({exc}).")
    return SettingChange(Applied.NOW, f"🧠 Model: {effective or name} (switched now).")

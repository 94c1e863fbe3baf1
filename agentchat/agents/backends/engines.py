"""The optional engines (Codex, Gemini CLI, OpenCode): what each is, which version we pin, where to find it.

``make install-engines`` installs the pinned versions with npm into the project's prefix
(``.cache/engines``); an engine is also found on PATH, or at the path its config section names.
A configured path must work: it is never silently replaced by another binary. In an agent's sandbox
an engine needs its npm tree and Node.js to be seen (``runtime_binds``).
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from agentchat.agents.sandbox import Bind, Sandbox
from agentchat.config import AgentSettings
from agentchat.errors import BackendError

# The project's own prefix for npm-installed engines; AGENTCHAT_ENGINES_DIR overrides it.
PROJECT_PREFIX = Path(__file__).resolve().parents[3] / ".cache" / "engines"
INSTALL_HINT = "run `make install-engines`, put it on PATH, or set its path in the config"


@dataclass(frozen=True)
class Engine:
    kind: str  # the agent type people choose in `new`, and the config section under `agents`
    label: str
    binary: str
    npm_package: str
    pinned_version: str  # the version the tests ran against (recipes §6)
    path_env: str  # the environment variable that sets its path


CODEX = Engine("codex", "Codex", "codex", "@openai/codex", "0.171.0", "CODEX_PATH")
GEMINI = Engine("gemini", "Gemini CLI", "gemini", "@google/gemini-cli", "0.61.0", "GEMINI_PATH")
OPENCODE = Engine("opencode", "OpenCode", "opencode", "opencode-ai", "1.18.33", "OPENCODE_PATH")
ENGINES: dict[str, Engine] = {engine.kind: engine for engine in (CODEX, GEMINI, OPENCODE)}


def engine_prefixes() -> list[Path]:
    configured = os.environ.get("AGENTCHAT_ENGINES_DIR")
    return [Path(configured).expanduser()] if configured else [PROJECT_PREFIX]


def find_engine(engine: Engine, configured: str | None = None) -> Path | None:
    """The engine's executable, or None when it is not installed (a configured path is not checked here)."""
    if configured:
        expanded = os.path.expanduser(configured)
        return Path(shutil.which(expanded) or expanded) if os.sep not in expanded else Path(expanded)
    on_path = shutil.which(engine.binary)
    if on_path:
        return Path(on_path)
    for prefix in engine_prefixes():
        candidate = prefix / "node_modules" / ".bin" / engine.binary
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def locate_engine(engine: Engine, configured: str | None = None) -> Path:
    """The executable to run; BackendError naming the engine and how to install it.

    Does a few stat() calls: call it through asyncio.to_thread from the event loop.
    """
    found = find_engine(engine, configured)
    where = f"agents.{engine.kind}.path / {engine.path_env}"
    if found is None:
        raise BackendError(f"{engine.label} is not installed: {INSTALL_HINT}")
    if configured:
        if not found.is_file():
            raise BackendError(f"{engine.label} {configured!r} ({where}) does not exist: {INSTALL_HINT}")
        if not os.access(found, os.X_OK):
            raise BackendError(f"{engine.label} {found} ({where}) is not executable (chmod +x it)")
    return found


def installed(engine: Engine, configured: str | None = None) -> bool:
    """Whether `new` offers the engine: installed, or configured (a wrong path then fails with one clear line)."""
    return bool(configured) or find_engine(engine) is not None


# OpenCode's providers whose key is not <PROVIDER>_API_KEY (from the models.dev snapshot OpenCode 1.18.33 bundles).
OPENCODE_PROVIDER_KEYS: dict[str, tuple[str, ...]] = {
    "google": ("GOOGLE_API_KEY", "GOOGLE_GENERATIVE_AI_API_KEY", "GEMINI_API_KEY"),
    "azure": ("AZURE_RESOURCE_NAME", "AZURE_API_KEY"),
    "alibaba": ("DASHSCOPE_API_KEY",),
    "huggingface": ("HF_TOKEN",),
    "gitlab": ("GITLAB_TOKEN",),
}
# Gemini CLI's key for the auth type agentchat selects (gemini-api-key).
GEMINI_KEYS = ("GEMINI_API_KEY",)


def opencode_provider_keys(provider: str) -> tuple[str, ...]:
    """The variables holding the key of an OpenCode provider: ANTHROPIC_API_KEY for ``anthropic``."""
    known = OPENCODE_PROVIDER_KEYS.get(provider)
    return known if known is not None else (re.sub(r"[^A-Z0-9]", "_", provider.upper()) + "_API_KEY",)


def credential_variables(settings: AgentSettings) -> frozenset[str]:
    """Every engine's credential variables under this configuration: each engine gets its own from the
    service's environment (and so from the state directory's .env)."""
    return frozenset({settings.codex.env_key, *GEMINI_KEYS, *opencode_provider_keys(settings.opencode.provider)})


def runtime_binds(sandbox: Sandbox, binary: Path, search_path: str | None) -> list[Bind]:
    """What an engine's process must see to run ``binary``: its own directory, the whole npm tree it
    belongs to (the launcher finds the native binary in another package of it), and Node.js for a
    script (``#!/usr/bin/env node``, looked up on the child's PATH). Nothing under /usr or /opt.

    Blocking (stat and a read of two bytes): call it through asyncio.to_thread.
    """
    resolved = Path(os.path.realpath(binary))
    binds = sandbox.program_binds(resolved)
    tree = next((parent for parent in reversed(resolved.parents) if parent.name == "node_modules"), None)
    if tree is not None:
        binds += sandbox.directory_binds(tree)
    if _is_script(resolved):
        node = shutil.which("node", path=search_path)
        if node is not None:
            binds += sandbox.program_binds(Path(node))
    return binds


def _is_script(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            return handle.read(2) == b"#!"
    except OSError:
        return False

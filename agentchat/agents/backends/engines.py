"""The optional engines (Codex, Gemini CLI, OpenCode): what each is, which version we pin, where to find it.

``make install-engines`` installs the pinned versions with npm into the project's prefix
(``.cache/engines``); an engine is also found on PATH, or at the path its config section names.
A configured path must work: it is never silently replaced by another binary.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

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

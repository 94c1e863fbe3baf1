"""Finding the Claude Code CLI: the configured path, then PATH, then the claude-agent-sdk bundle."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import shutil
from pathlib import Path

from agentchat.errors import BackendError

INSTALL_HINT = (
    "set CLAUDE_PATH (agents.claude.path in the config file), put `claude` on PATH, "
    "or install the CLI bundled with claude-agent-sdk: pip install 'agentchat[claude]'"
)


def locate_claude(configured: str | None = None) -> Path:
    """The CLI to run. A configured path must work: it is never silently replaced by another binary.

    Does a few stat() calls: call it through asyncio.to_thread from the event loop.
    """
    if configured:
        return _configured(configured)
    on_path = shutil.which("claude")
    if on_path:
        return Path(on_path)
    bundled = bundled_claude()
    if bundled is not None:
        return bundled
    raise BackendError(f"Claude Code CLI not found: {INSTALL_HINT}")


def _configured(configured: str) -> Path:
    expanded = os.path.expanduser(configured)
    if os.sep not in expanded:
        # A bare name ("claude-beta") is looked up on PATH, as a shell would.
        found = shutil.which(expanded)
        if found:
            return Path(found)
        raise BackendError(f"Claude Code CLI {configured!r} (CLAUDE_PATH) is not on PATH: {INSTALL_HINT}")
    path = Path(expanded)
    if not path.is_file():
        raise BackendError(f"Claude Code CLI {path} (CLAUDE_PATH) does not exist: {INSTALL_HINT}")
    if not os.access(path, os.X_OK):
        raise BackendError(f"Claude Code CLI {path} (CLAUDE_PATH) is not executable (chmod +x it)")
    return path


def bundled_claude() -> Path | None:
    """The native CLI inside an installed claude-agent-sdk wheel, without importing the SDK."""
    spec = importlib.util.find_spec("claude_agent_sdk")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "_bundled" / "claude"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


async def claude_version(binary: Path, timeout: float = 20.0) -> str:
    """``claude --version`` ("2.1.330 (Claude Code)"); BackendError if it does not answer."""
    try:
        process = await asyncio.create_subprocess_exec(
            str(binary),
            "--version",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
    except OSError as exc:
        raise BackendError(f"cannot run {binary}: {exc}") from exc
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise BackendError(f"{binary} --version did not answer within {timeout:g} s") from None
    if process.returncode != 0:
        tail = err.decode(errors="replace").strip()[-300:]
        raise BackendError(f"{binary} --version failed with exit code {process.returncode}: {tail}")
    return out.decode(errors="replace").strip()

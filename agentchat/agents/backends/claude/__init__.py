"""The Claude Code backend: the stream-json protocol, finding the CLI, and the process driver."""

from __future__ import annotations

from agentchat.agents.backends.claude.driver import PERMISSION_TOOL, ClaudeCodeBackend
from agentchat.agents.backends.claude.locate import (
    bundled_claude,
    claude_version,
    locate_claude,
)

__all__ = ["PERMISSION_TOOL", "ClaudeCodeBackend", "bundled_claude", "claude_version", "locate_claude"]

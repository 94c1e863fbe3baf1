"""The Claude Code CLIs the tests run against: the newest that ``pip install agentchat[claude]`` installs
(bundled in the claude-agent-sdk wheel) and the oldest of the tested range pinned in pyproject.toml, which
``make test`` unpacks from its wheel into ``.cache/claude-cli/<sdk version>/claude``.

    python -m tests.support.claude_versions extract WHEEL DEST_DIR
"""

from __future__ import annotations

import os
import stat
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

from agentchat.agents.backends.claude.locate import bundled_claude

CACHE = Path(__file__).resolve().parents[2] / ".cache" / "claude-cli"
MEMBER = "claude_agent_sdk/_bundled/claude"


@dataclass(frozen=True)
class CliUnderTest:
    label: str  # the claude-agent-sdk version it came with, or "bundled"
    path: Path


def clis_on_this_machine() -> list[CliUnderTest]:
    """The CLIs present on this machine, newest (bundled) first."""
    found: list[CliUnderTest] = []
    bundled = bundled_claude()
    if bundled is not None:
        found.append(CliUnderTest("bundled", bundled))
    if CACHE.is_dir():
        for binary in sorted(CACHE.glob("*/claude")):
            if os.access(binary, os.X_OK):
                found.append(CliUnderTest(f"sdk-{binary.parent.name}", binary))
    return found


def extract(wheel: Path, destination: Path) -> Path:
    destination.mkdir(parents=True, exist_ok=True)
    target = destination / "claude"
    with zipfile.ZipFile(wheel) as archive:
        partial = target.with_suffix(".partial")
        with archive.open(MEMBER) as source, partial.open("wb") as sink:
            while chunk := source.read(1 << 20):
                sink.write(chunk)
        partial.chmod(partial.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        partial.replace(target)
    return target


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] != "extract":
        sys.exit(__doc__)
    print(extract(Path(sys.argv[2]), Path(sys.argv[3])))

"""The state directory's permissions: 0700, and files 0600, from the first start.

The directory holds every user's conversations (state.db), the service's passwords (secrets.json,
config.json), the audit log and the logs: nobody but the service's user may read them. agentchat
runs with umask 077, so whatever it creates there (and Prosody, its child, under prosody/) is
private from the start; the agents' processes get the umask the service was started with, so the
files they write in a repository look as the owner expects. At each start the directory and its
files are checked, and a loosened mode is reported with the command that fixes it.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

SERVICE_UMASK = 0o077
# What is checked at start-up besides the directory itself (when present).
STATE_FILES = (
    "config.json", "secrets.json", ".env", "state.db", "state.db-wal", "state.db-shm",
    "audit.jsonl", "agentchat.log",
)
STATE_DIRS = ("prosody", "agents")

_started_umask: int | None = None


def restrict_umask() -> None:
    """Make everything this process creates private; remember the umask it was started with."""
    global _started_umask
    previous = os.umask(SERVICE_UMASK)
    if _started_umask is None:
        _started_umask = previous


def child_umask() -> int:
    """The umask for the agents' processes: the one the service was started with."""
    return _started_umask if _started_umask is not None else current_umask()


def current_umask() -> int:
    """This process's umask, read without changing it (os.umask would, for every thread, for a moment)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o022


def prepare_state_dir(home: Path) -> list[str]:
    """Create the state directory (0700) if missing; return one warning per loosened mode in it."""
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    warnings: list[str] = []
    for path, is_dir in [(home, True), *((home / name, True) for name in STATE_DIRS),
                         *((home / name, False) for name in STATE_FILES)]:
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
        except FileNotFoundError:
            continue
        if mode & 0o077:
            wanted = "700" if is_dir else "600"
            warnings.append(
                f"{path} is readable by other local users (mode {mode:o}): it holds the service's "
                f"{'state' if is_dir else 'data'}; run: chmod {wanted} {path}"
            )
    return warnings

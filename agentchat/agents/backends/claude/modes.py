"""Claude Code's permission modes: which ones the installed CLI has, and whether bypassPermissions can run here.

Observed with CLI 2.1.330 and 2.1.332 (tests/agents/backends/test_claude_modes.py):

* ``--help`` lists ``--permission-mode`` with ``(choices: "acceptEdits", "auto", "bypassPermissions", "manual",
  "dontAsk", "plan")``; ``default`` is accepted as well ("manual" in the help's words). The stream-json
  control request ``{"subtype":"set_permission_mode","mode":…}`` switches a running process, before or
  during a turn, and is answered ``{"mode": …}``; ``system/status`` then reports ``permissionMode``.
* ``bypassPermissions`` is refused by a running process (``error_code: bypass_not_launched``) unless it was
  started with ``--allow-dangerously-skip-permissions`` (or in that mode), and a process started so exits at
  once when run as root, unless ``IS_SANDBOX=1`` is in its environment ("--dangerously-skip-permissions
  cannot be used with root/sudo privileges for security reasons").
* ``{"subtype":"set_model","model":…}`` is answered ``{"model": …}``; ``"default"`` goes back to the CLI's.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path

log = logging.getLogger(__name__)

DEFAULT = "default"
BYPASS = "bypassPermissions"
# What every CLI of the tested range has; "auto" (and "dontAsk") only where --help lists it.
BASE_MODES = (DEFAULT, "acceptEdits", "plan", BYPASS)
OFFERED_IF_LISTED = ("auto",)
HELP_TIMEOUT = 15.0

_CHOICES = re.compile(r"--permission-mode\b[^(]*\(choices:([^)]*)\)", re.DOTALL)
_cache: dict[tuple[str, float], tuple[str, ...]] = {}


def parse_help(text: str) -> tuple[str, ...]:
    """The modes a ``claude --help`` text offers, in our order; the base modes when it lists none."""
    found = _CHOICES.search(text)
    listed = {choice.strip().strip('"') for choice in found.group(1).split(",")} if found else set()
    extra = tuple(mode for mode in OFFERED_IF_LISTED if mode in listed)
    return BASE_MODES + extra


async def installed_modes(binary: Path) -> tuple[str, ...]:
    """The modes ``binary`` offers (its --help, read once per binary and modification time)."""
    try:
        key = (str(binary), (await asyncio.to_thread(binary.stat)).st_mtime)
    except OSError:
        return BASE_MODES
    if key in _cache:
        return _cache[key]
    try:
        process = await asyncio.create_subprocess_exec(
            str(binary), "--help", stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
        )
    except OSError as exc:
        log.warning("cannot run %s --help: %s", binary, exc)
        return BASE_MODES
    try:
        output, _ = await asyncio.wait_for(process.communicate(), HELP_TIMEOUT)
    except TimeoutError:
        process.kill()
        await process.wait()
        log.warning("%s --help took longer than %g s", binary, HELP_TIMEOUT)
        return BASE_MODES
    modes = parse_help(output.decode("utf-8", errors="replace"))
    _cache[key] = modes
    return modes


def bypass_possible(environment: Mapping[str, str], uid: int) -> bool:
    """Whether a CLI running as ``uid`` with this environment may run in bypassPermissions: not as root
    outside a sandbox (in agentchat's sandbox it is never root)."""
    return uid != 0 or environment.get("IS_SANDBOX") == "1"

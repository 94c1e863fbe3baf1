"""Small helpers every backend that runs child processes needs."""

from __future__ import annotations

import asyncio
import logging
import os
import signal

log = logging.getLogger(__name__)


def signal_group(pid: int, sig: signal.Signals) -> None:
    """Signal a backend's whole process group (tools it started included); a gone group is fine."""
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass  # the group is already gone
    except PermissionError as exc:
        log.warning("cannot signal process group %s: %s", pid, exc)


async def wait_event(event: asyncio.Event, timeout: float) -> bool:
    """Whether the event was set within the timeout."""
    try:
        await asyncio.wait_for(event.wait(), timeout)
    except TimeoutError:
        return False
    return True

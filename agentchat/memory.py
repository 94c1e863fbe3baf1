"""Big buffers go back to the system when freed.

A permission prompt for a Write carries the whole file: a 24 MiB request body, its parsed JSON and
the answer are each tens of megabytes. glibc serves such blocks from mmap at first, then raises its
threshold to the largest block freed (up to 32 MiB), and later ones come from the heap, which it
keeps: six such prompts left the service at 320 MB instead of 92. A fixed threshold of 1 MiB keeps
every block of that size on mmap, returned as soon as it is freed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import platform

log = logging.getLogger(__name__)

_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 1024 * 1024


def return_big_blocks_to_the_system() -> bool:
    """Fix glibc's mmap threshold (no effect elsewhere); True if it took effect."""
    if platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD))
    except (OSError, AttributeError) as exc:
        log.debug("mallopt unavailable: %s", exc)
        return False

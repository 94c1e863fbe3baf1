"""Who may use the manager: manager.allowedUsers, or every bare JID of the configured domain."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable


class AccessPolicy:
    def __init__(self, allowed: list[str], domain: str, is_service_jid: Callable[[str], bool]) -> None:
        self._patterns = [p.strip().lower() for p in allowed if p.strip()] or [f"*@{domain.lower()}"]
        self._is_service_jid = is_service_jid

    def allows(self, bare_jid: str) -> bool:
        jid = bare_jid.lower()
        if self._is_service_jid(jid) or "@" not in jid:
            return False  # agents, the manager itself and server JIDs are never users
        return any(fnmatch.fnmatchcase(jid, pattern) for pattern in self._patterns)

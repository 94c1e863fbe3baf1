"""Whom a room message is for: ``@swift-fox`` anywhere, ``swift-fox:`` (or ``,``) at its start, or a
XEP-0372 mention reference (what Conversations and Gajim send when a nick is picked from the list)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

# A nick ends where a character that cannot be in an agent's name begins ("@swift-fox," "@swift-fox?").
_NICK_END = r"(?![\w-])"


def mentioned(text: str, nicks: Iterable[str], references: Sequence[str] = ()) -> list[str]:
    """The nicks of ``nicks`` the message mentions, in the order they first appear (references first)."""
    known = {nick.casefold(): nick for nick in nicks}
    found: list[str] = []

    def add(nick: str) -> None:
        actual = known.get(nick.casefold())
        if actual is not None and actual not in found:
            found.append(actual)

    for reference in references:
        add(reference)
    stripped = text.lstrip()
    for casefolded, nick in known.items():
        addressed = re.match(rf"{re.escape(nick)}{_NICK_END}\s*[:,]", stripped, re.IGNORECASE)
        if addressed is not None:
            add(nick)
    positions = []
    for casefolded, nick in known.items():
        for match in re.finditer(rf"@{re.escape(nick)}{_NICK_END}", text, re.IGNORECASE):
            positions.append((match.start(), nick))
    for _, nick in sorted(positions):
        add(nick)
    return found

"""Quote replies as clients without XEP-0461 send them: the quoted lines first (``> …``), then the answer.

Conversations' "Quote" puts ``> original text`` into the input field; Gajim and Dino send the same text as a
XEP-0428 fallback next to a XEP-0461 reply (the transport strips that one). ``split_leading_quote`` separates
such a leading quote from what follows, so the chat side can tell which message was answered.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class QuoteSplit:
    quote: str  # the quoted lines without their "> " markers ("" when the text starts with no quote)
    rest: str  # what the person wrote after the quote


def split_leading_quote(text: str) -> QuoteSplit:
    """The block of ``>`` lines at the start of ``text`` (blank lines inside it allowed), and the rest."""
    lines = text.splitlines()
    quoted: list[str] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        stripped = line.lstrip()
        if stripped.startswith(">"):
            quoted.append(stripped[1:].removeprefix(" "))
        elif not stripped and quoted:
            pass  # a blank line between quoted lines, or after the quote
        else:
            break
        index += 1
    if not any(line.strip() for line in quoted):
        return QuoteSplit("", text)  # no quote (or only empty "> " lines): all of it is what was written
    return QuoteSplit("\n".join(quoted), "\n".join(lines[index:]).strip())

"""Characters a chat client does not show as what they are, made visible: ``⟨U+202E⟩``.

A right-to-left override can make ``rm -rf ~ #`` read as a harmless command, a zero-width space
can make two names look the same, a carriage return can hide the start of a line. In a prompt that
asks the owner to approve what will run, every such character is replaced by its code point, and
the prompt says so.

Revealed: Unicode format characters (category Cf: bidi controls and isolates, zero-width
characters, the BOM, tag characters), control characters other than newline and tab, line and
paragraph separators, variation selectors, and the fillers that render blank (Hangul fillers,
U+034F). Kept: a zero-width joiner or emoji variation selector right after a symbol (inside an
emoji such as 👨‍👩‍👧 or ❤️), where it is how the emoji is written.
"""

from __future__ import annotations

import re
import unicodedata

# Every character revealed, as one class. tests/chat/test_invisible.py checks it against a scan of
# unicodedata (categories Cf, Zl, Zp, Cc but newline and tab, variation selectors, blank fillers).
HIDDEN = re.compile(
    r"[\x00-\x08\x0b-\x1f\x7f-\x9f\xad\u034f\u0600-\u0605\u061c\u06dd\u070f\u0890-\u0891\u08e2"
    r"\u115f-\u1160\u180e\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u206f\u2800\u3164\ufe00-\ufe0f"
    r"\ufeff\uffa0\ufff9-\ufffb\U000110bd\U000110cd\U00013430-\U00013438\U0001bca0-\U0001bca3"
    r"\U0001d173-\U0001d17a\U000e0001\U000e0020-\U000e007f\U000e0100-\U000e01ef]"
)
_KEPT_AFTER_SYMBOL = {"\u200d", "\ufe0f"}
BLANK_LOOKING = "\u034f\u115f\u1160\u3164\uffa0\u2800"


def reveal(text: str) -> tuple[str, bool]:
    """``text`` with every hidden character shown as ``⟨U+XXXX⟩``, and whether there was one."""
    found = False

    def shown(match: re.Match[str]) -> str:
        nonlocal found
        char = match.group()
        start = match.start()
        if char in _KEPT_AFTER_SYMBOL and start > 0 and unicodedata.category(text[start - 1]) in ("So", "Sk"):
            return char
        found = True
        return f"⟨U+{ord(char):04X}⟩"

    revealed = HIDDEN.sub(shown, text)
    return revealed, found


class Revealer:
    """Reveals piece after piece of one rendering and remembers whether any piece had something."""

    def __init__(self) -> None:
        self.found = False

    def __call__(self, text: str) -> str:
        revealed, found = reveal(text)
        self.found = self.found or found
        return revealed

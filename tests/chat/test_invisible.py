"""Hidden characters made visible: the one character class, and what reveal() does to any text."""

from __future__ import annotations

import sys
import unicodedata

from hypothesis import given
from hypothesis import strategies as st

from agentchat.chat.invisible import BLANK_LOOKING, HIDDEN, reveal


def test_the_class_is_every_format_control_separator_selector_and_blank_filler() -> None:
    expected = {
        chr(code)
        for code in range(sys.maxunicode + 1)
        if not 0xD800 <= code <= 0xDFFF
        and (
            unicodedata.category(chr(code)) in ("Cf", "Zl", "Zp")
            or (unicodedata.category(chr(code)) == "Cc" and chr(code) not in "\n\t")
            or 0xFE00 <= code <= 0xFE0F
            or 0xE0100 <= code <= 0xE01EF
            or chr(code) in BLANK_LOOKING
        )
    }
    matched = {chr(code) for code in range(sys.maxunicode + 1) if not 0xD800 <= code <= 0xDFFF and HIDDEN.fullmatch(chr(code))}
    assert matched == expected


def test_a_right_to_left_override_and_friends_are_shown_by_code_point() -> None:
    assert reveal("echo safe #\u202e)hs | live lruc(") == ("echo safe #⟨U+202E⟩)hs | live lruc(", True)
    assert reveal("rm\u200b -rf\r ~") == ("rm⟨U+200B⟩ -rf⟨U+000D⟩ ~", True)
    assert reveal("tag\U000e0041\U000e0042") == ("tag⟨U+E0041⟩⟨U+E0042⟩", True)
    assert reveal("npm test\n\tok") == ("npm test\n\tok", False)


def test_emoji_keep_their_joiners_and_presentation_selectors() -> None:
    family, heart = "👨\u200d👩\u200d👧", "❤\ufe0f"
    assert reveal(f"{family} {heart} 👩🏽\u200d💻") == (f"{family} {heart} 👩🏽\u200d💻", False)
    assert reveal("a\u200db") == ("a⟨U+200D⟩b", True)  # a joiner between letters hides something


@given(st.text())
def test_nothing_hidden_is_left(text: str) -> None:
    revealed, found = reveal(text)
    leftovers = [
        (index, char) for index, char in enumerate(revealed)
        if HIDDEN.match(char) and not (char in "\u200d\ufe0f" and index and unicodedata.category(revealed[index - 1]) in ("So", "Sk"))
    ]
    assert leftovers == []
    assert found == (revealed != text)

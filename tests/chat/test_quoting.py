"""Quote replies as Conversations sends them: the quoted lines, then the answer."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from agentchat.chat.quoting import split_leading_quote


def test_a_quote_then_an_answer_is_split() -> None:
    split = split_leading_quote("> 🔐 Permission #cd7a — Bash: Run the tests\n> npm test\nyes")
    assert split.quote == "🔐 Permission #cd7a — Bash: Run the tests\nnpm test"
    assert split.rest == "yes"


def test_blank_lines_inside_and_after_the_quote_are_part_of_it() -> None:
    split = split_leading_quote(">first\n\n> second\n\n  no, use pnpm  ")
    assert split.quote == "first\nsecond"
    assert split.rest == "no, use pnpm"


def test_text_without_a_leading_quote_is_left_whole() -> None:
    text = "look at this:\n> a quoted log line\nwhy?"
    assert split_leading_quote(text).quote == ""
    assert split_leading_quote(text).rest == text


@given(st.text())
def test_never_raises_and_loses_no_unquoted_text(text: str) -> None:
    split = split_leading_quote(text)
    if not split.quote:
        assert split.rest == text
    else:
        assert split.rest in text


def test_empty_quote_markers_are_the_text_itself() -> None:
    # Found by hypothesis: a lone ">" lost everything written.
    for text in (">", "> ", ">\n>", "> \nyes"):
        split = split_leading_quote(text)
        assert split.quote == "" and split.rest == text

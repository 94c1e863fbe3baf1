"""Long answers cut into messages under the server's stanza limit, code blocks intact in each."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentchat.chat.splitting import Chunk, split_into_chunks, split_message, utf8_size


def fences_balance(message: str) -> bool:
    """Read as Conversations does: a line starting with ``` opens a block, a line of exactly ``` closes it."""
    inside = False
    for line in message.split("\n"):
        if not inside and line.startswith("```"):
            inside = True
        elif inside and line.rstrip("\r") == "```":
            inside = False
    return not inside


def reassemble(chunks: list[Chunk]) -> str:
    return "".join(chunk.body for chunk in chunks)


def long_answer(size: int) -> str:
    """A realistic answer: paragraphs, lists and large code blocks, about ``size`` bytes."""
    paragraph = "The handler now retries on timeouts — “idempotent” requests only. " * 4 + "\n\n"
    code = "```python\n" + "".join(f"def step_{i}(x):  # ü\n    return x * {i}\n" for i in range(400)) + "```\n\n"
    bullets = "".join(f"- item {i} with `code` and **bold**\n" for i in range(50)) + "\n"
    text = ""
    while utf8_size(text) < size:
        text += paragraph + code + bullets
    return text[:size]


def test_short_text_is_one_message_unchanged() -> None:
    assert split_message("hello\n```\ncode\n```") == ["hello\n```\ncode\n```"]


def test_empty_text_gives_no_message() -> None:
    assert split_message("") == []


def test_a_200_kb_answer_arrives_as_4_messages_with_balanced_fences() -> None:
    text = long_answer(200_000)
    text = text[: text.rfind("```\n") + 4]  # end on a closed block, as a real answer would
    chunks = split_into_chunks(text)
    messages = [chunk.text for chunk in chunks]
    assert len(messages) == 4
    assert all(utf8_size(message) <= 60_000 for message in messages)
    assert all(fences_balance(message) for message in messages)
    assert reassemble(chunks) == text
    # At least one cut fell inside a code block, and the block was closed and reopened around it.
    assert any(chunk.closed for chunk in chunks)
    for before, after in zip(chunks, chunks[1:]):
        assert before.closed == after.reopened
        if after.reopened:
            assert after.text.startswith("```\n")
            assert before.text.endswith("\n```")


def test_cuts_fall_on_line_boundaries() -> None:
    text = "".join(f"line {i:04}\n" for i in range(100))
    chunks = split_message(text, limit=100)
    assert all(chunk.endswith("\n") for chunk in chunks)
    assert "".join(chunks) == text
    assert all(utf8_size(chunk) <= 100 for chunk in chunks)


def test_an_opening_fence_is_not_left_alone_at_the_end_of_a_message() -> None:
    text = "a" * 30 + "\n```sh\n" + "echo hi\n" * 5 + "```\n"
    chunks = split_into_chunks(text, limit=40)
    assert not any(chunk.text.endswith("```sh\n```") for chunk in chunks)
    assert chunks[1].body.startswith("```sh\n")
    assert all(fences_balance(chunk.text) for chunk in chunks)


def test_a_long_line_is_cut_at_character_boundaries() -> None:
    text = "é" * 100 + "東" * 100
    messages = split_message(text, limit=64)
    assert "".join(messages) == text
    assert all(utf8_size(message) <= 64 for message in messages)


def test_a_long_line_is_cut_after_a_space_when_there_is_one_near_the_end() -> None:
    messages = split_message("word " * 40, limit=64)
    assert all(message.endswith(" ") for message in messages[:-1])


def test_emoji_with_skin_tone_and_flags_are_not_split() -> None:
    text = "👍🏽" * 30 + "🇫🇷" * 30
    messages = split_message(text, limit=20)
    assert "".join(messages) == text
    for message in messages:
        assert not message.startswith("🏽")
        assert message.count("\U0001f1eb") == message.count("\U0001f1f7")  # 🇫 and 🇷 stay paired


def test_a_long_line_inside_a_code_block_is_closed_and_reopened() -> None:
    text = "```\n" + "x" * 100 + "\n```"
    messages = split_message(text, limit=40)
    assert all(fences_balance(message) and utf8_size(message) <= 40 for message in messages)
    assert all(message.startswith("```\n") for message in messages)


def test_a_piece_of_a_cut_line_never_starts_with_backticks() -> None:
    text = "a" * 20 + "```" + "b" * 40
    messages = split_message(text, limit=24)
    assert all(fences_balance(message) for message in messages)


def test_a_limit_too_small_for_the_fences_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 16"):
        split_message("text", limit=8)


# Properties -----------------------------------------------------------------------------------

_TOKENS = ["```", "```py", "\n", "\n\n", "a", "word ", "é", "東", "👍🏽", "🇫🇷", "`", " ", "\r\n", "\u0301"]
texts = st.one_of(
    st.text(max_size=400),
    st.lists(st.sampled_from(_TOKENS), max_size=120).map("".join),
)


@settings(max_examples=2000, deadline=None)
@given(texts, st.integers(min_value=16, max_value=120))
def test_every_message_fits_and_nothing_is_lost(text: str, limit: int) -> None:
    chunks = split_into_chunks(text, limit)
    messages = split_message(text, limit)
    assert messages == [chunk.text for chunk in chunks]
    assert reassemble(chunks) == text
    for chunk in chunks:
        assert chunk.body
        assert utf8_size(chunk.text) <= limit
        prefix = "```\n" if chunk.reopened else ""
        suffix = ("```" if chunk.body.endswith("\n") else "\n```") if chunk.closed else ""
        assert chunk.text == prefix + chunk.body + suffix


prose_line = st.lists(st.sampled_from(["word ", "é", "東", "👍🏽", "`x`", "*b*", " "]), max_size=30).map("".join)
code_line = st.text(st.characters(blacklist_characters="\n"), max_size=60).filter(
    lambda line: line.rstrip("\r") != "```"
)


@st.composite
def styled_answers(draw: st.DrawFn) -> str:
    lines: list[str] = []
    for _ in range(draw(st.integers(0, 6))):
        lines.extend(draw(st.lists(prose_line, max_size=5)))
        lines.append(draw(st.sampled_from(["```", "```python"])))
        lines.extend(draw(st.lists(code_line, max_size=12)))
        lines.append("```")
    lines.extend(draw(st.lists(prose_line, max_size=5)))
    return "\n".join(lines)


@settings(max_examples=500, deadline=None)
@given(styled_answers(), st.integers(min_value=16, max_value=400))
def test_each_message_of_a_well_formed_answer_has_balanced_fences(text: str, limit: int) -> None:
    assert fences_balance(text)
    chunks = split_into_chunks(text, limit)
    assert reassemble(chunks) == text
    for chunk in chunks:
        assert utf8_size(chunk.text) <= limit
        assert fences_balance(chunk.text), chunk

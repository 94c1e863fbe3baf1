"""Claude's Markdown as XEP-0393 styling: what a person sees in Conversations, Gajim or Profanity."""

from __future__ import annotations

import re
import time

from hypothesis import given, settings
from hypothesis import strategies as st

from agentchat.chat.styling import code_block, display_width, markdown_to_styling


def preformatted_blocks(styled: str) -> tuple[list[str], bool]:
    """The contents of XEP-0393 blocks, read as Conversations does, and whether the last one closed."""
    blocks: list[str] = []
    current: list[str] | None = None
    for line in styled.split("\n"):
        if current is None:
            if line.startswith("```"):
                current = []
        elif line.rstrip("\r") == "```":
            blocks.append("\n".join(current))
            current = None
        else:
            current.append(line)
    return blocks, current is None


# Examples -------------------------------------------------------------------------------------


def test_bold_and_italics_become_xep_0393_spans() -> None:
    assert markdown_to_styling("I **fixed** the *bug* and __renamed__ it, _really_.") == (
        "I *fixed* the _bug_ and *renamed* it, _really_."
    )


def test_bold_italic_and_strikethrough() -> None:
    assert markdown_to_styling("***both*** and ~~gone~~") == "*_both_* and ~gone~"


def test_snake_case_and_arithmetic_are_left_alone() -> None:
    text = "call snake_case_name with 2 * 3 and **kwargs"
    assert markdown_to_styling(text) == text


def test_headings_become_bold_lines() -> None:
    assert markdown_to_styling("# Summary\n## The **new** `api` ##\ntext") == (
        "*Summary*\n*The new `api`*\ntext"
    )


def test_setext_heading() -> None:
    assert markdown_to_styling("Title\n=====\nbody") == "*Title*\nbody"


def test_hashtag_is_not_a_heading() -> None:
    assert markdown_to_styling("#hashtag") == "#hashtag"


def test_table_becomes_an_aligned_preformatted_block() -> None:
    table = (
        "Results:\n\n"
        "| Test | Time | Status |\n"
        "|------|-----:|:------:|\n"
        "| `auth` **login** | 1.2 s | ok |\n"
        "| signup | 10.25 s | failed |\n"
        "\nDone."
    )
    assert markdown_to_styling(table) == (
        "Results:\n\n"
        "```\n"
        "Test       |    Time | Status\n"
        "auth login |   1.2 s |   ok\n"
        "signup     | 10.25 s | failed\n"
        "```\n"
        "\nDone."
    )


def test_table_with_wide_characters_and_escaped_pipes_stays_aligned() -> None:
    styled = markdown_to_styling("a | b\n--|--\n東京 | x \\| y\nz | w")
    rows = styled.split("\n")[1:-1]
    assert rows == ["a    | b", "東京 | x | y", "z    | w"]
    assert {display_width(row.split("|")[0]) for row in rows} == {5}


def test_text_with_a_pipe_but_no_delimiter_row_is_not_a_table() -> None:
    assert markdown_to_styling("a | b\nc | d") == "a | b\nc | d"


def test_links_show_their_url() -> None:
    assert markdown_to_styling("See [the docs](https://example.com/a_b_c \"Docs\").") == (
        "See the docs (https://example.com/a_b_c)."
    )


def test_link_whose_text_is_its_url_is_shown_once() -> None:
    assert markdown_to_styling("[https://x.org](https://x.org) [x.org](https://x.org)") == (
        "https://x.org https://x.org"
    )


def test_images_and_badges() -> None:
    assert markdown_to_styling("![logo](http://i.example/l.png) ![](http://i.example/x.png)") == (
        "logo (http://i.example/l.png) http://i.example/x.png"
    )
    assert markdown_to_styling("[![build](https://ci/b.svg)](https://ci/run)") == (
        "build (https://ci/b.svg) (https://ci/run)"
    )


def test_urls_keep_their_underscores_and_asterisks() -> None:
    text = "open https://host/_private_/x*y*z and <https://auto/_link_>"
    assert markdown_to_styling(text) == "open https://host/_private_/x*y*z and https://auto/_link_"


def test_wikipedia_url_keeps_its_parentheses_but_not_the_full_stop() -> None:
    assert markdown_to_styling("see https://en.wikipedia.org/wiki/Foo_(bar).") == (
        "see https://en.wikipedia.org/wiki/Foo_(bar)."
    )


def test_bullets_numbers_and_task_lists() -> None:
    text = "- one\n* *two*\n+ three\n  - nested\n1. first\n2) second\n- [ ] todo\n- [x] done"
    assert markdown_to_styling(text) == (
        "• one\n• _two_\n• three\n  • nested\n1. first\n2) second\n☐ todo\n☑ done"
    )


def test_blockquotes_are_kept_and_styled_inside() -> None:
    assert markdown_to_styling("> quoted **bold**\n> > nested\n>") == "> quoted *bold*\n>> nested\n>"


def test_horizontal_rules() -> None:
    assert markdown_to_styling("a\n\n---\n* * *\n___") == "a\n\n" + "\n".join(["─" * 12] * 3)


def test_inline_code_is_never_touched() -> None:
    text = "use `**kwargs` and `a_b_c` or `[x](y)`"
    assert markdown_to_styling(text) == text


def test_double_backtick_span_becomes_a_single_backtick_span() -> None:
    assert markdown_to_styling("run ``make all`` or ``a ` b``") == "run `make all` or ``a ` b``"


def test_backslash_escapes_are_literal() -> None:
    assert markdown_to_styling(r"not \*emphasis\* nor \_this\_") == "not *emphasis* nor _this_"


def test_fenced_code_is_kept_verbatim_with_its_language() -> None:
    text = "Here:\n```python\nx = a*b*c  # **not bold**\n# not a heading\n| a | b |\n|---|---|\n```\nafter *it*"
    assert markdown_to_styling(text) == (
        "Here:\n```python\nx = a*b*c  # **not bold**\n# not a heading\n| a | b |\n|---|---|\n```\nafter _it_"
    )


def test_unterminated_fence_is_closed() -> None:
    assert markdown_to_styling("```js\nlet a = 1;\n") == "```js\nlet a = 1;\n```\n"
    assert markdown_to_styling("text\n```") == "text\n```\n```"


def test_tilde_and_indented_fences_become_backtick_fences() -> None:
    assert markdown_to_styling("~~~sh\nls *\n~~~") == "```sh\nls *\n```"
    assert markdown_to_styling("1. Run:\n   ```\n   make\n   ```") == "1. Run:\n```\n   make\n```"


def test_a_line_of_three_backticks_inside_a_longer_fence_does_not_end_the_block() -> None:
    styled = markdown_to_styling("````markdown\n```\ninner\n```\n````")
    assert styled == "```markdown\n ```\ninner\n ```\n```"
    assert preformatted_blocks(styled) == ([" ```\ninner\n ```"], True)


def test_a_stray_triple_backtick_in_prose_cannot_open_a_block() -> None:
    styled = markdown_to_styling("```a`b and more\nnext")
    assert preformatted_blocks(styled) == ([], True)


def test_windows_line_endings() -> None:
    assert markdown_to_styling("**a**\r\n```\r\ncode\r\n```\r\n") == "*a*\n```\ncode\n```\n"


def test_plain_text_passes_through_unchanged() -> None:
    text = "Hello! The tests pass (42 of 42); nothing else to do.\n\nBye."
    assert markdown_to_styling(text) == text


def test_empty_text() -> None:
    assert markdown_to_styling("") == ""
    assert markdown_to_styling("\n") == "\n"


def test_a_long_line_of_unmatched_markers_converts_quickly() -> None:
    # Unbounded lazy spans made this quadratic (seconds per line); it must stay well under that.
    started = time.perf_counter()
    markdown_to_styling("**a _b ~~c " * 6000)
    assert time.perf_counter() - started < 3


def test_code_block_helper_guards_fence_lines() -> None:
    assert code_block("a\n```\nb", "diff") == "```diff\na\n ```\nb\n```"


# Properties -----------------------------------------------------------------------------------

_MARKDOWN_TOKENS = [
    "*", "**", "_", "__", "~~", "`", "```", "~~~", "#", "# ", "> ", "- ", "1. ", "|", "|---|", "---",
    "[", "]", "(", ")", "![", "](", "http://x.y/", "\\", " ", "  ", "\n", "\n\n", "\t", "a", "b", "word",
    "é", "東", "👍🏽", "\r\n", ":", "=", "<", ">", "\u200d", "\U000f0000",
]  # fmt: skip
markdownish = st.one_of(
    st.lists(st.sampled_from(_MARKDOWN_TOKENS), max_size=60).map("".join),
    st.text(max_size=200),
)
_FENCE_LIKE = re.compile(r"^\s*(`{3,}|~{3,})")
prose_line = st.lists(st.sampled_from([t for t in _MARKDOWN_TOKENS if "\n" not in t]), max_size=15).map(
    "".join
).filter(lambda line: not _FENCE_LIKE.match(line))
code_line = st.text(st.characters(blacklist_characters="\n\r"), max_size=40).filter(
    lambda line: not re.fullmatch(r"\s*`{3,}\s*", line)
)
code_body = st.lists(code_line, max_size=6).map("\n".join)


@st.composite
def documents(draw: st.DrawFn) -> tuple[str, list[str]]:
    """A Markdown answer mixing prose and fenced code, and the code blocks' contents."""
    parts: list[str] = []
    codes: list[str] = []
    for _ in range(draw(st.integers(0, 5))):
        parts.extend(draw(st.lists(prose_line, max_size=4)))
        body = draw(code_body)
        language = draw(st.sampled_from(["", "python", "sh", "diff"]))
        parts.extend([f"```{language}", *([body] if body else []), "```"])
        codes.append(body)
    parts.extend(draw(st.lists(prose_line, max_size=3)))
    return "\n".join(parts), codes


def is_subsequence(needles: list[str], haystack: list[str]) -> bool:
    remaining = iter(haystack)
    return all(any(needle == item for item in remaining) for needle in needles)


@settings(max_examples=2500, deadline=None)
@given(markdownish)
def test_never_raises_and_fences_always_balance(text: str) -> None:
    styled = markdown_to_styling(text)
    assert preformatted_blocks(styled)[1]
    # A second pass changes bold to italics, but must stay well formed too.
    assert preformatted_blocks(markdown_to_styling(styled))[1]


@settings(max_examples=400, deadline=None)
@given(documents())
def test_code_blocks_are_preserved_byte_for_byte(document: tuple[str, list[str]]) -> None:
    text, codes = document
    blocks, closed = preformatted_blocks(markdown_to_styling(text))
    assert closed
    # Tables in the prose become blocks too, so the code blocks are a subsequence, in order.
    assert is_subsequence(codes, blocks)


@settings(max_examples=500, deadline=None)
@given(st.text(st.characters(blacklist_characters="*_~`#>|[]()!<\\-+=:\r\u2028\u2029"), max_size=200))
def test_text_without_markdown_is_unchanged(text: str) -> None:
    assert markdown_to_styling(text) == text


def test_numbered_list_keeps_its_spacing() -> None:
    assert markdown_to_styling("1.  **a**\n 10)\tb") == "1.  *a*\n 10)\tb"

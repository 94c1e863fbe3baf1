"""Claude's Markdown rewritten as XEP-0393 Message Styling, so answers read well in XMPP clients.

XEP-0393 knows strong (``*x*``), emphasis (``_x_``), strike (``~x~``), preformatted spans (`` `x` ``)
and blocks (```` ``` ````) and quotes (``>``). It has no headings, tables, links or lists, so those
become plain text that reads well on a phone; Profanity shows the result as is, so it must read well
unstyled too. Nothing inside code is touched.

Conversations (``ImStyleParser``) opens a preformatted block at *any* line starting with three
backticks and closes it only at a line of exactly three backticks; every line we emit respects that,
so the fences of the output always balance.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

__all__ = ["code_block", "markdown_to_styling", "display_width"]

FENCE = "```"
HORIZONTAL_RULE = "─" * 12
BULLET = "•"

_FENCE_OPEN = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
_HEADING = re.compile(r"^ {0,3}(?P<level>#{1,6})(?:[ \t]+(?P<text>.*?))?(?:[ \t]+#+)?[ \t]*$")
_SETEXT_UNDERLINE = re.compile(r"^ {0,3}=+[ \t]*$")
_RULE = re.compile(r"^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$")
_QUOTE = re.compile(r"^(?P<marks>(?:[ \t]{0,3}>[ \t]?)+)(?P<rest>.*)$")
_BULLET = re.compile(r"^(?P<indent>[ \t]*)[-*+][ \t]+(?P<rest>.*)$")
_NUMBERED = re.compile(r"^(?P<marker>[ \t]*\d{1,9}[.)][ \t]+)(?P<rest>.*)$")
_TASK_BOX = re.compile(r"^\[(?P<mark>[ xX])\][ \t]+")
_TABLE_DELIMITER_CELL = re.compile(r"^:?-+:?$")
_UNESCAPED_PIPE = re.compile(r"(?<!\\)\|")

# CommonMark lets a backslash escape any ASCII punctuation.
_ESCAPABLE = frozenset("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")
_AUTOLINK = re.compile(r"<(?P<url>(?:https?|ftp)://[^<>\s]+|mailto:[^<>\s]+)>")
_LINK = re.compile(
    r"(?P<bang>!?)\[(?P<text>[^\[\]\n]*)\]"
    r"\(\s*(?P<url><[^<>\n]*>|(?:[^\s()]|\([^\s()]*\))*)"
    r"(?:\s+(?:\"[^\"\n]*\"|'[^'\n]*'|\([^()\n]*\)))?\s*\)"
)
_BARE_URL = re.compile(r"(?:https?|ftp)://[^\s<>]+")
_URL_TRAILING_PUNCTUATION = ".,;:!?'\""
# One alternative per Markdown emphasis form; the group name says what it becomes. A span's text is
# bounded so that a long line full of unmatched markers costs linear time, not quadratic.
_SPAN = r".{1,400}?"
_EMPHASIS = re.compile(
    r"\*\*\*(?=\S)(?P<strong_em_star>" + _SPAN + r")(?<=\S)\*\*\*"
    r"|(?<!\w)___(?=\S)(?P<strong_em_under>" + _SPAN + r")(?<=\S)___(?!\w)"
    r"|\*\*(?=\S)(?P<strong_star>" + _SPAN + r")(?<=\S)\*\*"
    r"|(?<!\w)__(?=\S)(?P<strong_under>" + _SPAN + r")(?<=\S)__(?!\w)"
    r"|\*(?=[^\s*])(?P<em_star>" + _SPAN + r")(?<=[^\s*])\*"
    # Underscores inside words (snake_case) are never emphasis.
    r"|(?<!\w)_(?=[^\s_])(?P<em_under>" + _SPAN + r")(?<=[^\s_])_(?!\w)"
    r"|~~(?=\S)(?P<strike>" + _SPAN + r")(?<=\S)~~"
)
_EMPHASIS_STYLE = {
    "strong_em_star": ("*_", "_*"),
    "strong_em_under": ("*_", "_*"),
    "strong_star": ("*", "*"),
    "strong_under": ("*", "*"),
    "em_star": ("_", "_"),
    "em_under": ("_", "_"),
    "strike": ("~", "~"),
}
# Supplementary Private Use Area-A: stand-ins for text that later rules must not touch.
_PLACEHOLDERS = range(0xF0000, 0xFFFFE)


def markdown_to_styling(text: str) -> str:
    """Rewrite Markdown as XEP-0393 styling; code blocks and inline code are kept byte for byte."""
    # XML turns CRLF into LF on the wire anyway; one line ending keeps the rules below simple.
    text = text.replace("\r\n", "\n")
    trailing_newline = text.endswith("\n")
    if trailing_newline:
        text = text[:-1]
    if not text:
        return "\n" if trailing_newline else ""
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        fence = _opening_fence(line)
        if fence is not None:
            char, length, info = fence
            end = i + 1
            while end < len(lines) and not _closes_fence(lines[end], char, length):
                end += 1
            out.append(FENCE + info)
            out.extend(_guard_preformatted_line(code) for code in lines[i + 1 : end])
            # An unterminated fence is closed at the end, as Markdown renderers do.
            out.append(FENCE)
            i = end + 1
            continue
        table_end = _table_end(lines, i)
        if table_end is not None:
            out.append(FENCE)
            out.extend(_guard_preformatted_line(row) for row in _render_table(lines[i:table_end]))
            out.append(FENCE)
            i = table_end
            continue
        if (
            i + 1 < len(lines)
            and line.strip()
            and _SETEXT_UNDERLINE.match(lines[i + 1])
            and _is_paragraph_line(line)
        ):
            out.append(_guard_plain_line(_strong(_inline(line.strip(), strip_emphasis=True))))
            i += 2
            continue
        out.append(_guard_plain_line(_convert_line(line)))
        i += 1
    return "\n".join(out) + ("\n" if trailing_newline else "")


def code_block(text: str, info: str = "") -> str:
    """``text`` as one preformatted block whose inner lines can never end it early."""
    lines = text.replace("\r\n", "\n").split("\n")
    inner = "\n".join(_guard_preformatted_line(line) for line in lines)
    return f"{FENCE}{info}\n{inner}\n{FENCE}"


def display_width(text: str) -> int:
    """Columns ``text`` takes in a monospaced font: wide East Asian characters and most emoji take two."""
    width = 0
    for char in text:
        if unicodedata.combining(char) or unicodedata.category(char) in ("Mn", "Me", "Cf"):
            continue
        width += 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1
    return width


# Blocks ---------------------------------------------------------------------------------------


def _opening_fence(line: str) -> tuple[str, int, str] | None:
    """(fence character, fence length, info string) when ``line`` opens a fenced code block."""
    match = _FENCE_OPEN.match(line)
    if match is None:
        return None
    fence, info = match["fence"], match["info"].strip()
    # CommonMark: a backtick fence's info string has no backticks (else "```x```" is inline code).
    if fence[0] == "`" and "`" in info:
        return None
    return fence[0], len(fence), info


def _closes_fence(line: str, char: str, length: int) -> bool:
    stripped = line.strip()
    return len(stripped) >= length and stripped == char * len(stripped)


def _guard_preformatted_line(line: str) -> str:
    # Inside a block only a line of exactly ``` ends it; a space keeps such a line as content.
    return " " + line if line.rstrip("\r") == FENCE else line


def _guard_plain_line(line: str) -> str:
    # Outside a block any line starting with ``` would open one that never closes.
    return " " + line if line.startswith(FENCE) else line


def _is_paragraph_line(line: str) -> bool:
    return not (
        _HEADING.match(line)
        or _RULE.match(line)
        or _QUOTE.match(line)
        or _BULLET.match(line)
        or _NUMBERED.match(line)
    )


def _convert_line(line: str) -> str:
    """One line outside code and tables: headings, rules, quotes, lists, then inline styling."""
    heading = _HEADING.match(line)
    if heading is not None:
        return _strong(_inline((heading["text"] or "").strip(), strip_emphasis=True))
    if _RULE.match(line):
        return HORIZONTAL_RULE
    quote = _QUOTE.match(line)
    if quote is not None:
        depth = quote["marks"].count(">")
        rest = _convert_line(quote["rest"])
        return ">" * depth + (" " + rest if rest else "")
    bullet = _BULLET.match(line)
    if bullet is not None:
        rest = bullet["rest"]
        box = _TASK_BOX.match(rest)
        marker = BULLET
        if box is not None:
            marker = "☐" if box["mark"] == " " else "☑"
            rest = rest[box.end() :]
        return f"{bullet['indent']}{marker} {_inline(rest)}"
    numbered = _NUMBERED.match(line)
    if numbered is not None:
        return numbered["marker"] + _inline(numbered["rest"])
    return _inline(line)


def _strong(text: str) -> str:
    # XEP-0393 spans may not be empty nor start or end with whitespace.
    return f"*{text}*" if text.strip() else text


# Tables ---------------------------------------------------------------------------------------


def _split_row(line: str) -> list[str]:
    row = line.strip()
    if row.startswith("|"):
        row = row[1:]
    if row.endswith("|") and not row.endswith("\\|"):
        row = row[:-1]
    return [cell.strip() for cell in _UNESCAPED_PIPE.split(row)]


def _table_end(lines: list[str], start: int) -> int | None:
    """The index after the last row when a GFM table starts at ``start``, else None."""
    if start + 1 >= len(lines):
        return None
    header, delimiter = lines[start], lines[start + 1]
    if not _UNESCAPED_PIPE.search(header) or "|" not in delimiter:
        return None
    delimiter_cells = _split_row(delimiter)
    if not all(_TABLE_DELIMITER_CELL.match(cell) for cell in delimiter_cells):
        return None
    if len(_split_row(header)) != len(delimiter_cells):
        return None
    end = start + 2
    while end < len(lines) and lines[end].strip() and _UNESCAPED_PIPE.search(lines[end]):
        end += 1
    return end


def _render_table(lines: list[str]) -> list[str]:
    """Rows as aligned columns for a preformatted block; the delimiter row is dropped."""
    alignments = [_alignment(cell) for cell in _split_row(lines[1])]
    rows = [
        [_inline(cell.replace("\\|", "|"), strip_emphasis=True, strip_code=True) for cell in _split_row(line)]
        for line in [lines[0], *lines[2:]]
    ]
    columns = max(len(row) for row in rows)
    alignments += ["left"] * (columns - len(alignments))
    rows = [row + [""] * (columns - len(row)) for row in rows]
    widths = [max(display_width(row[column]) for row in rows) for column in range(columns)]
    return [
        " | ".join(_pad(cell, width, align) for cell, width, align in zip(row, widths, alignments)).rstrip()
        for row in rows
    ]


def _alignment(delimiter_cell: str) -> str:
    if delimiter_cell.startswith(":") and delimiter_cell.endswith(":") and len(delimiter_cell) > 1:
        return "center"
    if delimiter_cell.endswith(":"):
        return "right"
    return "left"


def _pad(cell: str, width: int, align: str) -> str:
    gap = width - display_width(cell)
    if align == "right":
        return " " * gap + cell
    if align == "center":
        return " " * (gap // 2) + cell + " " * (gap - gap // 2)
    return cell + " " * gap


# Inline ---------------------------------------------------------------------------------------


@dataclass
class _Placeholders:
    """Swaps protected text (code, URLs, escaped characters) for single characters absent from the line."""

    avoid: set[str]
    values: dict[str, str] = field(default_factory=dict)
    _next: int = _PLACEHOLDERS.start

    @property
    def capacity(self) -> int:
        return len(_PLACEHOLDERS) - sum(1 for char in self.avoid if ord(char) in _PLACEHOLDERS)

    def protect(self, value: str) -> str:
        while chr(self._next) in self.avoid:
            self._next += 1
        key = chr(self._next)
        self._next += 1
        self.values[key] = value
        return key

    def restore(self, text: str) -> str:
        table = {ord(key): value for key, value in self.values.items()}
        # A value may hold earlier placeholders (inline code inside a link's URL); unwrap until none is left.
        for _ in range(len(self.values) + 1):
            restored = text.translate(table)
            if restored == text:
                break
            text = restored
        return text


def _inline(text: str, *, strip_emphasis: bool = False, strip_code: bool = False) -> str:
    """Inline Markdown in one line → styling; with ``strip_*`` the markers are dropped instead."""
    if not text:
        return text
    places = _Placeholders(avoid=set(text))
    if len(text) > places.capacity:
        return text  # a line this long could run out of placeholders; leave it as it is
    text = _protect_code_and_escapes(text, places, strip_code)
    text = _AUTOLINK.sub(lambda m: places.protect(m["url"]), text)
    for _ in range(2):  # twice, so a badge image inside a link is unwrapped too
        text = _LINK.sub(lambda m: _render_link(m, places), text)
    text = _BARE_URL.sub(lambda m: _protect_url(m[0], places), text)
    text = _emphasis(text, strip_emphasis)
    return places.restore(text)


def _protect_code_and_escapes(text: str, places: _Placeholders, strip_code: bool) -> str:
    """Code spans and backslash escapes, scanned left to right as CommonMark does."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char == "\\" and i + 1 < n and text[i + 1] in _ESCAPABLE:
            out.append(places.protect(text[i + 1]))
            i += 2
            continue
        if char != "`":
            out.append(char)
            i += 1
            continue
        run_end = i
        while run_end < n and text[run_end] == "`":
            run_end += 1
        run = run_end - i
        close = _closing_backticks(text, run_end, run)
        if close is None:
            # An unmatched run is literal text, and must not be read as emphasis either.
            out.append(places.protect(text[i:run_end]))
            i = run_end
            continue
        content = text[run_end:close]
        out.append(places.protect(_render_code_span(text[i : close + run], content, run, strip_code)))
        i = close + run
    return "".join(out)


def _closing_backticks(text: str, start: int, run: int) -> int | None:
    position = start
    while True:
        found = text.find("`" * run, position)
        if found == -1:
            return None
        end = found
        while end < len(text) and text[end] == "`":
            end += 1
        if end - found == run:
            return found
        position = end


def _render_code_span(original: str, content: str, run: int, strip_code: bool) -> str:
    inner = content
    if len(inner) >= 2 and inner[0] == " " and inner[-1] == " " and inner.strip():
        inner = inner[1:-1]
    if strip_code:
        return inner
    if run == 1:
        return original
    # XEP-0393 only has single-backtick spans; ``x`` becomes `x` unless x itself holds a backtick.
    if "`" not in inner and inner.strip() and inner == inner.strip():
        return f"`{inner}`"
    return original


def _render_link(match: re.Match[str], places: _Placeholders) -> str:
    label = match["text"].strip()
    url = match["url"].strip()
    if url.startswith("<") and url.endswith(">"):
        url = url[1:-1].strip()
    if not url:
        return label
    plain_label = places.restore(label).strip("`* _")
    if not label or plain_label in (url, _without_scheme(url)):
        return places.protect(url)
    return f"{label} ({places.protect(url)})"


def _without_scheme(url: str) -> str:
    for scheme in ("https://", "http://", "mailto:"):
        if url.startswith(scheme):
            return url[len(scheme) :].rstrip("/")
    return url


def _protect_url(url: str, places: _Placeholders) -> str:
    # Sentence punctuation after a URL is not part of it; nor is a ")" that closes a parenthesis.
    trail = ""
    while url and (
        url[-1] in _URL_TRAILING_PUNCTUATION or (url[-1] == ")" and url.count("(") < url.count(")"))
    ):
        trail = url[-1] + trail
        url = url[:-1]
    return places.protect(url) + trail


def _emphasis(text: str, strip: bool) -> str:
    def replace(match: re.Match[str]) -> str:
        kind = match.lastgroup or "strong_star"
        inner = _emphasis(match[kind], strip)
        if strip:
            return inner
        opening, closing = _EMPHASIS_STYLE[kind]
        return f"{opening}{inner}{closing}"

    return _EMPHASIS.sub(replace, text)

"""Long replies cut into messages a server accepts, without breaking code blocks apart.

Servers cap stanza size (Prosody 256 KiB, ejabberd historically 64 KiB), so a long answer goes out as
several messages of at most ``limit`` UTF-8 bytes each. Cuts fall on line boundaries; when one falls
inside a ```` ``` ```` block, the block is closed at the end of that message and reopened at the start
of the next, so each message renders on its own. The text is read with XEP-0393's rules (a line
starting with three backticks opens a block, a line of exactly three closes it): run
:func:`~agentchat.chat.styling.markdown_to_styling` first.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

__all__ = ["DEFAULT_LIMIT", "MIN_LIMIT", "Chunk", "split_into_chunks", "split_message", "utf8_size"]

DEFAULT_LIMIT = 60_000
FENCE = "```"
_REOPEN = FENCE + "\n"
# Room kept for a closing fence ("\n```") whenever a chunk may end inside a block.
_CLOSE_RESERVE = len("\n" + FENCE)
# Reopening and closing fences plus one character of up to four bytes, with some room to spare.
MIN_LIMIT = 16
_ZWJ = "\u200d"


@dataclass(frozen=True)
class Chunk:
    """One message: ``body`` is a slice of the original text, with fences added around it if needed."""

    body: str
    # The chunk starts inside a code block: a fence is put before the body to reopen it.
    reopened: bool = False
    # The chunk ends inside a code block: a fence is put after the body to close it.
    closed: bool = False

    @property
    def text(self) -> str:
        prefix = _REOPEN if self.reopened else ""
        suffix = ""
        if self.closed:
            suffix = FENCE if self.body.endswith("\n") else "\n" + FENCE
        return prefix + self.body + suffix


def utf8_size(text: str) -> int:
    """Bytes ``text`` takes on the wire (lone surrogates counted, not fatal)."""
    return len(text.encode("utf-8", "surrogatepass"))


def split_message(text: str, limit: int = DEFAULT_LIMIT) -> list[str]:
    """``text`` as messages of at most ``limit`` UTF-8 bytes; no message is empty, none for empty text."""
    return [chunk.text for chunk in split_into_chunks(text, limit)]


def split_into_chunks(text: str, limit: int = DEFAULT_LIMIT) -> list[Chunk]:
    """Like :func:`split_message`, telling which fences were added; joined bodies give back ``text``."""
    if limit < MIN_LIMIT:
        raise ValueError(f"limit must be at least {MIN_LIMIT} bytes, got {limit}")
    if not text:
        return []
    if utf8_size(text) <= limit:
        return [Chunk(text)]
    return _Splitter(limit).split(text)


class _Splitter:
    """Greedy packing of lines into chunks, tracking whether the cut point is inside a code block."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.chunks: list[Chunk] = []
        # (line or piece, whether it opened a block) for the chunk being filled.
        self.parts: list[tuple[str, bool]] = []
        self.size = 0
        self.reopened = False
        self.in_block = False

    def split(self, text: str) -> list[Chunk]:
        for line in _lines(text):
            self._add_line(line)
        if self.parts:
            # The last message is sent as the text has it, even if its block was never closed.
            self.chunks.append(Chunk(self._body(), self.reopened, closed=False))
        return self.chunks

    def _fits(self, size: int, ends_in_block: bool) -> bool:
        prefix = len(_REOPEN) if self.reopened else 0
        reserve = _CLOSE_RESERVE if ends_in_block else 0
        return prefix + self.size + size + reserve <= self.limit

    def _append(self, piece: str, in_block_after: bool, opens: bool = False) -> None:
        self.parts.append((piece, opens))
        self.size += utf8_size(piece)
        self.in_block = in_block_after

    def _body(self) -> str:
        return "".join(piece for piece, _ in self.parts)

    def _flush(self) -> None:
        carried: tuple[str, bool] | None = None
        if len(self.parts) > 1 and self.parts[-1][1]:
            # A block opened by the last line would be empty here: move its fence to the next message.
            carried = self.parts.pop()
            self.in_block = False
        self.chunks.append(Chunk(self._body(), self.reopened, closed=self.in_block))
        self.reopened = self.in_block
        self.parts, self.size = [], 0
        if carried is not None:
            self._append(carried[0], in_block_after=True, opens=True)

    def _add_line(self, line: str) -> None:
        opens = not self.in_block and line.startswith(FENCE)
        closes = self.in_block and line.rstrip("\n").rstrip("\r") == FENCE
        after = (self.in_block or opens) and not closes
        size = utf8_size(line)
        if self._fits(size, after):
            self._append(line, after, opens)
            return
        # A chunk holding only a block's opening fence keeps it: the long line is cut into it instead.
        if self.parts and not (len(self.parts) == 1 and self.parts[0][1]):
            self._flush()
            if self._fits(size, after):
                self._append(line, after, opens)
                return
        # One line longer than a whole message: cut it at character boundaries.
        during = self.in_block or opens
        start = 0
        while start < len(line):
            rest = line[start:]
            if self._fits(utf8_size(rest), after):
                self._append(rest, after, opens and start == 0)
                return
            prefix = len(_REOPEN) if self.reopened else 0
            budget = self.limit - prefix - self.size - (_CLOSE_RESERVE if during else 0)
            if budget < utf8_size(line[start]):
                self._flush()  # only when the chunk holds something; an empty one has room
                continue
            end = _cut(line, start, budget)
            self._append(line[start:end], during)
            self._flush()
            start = end
        self.in_block = after


def _lines(text: str) -> list[str]:
    """Lines with their "\\n"; only "\\n" ends a line, as in XEP-0393."""
    pieces = text.split("\n")
    lines = [piece + "\n" for piece in pieces[:-1]]
    if pieces[-1]:
        lines.append(pieces[-1])
    return lines


def _cut(line: str, start: int, budget: int) -> int:
    """Where to end the piece of ``line`` starting at ``start`` so that it takes at most ``budget`` bytes."""
    end = _longest_prefix(line, start, budget)
    end = _after_last_space(line, start, end)
    end = _before_backticks(line, start, end)
    return _grapheme_boundary(line, start, end)


def _longest_prefix(line: str, start: int, budget: int) -> int:
    low, high = start + 1, min(len(line), start + budget)
    if utf8_size(line[start:high]) <= budget:
        return high
    # Every character takes 1 to 4 bytes: binary search for the longest piece within budget.
    while low < high:
        middle = (low + high + 1) // 2
        if utf8_size(line[start:middle]) <= budget:
            low = middle
        else:
            high = middle - 1
    return low


def _after_last_space(line: str, start: int, end: int) -> int:
    # A cut at a space near the end reads better than one inside a word.
    window_start = end - max(1, (end - start) // 5)
    space = max(line.rfind(" ", window_start, end), line.rfind("\t", window_start, end))
    return space + 1 if space > start else end


def _before_backticks(line: str, start: int, end: int) -> int:
    # The rest starts the next message's line: starting with ``` it would open or close a block there.
    cut = end
    while cut > start and cut < len(line) and line[cut] == "`":
        cut -= 1
    return cut if cut > start else end


def _grapheme_boundary(line: str, start: int, end: int) -> int:
    """Step back so that combining marks, emoji sequences and flags stay whole; best effort, no tables."""
    cut = end
    while cut > start + 1 and cut < len(line) and _joins_previous(line, cut):
        cut -= 1
    return cut if cut > start else end


def _joins_previous(line: str, index: int) -> bool:
    char, previous = line[index], line[index - 1]
    code = ord(char)
    if previous == _ZWJ or char == _ZWJ:
        return True
    if unicodedata.category(char) in ("Mn", "Mc", "Me"):
        return True
    if 0xFE00 <= code <= 0xFE0F or 0xE0100 <= code <= 0xE01EF:  # variation selectors
        return True
    if 0x1F3FB <= code <= 0x1F3FF or 0xE0020 <= code <= 0xE007F:  # skin tones, flag tags
        return True
    if _is_regional_indicator(char) and _is_regional_indicator(previous):
        # Flags are pairs: the cut is inside one when an odd number of indicators precede it.
        count = 0
        position = index - 1
        while position >= 0 and _is_regional_indicator(line[position]):
            count += 1
            position -= 1
        return count % 2 == 1
    return False


def _is_regional_indicator(char: str) -> bool:
    return 0x1F1E6 <= ord(char) <= 0x1F1FF

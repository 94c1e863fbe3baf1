"""One short chat line per agent event: what a tool is doing, how a turn ended, why a tool failed.

Tool inputs come from the model and are only loosely typed: every field is read defensively, and a
missing or odd value gives a shorter line, never an exception.
"""

from __future__ import annotations

import json
import os
import re
import signal
from collections.abc import Mapping
from pathlib import Path, PurePath
from typing import Any

from agentchat.agents.backends.base import TurnResult

__all__ = [
    "compact_json",
    "display_path",
    "first_line",
    "render_process_exit",
    "render_tool_error",
    "render_tool_use",
    "render_turn_summary",
    "truncate",
]

ELLIPSIS = "…"
COMMAND_CHARS = 120
DETAIL_CHARS = 120
ERROR_CHARS = 200
NAME_CHARS = 60
# Claude Code wraps some tool errors in these tags; they mean nothing to a person.
_TOOL_ERROR_TAGS = re.compile(r"</?tool_use_error>")
_WHITESPACE = re.compile(r"\s+")

# Subtypes of a result that end a turn early, in words.
_RESULT_SUBTYPES = {
    "error_max_turns": "reached the maximum number of turns",
    "error_max_budget_usd": "reached the cost budget",
    "error_during_execution": "interrupted",
}


def render_tool_use(name: str, input: Mapping[str, Any], cwd: Path | None = None) -> str:
    """``🔧 Bash: `npm test```, ``📝 Edit src/auth.ts``, … one line saying what the agent does."""
    name = _one_line(name, NAME_CHARS) or "tool"
    path = _path_field(input, cwd)
    if name == "Bash":
        command = _inline_code(first_line(_text(input.get("command")), COMMAND_CHARS))
        return f"🔧 Bash: {command}" if command else "🔧 Bash"
    if name in ("Edit", "Write", "NotebookEdit"):
        return f"📝 {name} {path}".rstrip()
    if name == "MultiEdit":
        edits = input.get("edits")
        count = len(edits) if isinstance(edits, list) else 0
        return " ".join(part for part in ("📝 MultiEdit", path, f"({_plural(count, 'edit')})") if part)
    if name == "Read":
        return f"📖 Read {path}{_line_range(input)}".rstrip()
    if name == "Grep":
        where = f" in {path}" if path else ""
        return f"🔎 Grep {_inline_code(first_line(_text(input.get('pattern')), DETAIL_CHARS))}{where}".rstrip()
    if name == "Glob":
        where = f" in {path}" if path else ""
        return f"🔎 Glob {_inline_code(first_line(_text(input.get('pattern')), DETAIL_CHARS))}{where}".rstrip()
    if name == "WebFetch":
        return f"🌐 WebFetch {first_line(_text(input.get('url')), DETAIL_CHARS)}".rstrip()
    if name == "WebSearch":
        return f"🌐 WebSearch \"{first_line(_text(input.get('query')), DETAIL_CHARS)}\""
    if name == "TodoWrite":
        todos = input.get("todos")
        return f"📋 TodoWrite ({_plural(len(todos) if isinstance(todos, list) else 0, 'item')})"
    if name in ("Task", "Agent"):
        description = _text(input.get("description")) or _text(input.get("subagent_type"))
        description = first_line(description, DETAIL_CHARS)
        return f"🤖 {name}: {description}" if description else f"🤖 {name}"
    detail = compact_json(dict(input), DETAIL_CHARS)
    return f"🔧 {name}: {detail}" if input else f"🔧 {name}"


def render_turn_summary(result: TurnResult) -> str:
    """``✅ Done · 2 steps · 4.2 s · $0.0547``, ``⏹ Stopped`` or ``⚠️ Turn failed: …``.

    "Steps" are the model's round trips within this one answer (Claude Code's ``num_turns``); ``status``
    counts the messages answered, a different thing, under its own name."""
    if result.stopped:
        return "⏹ Stopped"
    if result.is_error or result.subtype != "success":
        reason = "; ".join(error.strip() for error in result.errors if error.strip())
        reason = reason or (result.text or "").strip()
        reason = reason or _RESULT_SUBTYPES.get(result.subtype, result.subtype.replace("_", " "))
        return f"⚠️ Turn failed: {_one_line(reason, ERROR_CHARS)}"
    parts = ["✅ Done"]
    if result.num_turns > 0:
        parts.append(_plural(result.num_turns, "step"))
    if result.duration_ms > 0:
        parts.append(format_duration(result.duration_ms / 1000))
    if result.turn_cost_usd is not None:
        parts.append(format_cost(result.turn_cost_usd))
    elif result.total_cost_usd is not None:
        parts.append(f"{format_cost(result.total_cost_usd)} session")
    return " · ".join(parts)


def render_tool_error(content: str) -> str:
    """``❌ <the error, on one line>``, short enough not to drown the conversation."""
    text = _TOOL_ERROR_TAGS.sub("", str(content))
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return f"❌ {truncate(' ⏎ '.join(lines), ERROR_CHARS) or 'tool failed'}"


def render_process_exit(exit_code: int | None, stderr_tail: str = "") -> str:
    """``💥 The agent's process exited with code 1: <last error line>``, for an exit nobody asked for."""
    if exit_code is None:
        how = "ended"
    elif exit_code < 0:
        how = f"was killed by {_signal_name(-exit_code)}"
    else:
        how = f"exited with code {exit_code}"
    lines = [line.strip() for line in stderr_tail.splitlines() if line.strip()]
    why = f": {truncate(lines[-1], ERROR_CHARS).rstrip('.')}" if lines else ""
    return f"💥 The agent's process {how}{why}. Send a message to start it again."


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def format_duration(seconds: float) -> str:
    if round(seconds, 1) < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def format_cost(usd: float) -> str:
    # Four decimals show what a short turn costs; above a dollar cents are enough.
    return f"${usd:.4f}" if usd < 1 else f"${usd:.2f}"


def display_path(path: str, cwd: Path | None) -> str:
    """``path`` relative to ``cwd`` when inside it, else as given; purely textual, no file system access."""
    if not path or cwd is None:
        return path
    normalized = PurePath(os.path.normpath(path))
    if not normalized.is_absolute():
        return path
    root = PurePath(os.path.normpath(cwd))
    if normalized == root:
        return "."
    if normalized.is_relative_to(root):
        return str(normalized.relative_to(root))
    return path


def truncate(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, the last one an ellipsis when something was cut."""
    return text if len(text) <= limit else text[: max(0, limit - 1)].rstrip() + ELLIPSIS


def first_line(text: str, limit: int) -> str:
    """The first non-empty line, truncated; an ellipsis says when more lines or characters follow."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return ""
    head = truncate(lines[0].strip(), limit)
    if len(lines) > 1 and not head.endswith(ELLIPSIS):
        head += " " + ELLIPSIS
    return head


def compact_json(value: Any, limit: int) -> str:
    """``value`` as one line of JSON without spaces, truncated to ``limit`` characters."""
    try:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    except (TypeError, ValueError):  # circular or unsortable input from a buggy caller
        text = repr(value)
    return truncate(text, limit)


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else str(value)


def _one_line(text: str, limit: int) -> str:
    return truncate(_WHITESPACE.sub(" ", text).strip(), limit)


def _path_field(input: Mapping[str, Any], cwd: Path | None) -> str:
    for key in ("file_path", "notebook_path", "path"):
        value = input.get(key)
        if isinstance(value, str) and value:
            return display_path(first_line(value, DETAIL_CHARS), cwd)
    return ""


def _line_range(input: Mapping[str, Any]) -> str:
    offset, limit = input.get("offset"), input.get("limit")
    if isinstance(offset, int) and isinstance(limit, int) and not isinstance(offset, bool):
        return f" (lines {offset}–{offset + limit - 1})" if limit > 0 else ""
    if isinstance(offset, int) and not isinstance(offset, bool):
        return f" (from line {offset})"
    return ""


def _inline_code(text: str) -> str:
    """``text`` as an XEP-0393 preformatted span, the ellipsis of a truncation left outside it."""
    more = text.endswith(ELLIPSIS)
    core = text[: -len(ELLIPSIS)].rstrip() if more else text
    # A backtick inside would end the span early, and a span cannot be empty: such text stays bare.
    if not core or "`" in core or core != core.strip():
        return text
    return f"`{core}`" + (ELLIPSIS if more else "")


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"

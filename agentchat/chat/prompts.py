"""The text of permission prompts, questions and plan approvals, and of the lines that close them.

The id is on the first line of every prompt (``🔐 Permission #a1b2``) so that a quote-reply from
Conversations, which has no XEP-0461, still says which prompt it answers. What the tool would touch
comes next, small enough to judge on a phone; the last line says how to answer in plain text,
which works in every client.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from agentchat.chat.events import compact_json, display_path, first_line, truncate
from agentchat.chat.invisible import Revealer, reveal
from agentchat.chat.splitting import utf8_size
from agentchat.chat.styling import code_block, markdown_to_styling
from agentchat.permissions.requests import DecidedBy, Decision, PermissionRequest, PromptKind

__all__ = [
    "describe_outcome",
    "render_permission_prompt",
    "render_prompt_closed",
    "render_request",
    "render_plan_prompt",
    "render_prompt_resolved",
    "render_prompt_timeout",
    "render_question_prompt",
]

DIFF_LINES = 40
WRITE_PREVIEW_LINES = 15
COMMAND_LINES = 40
LINE_CHARS = 200
JSON_CHARS = 600
TITLE_CHARS = 120
# A decision line may name two paths ("once only: “always” covers files under …, not …").
RESOLVED_CHARS = 400


def render_permission_prompt(
    request_id: str,
    tool_name: str,
    input: Mapping[str, Any],
    cwd: Path | None,
    pending_count: int,
) -> str:
    """The prompt for one tool call: what it is, what it touches, how to answer.

    Characters that do not show as what they are (bidi controls, zero-width spaces, a carriage
    return…) are revealed as ``⟨U+202E⟩`` everywhere, and a line after the title says so: what the
    owner approves must be what runs.
    """
    shown = Revealer()
    path = display_path(first_line(shown(_text(input.get("file_path"))), TITLE_CHARS), cwd)
    if tool_name == "Edit":
        everywhere = " (every occurrence)" if input.get("replace_all") is True else ""
        title = f"Edit {path}{everywhere}"
        if isinstance(input.get("diff"), str) and "old_string" not in input:
            body = _unified_diff_block(shown(input["diff"]))  # engines that send a ready-made diff (Codex)
        else:
            body = _diff_block([(shown(_text(input.get("old_string"))), shown(_text(input.get("new_string"))))])
    elif tool_name == "MultiEdit":
        edits = [(shown(old), shown(new)) for old, new in _edits(input.get("edits"))]
        title = f"MultiEdit {path} ({len(edits)} edit{'' if len(edits) == 1 else 's'})"
        body = _diff_block(edits)
    elif tool_name == "Write":
        title = f"Write {path}"
        body = _write_preview(_text(input.get("content")), shown)
    elif tool_name == "Bash":
        description = first_line(shown(_text(input.get("description"))), TITLE_CHARS)
        title = f"Bash: {description}" if description else "Bash"
        body = _preview_block(shown(_text(input.get("command"))), COMMAND_LINES)
    else:
        title = shown(tool_name)
        body = [code_block(shown(compact_json(dict(input), JSON_CHARS)))] if input else []
    lines = [f"🔐 Permission #{request_id} — {title.strip()}"]
    if shown.found:
        what = "command" if tool_name == "Bash" else "request"
        lines.append(f"⚠️ This {what} contains invisible or direction-changing characters, shown as ⟨U+…⟩.")
    hint = _BASH_HINT if tool_name == "Bash" else _REPLY_HINT
    lines += [*body, hint + _several_pending(request_id, pending_count, "yes")]
    return "\n".join(lines)


def render_request(request: PermissionRequest, cwd: Path | None, pending_count: int) -> str:
    """The prompt for a pending request, whichever kind it is: a permission, a question or a plan."""
    if request.kind is PromptKind.QUESTION and request.questions:
        questions = [
            {
                "question": question.question,
                "header": question.header,
                "options": [{"label": o.label, "description": o.description} for o in question.options],
                "multiSelect": question.multi_select,
            }
            for question in request.questions
        ]
        return render_question_prompt(request.request_id, questions, pending_count=pending_count)
    if request.kind is PromptKind.PLAN:
        return render_plan_prompt(request.request_id, request.plan or "", pending_count=pending_count)
    return render_permission_prompt(request.request_id, request.tool_name, request.input, cwd, pending_count)


def render_question_prompt(
    request_id: str, questions: Sequence[Mapping[str, Any]], *, pending_count: int = 1
) -> str:
    """Claude's questions (AskUserQuestion) with numbered options."""
    lines = [f"❓ Question #{request_id}"]
    several = len(questions) > 1
    for index, question in enumerate(questions, start=1):
        header = first_line(_text(question.get("header")), TITLE_CHARS)
        text = markdown_to_styling(_text(question.get("question")).strip())
        if several:
            lines.append("")
        label = f"{index}/{len(questions)} " if several else ""
        if header:
            lines.append(f"{label}*{header}*")
            label = ""
        if text:
            lines.append(f"{label}{text}")
        options = question.get("options")
        for number, option in enumerate(options if isinstance(options, (list, tuple)) else (), start=1):
            lines.append(_option_line(number, option))
        if question.get("multiSelect") is True:
            lines.append('(several answers allowed, e.g. "1, 3")')
    hint = "Reply with a number or the option's text"
    if several:
        # The reply parser (agentchat.permissions.replies) reads one answer per question, split by ";".
        hint += ', one per question separated by ";" (e.g. 1; 2)'
    lines.append(hint + _several_pending(request_id, pending_count, "1"))
    return _with_hidden_revealed(lines, "questions")


def render_plan_prompt(request_id: str, plan: str, *, pending_count: int = 1) -> str:
    """A plan to approve before the agent leaves plan mode."""
    styled = markdown_to_styling(plan.strip())
    hint = "Reply: approve / reject, or reject <what to change>"
    hint += _several_pending(request_id, pending_count, "approve")
    return _with_hidden_revealed([line for line in (f"📋 Plan #{request_id}", styled, hint) if line], "plan")


def _with_hidden_revealed(lines: list[str], what: str) -> str:
    """The lines after the title with hidden characters revealed, and a warning under the title if there were any."""
    body, found = reveal("\n".join(lines[1:]))
    warning = [f"⚠️ This {what} contains invisible or direction-changing characters, shown as ⟨U+…⟩."] if found else []
    return "\n".join([lines[0], *warning, body])


def render_prompt_timeout(request_id: str, tool_name: str) -> str:
    return f"⏱ Permission #{request_id} timed out — denied ({tool_name})"


def render_prompt_resolved(request_id: str, decision_text: str) -> str:
    """``↪ #a1b2: allowed``: what became of a prompt, after it was answered here or elsewhere."""
    return f"↪ #{request_id}: {first_line(decision_text, RESOLVED_CHARS)}"


_REPLY_HINT = "Reply: yes / no / always, or no <reason>"
_BASH_HINT = "Reply: yes / no / always, no <reason>, or edit <command> to run another"


def describe_outcome(request: PermissionRequest, decision: Decision | None) -> str:
    """What became of a prompt, in a few words for the person who owns it: ``✅ allowed by you``."""
    if decision is None:
        return "↩️ withdrawn (the turn was interrupted)"
    automatic = {
        DecidedBy.TIMEOUT.value: "⏱ denied: no answer in time",
        DecidedBy.SHUTDOWN.value: "❌ denied: agentchat was stopping",
        DecidedBy.KILLED.value: "❌ denied: the agent stopped",
        DecidedBy.ALWAYS_RULE.value: "✅ allowed by an earlier “always”",
        DecidedBy.LIMIT.value: "❌ denied: too many prompts were waiting",
    }.get(decision.decided_by)
    if automatic is not None:
        return automatic
    updated = decision.updated_input or {}
    if not decision.allowed:
        reason = decision.message.strip()
        said = f": {first_line(reason, TITLE_CHARS)}" if reason and not reason.startswith("The user ") else ""
        what = {PromptKind.PLAN: "plan rejected", PromptKind.QUESTION: "declined"}.get(request.kind, "denied")
        return f"❌ {what} by you{said}"
    if request.kind is PromptKind.QUESTION:
        answers = updated.get("answers")
        given = "; ".join(str(value) for value in answers.values()) if isinstance(answers, Mapping) else ""
        return f"✅ answered by you: {first_line(given, TITLE_CHARS)}" if given else "✅ answered by you"
    if request.kind is PromptKind.PLAN:
        return "✅ plan approved by you"
    ran = updated.get("command")
    if request.bash_command is not None and isinstance(ran, str) and ran != request.bash_command:
        return f"✅ allowed by you, edited to: {_inline(first_line(ran, TITLE_CHARS))}"
    return "✅ allowed for the session by you" if decision.always else "✅ allowed by you"


def render_prompt_closed(request: PermissionRequest, decision: Decision | None, cwd: Path | None = None) -> str:
    """A prompt as it reads once closed (the correction of its message): its first line and what became of
    it, without the "Reply: …" line, so that no device offers an answer any more."""
    title = render_request(request, cwd, 1).splitlines()[0]
    return f"{title}\n{describe_outcome(request, decision)}"


def _inline(text: str) -> str:
    return f"`{text}`" if text and "`" not in text else text


def _several_pending(request_id: str, pending_count: int, example: str) -> str:
    # A bare "yes" would fit several prompts; the id in front says which one it answers.
    return f' (several pending: answer with "{request_id} {example}")' if pending_count > 1 else ""


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else str(value)


def _edits(value: Any) -> list[tuple[str, str]]:
    if not isinstance(value, list):
        return []
    return [
        (_text(edit.get("old_string")), _text(edit.get("new_string")))
        for edit in value
        if isinstance(edit, Mapping)
    ]


def _diff_block(edits: Sequence[tuple[str, str]]) -> list[str]:
    """The edits as one unified diff, at most DIFF_LINES lines, then how many were left out."""
    lines: list[str] = []
    for number, (old, new) in enumerate(edits, start=1):
        if len(edits) > 1:
            lines.append(f"── edit {number} of {len(edits)} ──")
        lines.extend(_diff_lines(old, new))
    if not lines:
        return ["(no change)"]
    shown, hidden = lines[:DIFF_LINES], len(lines) - DIFF_LINES
    block = [code_block("\n".join(shown), "diff")]
    if hidden > 0:
        block.append(f"… ({hidden} more lines)")
    return block


def _unified_diff_block(diff: str) -> list[str]:
    lines = [truncate(line, LINE_CHARS) for line in diff.splitlines() if not line.startswith(("---", "+++", "Index:", "===="))]
    if not lines:
        return ["(no change)"]
    block = [code_block("\n".join(lines[:DIFF_LINES]), "diff")]
    if len(lines) > DIFF_LINES:
        block.append(f"… ({len(lines) - DIFF_LINES} more lines)")
    return block


def _diff_lines(old: str, new: str) -> list[str]:
    if old == new:
        return ["(no change)"]
    diff = difflib.unified_diff(old.splitlines(), new.splitlines(), lineterm="", n=3)
    lines: list[str] = []
    for index, line in enumerate(diff):
        if index < 2:
            continue  # the ---/+++ file headers: the path is on the first line already
        if line.startswith("@@"):
            # Hunk line numbers count from the start of the snippet, not of the file: misleading.
            if lines:
                lines.append("…")
            continue
        lines.append(truncate(line, LINE_CHARS))
    return lines


def _write_preview(content: str, shown: Revealer) -> list[str]:
    if not content:
        return ["(empty file)"]
    # Counted and cut without splitting the whole content: a Write can carry megabytes.
    count = content.count("\n") + (not content.endswith("\n"))
    summary = f"{utf8_size(content):,} bytes, {count} line{'' if count == 1 else 's'}"
    window = content[: LINE_CHARS * (WRITE_PREVIEW_LINES + 1)]
    head = "\n".join(window.split("\n")[:WRITE_PREVIEW_LINES])
    block = _preview_block(shown(head), WRITE_PREVIEW_LINES)
    if count > WRITE_PREVIEW_LINES:
        block.append(f"… ({count - WRITE_PREVIEW_LINES} more lines)")
    return [summary, *block]


def _preview_block(text: str, max_lines: int) -> list[str]:
    lines = text.splitlines()
    if not lines:
        return []
    shown = [truncate(line, LINE_CHARS) for line in lines[:max_lines]]
    block = [code_block("\n".join(shown))]
    if len(lines) > max_lines:
        block.append(f"… ({len(lines) - max_lines} more lines)")
    return block


def _option_line(number: int, option: Any) -> str:
    if isinstance(option, Mapping):
        label = first_line(_text(option.get("label")), TITLE_CHARS)
        description = first_line(_text(option.get("description")), LINE_CHARS)
    else:
        label, description = first_line(_text(option), TITLE_CHARS), ""
    return f"{number}. {label} — {description}" if description else f"{number}. {label}"

"""What a permission prompt is, and what its answer is: plain data, shared by the registry and the chat side.

A ``PermissionRequest`` is one call of the ``permission_prompt`` MCP tool by Claude Code, waiting for the
agent's owner. A ``Decision`` is what goes back to the CLI; ``Decision.to_wire()`` is the exact JSON the
CLI expects (reference §5.4): ``{"behavior":"allow","updatedInput":{…}}`` (``updatedInput`` always sent,
2.1.197 rejects an allow without it) or ``{"behavior":"deny","message":"…"}`` (+ ``"interrupt":true``).

Two tools are not permissions but questions to the person, and the CLI routes them through the same tool
(observed with CLI 2.1.330, see ``tests/permissions/test_real_cli_permissions.py``):

* ``AskUserQuestion`` (``PromptKind.QUESTION``): the input is
  ``{"questions":[{"question","header","options":[{"label","description"}],"multiSelect"}]}`` (1-4 questions,
  2-4 options each). The answer is an allow whose ``updatedInput`` is the input plus
  ``"answers": {<question text>: <chosen label>}``; several labels of a multiSelect question are joined with
  ``", "``. The model then reads "Your questions have been answered: "Q"="label"". Allow without ``answers``
  reads "The user did not answer the questions."; a deny's message reaches the model as is.
* ``ExitPlanMode`` (``PromptKind.PLAN``): the model's tool input is ``{}``; the CLI fills in the plan file's
  text before asking, so the tool sees ``{"plan": <markdown>, "planFilePath": <path>}``. Approving is an allow
  with that input unchanged (the CLI leaves plan mode); rejecting is a deny whose message the model reads
  while it stays in plan mode.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

# Longest input summary shown in the audit log and in chat renderings.
SUMMARY_LIMIT = 200


class PromptKind(enum.Enum):
    TOOL = "tool"  # may Claude run this tool with this input?
    QUESTION = "question"  # AskUserQuestion: pick an option
    PLAN = "plan"  # ExitPlanMode: approve or reject the plan


# Tool names whose "permission" is really a question to the person.
QUESTION_TOOL = "AskUserQuestion"
PLAN_TOOL = "ExitPlanMode"


def prompt_kind(tool_name: str) -> PromptKind:
    if tool_name == QUESTION_TOOL:
        return PromptKind.QUESTION
    if tool_name == PLAN_TOOL:
        return PromptKind.PLAN
    return PromptKind.TOOL


class Behavior(enum.Enum):
    ALLOW = "allow"
    DENY = "deny"


class DecidedBy(enum.StrEnum):
    """Who decided, when it was not a person (a person is named by their bare JID)."""

    TIMEOUT = "timeout"
    SHUTDOWN = "shutdown"
    KILLED = "killed"  # the agent was stopped or removed while the prompt was pending
    ALWAYS_RULE = "always-rule"  # an earlier "always" answer covered it
    LIMIT = "limit"  # too many prompts pending for the agent; refused without asking
    CANCELLED = "withdrawn"  # the CLI dropped the call (interrupt); audit only, the CLI never reads it


@dataclass(frozen=True)
class QuestionOption:
    label: str
    description: str = ""


@dataclass(frozen=True)
class Question:
    """One question of an AskUserQuestion call."""

    question: str
    header: str
    options: tuple[QuestionOption, ...]
    multi_select: bool = False


@dataclass(frozen=True)
class PermissionRequest:
    """One pending ``permission_prompt`` call. ``request_id`` is 4 hex digits, unique among the agent's open prompts."""

    request_id: str
    agent_id: str
    owner: str  # bare JID of the only person who may answer
    tool_name: str
    input: Mapping[str, Any]
    tool_use_id: str | None
    kind: PromptKind
    created_at: datetime
    deadline: datetime
    questions: tuple[Question, ...] = field(default=())

    @property
    def plan(self) -> str | None:
        """The plan text of an ExitPlanMode prompt (the CLI reads it from the plan file)."""
        value = self.input.get("plan")
        return value if isinstance(value, str) else None

    @property
    def bash_command(self) -> str | None:
        value = self.input.get("command")
        return value if self.tool_name == "Bash" and isinstance(value, str) else None

    def summary(self, limit: int = SUMMARY_LIMIT) -> str:
        return summarize_input(self.tool_name, self.input, limit)


@dataclass(frozen=True)
class Decision:
    """The answer to one prompt. ``decided_by`` is the owner's bare JID or a ``DecidedBy`` value."""

    behavior: Behavior
    decided_by: str
    updated_input: Mapping[str, Any] | None = None
    message: str = ""
    # Deny and also end the CLI's turn (reference §5.4): for "stop", not for a plain "no".
    interrupt: bool = False
    # "always": the same tool (Bash: the same command) is allowed without asking for the rest of the session.
    for_session: bool = False

    @classmethod
    def allow(cls, updated_input: Mapping[str, Any], decided_by: str) -> Decision:
        return cls(Behavior.ALLOW, decided_by, updated_input=dict(updated_input))

    @classmethod
    def deny(cls, message: str, decided_by: str, *, interrupt: bool = False) -> Decision:
        return cls(Behavior.DENY, decided_by, message=message, interrupt=interrupt)

    @property
    def allowed(self) -> bool:
        return self.behavior is Behavior.ALLOW

    def to_wire(self) -> dict[str, Any]:
        """The JSON object the CLI reads from the tool's text block."""
        if self.allowed:
            return {"behavior": "allow", "updatedInput": dict(self.updated_input or {})}
        wire: dict[str, Any] = {"behavior": "deny", "message": self.message or "Permission denied."}
        if self.interrupt:
            wire["interrupt"] = True
        return wire


def parse_questions(tool_input: Mapping[str, Any]) -> tuple[Question, ...]:
    """The questions of an AskUserQuestion input; malformed entries are skipped, never fatal."""
    raw = tool_input.get("questions")
    if not isinstance(raw, list):
        return ()
    questions: list[Question] = []
    for item in raw:
        if not isinstance(item, Mapping) or not isinstance(item.get("question"), str):
            continue
        raw_options = item.get("options")
        options = tuple(
            QuestionOption(opt["label"], str(opt.get("description") or ""))
            for opt in (raw_options if isinstance(raw_options, list) else ())
            if isinstance(opt, Mapping) and isinstance(opt.get("label"), str)
        )
        questions.append(
            Question(
                question=item["question"],
                header=str(item.get("header") or ""),
                options=options,
                multi_select=item.get("multiSelect") is True,
            )
        )
    return tuple(questions)


def summarize_input(tool_name: str, tool_input: Mapping[str, Any], limit: int = SUMMARY_LIMIT) -> str:
    """One line, at most ``limit`` characters, saying what the tool would do."""
    text: str
    path = tool_input.get("file_path") or tool_input.get("notebook_path") or tool_input.get("path")
    if tool_name == "Bash" and isinstance(tool_input.get("command"), str):
        text = tool_input["command"]
    elif tool_name == "Write" and isinstance(path, str):
        content = tool_input.get("content")
        size = f" ({len(content)} chars)" if isinstance(content, str) else ""
        text = f"{path}{size}"
    elif tool_name in ("Edit", "MultiEdit", "Read", "NotebookEdit") and isinstance(path, str):
        text = path
    elif tool_name == QUESTION_TOOL:
        text = " / ".join(q.question for q in parse_questions(tool_input)) or _compact_json(tool_input)
    elif tool_name == PLAN_TOOL:
        plan = tool_input.get("plan")
        text = next((line for line in plan.splitlines() if line.strip()), "") if isinstance(plan, str) else ""
        text = text or "(plan)"
    else:
        text = _compact_json(tool_input)
    return _one_line(text, limit)


def _compact_json(value: Mapping[str, Any]) -> str:
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True, default=str)
    except (TypeError, ValueError):
        return repr(value)


def _one_line(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: max(limit - 1, 0)] + "…"

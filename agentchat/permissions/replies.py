"""Reading the owner's chat reply to pending permission prompts.

Grammar (case-insensitive, surrounding whitespace ignored; a trailing ``.`` or ``!`` after a word is fine):

    reply      := [id] verdict
    id         := ["#"] 4 hex digits [":" | ","]          e.g. "a1b2 yes", "#a1b2 no"
    verdict    := "yes" | "y" | "approve"                  allow
                | "no" | "n" | "reject" [sep reason]       deny; the reason is what the model reads
                | "always"                                 allow, and allow this tool (Bash: this exact
                                                           command) for the rest of the session
                | "edit" sep command                       Bash only: allow, running this command instead
                | answers                                  AskUserQuestion only
    answers    := answer {";" answer}                      one per question, in order; with several
                                                           questions, "1 2" (numbers only) also works
    answer     := number {"," number} | option label {"," option label}
                                                           several only for a multiSelect question
    sep        := whitespace or one of , : ; . !

* Without an id the reply goes to the one pending prompt it fits. If it fits several (a bare ``yes`` with
  two tool prompts open) the outcome is ``Ambiguous`` with their ids: the chat side asks "which one?".
  A bare ``2`` with one question and one tool prompt open fits only the question, so it answers it.
* ``always`` is for tool prompts; ``yes``/``approve`` are not answers to a question (``no`` is: it declines).
* With an explicit id, any other text answers a single-question prompt in free form (the CLI's "Other"
  choice; the model reads it as the user's own words).
* An id that is not pending gives ``UnknownRequest`` (the registry turns that into "too late" when it
  knows the id). A 4-letter word that happens to be hex ("dead", "beef") only counts as an id when a reply
  follows it, so "dead code everywhere" stays a normal message.
* Anything else is ``None``: not a reply, the chat side forwards it to the agent.

``parse_reply`` never raises: it reads untrusted chat text (hypothesis-tested).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from agentchat.permissions.requests import PermissionRequest, PromptKind, Question

_ALLOW_WORDS = frozenset({"yes", "y", "approve"})
_DENY_WORDS = frozenset({"no", "n", "reject"})
_ALWAYS_WORDS = frozenset({"always"})
_EDIT_WORDS = frozenset({"edit"})
_REPLY_WORDS = _ALLOW_WORDS | _DENY_WORDS | _ALWAYS_WORDS

# "a1b2 yes", "#a1b2: no because", "#a1b2"; the id is followed by whitespace or ends the text.
_ID = re.compile(r"(#?)([0-9a-fA-F]{4})[:,]?(?:\s+(.*))?\Z", re.DOTALL)
# The first word and what follows; a reply word must be followed by a separator or nothing,
# so "no-one" and "y'all" are not replies.
_WORD = re.compile(r"(\w+)([\s,:;.!]*)(.*)\Z", re.DOTALL)
_NUMBERS = re.compile(r"\d{1,6}(?:\s*[,\s]\s*\d{1,6})*\Z")


class ReplyAction(enum.Enum):
    ALLOW = "allow"
    ALLOW_ALWAYS = "always"
    DENY = "deny"
    ANSWER = "answer"  # an AskUserQuestion answered: see Reply.answers


@dataclass(frozen=True)
class Reply:
    """A reply that decides one prompt."""

    request_id: str
    action: ReplyAction
    message: str = ""  # the deny reason as typed ("" when none)
    # AskUserQuestion: question text -> chosen label(s), several joined with ", " (what the CLI expects).
    answers: Mapping[str, str] = field(default_factory=dict)
    # The tool input to run instead of the one asked about (an edited Bash command); None: as asked.
    updated_input: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Ambiguous:
    """A bare reply that fits several pending prompts."""

    request_ids: tuple[str, ...]


@dataclass(frozen=True)
class UnknownRequest:
    """A reply naming an id that is not pending."""

    request_id: str


@dataclass(frozen=True)
class InvalidReply:
    """Clearly meant for a prompt, but not a valid answer to it; ``reason`` says how to answer."""

    request_id: str
    reason: str


ReplyOutcome = Reply | Ambiguous | UnknownRequest | InvalidReply


def parse_reply(text: str, pending: Sequence[PermissionRequest]) -> ReplyOutcome | None:
    """Read ``text`` as a reply to one of ``pending`` (oldest first); None when it is not a reply."""
    stripped = text.strip()
    if not stripped:
        return None
    by_id = {request.request_id: request for request in pending}

    addressed = _ID.match(stripped)
    if addressed is not None:
        hashed = addressed.group(1) == "#"
        request_id = addressed.group(2).lower()
        rest = (addressed.group(3) or "").strip()
        target = by_id.get(request_id)
        if target is not None:
            if not rest:
                return InvalidReply(request_id, how_to_answer(target))
            outcome = _parse_for(rest, target)
            if outcome is None and target.kind is PromptKind.QUESTION and len(target.questions) == 1:
                # Free text for a question the owner pointed at by id: the CLI's "Other" answer.
                return Reply(request_id, ReplyAction.ANSWER, answers={target.questions[0].question: rest})
            if outcome is None and hashed:
                return InvalidReply(request_id, how_to_answer(target))
            if outcome is not None:
                return outcome
        elif hashed or (rest and _looks_like_reply(rest)):
            return UnknownRequest(request_id)

    results = [_parse_for(stripped, request) for request in pending]
    replies = [outcome for outcome in results if isinstance(outcome, Reply)]
    if len(replies) == 1:
        return replies[0]
    if replies:
        return Ambiguous(tuple(reply.request_id for reply in replies))
    return next((outcome for outcome in results if isinstance(outcome, InvalidReply)), None)


def edited_command(request: PermissionRequest, command: str) -> Reply:
    """Allow a Bash prompt, running ``command`` instead of the one asked about."""
    return Reply(request.request_id, ReplyAction.ALLOW, updated_input={**request.input, "command": command})


def how_to_answer(request: PermissionRequest) -> str:
    """One line telling the owner which replies this prompt takes."""
    if request.kind is PromptKind.PLAN:
        return "Reply approve or reject (reject <reason> tells Claude why)."
    if request.kind is PromptKind.QUESTION:
        if len(request.questions) > 1:
            return "Reply with one option number or text per question, separated by ';' (e.g. 1; 2), or no."
        count = len(request.questions[0].options) if request.questions else 0
        numbers = f" (1-{count})" if count else ""
        return f"Reply with an option number{numbers} or its text, or no."
    if request.bash_command is not None:
        return "Reply yes, no (no <reason> tells Claude why), always, or edit <command> to run another command."
    return "Reply yes, no (no <reason> tells Claude why) or always."


def _parse_for(text: str, request: PermissionRequest) -> Reply | InvalidReply | None:
    """``text`` (no id) as a reply to ``request``."""
    word_match = _WORD.match(text)
    if word_match is not None:
        word = word_match.group(1).casefold()
        separator, rest = word_match.group(2), word_match.group(3).strip()
        if word in _REPLY_WORDS and (separator or not rest):
            return _verdict(word, rest, request)
        if word in _EDIT_WORDS and request.bash_command is not None and separator.strip() in ("", ":"):
            # "edit npm test -- --watch": the command as typed after the word (newlines kept).
            command = word_match.group(3).strip()
            if not command:
                return InvalidReply(request.request_id, "Write the command to run after edit (edit <command>).")
            return edited_command(request, command)
    if request.kind is PromptKind.QUESTION:
        return _parse_answers(text, request)
    return None


def _verdict(word: str, rest: str, request: PermissionRequest) -> Reply | InvalidReply | None:
    rid = request.request_id
    if word in _DENY_WORDS:
        return Reply(rid, ReplyAction.DENY, message=rest)
    if rest:  # "yes please do X": not a reply; the owner is talking to Claude
        return None
    if word in _ALWAYS_WORDS:
        if request.kind is PromptKind.TOOL:
            return Reply(rid, ReplyAction.ALLOW_ALWAYS)
        return InvalidReply(rid, f"'always' only applies to tool permissions. {how_to_answer(request)}")
    if request.kind is PromptKind.QUESTION:
        return InvalidReply(rid, how_to_answer(request))
    return Reply(rid, ReplyAction.ALLOW)


def _parse_answers(text: str, request: PermissionRequest) -> Reply | InvalidReply | None:
    questions = request.questions
    if not questions:
        return None
    if len(questions) == 1:
        parts = [text]
    elif ";" in text:
        parts = [part.strip() for part in text.split(";")]
    else:
        parts = text.split()
        if not all(part.isdecimal() for part in parts):
            return None
    if len(parts) != len(questions):
        if all(_NUMBERS.match(part) for part in parts):
            return InvalidReply(request.request_id, f"There are {len(questions)} questions. {how_to_answer(request)}")
        return None
    answers: dict[str, str] = {}
    for number, (part, question) in enumerate(zip(parts, questions, strict=True), start=1):
        labels = _answer_labels(part, question)
        if isinstance(labels, str):
            prefix = f"Question {number}: " if len(questions) > 1 else ""
            return InvalidReply(request.request_id, prefix + labels)
        if labels is None:
            return None
        answers[question.question] = ", ".join(labels)
    return Reply(request.request_id, ReplyAction.ANSWER, answers=answers)


def _answer_labels(part: str, question: Question) -> list[str] | str | None:
    """The chosen labels; a str says why the answer is invalid; None when it is not an answer at all."""
    options = question.options
    if not options:
        return None
    if _NUMBERS.match(part):
        numbers = [int(token) for token in re.split(r"[,\s]+", part) if token]
        if any(not 1 <= n <= len(options) for n in numbers):
            return f"choose a number from 1 to {len(options)}."
        if len(numbers) > 1 and not question.multi_select:
            return "choose one option only."
        return [options[n - 1].label for n in dict.fromkeys(numbers)]
    by_label = {_normalized(option.label): option.label for option in options}
    whole = by_label.get(_normalized(part))
    if whole is not None:
        return [whole]
    if question.multi_select and "," in part:
        labels = [by_label.get(_normalized(piece)) for piece in part.split(",")]
        if labels and all(label is not None for label in labels):
            return list(dict.fromkeys(label for label in labels if label is not None))
    return None


def looks_like_reply(text: str) -> bool:
    """Whether ``text`` reads as an answer to some prompt (``yes``, ``no <reason>``, ``always``, ``#a1b2 …``,
    numbers), whatever is pending."""
    stripped = text.strip()
    addressed = _ID.match(stripped)
    if addressed is not None and (addressed.group(1) == "#" or _looks_like_reply((addressed.group(3) or "").strip())):
        return True
    return _looks_like_reply(stripped)


def _looks_like_reply(text: str) -> bool:
    word_match = _WORD.match(text)
    if word_match is not None and word_match.group(1).casefold() in _REPLY_WORDS:
        return bool(word_match.group(2)) or not word_match.group(3)
    return bool(_NUMBERS.match(text))


def _normalized(text: str) -> str:
    return " ".join(text.casefold().split()).rstrip(".!")

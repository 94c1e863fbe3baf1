"""Forms, described without a transport: what a bot offers as a button or a form (XMPP: XEP-0050 ad-hoc
commands with XEP-0004 data forms, agentchat.xmpp.xep_0050_commands) and what it gets back.

A ``FormCommand`` is one entry of a contact's command menu. Running it gives a ``Step``: a ``Page`` (a form to
fill in, and what to do with the answers) or ``Done`` (notes and, optionally, a ``Table``). The transport shows
the page and hands the answers back as plain typed ``Answers``; it knows nothing of what they mean. Every form
is the same operation as a text command: its ``submit`` calls the functions that command calls, so the two
cannot drift apart (the bots' forms modules).

Answers come from the other side of the wire: ``Answers`` only hands out what the page declared, a choice
only if it is one of the page's options, and never raises on odd input (``FormInputError`` says what to fix).
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field

from agentchat.errors import AgentChatError

# Longest value taken from a text field; a data form is no way to paste a log.
TEXT_LIMIT = 64 * 1024


class FormInputError(AgentChatError):
    """A submitted form is missing a required answer or holds one that is not offered."""


class FieldKind(enum.StrEnum):
    """What a field asks for (the values are XEP-0004's field types)."""

    TEXT = "text-single"
    TEXT_MULTI = "text-multi"
    CHOICE = "list-single"
    CHOICES = "list-multi"
    BOOLEAN = "boolean"
    FIXED = "fixed"  # a line of text shown in the form, not a question


@dataclass(frozen=True)
class Option:
    value: str
    label: str = ""


@dataclass(frozen=True)
class Field:
    var: str
    kind: FieldKind
    label: str = ""
    # The value shown when the form opens: text, the chosen option('s values), a flag.
    value: str | bool | tuple[str, ...] | None = None
    options: tuple[Option, ...] = ()
    required: bool = False
    description: str = ""


@dataclass(frozen=True)
class Form:
    title: str
    fields: tuple[Field, ...]
    instructions: str = ""

    def field(self, var: str) -> Field | None:
        return next((f for f in self.fields if f.var == var), None)


@dataclass(frozen=True)
class Table:
    """A result shown as rows (XEP-0004 ``reported`` and ``item``): columns are (key, heading)."""

    title: str
    columns: tuple[tuple[str, str], ...]
    rows: tuple[Mapping[str, str], ...]


class NoteKind(enum.StrEnum):
    INFO = "info"
    WARNING = "warn"
    ERROR = "error"


@dataclass(frozen=True)
class Note:
    kind: NoteKind
    text: str


@dataclass(frozen=True)
class Done:
    """The command ended: what to tell the person, and a table to show if any."""

    notes: tuple[Note, ...] = ()
    table: Table | None = None

    @classmethod
    def info(cls, text: str) -> Done:
        return cls((Note(NoteKind.INFO, text),))

    @classmethod
    def warning(cls, text: str) -> Done:
        return cls((Note(NoteKind.WARNING, text),))

    @classmethod
    def error(cls, text: str) -> Done:
        return cls((Note(NoteKind.ERROR, text),))

    @classmethod
    def lines(cls, lines: Sequence[str], kind: NoteKind = NoteKind.INFO) -> Done:
        """The replies a text command would have sent, as one note (empty lines dropped)."""
        text = "\n".join(line for line in lines if line)
        return cls((Note(kind, text or "Done."),))


@dataclass(frozen=True)
class Page:
    """A form to fill in; ``submit`` gets the answers and says what comes next. ``last`` pages offer
    "complete" (Gajim: Finish), others "next"."""

    form: Form
    submit: Callable[[Answers], Awaitable[Step]]
    last: bool = True


Step = Page | Done


@dataclass(frozen=True)
class FormCommand:
    """One entry of a contact's command menu. ``start`` gets the requester's bare JID (the transport's word
    for who is asking; access is checked by the command itself, as its text command checks it)."""

    node: str
    name: str
    start: Callable[[str], Awaitable[Step]]


Value = str | bool | tuple[str, ...]


@dataclass(frozen=True)
class Answers:
    """The answers to one page, typed by the page's own fields (unknown ones are dropped by ``of``)."""

    form: Form
    values: Mapping[str, Value] = field(default_factory=dict)

    @classmethod
    def of(cls, form: Form, raw: Mapping[str, Sequence[str]]) -> Answers:
        """Answers from the raw values a transport read (every ``<value/>`` of a field, as text)."""
        values: dict[str, Value] = {}
        for spec in form.fields:
            given = raw.get(spec.var)
            if given is None or spec.kind is FieldKind.FIXED:
                continue
            items = [str(item) for item in given]
            if spec.kind is FieldKind.BOOLEAN:
                values[spec.var] = bool(items) and items[0].strip().lower() in ("1", "true")
            elif spec.kind is FieldKind.CHOICES:
                values[spec.var] = tuple(dict.fromkeys(item.strip() for item in items if item.strip()))
            elif spec.kind is FieldKind.TEXT_MULTI:
                values[spec.var] = "\n".join(items)[:TEXT_LIMIT]
            else:
                values[spec.var] = (items[0] if items else "")[:TEXT_LIMIT]
        return cls(form, values)

    def text(self, var: str) -> str:
        """A text field's answer, stripped; "" when not given. FormInputError if required and empty."""
        value = self.values.get(var)
        text = value.strip() if isinstance(value, str) else ""
        spec = self.form.field(var)
        if not text and spec is not None and spec.required:
            raise FormInputError(f"{spec.label or var}: an answer is needed.")
        return text

    def raw_text(self, var: str) -> str:
        """A text field's answer as typed (a command to run keeps its spaces and newlines)."""
        value = self.values.get(var)
        return value if isinstance(value, str) else ""

    def flag(self, var: str) -> bool:
        return self.values.get(var) is True

    def choice(self, var: str) -> str:
        """The chosen option's value; FormInputError when none was chosen or it is not on offer."""
        spec = self.form.field(var)
        value = self.values.get(var)
        chosen = value.strip() if isinstance(value, str) else ""
        if not chosen and spec is not None and isinstance(spec.value, str):
            chosen = spec.value  # left at the value the form opened with
        allowed = {option.value for option in spec.options} if spec is not None else set()
        if not chosen:
            raise FormInputError(f"{(spec.label if spec else '') or var}: choose one.")
        if chosen not in allowed:
            raise FormInputError(f"{(spec.label if spec else '') or var}: {chosen[:60]!r} is not one of the choices.")
        return chosen

    def choices(self, var: str) -> tuple[str, ...]:
        """The chosen options of a multiple choice (those on offer only)."""
        spec = self.form.field(var)
        value = self.values.get(var)
        allowed = {option.value for option in spec.options} if spec is not None else set()
        return tuple(item for item in value if item in allowed) if isinstance(value, tuple) else ()


def choice_field(var: str, label: str, options: Sequence[tuple[str, str]], value: str | None = None,
                 *, required: bool = True, description: str = "") -> Field:
    """A list-single field from (value, label) pairs, opening on ``value`` (the first option by default)."""
    opened = value if value is not None else (options[0][0] if options else None)
    return Field(var, FieldKind.CHOICE, label, opened, tuple(Option(v, l) for v, l in options), required, description)

"""Forms without a transport: answers typed by the page's own fields, choices only among the options offered,
and never an exception other than FormInputError, whatever a client submits (hypothesis)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentchat.chat.forms import (
    TEXT_LIMIT,
    Answers,
    Done,
    Field,
    FieldKind,
    Form,
    FormInputError,
    NoteKind,
    Option,
    choice_field,
)

FORM = Form("New agent", (
    choice_field("type", "Agent type", [("claude", "Claude Code"), ("shout", "Shouter")]),
    choice_field("repository", "Repository", [("api", "api (git)"), ("web", "web")], value=None),
    Field("task", FieldKind.TEXT_MULTI, "First task"),
    Field("name", FieldKind.TEXT, "Name", required=True),
    Field("confirm", FieldKind.BOOLEAN, "Sure?"),
    Field("sizes", FieldKind.CHOICES, "Sizes", options=(Option("s"), Option("m"))),
    Field("note", FieldKind.FIXED, value="just text"),
))


def test_answers_take_the_kind_of_their_field() -> None:
    answers = Answers.of(FORM, {
        "type": ["shout"], "repository": ["web"], "task": ["line one", "line two"], "name": ["  bob "],
        "confirm": ["1"], "sizes": ["m", "x", "m"], "note": ["forged"], "unknown": ["ignored"],
    })
    assert answers.choice("type") == "shout" and answers.choice("repository") == "web"
    assert answers.raw_text("task") == "line one\nline two"
    assert answers.text("name") == "bob" and answers.flag("confirm") is True
    assert answers.choices("sizes") == ("m",)  # "x" is not offered, the repeat is dropped
    assert "note" not in answers.values and "unknown" not in answers.values


def test_booleans_as_xep_0004_writes_them() -> None:
    for raw, expected in (["1"], True), (["true"], True), (["0"], False), (["false"], False), ([], False), (["yes"], False):
        assert Answers.of(FORM, {"confirm": raw}).flag("confirm") is expected, raw


def test_a_choice_left_alone_is_the_value_the_form_opened_with() -> None:
    assert Answers.of(FORM, {}).choice("type") == "claude"


def test_what_is_not_offered_or_missing_is_a_form_input_error() -> None:
    with pytest.raises(FormInputError, match="not one of the choices"):
        Answers.of(FORM, {"type": ["../etc"]}).choice("type")
    with pytest.raises(FormInputError, match="Name: an answer is needed"):
        Answers.of(FORM, {"name": ["   "]}).text("name")
    with pytest.raises(FormInputError, match="choose one"):
        Answers.of(Form("x", (choice_field("pick", "Pick", []),)), {}).choice("pick")


def test_text_is_cut_at_the_limit() -> None:
    huge = "x" * (TEXT_LIMIT + 10)
    assert len(Answers.of(FORM, {"task": [huge], "name": [huge]}).raw_text("task")) == TEXT_LIMIT


def test_done_from_the_lines_a_text_command_replies() -> None:
    done = Done.lines(["⏳ Creating…", "", "Agent x created."])
    assert done.notes[0].kind is NoteKind.INFO and done.notes[0].text == "⏳ Creating…\nAgent x created."
    assert Done.lines([]).notes[0].text == "Done."


raw_values = st.dictionaries(
    st.sampled_from(["type", "repository", "task", "name", "confirm", "sizes", "note", "other", ""]),
    st.lists(st.text(max_size=40), max_size=4),
    max_size=9,
)


@settings(max_examples=1000, deadline=None, database=None)
@given(raw=raw_values)
def test_any_submission_gives_offered_values_or_a_form_input_error(raw: dict[str, list[str]]) -> None:
    answers = Answers.of(FORM, raw)
    for var in ("type", "repository"):
        try:
            assert answers.choice(var) in {option.value for option in FORM.field(var).options}  # type: ignore[union-attr]
        except FormInputError:
            pass
    try:
        answers.text("name")
    except FormInputError:
        pass
    assert set(answers.choices("sizes")) <= {"s", "m"}
    assert isinstance(answers.flag("confirm"), bool) and isinstance(answers.raw_text("task"), str)

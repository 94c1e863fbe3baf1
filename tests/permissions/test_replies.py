"""Reply parsing: the grammar in agentchat/permissions/replies.py, and never raising on any text."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentchat.permissions.replies import (
    Ambiguous,
    InvalidReply,
    Reply,
    ReplyAction,
    UnknownRequest,
    parse_reply,
)
from agentchat.permissions.requests import PermissionRequest, parse_questions, prompt_kind

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def make_request(
    request_id: str, tool_name: str = "Write", tool_input: dict[str, Any] | None = None
) -> PermissionRequest:
    tool_input = tool_input if tool_input is not None else {"file_path": "src/auth.ts", "content": "x"}
    return PermissionRequest(
        request_id=request_id,
        agent_id="agent",
        owner="owner@example.org",
        tool_name=tool_name,
        input=tool_input,
        tool_use_id="toolu_1",
        kind=prompt_kind(tool_name),
        created_at=NOW,
        deadline=NOW + timedelta(minutes=5),
        questions=parse_questions(tool_input),
    )


COLOR = {
    "question": "Which color?",
    "header": "Color",
    "options": [{"label": "Red", "description": "warm"}, {"label": "Light blue", "description": "cool"}],
    "multiSelect": False,
}
SIZES = {
    "question": "Which sizes?",
    "header": "Size",
    "options": [{"label": label, "description": ""} for label in ("S", "M", "L")],
    "multiSelect": True,
}
TOOL = make_request("a1b2")
OTHER_TOOL = make_request("c3d4", "Bash", {"command": "ls"})
QUESTION = make_request("e5f6", "AskUserQuestion", {"questions": [COLOR]})
TWO_QUESTIONS = make_request("0a0b", "AskUserQuestion", {"questions": [COLOR, SIZES]})
PLAN = make_request("9c9d", "ExitPlanMode", {"plan": "# Plan\n1. do it", "planFilePath": "/p.md"})


@pytest.mark.parametrize(
    ("text", "action", "message"),
    [
        ("yes", ReplyAction.ALLOW, ""),
        ("  Y ", ReplyAction.ALLOW, ""),
        ("YES!", ReplyAction.ALLOW, ""),
        ("no", ReplyAction.DENY, ""),
        ("N", ReplyAction.DENY, ""),
        ("no.", ReplyAction.DENY, ""),
        ("always", ReplyAction.ALLOW_ALWAYS, ""),
        ("no use pnpm instead", ReplyAction.DENY, "use pnpm instead"),
        ("No, Use PNPM instead", ReplyAction.DENY, "Use PNPM instead"),
        ("no: not that file", ReplyAction.DENY, "not that file"),
    ],
)
def test_single_tool_prompt(text: str, action: ReplyAction, message: str) -> None:
    assert parse_reply(text, [TOOL]) == Reply("a1b2", action, message=message)


@pytest.mark.parametrize("text", ["a1b2 yes", "#a1b2 yes", "#A1B2 YES", "a1b2: yes", "  #a1b2   yes  "])
def test_explicit_id_picks_the_prompt(text: str) -> None:
    assert parse_reply(text, [TOOL, OTHER_TOOL]) == Reply("a1b2", ReplyAction.ALLOW)


def test_explicit_id_with_reason() -> None:
    assert parse_reply("#c3d4 no not now", [TOOL, OTHER_TOOL]) == Reply("c3d4", ReplyAction.DENY, message="not now")


@pytest.mark.parametrize("text", ["yes", "no", "no because", "always"])
def test_bare_reply_with_several_pending_is_ambiguous(text: str) -> None:
    assert parse_reply(text, [TOOL, OTHER_TOOL]) == Ambiguous(("a1b2", "c3d4"))


@pytest.mark.parametrize(
    "text",
    ["hello", "yes please also fix the tests", "nope", "no-one cares", "y'all", "", "   ", "ok", "approved", "yess"],
)
def test_not_a_reply(text: str) -> None:
    assert parse_reply(text, [TOOL]) is None


def test_nothing_pending_means_bare_words_are_not_replies() -> None:
    assert parse_reply("yes", []) is None


def test_unknown_ids() -> None:
    assert parse_reply("#ffff yes", [TOOL]) == UnknownRequest("ffff")
    assert parse_reply("ffff no", [TOOL]) == UnknownRequest("ffff")
    assert parse_reply("#ffff", []) == UnknownRequest("ffff")


def test_hex_looking_words_stay_chat() -> None:
    # "dead" and "beef" are valid hex ids, but what follows is not a reply.
    assert parse_reply("dead code everywhere", [TOOL]) is None
    assert parse_reply("beef", [TOOL]) is None


def test_id_without_verdict_is_invalid() -> None:
    outcome = parse_reply("#a1b2", [TOOL])
    assert isinstance(outcome, InvalidReply) and outcome.request_id == "a1b2"
    outcome = parse_reply("#a1b2 maybe later", [TOOL])
    assert isinstance(outcome, InvalidReply)


@pytest.mark.parametrize(
    ("text", "answer"),
    [("1", "Red"), ("2", "Light blue"), ("red", "Red"), ("LIGHT   BLUE", "Light blue"), ("light blue.", "Light blue")],
)
def test_question_by_number_or_text(text: str, answer: str) -> None:
    assert parse_reply(text, [QUESTION]) == Reply("e5f6", ReplyAction.ANSWER, answers={"Which color?": answer})


def test_question_declined_and_invalid() -> None:
    assert parse_reply("no", [QUESTION]) == Reply("e5f6", ReplyAction.DENY)
    assert parse_reply("no none of these", [QUESTION]) == Reply("e5f6", ReplyAction.DENY, message="none of these")
    for text in ("3", "0", "yes", "always", "1,2"):
        outcome = parse_reply(text, [QUESTION])
        assert isinstance(outcome, InvalidReply), text
    assert parse_reply("green", [QUESTION]) is None


def test_question_free_text_needs_the_id() -> None:
    assert parse_reply("e5f6 dark green please", [QUESTION]) == Reply(
        "e5f6", ReplyAction.ANSWER, answers={"Which color?": "dark green please"}
    )


def test_several_questions_and_multiselect() -> None:
    expected = Reply("0a0b", ReplyAction.ANSWER, answers={"Which color?": "Red", "Which sizes?": "S, L"})
    assert parse_reply("1; 1,3", [TWO_QUESTIONS]) == expected
    assert parse_reply("red; s, l", [TWO_QUESTIONS]) == expected
    assert parse_reply("1 2", [TWO_QUESTIONS]) == Reply(
        "0a0b", ReplyAction.ANSWER, answers={"Which color?": "Red", "Which sizes?": "M"}
    )
    assert isinstance(parse_reply("1", [TWO_QUESTIONS]), InvalidReply)
    assert isinstance(parse_reply("1; 7", [TWO_QUESTIONS]), InvalidReply)


@pytest.mark.parametrize(
    "tool_input",
    [{}, {"questions": 5}, {"questions": [5, None, {"question": 1}]}, {"questions": [{"question": "Q?", "options": 5}]},
     {"questions": [{"question": "Q?", "options": [{"label": 3}, "x", {"label": "ok"}]}]}],
)
def test_malformed_question_input_never_breaks(tool_input: dict[str, Any]) -> None:
    request = make_request("1234", "AskUserQuestion", tool_input)
    assert request.summary()
    for text in ("1", "ok", "no", "1234 whatever", "yes"):
        parse_reply(text, [request])


def test_number_goes_to_the_only_prompt_it_fits() -> None:
    expected = Reply("e5f6", ReplyAction.ANSWER, answers={"Which color?": "Light blue"})
    assert parse_reply("2", [TOOL, QUESTION]) == expected


@pytest.mark.parametrize(
    ("text", "action", "message"),
    [
        ("approve", ReplyAction.ALLOW, ""),
        ("yes", ReplyAction.ALLOW, ""),
        ("reject", ReplyAction.DENY, ""),
        ("Reject: add tests first", ReplyAction.DENY, "add tests first"),
        ("no", ReplyAction.DENY, ""),
    ],
)
def test_plan(text: str, action: ReplyAction, message: str) -> None:
    assert parse_reply(text, [PLAN]) == Reply("9c9d", action, message=message)


def test_always_is_only_for_tools() -> None:
    assert isinstance(parse_reply("always", [PLAN]), InvalidReply)
    assert parse_reply("always", [PLAN, TOOL]) == Reply("a1b2", ReplyAction.ALLOW_ALWAYS)


# -- properties ------------------------------------------------------------------------------------

# Labels and question texts mostly from a small vocabulary that collides with reply words, numbers and
# each other (the interesting cases), plus arbitrary text.
words = st.sampled_from(
    ["yes", "no", "always", "1", "2", "10", "Red", "red ", "a,b", "a", "b", "", " ", "ß", "İ", "#a1b2"]
)
labels = st.one_of(words, st.text(max_size=12))
question_inputs = st.fixed_dictionaries(
    {
        "questions": st.lists(
            st.fixed_dictionaries(
                {
                    "question": st.one_of(st.sampled_from(["Q?", "Q2?", ""]), st.text(max_size=12)),
                    "header": st.just("h"),
                    "options": st.lists(st.fixed_dictionaries({"label": labels, "description": st.just("")}),
                                        max_size=5),
                    "multiSelect": st.booleans(),
                }
            ),
            max_size=3,
        )
    }
)
hex_ids = st.text(alphabet="0123456789abcdef", min_size=4, max_size=4)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | words,
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.sampled_from(["question", "options", "label", "x"]), children, max_size=3),
    max_leaves=8,
)
requests = st.one_of(
    st.builds(make_request, hex_ids, st.sampled_from(["Write", "Bash", "ExitPlanMode"])),
    st.builds(lambda rid, qi: make_request(rid, "AskUserQuestion", qi), hex_ids, question_inputs),
    # Whatever the model put in an AskUserQuestion input (the CLI validates it, we do not rely on that).
    st.builds(lambda rid, raw: make_request(rid, "AskUserQuestion", {"questions": raw}), hex_ids, json_values),
)
reply_like = st.one_of(
    st.text(max_size=200),
    st.lists(st.one_of(words, st.sampled_from([";", ",", " ", ":", ".", "!", "#"]), hex_ids), max_size=6).map("".join),
    st.builds(
        lambda prefix, rid, verdict, rest: f"{prefix}{rid} {verdict}{rest}",
        st.sampled_from(["", "#", " #"]),
        hex_ids,
        st.sampled_from(["yes", "no", "always", "approve", "reject", "1", "2,3", "y", "N.", "edit", "edit:", "EDIT "]),
        st.text(max_size=20),
    ),
)


def check_outcome(outcome: object, pending: list[PermissionRequest]) -> None:
    ids = {request.request_id for request in pending}
    match outcome:
        case None:
            pass
        case Reply(request_id=rid, updated_input=updated) if updated is not None:
            # Only a Bash prompt's command is ever edited, and only its command.
            request = next(r for r in pending if r.request_id == rid)
            assert request.bash_command is not None and {**request.input, "command": updated["command"]} == updated
            assert updated["command"].strip() == updated["command"] and updated["command"]
        case Reply(request_id=rid) | InvalidReply(request_id=rid):
            assert rid in ids
        case Ambiguous(request_ids=several):
            assert len(several) > 1 and set(several) <= ids
        case UnknownRequest(request_id=rid):
            assert rid not in ids
        case _:
            raise AssertionError(outcome)


# Fixed prompts whose labels collide with reply words, numbers and each other.
NASTY_QUESTION = make_request("bbbb", "AskUserQuestion", {"questions": [
    {"question": "Q?", "header": "h", "multiSelect": True,
     "options": [{"label": label, "description": ""} for label in ("yes", "1", "a,b", "a")]},
    {"question": "Q?", "header": "h", "multiSelect": False,
     "options": [{"label": label, "description": ""} for label in ("", "no", "ß")]},
]})
NASTY_POOLS = [
    [], [TOOL], [QUESTION], [TOOL, OTHER_TOOL, QUESTION, PLAN], [TWO_QUESTIONS, NASTY_QUESTION], [NASTY_QUESTION]
]


# No example database anywhere here: the tests must not write into the tree.
@settings(max_examples=3000, deadline=None, database=None)
@given(text=reply_like, pool=st.sampled_from(range(len(NASTY_POOLS))))
def test_parse_reply_never_raises_on_any_text(text: str, pool: int) -> None:
    pending = NASTY_POOLS[pool]
    check_outcome(parse_reply(text, pending), pending)


@settings(max_examples=400, deadline=None, database=None)
@given(text=reply_like, pending=st.lists(requests, max_size=4, unique_by=lambda r: r.request_id))
def test_parse_reply_never_raises_on_any_prompts(text: str, pending: list[PermissionRequest]) -> None:
    check_outcome(parse_reply(text, pending), pending)


@settings(max_examples=200, deadline=None, database=None)
@given(pending=st.lists(requests, min_size=1, max_size=4, unique_by=lambda r: r.request_id), data=st.data())
def test_an_explicit_id_always_reaches_its_prompt(pending: list[PermissionRequest], data: st.DataObject) -> None:
    target = data.draw(st.sampled_from(pending))
    outcome = parse_reply(f"#{target.request_id} no", pending)
    assert outcome == Reply(target.request_id, ReplyAction.DENY)


BASH = make_request("b0b0", "Bash", {"command": "npm test", "description": "Run the tests"})


@pytest.mark.parametrize(
    ("text", "command"),
    [
        ("edit npm test -- --ci", "npm test -- --ci"),
        ("Edit: make check", "make check"),
        ("b0b0 edit pytest -x", "pytest -x"),
        ("#b0b0 edit  ls -la \n| head", "ls -la \n| head"),
        ("edit\nnpm run a &&\nnpm run b", "npm run a &&\nnpm run b"),
    ],
)
def test_edit_allows_another_bash_command(text: str, command: str) -> None:
    assert parse_reply(text, [BASH]) == Reply(
        "b0b0", ReplyAction.ALLOW, updated_input={"command": command, "description": "Run the tests"}
    )


def test_edit_is_for_bash_prompts_only() -> None:
    assert isinstance(parse_reply("edit", [BASH]), InvalidReply)
    assert parse_reply("edit the README instead", [TOOL]) is None  # a Write prompt: a message for the agent
    assert parse_reply("editing is hard", [BASH]) is None
    assert parse_reply("edit, then run it", [BASH]) is None
    assert parse_reply("edit ls", [BASH, OTHER_TOOL]) == Ambiguous(("b0b0", "c3d4"))

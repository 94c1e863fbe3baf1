"""Property tests (hypothesis) for the parsers of user and wire input that had none: the chat command
parser (CommandRegistry.find / Command.run, with the real manager and agent registries), the manager's
`new` dialogue, the MCP tool's arguments model, and the manager's access policy.

The other parsers have theirs next to their unit tests: permission replies (tests/permissions/test_replies.py),
the stream-json decoder and line splitter (tests/agents/backends/test_protocol.py), Markdown to XEP-0393
styling (tests/chat/test_styling.py), message splitting (tests/chat/test_splitting.py), repository
choices (tests/agents/test_repos.py).
"""

from __future__ import annotations

import asyncio
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from agentchat.chat.commands import Command, CommandRegistry
from agentchat.bots.manager.access import AccessPolicy
from agentchat.bots.manager.commands import MANAGER_COMMANDS
from agentchat.bots.manager.dialogue import SKIP_WORDS, NewAgentDialogue
from agentchat.permissions.mcp_server import PermissionPromptArguments
from agentchat.bots.agent.commands import AGENT_COMMANDS

REGISTRIES = {"manager": MANAGER_COMMANDS, "agent": AGENT_COMMANDS}

# Text people (and attackers) type: command words in any case, whitespace of every kind, controls, RTL, emoji.
command_words = st.sampled_from(
    sorted({key for registry in REGISTRIES.values() for command in registry for key in (command.name, *command.aliases)})
)
whitespace = st.text(st.sampled_from(" \t\n\r\u00a0\u2003\u2028\u3000\x0b\x0c"), max_size=3)
noise = st.text(
    st.one_of(
        st.characters(codec="utf-8", exclude_categories=("Cs",)),
        st.sampled_from("\u202e\u200b\u200f\ufeff\x00\x7f#@/:;,.!?*_`~<>&'\"[]{}"),
    ),
    max_size=40,
)


def cased(word: str) -> st.SearchStrategy[str]:
    return st.lists(st.booleans(), min_size=len(word), max_size=len(word)).map(
        lambda upper: "".join(c.upper() if u else c for c, u in zip(word, upper, strict=True))
    )


command_like = st.one_of(
    noise,
    st.tuples(whitespace, command_words.flatmap(cased), whitespace, noise).map("".join),
    st.tuples(command_words, st.just(" "), noise).map("".join),
)


def lookup(registry: CommandRegistry[Any], word: str) -> Command[Any] | None:
    return next((c for c in registry if word in (c.name, *c.aliases)), None)


@settings(max_examples=3000, deadline=None, database=None)
@given(text=command_like, which=st.sampled_from(sorted(REGISTRIES)))
@example(text="", which="manager")
@example(text="KILL swift-fox", which="manager")
@example(text="stop the server", which="agent")
@example(text="\u0130", which="agent")  # "İ".lower() is two characters
@example(text="mode of transport", which="agent")
@example(text="progress quiet", which="agent")
def test_find_matches_exactly_the_grammar(text: str, which: str) -> None:
    """A command when the first word (any case) names one and, if more follows, the command takes arguments
    (and, for one that says which, those arguments: `mode plan` is a command, `mode of transport` is not)."""
    registry = REGISTRIES[which]
    found = registry.find(text)
    words = text.strip().split(maxsplit=1)
    expected = lookup(registry, words[0].lower()) if words else None
    if expected is not None and len(words) > 1 and not expected.takes_args:
        expected = None
    if expected is not None and expected.accepts is not None and not expected.accepts(words[1].strip() if len(words) > 1 else ""):
        expected = None
    assert found is expected


@settings(max_examples=2000, deadline=None, database=None)
@given(word=command_words.flatmap(cased), before=whitespace, after=whitespace, which=st.sampled_from(sorted(REGISTRIES)))
def test_a_bare_command_word_is_found_whatever_its_case_and_surrounding_space(
    word: str, before: str, after: str, which: str
) -> None:
    command = lookup(REGISTRIES[which], word.lower())
    if command is not None:
        assert REGISTRIES[which].find(before + word + after) is command


@settings(max_examples=2000, deadline=None, database=None)
@given(name=st.sampled_from(["kill", "status"]), arguments=noise)
def test_run_hands_the_arguments_over_stripped_and_whole(name: str, arguments: str) -> None:
    received: list[str] = []

    async def handler(_context: object, args: str) -> None:
        received.append(args)

    registry: CommandRegistry[object] = CommandRegistry()
    registry.command(name, help="x", usage=f"{name} <id>")(handler)
    text = f"  {name.upper()}  {arguments}  "
    command = registry.find(text)
    assert command is not None
    asyncio.run(command.run(object(), text))
    # Nothing the user wrote after the command word is lost or changed, but the outer whitespace.
    assert received == [arguments.strip()]


def test_help_lists_every_command_and_alias() -> None:
    for registry in REGISTRIES.values():
        help_text = registry.help_text("Commands")
        for command in registry:
            assert (command.usage or command.name) in help_text
            assert all(alias in help_text for alias in command.aliases)


# --- the `new` dialogue ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def base_path() -> Path:
    base = Path(tempfile.mkdtemp(prefix="agentchat-dialogue-"))
    for name in ("api", "web", "7", "Ünïcode"):
        (base / name).mkdir()
    subprocess.run(["git", "init", "-q", str(base / "api")], check=True)
    outside = Path(tempfile.mkdtemp(prefix="agentchat-outside-"))
    (base / "escape").symlink_to(outside)
    return base


dialogue_input = st.one_of(
    noise,
    st.sampled_from(["1", "2", "3", "0", "-1", "claude", "Claude Code", "api", "web", "7", "escape", "..", "/etc",
                     "api/..", "cancel", "skip", " ", "Ünïcode", "ÜNÏCODE"]),
)


@settings(max_examples=600, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(answers=st.lists(dialogue_input, min_size=1, max_size=6))
def test_the_new_dialogue_never_breaks_and_only_ever_chooses_inside_the_base(base_path: Path, answers: list[str]) -> None:
    async def converse() -> None:
        dialogue = NewAgentDialogue([("claude", "Claude Code")], base_path)
        assert dialogue.opening()
        for text in answers:
            reply = await dialogue.answer(text)
            assert reply.text or reply.choice is not None
            if reply.choice is not None:
                chosen = reply.choice.repository.path
                assert chosen.resolve().parent == base_path.resolve() and chosen.name != "escape"
                # The first task is what the user wrote, untouched; skip words mean none.
                assert reply.choice.task == (None if text.strip().lower() in SKIP_WORDS else text)
            if reply.done:
                return

    asyncio.run(converse())


@pytest.mark.parametrize("word", ["¹", "²", "①"])
def test_a_digit_that_is_not_a_number_is_an_unknown_type(base_path: Path, word: str) -> None:
    reply = asyncio.run(NewAgentDialogue([("claude", "Claude Code")], base_path).answer(word))
    assert "Choose one" in reply.text and not reply.done


# --- the MCP tool's arguments, as the CLI (or anyone with a token) sends them ----------------------


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | noise,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(noise, children, max_size=4),
    max_leaves=12,
)
argument_objects = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {},
        optional={"tool_name": json_values | noise, "input": json_values, "tool_use_id": json_values | noise},
    ),
)


@settings(max_examples=2000, deadline=None, database=None)
@given(arguments=argument_objects)
def test_permission_prompt_arguments_parse_or_fail_cleanly(arguments: Any) -> None:
    try:
        parsed = PermissionPromptArguments.model_validate(arguments)
    except ValidationError:
        return
    assert isinstance(parsed.tool_name, str) and 1 <= len(parsed.tool_name) <= 512
    assert isinstance(parsed.input, dict)
    assert parsed.tool_use_id is None or isinstance(parsed.tool_use_id, str)


# --- who may use the manager ----------------------------------------------------------------------


@settings(max_examples=2000, deadline=None, database=None)
@given(jid=st.one_of(noise, st.tuples(noise, st.just("@"), st.sampled_from(["chat.test", "CHAT.TEST", "evil.test", ""])).map("".join)))
def test_access_policy_never_raises_and_keeps_to_its_domain(jid: str) -> None:
    policy = AccessPolicy([], "chat.test", lambda j: j == "manager@chat.test")
    allowed = policy.allows(jid)
    assert allowed == (jid.lower().endswith("@chat.test") and jid.lower() != "manager@chat.test")


@settings(max_examples=2000, deadline=None, database=None)
@given(name=st.sampled_from(["mode", "model", "progress"]), arguments=noise)
def test_settings_commands_take_one_word_and_leave_sentences_to_the_agent(name: str, arguments: str) -> None:
    """`mode plan` and `model sonnet` are commands, `mode of transport is a bus` a message for the agent;
    `progress` takes only its own settings (`progress report please` is a message)."""
    found = REGISTRIES["agent"].find(f"{name} {arguments}")
    words = arguments.split()
    if name == "progress":
        takes = not words or (len(words) == 1 and words[0].lower() in {"full", "status", "quiet", "auto"})
    else:
        takes = len(words) <= 1
    assert (found is not None) is takes
    if takes:
        assert found is not None and found.name == name

"""The `new` dialogue with runners: the machine first, then that machine's types and repositories; saved and
continued across a restart at every step; with one machine it reads as it always did."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentchat.agents.repos import Repository
from agentchat.bots.manager.dialogue import NewAgentDialogue, Step
from agentchat.bots.manager.machines import Machine, choose_listed
from agentchat.errors import RepositoryError
from tests.support.service import make_repositories

LAPTOP_REPOS = [Repository("api", Path("/home/me/src/api"), True), Repository("site", Path("/home/me/src/site"), False)]


def machines(base: Path, laptop_online: bool = True) -> list[Machine]:
    async def local() -> list[Repository]:
        from agentchat.agents.repos import list_repositories

        return list_repositories(base)

    async def laptop() -> list[Repository]:
        return list(LAPTOP_REPOS)

    return [
        Machine(None, True, (("claude", "Claude Code"),), local),
        Machine("laptop", laptop_online, (("claude", "Claude Code"), ("codex", "Codex")), laptop),
    ]


async def test_the_machine_comes_first_and_sets_the_types_and_repositories(tmp_path: Path) -> None:
    base = make_repositories(tmp_path / "work", ("hubrepo",))
    dialogue = NewAgentDialogue((("claude", "Claude Code"),), base, machines=machines(base))
    opening = dialogue.opening()
    assert "Which machine?" in opening and "1. hub (this server)" in opening and "2. laptop" in opening
    assert "know the machine 'kitchen'. Choose one" in (await dialogue.answer("kitchen")).text  # asked again
    types = (await dialogue.answer("laptop")).text
    assert "On laptop. Which type?" in types and "2. Codex" in types
    repos = (await dialogue.answer("codex")).text
    assert "1. api (git)" in repos and "2. site" in repos and "hubrepo" not in repos
    refused = await dialogue.answer("../etc")
    assert "laptop has no repository" in refused.text and dialogue.step is Step.REPOSITORY
    assert "first task" in (await dialogue.answer("2")).text
    done = await dialogue.answer("fix the footer")
    assert done.done and done.choice is not None
    assert (done.choice.machine, done.choice.backend, done.choice.repository.name, done.choice.task) == (
        "laptop", "codex", "site", "fix the footer")


async def test_an_offline_machine_is_not_offered_and_the_hub_is_local(tmp_path: Path) -> None:
    base = make_repositories(tmp_path / "work", ("hubrepo",))
    dialogue = NewAgentDialogue((("claude", "Claude Code"),), base, machines=machines(base, laptop_online=False))
    assert "2. laptop (offline)" in dialogue.opening()
    assert "laptop is offline now" in (await dialogue.answer("2")).text
    assert "Which type?" in (await dialogue.answer("hub")).text
    assert "hubrepo" in (await dialogue.answer("1")).text
    await dialogue.answer("hubrepo")
    done = await dialogue.answer("skip")
    assert done.choice is not None and done.choice.machine is None and done.choice.repository.name == "hubrepo"


@pytest.mark.parametrize("answers", [[], ["laptop"], ["laptop", "1"], ["laptop", "1", "api"], ["hub"]])
async def test_a_saved_dialogue_continues_where_it_was(tmp_path: Path, answers: list[str]) -> None:
    base = make_repositories(tmp_path / "work", ("hubrepo",))
    dialogue = NewAgentDialogue((("claude", "Claude Code"),), base, machines=machines(base))
    for answer in answers:
        await dialogue.answer(answer)
    again = NewAgentDialogue.restore(dialogue.dump(), (("claude", "Claude Code"),), base, machines(base))
    assert (again.step, again.machine, again.backend, again.repository) == (
        dialogue.step, dialogue.machine, dialogue.backend, dialogue.repository)
    assert again.question() == dialogue.question()


async def test_a_dialogue_on_a_machine_that_is_gone_cannot_continue(tmp_path: Path) -> None:
    base = make_repositories(tmp_path / "work", ("hubrepo",))
    dialogue = NewAgentDialogue((("claude", "Claude Code"),), base, machines=machines(base))
    await dialogue.answer("laptop")
    with pytest.raises(ValueError, match="laptop"):
        NewAgentDialogue.restore(dialogue.dump(), (("claude", "Claude Code"),), base, machines(base)[:1])


def test_without_runners_no_machine_is_asked(tmp_path: Path) -> None:
    dialogue = NewAgentDialogue((("claude", "Claude Code"),), tmp_path)
    assert dialogue.step is Step.TYPE and dialogue.opening().startswith("🆕 New agent. Which type?")
    saved = NewAgentDialogue.restore(dialogue.dump(), (("claude", "Claude Code"),), tmp_path)
    assert saved.step is Step.TYPE


@settings(max_examples=400, deadline=None)
@given(choice=st.text(max_size=40))
def test_a_runners_repository_is_one_of_its_list_or_refused(choice: str) -> None:
    try:
        chosen = choose_listed(choice, LAPTOP_REPOS, "laptop")
    except RepositoryError as exc:
        assert "laptop" in str(exc) or "Give a repository" in str(exc)
    else:
        assert chosen in LAPTOP_REPOS

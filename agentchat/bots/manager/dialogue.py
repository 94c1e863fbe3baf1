"""The guided `new` dialogue: agent type → repository → first task. One per user, never mixed."""

from __future__ import annotations

import asyncio
import enum
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from agentchat.agents.repos import (
    Repository,
    empty_base_message,
    format_repository_list,
    list_repositories,
    resolve_repository,
)
from agentchat.bots.manager.machines import Machine, choose_listed, describe_machine
from agentchat.errors import RepositoryError

CANCEL_WORDS = {"cancel", "abort", "quit"}
SKIP_WORDS = {"skip", "none", "-"}


class Step(enum.Enum):
    MACHINE = "machine"  # only with runners (agentchat.bots.manager.machines)
    TYPE = "type"
    REPOSITORY = "repository"
    TASK = "task"


@dataclass
class NewAgentChoice:
    backend: str
    repository: Repository
    task: str | None
    machine: str | None = None  # a runner's name; None: the hub itself


@dataclass
class Reply:
    text: str
    done: bool = False  # the dialogue ended (cancelled or completed)
    choice: NewAgentChoice | None = None


@dataclass
class NewAgentDialogue:
    """Pure state machine: feed it the user's messages, send back what it answers."""

    backends: Sequence[tuple[str, str]]  # (kind, label), Claude Code first
    base_path: Path
    step: Step = Step.TYPE
    backend: str | None = None
    repositories: list[Repository] = field(default_factory=list)
    repository: Repository | None = None
    # With runners: the machines to choose from first, and the one chosen (None: the hub itself).
    machines: Sequence[Machine] = ()
    machine: str | None = None
    machine_chosen: bool = False

    def __post_init__(self) -> None:
        if len(self.machines) > 1 and self.step is Step.TYPE and not self.machine_chosen:
            self.step = Step.MACHINE

    def dump(self) -> str:
        """The dialogue's state as JSON, to continue it after a restart (see ``restore``)."""
        return json.dumps({
            "step": self.step.value,
            "backend": self.backend,
            "repositories": [[r.name, str(r.path), r.is_git] for r in self.repositories],
            "repository": None if self.repository is None else [
                self.repository.name, str(self.repository.path), self.repository.is_git
            ],
            "machine": self.machine,
            "machine_chosen": self.machine_chosen,
        })

    @classmethod
    def restore(cls, state: str, backends: Sequence[tuple[str, str]], base_path: Path,
                machines: Sequence[Machine] = ()) -> NewAgentDialogue:
        """The dialogue ``dump`` saved; ValueError if the state is unreadable or names a type (or a machine) no
        longer offered."""
        data = json.loads(state)
        machine = data.get("machine")
        if machine is not None:
            chosen = next((m for m in machines if m.name == machine), None)
            if chosen is None:
                raise ValueError(f"the machine {machine!r} is no longer a runner")
            if not chosen.online or not chosen.backends:
                raise ValueError(f"the machine {machine!r} is offline")
            backends = chosen.backends
        dialogue = cls(backends, base_path, step=Step(data["step"]), backend=data.get("backend"), machines=machines,
                       machine=machine, machine_chosen=bool(data.get("machine_chosen")) or data["step"] != Step.TYPE.value)
        if dialogue.backend is not None and dialogue.backend not in {kind for kind, _ in backends}:
            raise ValueError(f"the agent type {dialogue.backend!r} is no longer offered")
        dialogue.repositories = [Repository(name, Path(path), bool(git)) for name, path, git in data.get("repositories", [])]
        if data.get("repository"):
            name, path, git = data["repository"]
            dialogue.repository = Repository(name, Path(path), bool(git))
        return dialogue

    def question(self) -> str:
        """What the dialogue asks now (said again after a restart)."""
        if self.step is Step.MACHINE:
            return self.opening()
        if self.step is Step.TYPE and self.machine is not None:
            return self._type_question()
        if self.step is Step.TYPE:
            return self.opening()
        if self.step is Step.REPOSITORY:
            return "Which repository?\n" + format_repository_list(self.repositories) + "\n(Reply with a number or a name.)"
        assert self.repository is not None
        return f"Repository: {self.repository.name}. What is the first task? (`skip` to start without one)"

    def opening(self) -> str:
        if self.step is Step.MACHINE:
            return ("🆕 New agent. Which machine?\n" + self._machine_choices()
                    + "\n(Reply with a number or a name; `cancel` to stop.)")  # fmt: skip
        return "🆕 New agent. Which type?\n" + self._type_choices() + "\n(Reply with a number or a name; `cancel` to stop.)"

    def _type_question(self) -> str:
        return f"On {self.machine}. Which type?\n" + self._type_choices() + "\n(Reply with a number or a name.)"

    def _machine_choices(self) -> str:
        return "\n".join(f"{n}. {describe_machine(m)}" for n, m in enumerate(self.machines, 1))

    def _chosen_machine(self) -> Machine | None:
        return next((m for m in self.machines if m.name == self.machine), None)

    def _choose_machine(self, word: str) -> Reply:
        chosen = None
        if word.isdecimal() and 1 <= int(word) <= len(self.machines):
            chosen = self.machines[int(word) - 1]
        else:
            chosen = next((m for m in self.machines if word.lower() in (m.label.lower(), (m.name or "").lower())), None)
        if chosen is None:
            return Reply(f"I don't know the machine {word!r}. Choose one:\n{self._machine_choices()}")
        if not chosen.online:
            return Reply(f"⚠️ {chosen.label} is offline now. Choose another:\n{self._machine_choices()}")
        if not chosen.backends:
            return Reply(f"⚠️ {chosen.label} offers no agent type. Choose another:\n{self._machine_choices()}")
        self.machine, self.backends, self.step, self.machine_chosen = chosen.name, chosen.backends, Step.TYPE, True
        if chosen.name is None:
            return Reply("Which type?\n" + self._type_choices() + "\n(Reply with a number or a name.)")
        return Reply(self._type_question())

    def _type_choices(self) -> str:
        return "\n".join(f"{n}. {label}" for n, (_, label) in enumerate(self.backends, 1))

    async def answer(self, text: str) -> Reply:
        word = text.strip()
        if word.lower() in CANCEL_WORDS:
            return Reply("Cancelled: no agent was created.", done=True)
        if self.step is Step.MACHINE:
            return self._choose_machine(word)
        if self.step is Step.TYPE:
            return await self._choose_type(word)
        if self.step is Step.REPOSITORY:
            return await self._choose_repository(word)
        return self._choose_task(text)

    async def _choose_type(self, word: str) -> Reply:
        chosen = None
        if word.isdecimal() and 1 <= int(word) <= len(self.backends):
            chosen = self.backends[int(word) - 1][0]
        else:
            for kind, label in self.backends:
                if word.lower() in (kind.lower(), label.lower()):
                    chosen = kind
        if chosen is None:
            return Reply(f"I don't know the type {word!r}. Choose one:\n{self._type_choices()}")
        self.backend = chosen
        machine = self._chosen_machine()
        try:
            if machine is not None and machine.name is not None:
                self.repositories = await machine.repositories()
            else:
                self.repositories = await asyncio.to_thread(list_repositories, self.base_path)
        except RepositoryError as exc:
            return Reply(f"⚠️ {exc}", done=True)
        if not self.repositories:
            where = f"{self.machine} has no repositories yet" if self.machine else empty_base_message(self.base_path)
            return Reply(f"⚠️ {where}", done=True)
        self.step = Step.REPOSITORY
        return Reply("Which repository?\n" + format_repository_list(self.repositories) + "\n(Reply with a number or a name.)")

    async def _choose_repository(self, word: str) -> Reply:
        try:
            if self.machine is not None:
                self.repository = choose_listed(word, self.repositories, self.machine)
            else:
                self.repository = await asyncio.to_thread(resolve_repository, self.base_path, word, self.repositories)
        except RepositoryError as exc:
            return Reply(f"⚠️ {exc}\nChoose one:\n{format_repository_list(self.repositories)}")
        self.step = Step.TASK
        return Reply(f"Repository: {self.repository.name}. What is the first task? (`skip` to start without one)")

    def _choose_task(self, text: str) -> Reply:
        assert self.backend is not None and self.repository is not None
        task = None if text.strip().lower() in SKIP_WORDS else text
        if task is not None and not task.strip():
            return Reply("The task is empty. Write the first task, or `skip`.")
        return Reply("", done=True, choice=NewAgentChoice(self.backend, self.repository, task, self.machine))

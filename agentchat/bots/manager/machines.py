"""The machines agents run on, as the manager shows them: the hub itself and its runners (agentchat.runners).

What the `new` dialogue offers when there is more than one machine (``Machine``), and the lines the manager's
commands add for agents and repositories on runners. With no runner registered nothing here shows: the
manager reads as it always did.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from agentchat.agents.repos import Repository, list_repositories
from agentchat.errors import AgentChatError, RepositoryError
from agentchat.runners.hub import RunnerHub, RunnerLink, RunnerUnavailable, offline_status
from agentchat.runners.store import RemoteAgent

if TYPE_CHECKING:
    from agentchat.bots.manager.bot import UserContext

HUB_LABEL = "hub"


@dataclass(frozen=True)
class Machine:
    """One choice of the dialogue's machine step. ``name`` None is the hub itself."""

    name: str | None
    online: bool
    backends: tuple[tuple[str, str], ...]
    repositories: Callable[[], Awaitable[list[Repository]]]

    @property
    def label(self) -> str:
        return self.name or HUB_LABEL


def machines(hub: RunnerHub | None, backends: Sequence[tuple[str, str]], base_path: Path) -> list[Machine]:
    """The hub, then each runner; empty when there is no runner (the dialogue then asks no machine)."""
    if hub is None or not hub.has_runners:
        return []
    local = Machine(None, True, tuple(backends), lambda: asyncio.to_thread(list_repositories, base_path))
    return [local, *(_remote(hub, link) for link in hub.links())]


def _remote(hub: RunnerHub, link: RunnerLink) -> Machine:
    async def repositories() -> list[Repository]:
        try:
            listed = await hub.repositories(link.name)
        except AgentChatError as exc:
            raise RepositoryError(f"{exc}") from None
        if listed.error:
            raise RepositoryError(f"{link.name}: {listed.error}")
        return [Repository(r.name, Path(r.path), r.git) for r in listed.repositories]

    kinds = tuple((b.kind, b.label) for b in link.state.backends) if link.state is not None else ()
    return Machine(link.name, bool(link.online), kinds, repositories)


def describe_machine(machine: Machine) -> str:
    return machine.label + (" (this server)" if machine.name is None else "" if machine.online else " (offline)")


def choose_listed(choice: str, listed: Sequence[Repository], machine: str) -> Repository:
    """A repository of a runner's list by number or name (the runner checks it again before using it)."""
    text = choice.strip()
    if not text:
        raise RepositoryError("Give a repository: its number or its name.")
    if text.isdecimal():
        number = int(text) if len(text) <= 9 else 0
        if 1 <= number <= len(listed):
            return listed[number - 1]
    for repository in listed:
        if repository.name == text:
            return repository
    folded = [r for r in listed if r.name.casefold() == text.casefold()]
    if len(folded) == 1:
        return folded[0]
    shown = text if len(text) <= 60 else text[:59] + "…"
    raise RepositoryError(f"{machine} has no repository {shown!r}.")


# what the manager's commands add when runners exist


def find_remote(ctx: UserContext, agent_id: str) -> RemoteAgent | None:
    hub = ctx.bot.runners
    agent = hub.get(agent_id) if hub is not None and agent_id else None
    return agent if agent is not None and agent.owner == ctx.user else None


def where_local(ctx: UserContext) -> str:
    hub = ctx.bot.runners
    return f" — on {HUB_LABEL}" if hub is not None and hub.has_runners else ""


def remote_lines(ctx: UserContext, agents: Sequence[RemoteAgent]) -> list[str]:
    hub = ctx.bot.runners
    assert hub is not None or not agents
    return [
        f"• {a.id} — {hub.agent_status(a)} — {_name(a.repo)} — {ctx.bot.supervisor.jid_of(a.id)} — on {a.runner}"
        for a in agents if hub is not None
    ]


async def remote_status(ctx: UserContext, agent: RemoteAgent) -> str:
    hub = ctx.bot.runners
    assert hub is not None
    jid = ctx.bot.supervisor.jid_of(agent.id)
    try:
        details = await hub.details(agent)
    except RunnerUnavailable:
        link = hub.link(agent.runner)
        since = f" since {_clock(link.since)}" if link is not None and link.online is False else ""
        return "\n".join([
            f"📊 {agent.id}: {offline_status(agent.runner)}{since}",
            f"Chat: {jid} (messages wait on the server until {agent.runner} is back)",
            f"Repository: {agent.repo} on {agent.runner}",
            f"Backend: {agent.backend}",
        ])  # fmt: skip
    idle_for = time.time() - details.last_active
    return "\n".join([
        f"📊 {agent.id}: {details.status}",
        f"Chat: {jid}",
        f"Runs on: {agent.runner}",
        f"Repository: {details.repository_path}",
        f"Backend: {details.backend} · session {details.session_id}",
        f"Messages answered: {details.turns} · cost so far: ${details.total_cost_usd:.4f}",
        f"Last active: {idle_for:.0f} s ago · queued messages: {details.queued}",
    ])  # fmt: skip


async def remote_repository_lines(ctx: UserContext) -> list[str]:
    """``runner:repo`` for every online runner (local ones are listed unprefixed before)."""
    hub = ctx.bot.runners
    if hub is None:
        return []
    lines: list[str] = []
    for link in hub.links():
        if not link.online:
            lines.append(f"{link.name}: {offline_status(link.name)}")
            continue
        try:
            listed = await hub.repositories(link.name)
        except AgentChatError as exc:
            lines.append(f"{link.name}: ⚠️ {exc}")
            continue
        if listed.error:
            lines.append(f"{link.name}: ⚠️ {listed.error}")
        elif not listed.repositories:
            lines.append(f"{link.name}: no repositories under {listed.base_path}")
        else:
            lines.append(f"On {link.name} (under {listed.base_path}):")
            lines += [f"• {link.name}:{r.name}{' (git)' if r.git else ''}" for r in listed.repositories]
    return lines


def runner_lines(ctx: UserContext) -> list[str]:
    """`runners`: every machine with its state, the hub first."""
    hub = ctx.bot.runners
    supervisor = ctx.bot.supervisor
    local = supervisor.all()
    running = sum(1 for a in local if a.process_running)
    load = _load()
    lines = [f"• {HUB_LABEL} (this server) — online — {_count(len(local))} — {running} running — load {load}"]
    if hub is None or not hub.has_runners:
        return ["No runners: every agent runs on this server. On the hub, `agentchat runner add NAME` registers "
                "another machine (see README, Several machines).", *lines]  # fmt: skip
    for link in hub.links():
        count = len(hub.on_runner(link.name))
        if link.online and link.state is not None:
            state = link.state
            lines.append(f"• {link.name} — online since {_clock(link.since)} — {_count(count)} — {state.running} running "
                         f"of {state.max_concurrent} — load {state.load:.2f} ({state.cpus} CPUs) — "
                         f"{_count(len(link.repositories), 'repository', 'repositories')}")  # fmt: skip
        elif link.online is None:
            lines.append(f"• {link.name} — not heard from yet — {_count(count)}")
        else:
            lines.append(f"• {link.name} — offline since {_clock(link.since)} — {_count(count)}")
    return [f"Machines ({1 + len(hub.links())}):", *lines]


def _count(n: int, one: str = "agent", many: str = "agents") -> str:
    return f"{n} {one if n == 1 else many}"


def _load() -> str:
    return f"{os.getloadavg()[0]:.2f} ({os.cpu_count() or 1} CPUs)"


def _clock(when: float) -> str:
    return time.strftime("%H:%M UTC", time.gmtime(when))


def _name(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1]

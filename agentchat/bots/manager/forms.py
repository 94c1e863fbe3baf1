"""The manager's forms (ad-hoc commands): New agent, List agents, Kill agent.

Each is its text command with its answers given at once: "New agent" walks the same `new` dialogue (so the
same checks of the type and the repository) and creates the agent through the same code; "Kill agent" runs
the `kill` command itself; "List agents" shows the agents `list` shows, as a table. The same people may use
them (manager.allowedUsers); what the text command would have replied becomes the form's result.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from agentchat.agents.repos import empty_base_message, list_repositories
from agentchat.bots.manager.bot import ManagerBot, UserContext
from agentchat.bots.manager.commands import kill_agent
from agentchat.bots.manager.dialogue import Step as DialogueStep
from agentchat.chat.forms import (
    Answers,
    Done,
    Field,
    FieldKind,
    Form,
    FormCommand,
    NoteKind,
    Page,
    Table,
    choice_field,
)
from agentchat.errors import RepositoryError

log = logging.getLogger(__name__)

REFUSED = "⛔ You are not allowed to use this service."


@dataclass
class FormReplies(UserContext):
    """A user's context whose replies are collected for the form's result instead of sent as messages."""

    lines: list[str] = field(default_factory=list)

    async def reply(self, text: str) -> None:
        self.lines.append(text)


def manager_forms(bot: ManagerBot) -> list[FormCommand]:
    return [
        FormCommand("new", "New agent", partial(_new_agent, bot)),
        FormCommand("list", "List agents", partial(_list_agents, bot)),
        FormCommand("kill", "Kill agent", partial(_kill_agent, bot)),
    ]


async def _allowed(bot: ManagerBot, user: str) -> bool:
    if not bot.allows(user):
        log.warning("manager: refused a form from %s (not in manager.allowedUsers)", user)
        return False
    # As messages do: until the agents of the last run are back, "list" or "kill" would not know them.
    await bot.wait_ready()
    return True


# New agent: type, repository and first task on one page

async def _new_agent(bot: ManagerBot, user: str) -> Page | Done:
    if not await _allowed(bot, user):
        return Done.error(REFUSED)
    if not bot.supervisor.can_start_another():
        return Done.warning(
            f"⚠️ The limit of {bot.supervisor.slots.limit} running agents is reached and all of them are busy. "
            "Free a slot with Kill agent (see List agents), or wait until one finishes its turn."
        )
    try:
        repositories = await asyncio.to_thread(list_repositories, bot.base_path)
    except RepositoryError as exc:
        return Done.error(f"⚠️ {exc}")
    if not repositories:
        return Done.error(f"⚠️ {empty_base_message(bot.base_path)}")
    dialogue = bot.new_dialogue()
    form = Form(
        "New agent",
        (
            choice_field("type", "Agent type", list(dialogue.backends)),
            choice_field("repository", "Repository",
                         [(r.name, f"{r.name} (git)" if r.is_git else r.name) for r in repositories]),
            Field("task", FieldKind.TEXT_MULTI, "First task", description="Leave empty to start without one."),
        ),
        instructions=f"An agent works in one repository under {bot.base_path}.",
    )
    return Page(form, partial(_create, bot, user))


async def _create(bot: ManagerBot, user: str, answers: Answers) -> Done:
    if not await _allowed(bot, user):
        return Done.error(REFUSED)
    kind, repository = answers.choice("type"), answers.choice("repository")
    task = answers.raw_text("task").strip()
    dialogue = bot.new_dialogue()
    # The `new` dialogue's own steps, answered from the form: the same checks as typed answers get.
    for answer, reached in ((kind, DialogueStep.REPOSITORY), (repository, DialogueStep.TASK)):
        reply = await dialogue.answer(answer)
        if dialogue.step is not reached or reply.done:
            return Done.error(reply.text)
    context = FormReplies(bot, user)
    await bot.continue_new_agent(context, dialogue, task or "skip")
    created = any(line.startswith("Agent ") and "created" in line for line in context.lines)
    return Done.lines(context.lines, NoteKind.INFO if created else NoteKind.ERROR)


# List agents: the agents `list` shows, as a table

async def _list_agents(bot: ManagerBot, user: str) -> Done:
    if not await _allowed(bot, user):
        return Done.error(REFUSED)
    agents = bot.supervisor.owned_by(user)
    if not agents:
        return Done.info("You have no agents. Run New agent (or send `new`) to create one.")
    rows = tuple(
        {
            "id": agent.id,
            "state": agent.record.status.value,
            "repository": Path(agent.record.repo).name,
            "mode": agent.record.permission_mode or "default",
            "chat": bot.supervisor.jid_of(agent.id),
        }
        for agent in agents
    )
    columns = (("id", "Agent"), ("state", "State"), ("repository", "Repository"), ("mode", "Mode"), ("chat", "Chat"))
    return Done(table=Table(f"Your agents ({len(agents)})", columns, rows))


# Kill agent: which one, and a confirmation

async def _kill_agent(bot: ManagerBot, user: str) -> Page | Done:
    if not await _allowed(bot, user):
        return Done.error(REFUSED)
    agents = bot.supervisor.owned_by(user)
    if not agents:
        return Done.info("You have no agents.")
    form = Form(
        "Kill agent",
        (
            choice_field("agent", "Agent",
                         [(a.id, f"{a.id} — {Path(a.record.repo).name} ({a.record.status.value})") for a in agents]),
            Field("confirm", FieldKind.BOOLEAN, "Yes, end it: its process, prompts and account go (the repository stays)",
                  value=False),
        ),
    )
    return Page(form, partial(_kill, bot, user))


async def _kill(bot: ManagerBot, user: str, answers: Answers) -> Done:
    if not await _allowed(bot, user):
        return Done.error(REFUSED)
    agent_id = answers.choice("agent")
    if not answers.flag("confirm"):
        return Done.warning(f"{agent_id} was not killed: tick the confirmation to end it.")
    context = FormReplies(bot, user)
    await kill_agent(context, agent_id)  # the `kill` command itself
    killed = any("killed" in line for line in context.lines)
    return Done.lines(context.lines, NoteKind.INFO if killed else NoteKind.ERROR)

"""The manager's commands: help, new/create, list/agents, status, kill, repos, runners."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from agentchat.agents.repos import empty_base_message, format_repository_list, list_repositories
from agentchat.bots.manager.machines import (
    find_remote,
    remote_lines,
    remote_repository_lines,
    remote_status,
    runner_lines,
    where_local,
)
from agentchat.chat.commands import CommandRegistry
from agentchat.errors import RepositoryError

if TYPE_CHECKING:
    from agentchat.bots.manager.bot import UserContext

MANAGER_COMMANDS: CommandRegistry[UserContext] = CommandRegistry()

# Prosody's c2s_stanza_size_limit (256 KiB by default): a longer message never reaches us, and its
# sender is disconnected.
MESSAGE_LIMIT_NOTE = "A message can hold up to about 250 kB of text (the server's limit); paste longer logs in parts."


@MANAGER_COMMANDS.command("help", help="this list")
async def show_help(ctx: UserContext, _args: str) -> None:
    text = MANAGER_COMMANDS.help_text("🤖 agentchat manager. Commands (any case):")
    await ctx.reply(f"{text}\n{MESSAGE_LIMIT_NOTE}")


@MANAGER_COMMANDS.command("new", "create", help="create an agent: type → repository → first task")
async def new_agent(ctx: UserContext, _args: str) -> None:
    await ctx.bot.begin_new_agent(ctx)


@MANAGER_COMMANDS.command("list", "agents", help="your agents and what they are doing")
async def list_agents(ctx: UserContext, _args: str) -> None:
    agents = ctx.bot.supervisor.owned_by(ctx.user)
    remote = ctx.bot.runners.owned_by(ctx.user) if ctx.bot.runners is not None else []
    if not agents and not remote:
        await ctx.reply("You have no agents. Send `new` to create one.")
        return
    lines = [f"Your agents ({len(agents) + len(remote)}):"]
    for agent in agents:
        record = agent.record
        lines.append(
            f"• {agent.id} — {record.status.value} — {_repo_name(record.repo)} — "
            f"{ctx.bot.supervisor.jid_of(agent.id)}{where_local(ctx)}"
        )
    lines += remote_lines(ctx, remote)
    await ctx.reply("\n".join(lines))


@MANAGER_COMMANDS.command("status", help="details of one agent", usage="status <id>")
async def agent_status(ctx: UserContext, args: str) -> None:
    remote = find_remote(ctx, args)
    if remote is not None:
        await ctx.reply(await remote_status(ctx, remote))
        return
    agent = ctx.bot.find_owned(ctx.user, args)
    if agent is None:
        await ctx.reply(_unknown(args))
        return
    record = agent.record
    idle_for = time.time() - record.last_active
    await ctx.reply(
        "\n".join(
            [
                f"📊 {agent.id}: {record.status.value}",
                f"Chat: {ctx.bot.supervisor.jid_of(agent.id)}",
                f"Repository: {record.repo}",
                f"Backend: {record.backend} · session {record.session_id}",
                f"Messages answered: {record.turns} · cost so far: ${record.total_cost_usd:.4f}",
                f"Last active: {idle_for:.0f} s ago · queued messages: {agent.queued}",
            ]
        )
    )


@MANAGER_COMMANDS.command("kill", help="end an agent: process, prompts and account", usage="kill <id>")
async def kill_agent(ctx: UserContext, args: str) -> None:
    remote = find_remote(ctx, args)
    if remote is not None and ctx.bot.runners is not None:
        await ctx.bot.runners.kill(remote.id, ended_by=ctx.user)
        await ctx.reply(f"🗑 Agent {remote.id} killed: its process on {remote.runner} ended (now, or when {remote.runner} "
                        "is back), its prompts were denied and its account deleted.")  # fmt: skip
        return
    agent = ctx.bot.find_owned(ctx.user, args)
    if agent is None:
        await ctx.reply(_unknown(args))
        return
    await ctx.bot.supervisor.kill(agent.id, ended_by=ctx.user)
    await ctx.reply(f"🗑 Agent {agent.id} killed: its process ended, its prompts were denied and its account deleted.")


@MANAGER_COMMANDS.command("repos", help="the repositories agents can work in")
async def show_repos(ctx: UserContext, _args: str) -> None:
    base = ctx.bot.base_path
    try:
        repositories = await asyncio.to_thread(list_repositories, base)
    except RepositoryError as exc:
        await ctx.reply(f"⚠️ {exc}")
        return
    remote = await remote_repository_lines(ctx)
    if not repositories and not remote:
        await ctx.reply(empty_base_message(base))
        return
    local = format_repository_list(repositories) if repositories else empty_base_message(base)
    await ctx.reply("\n".join([f"Repositories under {base}:\n{local}", *remote]))


@MANAGER_COMMANDS.command("runners", "machines", help="the machines agents run on: online, agents, load")
async def show_runners(ctx: UserContext, _args: str) -> None:
    await ctx.reply("\n".join(runner_lines(ctx)))


def _repo_name(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1]


def _unknown(agent_id: str) -> str:
    if not agent_id:
        return "Which agent? Send `list` to see yours."
    return f"You have no agent named {agent_id!r}. Send `list` to see yours."


__all__ = ["MANAGER_COMMANDS"]

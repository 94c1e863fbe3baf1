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
from agentchat.xmpp.xep_0045_rooms import RoomError

if TYPE_CHECKING:
    from agentchat.bots.manager.bot import UserContext
    from agentchat.bots.room.bot import Room, RoomBot

MANAGER_COMMANDS: CommandRegistry[UserContext] = CommandRegistry()

# Prosody's c2s_stanza_size_limit (256 KiB by default): a longer message never reaches us, and its
# sender is disconnected.
MESSAGE_LIMIT_NOTE = ("A message can hold up to about 250 kB of text (the server's limit); "
                      "send a longer log to an agent as a file (the paper clip).")


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
        turn = agent.current_turn
        state = f"{record.status.value} (turn {turn.state.value})" if turn is not None else record.status.value
        lines.append(
            f"• {agent.id} — {state} — {_repo_name(record.repo)} — "
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
    turn = agent.current_turn
    await ctx.reply(
        "\n".join(
            [
                f"📊 {agent.id}: {record.status.value}",
                f"Chat: {ctx.bot.supervisor.jid_of(agent.id)}",
                f"Repository: {record.repo}",
                f"Engine: {agent.engine} · session {record.session_id}",
                f"Messages answered: {record.turns} · cost so far: ${record.total_cost_usd:.4f}",
                f"Last active: {idle_for:.0f} s ago · queued messages: {agent.queued}",
                f"Current turn: {turn.state.value}" + (f" ({turn.detail})" if turn.detail else "")
                if turn is not None else "Current turn: none",
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


ROOM_USAGE = "room new <name> | invite <agent or jid> <room> | list | close <room> | mode <room> all|mentions | prompts <room> owner|admins"


@MANAGER_COMMANDS.command("room", help="rooms where people and agents meet (`room` alone for its forms)", usage="room …")
async def room_command(ctx: UserContext, args: str) -> None:
    rooms = ctx.bot.rooms
    if rooms is None:
        await ctx.reply("Rooms are turned off here (rooms.enabled in the configuration).")
        return
    words = args.split()
    if not words:
        await ctx.reply(f"Usage: {ROOM_USAGE}")
        return
    action, rest = words[0].lower(), words[1:]
    try:
        if action == "new" and len(rest) == 1:
            room = await rooms.create(ctx.user, rest[0])
            await ctx.reply(f"🏠 Room {room.name} created ({room.jid}); you are its owner and got an invitation. "
                            f"Bring agents in with `room invite <agent> {room.name}`.")
        elif action == "invite" and len(rest) == 2:
            room = _room(rooms, rest[1])
            await ctx.reply("➕ " + await rooms.invite(ctx.user, rest[0], room))
        elif action == "list" and not rest:
            mine = rooms.rooms_of(ctx.user)
            if not mine:
                await ctx.reply("You are in no room. Send `room new <name>` to make one.")
                return
            lines = [f"Your rooms ({len(mine)}):"]
            for room in mine:
                agents = ", ".join(sorted(room.agents)) or "no agent"
                lines.append(f"• {room.name} ({room.jid}) — {room.mode} — agents: {agents} — people: {len(room.people)}")
            await ctx.reply("\n".join(lines))
        elif action == "close" and len(rest) == 1:
            room = _room(rooms, rest[0])
            await rooms.close(ctx.user, room)
            await ctx.reply(f"🗑 Room {room.name} closed.")
        elif action == "mode" and len(rest) == 2:
            room = _room(rooms, rest[0])
            await rooms.configure(ctx.user, room, mode=rest[1].lower())
            said = "every line of a person goes to every agent" if rest[1].lower() == "all" else \
                "only lines that mention an agent go to it"
            await ctx.reply(f"{room.name}: {said}.")
        elif action == "prompts" and len(rest) == 2:
            room = _room(rooms, rest[0])
            await rooms.configure(ctx.user, room, prompts=rest[1].lower())
            who = "the agent's owner and the room's owners and admins" if rest[1].lower() == "admins" else \
                "only the agent's owner"
            await ctx.reply(f"{room.name}: {who} may answer its agents' prompts.")
        else:
            await ctx.reply(f"Usage: {ROOM_USAGE}")
    except RoomError as exc:
        await ctx.reply(f"⚠️ {exc}")


def _room(rooms: RoomBot, name: str) -> Room:
    room = rooms.room_named(name)
    if room is None:
        raise RoomError(f"there is no room {name!r} (see `room list`)")
    return room


@MANAGER_COMMANDS.command("search", help="search your agents' chats and your rooms", usage="search <words>")
async def search_history(ctx: UserContext, args: str) -> None:
    if not args.strip():
        await ctx.reply("Search for what? `search <words>` finds the messages that have all of them.")
        return
    found = await ctx.bot.store.search(args, person=ctx.user, limit=10)
    if not found:
        await ctx.reply(f"No message with all of “{args.strip()[:60]}”.")
        return
    lines = [f"🔎 {len(found)} message(s), newest first:"]
    for where, author, body, at in found:
        place = where.split(":", 1)[1].split("@", 1)[0]
        flat = " ".join(body.split())
        lines.append(f"• {time.strftime('%Y-%m-%d %H:%M', time.gmtime(at))} {place} — {author}: "
                     f"{flat[:140]}{'…' if len(flat) > 140 else ''}")
    await ctx.reply("\n".join(lines))

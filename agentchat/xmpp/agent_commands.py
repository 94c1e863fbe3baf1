"""Commands the owner can send to an agent bot: help, status, stop, quit/exit."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from agentchat.chat.commands import CommandRegistry

if TYPE_CHECKING:
    from agentchat.xmpp.agent_bot import AgentBot

AGENT_COMMANDS: CommandRegistry[AgentBot] = CommandRegistry()

REPLY_HELP = (
    "Permission prompts: reply yes / no / always, `no <reason>` to tell Claude why, "
    "`a1b2 yes` when several are pending, or react 👍 / 👎 to the prompt."
)


@AGENT_COMMANDS.command("help", help="this list")
async def show_help(bot: AgentBot, _args: str) -> None:
    text = AGENT_COMMANDS.help_text(f"🤖 {bot.agent.id}: anything else you write goes to the agent.")
    await bot.say(f"{text}\n{REPLY_HELP}")


@AGENT_COMMANDS.command("status", help="state, repository, session, pending prompts and cost so far")
async def show_status(bot: AgentBot, _args: str) -> None:
    agent, record = bot.agent, bot.agent.record
    pending = bot.pending_prompt_ids()
    lines = [
        f"📊 {agent.id}: {record.status.value}",
        f"Repository: {record.repo}",
        f"Backend: {record.backend}",
        f"Session: {record.session_id}",
        f"Process: {'running' if agent.process_running else 'not running'}",
        f"Turns: {record.turns} · cost so far: ${record.total_cost_usd:.4f}",
        f"Pending prompts: {', '.join('#' + p for p in pending) if pending else 'none'}",
        f"Queued messages: {agent.queued}",
    ]
    if agent.turn_started_at is not None:
        lines.append(f"Current turn: {time.monotonic() - agent.turn_started_at:.0f} s")
    await bot.say("\n".join(lines))


@AGENT_COMMANDS.command("stop", help="interrupt the current turn (the session stays)")
async def stop_turn(bot: AgentBot, _args: str) -> None:
    if await bot.agent.interrupt():
        await bot.say("⏹ Interrupting the current turn…")
    else:
        await bot.say("Nothing is running.")


@AGENT_COMMANDS.command("quit", "exit", help="end this agent (process, prompts and account)")
async def quit_agent(bot: AgentBot, _args: str) -> None:
    await bot.say(f"👋 Ending {bot.agent.id}.")
    await bot.kill()

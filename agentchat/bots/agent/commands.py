"""Commands the owner can send to an agent bot: help, status, stop, retry, quit/exit."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from agentchat.agents.agent import Interrupted
from agentchat.chat.commands import CommandRegistry

if TYPE_CHECKING:
    from agentchat.bots.agent.bot import AgentBot

AGENT_COMMANDS: CommandRegistry[AgentBot] = CommandRegistry()

REPLY_HELP = (
    "Permission prompts: reply yes / no / always, `no <reason>` to tell Claude why, "
    "`a1b2 yes` when several are pending, reply to (or quote) the prompt, or react 👍 / 👎 to it."
)
# `quit` ends the agent only when sent twice within this many seconds.
QUIT_CONFIRM_SECONDS = 30.0


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
        f"Engine: {agent.engine}",
        f"Session: {record.session_id}",
        f"Process: {'running' if agent.process_running else 'not running'}",
        f"Messages answered: {record.turns} · cost so far: ${record.total_cost_usd:.4f}",
        f"Pending prompts: {', '.join('#' + p for p in pending) if pending else 'none'}",
        f"Queued messages: {agent.queued}",
    ]
    if agent.interrupted is not None:
        lines.append("Cut by a restart: one message (send `retry` to run it again)")
    turn = agent.current_turn
    if turn is not None and agent.turn_started_at is not None:
        detail = f", {turn.detail}" if turn.detail else ""
        lines.append(f"Current turn: {turn.state.value}{detail}, {time.monotonic() - agent.turn_started_at:.0f} s")
    await bot.say("\n".join(lines))


@AGENT_COMMANDS.command("stop", help="interrupt the current turn (the session stays)")
async def stop_turn(bot: AgentBot, _args: str) -> None:
    outcome = await bot.agent.interrupt()
    if outcome.how is Interrupted.NOTHING:
        await bot.say("Nothing is running.")
    elif outcome.how is Interrupted.STOPPED:
        await bot.say("⏹ Interrupting the current turn…")
    else:
        await bot.say(f"⚠️ The agent did not stop when asked ({outcome.reason}), so its process was ended. "
                      "Your next message resumes the session.")


@AGENT_COMMANDS.command("retry", help="run again the message whose turn a restart cut")
async def retry_turn(bot: AgentBot, _args: str) -> None:
    text = bot.agent.retry()
    if text is None:
        await bot.say("Nothing to retry: no turn was cut.")
        return
    flat = " ".join(text.split())
    await bot.say(f"🔁 Running again: “{flat[:60]}{'…' if len(flat) > 60 else ''}”")


@AGENT_COMMANDS.command("quit", "exit", help="end this agent (process, prompts and account); asks first")
async def quit_agent(bot: AgentBot, _args: str) -> None:
    now = asyncio.get_running_loop().time()
    if now > bot.quit_confirm_until:
        bot.quit_confirm_until = now + QUIT_CONFIRM_SECONDS
        await bot.say(f"Reply `quit` again within {QUIT_CONFIRM_SECONDS:.0f} s to end {bot.agent.id} "
                      "(its process, prompts and account go; the repository stays).")
        return
    bot.quit_confirm_until = float("-inf")
    await bot.say(f"👋 Ending {bot.agent.id}.")
    await bot.kill()

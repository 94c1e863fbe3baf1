"""Commands the owner can send to an agent bot: help, status, stop, retry, quit/exit, mode, model, progress.

Each one is also a form (agentchat.bots.agent.forms) where the texts below are the form's result: the
``*_text`` functions and ``set_*`` are that one code path."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from agentchat.agents import modes
from agentchat.agents.agent import Interrupted
from agentchat.agents.backends.claude.modes import BYPASS
from agentchat.bots.agent.progress import DESCRIPTIONS, SETTINGS, ProgressMode
from agentchat.chat.commands import CommandRegistry

if TYPE_CHECKING:
    from agentchat.bots.agent.bot import AgentBot

AGENT_COMMANDS: CommandRegistry[AgentBot] = CommandRegistry()

REPLY_HELP = (
    "Permission prompts: reply yes / no / always, `no <reason>` to tell Claude why, `edit <command>` to run "
    "another Bash command, `a1b2 yes` when several are pending, reply to (or quote) the prompt, or react 👍 / 👎 to it."
)
# `quit` ends the agent only when sent twice within this many seconds; `mode bypassPermissions` likewise.
QUIT_CONFIRM_SECONDS = 30.0
CONFIRM_SECONDS = 30.0


def _one_word(args: str) -> bool:
    return len(args.split()) <= 1


def _progress_word(args: str) -> bool:
    return not args or args.lower() in SETTINGS


@AGENT_COMMANDS.command("help", help="this list")
async def show_help(bot: AgentBot, _args: str) -> None:
    text = AGENT_COMMANDS.help_text(f"🤖 {bot.agent.id}: anything else you write goes to the agent.")
    await bot.say(f"{text}\n{REPLY_HELP}")


@AGENT_COMMANDS.command("status", help="state, repository, session, mode, pending prompts and cost so far")
async def show_status(bot: AgentBot, _args: str) -> None:
    await bot.say(await status_text(bot))


async def status_text(bot: AgentBot) -> str:
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
    if modes.has_modes(agent):
        lines.append(f"Permission mode: {modes.current_mode(agent)} · model: {record.model or 'default'}")
    progress, automatic = await bot.progress.resolved_mode()
    lines.append(f"Progress: {progress.value}" + (" (chosen by what your client shows)" if automatic else ""))
    return "\n".join(lines)


@AGENT_COMMANDS.command("stop", help="interrupt the current turn (the session stays)")
async def stop_turn(bot: AgentBot, _args: str) -> None:
    await bot.say(await stop_text(bot))


async def stop_text(bot: AgentBot) -> str:
    outcome = await bot.agent.interrupt()
    if outcome.how is Interrupted.NOTHING:
        return "Nothing is running."
    if outcome.how is Interrupted.STOPPED:
        return "⏹ Interrupting the current turn…"
    return (f"⚠️ The agent did not stop when asked ({outcome.reason}), so its process was ended. "
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


@AGENT_COMMANDS.command("mode", help="Claude Code's permission mode: `mode` lists them, `mode plan` switches",
                        usage="mode [name]", accepts=_one_word)
async def permission_mode(bot: AgentBot, args: str) -> None:
    if not args:
        await bot.say(await modes_text(bot))
        return
    now = asyncio.get_running_loop().time()
    confirmed = args.lower() == BYPASS.lower() and now <= bot.bypass_confirm_until
    change = await set_mode(bot, args, confirmed=confirmed)
    if change.applied is modes.Applied.NEEDS_CONFIRMATION:
        bot.bypass_confirm_until = now + CONFIRM_SECONDS
        await bot.say(f"{change.text} Send `mode {BYPASS}` again within {CONFIRM_SECONDS:.0f} s to switch.")
        return
    bot.bypass_confirm_until = float("-inf")
    await bot.say(change.text)


async def modes_text(bot: AgentBot) -> str:
    if not modes.has_modes(bot.agent):
        return f"Permission modes are Claude Code's; {bot.agent.id} is a {bot.agent.record.backend} agent."
    available = await modes.available_modes(bot.claude_settings)
    lines = [f"🔧 Permission mode: {modes.current_mode(bot.agent)}. Modes:"]
    lines += [f"• {modes.mode_line(mode)}" for mode in available]
    if not bot.claude_settings.allow_bypass_permissions:
        lines.append(f"({BYPASS} is not allowed on this server.)")
    lines.append("Send `mode <name>` to switch.")
    return "\n".join(lines)


async def set_mode(bot: AgentBot, mode: str, *, confirmed: bool) -> modes.SettingChange:
    change = await modes.change_mode(bot.agent, mode, bot.claude_settings, confirmed=confirmed, cli_uid=bot.cli_uid)
    if change.applied in (modes.Applied.NOW, modes.Applied.NEXT_START):
        bot.refresh_presence()
    return change


@AGENT_COMMANDS.command("model", help="Claude Code's model: `model sonnet`, `model default`",
                        usage="model [name]", accepts=_one_word)
async def choose_model(bot: AgentBot, args: str) -> None:
    if not args:
        await bot.say(model_text(bot))
        return
    await bot.say((await modes.change_model(bot.agent, args)).text)


def model_text(bot: AgentBot) -> str:
    if not modes.has_modes(bot.agent):
        return f"Models are Claude Code's; {bot.agent.id} is a {bot.agent.record.backend} agent."
    chosen = bot.agent.record.model
    default = bot.claude_settings.model or "the CLI's own"
    shown = chosen or f"default ({default})"
    return f"🧠 Model: {shown}. Send `model <name>` to switch (e.g. `model sonnet`), `model default` to go back."


@AGENT_COMMANDS.command("progress", help="how work in progress is shown: full, status or quiet (auto: by your client)",
                        usage="progress [full|status|quiet|auto]", accepts=_progress_word)
async def choose_progress(bot: AgentBot, args: str) -> None:
    if args:
        await bot.say(await set_progress(bot, args.lower()))
        return
    await bot.say(await progress_text(bot))


async def progress_text(bot: AgentBot) -> str:
    mode, automatic = await bot.progress.resolved_mode()
    how = " (auto: chosen by what your client shows)" if automatic else ""
    lines = [f"📶 Progress: {mode.value}{how}."]
    lines += [f"• {choice.value}: {text}" for choice, text in DESCRIPTIONS.items()]
    lines.append("• auto: status where every client of yours shows corrections, else full")
    return "\n".join(lines)


async def set_progress(bot: AgentBot, setting: str) -> str:
    if setting not in SETTINGS:
        return f"There is no progress setting {setting[:40]!r}: {', '.join(SETTINGS)}."
    bot.agent.record.progress = None if setting == "auto" else ProgressMode(setting).value
    await bot.agent.save_record()
    mode, automatic = await bot.progress.resolved_mode()
    return f"📶 Progress: {mode.value}" + (" (auto)" if automatic else "") + ", from the next turn on."

"""The manager bot (manager@domain): commands and the per-user `new` dialogue."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from slixmpp.stanza import Message

from agentchat.agents.supervisor import AgentLimitReached, AgentSupervisor
from agentchat.errors import AgentChatError
from agentchat.manager.access import AccessPolicy
from agentchat.manager.commands import MANAGER_COMMANDS
from agentchat.manager.dialogue import NewAgentDialogue
from agentchat.xmpp.connection import BotConnection

log = logging.getLogger(__name__)


@dataclass
class UserContext:
    bot: ManagerBot
    user: str

    async def reply(self, text: str) -> None:
        self.bot.connection.send_chat(self.user, text)


class ManagerBot:
    def __init__(
        self,
        connection_factory: Callable[..., BotConnection],
        *,
        supervisor: AgentSupervisor,
        access: AccessPolicy,
        base_path: Path,
        backends: Callable[[], list[tuple[str, str]]],
    ) -> None:
        self.supervisor = supervisor
        self.base_path = base_path
        self._access = access
        self._backends = backends
        self._dialogues: dict[str, NewAgentDialogue] = {}
        self._refused: set[str] = set()
        self.connection = connection_factory(on_message=self._on_message)

    async def start(self) -> None:
        self.connection.set_presence("Send `help` to start", "chat")
        await self.connection.start()

    async def stop(self) -> None:
        await self.connection.stop()

    def find_owned(self, user: str, agent_id: str):  # type: ignore[no-untyped-def]
        agent = self.supervisor.get(agent_id) if agent_id else None
        if agent is None or agent.owner != user:
            if agent is not None:
                log.warning("manager: %s asked about agent %s it does not own", user, agent.id)
            return None
        return agent

    async def _on_message(self, msg: Message) -> None:
        body = msg["body"]
        if not body:
            return
        user = msg["from"].bare
        if not self._access.allows(user):
            log.warning("manager: refused %s (not in manager.allowedUsers)", user)
            if user not in self._refused:
                self._refused.add(user)
                self.connection.send_chat(user, "⛔ You are not allowed to use this service.")
            return
        ctx = UserContext(self, user)
        dialogue = self._dialogues.get(user)
        if dialogue is not None:
            await self._continue_dialogue(ctx, dialogue, body)
            return
        command = MANAGER_COMMANDS.find(body)
        if command is None:
            first = body.strip().split(maxsplit=1)[0][:40] if body.strip() else ""
            await ctx.reply(f"Unknown command {first!r}. Send `help` for the list.")
            return
        try:
            await command.run(ctx, body)
        except AgentChatError as exc:
            log.error("manager: %s failed for %s: %s", command.name, user, exc)
            await ctx.reply(f"⚠️ {exc}")

    async def begin_new_agent(self, ctx: UserContext) -> None:
        if not self.supervisor.can_start_another():
            await ctx.reply(
                f"⚠️ The limit of {self.supervisor.slots.limit} running agents is reached and all of them are busy. "
                "Free a slot with `kill <id>` (see `list`), or wait until one finishes its turn."
            )
            return
        dialogue = NewAgentDialogue(self._backends(), self.base_path)
        self._dialogues[ctx.user] = dialogue
        await ctx.reply(dialogue.opening())

    async def _continue_dialogue(self, ctx: UserContext, dialogue: NewAgentDialogue, text: str) -> None:
        reply = await dialogue.answer(text)
        if reply.done:
            self._dialogues.pop(ctx.user, None)
        if reply.text:
            await ctx.reply(reply.text)
        if reply.choice is None:
            return
        choice = reply.choice
        await ctx.reply(f"⏳ Creating a {choice.backend} agent in {choice.repository.name}…")
        try:
            created = await self.supervisor.create(ctx.user, choice.backend, choice.repository.path, choice.task)
        except AgentLimitReached as exc:
            await ctx.reply(f"⚠️ {exc}")
            return
        except AgentChatError as exc:
            log.error("manager: creating an agent for %s failed: %s", ctx.user, exc)
            await ctx.reply(f"⚠️ The agent could not be created: {exc}")
            return
        log.info("agent %s created for %s in %.0f ms", created.agent.id, ctx.user, created.seconds * 1000)
        await ctx.reply(f"Agent {created.agent.id} created. Chat at {created.jid}")

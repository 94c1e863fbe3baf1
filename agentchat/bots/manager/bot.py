"""The manager bot (manager@domain): commands and the per-user `new` dialogue.

Each person has one ordered, exactly-once inbox (agentchat.chat.inbox): "new", "1", "api" sent without
waiting are read in that order, and a message that arrives twice is answered once. A dialogue in progress is
saved after each step, so a restart continues it instead of replaying or losing it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from agentchat.agents.agent import Agent
from agentchat.agents.supervisor import AgentLimitReached, AgentSupervisor
from agentchat.bots.manager.access import AccessPolicy
from agentchat.bots.manager.commands import MANAGER_COMMANDS
from agentchat.bots.manager.dialogue import NewAgentDialogue
from agentchat.bots.room.bot import RoomBot
from agentchat.chat.inbox import Conversations, Received
from agentchat.chat.port import ChatTransport, Inbound, MessageKind, Outbound, Release
from agentchat.errors import AgentChatError, StateError
from agentchat.store.database import StateStore

log = logging.getLogger(__name__)

BOT = "manager"
DRAIN_SECONDS = 3.0


@dataclass
class UserContext:
    bot: ManagerBot
    user: str

    async def reply(self, text: str) -> None:
        self.bot.transport.send(Outbound(self.user, text))


class ManagerBot:
    def __init__(
        self,
        transport: ChatTransport,
        *,
        store: StateStore,
        supervisor: AgentSupervisor,
        access: AccessPolicy,
        base_path: Path,
        backends: Callable[[], list[tuple[str, str]]],
        ready: asyncio.Event,
        open_transport: Callable[[], Awaitable[None]],
        close_transport: Callable[[], Awaitable[None]],
        introduce_user: Callable[[str], Awaitable[None]] | None = None,
        rooms: RoomBot | None = None,
    ) -> None:
        self.transport = transport
        # Rooms sit on the manager's account: their lines go there (agentchat.bots.room).
        self.rooms = rooms
        # Puts the manager into a person's roster (once per person and run: it is idempotent anyway).
        self._introduce_user = introduce_user
        self._introduced: set[str] = set()
        self.supervisor = supervisor
        self.base_path = base_path
        self.store = store
        self._store = store
        self._access = access
        self._backends = backends
        # Set once the agents of the last run are back: until then "list" or "kill <id>" would not know them.
        self._ready = ready
        self._open_transport = open_transport
        self._close_transport = close_transport
        self._dialogues: dict[str, NewAgentDialogue] = {}
        self._saved_dialogues: dict[str, str] = {}
        self._refused: set[str] = set()
        self.conversations = Conversations(BOT, store, self._handle)

    def deliver(self, inbound: Inbound, release: Release) -> None:
        """The transport's sink: people allowed to use the manager get an inbox; anyone else one refusal."""
        if inbound.kind is MessageKind.GROUPCHAT:
            if self.rooms is not None:
                self.rooms.deliver(inbound, release)
            else:
                release()
            return
        if not self._access.allows(inbound.sender):
            release()
            log.warning("manager: refused %s (not in manager.allowedUsers)", inbound.sender)
            if inbound.sender not in self._refused and inbound.reaction is None:
                self._refused.add(inbound.sender)
                self.transport.send(Outbound(inbound.sender, "⛔ You are not allowed to use this service."))
            return
        self.conversations.deliver(inbound, release)

    async def start(self) -> None:
        self._saved_dialogues = await self._store.load_dialogues()
        # What the last run recorded but never answered comes first, in order.
        self.conversations.recover(await self._store.pending_inbound(BOT))
        self.transport.set_presence("Send `help` to start", "chat")
        await self._open_transport()

    async def stop(self) -> None:
        await self.conversations.drain(DRAIN_SECONDS)
        await self._close_transport()
        await self.conversations.close()

    # For the manager's forms (agentchat.bots.manager.forms): the same access rule, readiness and dialogue.

    def allows(self, user: str) -> bool:
        return self._access.allows(user)

    async def wait_ready(self) -> None:
        await self._ready.wait()

    def new_dialogue(self) -> NewAgentDialogue:
        return NewAgentDialogue(self._backends(), self.base_path)

    async def continue_new_agent(self, ctx: UserContext, dialogue: NewAgentDialogue, text: str) -> None:
        await self._continue_dialogue(ctx, dialogue, text)

    def find_owned(self, user: str, agent_id: str) -> Agent | None:
        agent = self.supervisor.get(agent_id) if agent_id else None
        if agent is None or agent.owner != user:
            if agent is not None:
                log.warning("manager: %s asked about agent %s it does not own", user, agent.id)
            return None
        return agent

    async def _handle(self, received: Received) -> None:
        # Done once answered, or once answering failed (a bug must not make it come back at every start);
        # a message whose answer a stop cut short stays for the next run.
        await self._ready.wait()
        user = received.inbound.sender
        if self._introduce_user is not None and user not in self._introduced:
            self._introduced.add(user)
            try:
                await self._introduce_user(user)
            except AgentChatError as exc:
                log.warning("manager: not put into the roster of %s: %s", user, exc)
        try:
            await self._answer(received)
        finally:
            if received.record_id is not None and not _cancelling():
                try:
                    await self._store.finish_inbound(received.record_id)
                except StateError as exc:
                    log.error("manager: %s", exc)

    async def _answer(self, received: Received) -> None:
        inbound = received.inbound
        ctx = UserContext(self, inbound.sender)
        if inbound.reaction is not None:
            return
        if received.save_error is not None:
            await ctx.reply(f"⚠️ Your message could not be saved ({received.save_error}); it is answered all the same.")
        if inbound.invite is not None:
            await ctx.reply("🚪 The manager makes rooms itself: send `room new <name>`, then `room invite` to bring "
                            "agents and people in.")
            return
        if inbound.replaces is not None:
            await ctx.reply("✏️ Commands cannot be corrected once sent: send the corrected command as a new message.")
            return
        body = inbound.text
        dialogue = await self._dialogue_of(ctx)
        if dialogue is not None:
            await self._continue_dialogue(ctx, dialogue, body)
            return
        reading = MANAGER_COMMANDS.read(body)
        command = reading.command
        if command is None:
            first = body.strip().split(maxsplit=1)[0][:40] if body.strip() else ""
            hint = f" Did you mean `{reading.suggestion}`?" if reading.suggestion else " Send `help` for the list."
            await ctx.reply(f"Unknown command {first!r}.{hint}")
            return
        if reading.ignored:
            shown = " ".join(reading.ignored.split())
            await ctx.reply(f"(`{command.name}` takes nothing after it: I ignored “{shown[:60]}”.)")
        try:
            await command.run(ctx, command.name if reading.ignored else body)
        except AgentChatError as exc:
            log.error("manager: %s failed for %s: %s", command.name, ctx.user, exc)
            await ctx.reply(f"⚠️ {exc}")

    async def _dialogue_of(self, ctx: UserContext) -> NewAgentDialogue | None:
        dialogue = self._dialogues.get(ctx.user)
        saved = self._saved_dialogues.pop(ctx.user, None)
        if dialogue is not None or saved is None:
            return dialogue
        try:
            dialogue = NewAgentDialogue.restore(saved, self._backends(), self.base_path)
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("manager: the saved dialogue of %s cannot continue: %s", ctx.user, exc)
            await self._save_dialogue(ctx.user, None)
            await ctx.reply("🔄 agentchat restarted and your `new` dialogue could not continue; send `new` to start again.")
            return None
        self._dialogues[ctx.user] = dialogue
        return dialogue

    async def _save_dialogue(self, user: str, dialogue: NewAgentDialogue | None) -> None:
        try:
            await self._store.save_dialogue(user, None if dialogue is None else dialogue.dump())
        except StateError as exc:
            log.error("manager: dialogue of %s not saved: %s", user, exc)

    async def begin_new_agent(self, ctx: UserContext) -> None:
        if not self.supervisor.can_start_another():
            await ctx.reply(
                f"⚠️ The limit of {self.supervisor.slots.limit} running agents is reached and all of them are busy. "
                "Free a slot with `kill <id>` (see `list`), or wait until one finishes its turn."
            )
            return
        dialogue = NewAgentDialogue(self._backends(), self.base_path)
        self._dialogues[ctx.user] = dialogue
        await self._save_dialogue(ctx.user, dialogue)
        await ctx.reply(dialogue.opening())

    async def _continue_dialogue(self, ctx: UserContext, dialogue: NewAgentDialogue, text: str) -> None:
        reply = await dialogue.answer(text)
        if reply.done:
            self._dialogues.pop(ctx.user, None)
        await self._save_dialogue(ctx.user, None if reply.done else dialogue)
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
        if choice.task is None and created.agent.chat is not None:
            # Its own chat says hello: else the new contact is silent until spoken to.
            await created.agent.chat.notify(
                f"👋 {created.agent.id} ready in {choice.repository.name}; send the first task."
            )


def _cancelling() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0

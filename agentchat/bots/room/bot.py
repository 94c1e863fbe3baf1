"""Rooms: people and several agents in one group chat (XEP-0045), run from the manager's account.

The manager sits in every room (nick ``agentchat``, the room's owner with its creator) and reads it through
one ordered, exactly-once inbox per room (agentchat.chat.inbox), so every room line is recorded once in the
searchable history, whatever number of agents listen. What a line is for:

* an answer to a prompt an agent showed in the room (text with its id, a reply or quote of it, a 👍/👎):
  only the agent's owner may answer (and the room's owners and admins, if the room says so); anyone else
  gets one refusal;
* a mention of agents (``@swift-fox``, ``swift-fox:`` at the start, a XEP-0372 reference), or any line
  from a person in a room in ``all`` mode: a turn for each agent meant, with who said it and the last
  room lines as context. The turn's answer goes to the room, from the agent's own account (its occupant),
  with one status line that follows the turn's state (corrected in place, XEP-0308).

A line an agent wrote that mentions another agent hands the conversation on: its chain grows by one, and
stops at ``rooms.chainLimit`` hops (a person's line starts again at zero); a room also takes at most
``rooms.agentMessagesPerMinute`` agent lines as turns. Each refusal is said once in the room.

Agents talk to rooms and each other through MCP tools (send_message, read_messages, search_messages,
list_agents), registered by the service with the permission prompt (agentchat.bots.room.tools).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from urllib.parse import unquote, urlsplit

from agentchat.agents.agent import Agent
from agentchat.agents.backends.base import TurnImage
from agentchat.agents.supervisor import AgentSupervisor
from agentchat.bots.room.mentions import mentioned
from agentchat.chat.inbox import Conversations, HistoryLog, Received
from agentchat.chat.port import Attachment, ChatTransport, Inbound, MessageKind, Outbound, Release
from agentchat.chat.quoting import split_leading_quote
from agentchat.config import RoomSettings
from agentchat.files.intake import FileIntake
from agentchat.errors import AgentChatError, StateError
from agentchat.permissions.registry import AnswerStatus, PermissionRegistry
from agentchat.permissions.replies import looks_like_reply
from agentchat.permissions.requests import Behavior, Decision
from agentchat.store.database import StateStore
from agentchat.xmpp.xep_0045_rooms import RoomError, RoomMembership

log = logging.getLogger(__name__)

BOT = "rooms"
NICK = "agentchat"
DRAIN_SECONDS = 3.0
# A prompt's first line, as an agent shows it in a room ("🔐 Permission #a1b2 — …").
_PROMPT = re.compile(r"(?:Permission|Question|Plan) #([0-9a-f]{4})\b")
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")
# "a1b2 yes", "#a1b2: no because": an answer that names its prompt.
_NAMED = re.compile(r"#?([0-9a-fA-F]{4})[:,]?\s+(.+)\Z", re.DOTALL)
THUMBS_UP = {"👍", "👍🏻", "👍🏼", "👍🏽", "👍🏾", "👍🏿", "✅"}
THUMBS_DOWN = {"👎", "👎🏻", "👎🏼", "👎🏽", "👎🏾", "👎🏿", "❌"}
MODES = ("mentions", "all")
PROMPT_POLICIES = ("owner", "admins")
FILES_WAIT = 600  # s a file sent with no agent named waits for its sender's next mention


@dataclass
class Room:
    jid: str
    name: str
    owner: str  # the person who created it
    mode: str = "mentions"  # "all": every line of a person goes to every agent
    prompts: str = "owner"  # "admins": the room's owners and admins may answer agents' prompts too
    people: set[str] = field(default_factory=set)
    agents: set[str] = field(default_factory=set)
    last_seen: float | None = None
    # The last lines, for the context a mention carries; and the agent lines taken as turns lately.
    recent: deque[str] = field(default_factory=lambda: deque(maxlen=50))
    agent_turns: deque[float] = field(default_factory=deque)
    # Prompts shown here: the message ids (the sender's, and the room's stanza-id) -> (agent, request id).
    prompts_shown: dict[str, tuple[str, str]] = field(default_factory=dict)
    refused: set[tuple[str, str]] = field(default_factory=set)  # (sender, request id) told no once
    said_limit_at: float = float("-inf")
    # Files a person sent with no agent named (as Conversations sends them: a message of their own),
    # for the agents their next line mentions: person -> (when, the files).
    files_waiting: dict[str, tuple[float, tuple[Attachment, ...]]] = field(default_factory=dict)

    def can_manage(self, person: str) -> bool:
        return person == self.owner


class RoomBot:
    """Every room of the service, on the manager's session."""

    def __init__(
        self,
        transport: ChatTransport,
        rooms: RoomMembership,
        *,
        store: StateStore,
        supervisor: AgentSupervisor,
        permissions: PermissionRegistry,
        settings: RoomSettings,
        service: str,
        ready: asyncio.Event,
    ) -> None:
        self.transport = transport
        self._membership = rooms
        self.store = store
        self._supervisor = supervisor
        self._permissions = permissions
        self._settings = settings
        self.service = service
        self._ready = ready
        self.rooms: dict[str, Room] = {}
        # Which runner an agent runs on (None: not a runner's): set by the service once its hub exists.
        self.runner_of: Callable[[str, str], str | None] = lambda agent_id, owner: None
        self.conversations = Conversations(BOT, store, self._handle, log=lambda room: HistoryLog(f"room:{room}"))
        self._seen_saver: asyncio.Task[None] | None = None
        rooms.history_since = self._history_since

    # life cycle

    async def start(self) -> None:
        """Rooms and members from the store; the manager and each member agent join again. What was said
        while the service was away comes as the rooms' history, once."""
        for jid, name, owner, mode, prompts, last_seen in await self.store.load_rooms():
            self.rooms[jid] = Room(jid, name, owner, mode, prompts, last_seen=last_seen)
        for room_jid, member, kind in await self.store.room_members():
            room = self.rooms.get(room_jid)
            if room is not None:
                (room.agents if kind == "agent" else room.people).add(member)
        for room in self.rooms.values():
            for _, author, body, _ in await self.store.conversation(f"room:{room.jid}", limit=room.recent.maxlen or 50):
                room.recent.append(f"{author}: {body}")
            try:
                await self._membership.join_room(room.jid, NICK, history_since=self._history_since(room.jid))
            except RoomError as exc:
                log.error("room %s: %s", room.name, exc)
            for agent_id in list(room.agents):
                await self._seat(room, agent_id)

    async def stop(self) -> None:
        await self.conversations.drain(DRAIN_SECONDS)
        await self._save_seen()
        await self.conversations.close()

    def deliver(self, inbound: Inbound, release: Release) -> None:
        """Room lines from the manager's session (the sink passes them here)."""
        room = self.rooms.get(inbound.sender)
        if room is None or inbound.nick == NICK:
            release()  # a room we are not in any more, or our own line coming back
            return
        self.conversations.deliver(inbound, release)

    def _history_since(self, room_jid: str) -> datetime | None:
        room = self.rooms.get(room_jid)
        if room is None or room.last_seen is None:
            return None
        return datetime.fromtimestamp(room.last_seen, UTC)

    # what the manager's commands do

    def room_named(self, name: str) -> Room | None:
        name = name.strip().lower()
        return self.rooms.get(name) or self.rooms.get(f"{name}@{self.service}")

    def rooms_of(self, person: str) -> list[Room]:
        return [room for room in self.rooms.values() if person == room.owner or person in room.people]

    async def create(self, owner: str, name: str) -> Room:
        name = name.strip().lower()
        if not _NAME.match(name):
            raise RoomError(f"{name!r} is not a room name: use letters, digits and dashes (up to 40), e.g. api-team")
        jid = f"{name}@{self.service}"
        if jid in self.rooms:
            raise RoomError(f"the room {name} exists already")
        await self._membership.create_room(jid, NICK, name=name)
        await self._membership.set_affiliation(jid, owner, "owner")
        room = Room(jid, name, owner, people={owner})
        try:
            await self.store.save_room(jid, name, owner)
            await self.store.add_room_member(jid, owner, "person")
        except StateError:
            await self._membership.destroy_room(jid)
            raise
        self.rooms[jid] = room
        self._membership.invite(jid, owner, f"agentchat room {name}")
        return room

    async def invite(self, by: str, who: str, room: Room) -> str:
        """A person (a bare JID) or one of ``by``'s agents (its id) into the room; what to tell ``by``."""
        if not room.can_manage(by):
            raise RoomError(f"only {room.owner} can invite to {room.name}")
        agent = self._supervisor.get(who)
        if agent is not None:
            if agent.owner != by:
                raise RoomError(f"you have no agent named {who!r}")
            await self._membership.set_affiliation(room.jid, self._supervisor.jid_of(agent.id), "member")
            await self.store.add_room_member(room.jid, agent.id, "agent")
            room.agents.add(agent.id)
            await self._seat(room, agent.id)
            return f"{agent.id} joined {room.name}; mention it there (@{agent.id}) to give it a task."
        runner = self.runner_of(who, by)
        if runner is not None:
            raise RoomError(f"{who} runs on {runner}: agents on other machines cannot join rooms yet "
                            "(only the hub's own agents can)")
        person = who.strip().lower()
        if "@" not in person or "/" in person or " " in person:
            raise RoomError(f"{who!r} is neither one of your agents nor a JID like bob@example.org")
        await self._membership.set_affiliation(room.jid, person, "member")
        await self.store.add_room_member(room.jid, person, "person")
        room.people.add(person)
        self._membership.invite(room.jid, person, f"{by} invites you to the agentchat room {room.name}")
        return f"{person} is a member of {room.name} now and got an invitation ({room.jid})."

    async def close(self, by: str, room: Room) -> None:
        if not room.can_manage(by):
            raise RoomError(f"only {room.owner} can close {room.name}")
        for agent_id in room.agents:
            agent = self._supervisor.get(agent_id)
            if agent is not None and agent.chat is not None:
                await agent.chat.leave_room(room.jid)  # type: ignore[attr-defined]
        await self._membership.destroy_room(room.jid, f"closed by {by}")
        await self.store.delete_room(room.jid)
        self.rooms.pop(room.jid, None)

    async def configure(self, by: str, room: Room, *, mode: str | None = None, prompts: str | None = None) -> None:
        if not room.can_manage(by):
            raise RoomError(f"only {room.owner} can change {room.name}")
        if mode is not None:
            if mode not in MODES:
                raise RoomError(f"a room's mode is {' or '.join(MODES)}, not {mode!r}")
            room.mode = mode
        if prompts is not None:
            if prompts not in PROMPT_POLICIES:
                raise RoomError(f"who answers prompts in a room: {' or '.join(PROMPT_POLICIES)}, not {prompts!r}")
            room.prompts = prompts
        await self.store.set_room(room.jid, mode=mode, prompts=prompts)

    def agent_left(self, agent_id: str) -> None:
        """A killed agent leaves its rooms (the store forgets it with the agent)."""
        for room in self.rooms.values():
            room.agents.discard(agent_id)

    async def _seat(self, room: Room, agent_id: str) -> None:
        agent = self._supervisor.get(agent_id)
        if agent is None or agent.chat is None:
            return
        try:
            await agent.chat.join_room(room.jid)  # type: ignore[attr-defined]
        except RoomError as exc:
            log.error("room %s: agent %s: %s", room.name, agent_id, exc)

    # the room's lines

    async def _handle(self, received: Received) -> None:
        await self._ready.wait()
        inbound = received.inbound
        room = self.rooms.get(inbound.sender)
        try:
            if room is not None:
                self._seen(room, inbound)
                await self._read(room, inbound)
        finally:
            if received.record_id is not None:
                try:
                    await self.store.finish_inbound(received.record_id)
                except StateError as exc:
                    log.error("rooms: %s", exc)

    async def _read(self, room: Room, inbound: Inbound) -> None:
        author_agent = self._agent_behind(room, inbound)
        if inbound.raw_body and not inbound.transient:  # status lines are no context for anyone
            line = inbound.text
            for attachment in inbound.attachments:  # a file is context by its name, not its URL
                line = line.replace(attachment.url, f"[file {_file_name(attachment.url)}]")
            room.recent.append(f"{inbound.nick}: {line}")
        if author_agent is not None:
            await self._agent_line(room, author_agent, inbound)
            return
        person = inbound.real_jid or self._membership.occupant_jid(room.jid, inbound.nick)
        if await self._prompt_answer(room, inbound, person):
            return
        if not inbound.raw_body or inbound.reaction is not None:
            return
        targets = mentioned(inbound.text, room.agents, inbound.mentions)
        if not targets and room.mode == "all":
            targets = sorted(room.agents)
        files = self._files_for(room, person, inbound)
        if files and not targets:
            room.files_waiting[person or inbound.nick] = (time.monotonic(), files)
            names = ", ".join(_file_name(f.url) for f in files)
            await self._say(room, f"📎 {names} from {inbound.nick}: for the agent your next message mentions "
                                  f"(@{min(room.agents) if room.agents else 'agent'} …), within "
                                  f"{FILES_WAIT // 60} minutes.")
            return
        for agent_id in targets:
            await self._hand_to(room, agent_id, inbound, who=inbound.nick, chain=0, files=files)

    def _files_for(self, room: Room, person: str | None, inbound: Inbound) -> tuple[Attachment, ...]:
        """The files this line carries, after those its author sent before it (not too long ago)."""
        waiting = room.files_waiting.pop(person or inbound.nick, None)
        earlier = waiting[1] if waiting is not None and time.monotonic() - waiting[0] <= FILES_WAIT else ()
        return (*earlier, *inbound.attachments)

    def _agent_behind(self, room: Room, inbound: Inbound) -> Agent | None:
        """The agent that wrote a line (its nick, and its account behind it when the room shows it)."""
        if inbound.nick not in room.agents:
            return None
        agent = self._supervisor.get(inbound.nick)
        real = inbound.real_jid or self._membership.occupant_jid(room.jid, inbound.nick)
        if agent is None or (real is not None and real != self._supervisor.jid_of(agent.id)):
            return None
        return agent

    async def _agent_line(self, room: Room, agent: Agent, inbound: Inbound) -> None:
        """A prompt it shows (remembered, for replies and reactions), or a line that may hand on the talk."""
        shown = _PROMPT.search(inbound.raw_body.split("\n", 1)[0]) if inbound.raw_body else None
        if shown is not None:
            for key in (inbound.origin_id, inbound.message_id, inbound.stanza_id):
                if key:
                    room.prompts_shown[key] = (agent.id, shown.group(1))
            return
        chat = agent.chat
        said_in = chat.hands_on(inbound.origin_id or inbound.message_id) if chat is not None else None  # type: ignore[attr-defined]
        if said_in is None:
            return  # a status line, a tool line, a turn's summary: said, not meant for anyone
        targets = [t for t in mentioned(inbound.text, room.agents, inbound.mentions) if t != agent.id]
        if not targets:
            return
        chain = said_in + 1
        if chain > self._settings.chain_limit:
            await self._say(room, f"⛓ {agent.id} mentioned {', '.join(targets)}, but this conversation has passed "
                                  f"through {self._settings.chain_limit} agents already: it stops here. A person's "
                                  "message starts a new one.")
            return
        now = time.monotonic()
        while room.agent_turns and now - room.agent_turns[0] > 60:
            room.agent_turns.popleft()
        if len(room.agent_turns) >= self._settings.agent_messages_per_minute:
            if now - room.said_limit_at > 60:
                room.said_limit_at = now
                await self._say(room, f"🚦 {room.name} takes at most {self._settings.agent_messages_per_minute} "
                                      "agent messages a minute as tasks; the next ones wait for a person.")
            return
        room.agent_turns.append(now)
        for target in targets:
            await self._hand_to(room, target, inbound, who=agent.id, chain=chain)

    async def _hand_to(self, room: Room, agent_id: str, inbound: Inbound, *, who: str, chain: int,
                       files: tuple[Attachment, ...] = ()) -> None:
        agent = self._supervisor.get(agent_id)
        if agent is None:
            return
        said = inbound.text
        images: tuple[TurnImage, ...] = ()
        intake = getattr(getattr(agent.chat, "files", None), "intake", None)
        if files and isinstance(intake, FileIntake):
            # Into this agent's repository, as its owner's files go (each refusal one line in the room).
            taken = await intake.take(replace(inbound, attachments=files), said, lambda line: self._say(room, line))
            if taken is None:
                return
            said, images = taken.text, taken.images
        elif files:
            await self._say(room, f"⛔ {agent_id} takes no files here (no upload service is configured).")
        context = [line for line in list(room.recent)[-(self._settings.context_lines + 1):-1]]
        text = f"[Room {room.name}] {who} wrote:\n{said}"
        if context:
            text += "\n\n(The room's last lines before it:\n" + "\n".join(context) + ")"
        text += "\n\nYour answer goes to the room."
        try:
            record_id: int | None = await self.store.add_inbound(agent.id, room.jid, text)
        except StateError as exc:
            log.error("room %s: a turn for %s kept in memory only: %s", room.name, agent.id, exc)
            record_id = None
        agent.submit(text, record_id, origin=room.jid, chain=chain, images=images, files_taken=bool(images))

    async def _prompt_answer(self, room: Room, inbound: Inbound, person: str | None) -> bool:
        """Whether the line answered (or tried to answer) a prompt shown in this room."""
        target: tuple[str, str] | None = None
        answer = inbound.text
        if inbound.reaction is not None:
            target = room.prompts_shown.get(inbound.reaction.target_id)
            if target is None:
                return False
            emojis = inbound.reaction.emojis
            if not emojis & (THUMBS_UP | THUMBS_DOWN):
                return True
            answer = "yes" if emojis & THUMBS_UP else "no"
        elif inbound.reply_to is not None and inbound.reply_to in room.prompts_shown:
            target = room.prompts_shown[inbound.reply_to]
        else:
            quote = split_leading_quote(inbound.text)
            shown = _PROMPT.search(quote.quote) if quote.quote and quote.rest else None
            if shown is not None:
                target = self._prompt_by_id(room, shown.group(1))
                answer = quote.rest
            elif looks_like_reply(inbound.text):
                named = _NAMED.match(inbound.text.strip())
                if named is not None:
                    target, answer = self._prompt_by_id(room, named.group(1).lower()), named.group(2)
                else:
                    target = self._only_prompt(room)
        if target is None:
            return False
        agent_id, request_id = target
        agent = self._supervisor.get(agent_id)
        if agent is None:
            return True
        delegated = False
        if person != agent.owner:
            allowed = room.prompts == "admins" and person is not None and \
                self._membership.affiliation(room.jid, person) in ("owner", "admin")
            if not allowed:
                if (inbound.nick, request_id) not in room.refused:
                    room.refused.add((inbound.nick, request_id))
                    await self._say(room, f"⛔ {inbound.nick}: only {agent.owner} can answer #{request_id} of {agent_id}.")
                return True
            delegated = True
        decided_by = person or inbound.nick
        if inbound.reaction is not None:
            behavior = Behavior.ALLOW if answer == "yes" else Behavior.DENY
            decision = Decision(behavior, decided_by) if behavior is Behavior.ALLOW else \
                Decision.deny("The user declined (👎).", decided_by)
            result = self._permissions.resolve(agent_id, request_id, decision, delegated=delegated)
        else:
            result = self._permissions.answer(agent_id, f"{request_id} {answer}", decided_by, delegated=delegated)
        if result.status not in (AnswerStatus.RESOLVED, AnswerStatus.NOT_A_REPLY) and result.text:
            await self._say(room, f"{inbound.nick}: {result.text}")
        return True

    def _prompt_by_id(self, room: Room, request_id: str) -> tuple[str, str] | None:
        for agent_id, shown_id in room.prompts_shown.values():
            if shown_id == request_id:
                return agent_id, request_id
        return None

    def _only_prompt(self, room: Room) -> tuple[str, str] | None:
        """A bare "yes" for the one prompt waiting in this room."""
        waiting: list[tuple[str, str]] = []
        for agent_id in room.agents:
            agent = self._supervisor.get(agent_id)
            turn = agent.current_turn if agent is not None else None
            if turn is None or turn.origin != room.jid:
                continue
            waiting += [(agent_id, request.request_id) for request in self._permissions.pending(agent_id)]
        return waiting[0] if len(waiting) == 1 else None

    async def _say(self, room: Room, text: str) -> None:
        self.transport.send(Outbound(room.jid, text, MessageKind.GROUPCHAT, chat_state=None))

    def _seen(self, room: Room, inbound: Inbound) -> None:
        """The time of the room's newest line, saved now and then: the history asked for at the next join."""
        stamp = inbound.delayed_at.timestamp() if inbound.delayed_at is not None else inbound.received_at
        room.last_seen = max(room.last_seen or 0.0, stamp)
        if self._seen_saver is None or self._seen_saver.done():
            self._seen_saver = asyncio.get_running_loop().create_task(self._save_seen_soon(), name="rooms:last-seen")

    async def _save_seen_soon(self) -> None:
        await asyncio.sleep(2.0)  # at most one write per room every 2 s, however busy the rooms
        await self._save_seen()

    async def _save_seen(self) -> None:
        for room in list(self.rooms.values()):
            if room.last_seen is not None:
                try:
                    await self.store.set_room(room.jid, last_seen=room.last_seen)
                except StateError as exc:
                    log.warning("room %s: %s", room.name, exc)

    # what agents' tools do (agentchat.bots.room.tools)

    def visible_rooms(self, agent_id: str) -> list[Room]:
        return [room for room in self.rooms.values() if agent_id in room.agents]

    def agents_visible_to(self, agent: Agent) -> list[Agent]:
        """Its owner's agents, and the agents it shares a room with."""
        shared = {a for room in self.visible_rooms(agent.id) for a in room.agents}
        return [a for a in self._supervisor.all() if a.owner == agent.owner or a.id in shared]

    def lookup(self, agent_id: str) -> Agent:
        agent = self._supervisor.get(agent_id)
        if agent is None:
            raise AgentChatError(f"unknown agent {agent_id!r}")
        return agent

    async def deliver_between_agents(self, sender: Agent, target: Agent, text: str) -> None:
        """A message from one agent to another with no room in common: a turn for the target (its owner
        sees it), one hop further on the chain."""
        chain = sender.current_chain + 1
        if chain > self._settings.chain_limit:
            raise AgentChatError(f"this conversation has passed through {self._settings.chain_limit} agents already; "
                                 "it stops here")
        body = f"[Message from agent {sender.id} (owner {sender.owner})]:\n{text}"
        record_id = await self.store.add_inbound(target.id, target.owner, body)
        if target.chat is not None:
            await target.chat.notify(f"📨 From {sender.id}: {text}")
        target.submit(body, record_id, chain=chain)


def _file_name(url: str) -> str:
    """A file's name as its upload URL shows it, for a chat line (printable, short)."""
    name = unquote(urlsplit(url).path.rsplit("/", 1)[-1])
    return "".join(char for char in name if char.isprintable())[:60] or "a file"

"""The tools agents use to talk to rooms and to each other, served by the MCP server beside the permission
prompt (the model sees them as ``mcp__agentchat__send_message`` …, and uses them without asking).

Each call is made as the agent whose bearer token came with it: it reaches only the rooms that agent is in,
its own chat, and the agents of its owner or of its rooms.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field

from agentchat.bots.room.bot import RoomBot
from agentchat.errors import AgentChatError
from agentchat.permissions.mcp_server import AgentTool

READ_LIMIT = 50
SEARCH_LIMIT = 20


class _Arguments(BaseModel):
    model_config = ConfigDict(extra="ignore")


class SendMessage(_Arguments):
    to: str = Field(min_length=1, max_length=200, description="A room you are in (its name), another agent's id, or 'owner'.")
    text: str = Field(min_length=1, max_length=60_000, description="What to say; mention an agent (@id) in a room to hand it a task.")


class ReadMessages(_Arguments):
    room: str = Field(min_length=1, max_length=200, description="A room you are in (its name).")
    since: str | None = Field(None, description="ISO 8601 time: only lines after it (default: the last 50 lines).")


class SearchMessages(_Arguments):
    query: str = Field(min_length=1, max_length=500, description="Words that must all appear.")


class ListAgents(_Arguments):
    pass


def room_tools(rooms: RoomBot) -> list[AgentTool]:
    async def send_message(agent_id: str, arguments: SendMessage) -> str:
        agent = rooms.lookup(agent_id)
        chat = agent.chat
        if chat is None:
            raise AgentChatError("this agent has no chat right now")
        to = arguments.to.strip()
        if to.lower() == "owner":
            await chat.notify(arguments.text)
            return f"Sent to your owner ({agent.owner})."
        room = rooms.room_named(to)
        if room is not None:
            if agent.id not in room.agents:
                raise AgentChatError(f"you are not in the room {room.name}")
            await chat.post_to_room(room.jid, arguments.text)  # type: ignore[attr-defined]
            return f"Posted in {room.name}."
        target = next((a for a in rooms.agents_visible_to(agent) if a.id == to.lower()), None)
        if target is None or target.id == agent.id:
            raise AgentChatError(f"no room or agent {to!r} you can reach: see list_agents")
        shared = next((r for r in rooms.visible_rooms(agent.id) if target.id in r.agents), None)
        if shared is not None:
            await chat.post_to_room(shared.jid, f"@{target.id} {arguments.text}")  # type: ignore[attr-defined]
            # No "@" here: the model often repeats a tool's answer, and a mention would ask the other agent again.
            return f"Posted to {target.id} in the room {shared.name}; its answer comes in that room."
        await rooms.deliver_between_agents(agent, target, arguments.text)
        return f"Delivered to {target.id}; its owner sees it in that agent's chat."

    async def read_messages(agent_id: str, arguments: ReadMessages) -> str:
        room = rooms.room_named(arguments.room)
        if room is None or agent_id not in room.agents:
            raise AgentChatError(f"you are not in a room named {arguments.room!r}")
        since = _parse_time(arguments.since) if arguments.since else 0.0
        lines = await rooms.store.conversation(f"room:{room.jid}", since=since, limit=READ_LIMIT)
        if not lines:
            return f"Nothing in {room.name} since then."
        return "\n".join(f"[{_time(at)}] {author}: {body}" for _, author, body, at in lines)

    async def search_messages(agent_id: str, arguments: SearchMessages) -> str:
        found = await rooms.store.search(arguments.query, agent=agent_id, limit=SEARCH_LIMIT)
        if not found:
            return "No message has all those words."
        return "\n".join(f"[{_time(at)} {where}] {author}: {body}" for where, author, body, at in found)

    async def list_agents(agent_id: str, arguments: ListAgents) -> str:
        agent = rooms.lookup(agent_id)
        lines = []
        for other in rooms.agents_visible_to(agent):
            where = ", ".join(r.name for r in rooms.visible_rooms(other.id)) or "no room"
            me = " (you)" if other.id == agent.id else ""
            lines.append(f"{other.id}{me}: owner {other.owner}, {other.record.status.value}, "
                         f"repository {other.repo_path().name}, rooms: {where}")
        return "\n".join(lines)

    return [
        AgentTool("send_message", "Send a message to a room you are in, to another agent, or to your owner. "
                  "In a room, @mention an agent to hand it a task.", SendMessage, send_message),
        AgentTool("read_messages", "The recent lines of a room you are in.", ReadMessages, read_messages),
        AgentTool("search_messages", "Search your chat and your rooms' history (every word must appear).",
                  SearchMessages, search_messages),
        AgentTool("list_agents", "The agents you can reach: your owner's, and those in your rooms.", ListAgents, list_agents),
    ]


def _parse_time(text: str) -> float:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise AgentChatError(f"since: {text!r} is not an ISO 8601 time (e.g. 2026-12-01T12:00:00Z)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _time(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(at))

"""Files an agent sends its owner: the ``send_file`` tool (files of its repository only), and answers
too long for a chat message, uploaded as one file with a three-line summary instead of many messages."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from agentchat.chat.port import ChatTransport, Outbound
from agentchat.chat.splitting import DEFAULT_LIMIT, utf8_size
from agentchat.errors import FileRefused
from agentchat.files.checks import check_content, check_size, human_size, safe_name
from agentchat.permissions.mcp_server import AgentTool

log = logging.getLogger(__name__)

# Above this (what one chat message holds), a text goes as a file.
LONG_TEXT_BYTES = DEFAULT_LIMIT
SEND_FILE_TOOL = "send_file"


class FileSender:
    """Uploads through one agent's account and shares the file with its owner."""

    def __init__(self, transport: ChatTransport, owner: str, agent_id: str, repo: Path, max_size: int) -> None:
        self._transport = transport
        self._owner = owner
        self._agent_id = agent_id
        self._repo = repo
        self._max_size = max_size

    async def send_long_text(self, text: str) -> bool:
        """Send ``text`` as a file when it is too long for one message; False when it is not, or when the
        upload failed (the caller then splits it into messages)."""
        size = utf8_size(text)
        if size <= LONG_TEXT_BYTES:
            return False
        diff = _looks_like_diff(text)
        name = f"{self._agent_id}-{time.strftime('%Y%m%d-%H%M%S')}.{'diff' if diff else 'txt'}"
        try:
            url = await self._transport.upload_file(name, text.encode("utf-8"), "text/plain; charset=utf-8")
        except FileRefused as exc:
            log.warning("agent %s: a long text goes as messages: %s", self._agent_id, exc)
            return False
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        what = "A diff" if diff else "A long answer"
        summary = (f"📄 {what} of {human_size(size)} ({len(text.splitlines()):,} lines), sent as the file {name}\n"
                   f"starts: {_excerpt(lines[0] if lines else '')}\n"
                   f"ends: {_excerpt(lines[-1] if lines else '')}")
        self._transport.send(Outbound(self._owner, summary))
        self._transport.send(Outbound(self._owner, url, attachment_url=url))
        return True

    async def send_path(self, path: str, caption: str) -> str:
        """Share a file of the repository with the owner; what was sent, for the agent."""
        repo = self._repo.resolve()
        given = Path(path)
        real = (given if given.is_absolute() else repo / given).resolve()
        if not real.is_relative_to(repo):
            raise FileRefused(f"{path} is outside the repository: only files inside {repo} can be sent")
        if not real.is_file():
            raise FileRefused(f"{path} is not a file in the repository")
        name = safe_name(real.name)
        check_size(name, real.stat().st_size, self._max_size)
        data = await asyncio.to_thread(real.read_bytes)
        check_size(name, len(data), self._max_size)
        checked = check_content(name, data)
        url = await self._transport.upload_file(name, data, checked.media_type)
        shown = real.relative_to(repo)
        line = f"📎 {shown} ({human_size(len(data))})" + (f": {caption.strip()}" if caption.strip() else "")
        self._transport.send(Outbound(self._owner, line))
        self._transport.send(Outbound(self._owner, url, attachment_url=url))
        return f"Sent {shown} ({human_size(len(data))}) to {self._owner}; it is in the chat as {url}"


class SendFileArguments(BaseModel):
    model_config = ConfigDict(extra="ignore")

    path: str = Field(min_length=1, max_length=4096,
                      description="The file to send: relative to the repository, or an absolute path inside it.")
    caption: str = Field("", max_length=2000, description="One line shown with the file.")


def send_file_tool(sender_of: Callable[[str], FileSender | None]) -> AgentTool:
    """The MCP tool ``send_file``: the agent shares a file of its repository with its owner's chat."""

    async def handle(agent_id: str, arguments: SendFileArguments) -> str:
        sender = sender_of(agent_id)
        if sender is None:
            raise FileRefused("this agent has no chat to send a file to")
        return await sender.send_path(arguments.path, arguments.caption)

    return AgentTool(
        SEND_FILE_TOOL,
        "Sends a file of your repository to the user's chat (they can open or download it). "
        "Use it for screenshots, reports, logs or diffs the user should see as a file.",
        SendFileArguments,
        handle,
    )


def _looks_like_diff(text: str) -> bool:
    head = text[:4096]
    return head.startswith(("diff --git", "--- ", "Index: ")) or ("\n+++ " in head and "\n@@ " in head)


def _excerpt(line: str, limit: int = 100) -> str:
    return line if len(line) <= limit else line[: limit - 1] + "…"

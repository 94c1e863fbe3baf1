"""Files the owner sends an agent: each attachment fetched, checked and saved, then the message for the
agent built (a line per saved file, the pictures for the model to see). Each refusal is one chat line."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from agentchat.agents.backends.base import TurnImage
from agentchat.chat.port import Inbound
from agentchat.errors import FileRefused
from agentchat.files.checks import check_content, human_size
from agentchat.files.fetcher import UploadFetcher
from agentchat.files.saved_files import SavedFiles

log = logging.getLogger(__name__)

# The Messages API takes images up to 5 MB (base64): larger ones reach the agent as a path only.
IMAGE_BLOCK_LIMIT = 3_750_000

Say = Callable[[str], Awaitable[None]]


@dataclass(frozen=True)
class TakenFiles:
    """What goes to the agent: the text (the caption, a line per saved file) and the pictures."""

    text: str
    images: tuple[TurnImage, ...] = ()


class FileIntake:
    """Takes the files of one agent's owner into that agent's repository."""

    def __init__(self, fetcher: UploadFetcher | None, saved: SavedFiles) -> None:
        self._fetcher = fetcher
        self._saved = saved

    async def take(self, inbound: Inbound, text: str, say: Say) -> TakenFiles | None:
        """``text`` with the attachments' URLs replaced by what became of them; None when nothing is left
        for the agent (every file refused and no other text)."""
        lines: list[str] = []
        images: list[TurnImage] = []
        for attachment in inbound.attachments:
            text = text.replace(attachment.url, "")
            try:
                told, line, image = await self._take_one(attachment.url)
            except FileRefused as exc:
                log.info("file from %s refused: %s", inbound.sender, exc)
                await say(f"⛔ {exc}")
                continue
            await say(told)
            if image is not None:
                images.append(image)
            else:
                lines.append(line)
        caption = text.strip()
        if not lines and not images and not caption:
            return None
        return TakenFiles("\n".join(([caption] if caption else []) + lines), tuple(images))

    async def _take_one(self, url: str) -> tuple[str, str, TurnImage | None]:
        """(the owner's chat line, the agent's line, the picture for the model)."""
        if self._fetcher is None:
            raise FileRefused("files are not taken here: no upload service is configured (files.uploadUrl)")
        fetched = await self._fetcher.fetch(url)
        checked = check_content(fetched.name, fetched.data)
        path = await self._saved.save(checked.name, fetched.data)
        facts = f"{human_size(checked.size)}, {checked.media_type}"
        if checked.is_image and checked.size <= IMAGE_BLOCK_LIMIT:
            image = TurnImage(checked.media_type, fetched.data, str(path))
            return f"📎 Saved {path} ({facts}): the agent sees the picture.", "", image
        return (f"📎 Saved {path} ({facts}): the agent gets its path.",
                f"The user sent a file, saved at {path} ({facts})", None)

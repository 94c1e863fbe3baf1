"""The files side of one agent's chat: what comes in (FileIntake) and what goes out (FileSender)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from agentchat.chat.port import ChatTransport
from agentchat.config import FilesSettings
from agentchat.files.fetcher import UploadFetcher
from agentchat.files.intake import FileIntake
from agentchat.files.outgoing import FileSender
from agentchat.files.saved_files import SavedFiles


@dataclass(frozen=True)
class AgentFiles:
    intake: FileIntake
    sender: FileSender


def agent_files(transport: ChatTransport, owner: str, agent_id: str, repo: Path, settings: FilesSettings) -> AgentFiles:
    fetcher = (UploadFetcher(settings.upload_url, settings.max_size, settings.local_upload_url)
               if settings.upload_url else None)
    return AgentFiles(
        FileIntake(fetcher, SavedFiles(repo, settings.inbox_folder)),
        FileSender(transport, owner, agent_id, repo, settings.max_size),
    )

"""Where received files land: a folder of the agent's repository (``files.inboxFolder``), git-ignored by
a ``.gitignore`` of its own, written without following symlinks and never outside that folder."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from agentchat.errors import FileRefused

GITIGNORE = "# Files received in agentchat's chat: not part of the repository.\n*\n"


class SavedFiles:
    """The inbox folder of one repository."""

    def __init__(self, repo: Path, folder: str) -> None:
        self.repo = repo
        self.folder = folder

    async def save(self, name: str, data: bytes) -> Path:
        """Write ``data`` as ``name`` (``name-1``, ``name-2``… when taken by another file; the same bytes
        again reuse the file); the path relative to the repository."""
        return await asyncio.to_thread(self._save, name, data)

    def _save(self, name: str, data: bytes) -> Path:
        folder = self._folder()
        stem, dot, suffix = name.rpartition(".") if "." in name.lstrip(".") else (name, "", "")
        for attempt in range(1000):
            candidate = name if attempt == 0 else f"{stem}-{attempt}{dot}{suffix}"
            path = folder / candidate
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
            except FileExistsError:
                if _same_file(path, data):
                    return path.relative_to(self.repo.resolve())
                continue
            except OSError as exc:
                raise FileRefused(f"{name} was not saved: {exc.strerror}") from exc
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            return path.relative_to(self.repo.resolve())
        raise FileRefused(f"{name} was not saved: too many files of that name in {self.folder}")

    def _folder(self) -> Path:
        """The inbox folder, made if needed; refused when it (or a parent) leads out of the repository."""
        repo = self.repo.resolve()
        folder = repo
        try:
            for part in Path(self.folder).parts:
                folder = folder / part
                if folder.is_symlink():
                    raise FileRefused(f"files are not saved: {self.folder} in the repository is a symbolic link")
                folder.mkdir(exist_ok=True, mode=0o755)
            if not folder.resolve().is_relative_to(repo):
                raise FileRefused(f"files are not saved: {self.folder} leads out of the repository")
            ignore = folder / ".gitignore"
            if not ignore.exists() and not ignore.is_symlink():
                ignore.write_text(GITIGNORE, encoding="utf-8")
        except OSError as exc:
            raise FileRefused(f"files are not saved: cannot make {self.folder} in the repository ({exc.strerror})") from exc
        return folder


def _same_file(path: Path, data: bytes) -> bool:
    try:
        if path.is_symlink() or path.stat().st_size != len(data):
            return False
        return path.read_bytes() == data
    except OSError:
        return False

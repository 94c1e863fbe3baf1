"""Where received files land: the repository's inbox folder, git-ignored, never overwritten, never outside."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from agentchat.errors import FileRefused
from agentchat.files.saved_files import SavedFiles


async def test_saved_in_a_git_ignored_folder_without_overwriting(tmp_path: Path) -> None:
    repo = tmp_path / "api"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    saved = SavedFiles(repo, ".agentchat/inbox")
    assert await saved.save("a.txt", b"one") == Path(".agentchat/inbox/a.txt")
    assert await saved.save("a.txt", b"one") == Path(".agentchat/inbox/a.txt")  # the same bytes again: the same file
    assert await saved.save("a.txt", b"two") == Path(".agentchat/inbox/a-1.txt")
    assert await saved.save(".env", b"x") == Path(".agentchat/inbox/.env")
    assert await saved.save(".env", b"y") == Path(".agentchat/inbox/.env-1")
    assert (repo / ".agentchat/inbox/a.txt").read_bytes() == b"one"
    status = subprocess.run(["git", "status", "--porcelain", "--ignored"], cwd=repo, capture_output=True, text=True, check=True)
    assert status.stdout == "!! .agentchat/\n"


async def test_a_folder_that_leads_out_of_the_repository_is_refused(tmp_path: Path) -> None:
    repo, outside = tmp_path / "api", tmp_path / "elsewhere"
    repo.mkdir()
    outside.mkdir()
    (repo / ".agentchat").symlink_to(outside)
    with pytest.raises(FileRefused, match="symbolic link"):
        await SavedFiles(repo, ".agentchat/inbox").save("a.txt", b"x")
    assert list(outside.iterdir()) == []


async def test_a_symlink_in_place_of_the_file_is_not_followed(tmp_path: Path) -> None:
    repo = tmp_path / "api"
    (repo / ".agentchat" / "inbox").mkdir(parents=True)
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    (repo / ".agentchat" / "inbox" / "a.txt").symlink_to(victim)
    assert await SavedFiles(repo, ".agentchat/inbox").save("a.txt", b"new") == Path(".agentchat/inbox/a-1.txt")
    assert victim.read_text() == "keep me"

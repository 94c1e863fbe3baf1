"""Files the owner sends an agent, end to end: a real Prosody's upload service (XEP-0363), the URL as
body + XEP-0066, the service fetching, checking and saving it in the repository, the agent (the fake
CLI) getting a picture as an image block and other files as a path. Bad input is refused in one line
and nothing is written outside the inbox folder."""

from __future__ import annotations

import base64
import os
import subprocess
import zlib
from pathlib import Path

import pytest

from tests.harness.files import send_file_message, upload
from tests.support.service import create_agent, make_repositories, running_service, service_settings

INBOX = ".agentchat/inbox"


def png(width: int = 2, height: int = 2) -> bytes:
    """A real (tiny) PNG."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")
    raw = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 2, 0, 0, 0])
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def files_settings(prosody, tmp_path: Path, **files: object):
    return service_settings(prosody, tmp_path, files={"uploadUrl": prosody.params.upload_url,
                                                      "localUploadUrl": prosody.params.local_upload_url, **files})


def tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


async def test_a_picture_reaches_the_agent_as_an_image_and_a_file_as_its_path(prosody, user_client, tmp_path: Path) -> None:
    settings = files_settings(prosody, tmp_path)
    work = make_repositories(settings.work.base_path)
    repo = work / "api"
    async with running_service(settings):
        alice = await user_client("alice")
        _, agent = await create_agent(alice, settings.manager_jid)
        picture = png()
        url = await upload(alice, "screenshot.png", picture, "image/png")
        send_file_message(alice, agent, url)
        saved = await alice.expect("📎 Saved", from_=agent, timeout=20)
        assert f"{INBOX}/screenshot.png" in saved.body and "the agent sees the picture" in saved.body
        reply = await alice.expect("MOCK_REPLY", from_=agent, timeout=20)
        # The fake CLI echoes what it got: the path as text, the picture as an image block with its bytes.
        assert f"The user sent an image, saved at {INBOX}/screenshot.png" in reply.body
        assert f"[image image/png, {len(picture)} bytes]" in reply.body
        assert (repo / INBOX / "screenshot.png").read_bytes() == picture

        notes = b"# notes\nremember the milk\n"
        url = await upload(alice, "notes.md", notes, "text/markdown")
        send_file_message(alice, agent, url, body=f"read this {url}")
        await alice.expect("📎 Saved", from_=agent, timeout=20)
        reply = await alice.expect("MOCK_REPLY", from_=agent, timeout=20)
        assert "read this" in reply.body and url not in reply.body
        assert f"The user sent a file, saved at {INBOX}/notes.md (26 B, text/plain)" in reply.body
        assert "[image" not in reply.body
        assert (repo / INBOX / "notes.md").read_bytes() == notes
        # Git-ignored: the repository stays clean.
        status = subprocess.run(["git", "status", "--porcelain"], cwd=repo, capture_output=True, text=True, check=True)
        assert status.stdout == ""


async def test_bad_files_are_refused_in_one_line_and_nothing_is_written_outside_the_inbox(prosody, user_client, tmp_path: Path) -> None:
    settings = files_settings(prosody, tmp_path, maxSize=4096)
    work = make_repositories(settings.work.base_path)
    repo = work / "api"
    before = tree(tmp_path)
    async with running_service(settings):
        alice = await user_client("alice")
        _, agent = await create_agent(alice, settings.manager_jid)
        base = prosody.params.upload_url
        big = await upload(alice, "big.bin", b"x" * 5000)
        not_png = await upload(alice, "photo.png", b"GIF89a not a png at all")
        cases = [
            (big, "5.0 kB is over the 4.1 kB limit"),
            ("https://evil.example/file_share/abc/x.png", "is not on this server's upload service"),
            (f"{base}abc/..%2F..%2Fetc%2Fpasswd", "has a path in it"),
            (f"{base}../admin_rest/user/admin", "has a path in it"),
            (f"{base}abc/evil%0Aname.txt", "has control characters"),
            (f"{base}abc/rtl%E2%80%AEgnp.exe", "has control characters"),
            (not_png, "photo.png was not taken: it is named like a PNG but its content is a GIF"),
        ]
        for url, why in cases:
            send_file_message(alice, agent, url)
            refusal = await alice.expect("⛔", from_=agent, timeout=20)
            assert why in refusal.body, (url, refusal.body)
            assert "\n" not in refusal.body
        # Nothing reached the agent (no turn ran), and nothing but the inbox's .gitignore was written.
        await alice.send(agent, "ping")
        first = await alice.expect("MOCK_REPLY", from_=agent, timeout=20)
        assert first.body == "MOCK_REPLY: ping"
        assert not any("⛔" in m.body for m in alice.messages[alice.messages.index(first):])
    written = tree(tmp_path) - before
    # agents/<id>/: the agent's own sandbox home and scratch directory (gone with the agent).
    outside = {p for p in written if not p.startswith(("work/api/.agentchat", "state.db", "audit.jsonl", "claude-home", "agents"))}
    assert outside == set(), outside
    assert not (repo / ".agentchat").exists()  # every check comes before the first write


async def test_only_the_owner_s_files_are_taken(prosody, user_client, tmp_path: Path) -> None:
    settings = files_settings(prosody, tmp_path)
    work = make_repositories(settings.work.base_path)
    async with running_service(settings):
        alice = await user_client("alice")
        mallory = await user_client("mallory")
        _, agent = await create_agent(alice, settings.manager_jid)
        url = await upload(mallory, "payload.txt", b"echo pwned\n")
        send_file_message(mallory, agent, url)
        await mallory.expect("only talks to its owner", from_=agent, timeout=20)
        assert not (work / "api" / INBOX).exists()


@pytest.mark.claude_cli
async def test_the_real_cli_passes_the_picture_to_the_model(prosody, user_client, tmp_path: Path) -> None:
    """Claude sees the screenshot: the real Claude Code CLI forwards our image block to the Messages API."""
    from agentchat.agents.backends.claude import locate_claude
    from agentchat.errors import BackendError
    from tests.support.mock_anthropic import MockAnthropic

    try:
        claude = locate_claude(os.environ.get("CLAUDE_PATH"))
    except BackendError as exc:
        pytest.skip(f"real Claude Code CLI not available: {exc}")
    async with MockAnthropic() as api:
        settings = files_settings(prosody, tmp_path)
        settings.agents.claude.path = str(claude)
        settings.agents.claude.env = api.cli_env(home=tmp_path / "claude-home")
        make_repositories(settings.work.base_path)
        api.script_text("A red square.")
        async with running_service(settings):
            alice = await user_client("alice")
            _, agent = await create_agent(alice, settings.manager_jid)
            picture = png(8, 8)
            url = await upload(alice, "square.png", picture, "image/png")
            send_file_message(alice, agent, url, body=f"what is this? {url}")
            await alice.expect("A red square.", from_=agent, timeout=60)
        last_user = [m for m in api.requests[-1].messages if m.get("role") == "user"][-1]
        blocks = last_user["content"]
        images = [b for b in blocks if isinstance(b, dict) and b.get("type") == "image"]
        assert [(i["source"]["media_type"], base64.b64decode(i["source"]["data"])) for i in images] == [("image/png", picture)]
        texts = " ".join(str(b.get("text", "")) for b in blocks if isinstance(b, dict) and b.get("type") == "text")
        assert "what is this?" in texts and f"saved at {INBOX}/square.png" in texts


async def test_a_picture_that_waited_in_the_queue_reaches_the_agent_after_a_restart(prosody, user_client, tmp_path: Path) -> None:
    """Sent while the agent works, so it waits; the service restarts before its turn: the agent still sees
    the picture (read again from where it was saved), not the upload's URL."""
    settings = files_settings(prosody, tmp_path)
    work = make_repositories(settings.work.base_path)
    picture = png(4, 4)
    async with running_service(settings):
        alice = await user_client("alice")
        _, agent = await create_agent(alice, settings.manager_jid)
        await alice.send(agent, "[[sleep:30]] a long job")
        url = await upload(alice, "bug.png", picture, "image/png")
        send_file_message(alice, agent, url)
        await alice.expect("📎 Saved", from_=agent, timeout=20)
        await alice.expect("⏳ Queued", from_=agent, timeout=20)
    async with running_service(settings):
        reply = await alice.expect(lambda m: m.body.startswith("MOCK_REPLY") and "bug.png" in m.body, timeout=30)
        assert url not in reply.body
        assert f"The user sent an image, saved at {INBOX}/bug.png" in reply.body
        assert f"[image image/png, {len(picture)} bytes]" in reply.body
        assert (work / "api" / INBOX / "bug.png").read_bytes() == picture

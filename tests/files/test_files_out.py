"""Files an agent sends: its send_file tool (through the MCP server, files of its repository only) and
an answer too long for a chat message, which arrives as one file with a three-line summary."""

from __future__ import annotations

import json
from pathlib import Path

from tests.files.test_files_in import files_settings, png
from tests.harness.files import download, oob_url
from tests.support.service import create_agent, make_repositories, running_service, service_settings


def send_file(path: str, caption: str = "") -> str:
    return f"[[tool:mcp__agentchat__send_file {json.dumps({'path': path, 'caption': caption})}]]"


async def test_the_agent_sends_a_file_of_its_repository_and_nothing_outside_it(prosody, user_client, tmp_path: Path) -> None:
    settings = files_settings(prosody, tmp_path)
    work = make_repositories(settings.work.base_path)
    picture = png(4, 3)
    (work / "api" / "shots").mkdir()
    (work / "api" / "shots" / "page.png").write_bytes(picture)
    (tmp_path / "secret.txt").write_text("not for the chat\n")
    (work / "api" / "link.txt").symlink_to(tmp_path / "secret.txt")
    async with running_service(settings):
        alice = await user_client("alice")
        _, agent = await create_agent(alice, settings.manager_jid)
        await alice.send(agent, send_file("shots/page.png", "the page after the fix"))
        line = await alice.expect("📎 shots/page.png", from_=agent, timeout=20)
        assert line.body == f"📎 shots/page.png ({len(picture)} B): the page after the fix"
        shared = await alice.expect(lambda m: oob_url(m.stanza) is not None, from_=agent, timeout=20)
        assert shared.body == oob_url(shared.stanza)  # body = URL, as clients show it inline
        assert shared.body.startswith(prosody.params.upload_url)
        assert await download(shared.body) == picture
        result = await alice.expect("MOCK_TOOL_RESULT", from_=agent, timeout=20)
        assert "Sent shots/page.png" in result.body and "(error)" not in result.body

        for path in ("../../secret.txt", str(tmp_path / "secret.txt"), "link.txt", "missing.txt"):
            await alice.send(agent, send_file(path))
            refused = await alice.expect("MOCK_TOOL_RESULT (error)", from_=agent, timeout=20)
            assert "outside the repository" in refused.body or "is not a file" in refused.body, refused.body
        assert not any("not for the chat" in m.body for m in alice.messages)


async def test_a_long_answer_arrives_as_one_file_with_a_three_line_summary(prosody, user_client, tmp_path: Path) -> None:
    settings = files_settings(prosody, tmp_path)
    make_repositories(settings.work.base_path)
    async with running_service(settings):
        # Unthrottled: a human's 200 kB message takes 20 s under Prosody's 10 kB/s c2s limit.
        alice = await user_client("alice", service=True)
        agent_id, agent = await create_agent(alice, settings.manager_jid)
        text = "".join(f"line {i:05d} of the log\n" for i in range(8000))  # 176 kB
        await alice.send(agent, text)
        summary = await alice.expect("📄", from_=agent, timeout=20)
        lines = summary.body.splitlines()
        assert len(lines) == 3
        assert lines[0].startswith("📄 A long answer of 176.0 kB") and "(8,000 lines)" in lines[0] and f"{agent_id}-" in lines[0]
        assert lines[1] == "starts: MOCK_REPLY: line 00000 of the log"
        assert lines[2] == "ends: line 07999 of the log"
        shared = await alice.expect(lambda m: oob_url(m.stanza) is not None, from_=agent, timeout=20)
        assert (await download(shared.body)).decode().rstrip("\n") == "MOCK_REPLY: " + text.rstrip("\n")
        done = await alice.expect("✅ Done", from_=agent, timeout=20)
        between = alice.messages[alice.messages.index(summary):alice.messages.index(done)]
        assert len(between) == 2  # the summary and the file, not a dozen pieces


async def test_without_an_upload_service_a_long_answer_is_split(user_client, tmp_path: Path) -> None:
    from tests.harness.prosody import ProsodyServer

    server = ProsodyServer.create(http_upload=False)
    server.start_blocking()
    try:
        settings = service_settings(server, tmp_path)
        make_repositories(settings.work.base_path)
        async with running_service(settings):
            alice = await user_client("alice", service=True, server=server)
            _, agent = await create_agent(alice, settings.manager_jid)
            text = ("0123456789" * 9 + "\n") * 1500  # ~137 kB
            await alice.send(agent, text)
            pieces = []
            while sum(len(p) for p in pieces) < len(text):
                pieces.append((await alice.expect(lambda m: m.body.startswith(("MOCK_REPLY", "0123")), from_=agent, timeout=20)).body)
            assert len(pieces) >= 3 and all(len(p.encode()) <= 60_000 for p in pieces)
            # Split on line boundaries: nothing lost but the line breaks where the pieces meet.
            assert "".join(pieces).replace("\n", "") == ("MOCK_REPLY: " + text).replace("\n", "")
    finally:
        server.cleanup()

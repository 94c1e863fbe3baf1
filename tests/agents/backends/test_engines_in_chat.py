"""Codex, Gemini CLI and OpenCode behind the same chat as Claude Code: the real service, a real Prosody,
a real XMPP client, each engine's real CLI against its mock API (one engine start per phase of the test).

What the owner sees is what a Claude Code agent shows: the text, tool lines, 🔐 prompts answered with
yes / no <reason> / a reaction, ✅ Done, ⏹ Stopped after `stop`, 💥 when the engine dies, and the next
message resuming the session. Skipped with the reason printed when the engine is not installed.
"""

from __future__ import annotations

import json
import os
import re
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.faults.support import wait_until
from tests.support.engines import config_section, engine_binary, engine_dir
from tests.support.mock_anthropic import MockAnthropic
from tests.support.mock_gemini import MockGemini
from tests.support.mock_responses import MockResponses
from tests.support.service import create_agent, make_repositories, running_service, service_settings

pytestmark = pytest.mark.engines
T = 45.0
PROMPT_ID = re.compile(r"#([0-9a-f]{4})")
SLOW = "".join(f"word{n} " for n in range(40))
LABELS = {"codex": "Codex", "gemini": "Gemini CLI", "opencode": "OpenCode"}


@dataclass
class Api:
    kind: str
    mock: Any

    @property
    def base_url(self) -> str:
        return str(self.mock.base_url)

    def text(self, text: str, chunks: int = 1, delay: float = 0.0) -> None:
        self.mock.script_text(text, chunks=chunks, chunk_delay=delay)

    def shell(self, command: str) -> None:
        if self.kind == "codex":
            self.mock.script_call("exec_command", {"cmd": command, "sandbox_permissions": "require_escalated",
                                                   "justification": "Run the command"})
        elif self.kind == "gemini":
            self.mock.script_call("run_shell_command", {"command": command, "description": "Run the command"})
        else:
            self.mock.script_tool_use("bash", {"command": command, "description": "Run the command"})

    def write(self, path: Path, content: str) -> None:
        if self.kind == "codex":
            self.mock.script_patch(f"*** Begin Patch\n*** Add File: {path}\n+{content}\n*** End Patch\n")
        elif self.kind == "gemini":
            self.mock.script_call("write_file", {"file_path": str(path), "content": content + "\n"})
        else:
            self.mock.script_tool_use("write", {"filePath": str(path), "content": content + "\n"})

    def unrenderable(self, repo: Path) -> None:
        """A request the chat has no rendering of: a two-file patch, a web fetch."""
        if self.kind == "codex":
            self.mock.script_patch(f"*** Begin Patch\n*** Add File: {repo / 'a.txt'}\n+a\n*** Add File: {repo / 'b.txt'}\n+b\n*** End Patch\n")
        elif self.kind == "gemini":
            self.mock.script_call("web_fetch", {"prompt": "Summarize http://127.0.0.1:9/page"})
        else:
            self.mock.script_tool_use("webfetch", {"url": "http://127.0.0.1:9/page", "format": "text"})

    def user_texts(self) -> list[str]:
        return list(self.mock.requests[-1].user_texts())

    async def wait_for_requests(self, count: int) -> None:
        await self.mock.wait_for_requests(count, timeout=T)


@pytest.fixture(params=["codex", "gemini", "opencode"])
async def api(request: pytest.FixtureRequest) -> AsyncIterator[Api]:
    kind = request.param
    engine_binary(kind)
    mock = {"codex": MockResponses, "gemini": MockGemini}.get(kind, lambda: MockAnthropic(answer_titles=True))()
    async with mock:
        yield Api(kind, mock)


@pytest.fixture
def home() -> AsyncIterator[Path]:
    with engine_dir() as path:  # not under /tmp: Codex's sandbox hides it
        yield path


async def test_an_engine_agent_in_chat(prosody, user_client, api: Api, home: Path) -> None:
    kind, label = api.kind, LABELS[api.kind]
    settings = service_settings(prosody, home, agents={kind: config_section(kind, api.base_url, engine_binary(kind))})
    work = make_repositories(settings.work.base_path)
    repo = work / "api"
    async with running_service(settings) as service:
        alice = await user_client("alice")
        await alice.send(settings.manager_jid, "new")
        choices = await alice.expect("Which type?", from_=settings.manager_jid)
        assert f". {label}" in choices.body
        await alice.send(settings.manager_jid, "cancel")
        agent_id, agent = await create_agent(alice, settings.manager_jid, kind=kind, task="hello there", timeout=T)
        await alice.expect("MOCK_REPLY: hello there", from_=agent, timeout=T)
        await alice.expect("✅ Done", from_=agent, timeout=T)

        # A command that asks: the same 🔐 prompt as Claude Code's, answered with a 👍.
        api.shell("echo hi > hi.txt")
        await alice.send(agent, "write hi.txt")
        await alice.expect("🔧 Bash: `echo hi > hi.txt`", from_=agent, timeout=T)
        prompt = await alice.expect("🔐 Permission #", from_=agent, timeout=T)
        assert "Bash" in prompt.body and "echo hi > hi.txt" in prompt.body
        alice.xmpp.plugin["xep_0444"].send_reactions(agent, prompt.id, ["👍"])
        await alice.expect("allowed", from_=agent, timeout=T)
        await alice.expect("✅ Done", from_=agent, timeout=T)
        assert (repo / "hi.txt").read_text() == "hi\n"

        # A new file, denied with a reason.
        api.write(repo / "new.txt", "hello")
        await alice.send(agent, "create new.txt")
        prompt = await alice.expect("🔐 Permission #", from_=agent, timeout=T)
        assert "Write" in prompt.body and "new.txt" in prompt.body and "hello" in prompt.body
        await alice.send(agent, "no use notes.md instead")
        await alice.expect("denied: use notes.md instead", from_=agent, timeout=T)
        if kind == "codex":
            await alice.expect("✅ Done", from_=agent, timeout=T)
            assert "Permission denied: use notes.md instead" in api.user_texts()
        else:
            await alice.expect("carries no reason", from_=agent, timeout=T)
            await alice.expect(lambda m: m.body.startswith(("✅", "⚠️")), from_=agent, timeout=T)
        assert not (repo / "new.txt").exists()

        # A request the chat cannot render: its input as raw JSON in a code block, still answerable.
        api.unrenderable(repo)
        await alice.send(agent, "one more thing")
        prompt = await alice.expect("🔐 Permission #", from_=agent, timeout=T)
        assert "```\n{" in prompt.body
        await alice.send(agent, "no")
        await alice.expect("denied", from_=agent, timeout=T)
        await alice.expect(lambda m: m.body.startswith(("✅", "⚠️")), from_=agent, timeout=T)
        # OpenCode sometimes gives the model the refusal and goes on (another request to the mock) before the
        # turn ends: the next request counted below must be the next turn's.
        running = service.supervisor.get(agent_id)
        await wait_until(lambda: running is not None and not running.in_turn and not running.queued, T, "the turn over")

        # stop mid-turn.
        api.text(SLOW, chunks=40, delay=0.5)
        count = len(api.mock.requests)
        await alice.send(agent, "go slowly")
        await api.wait_for_requests(count + 1)
        await alice.send(agent, "stop")
        await alice.expect("⏹ Stopped", from_=agent, timeout=15)

        # The engine dies mid-turn: the owner is told; the next message starts it again on the session.
        api.text(SLOW, chunks=40, delay=0.5)
        count = len(api.mock.requests)
        await alice.send(agent, "go slowly again")
        await api.wait_for_requests(count + 1)
        record = service.supervisor.get(agent_id)
        assert record is not None and record.backend_pid is not None
        os.kill(record.backend_pid, signal.SIGKILL)
        crash = await alice.expect("💥", from_=agent, timeout=15)
        assert "killed by SIGKILL" in crash.body
        await alice.send(agent, "what did I say first?")
        await alice.expect("MOCK_REPLY: what did I say first?", from_=agent, timeout=T)
        if kind != "gemini":  # Gemini CLI cannot load a session within the minute it began (see the ACP tests)
            assert api.user_texts()[0] == "hello there", "the session was resumed"

        # Every decision is in the audit log, with the engine.
        lines = [json.loads(line) for line in (home / "audit.jsonl").read_text().splitlines()]
        assert {line["engine"] for line in lines} == {kind}
        assert [line["decision"] for line in lines][:2] == ["allow", "deny"]


async def test_an_engine_configured_but_missing_says_so_in_one_line(prosody, user_client, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "codex"
    settings = service_settings(prosody, tmp_path, agents={"codex": {"path": str(missing)}})
    make_repositories(settings.work.base_path)
    async with running_service(settings):
        alice = await user_client("alice")
        _, agent = await create_agent(alice, settings.manager_jid, kind="codex", task="hello")
        failed = await alice.expect("⚠️", from_=agent, timeout=T)
        assert failed.body == (
            f"⚠️ Codex '{missing}' (agents.codex.path / CODEX_PATH) does not exist: "
            "run `make install-engines`, put it on PATH, or set its path in the config"
        )
        await alice.send(agent, "status")
        await alice.expect("📊", from_=agent)


@pytest.mark.parametrize("kind", ["codex", "opencode"])  # Gemini CLI cannot load a session within its first minute
async def test_an_engine_agent_of_before_the_sandbox_keeps_its_session_across_a_restart(prosody, user_client, kind: str, home: Path) -> None:
    """Engines used to keep their state in <agent>/<engine>/ (home/, codex-home/), which the sandbox
    hides; after the upgrade it is moved into the agent's own home and the session goes on."""
    async with {"codex": MockResponses, "opencode": lambda: MockAnthropic(answer_titles=True)}[kind]() as mock:
        api = Api(kind, mock)
        settings = service_settings(prosody, home, agents={kind: config_section(kind, api.base_url, engine_binary(kind))})
        make_repositories(settings.work.base_path)
        alice = await user_client("alice")
        async with running_service(settings):
            agent_id, agent = await create_agent(alice, settings.manager_jid, kind=kind, task="remember the number 42", timeout=T)
            await alice.expect("✅ Done", from_=agent, timeout=T)
        # The layout of the version before: the engine's HOME and CODEX_HOME side by side under <agent>/<engine>/.
        root = home / "agents" / agent_id
        legacy = root / kind
        (legacy / "home").mkdir(parents=True)
        if kind == "codex":
            (root / "home" / ".codex").rename(legacy / "codex-home")
        for entry in (root / "home").iterdir():
            entry.rename(legacy / "home" / entry.name)

        async with running_service(settings):
            await alice.expect("restarted", from_=agent, timeout=T)
            await alice.send(agent, "what was the number?")
            await alice.expect("MOCK_REPLY: what was the number?", from_=agent, timeout=T)
            assert api.user_texts()[0] == "remember the number 42", "the session was resumed"
        assert not legacy.exists()
        assert (root / "home" / (".codex" if kind == "codex" else ".local/share/opencode")).is_dir()


async def test_an_engine_without_network_says_so_in_one_line(prosody, user_client, tmp_path: Path) -> None:
    engine = tmp_path / "codex"
    engine.write_text("#!/bin/sh\nexit 1\n")
    engine.chmod(0o755)
    settings = service_settings(prosody, tmp_path, agents={"codex": {"path": str(engine)}})
    settings.agents.sandbox.network = False
    make_repositories(settings.work.base_path)
    async with running_service(settings) as service:
        if not service.sandbox.enabled:
            pytest.skip(service.sandbox.summary())
        alice = await user_client("alice")
        _, agent = await create_agent(alice, settings.manager_jid, kind="codex", task="hello")
        failed = await alice.expect("⚠️", from_=agent, timeout=T)
        assert failed.body == (
            "⚠️ Codex cannot reach its model's API: agents.sandbox.network is false, so agents have no network "
            "(set it to true to use this engine)"
        )

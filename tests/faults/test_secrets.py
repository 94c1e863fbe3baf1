"""Secrets never reach a log or a chat: the admin and manager passwords, every agent's generated XMPP
password, every MCP bearer token and the API key handed to the CLI.

The service runs with the production logging set-up at DEBUG (slixmpp's raw stanzas included) into a
file; the test walks login, agent creation, a permission prompt, a CLI crash whose stderr carries the
API key, and a kill; then it scans the log file, stderr, every message the users received and the
audit log, for each secret as is and base64-encoded (HTTP Basic and SASL PLAIN carry them so).
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentchat.logs import setup_logging
from agentchat.provisioning.base import Provisioner
from tests.support.service import create_agent, make_repositories, running_service, service_settings, show_to_agents

API_KEY = "sk-ant-api03-FAKEFAKEFAKEFAKE-0123456789abcdefghij"
PROMPT = "🔐 Permission #"


@pytest.fixture
def debug_log(tmp_path: Path) -> Iterator[Path]:
    """The service's own logging set-up (secret filter included) at DEBUG into a file; restored afterwards."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, logging.getLogger("slixmpp").level)
    path = tmp_path / "agentchat.log"
    setup_logging("DEBUG", path)
    try:
        yield path
    finally:
        for handler in root.handlers:
            handler.close()
        root.handlers[:], root.level = saved[0], saved[1]
        logging.getLogger("slixmpp").setLevel(saved[2])


def capture_passwords(provisioner: Provisioner, into: list[str]) -> None:
    """Wrap the provisioner so the test learns every password the supervisor generates."""
    create, change = provisioner.create_account, provisioner.change_password

    async def create_account(username: str, password: str) -> None:
        into.append(password)
        await create(username, password)

    async def change_password(username: str, password: str) -> None:
        into.append(password)
        await change(username, password)

    provisioner.create_account = create_account  # type: ignore[method-assign]
    provisioner.change_password = change_password  # type: ignore[method-assign]


def forms(secret: str, jids: list[str]) -> dict[str, str]:
    """A secret as it may be written: plain, base64, HTTP Basic (jid:secret), SASL PLAIN (\\0user\\0secret)."""
    found = {"plain": secret, "base64": base64.b64encode(secret.encode()).decode()}
    for jid in jids:
        found[f"basic {jid}"] = base64.b64encode(f"{jid}:{secret}".encode()).decode()
        found[f"plain-sasl {jid}"] = base64.b64encode(f"\0{jid.split('@')[0]}\0{secret}".encode()).decode()
    return found


async def test_no_secret_in_logs_chats_or_audit(
    prosody, user_client, tmp_path: Path, debug_log: Path, capfd: pytest.CaptureFixture[str],
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    settings = service_settings(prosody, tmp_path)
    settings.agents.claude.env["ANTHROPIC_API_KEY"] = API_KEY
    work = make_repositories(settings.work.base_path)
    crash = show_to_agents(settings, tmp_path_factory.mktemp("fixtures")) / "crash_with_key.jsonl"
    crash.write_text(
        "\n".join(
            json.dumps(line)
            for line in (
                {"__fake__": "stderr", "text": f"Error: API key {API_KEY} rejected (401)"},
                {"__fake__": "exit", "code": 1},
            )
        )
        + "\n"
    )
    passwords: list[str] = []
    tokens: set[str] = set()
    manager = settings.manager_jid
    async with running_service(settings) as service:
        assert service.provisioner is not None
        capture_passwords(service.provisioner, passwords)
        alice = await user_client("alice")
        bob = await user_client("bob")
        agent_id, agent = await create_agent(alice, manager, task="hello")
        tokens.update(service.agent_host.tokens.values())
        await alice.expect("✅ Done", from_=agent, timeout=20)

        target = work / "api" / "secret-test.txt"
        await alice.send(agent, f"[[tool:Write {json.dumps({'file_path': str(target), 'content': 'x'})}]]")
        await alice.expect(PROMPT, from_=agent, timeout=20)
        await alice.send(agent, "yes")
        await alice.expect("✅ Done", from_=agent, timeout=20)

        await alice.send(agent, f"[[fixture:{crash}]]")
        crashed = await alice.expect("💥", from_=agent, timeout=20)
        await alice.send(agent, "after the crash")  # a new process, with a new token
        await alice.expect("MOCK_REPLY: after the crash", from_=agent, timeout=20)
        tokens.update(service.agent_host.tokens.values())

        await bob.send(agent, "let me in")
        await bob.expect("only talks to its owner", from_=agent)
        await alice.send(manager, "status " + agent_id)
        await alice.expect("📊", from_=manager)
        await alice.send(manager, f"kill {agent_id}")
        await alice.expect("killed", from_=manager, timeout=20)

    assert passwords and tokens, "the test captured no generated secret"
    secrets = {
        "admin password": prosody.admin_password,
        "manager password": prosody.manager_password,
        "API key": API_KEY,
        **{f"agent password {n}": p for n, p in enumerate(passwords)},
        **{f"MCP token {n}": t for n, t in enumerate(sorted(tokens))},
    }
    jids = [prosody.admin_jid, manager, f"{agent_id}@{prosody.domain}"]
    captured = capfd.readouterr()
    places = {
        "log file": debug_log.read_text(encoding="utf-8"),
        "stderr": captured.err,
        "stdout": captured.out,
        "alice's chats": "\n".join(m.body for m in alice.messages),
        "bob's chats": "\n".join(m.body for m in bob.messages),
        "audit log": (tmp_path / "audit.jsonl").read_text(encoding="utf-8"),
    }
    assert len(places["log file"]) > 10_000, "DEBUG logging wrote almost nothing: the scan proves nothing"
    assert "SASL" in places["log file"] or "<auth" in places["log file"], "slixmpp's stanzas are not in the log"
    leaks = [
        f"{name} ({form}) in {place}"
        for name, secret in secrets.items()
        for form, written in forms(secret, jids).items()
        for place, text in places.items()
        if written in text
    ]
    assert leaks == [], leaks
    # The crash report still says what happened, with the key masked.
    assert "API key ******** rejected" in crashed.body, crashed.body

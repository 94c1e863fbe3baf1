"""The seed walkthrough, end to end over the real Prosody with a real client:
help → new → type → repo → task → answer → permission prompt → yes → file written → status → kill."""

from __future__ import annotations

import json
import re
from pathlib import Path

from agentchat.provisioning.admin_rest import AdminRestProvisioner
from tests.support.service import make_repositories, running_service, service_settings

AGENT_CREATED = re.compile(r"Agent (\S+) created\. Chat at (\S+)")


async def test_walkthrough(prosody, user_client, tmp_path: Path) -> None:
    settings = service_settings(prosody, tmp_path)
    work = make_repositories(settings.work.base_path)
    manager = settings.manager_jid
    async with running_service(settings) as service:
        alice = await user_client("alice")

        await alice.send(manager, "HELP")
        help_text = (await alice.expect("new", from_=manager)).body
        for command in ("new", "list", "status", "kill", "repos", "help"):
            assert command in help_text

        await alice.send(manager, "new")
        assert "Which type?" in (await alice.expect("type", from_=manager)).body
        await alice.send(manager, "1")
        repos = (await alice.expect("repository", from_=manager)).body
        assert "1. api (git)" in repos and "2. web" in repos
        await alice.send(manager, "api")
        await alice.expect("first task", from_=manager)
        target = work / "api" / "notes.txt"
        write = json.dumps({"file_path": str(target), "content": "hello from the agent\n"})
        await alice.send(manager, f"Please write the notes [[tool:Write {write}]]")
        created = AGENT_CREATED.search((await alice.expect("created", from_=manager, timeout=20)).body)
        assert created is not None
        agent_id, agent_jid = created.groups()
        assert agent_jid == f"{agent_id}@{prosody.domain}"

        # The agent's chat: the tool line, then the prompt; nothing written before "yes".
        await alice.expect("📝 Write", from_=agent_jid, timeout=20)
        prompt = (await alice.expect("🔐 Permission #", from_=agent_jid, timeout=20)).body
        assert prompt.splitlines()[0].startswith("🔐 Permission #")
        assert "notes.txt" in prompt and "Reply: yes / no" in prompt
        assert not target.exists()
        await alice.send(agent_jid, "yes")
        await alice.expect("allowed", from_=agent_jid)
        await alice.expect("✅ Done", from_=agent_jid, timeout=20)
        assert target.read_text() == "hello from the agent\n"

        await alice.send(agent_jid, "status")
        status = (await alice.expect("📊", from_=agent_jid)).body
        assert agent_id in status and "api" in status and "Pending prompts: none" in status

        await alice.send(manager, "list")
        assert agent_id in (await alice.expect("Your agents", from_=manager)).body

        await alice.send(manager, f"kill {agent_id}")
        await alice.expect("killed", from_=manager, timeout=20)
        assert service.supervisor is not None and service.supervisor.get(agent_id) is None

    async with AdminRestProvisioner(
        prosody.admin_rest_url, prosody.domain, prosody.admin_jid, prosody.admin_password
    ) as provisioner:
        assert not await provisioner.account_exists(agent_id)

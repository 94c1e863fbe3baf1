"""A second client library (aioxmpp) against the service: STARTTLS with verification, then `help`."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from tests.harness.aioxmpp_client import AioxmppClient
from tests.harness.certs import local_ca
from tests.harness.prosody import ProsodyServer
from tests.support.service import make_repositories, running_service, service_settings


async def test_aioxmpp_logs_in_over_starttls_and_gets_help_from_the_manager(prosody: ProsodyServer, tmp_path: Path) -> None:
    make_repositories(tmp_path / "work")
    username, password = f"carol-{secrets.token_hex(3)}", secrets.token_urlsafe(12)
    await prosody.create_account(username, password)
    async with running_service(service_settings(prosody, tmp_path)):
        carol = AioxmppClient(f"{username}@{prosody.domain}", password, prosody.host, prosody.c2s_port,
                              ca_file=prosody.ca_file)
        await carol.connect()
        try:
            await carol.send(prosody.manager_jid, "help")
            assert "Commands" in await carol.expect("Commands")
        finally:
            await carol.disconnect()


async def test_aioxmpp_refuses_a_certificate_it_cannot_verify(prosody: ProsodyServer, tmp_path: Path) -> None:
    """The check is real: another CA's certificate is refused, and the login does not fall back to plaintext."""
    username, password = f"dave-{secrets.token_hex(3)}", secrets.token_urlsafe(12)
    await prosody.create_account(username, password)
    other_ca = tmp_path / "other-ca.crt"
    other_ca.write_bytes(local_ca().issue("localhost", tmp_path / "other")[0].read_bytes())  # not a CA at all
    dave = AioxmppClient(f"{username}@{prosody.domain}", password, prosody.host, prosody.c2s_port, ca_file=other_ca)
    with pytest.raises(Exception) as refused:
        await dave.connect(timeout=10)
    await dave.disconnect()
    assert not isinstance(refused.value, TimeoutError), "aioxmpp should fail at once, not hang"
    print(f"aioxmpp refused it: {type(refused.value).__name__}: {refused.value}")


async def test_aioxmpp_answers_a_prompt_by_quoting_it(prosody: ProsodyServer, tmp_path: Path) -> None:
    """A quote reply from the second library (as Conversations' "Quote" sends it: "> …" lines, then the
    answer) answers the prompt it quotes."""
    import json
    import re

    work = make_repositories(tmp_path / "work")
    username, password = f"erin-{secrets.token_hex(3)}", secrets.token_urlsafe(12)
    await prosody.create_account(username, password)
    target = work / "api" / "quoted.txt"
    write = json.dumps({"file_path": str(target), "content": "via aioxmpp"})
    async with running_service(service_settings(prosody, tmp_path)):
        erin = AioxmppClient(f"{username}@{prosody.domain}", password, prosody.host, prosody.c2s_port,
                             ca_file=prosody.ca_file)
        await erin.connect()
        try:
            for step, answer in (("new", "Which type?"), ("1", "Which repository?"), ("api", "first task")):
                await erin.send(prosody.manager_jid, step)
                await erin.expect(answer)
            await erin.send(prosody.manager_jid, f"[[tool:Write {write}]]")
            created = re.search(r"Chat at (\S+)", await erin.expect("Chat at", timeout=20))
            assert created is not None
            agent = created.group(1)
            prompt = await erin.expect("🔐 Permission #", timeout=20)
            quoted = "\n".join("> " + line for line in prompt.splitlines())
            await erin.send(agent, f"{quoted}\nyes")
            await erin.expect("allowed", timeout=20)
            await erin.expect("✅ Done", timeout=20)
        finally:
            await erin.disconnect()
    assert target.read_text() == "via aioxmpp"

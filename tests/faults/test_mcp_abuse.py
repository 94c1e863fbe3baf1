"""The permission MCP endpoint of a running service, called by hand as a hostile local process would.

tests/permissions/test_mcp_server.py covers the server alone (no token, wrong token, a session bound to
its token, malformed arguments, 1000 calls); this checks the same promises end to end, with the real
agents' tokens: a prompt reaches the owner of the agent the token belongs to and nobody else, a killed
agent's token is dead, and a storm of bad calls changes nothing for the users.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp

from tests.support.service import create_agent, make_repositories, running_service, service_settings

PROMPT = "🔐 Permission #"
INITIALIZE = {
    "jsonrpc": "2.0", "id": 1, "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "intruder", "version": "1"}},
}


class RawMcp:
    """A classic MCP session over bare HTTP POSTs."""

    def __init__(self, http: aiohttp.ClientSession, url: str, token: str | None) -> None:
        self._http, self._url = http, url
        self.headers = {"Accept": "application/json, text/event-stream"}
        if token is not None:
            self.headers["Authorization"] = f"Bearer {token}"

    async def post(self, body: dict[str, Any]) -> tuple[int, Any]:
        async with self._http.post(self._url, json=body, headers=self.headers) as response:
            text = await response.text()
            if response.headers.get("Content-Type", "").startswith("text/event-stream"):
                text = [line[5:] for line in text.splitlines() if line.startswith("data:")][-1]
            if "mcp-session-id" in response.headers:
                self.headers["Mcp-Session-Id"] = response.headers["mcp-session-id"]
            return response.status, json.loads(text) if text.strip() else None

    async def open(self) -> int:
        status, _ = await self.post(INITIALIZE)
        if status == 200:
            self.headers["MCP-Protocol-Version"] = "2025-11-25"
            await self.post({"jsonrpc": "2.0", "method": "notifications/initialized"})
        return status

    async def ask(self, tool_input: dict[str, Any]) -> dict[str, Any]:
        arguments = {"tool_name": "Write", "input": tool_input, "tool_use_id": "toolu_intruder"}
        status, body = await self.post(
            {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "permission_prompt", "arguments": arguments}}
        )
        assert status == 200, body
        return json.loads(body["result"]["content"][0]["text"])


async def test_tokens_reach_their_own_agent_only_and_die_with_it(prosody, user_client, tmp_path: Path) -> None:
    settings = service_settings(prosody, tmp_path)
    make_repositories(settings.work.base_path)
    manager = settings.manager_jid
    async with running_service(settings) as service, aiohttp.ClientSession() as http:
        alice = await user_client("alice")
        bob = await user_client("bob")
        alices_id, alices_agent = await create_agent(alice, manager)
        bobs_id, bobs_agent = await create_agent(bob, manager, repo="web")
        url = service.mcp.url
        alices_token, bobs_token = service.agent_host.tokens[alices_id], service.agent_host.tokens[bobs_id]

        # No token, a wrong one, a token with a different scheme, a hundred guesses: all 401.
        for token in (None, "wrong", alices_token[:-1], alices_token + "x", *(f"guess-{n}" for n in range(100))):
            assert await RawMcp(http, url, token).open() == 401
        raw = RawMcp(http, url, None)
        raw.headers["Authorization"] = f"Basic {alices_token}"
        assert await raw.open() == 401

        # Bob's agent's token asks: the prompt goes to bob, only to bob; alice's "yes" is chat for her agent.
        intruder = RawMcp(http, url, bobs_token)
        assert await intruder.open() == 200
        asking = asyncio.create_task(intruder.ask({"file_path": "/etc/passwd", "content": "owned"}))
        prompt = await bob.expect(PROMPT, from_=bobs_agent, timeout=20)
        assert "/etc/passwd" in prompt.body
        await alice.send(alices_agent, "yes")
        await alice.expect("MOCK_REPLY: yes", from_=alices_agent, timeout=20)
        assert not asking.done()
        assert not any(PROMPT in m.body for m in alice.messages)
        await bob.send(bobs_agent, "no")
        decision = await asyncio.wait_for(asking, 10)
        assert decision["behavior"] == "deny"

        # A killed agent's token opens nothing any more.
        await alice.send(manager, f"kill {alices_id}")
        await alice.expect("killed", from_=manager, timeout=20)
        assert await RawMcp(http, url, alices_token).open() == 401
        assert await RawMcp(http, url, bobs_token).open() == 200
        # The users noticed nothing of all that.
        await bob.send(bobs_agent, "still fine?")
        await bob.expect("MOCK_REPLY: still fine?", from_=bobs_agent, timeout=20)

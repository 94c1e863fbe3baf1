"""An "always" answer says so in its Decision: engines with session-wide approvals (Codex's
acceptForSession, ACP's allow_always) need to know; a plain "yes" and a rule's allow do not say it."""

from __future__ import annotations

import asyncio

from agentchat.permissions.registry import PermissionRegistry
from agentchat.permissions.requests import DecidedBy, Decision, PermissionRequest

OWNER = "owner@example.org"


class Listener:
    def __init__(self) -> None:
        self.opened: asyncio.Queue[PermissionRequest] = asyncio.Queue()

    async def prompt_opened(self, request: PermissionRequest) -> None:
        self.opened.put_nowait(request)

    async def prompt_resolved(self, request: PermissionRequest, decision: Decision) -> None: ...

    async def prompt_timed_out(self, request: PermissionRequest) -> None: ...

    async def prompt_cancelled(self, request: PermissionRequest) -> None: ...


async def answered(registry: PermissionRegistry, listener: Listener, reply: str, command: str) -> Decision:
    task = asyncio.create_task(registry.ask("agent-1", "Bash", {"command": command}, "t"))
    await asyncio.wait_for(listener.opened.get(), 5)
    registry.answer("agent-1", reply, OWNER)
    return await asyncio.wait_for(task, 5)


async def test_always_is_marked_in_the_decision() -> None:
    registry = PermissionRegistry(60, None)
    listener = Listener()
    registry.register_agent("agent-1", OWNER, listener)
    yes = await answered(registry, listener, "yes", "ls")
    always = await answered(registry, listener, "always", "npm test")
    rule = await asyncio.wait_for(registry.ask("agent-1", "Bash", {"command": "npm test"}, "t"), 5)
    assert (yes.allowed, yes.always) == (True, False)
    assert (always.allowed, always.always) == (True, True)
    assert rule.decided_by == DecidedBy.ALWAYS_RULE and not rule.always

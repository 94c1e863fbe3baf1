"""Creating an agent the way a person does: the manager bot's `new` dialogue, timed."""

from __future__ import annotations

import asyncio
from typing import Any

from bench.client import BenchClient


async def _step(client: BenchClient, manager: str, text: str, reply_contains: str, timeout: float) -> tuple[str, int, int]:
    reply = client.expect(lambda b, s: s == manager and reply_contains in b)
    sent = client.send(manager, text)
    body, arrived = await asyncio.wait_for(reply, timeout)
    return body, sent, arrived


async def create_through_dialogue(
    client: BenchClient, manager: str, repo: str = "api", task: str = "hi", timeout: float = 60
) -> dict[str, Any]:
    """new → type 1 → repository → first task; ms from the task's message to "created" and to the
    first answer (provision + login + spawn + one echo turn), and for the whole dialogue."""
    _, began, _ = await _step(client, manager, "new", "Which type?", timeout)
    await _step(client, manager, "1", "Which repository?", timeout)
    await _step(client, manager, repo, "first task", timeout)
    first_answer = client.expect(lambda b, s: b.startswith(f"ECHO: {task} @"))
    body, task_sent, created = await _step(client, manager, task, "created. Chat at", timeout)
    words = body.split()
    agent_id, jid = words[1], words[-1]
    _, answered = await asyncio.wait_for(first_answer, timeout)
    return {
        "id": agent_id,
        "jid": jid,
        "created_ms": (created - task_sent) / 1e6,
        "first_answer_ms": (answered - task_sent) / 1e6,
        "dialogue_ms": (created - began) / 1e6,
    }

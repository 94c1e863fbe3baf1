"""A flood: 500 chat messages to one agent from a human account, paced over 10 s and all at once (then
only Prosody's c2s rate limit for people, prosody.humanRate, spreads them out). Every one is stored, queued and
answered, in order; the owner is told they wait; another user's manager commands and agent turns are
answered promptly meanwhile."""

from __future__ import annotations

import asyncio
import statistics
import time
from pathlib import Path

import pytest

from tests.faults.support import record_figures, wait_until
from tests.support.service import create_agent, make_repositories, running_service, service_settings

pytestmark = pytest.mark.slow

FLOOD = 500
# What "responsive" means for the other user, per round trip (a manager command and an agent turn),
# while the flood runs; measured up to about 1 s on a busy 2-core VM.
OTHER_USER_LIMIT = 3.0


@pytest.mark.parametrize("flood_seconds", [10.0, 0.0], ids=["paced-10s", "burst"])
async def test_flood_of_500_messages_is_queued_answered_and_others_are_served(
    prosody, user_client, tmp_path: Path, flood_seconds: float
) -> None:
    settings = service_settings(prosody, tmp_path)
    make_repositories(settings.work.base_path)
    manager = settings.manager_jid
    async with running_service(settings) as service:
        alice = await user_client("alice")
        bob = await user_client("bob")
        agent_id, agent = await create_agent(alice, manager)
        _, bobs_agent = await create_agent(bob, manager, repo="web")

        texts = [f"flood {n:03d}" for n in range(FLOOD)]

        async def flood() -> float:
            started = time.monotonic()
            for n, text in enumerate(texts):
                await alice.send(agent, text)
                if flood_seconds:
                    await asyncio.sleep(max(0.0, started + (n + 1) * flood_seconds / FLOOD - time.monotonic()))
            return time.monotonic() - started

        async def bob_meanwhile(stop: asyncio.Event) -> list[float]:
            rounds: list[float] = []
            n = 0
            while not stop.is_set():
                started = time.monotonic()
                await bob.send(manager, "list")
                await bob.expect("Your agents", from_=manager, timeout=10)
                await bob.send(bobs_agent, f"bob {n}")
                await bob.expect(f"MOCK_REPLY: bob {n}", from_=bobs_agent, timeout=10)
                rounds.append(time.monotonic() - started)
                n += 1
                await asyncio.sleep(0.2)
            return rounds

        stop = asyncio.Event()
        started = time.monotonic()
        bob_task = asyncio.create_task(bob_meanwhile(stop))
        sent_in = await flood()

        replies = lambda: [m.body for m in alice.messages if m.from_bare == agent and m.body.startswith("MOCK_REPLY: flood")]  # noqa: E731
        try:
            await wait_until(lambda: len(replies()) >= FLOOD, 90, "every flood message answered")
        finally:
            stop.set()
            rounds = await bob_task
        answered_in = time.monotonic() - started

        assert replies() == [f"MOCK_REPLY: {text}" for text in texts], "lost, duplicated or reordered answers"
        queued_notes = [m.body for m in alice.messages if m.from_bare == agent and m.body.startswith("⏳ Queued")]
        assert queued_notes, "the owner was never told that messages wait"
        assert rounds and max(rounds) < OTHER_USER_LIMIT, rounds
        [(stored,)] = await service.store.query(
            "SELECT COUNT(*) FROM inbound WHERE bot = ? AND body LIKE 'flood %'", (agent_id,)
        )
        assert stored == FLOOD

    record_figures(
        f"flood_{'paced' if flood_seconds else 'burst'}",
        messages_sent=FLOOD,
        sent_in_s=round(sent_in, 1),
        messages_answered=len(replies()),
        all_answered_after_s=round(answered_in, 1),
        queued_notices=len(queued_notes),
        other_user_round_trips=len(rounds),
        other_user_round_trip_median_s=round(statistics.median(rounds), 3),
        other_user_round_trip_max_s=round(max(rounds), 3),
    )

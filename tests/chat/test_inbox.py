"""One ordered inbox per conversation: released only once recorded, handled once, in order."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from agentchat.chat.inbox import Conversations, Received
from agentchat.chat.port import Inbound, Reaction
from agentchat.errors import StateError
from agentchat.store.database import StateStore
from agentchat.store.records import Arrival, MessageState

TIMEOUT = 5.0


class Handled:
    def __init__(self, slow_first: float = 0.0) -> None:
        self.received: list[Received] = []
        self.done = asyncio.Event()
        self.expected = 0
        self._slow_first = slow_first

    async def __call__(self, received: Received) -> None:
        if not self.received and self._slow_first:
            # A handler that awaits (as every real one does): what comes next must still wait its turn.
            await asyncio.sleep(self._slow_first)
        self.received.append(received)
        if len(self.received) >= self.expected:
            self.done.set()

    async def wait(self, count: int) -> list[str]:
        self.expected = count
        if len(self.received) < count:
            self.done.clear()
            await asyncio.wait_for(self.done.wait(), TIMEOUT)
        return [r.inbound.text for r in self.received]


def message(text: str, sender: str = "alice@x", **fields: object) -> Inbound:
    return Inbound(sender=sender, text=text, raw_body=text, **fields)  # type: ignore[arg-type]


async def test_a_burst_is_handled_in_arrival_order_per_person(store: StateStore) -> None:
    handled = Handled(slow_first=0.05)
    conversations = Conversations("manager", store, handled)
    texts = [f"step {n}" for n in range(50)]
    for text in texts:
        conversations.deliver(message(text), lambda: None)
    conversations.deliver(message("from bob", sender="bob@x"), lambda: None)
    try:
        done = await handled.wait(51)
    finally:
        await conversations.close()
    assert [t for t in done if t.startswith("step")] == texts
    assert all(r.record_id is not None for r in handled.received)


async def test_a_message_is_released_only_once_recorded_and_a_duplicate_is_not_handled(store: StateStore) -> None:
    released: list[str] = []
    seen_at_release: list[int] = []

    async def rows() -> int:
        [(count,)] = await store.query("SELECT COUNT(*) FROM inbound")
        return int(count)

    handled = Handled()
    conversations = Conversations("swift-fox", store, handled)
    loop = asyncio.get_running_loop()

    def release(name: str) -> None:
        released.append(name)
        # The row must be committed when the stanza is released (checked from another task).
        loop.create_task(rows()).add_done_callback(lambda t: seen_at_release.append(t.result()))

    conversations.deliver(message("hello", message_id="m1"), lambda: release("first"))
    conversations.deliver(message("hello", message_id="m1"), lambda: release("again"))
    conversations.deliver(message("👍", reaction=Reaction("p1", frozenset({"👍"}))), lambda: release("reaction"))
    try:
        await handled.wait(2)
        await asyncio.sleep(0.05)  # give the (non-)handling of the duplicate its chance to show
    finally:
        await conversations.close()
    assert released == ["first", "again", "reaction"]  # every stanza is acknowledged, duplicates too
    assert min(seen_at_release) >= 1
    assert [r.inbound.text for r in handled.received] == ["hello", "👍"]
    assert handled.received[1].record_id is None  # a reaction is not kept


class BrokenStore:
    """A store whose disk is full."""

    async def record_arrivals(self, bot: str, arrivals: Sequence[Arrival]) -> list[int | None]:
        raise StateError("database or disk is full")

    async def finish_inbound(self, record_id: int) -> None:
        raise StateError("database or disk is full")


async def test_a_message_the_store_refuses_is_handled_from_memory_and_the_handler_told() -> None:
    handled = Handled()
    released = asyncio.Event()
    conversations = Conversations("swift-fox", BrokenStore(), handled)
    conversations.deliver(message("kept in memory"), released.set)
    try:
        await handled.wait(1)
    finally:
        await conversations.close()
    assert released.is_set()
    [received] = handled.received
    assert received.record_id is None and received.save_error == "database or disk is full"


async def test_what_a_previous_run_left_unhandled_comes_first(store: StateStore) -> None:
    [left] = await store.record_arrivals("manager", [Arrival("alice@x", None, "list", (), "k", None, 1.0)])
    handled = Handled()
    conversations = Conversations("manager", store, handled)
    conversations.recover(await store.pending_inbound("manager"))
    conversations.deliver(message("help"), lambda: None)
    try:
        assert await handled.wait(2) == ["list", "help"]
    finally:
        await conversations.close()
    assert handled.received[0].recovered and handled.received[0].record_id == left
    # Done is for the handler to say (this one never does): both wait for the next run.
    assert [(m.body, m.state) for m in await store.pending_inbound("manager")] == [
        ("list", MessageState.RECEIVED), ("help", MessageState.RECEIVED)
    ]

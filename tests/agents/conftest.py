"""Fixtures shared by the agents' tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agentchat.store.database import StateStore


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[StateStore]:
    """A real state database in the test's temporary directory, open for the test."""
    store = StateStore(tmp_path / "state.db")
    await store.open()
    yield store
    await store.close()

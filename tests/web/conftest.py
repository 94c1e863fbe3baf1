"""The browser tests' fixtures: a Prosody of the test's own serving the web client, and Chromium."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from agentchat.server.web_client import write_web_root
from tests.harness.prosody import ProsodyServer
from tests.web.converse import CHROMIUM, CHROMIUM_ARGS


@pytest.fixture
def web_prosody(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProsodyServer]:
    run_dir = tmp_path_factory.mktemp("web-prosody")
    web_root = write_web_root(run_dir / "www", "localhost", "manager@localhost")
    with ProsodyServer.started(run_dir, web_root=web_root) as server:
        yield server


@pytest.fixture
async def browser() -> AsyncIterator[object]:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        # As root Chromium needs --no-sandbox, which Playwright adds by itself; never `playwright install`.
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()

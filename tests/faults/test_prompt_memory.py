"""Big permission prompts do not pile up in memory: 20 Write prompts of 24 MiB each, answered, leave
the service's resident memory where it was (within 10 %).

The service runs as a real process (``python -m agentchat start``), so its RSS is its own; the fake
CLI sends each Write through the permission tool with the whole file as input, as Claude Code does.
An ended prompt keeps its id and a short summary (to answer a late reply), never the input.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.faults.service_process import ServiceProcess, service_config
from tests.faults.support import record_figures
from tests.support.service import create_agent, make_repositories

pytestmark = pytest.mark.slow

PROMPTS = 20
CONTENT_BYTES = 24 * 1024 * 1024
WARM_UP = 2


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


async def test_twenty_prompts_of_24_mib_leave_memory_flat(prosody, user_client, tmp_path: Path) -> None:
    home = tmp_path / "home"
    work = make_repositories(home / "work")
    service = ServiceProcess(home, service_config(prosody, home))
    write = json.dumps({"file_path": "big.txt", "content": {"__repeat__": "0123456789abcde\n", "times": CONTENT_BYTES // 16}})
    try:
        await service.start()
        assert service.pid is not None
        alice = await user_client("alice", service=True)
        _, agent = await create_agent(alice, prosody.manager_jid)

        async def one_prompt() -> None:
            await alice.send(agent, f"[[tool:Write {write}]]")
            prompt = await alice.expect("🔐 Permission #", from_=agent, timeout=60)
            assert "25,165,824 bytes" in prompt.body, prompt.body
            await alice.send(agent, "yes")
            await alice.expect("MOCK_TOOL_RESULT: File", from_=agent, timeout=60)
            await alice.expect("✅ Done", from_=agent, timeout=60)

        fresh = rss_bytes(service.pid)
        # The first prompts grow the heap to what one such prompt needs; from then on it must stay.
        for _ in range(WARM_UP):
            await one_prompt()
        before = rss_bytes(service.pid)
        samples = []
        for _ in range(PROMPTS):
            await one_prompt()
            samples.append(rss_bytes(service.pid))
        after = samples[-1]
        assert (work / "api" / "big.txt").stat().st_size == CONTENT_BYTES
        record_figures(
            "prompt_memory",
            fresh_mb=round(fresh / 2**20, 1),
            before_mb=round(before / 2**20, 1),
            after_mb=round(after / 2**20, 1),
            peak_mb=round(max(samples) / 2**20, 1),
            samples_mb=[round(sample / 2**20) for sample in samples],
        )
        assert after <= before * 1.10, f"RSS grew from {before / 2**20:.0f} to {after / 2**20:.0f} MB over {PROMPTS} prompts"
    finally:
        await service.stop()

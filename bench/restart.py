"""A restart with many agents on one machine (``--restart N``; 1000 by default): how long the service takes to
bring them all back online.

N agents are created on one service (AgentSupervisor.create(), 16 at a time, no first task: no backend
starts), the service stops, and a new service process restores them: ``Service.start()`` timed from inside
(every agent's bot logged in again), its CPU and Prosody's over the start, twice (the first start after the
creations, then one more). Before this change it took 46–64 s for 1000 (docs/performance.md).
"""

from __future__ import annotations

import time
from typing import Any

from bench.environment import BenchEnv, ServiceProcess


async def run_restart(env: BenchEnv, count: int, *, starts: int = 2, timeout: float = 900, log: Any = print) -> dict[str, Any]:
    from bench.run import cpu_seconds  # here: bench.run imports this module

    settings = env.settings_data(env.root / "restart-home", max_concurrent=50)
    owner = await env.client("restart-owner")
    service = await ServiceProcess.start(env, settings, timeout=timeout)
    began = time.monotonic()
    try:
        await service.call("create", timeout=timeout, count=count, concurrency=16, owner=owner.bare_jid,
                           repo=str(env.repo), task=None)  # fmt: skip
        created_s = time.monotonic() - began
        log(f"  restart: {count} agents created in {created_s:.1f} s")
        result: dict[str, Any] = {"agents": count, "created_s": created_s, "starts": []}
        assert env.prosody.pid is not None
        for _ in range(starts):
            stop_ms = await service.stop(timeout=timeout)
            prosody_before = cpu_seconds(env.prosody.pid)
            service = await ServiceProcess.start(env, settings, timeout=timeout)
            started = service.started
            result["starts"].append({
                "stop_ms": stop_ms, "start_ms": started["start_ms"], "process_start_ms": service.wall_start_ms,
                "restored": started["restored"], "online": started["online"], "rss_kb": started["rss_kb"],
                "service_cpu_s": cpu_seconds(service.pid), "prosody_cpu_s": cpu_seconds(env.prosody.pid) - prosody_before,
            })  # fmt: skip
            log(f"  restart: {started['restored']} restored, {started['online']} online in {started['start_ms']:.0f} ms")
    finally:
        await service.stop(timeout=timeout)
        await owner.disconnect()
    return result

"""A runner (agentchat.runners.runner.RunnerService) in a process of its own, driven like bench/service_host.py.

``python -m bench.runner_host SETTINGS.json`` starts it (timing ``RunnerService.start()``, which restores every
agent of its state database) and prints ``{"event": "started", ...}``, then answers one JSON command per line
read from stdin: ``{"cmd": "stats"}`` (agents, bots online, backends running, RSS after gc.collect()) and
``{"cmd": "stop"}`` (stop, timed; then the process exits). Its RSS is the runner's alone, as on its own machine.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from agentchat.config import Settings
from agentchat.logs import setup_logging
from agentchat.runners.runner import RunnerService
from bench.service_host import rss_kb


class RunnerHost:
    def __init__(self, runner: RunnerService) -> None:
        self.runner = runner

    def say(self, answer: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()

    def stats(self) -> dict[str, Any]:
        agents = self.runner.agents.all()
        online = sum(1 for a in agents if a.chat is not None and a.chat.transport.online)  # type: ignore[attr-defined]
        gc.collect()
        return {"agents": len(agents), "online": online, "running": sum(1 for a in agents if a.process_running),
                "rss_kb": rss_kb(), "pid": os.getpid()}  # fmt: skip

    async def run(self) -> None:
        started = time.perf_counter()
        await self.runner.start()
        self.say({"event": "started", "start_ms": (time.perf_counter() - started) * 1000, **self.stats()})
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        try:
            while line := await reader.readline():
                command = json.loads(line)
                if command["cmd"] == "stop":
                    return
                self.say(self.stats())
        finally:
            stopping = time.perf_counter()
            await self.runner.stop()
            self.say({"event": "stopped", "stop_ms": (time.perf_counter() - stopping) * 1000})


def main() -> None:
    data = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
    home = Path(data.pop("home"))
    settings = Settings.model_validate(data)
    settings.home = home
    setup_logging(settings.logging.level, home / "agentchat.log")
    async def serve() -> None:  # built in the loop it runs in (slixmpp binds a client to the running loop)
        await RunnerHost(RunnerService(settings)).run()

    asyncio.run(serve())


if __name__ == "__main__":
    main()

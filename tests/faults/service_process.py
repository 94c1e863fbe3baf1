"""The agentchat service as a real separate process (``python -m agentchat start``), to kill it for real.

The config file points at the harness's Prosody, the fake CLI and a free MCP port; the state lives
in ``home`` (AGENTCHAT_HOME), so a second start finds what the first one left.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

from agentchat.server.embedded import die_with_parent_preexec
from tests.harness.prosody import ProsodyServer, free_ports
from tests.support.service import service_config as support_service_config

READY_LINE = "Agent Chat Service started successfully"


def service_config(prosody: ProsodyServer, home: Path, **sections: dict[str, Any]) -> dict[str, Any]:
    """The config file's content: the in-process one, with a fixed free MCP port and INFO logs."""
    (mcp_port,) = free_ports(1)
    data = support_service_config(prosody, home, logging={"level": "INFO"}, **sections)
    data["mcp"]["port"] = mcp_port
    return data


class ServiceProcess:
    """One run of ``python -m agentchat start``; start() again after a kill for the next run."""

    def __init__(self, home: Path, config: dict[str, Any]) -> None:
        self.home = home
        self.config_path = home / "config.json"
        self.config_path.parent.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(json.dumps(config, indent=2), encoding="utf-8")
        self.output_path = home / "service.out"
        self.process: asyncio.subprocess.Process | None = None
        self.runs = 0

    @property
    def log_path(self) -> Path:
        return self.home / "agentchat.log"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    async def start(self, timeout: float = 20.0) -> None:
        """Start and wait until the service says it serves (its manager bot is logged in by then)."""
        self.runs += 1
        env = {**os.environ, "AGENTCHAT_HOME": str(self.home)}
        env.pop("AGENTCHAT_LOG_LEVEL", None)
        with self.output_path.open("ab") as output:
            # Its own session (a kill hits it alone, as a crash would), and never outliving the tests.
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "agentchat", "--config", str(self.config_path), "start",
                stdin=asyncio.subprocess.DEVNULL, stdout=output, stderr=output,
                cwd=str(self.home), env=env, start_new_session=True, preexec_fn=die_with_parent_preexec(),
            )
        await self._wait_ready(timeout)

    async def _wait_ready(self, timeout: float) -> None:
        assert self.process is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._ready_lines() < self.runs:
            if self.process.returncode is not None:
                raise RuntimeError(f"the service exited with {self.process.returncode}:\n{self.output()[-3000:]}")
            if loop.time() > deadline:
                raise TimeoutError(f"the service did not start within {timeout:g} s:\n{self.output()[-3000:]}")
            # Another process's log file: no event to wait on.
            await asyncio.sleep(0.05)

    def _ready_lines(self) -> int:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace").count(READY_LINE)
        except FileNotFoundError:
            return 0

    def output(self) -> str:
        try:
            return self.output_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    async def kill(self, sig: int = signal.SIGKILL) -> int:
        """Signal the service process alone (not its children: a crash leaves them behind) and reap it."""
        assert self.process is not None
        if self.process.returncode is None:
            self.process.send_signal(sig)
        return await asyncio.wait_for(self.process.wait(), 15)

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            await self.kill(signal.SIGTERM)

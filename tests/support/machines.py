"""Separate machines for tests: network namespaces on one bridge (recipes §3), with unique names per run.

Nothing is attached to the host's own namespace, so no packet leaves these machines and none of this
machine's ports is used. ``link_down``/``link_up`` pull a machine's cable (its veth). Processes started with
``spawn`` run inside a machine, in their own process group; ``close`` ends them and deletes the namespaces,
also after a failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

SUBNET = "10.200.0"

NEEDS = "network namespaces need root and iproute2 (`ip`)"


def available() -> bool:
    return os.geteuid() == 0 and shutil.which("ip") is not None


def ip(*args: str) -> None:
    result = subprocess.run(["ip", *args], capture_output=True, timeout=10)
    if result.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {result.stderr.decode(errors='replace').strip()}")


@dataclass
class Machines:
    names: dict[str, str] = field(default_factory=dict)  # machine -> namespace
    addresses: dict[str, str] = field(default_factory=dict)
    processes: list[asyncio.subprocess.Process] = field(default_factory=list)
    suffix: str = field(default_factory=lambda: secrets.token_hex(3))
    _created: list[str] = field(default_factory=list)

    @property
    def lan(self) -> str:
        return f"aclan{self.suffix}"

    def create(self, *machines: str) -> None:
        ip("netns", "add", self.lan)
        self._created.append(self.lan)
        ip("-n", self.lan, "link", "set", "lo", "up")
        ip("-n", self.lan, "link", "add", "br0", "type", "bridge")
        ip("-n", self.lan, "link", "set", "br0", "up")
        for number, machine in enumerate(machines, start=1):
            namespace = f"ac{machine[:6]}{self.suffix}"
            ip("netns", "add", namespace)
            self._created.append(namespace)
            self.names[machine] = namespace
            address = f"{SUBNET}.{number}"
            self.addresses[machine] = address
            peer = f"v{number}{self.suffix}"
            ip("-n", namespace, "link", "set", "lo", "up")
            ip("-n", namespace, "link", "add", "eth0", "type", "veth", "peer", "name", peer)
            ip("-n", namespace, "link", "set", peer, "netns", self.lan)
            ip("-n", self.lan, "link", "set", peer, "master", "br0", "up")
            ip("-n", namespace, "addr", "add", f"{address}/24", "dev", "eth0")
            ip("-n", namespace, "link", "set", "eth0", "up")

    def link_down(self, machine: str) -> None:
        ip("-n", self.names[machine], "link", "set", "eth0", "down")

    def link_up(self, machine: str) -> None:
        ip("-n", self.names[machine], "link", "set", "eth0", "up")
        # The address's route comes back with the link; nothing else to restore.

    async def spawn(self, machine: str, argv: list[str], env: dict[str, str], cwd: Path,
                    stdin: bool = False) -> asyncio.subprocess.Process:
        process = await asyncio.create_subprocess_exec(
            "ip", "netns", "exec", self.names[machine], *argv, env=env, cwd=cwd,
            stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, start_new_session=True,
            limit=1 << 22,
        )
        self.processes.append(process)
        return process

    async def close(self) -> None:
        for process in self.processes:
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(process.wait(), 10)
        for namespace in reversed(self._created):
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True, timeout=10)


def python(*args: str) -> list[str]:
    return [sys.executable, *args]

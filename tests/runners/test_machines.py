"""Several machines for real: network namespaces on one bridge (recipes §3), one per machine.

* hub: `agentchat start --embedded-prosody --public` (Prosody and the service, TLS required);
* laptop, devbox: `agentchat runner start` with the line `agentchat runner add` printed on the hub;
* phone: the user's client (tests/support/netns_chat.py), STARTTLS verified against the hub's certificate.

Traffic only between these namespaces. The phases, in order: agents created on both runners from the
manager and answering; the laptop's cable pulled while a message is in flight (the user is told, what was
sent is answered once the cable is back, once); the hub restarted while both runners work; the devbox runner
restarted (its agent resumes its session); a valid account that was never registered refused as a runner;
a runner commanding another runner refused.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import signal
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from agentchat.config import ENV_VARS
from tests.support.machines import NEEDS, Machines, available, python
from tests.support.service import FAKE_CLAUDE, make_repositories

REPO = Path(__file__).resolve().parents[2]
DOMAIN = "chat.test"
MANAGER = f"manager@{DOMAIN}"
NAMESPACE = "urn:agentchat:runner:0"

pytestmark = pytest.mark.skipif(not available(), reason=NEEDS)

LOGIN = re.compile(r"as (\S+)\n\s+password: (\S+)")


@dataclass
class Running:
    """A process on one of the machines, its output read as it comes."""

    name: str
    process: asyncio.subprocess.Process
    lines: list[str] = field(default_factory=list)
    _reader: asyncio.Task[None] | None = None
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self._reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        assert self.process.stdout is not None
        while line := await self.process.stdout.readline():
            self.lines.append(line.decode(errors="replace"))
            self._changed.set()
        self._changed.set()

    @property
    def text(self) -> str:
        return "".join(self.lines)

    async def wait_for(self, text: str, timeout: float = 30) -> None:
        try:
            async with asyncio.timeout(timeout):
                while text not in self.text:
                    if self.process.returncode is not None and self._reader is not None and self._reader.done():
                        raise AssertionError(f"{self.name} exited ({self.process.returncode}) before {text!r}:\n"
                                             f"{self.text[-4000:]}")
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            raise AssertionError(f"{self.name}: no {text!r} within {timeout:g} s:\n{self.text[-4000:]}") from None

    async def stop(self, timeout: float = 30) -> int:
        if self.process.returncode is None:
            os.killpg(self.process.pid, signal.SIGTERM)
        code = await asyncio.wait_for(self.process.wait(), timeout)
        if self._reader is not None:
            await asyncio.wait_for(self._reader, 5)
        return code


class Phone:
    """The user's client on the phone machine (tests/support/netns_chat.py), one command at a time."""

    def __init__(self, running: Running) -> None:
        self.running = running
        self._answers = 0

    async def call(self, **command: Any) -> dict[str, Any]:
        process = self.running.process
        assert process.stdin is not None
        process.stdin.write((json.dumps(command) + "\n").encode())
        await process.stdin.drain()
        async with asyncio.timeout(float(command.get("timeout", 20)) + 15):
            while True:
                answers = [line for line in self.running.lines if line.startswith("{")]
                if len(answers) > self._answers:
                    self._answers += 1
                    return json.loads(answers[self._answers - 1])  # type: ignore[no-any-return]
                self.running._changed.clear()
                await self.running._changed.wait()

    async def send(self, to: str, body: str) -> None:
        assert (await self.call(op="send", to=to, body=body))["ok"]

    async def expect(self, contains: str, from_: str, timeout: float = 20) -> str:
        answer = await self.call(op="expect", contains=contains, timeout=timeout, **{"from": from_})
        assert answer["ok"], f"{contains!r} from {from_}: {answer['error']}"
        return str(answer["body"])

    async def count(self, contains: str, from_: str) -> int:
        return int((await self.call(op="count", contains=contains, **{"from": from_}))["count"])


def environment(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ENV_VARS}
    env.update(AGENTCHAT_HOME=str(home), XMPP_HOST="127.0.0.1", PYTHONUNBUFFERED="1")
    return env


def write_config(home: Path, **sections: Any) -> None:
    home.mkdir(parents=True, exist_ok=True)
    config = {"agents": {"claude": {"path": str(FAKE_CLAUDE), "env": {"HOME": str(home / "claude-home")}}},
              "xmpp": {"reconnectInterval": 0.3}, **sections}
    (home / "config.json").write_text(json.dumps(config), encoding="utf-8")


@pytest.fixture
async def machines() -> AsyncIterator[Machines]:
    world = Machines()
    try:
        world.create("hub", "laptop", "devbox", "phone")
        yield world
    finally:
        await world.close()


async def start_hub(world: Machines, home: Path) -> Running:
    process = await world.spawn("hub", python("-m", "agentchat", "start", "--embedded-prosody", "--public",
                                              "--domain", DOMAIN, "--user", "alice", "--work-base-path",
                                              str(home / "work")), environment(home), REPO)  # fmt: skip
    hub = Running("hub", process)
    await hub.wait_for("Listening for messages...", 60)
    return hub


async def run_once(world: Machines, machine: str, home: Path, *args: str, timeout: float = 60,
                   env: dict[str, str] | None = None) -> tuple[int, str]:
    process = await world.spawn(machine, python("-m", "agentchat", *args), {**environment(home), **(env or {})}, REPO)
    out, _ = await asyncio.wait_for(process.communicate(), timeout)
    return process.returncode or 0, out.decode(errors="replace")


async def add_runner(world: Machines, hub_home: Path, name: str) -> tuple[list[str], dict[str, str]]:
    """The printed line: the command's arguments (without "agentchat"), and its environment (the password)."""
    code, out = await run_once(world, "hub", hub_home, "runner", "add", name, "--server", world.addresses["hub"])
    assert code == 0, out
    line = next(line.strip() for line in out.splitlines() if "agentchat runner start" in line)
    words = shlex.split(line)
    assigned, command = words[0], words[1:]
    assert assigned.startswith("AGENTCHAT_RUNNER_PASSWORD=") and command[:3] == ["agentchat", "runner", "start"], line
    variable, password = assigned.split("=", 1)
    assert password not in command  # on no command line: `ps` would show it
    return command[1:], {variable: password}


async def start_runner(world: Machines, machine: str, home: Path, args: list[str],
                       env: dict[str, str] | None = None) -> Running:
    process = await world.spawn(machine, python("-m", "agentchat", *args, "--work-base-path", str(home / "work")),
                                {**environment(home), **(env or {})}, REPO)  # fmt: skip
    runner = Running(machine, process)
    await runner.wait_for(f"Runner {machine} started", 60)
    await runner.wait_for("the hub manager@chat.test knows it", 30)
    return runner


async def create_agent(phone: Phone, machine: str, repo: str) -> str:
    await phone.send(MANAGER, "new")
    await phone.expect("Which machine?", MANAGER)
    await phone.send(MANAGER, machine)
    await phone.expect("Which type?", MANAGER)
    await phone.send(MANAGER, "1")
    await phone.expect("Which repository?", MANAGER)
    await phone.send(MANAGER, repo)
    await phone.expect("first task", MANAGER)
    await phone.send(MANAGER, "skip")
    created = await phone.expect(f"(on {machine}) created. Chat at", MANAGER, timeout=40)
    return created.split()[-1]


def flag(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


@pytest.mark.timeout(600)
async def test_agents_on_two_runners_through_one_hub(machines: Machines, tmp_path: Path) -> None:
    world = machines
    began = time.monotonic()

    def phase(text: str) -> None:
        print(f"[{time.monotonic() - began:6.1f} s] {text}", flush=True)

    hub_home, laptop_home, devbox_home = tmp_path / "hub", tmp_path / "laptop", tmp_path / "devbox"
    # Quick liveness checks, so that a pulled cable shows within seconds.
    write_config(hub_home, runners={"pingInterval": 1, "pingTimeout": 2})
    make_repositories(hub_home / "work", ("hubrepo",))
    write_config(laptop_home)
    make_repositories(laptop_home / "work", ("api",))
    write_config(devbox_home)
    make_repositories(devbox_home / "work", ("web",))
    hub = await start_hub(world, hub_home)
    runners: list[Running] = []
    try:
        jid, password = LOGIN.search(hub.text).groups()  # type: ignore[union-attr]
        assert jid == f"alice@{DOMAIN}"
        (laptop_args, laptop_env), (devbox_args, devbox_env) = (await add_runner(world, hub_home, "laptop"),
                                                                await add_runner(world, hub_home, "devbox"))
        assert flag(laptop_args, "--jid") == f"runner-laptop@{DOMAIN}" and flag(laptop_args, "--fingerprint").startswith("SHA256:")
        laptop = await start_runner(world, "laptop", laptop_home, laptop_args, laptop_env)
        devbox = await start_runner(world, "devbox", devbox_home, devbox_args, devbox_env)
        runners += [laptop, devbox]
        phase("hub and two runners up")

        phone_process = await world.spawn("phone", python("-m", "tests.support.netns_chat", world.addresses["hub"], "5222",
                                                          jid, password, str(hub_home / "tls" / f"{DOMAIN}.crt")),
                                          environment(tmp_path / "phone"), REPO, stdin=True)  # fmt: skip
        phone = Phone(Running("phone", phone_process))
        await phone.running.wait_for('{"ready": true}', 30)
        phone._answers = 1

        # 1. The manager sees both runners; an agent on each answers.
        await phone.send(MANAGER, "runners")
        machines_text = await phone.expect("Machines (3)", MANAGER)
        assert "laptop — online" in machines_text and "devbox — online" in machines_text, machines_text
        laptop_agent = await create_agent(phone, "laptop", "api")
        devbox_agent = await create_agent(phone, "devbox", "web")
        for agent, text in ((laptop_agent, "hello laptop"), (devbox_agent, "hello devbox")):
            await phone.send(agent, text)
            await phone.expect(f"MOCK_REPLY: {text}", agent, timeout=30)
        await phone.send(MANAGER, "list")
        listed = await phone.expect("Your agents (2)", MANAGER)
        assert f"{laptop_agent.split('@')[0]} — " in listed and "on laptop" in listed and "on devbox" in listed, listed
        phase("agents on both runners answered")

        # 2. The laptop's cable is pulled while a message is in flight.
        await phone.send(laptop_agent, "[[sleep:2]] in flight")
        world.link_down("laptop")
        pulled = time.monotonic()
        told = await phone.expect("Runner laptop is offline", MANAGER, timeout=30)
        assert laptop_agent.split("@")[0] in told
        phase(f"the user was told {time.monotonic() - pulled:.1f} s after the cable was pulled")
        seen = await phone.call(op="presence", timeout=20, unavailable=True, status="runner laptop offline",
                                **{"from": laptop_agent})  # fmt: skip
        assert seen["ok"], seen
        await phone.send(laptop_agent, "sent while away")
        await phone.send(devbox_agent, "devbox meanwhile")
        await phone.expect("MOCK_REPLY: devbox meanwhile", devbox_agent, timeout=30)
        await phone.send(MANAGER, "list")
        assert "runner laptop offline" in await phone.expect("Your agents", MANAGER)
        world.link_up("laptop")
        back = time.monotonic()
        await phone.expect("in flight", laptop_agent, timeout=60)
        await phone.expect("MOCK_REPLY: sent while away", laptop_agent, timeout=60)
        phase(f"both answered {time.monotonic() - back:.1f} s after the cable was back")
        await phone.expect("Runner laptop is back", MANAGER, timeout=60)
        assert await phone.count("MOCK_REPLY: sent while away", laptop_agent) == 1
        assert await phone.count("in flight", laptop_agent) == 1

        # 3. The hub (Prosody and the service) restarts while both runners work.
        await phone.send(laptop_agent, "[[sleep:3]] laptop through the restart")
        await phone.send(devbox_agent, "[[sleep:3]] devbox through the restart")
        assert await hub.stop() == 0
        hub = await start_hub(world, hub_home)
        phase("hub restarted")
        assert (await phone.call(op="reconnect", timeout=30))["ok"]
        await phone.expect("laptop through the restart", laptop_agent, timeout=60)
        await phone.expect("devbox through the restart", devbox_agent, timeout=60)
        for agent, text in ((laptop_agent, "after the hub's restart"), (devbox_agent, "devbox after the hub's restart")):
            await phone.send(agent, text)
            await phone.expect(f"MOCK_REPLY: {text}", agent, timeout=60)
        await phone.send(MANAGER, "list")
        listed = await phone.expect("Your agents (2)", MANAGER)
        assert "offline" not in listed, listed
        phase("both runners worked through the hub's restart")

        # 4. The devbox runner restarts: its agent comes back and resumes its session (--resume).
        assert await devbox.stop() == 0
        runners.remove(devbox)
        devbox = await start_runner(world, "devbox", devbox_home, ["runner", "start"])
        runners.append(devbox)
        await phone.send(devbox_agent, "[[recall]]")
        recalled = await phone.expect("MOCK_HISTORY:", devbox_agent, timeout=60)
        assert "hello devbox" in recalled, recalled
        phase("the devbox runner restarted, its agent resumed its session")

        # 5. A valid account that was never registered is no runner of this hub.
        code, out = await run_once(world, "hub", hub_home, "user", "add", "runner-fake", env={"XMPP_DOMAIN": DOMAIN})
        assert code == 0, out
        fake_password = re.search(r"password: (\S+)", out).group(1)  # type: ignore[union-attr]
        code, out = await run_once(world, "devbox", tmp_path / "fake", "runner", "start", "--server",
                                   f"{world.addresses['hub']}:5222", "--jid", f"runner-fake@{DOMAIN}", "--password",
                                   fake_password, "--fingerprint", flag(laptop_args, "--fingerprint"),
                                   "--work-base-path", str(devbox_home / "work"), "--mcp-port", "0")  # fmt: skip
        assert code == 1 and "refused this runner" in out, out
        await hub.wait_for(f"refused hello from runner-fake@{DOMAIN}", 10)

        # 6. A runner does not command another runner.
        runner_client = await world.spawn("laptop", python("-m", "tests.support.netns_chat", world.addresses["hub"], "5222",
                                                           flag(laptop_args, "--jid"), laptop_env["AGENTCHAT_RUNNER_PASSWORD"],
                                                           str(laptop_home / "tls" / "hub.crt")),
                                          environment(tmp_path / "intruder"), REPO, stdin=True)  # fmt: skip
        intruder = Phone(Running("intruder", runner_client))
        await intruder.running.wait_for('{"ready": true}', 30)
        intruder._answers = 1
        create = json.dumps({"agent_id": "evil-twin", "owner": jid, "backend": "claude", "repository": "web",
                             "password": "x" * 24})
        answer = await intruder.call(op="iq", to=f"runner-devbox@{DOMAIN}/agentchat", namespace=NAMESPACE,
                                     name="create", body=create, timeout=10)  # fmt: skip
        assert not answer["ok"] and answer["condition"] == "forbidden", answer
        await devbox.wait_for(f"refused create from runner-laptop@{DOMAIN}", 10)
        assert "evil-twin" not in devbox.text.split("refused create", 1)[0]
        phase("impostors refused")
    finally:
        for runner in runners:
            if runner.process.returncode is None:
                await runner.stop()
        if hub.process.returncode is None:
            await hub.stop()

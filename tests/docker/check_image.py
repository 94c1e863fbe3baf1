"""`make docker-check`: the Docker image, built and run for real (not part of `make test`).

With whatever engine the machine has: a Docker engine if one answers; else buildah builds and
podman (with runc) runs, which needs no daemon. Steps, each printed with its timing:

 1. (podman) a local stand-in for the `python:3.11-slim-bookworm` base when no registry serves
    it: Debian's minbase from the host's own mirror (debootstrap), Python and pip on top, and the
    host's extra CA certificates (a TLS-intercepting proxy's) so that pip reaches PyPI. Cached in
    the storage directory; rebuilt only when its inputs change;
 2. the image, from the Dockerfile unchanged (WITH_CLAUDE=1 by default), with the layer cache;
 3. (podman) two network namespaces joined by a veth pair, one for the container and one for the
    client, attached to nothing else: no port of this machine is used or reachable;
 4. the container: Prosody and the service come up (`Listening for messages` in its log);
 5. `agentchat user add` through exec; the certificate copied out of the container;
 6. a client in the other namespace: with the system's CAs the login must fail, trusting the
    copied certificate it logs in over STARTTLS, sees that certificate, and gets `help`;
 7. the HEALTHCHECK reports healthy;
 8. SIGTERM (`stop`): exit status 0 and one shutdown in order: the entrypoint's SIGTERM, the
    service's stop, its exit, Prosody's shutdown, the entrypoint's last line.

The container, the namespaces and the temp files are removed even on failure (and those of an
earlier run that was killed, at the next start). Exit status 0 when every step passed, else 1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import hashlib
import json
import os
import re
import resource
import secrets
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEFAULT_STATE_DIR = REPO / ".cache" / "docker-check"
BASE_IMAGE = "docker.io/library/python:3.11-slim-bookworm"
MINBASE_IMAGE = "localhost/debian-minbase:bookworm"
STAND_IN_LABEL = "org.agentchat.docker-check.stand-in"
CONTEXT_LABEL = "org.agentchat.docker-check.context"
SUITE = "bookworm"
DOMAIN = "agentchat.test"  # RFC 2606: never a real domain
STATE_IN_IMAGE = "/root/.agent-chat"
USER_NAME = "alice"
NAME_PREFIX = "agentchat-check"
NETNS_PREFIX = "acheck"
SERVER_ADDRESS = "10.200.0.1"  # only inside this run's namespaces, never from the root namespace
CLIENT_ADDRESS = "10.200.0.2"
READY_LINE = "Listening for messages"
START_TIMEOUT = 120.0
STOP_TIMEOUT = 60
BUILD_TIMEOUT = 1800.0


class CheckFailed(Exception):
    """A step did not do what a user of the image needs; the message says what was seen."""


# --- Output ---------------------------------------------------------------------------------


@dataclass
class Step:
    name: str
    started_at: float  # seconds since the check began
    detail: str = ""
    seconds: float = 0.0


@dataclass
class Report:
    """Prints each step as it starts and ends, with its time; keeps them for the summary."""

    started: float = field(default_factory=time.monotonic)
    steps: list[Step] = field(default_factory=list)

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def note(self, text: str) -> None:
        print(f"[{self.elapsed():6.1f} s]   {text}", flush=True)

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[Step]:
        step = Step(name, self.elapsed())
        begun = time.monotonic()
        print(f"[{self.elapsed():6.1f} s] {name} ...", flush=True)
        try:
            yield step
        except BaseException as exc:
            step.seconds = time.monotonic() - begun
            why = str(exc) if isinstance(exc, CheckFailed) else f"{type(exc).__name__}: {exc}"
            print(f"[{self.elapsed():6.1f} s] {name}: FAILED after {step.seconds:.1f} s: {why}", flush=True)
            raise
        step.seconds = time.monotonic() - begun
        self.steps.append(step)
        print(f"[{self.elapsed():6.1f} s] {name}: {step.detail or 'ok'} ({step.seconds:.1f} s)", flush=True)

    def summary(self, ok: bool) -> None:
        print(f"\ndocker-check {'passed' if ok else 'FAILED'} in {self.elapsed():.1f} s", flush=True)
        for step in self.steps:
            print(f"  {step.seconds:6.1f} s  {step.name}: {step.detail or 'ok'}", flush=True)


# --- Processes ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    returncode: int
    output: str


def tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


async def kill_group(process: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    await process.wait()


async def run(
    argv: Sequence[str | Path],
    *,
    timeout: float = 120.0,
    check: bool = True,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    log: Path | None = None,
    secret: str | None = None,
) -> Result:
    """Run a command to its end, stdout and stderr together; CheckFailed on a non-zero status when
    ``check``, or after ``timeout`` seconds (the command is killed then). With ``log``, the output
    also goes there as it comes, each line with its time since the start (where a build spends
    its time). ``secret`` (a password in the command) is masked in what CheckFailed says."""
    args = [str(a) for a in argv]
    process = await asyncio.create_subprocess_exec(
        *args, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env=env, cwd=cwd, start_new_session=True,
    )
    lines: list[str] = []

    async def collect() -> None:
        assert process.stdout is not None
        begun = time.monotonic()
        with log.open("w", encoding="utf-8") if log is not None else contextlib.nullcontext() as sink:
            async for raw in process.stdout:
                line = raw.decode("utf-8", "replace")
                lines.append(line)
                if sink is not None:
                    sink.write(f"{time.monotonic() - begun:7.1f} {line}")
                    sink.flush()
        await process.wait()

    try:
        await asyncio.wait_for(collect(), timeout)
    except TimeoutError:
        await kill_group(process)
        raise CheckFailed(f"`{' '.join(args[:6])} …` took over {timeout:g} s") from None
    except asyncio.CancelledError:
        await kill_group(process)
        raise
    output = "".join(lines)
    assert process.returncode is not None
    if check and process.returncode != 0:
        where = f" (full log: {log})" if log is not None else ""
        message = f"`{' '.join(args)}` exited with {process.returncode}{where}:\n{tail(output)}"
        raise CheckFailed(message.replace(secret, "********") if secret else message)
    return Result(process.returncode, output)


class LogFollower:
    """A container's log, line by line as it comes (`logs -f`), to wait for a line with a timeout."""

    def __init__(self, argv: Sequence[str]) -> None:
        self.argv = list(argv)
        self.lines: list[str] = []
        self.ended = False
        self._changed = asyncio.Condition()
        self._process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._process = await asyncio.create_subprocess_exec(
            *self.argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT, start_new_session=True,
        )
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        async for raw in self._process.stdout:
            async with self._changed:
                self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
                self._changed.notify_all()
        async with self._changed:
            self.ended = True
            self._changed.notify_all()

    async def wait_for(self, pattern: str, timeout: float) -> str:
        regex = re.compile(pattern)

        def found() -> str | None:
            return next((line for line in self.lines if regex.search(line)), None)

        try:
            async with asyncio.timeout(timeout):
                async with self._changed:
                    await self._changed.wait_for(lambda: self.ended or found() is not None)
        except TimeoutError:
            raise CheckFailed(f"no log line matching {pattern!r} within {timeout:g} s:\n{tail(self.text())}") from None
        line = found()
        if line is None:
            raise CheckFailed(f"the container's log ended before {pattern!r}:\n{tail(self.text())}")
        return line

    def text(self) -> str:
        return "\n".join(self.lines)

    async def close(self) -> None:
        if self._process is not None and self._process.returncode is None:
            await kill_group(self._process)
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader


# --- Network namespaces ---------------------------------------------------------------------


@dataclass
class Namespaces:
    """Two network namespaces, server and client, joined by one veth pair and nothing else."""

    server: str
    client: str

    @property
    def server_path(self) -> str:
        return f"/run/netns/{self.server}"

    async def create(self) -> None:
        for ns in (self.server, self.client):
            await run(["ip", "netns", "add", ns])
            await run(["ip", "-n", ns, "link", "set", "lo", "up"])
        await run(["ip", "-n", self.server, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0",
                   "netns", self.client])
        for ns, address in ((self.server, SERVER_ADDRESS), (self.client, CLIENT_ADDRESS)):
            await run(["ip", "-n", ns, "addr", "add", f"{address}/24", "dev", "eth0"])
            await run(["ip", "-n", ns, "link", "set", "eth0", "up"])

    async def delete(self) -> None:
        for ns in (self.server, self.client):
            if Path(f"/run/netns/{ns}").exists():
                await run(["ip", "netns", "del", ns], check=False)


# --- Engines --------------------------------------------------------------------------------


@dataclass
class Container:
    name: str
    address: str  # where the client connects
    port: int
    client_prefix: list[str]  # how the client is run (inside the client namespace, or as is)


class Engine:
    """What the check needs from a container engine."""

    name = "engine"

    def cli(self, *args: str | Path) -> list[str]:
        raise NotImplementedError

    async def describe(self) -> str:
        raise NotImplementedError

    async def ensure_base(self, report: Report) -> None:
        """Make the Dockerfile's base image available (a stand-in where no registry has it)."""

    async def build(self, tag: str, with_claude: bool, no_cache: bool, log: Path) -> str:
        """Build (or find cached) ``tag``; returns how: "built" or why nothing was built."""
        raise NotImplementedError

    async def image_size(self, tag: str) -> int:
        out = await run(self.cli("image", "inspect", "--format", "{{.Size}}", tag))
        return int(out.output.strip().splitlines()[-1])

    async def prepare(self, run_id: str, report: Report) -> None:
        """Whatever the container needs around it (podman: its network namespaces)."""

    async def start(self, name: str, image: str) -> Container:
        """`run -d`: returns once the container runs, before its services are up."""
        raise NotImplementedError

    async def healthcheck(self, name: str) -> str:
        raise NotImplementedError

    async def cleanup_stale(self, report: Report) -> None:
        """Remove what a killed earlier run left (its pid is in the names)."""

    async def remove(self, container: str) -> None:
        await run(self.cli("rm", "-f", "-v", container), check=False, timeout=120)

    async def close(self) -> None:
        """Remove what start() made besides the container."""


def pid_of_run(name: str) -> int | None:
    match = re.match(rf"^(?:{NAME_PREFIX}|{NETNS_PREFIX})-(\d+)-", name)
    return int(match.group(1)) if match else None


def run_is_alive(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"check_image" in cmdline


def build_context_digest(build_args: str) -> str:
    """What the build reads: the Dockerfile, .dockerignore and the files it lets through (its
    `!` entries, less caches and .env files), with their modes; and ``build_args``."""
    digest = hashlib.sha256(build_args.encode() + b"\0")
    ignore = REPO / ".dockerignore"
    admitted = [line[1:].strip().strip("/") for line in ignore.read_text().splitlines() if line.startswith("!")]
    files: list[Path] = [REPO / "Dockerfile", ignore]
    for entry in admitted:
        path = REPO / entry
        files.extend([path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file()))
    for path in files:
        relative = path.relative_to(REPO)
        if "__pycache__" in relative.parts or path.suffix == ".pyc" or path.name == ".env":
            continue
        digest.update(f"{relative.as_posix()}\0{path.stat().st_mode & 0o777:o}\0".encode())
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def host_mirror() -> str:
    """The host's Debian mirror (deb822 sources or sources.list), for debootstrap."""
    sources = Path("/etc/apt/sources.list.d/debian.sources")
    if sources.exists():
        for stanza in sources.read_text().split("\n\n"):
            fields: dict[str, str] = dict(re.findall(r"^(\w[\w-]*):\s*(.+)$", stanza, re.MULTILINE))
            if SUITE in fields.get("Suites", "").split() and "URIs" in fields:
                return fields["URIs"].split()[0]
    legacy = Path("/etc/apt/sources.list")
    if legacy.exists():
        for line in legacy.read_text().splitlines():
            match = re.match(rf"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+{SUITE}\s", line)
            if match:
                return match.group(1)
    return "http://deb.debian.org/debian"


def extra_ca_certificates() -> list[Path]:
    """CAs the host trusts beyond Debian's (a TLS-intercepting proxy's): pip needs them too."""
    return sorted(Path("/usr/local/share/ca-certificates").glob("**/*.crt"))


def stand_in_containerfile(certificates: Sequence[Path], digest: str) -> str:
    copy = "COPY ca/ /usr/local/share/ca-certificates/\n" if certificates else ""
    return f"""\
# A local stand-in for {BASE_IMAGE}: Debian's Python 3.11 where the real image cannot be pulled.
# Like Debian's slim images, dpkg leaves out documentation, manual pages and translations.
FROM {MINBASE_IMAGE}
{copy}RUN printf '%s\\n' 'path-exclude /usr/share/doc/*' 'path-include /usr/share/doc/*/copyright' \\
       'path-exclude /usr/share/man/*' 'path-exclude /usr/share/info/*' 'path-exclude /usr/share/lintian/*' \\
       'path-exclude /usr/share/locale/*' 'path-include /usr/share/locale/locale.alias' \\
       > /etc/dpkg/dpkg.cfg.d/slim \\
    && find /usr/share/doc -mindepth 1 ! -name copyright ! -type d -delete \\
    && rm -rf /usr/share/man/* /usr/share/info/* \\
    && find /usr/share/locale -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {{}} + \\
    && apt-get update \\
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \\
       python3 python3-pip python3-venv python-is-python3 ca-certificates netbase tzdata \\
    && rm -rf /var/lib/apt/lists/* \\
    && ln -s /usr/bin/pip3 /usr/local/bin/pip \\
    && rm -f /usr/lib/python3.*/EXTERNALLY-MANAGED \\
    && update-ca-certificates
ENV LANG=C.UTF-8
LABEL {STAND_IN_LABEL}={digest}
CMD ["python3"]
"""


class Podman(Engine):
    """buildah builds, podman runs with runc, both on vfs storage in a directory of ours
    (no daemon, no overlay, no registry login); the container in a network namespace of its own."""

    name = "podman"

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.root = state_dir / "storage"
        # Runtime state on tmpfs: a reboot clears it, as podman expects.
        key = hashlib.sha256(str(self.root).encode()).hexdigest()[:12]
        self.runroot = Path("/run/agentchat-docker-check") / key / "run"
        self.tmpdir = Path("/run/agentchat-docker-check") / key / "tmp"
        self.namespaces: Namespaces | None = None

    def storage_args(self) -> list[str]:
        return ["--storage-driver", "vfs", "--root", str(self.root), "--runroot", str(self.runroot)]

    def buildah(self, *args: str | Path) -> list[str]:
        return ["buildah", *self.storage_args(), *map(str, args)]

    def cli(self, *args: str | Path) -> list[str]:
        return ["podman", *self.storage_args(), "--tmpdir", str(self.tmpdir), "--cgroup-manager", "cgroupfs",
                "--events-backend", "file", "--runtime", "runc", *map(str, args)]

    async def describe(self) -> str:
        podman = (await run(["podman", "--version"])).output.strip()
        buildah = (await run(["buildah", "--version"])).output.split("(")[0].strip()
        runc = (await run(["runc", "--version"])).output.splitlines()[0].strip()
        return f"{buildah} builds, {podman} runs with {runc}; vfs storage in {self.root}"

    async def image_label(self, image: str, label: str) -> str | None:
        result = await run(self.cli("image", "inspect", "--format", f'{{{{index .Labels "{label}"}}}}', image),
                           check=False)
        return result.output.strip() if result.returncode == 0 else None

    async def image_exists(self, image: str) -> bool:
        return (await run(self.cli("image", "exists", image), check=False)).returncode == 0

    async def ensure_base(self, report: Report) -> None:
        certificates = extra_ca_certificates()
        mirror = host_mirror()
        inputs = hashlib.sha256(stand_in_containerfile([], "").encode() + mirror.encode())
        for certificate in certificates:
            inputs.update(certificate.name.encode() + certificate.read_bytes())
        digest = inputs.hexdigest()[:16]
        with report.step(f"base image {BASE_IMAGE}") as step:
            label = await self.image_label(BASE_IMAGE, STAND_IN_LABEL)
            if label == digest:
                step.detail = "the stand-in is cached"
                return
            if label is None and await self.image_exists(BASE_IMAGE):
                step.detail = "present (not a stand-in)"
                return
            step.detail = "to be made: no registry serves it here"
        if not await self.image_exists(MINBASE_IMAGE):
            with report.step(f"Debian {SUITE} minbase from {mirror} (debootstrap)") as step:
                step.detail = await self._debootstrap(mirror)
        with report.step(f"stand-in {BASE_IMAGE}: Python, pip, {len(certificates)} extra CA(s)") as step:
            context = Path(tempfile.mkdtemp(prefix="stand-in-", dir=self.state_dir))
            try:
                if certificates:
                    (context / "ca").mkdir()
                    for certificate in certificates:
                        shutil.copy(certificate, context / "ca" / certificate.name)
                (context / "Containerfile").write_text(stand_in_containerfile(certificates, digest))
                await run(self.buildah("bud", "--isolation", "chroot", "--pull=never", "--format", "docker",
                                       "-t", BASE_IMAGE, "-f", context / "Containerfile", context),
                          timeout=900, log=self.state_dir / "stand-in.log")
            finally:
                shutil.rmtree(context, ignore_errors=True)
            step.detail = f"{await self.image_size(BASE_IMAGE) / 1e6:.0f} MB"

    async def _debootstrap(self, mirror: str) -> str:
        rootfs = self.state_dir / "minbase-rootfs"
        shutil.rmtree(rootfs, ignore_errors=True)
        try:
            await run(["debootstrap", "--variant=minbase", SUITE, rootfs, mirror], timeout=900,
                      log=self.state_dir / "debootstrap.log")
            container = (await run(self.buildah("from", "scratch"))).output.strip().splitlines()[-1]
            try:
                mount = (await run(self.buildah("mount", container))).output.strip().splitlines()[-1]
                await run(["cp", "-a", f"{rootfs}/.", mount], timeout=300)
                await run(self.buildah("umount", container))
                await run(self.buildah("config", "--cmd", "/bin/bash", container))
                await run(self.buildah("commit", "--format", "docker", container, MINBASE_IMAGE), timeout=300)
            finally:
                await run(self.buildah("rm", container), check=False)
        finally:
            shutil.rmtree(rootfs, ignore_errors=True)
        return f"{await self.image_size(MINBASE_IMAGE) / 1e6:.0f} MB"

    async def build(self, tag: str, with_claude: bool, no_cache: bool, log: Path) -> str:
        # No layer cache: on vfs every cached step is a full copy of the image (3-5 s each, and
        # a warm build as slow as a cold one). Instead the whole image is reused while nothing
        # that the build reads has changed: the context, the build argument and the base.
        base = (await run(self.cli("image", "inspect", "--format", "{{.Id}}", BASE_IMAGE))).output.strip()
        digest = build_context_digest(f"WITH_CLAUDE={int(with_claude)} base={base}")
        if not no_cache and await self.image_label(tag, CONTEXT_LABEL) == digest:
            return "cached: context, WITH_CLAUDE and base unchanged"
        begun = time.monotonic()
        await run(self.buildah("bud", "--isolation", "chroot", "--pull=never", "--format", "docker",
                               "--build-arg", f"WITH_CLAUDE={int(with_claude)}", "--label",
                               f"{CONTEXT_LABEL}={digest}", "-t", tag, "-f", REPO / "Dockerfile", REPO),
                  timeout=BUILD_TIMEOUT, log=log)
        built = time.monotonic()
        # The build stage and the image this tag named before: untagged, gigabytes on vfs.
        await run(self.buildah("rmi", "--prune"), check=False, timeout=600)
        return f"built in {built - begun:.0f} s, untagged images removed in {time.monotonic() - built:.0f} s"

    async def cleanup_stale(self, report: Report) -> None:
        listed = await run(self.cli("ps", "-a", "--format", "{{.Names}}"), check=False)
        stale = [name for name in listed.output.split() if (pid := pid_of_run(name)) and not run_is_alive(pid)]
        for name in stale:
            await self.remove(name)
        netns = Path("/run/netns")
        stale_ns = [p.name for p in netns.iterdir()] if netns.is_dir() else []
        stale_ns = [name for name in stale_ns if (pid := pid_of_run(name)) and not run_is_alive(pid)]
        for name in stale_ns:
            await run(["ip", "netns", "del", name], check=False)
        if stale or stale_ns:
            report.note(f"removed what a killed earlier run left: {', '.join(stale + stale_ns)}")

    async def prepare(self, run_id: str, report: Report) -> None:
        self.namespaces = Namespaces(f"{NETNS_PREFIX}-{run_id}-srv", f"{NETNS_PREFIX}-{run_id}-cli")
        with report.step("network namespaces: container and client, one veth between them") as step:
            await self.namespaces.create()
            step.detail = f"{self.namespaces.server} {SERVER_ADDRESS}, {self.namespaces.client} {CLIENT_ADDRESS}"

    async def start(self, name: str, image: str) -> Container:
        assert self.namespaces is not None, "prepare() first"
        # Podman's default rlimits cannot be raised here: stay at or below the current ones.
        nofile = min(4096, resource.getrlimit(resource.RLIMIT_NOFILE)[0])
        nproc = min(4096, resource.getrlimit(resource.RLIMIT_NPROC)[0])
        await run(self.cli(
            "run", "-d", "--name", name, "--hostname", "agentchat-check",
            "--network", f"ns:{self.namespaces.server_path}",
            "--ulimit", f"nofile={nofile}:{nofile}", "--ulimit", f"nproc={nproc}:{nproc}",
            "-e", f"XMPP_DOMAIN={DOMAIN}", image,
        ), timeout=300)
        return Container(name, SERVER_ADDRESS, 5222, ["ip", "netns", "exec", self.namespaces.client])

    async def healthcheck(self, name: str) -> str:
        result = await run(self.cli("healthcheck", "run", name), check=False, timeout=60)
        status = await run(self.cli("inspect", "--format", "{{json .State.Health}}", name))
        health = json.loads(status.output.strip() or "{}") or {}
        last = (health.get("Log") or [{}])[-1].get("Output", "").strip()
        if result.returncode != 0 or health.get("Status") != "healthy":
            raise CheckFailed(f"`healthcheck run` exited {result.returncode}, status {health.get('Status')!r}: "
                              f"{result.output.strip()} {last}")
        return last or str(health["Status"])

    async def close(self) -> None:
        if self.namespaces is not None:
            await self.namespaces.delete()
            self.namespaces = None


class Docker(Engine):
    """A Docker engine that answers: it pulls the base itself; the container's own network
    namespace is the "other machine", reached through a port published on loopback."""

    name = "docker"

    def cli(self, *args: str | Path) -> list[str]:
        return ["docker", *map(str, args)]

    async def describe(self) -> str:
        version = await run(["docker", "version", "--format", "{{.Server.Version}}"])
        return f"Docker engine {version.output.strip()}"

    async def build(self, tag: str, with_claude: bool, no_cache: bool, log: Path) -> str:
        args = ["build", "--build-arg", f"WITH_CLAUDE={int(with_claude)}", "-t", tag]
        if no_cache:
            args.append("--no-cache")
        await run(self.cli(*args, REPO), timeout=BUILD_TIMEOUT, log=log)
        return "built (Docker's layer cache)"

    async def start(self, name: str, image: str) -> Container:
        await run(self.cli("run", "-d", "--name", name, "-p", "127.0.0.1::5222", "-e", f"XMPP_DOMAIN={DOMAIN}",
                           image), timeout=300)
        published = await run(self.cli("port", name, "5222/tcp"))
        port = int(published.output.strip().splitlines()[0].rsplit(":", 1)[1])
        return Container(name, "127.0.0.1", port, [])

    async def healthcheck(self, name: str) -> str:
        # Docker has no `healthcheck run`: the HEALTHCHECK's own command, through exec.
        config = await run(self.cli("inspect", "--format", "{{json .Config.Healthcheck.Test}}", name))
        test = json.loads(config.output.strip())
        if not test or test[0] != "CMD":
            raise CheckFailed(f"unexpected HEALTHCHECK {test}")
        result = await run(self.cli("exec", name, *test[1:]), check=False, timeout=60)
        if result.returncode != 0:
            raise CheckFailed(f"the HEALTHCHECK command exited {result.returncode}: {result.output.strip()}")
        return result.output.strip()


async def pick_engine(state_dir: Path) -> Engine:
    if shutil.which("docker"):
        answered = await run(["docker", "version", "--format", "{{.Server.Version}}"], check=False, timeout=20)
        if answered.returncode == 0:
            return Docker()
    missing = [tool for tool in ("buildah", "podman", "runc", "debootstrap", "ip") if not shutil.which(tool)]
    if missing:
        raise CheckFailed(f"no Docker engine answers and {', '.join(missing)} not found: "
                          "`make docker-check` installs them on Debian")
    if os.geteuid() != 0:
        raise CheckFailed("podman in network namespaces of our own needs root here (ip netns, rootful storage)")
    return Podman(state_dir)


# --- The check ------------------------------------------------------------------------------


def assert_in_order(text: str, labelled: Sequence[tuple[str, str]]) -> None:
    """Each pattern matches exactly one line, and the lines come in this order."""
    lines = text.splitlines()
    positions = []
    for label, pattern in labelled:
        hits = [i for i, line in enumerate(lines) if re.search(pattern, line)]
        if len(hits) != 1:
            raise CheckFailed(f"{label}: {len(hits)} log lines match {pattern!r}, expected one:\n{tail(text, 60)}")
        positions.append(hits[0])
    if positions != sorted(positions):
        order = [label for _, (label, _) in sorted(zip(positions, labelled))]
        raise CheckFailed(f"shutdown out of order: {order}:\n{tail(text, 60)}")


SHUTDOWN_ORDER = (
    ("the entrypoint gets SIGTERM", r"entrypoint: received SIGTERM: stopping"),
    ("the service starts stopping", r"Agent Chat Service stopping\.\.\."),
    ("the service has stopped", r"Agent Chat Service stopped$"),
    ("the service exits with 0", r"entrypoint: agentchat exited with status 0$"),
    ("Prosody shuts down", r"Shutting down: Received SIGTERM"),
    ("Prosody has stopped", r"entrypoint: Prosody stopped$"),
)


async def check(engine: Engine, args: argparse.Namespace, report: Report) -> None:
    state_dir: Path = args.state_dir
    tag = f"localhost/agentchat:check{'' if args.with_claude else '-noclaude'}"
    run_id = f"{os.getpid()}-{secrets.token_hex(3)}"
    name = f"{NAME_PREFIX}-{run_id}"
    work = Path(tempfile.mkdtemp(prefix=f"run-{run_id}-", dir=state_dir))
    follower: LogFollower | None = None
    try:
        await engine.cleanup_stale(report)
        await engine.ensure_base(report)
        build_log = state_dir / f"build{'' if args.with_claude else '-noclaude'}.log"
        build_log.unlink(missing_ok=True)
        with report.step(f"image {tag} (WITH_CLAUDE={int(args.with_claude)}"
                         f"{', --no-cache' if args.no_cache else ''})") as step:
            how = await engine.build(tag, args.with_claude, args.no_cache, build_log)
            where = f", log {build_log}" if build_log.exists() else ""
            step.detail = f"{how}, {await engine.image_size(tag) / 1e6:.0f} MB{where}"

        await engine.prepare(run_id, report)
        with report.step(f"container {name}: Prosody and the service come up") as step:
            container = await engine.start(name, tag)
            created = report.elapsed()
            follower = LogFollower(engine.cli("logs", "-f", name))
            await follower.start()
            await follower.wait_for(r"entrypoint: Prosody ready", START_TIMEOUT)
            prosody_ready = report.elapsed()
            await follower.wait_for(READY_LINE, START_TIMEOUT)
            if "Prosody was unable to find" in follower.text():  # a dependency left out of the image
                raise CheckFailed(f"Prosody's warning banner in the log:\n{tail(follower.text())}")
            step.detail = (f"`run -d` {created - step.started_at:.1f} s, Prosody ready "
                           f"{prosody_ready - created:.1f} s later, `{READY_LINE}` {report.elapsed() - prosody_ready:.1f} s later")

        password = secrets.token_urlsafe(16)
        user = f"{USER_NAME}@{DOMAIN}"
        with report.step(f"`agentchat user add {USER_NAME}` through exec") as step:
            # `--password=…`: a generated password may start with "-".
            added = await run(engine.cli("exec", name, "agentchat", "user", "add", USER_NAME, f"--password={password}"),
                              secret=password)
            if f"Created {user}" not in added.output:
                raise CheckFailed(f"unexpected output: {added.output.strip()}")
            step.detail = f"Created {user}"

        certificate = work / f"{DOMAIN}.crt"
        with report.step("the image's certificate, copied out of the container") as step:
            await run(engine.cli("cp", f"{name}:{STATE_IN_IMAGE}/tls/{DOMAIN}.crt", certificate))
            step.detail = str(certificate.relative_to(state_dir))

        with report.step("a client in another network namespace: STARTTLS, verified, `help`") as step:
            probe = await run(
                [*container.client_prefix, sys.executable, "-m", "tests.docker.xmpp_probe",
                 "--address", container.address, "--port", str(container.port), "--jid", user,
                 "--ca", certificate, "--manager", f"manager@{DOMAIN}"],
                env={**os.environ, "AGENTCHAT_PROBE_PASSWORD": password}, cwd=REPO, timeout=120, check=False,
            )
            if probe.returncode != 0:
                raise CheckFailed(f"the client failed:\n{tail(probe.output)}\n--- container log:\n{tail(follower.text())}")
            result = json.loads(probe.output.strip().splitlines()[-1])
            report.note(f"with the system's CAs only: refused ({result['refused_with_system_cas']})")
            report.note(f"server certificate SHA-256 {result['fingerprint']}")
            step.detail = (f"{result['tls_version']} {result['cipher']}, login {result['login_s']} s, "
                           f"help {result['help_s']} s: {result['help_first_line'][:60]!r}")

        with report.step("HEALTHCHECK") as step:
            step.detail = await engine.healthcheck(name)

        with report.step(f"SIGTERM (`stop -t {STOP_TIMEOUT}`): exit 0, one ordered shutdown") as step:
            await run(engine.cli("stop", "-t", str(STOP_TIMEOUT), name), timeout=STOP_TIMEOUT + 30)
            exit_code = (await run(engine.cli("inspect", "--format", "{{.State.ExitCode}}", name))).output.strip()
            logs = (await run(engine.cli("logs", name))).output
            (state_dir / "container.log").write_text(logs)
            if exit_code != "0":
                raise CheckFailed(f"the container exited with {exit_code}:\n{tail(logs, 60)}")
            assert_in_order(logs, SHUTDOWN_ORDER)
            for unwanted in ("Traceback", "while stopping: ignored", "did not stop within", "ended by the signal"):
                if unwanted in logs:
                    raise CheckFailed(f"{unwanted!r} in the container's log:\n{tail(logs, 60)}")
            step.detail = "exit 0; " + " < ".join(label for label, _ in SHUTDOWN_ORDER)
            report.note(f"the container's log: {state_dir / 'container.log'}")
    finally:
        with report.step("clean-up: container, namespaces, temp files") as step:
            if follower is not None:
                await follower.close()
            await engine.remove(name)
            await engine.close()
            shutil.rmtree(work, ignore_errors=True)
            step.detail = "nothing left"


async def main_async(args: argparse.Namespace) -> int:
    report = Report()
    args.state_dir.mkdir(parents=True, exist_ok=True)
    # One check at a time per storage: a build's clean-up (rmi --prune) would take another's stage.
    lock = (args.state_dir / "lock").open("w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print(f"docker-check: waiting for another run that uses {args.state_dir} ...", flush=True)
        await asyncio.to_thread(fcntl.flock, lock, fcntl.LOCK_EX)
    # SIGTERM as Ctrl-C: the check's own clean-up runs either way.
    main_task = asyncio.current_task()
    assert main_task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main_task.cancel)
    ok = False
    try:
        with report.step("engine") as step:
            engine = await pick_engine(args.state_dir)
            step.detail = await engine.describe()
        await check(engine, args, report)
        ok = True
    except CheckFailed:
        pass  # already printed by its step
    finally:
        report.summary(ok)
        lock.close()
    return 0 if ok else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--with-claude", type=int, choices=(0, 1), default=int(os.environ.get("WITH_CLAUDE", "1")),
                        help="build argument WITH_CLAUDE (default: $WITH_CLAUDE, else 1)")
    parser.add_argument("--no-cache", action="store_true", help="build without the layer cache (a cold build)")
    parser.add_argument("--state-dir", type=Path, default=Path(os.environ.get("DOCKER_CHECK_DIR", DEFAULT_STATE_DIR)),
                        help=f"image storage and logs (default: $DOCKER_CHECK_DIR, else {DEFAULT_STATE_DIR})")
    args = parser.parse_args(argv)
    args.state_dir = args.state_dir.resolve()
    try:
        return asyncio.run(main_async(args))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("docker-check: interrupted (cleaned up)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

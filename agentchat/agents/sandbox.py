"""The sandbox every agent's process runs in: bubblewrap (``bwrap``), one sandbox per process.

The owner is trusted; the agent's code (the CLI and whatever it runs, asked for or not) and other
users are not. So an agent's process sees, each at its real path:

* its repository, read-write (the working directory);
* its own home and scratch directories, read-write: ``<state>/agents/<id>/home`` (``HOME``) and
  ``<state>/agents/<id>/tmp`` (mounted on ``/tmp``);
* the system read-only: ``/usr`` (and ``/bin``, ``/lib``… as on the host), ``/opt``, ``/etc`` without
  what only its owner may read (``/etc/shadow``, private keys: what an ordinary local user cannot read
  is not there), a fresh ``/proc`` and ``/dev``;
* the CLI read-only, and what ``agents.sandbox.readOnly`` / ``readWrite`` add;
* private files the service hands over (the MCP config with the agent's bearer token), copied by
  bubblewrap from a memory file into the sandbox's own ``/run/agentchat``: never on disk, seen by
  no other process.

Nothing else exists in there: not the state directory (secrets.json, config.json, state.db,
audit.jsonl, logs, Prosody's data), not the other repositories, not other agents' directories, not
the home directories of the machine's users. Its own user, PID, IPC and UTS namespaces: it runs as
an unprivileged uid (the service's own uid, or 1000 when the service runs as root) with no
capabilities, sees only its own processes, and dies with the service (``--die-with-parent``).
The network stays the host's unless ``agents.sandbox.network`` is false; then only the MCP
permission endpoint is reachable, through a relay in the sandbox (``sandbox_relay.py``) to a
Unix socket of the service.

Where the machine cannot sandbox (no bubblewrap, no user namespaces), ``Sandbox.off`` runs the
process as before, with the filtered environment (agentchat.agents.environment) and the private
files in the 0700 state directory: other local users are kept out, other agents are not.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import shutil
import stat
import sys
import tempfile
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from agentchat.agents.environment import child_environment
from agentchat.config import SandboxSettings
from agentchat.errors import BackendError, ConfigError
from agentchat.state_dir import child_umask

log = logging.getLogger(__name__)

# Inside the sandbox: where private files are copied to (a tmpfs of the sandbox's own).
PRIVATE_DIR = Path("/run/agentchat")
RELAY_SCRIPT = Path(__file__).with_name("sandbox_relay.py")
# The uid and gid inside when the service runs as root: any unprivileged id will do; named "agent".
ROOT_SERVICE_UID = 1000
AGENT_USER = "agent"
# System trees every agent sees read-only; /bin, /lib… are symlinks into /usr on merged-/usr systems.
SYSTEM_TREES = ("/usr", "/opt")
SYSTEM_TOP_LEVEL = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")


@dataclass(frozen=True)
class AgentDirs:
    """An agent's own directories under the state directory; only its sandbox sees them."""

    root: Path

    @classmethod
    def of(cls, state_dir: Path, agent_id: str) -> AgentDirs:
        return cls(state_dir / "agents" / agent_id)

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def scratch(self) -> Path:
        return self.root / "tmp"

    def create(self) -> None:
        """Blocking: call through asyncio.to_thread."""
        for directory in (self.root, self.home, self.scratch):
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)


@dataclass(frozen=True)
class Bind:
    """More of the machine for one process to see, at ``target`` (default: the same path)."""

    source: Path
    target: Path | None = None
    writable: bool = False

    @property
    def destination(self) -> Path:
        return self.target or self.source


class Launch:
    """One process start: ``private_file()`` first, then ``await prepare()``, spawn with ``argv``,
    ``env``, ``cwd``, ``pass_fds`` and ``umask``, ``spawned()`` right after, ``await release()`` once it ended."""

    def __init__(self, sandbox: Sandbox, dirs: AgentDirs | None) -> None:
        self._sandbox = sandbox
        self._dirs = dirs
        self._files: dict[Path, bytes] = {}
        self._fds: list[int] = []
        # Without a sandbox, private files live on disk in a directory of this launch alone.
        self._private_dir: Path | None = None
        if not sandbox.enabled:
            parent = dirs.root if dirs is not None else Path(tempfile.gettempdir())
            self._private_dir = parent / f"private-{secrets.token_hex(8)}"
        self.argv: list[str] = []
        self.env: dict[str, str] = {}
        self.cwd: Path = Path("/")
        self.pass_fds: tuple[int, ...] = ()

    @property
    def sandboxed(self) -> bool:
        return self._sandbox.enabled

    @property
    def umask(self) -> int:
        """For the process: the umask the service was started with, not its own 077 (files an agent
        writes in a repository look as the owner expects)."""
        return child_umask()

    def private_file(self, name: str, content: bytes) -> Path:
        """Where the process will find a file only it may read (call before prepare)."""
        directory = PRIVATE_DIR if self._private_dir is None else self._private_dir
        path = directory / name
        self._files[path] = content
        return path

    async def prepare(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        cwd: Path,
        binds: Sequence[Bind] = (),
        reach_url: str | None = None,
    ) -> None:
        """Fill in argv/env/cwd/pass_fds. ``reach_url``: a loopback URL the process must reach even
        with the network off (the MCP endpoint). Raises BackendError if the sandbox cannot be built."""
        self.cwd = cwd
        if not self.sandboxed:
            self.argv, self.env = list(argv), dict(env)
            if self._files:
                await asyncio.to_thread(self._write_private_files)
            return
        if self._dirs is None:
            raise BackendError("a sandboxed agent needs its own directories (AgentDirs)")
        await asyncio.to_thread(self._dirs.create)
        self.argv, self.env, self._fds = await asyncio.to_thread(
            self._sandbox._wrap, list(argv), dict(env), cwd, self._dirs, list(binds), self._files, reach_url
        )
        self.pass_fds = tuple(self._fds)

    def spawned(self) -> None:
        """The child has its copies of the descriptors now; ours go."""
        for descriptor in self._fds:
            os.close(descriptor)
        self._fds.clear()

    async def release(self) -> None:
        """After the process ended (or failed to start): remove the private files from disk."""
        self.spawned()
        if self._private_dir is not None:
            await asyncio.to_thread(shutil.rmtree, self._private_dir, True)

    def exit_code(self, returncode: int | None) -> int | None:
        """The process's exit code as if it had not been wrapped: bubblewrap reports a child killed
        by signal N as 128 + N; give it back as -N like a direct child."""
        if self.sandboxed and returncode is not None and 128 < returncode <= 128 + 64:
            return -(returncode - 128)
        return returncode

    def _write_private_files(self) -> None:
        assert self._private_dir is not None
        self._private_dir.mkdir(mode=0o700, parents=True)
        for path, content in self._files.items():
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(content)


@dataclass
class Sandbox:
    """How agents' processes are started: inside bubblewrap (``bwrap`` set) or, where the machine
    cannot, unconfined with a filtered environment. One per service; backends call ``environment()``
    and ``launch()``."""

    bwrap: Path | None = None
    version: str = ""
    # Why there is no sandbox (for the start-up line); empty when there is one.
    off_reason: str = ""
    network: bool = True
    read_only: tuple[Path, ...] = ()
    read_write: tuple[Path, ...] = ()
    # Never bound whole, nor any directory containing them: the state directory, the repositories'
    # base path, the service user's home. Nothing inside the state directory is bound either.
    protected: tuple[Path, ...] = ()
    state_dir: Path | None = None
    # The service's secrets: no child environment variable may hold one.
    forbidden_values: frozenset[str] = frozenset()
    # The service's Unix socket for the MCP endpoint, relayed into network-less sandboxes.
    mcp_socket: Path | None = None
    _system: _SystemView | None = field(default=None, repr=False)

    @classmethod
    def off(cls, reason: str = "not configured", forbidden_values: frozenset[str] = frozenset()) -> Sandbox:
        return cls(off_reason=reason, forbidden_values=forbidden_values)

    @property
    def enabled(self) -> bool:
        return self.bwrap is not None

    @property
    def uid(self) -> int:
        return os.getuid() or ROOT_SERVICE_UID

    @property
    def process_uid(self) -> int:
        """The uid an agent's process runs as: the sandbox's, or without one the service's own."""
        return self.uid if self.enabled else os.geteuid()

    @property
    def gid(self) -> int:
        return os.getgid() if os.getuid() else ROOT_SERVICE_UID

    def environment(self, *layers: Mapping[str, str], own_variables: Collection[str] | None = None) -> dict[str, str]:
        """The allow-listed service environment plus ``layers`` (see agentchat.agents.environment);
        ``own_variables``: the engine's own variables instead of Claude Code's."""
        return child_environment(*layers, forbidden_values=self.forbidden_values, own_variables=own_variables)

    def launch(self, dirs: AgentDirs | None) -> Launch:
        return Launch(self, dirs)

    def summary(self) -> str:
        """The start-up line."""
        if not self.enabled:
            return (
                f"Sandbox: off ({self.off_reason}). Agents run as this user: they get a filtered environment "
                "(no service passwords) and other local users cannot read the 0700 state directory, but an "
                "agent can read everything this user can, the state directory and other agents' repositories included"
            )
        network = "network allowed" if self.network else "network off (only the permission endpoint)"
        return (
            f"Sandbox: on ({self.version or self.bwrap}): each agent sees its repository, its own home and /tmp, "
            f"the system read-only, nothing of the state directory; uid {self.uid} inside; {network}"
        )

    # --- building the bwrap command line (blocking: runs in a thread)

    def _wrap(
        self,
        argv: list[str],
        env: dict[str, str],
        cwd: Path,
        dirs: AgentDirs,
        binds: list[Bind],
        files: dict[Path, bytes],
        reach_url: str | None,
    ) -> tuple[list[str], dict[str, str], list[int]]:
        fds: list[int] = []
        try:
            return self._arguments(argv, env, cwd, dirs, binds, files, reach_url, fds)
        except BaseException:
            for descriptor in fds:
                os.close(descriptor)
            raise

    def _arguments(
        self,
        argv: list[str],
        env: dict[str, str],
        cwd: Path,
        dirs: AgentDirs,
        binds: list[Bind],
        files: dict[Path, bytes],
        reach_url: str | None,
        fds: list[int],
    ) -> tuple[list[str], dict[str, str], list[int]]:
        assert self.bwrap is not None
        system = self._system_view()

        def data(content: bytes) -> str:
            descriptor = _memory_file(content)
            fds.append(descriptor)
            return str(descriptor)

        repo = cwd.resolve()
        self._check_repository(repo)
        args = [str(self.bwrap), "--unshare-all", "--die-with-parent", "--uid", str(self.uid), "--gid", str(self.gid)]
        if self.network:
            args.append("--share-net")
        args += system.arguments
        args += ["--ro-bind-data", data(system.passwd(self.uid, self.gid, dirs.home)), "/etc/passwd"]
        args += ["--ro-bind-data", data(system.group(self.gid)), "/etc/group"]
        args += ["--proc", "/proc", "--dev", "/dev"]
        # /tmp first: later binds below it (a repository under /tmp) must not be hidden by it.
        args += ["--bind", str(dirs.scratch), "/tmp", "--dir", "/var", "--symlink", "/tmp", "/var/tmp"]
        args += ["--bind", str(dirs.home), str(dirs.home)]
        args += ["--bind", str(repo), str(repo)]
        for path in self.read_only:
            args += ["--ro-bind-try", str(path), str(path)]
        for path in self.read_write:
            args += ["--bind-try", str(path), str(path)]
        for bind in binds:
            self._check_bind(bind.source)
            args += ["--bind" if bind.writable else "--ro-bind", str(bind.source), str(bind.destination)]
        args += ["--dir", str(PRIVATE_DIR)]
        for path, content in files.items():
            args += ["--perms", "0400", "--ro-bind-data", data(content), str(path)]
        command = list(argv)
        if not self.network and reach_url:
            command = self._relayed(command, reach_url, args)
        args += ["--chdir", str(repo), "--"]  # the real path: a symlink to it does not exist inside
        env = {**env, "HOME": str(dirs.home), "TMPDIR": "/tmp", "USER": AGENT_USER, "LOGNAME": AGENT_USER}
        return args + command, env, fds

    def _relayed(self, command: list[str], url: str, args: list[str]) -> list[str]:
        """Run ``command`` behind a relay from the URL's loopback port to the service's Unix socket."""
        if self.mcp_socket is None:
            raise BackendError("the network is off for agents, but the service has no socket to relay to")
        parts = urlsplit(url)
        if parts.hostname not in ("127.0.0.1", "::1", "localhost") or parts.port is None:
            raise BackendError(f"cannot relay {url} into the sandbox: only a loopback URL with a port")
        python = Path(os.path.realpath(sys.executable))
        prefix = Path(sys.base_prefix)
        if not python.is_relative_to(prefix):
            raise BackendError(f"cannot relay into the sandbox: {python} is not under {prefix}")
        self._check_bind(prefix)
        socket_inside = PRIVATE_DIR / "mcp.sock"
        relay_inside = PRIVATE_DIR / "relay.py"
        if not any(prefix.is_relative_to(tree) for tree in SYSTEM_TREES):
            args += ["--ro-bind", str(prefix), str(prefix)]
        args += ["--ro-bind", str(RELAY_SCRIPT), str(relay_inside), "--ro-bind", str(self.mcp_socket), str(socket_inside)]
        host = "::1" if parts.hostname == "::1" else "127.0.0.1"
        return [str(python), "-I", "-S", str(relay_inside), host, str(parts.port), str(socket_inside), "--", *command]

    def program_binds(self, program: Path) -> list[Bind]:
        """What a process needs to see to run ``program``: nothing for a system program, else the
        directory it lives in (a CLI's bundle), or only the file where that directory would show more."""
        resolved = Path(os.path.realpath(program))
        if any(resolved.is_relative_to(tree) for tree in SYSTEM_TREES):
            return []
        if self._exposes(resolved.parent):
            return [Bind(resolved)]
        return [Bind(resolved.parent)]

    def directory_binds(self, directory: Path) -> list[Bind]:
        """What a process needs to see a whole directory (an npm tree): nothing under /usr or /opt,
        else the directory, read-only (refused at prepare() if it would show a protected one)."""
        resolved = Path(os.path.realpath(directory))
        if any(resolved.is_relative_to(tree) for tree in SYSTEM_TREES):
            return []
        return [Bind(resolved)]

    def _exposes(self, path: Path) -> bool:
        """Whether binding ``path`` would show a protected directory or anything of the state directory."""
        if self.state_dir is not None and (path == self.state_dir or path.is_relative_to(self.state_dir)):
            return True
        return any(path == guarded or guarded.is_relative_to(path) for guarded in self.protected)

    def _check_bind(self, path: Path) -> None:
        if self._exposes(Path(os.path.realpath(path))):
            raise BackendError(f"{path} is not shown to agents: it would expose {self._guarded_by(path)}")

    def _check_repository(self, repo: Path) -> None:
        # A repository inside the state directory is fine (its subdirectories are not secrets);
        # one that contains it, or contains the other repositories, is not.
        if any(repo == guarded or guarded.is_relative_to(repo) for guarded in self.protected):
            raise BackendError(f"the repository {repo} contains {self._guarded_by(repo)}: the agent would see it")

    def _guarded_by(self, path: Path) -> str:
        resolved = Path(os.path.realpath(path))
        for guarded in self.protected:
            if resolved == guarded or guarded.is_relative_to(resolved):
                return str(guarded)
        return f"the state directory {self.state_dir}"

    def _system_view(self) -> _SystemView:
        if self._system is None:
            self._system = _SystemView.of_host(self._exposes)
        return self._system


@dataclass(frozen=True)
class _SystemView:
    """The read-only part of the host every sandbox shows, computed once per service."""

    arguments: tuple[str, ...]
    passwd_lines: tuple[str, ...]
    group_lines: tuple[str, ...]
    # The agent's login shell: the service user's own when the sandbox shows it (Codex runs its
    # commands with the passwd entry's shell: bash-isms must not meet dash only because of the sandbox).
    shell: str = "/bin/sh"

    @classmethod
    def of_host(cls, exposes: Callable[[Path], bool]) -> _SystemView:
        args: list[str] = []
        for tree in SYSTEM_TREES:
            if os.path.isdir(tree) and not exposes(Path(tree)):
                args += ["--ro-bind", tree, tree]
        for top in SYSTEM_TOP_LEVEL:
            if os.path.islink(top):
                args += ["--symlink", os.readlink(top), top]
            elif os.path.isdir(top):
                args += ["--ro-bind", top, top]
        args += ["--ro-bind", "/etc", "/etc"]
        args += _etc_masks(Path("/etc"))
        resolv = Path(os.path.realpath("/etc/resolv.conf"))
        if not resolv.is_relative_to("/etc") and resolv.is_file():
            # systemd-resolved: /etc/resolv.conf points into /run.
            args += ["--ro-bind", str(resolv), str(resolv)]
        passwd = _read_lines("/etc/passwd")
        own = next((line for line in passwd if _field(line, 2) == str(os.getuid())), "")
        shell = _field(own, 6)
        # A login shell (not nologin: a service account's) that the sandbox shows.
        usable = shell in _read_lines("/etc/shells") and os.access(shell, os.X_OK)
        visible = any(Path(shell).is_relative_to(top) for top in (*SYSTEM_TREES, *SYSTEM_TOP_LEVEL))
        return cls(tuple(args), passwd, _read_lines("/etc/group"), shell if usable and visible else "/bin/sh")

    def passwd(self, uid: int, gid: int, home: Path) -> bytes:
        # The uid inside is "agent", whatever the host calls that number.
        kept = [line for line in self.passwd_lines if _field(line, 2) != str(uid) and _field(line, 0) != AGENT_USER]
        kept.append(f"{AGENT_USER}:x:{uid}:{gid}:agentchat agent:{home}:{self.shell}")
        return ("\n".join(kept) + "\n").encode()

    def group(self, gid: int) -> bytes:
        kept = [line for line in self.group_lines if _field(line, 2) != str(gid) and _field(line, 0) != AGENT_USER]
        kept.append(f"{AGENT_USER}:x:{gid}:")
        return ("\n".join(kept) + "\n").encode()


def _etc_masks(etc: Path) -> list[str]:
    """bwrap arguments hiding what an ordinary local user cannot read in /etc (/etc/shadow, private
    keys, Prosody's config): the agent's uid may own them, since it is the service's uid outside."""
    args: list[str] = []
    for root, directories, files in os.walk(etc):
        for name in list(directories):
            path = os.path.join(root, name)
            try:
                mode = os.lstat(path).st_mode
            except OSError:
                continue
            if stat.S_ISDIR(mode) and (mode & 0o005) != 0o005:
                args += ["--tmpfs", path, "--remount-ro", path]
                directories.remove(name)  # nothing below it shows anyway
        for name in files:
            path = os.path.join(root, name)
            try:
                mode = os.lstat(path).st_mode
            except OSError:
                continue
            if stat.S_ISREG(mode) and not mode & 0o004:
                args += ["--ro-bind", "/dev/null", path]
    return args


def _read_lines(path: str) -> tuple[str, ...]:
    try:
        return tuple(line for line in Path(path).read_text(encoding="utf-8", errors="replace").splitlines() if line)
    except OSError:
        return ()


def _field(line: str, index: int) -> str:
    parts = line.split(":")
    return parts[index] if len(parts) > index else ""


def _memory_file(content: bytes) -> int:
    """A descriptor for bwrap's --ro-bind-data: the content in memory, read from the start."""
    descriptor = os.memfd_create("agentchat-private", os.MFD_CLOEXEC)
    try:
        view = memoryview(content)
        while view:
            written = os.write(descriptor, view)
            view = view[written:]
        os.lseek(descriptor, 0, os.SEEK_SET)
    except OSError:
        os.close(descriptor)
        raise
    return descriptor


async def open_sandbox(
    settings: SandboxSettings,
    *,
    state_dir: Path,
    protected: Sequence[Path],
    forbidden_values: frozenset[str] = frozenset(),
    mcp_socket: Path | None = None,
) -> Sandbox:
    """The service's sandbox: bubblewrap if it works here (it is tried once), else off with the reason.

    Raises ConfigError when ``enabled`` is true and it does not work, or when an extra bind would
    show the state directory, the repositories' base path or the service user's home.
    """
    state = Path(os.path.realpath(state_dir))
    guarded = tuple(dict.fromkeys(Path(os.path.realpath(path)) for path in (state, *protected)))
    if settings.enabled is False:
        return Sandbox.off("agents.sandbox.enabled is false", forbidden_values)
    found = shutil.which(settings.binary)
    reason = ""
    if found is None:
        reason = f"{settings.binary} not found: install bubblewrap (apt install bubblewrap)"
    else:
        reason = await _probe(Path(found), settings.network)
    if reason:
        if settings.enabled:
            raise ConfigError(f"agents.sandbox.enabled is true but the sandbox cannot work here: {reason}")
        return Sandbox.off(reason, forbidden_values)
    assert found is not None
    sandbox = Sandbox(
        bwrap=Path(found),
        version=await _version(Path(found)),
        network=settings.network,
        read_only=tuple(settings.read_only),
        read_write=tuple(settings.read_write),
        protected=guarded,
        state_dir=state,
        forbidden_values=forbidden_values,
        mcp_socket=mcp_socket,
    )
    for name, paths in (("readOnly", settings.read_only), ("readWrite", settings.read_write)):
        for path in paths:
            if sandbox._exposes(Path(os.path.realpath(path))):
                raise ConfigError(
                    f"agents.sandbox.{name}: {path} would show agents {sandbox._guarded_by(path)}; bind something narrower"
                )
    # /etc is walked once, off the event loop.
    await asyncio.to_thread(sandbox._system_view)
    return sandbox


async def _version(bwrap: Path) -> str:
    try:
        process = await asyncio.create_subprocess_exec(
            str(bwrap), "--version", stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        out, _ = await asyncio.wait_for(process.communicate(), 10)
    except (OSError, TimeoutError):
        return ""
    return out.decode("utf-8", "replace").strip()


async def _probe(bwrap: Path, network: bool) -> str:
    """Empty if a minimal sandbox with our namespaces starts here, else bubblewrap's reason."""
    true = shutil.which("true") or "/bin/true"
    args = [str(bwrap), "--unshare-all", "--die-with-parent", "--uid", str(os.getuid() or ROOT_SERVICE_UID)]
    if network:
        args.append("--share-net")
    args += ["--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev", true]
    try:
        process = await asyncio.create_subprocess_exec(
            *args, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE, start_new_session=True,
        )
        _, stderr = await asyncio.wait_for(process.communicate(), 10)
    except (OSError, TimeoutError) as exc:
        return f"cannot run {bwrap}: {exc}"
    if process.returncode != 0:
        text = stderr.decode("utf-8", "replace").strip().splitlines()
        return f"bubblewrap cannot create its namespaces here ({text[-1] if text else f'exit {process.returncode}'})"
    return ""

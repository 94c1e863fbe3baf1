"""The Prosody 0.12 configuration: typed parameters rendered through ``prosody/prosody.cfg.lua.tmpl``.

This is the one code path that writes a Prosody config, for the embedded server, the test
harness and the Docker image (``python -m agentchat.server.prosody_config --help``).
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import os
import re
import secrets
import sys
import sysconfig
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from string import Template
from typing import Literal

from agentchat.errors import ProsodyError
from agentchat.state_dir import current_umask

TEMPLATE_NAME = "prosody.cfg.lua.tmpl"
MODULES_DIR_NAME = "modules"
PROSODY_DIR_ENV = "AGENTCHAT_PROSODY_DIR"

_DOMAIN_RE = re.compile(r"^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$")
_BARE_JID_RE = re.compile(r"^[^@/\s\"'<>&:]+@[^@/\s]+$")
_RATE_RE = re.compile(r"^\d+ ?[bkmgtBKMGT][a-zA-Z]*/s$")
HUMAN_RATE = "1mb/s"


def prosody_files_dir() -> Path:
    """Where the template and our Lua modules live.

    Order: ``$AGENTCHAT_PROSODY_DIR``; the ``prosody/`` folder of a source checkout (and of an
    editable install); the copy a wheel installs as data files (``<prefix>/share/agentchat/prosody``);
    package data (``agentchat/_prosody``) if a build ever ships it there.
    """
    candidates: list[Path] = []
    if os.environ.get(PROSODY_DIR_ENV):
        candidates.append(Path(os.environ[PROSODY_DIR_ENV]))
    candidates.append(Path(__file__).resolve().parents[2] / "prosody")
    candidates.append(Path(sysconfig.get_path("data")) / "share" / "agentchat" / "prosody")
    candidates.append(Path(sys.prefix) / "share" / "agentchat" / "prosody")
    candidates.append(Path(__file__).resolve().parents[1] / "_prosody")
    for candidate in candidates:
        if (candidate / TEMPLATE_NAME).is_file():
            return candidate
    # Zipped or otherwise unusual installs: ask importlib for the package data.
    try:
        shipped = resources.files("agentchat") / "_prosody"
        if (shipped / TEMPLATE_NAME).is_file() and isinstance(shipped, Path):
            return shipped
    except (OSError, TypeError, ValueError):
        pass
    raise ProsodyError(
        f"cannot find {TEMPLATE_NAME}: looked in {', '.join(str(c) for c in candidates)} "
        f"(set {PROSODY_DIR_ENV} to the folder holding it)"
    )


def default_modules_dir() -> Path:
    return prosody_files_dir() / MODULES_DIR_NAME


def is_loopback_interface(interface: str) -> bool:
    if interface == "localhost":
        return True
    try:
        return ipaddress.ip_address(interface).is_loopback
    except ValueError:
        return False  # "*" and host names are not provably local


@dataclass(frozen=True)
class ProsodyConfigParams:
    """Everything that varies between Prosody instances; all paths are derived from run_dir."""

    domain: str
    run_dir: Path
    c2s_port: int = 5222
    # Where c2s (and direct TLS) listen: loopback by default; "*" and "::" for every IPv4/IPv6 address.
    c2s_interfaces: tuple[str, ...] = ("127.0.0.1",)
    c2s_direct_tls_port: int | None = None
    http_port: int = 5280
    http_interface: str = "127.0.0.1"
    # Bare JIDs allowed to run XEP-0133 commands and mod_admin_rest; also never throttled.
    admins: tuple[str, ...] = ()
    # Accounts the service creates at run time; looked at every login, parsed when changed (see ServiceJids).
    service_jids_file: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    # Unencrypted c2s. Refused unless c2s listens on loopback only.
    allow_plaintext: bool = True
    # mod_posix refuses to run as root and then hangs, unless told (pitfall G1).
    run_as_root: bool = field(default_factory=lambda: os.geteuid() == 0)
    log_file: Path | None = None
    log_level: Literal["debug", "info", "warn", "error"] = "info"
    # MAM with internal storage collapses past 10,000 messages per user (pitfall G8): off by
    # default; "memory" for tests, "sql" (needs lua-dbi-sqlite3) for heavy production use.
    mam: bool = False
    archive_store: Literal["internal", "memory", "sql"] = "internal"
    archive_expires_after: str = "1w"
    # mod_limits' read rate for people's c2s connections (service accounts are never throttled).
    # Prosody's own 10kb/s made a 100 kB paste wait 10 s; this lets a 1 MB log through in about 1 s.
    c2s_rate: str = HUMAN_RATE
    modules_dir: Path | None = None
    # Optional extras: mod_groups roster file, a MUC component.
    groups_file: Path | None = None
    # Rooms (XEP-0045 at rooms.DOMAIN, archived with mod_muc_mam): on unless turned off.
    muc: bool = True
    # XEP-0363 uploads (mod_http_file_share as upload.DOMAIN): files between people and agents, both ways.
    # Prosody's own defaults: 10 MiB a file, 100 MiB per user and day, kept a week.
    http_upload: bool = True
    http_upload_size_limit: int = 10 * 1024 * 1024
    http_upload_daily_quota: int = 100 * 1024 * 1024
    http_upload_expires_after: int = 7 * 24 * 3600
    # HTTPS with the c2s certificate (the web client and uploads, for other machines) on this port and
    # these interfaces (default: c2s's). A browser elsewhere needs it: plain http is a secure context
    # only for localhost, and Converse's SCRAM login fails outside one.
    https_port: int | None = None
    https_interfaces: tuple[str, ...] = ()
    # The web client's folder (index.html, its scripts, Converse's dist/), served at "/" together with
    # WebSocket (/xmpp-websocket) and BOSH (/http-bind); see agentchat.server.web_client.
    web_root: Path | None = None

    def __post_init__(self) -> None:
        if not _DOMAIN_RE.match(self.domain):
            raise ProsodyError(f"invalid XMPP domain {self.domain!r}")
        ports = [("c2s_port", self.c2s_port), ("http_port", self.http_port)]
        if self.c2s_direct_tls_port is not None:
            ports.append(("c2s_direct_tls_port", self.c2s_direct_tls_port))
        if self.https_port is not None:
            ports.append(("https_port", self.https_port))
        for name, port in ports:
            if not 1 <= port <= 65535:
                raise ProsodyError(f"{name} must be between 1 and 65535, got {port}")
        if len({port for _, port in ports}) != len(ports):
            raise ProsodyError(f"Prosody ports must differ: {dict(ports)}")
        if not self.c2s_interfaces:
            raise ProsodyError("c2s needs at least one interface")
        public = [i for i in self.c2s_interfaces if not is_loopback_interface(i)]
        if self.allow_plaintext and public:
            raise ProsodyError(
                f"plaintext c2s is only allowed on loopback, not on {public[0]!r}: "
                "give a TLS certificate and set allow_plaintext to false"
            )
        if public and self.tls_cert is None:
            raise ProsodyError(f"c2s on {public[0]!r} needs tls_cert and tls_key: clients there must use TLS")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ProsodyError("tls_cert and tls_key go together")
        if self.c2s_direct_tls_port is not None and self.tls_cert is None:
            raise ProsodyError("a direct-TLS port needs tls_cert and tls_key")
        if self.https_port is not None and self.tls_cert is None:
            raise ProsodyError("an HTTPS port needs tls_cert and tls_key")
        for jid in self.admins:
            if not _BARE_JID_RE.match(jid):
                raise ProsodyError(f"admin {jid!r} is not a bare JID")
        if not _RATE_RE.match(self.c2s_rate):
            raise ProsodyError(f"c2s_rate must look like '10kb/s', got {self.c2s_rate!r}")

    @property
    def data_dir(self) -> Path:
        return self.run_dir / "data"

    @property
    def certificates_dir(self) -> Path:
        return self.run_dir / "certs"

    @property
    def pidfile(self) -> Path:
        return self.run_dir / "prosody.pid"

    @property
    def admin_socket(self) -> Path:
        return self.run_dir / "prosody.sock"

    @property
    def config_path(self) -> Path:
        return self.run_dir / "prosody.cfg.lua"

    @property
    def effective_log_file(self) -> Path:
        return self.log_file or self.run_dir / "prosody.log"

    @property
    def effective_service_jids_file(self) -> Path:
        return self.service_jids_file or self.run_dir / "service-jids.txt"

    @property
    def tombstones_file(self) -> Path:
        """Next to the service-JIDs file: the service finds one from the other (see Tombstones)."""
        return tombstones_path(self.effective_service_jids_file)

    @property
    def http_base_url(self) -> str:
        return f"http://{_url_host(self.http_interface)}:{self.http_port}"

    @property
    def effective_https_interfaces(self) -> tuple[str, ...]:
        if self.https_port is None:
            return ()
        return self.https_interfaces or self.c2s_interfaces

    @property
    def external_url(self) -> str:
        """Where clients reach this HTTP server (``http_external_url``: upload slots, the web client):
        HTTPS under the domain when it is served beyond loopback, else ``localhost`` on the loopback
        port (a secure context for browsers, and the web page's own origin: no CORS for uploads)."""
        if any(not is_loopback_interface(i) for i in self.effective_https_interfaces):
            return f"https://{self.domain}:{self.https_port}/"
        if self.http_interface in ("127.0.0.1", "localhost"):
            return f"http://localhost:{self.http_port}/"
        return self.http_base_url + "/"

    @property
    def upload_url(self) -> str | None:
        """The prefix of every upload's URL (XEP-0363 GET URLs), None without uploads."""
        return self.external_url + "file_share/" if self.http_upload else None

    @property
    def local_upload_url(self) -> str | None:
        """The same files through the loopback HTTP port: how the service itself fetches and puts them."""
        return self.http_base_url + "/file_share/" if self.http_upload else None


def render_prosody_config(params: ProsodyConfigParams) -> str:
    """The config text for these parameters (no file is touched but the template)."""
    template = Template((prosody_files_dir() / TEMPLATE_NAME).read_text(encoding="utf-8"))
    modules_dir = params.modules_dir or default_modules_dir()
    try:
        return template.substitute(
            run_as_root_line="run_as_root = true -- we are root; mod_posix refuses root otherwise"
            if params.run_as_root
            else "-- not root: no run_as_root",
            pidfile=lua_str(params.pidfile),
            data_path=lua_str(params.data_dir),
            admin_socket=lua_str(params.admin_socket),
            certificates_dir=lua_str(params.certificates_dir),
            log_level=params.log_level,
            log_file=lua_str(params.effective_log_file),
            modules_dir=lua_str(modules_dir),
            c2s_interfaces=lua_list(params.c2s_interfaces),
            c2s_port=str(params.c2s_port),
            c2s_direct_tls_ports="" if params.c2s_direct_tls_port is None else str(params.c2s_direct_tls_port),
            http_interface=lua_str(params.http_interface),
            http_port=str(params.http_port),
            https_interfaces=lua_list(params.effective_https_interfaces),
            https_ports="" if params.https_port is None else str(params.https_port),
            https_ssl_line=(
                f"https_ssl = {{ certificate = {lua_str(params.tls_cert)}; key = {lua_str(params.tls_key)} }}"
                if params.https_port is not None and params.tls_cert and params.tls_key
                else "-- no https_ssl: no HTTPS port"
            ),
            http_external_url=lua_str(params.external_url),
            web_lines=_web_lines(params),
            domain=lua_str(params.domain),
            admins=lua_list(params.admins),
            extra_modules=_extra_modules(params),
            storage_lines=_storage_lines(params),
            encryption_lines=_encryption_lines(params),
            ssl_line=(
                f"ssl = {{ certificate = {lua_str(params.tls_cert)}; key = {lua_str(params.tls_key)} }}"
                if params.tls_cert and params.tls_key
                else "-- no ssl: certificates are looked up in the certificates dir"
            ),
            c2s_rate=lua_str(params.c2s_rate),
            unlimited_jids=lua_list(params.admins),
            service_jids_file=lua_str(params.effective_service_jids_file),
            tombstones_file=lua_str(params.tombstones_file),
            groups_line=f"groups_file = {lua_str(params.groups_file)}" if params.groups_file else "",
            components=_components(params),
        )
    except (KeyError, ValueError) as exc:
        raise ProsodyError(f"{TEMPLATE_NAME} has an unknown or malformed placeholder: {exc}") from None


def write_prosody_config(params: ProsodyConfigParams, path: Path | None = None) -> Path:
    """Create the run, data and certificates dirs and write the config atomically; return its path.

    Blocking file I/O: call it before the event loop runs or through ``asyncio.to_thread``.
    """
    target = path or params.config_path
    text = render_prosody_config(params)
    try:
        for directory in (params.run_dir, params.data_dir, params.certificates_dir):
            directory.mkdir(parents=True, exist_ok=True, mode=0o750)
        # Readable by others only where the umask allows it: agentchat itself runs with 077.
        atomic_write_text(target, text, mode=0o644 & ~current_umask())
    except OSError as exc:
        raise ProsodyError(f"cannot write the Prosody config {target}: {exc}") from exc
    return target


class ServiceJids:
    """The service-JIDs file that mod_agentchat_unthrottle looks at at every login (parsed again when its version changed).

    This object is the file's one writer: it serialises updates and replaces the file
    atomically, so Prosody never reads half a file. Add a JID *before* the account logs in.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = asyncio.Lock()

    def read(self) -> set[str]:
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return set()
        return {line.split("#", 1)[0].strip() for line in lines} - {""}

    async def add(self, *jids: str) -> None:
        await self._update(add=jids)

    async def remove(self, *jids: str) -> None:
        await self._update(remove=jids)

    async def _update(self, add: Iterable[str] = (), remove: Iterable[str] = ()) -> None:
        for jid in add:
            if not _BARE_JID_RE.match(jid):
                raise ProsodyError(f"service JID {jid!r} is not a bare JID")
        async with self._lock:
            await asyncio.to_thread(self._rewrite, {j.lower() for j in add}, {j.lower() for j in remove})

    def _rewrite(self, add: set[str], remove: set[str]) -> None:
        current = self.read()
        jids = (current | add) - remove
        if jids == current and self.path.exists():
            return  # nothing changes: no write, no fsync (a restart adds every JID again)
        # A new version token at every rewrite: mod_agentchat_unthrottle re-parses the file only when it changed.
        text = f"# agentchat service accounts: not throttled by mod_limits. Written by agentchat, version {secrets.token_hex(8)}\n"
        atomic_write_text(self.path, text + "".join(f"{jid}\n" for jid in sorted(jids)), mode=0o644 & ~current_umask())


def rooms_service(domain: str) -> str:
    """The address of the rooms the generated config serves (XEP-0045)."""
    return f"rooms.{domain}"


def tombstones_path(service_jids_file: Path) -> Path:
    return service_jids_file.with_name("tombstones.txt")


class Tombstones:
    """The file of ended agents that mod_agentchat_tombstones reads: "jid<TAB>time<TAB>text" per line.

    Its one writer, like ServiceJids: updates are serialised and the file replaced atomically.
    """

    # Ended agents are remembered this long (a message to one after that gets Prosody's bare bounce).
    KEEP_SECONDS = 30 * 24 * 3600

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = asyncio.Lock()

    def read(self) -> dict[str, tuple[float, str]]:
        """jid -> (when it was ended, the text)."""
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return {}
        entries: dict[str, tuple[float, str]] = {}
        for line in lines:
            if line.startswith("#") or line.count("\t") < 2:
                continue
            jid, when, text = line.split("\t", 2)
            try:
                entries[jid] = (float(when), text)
            except ValueError:
                continue
        return entries

    async def add(self, jid: str, text: str, now: float) -> None:
        async with self._lock:
            await asyncio.to_thread(self._rewrite, {jid.lower(): (now, " ".join(text.split()))}, set(), now)

    async def remove(self, jid: str) -> None:
        async with self._lock:
            await asyncio.to_thread(self._rewrite, {}, {jid.lower()}, None)

    def _rewrite(self, add: dict[str, tuple[float, str]], remove: set[str], now: float | None) -> None:
        current = self.read()
        if not add and not remove & current.keys():
            return  # a name given for the first time was never ended: nothing to write (every creation asks)
        entries = {**current, **add}
        for jid in remove:
            entries.pop(jid, None)
        if now is not None:
            entries = {jid: entry for jid, entry in entries.items() if now - entry[0] <= self.KEEP_SECONDS}
        text = "# agentchat: ended agents (jid, time, what a message to them is answered). Written by agentchat.\n"
        body = "".join(f"{jid}\t{when:.0f}\t{message}\n" for jid, (when, message) in sorted(entries.items()))
        atomic_write_text(self.path, text + body, mode=0o644)


def atomic_write_text(path: Path, text: str, mode: int = 0o600) -> None:
    """Write temp file + fsync + rename, so readers see the old or the new file, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # make the rename itself durable
    finally:
        os.close(dir_fd)


def lua_str(value: object) -> str:
    """A Lua string literal for any str()-able value."""
    text = str(value)
    out = []
    for char in text:
        if char in ('"', "\\"):
            out.append("\\" + char)
        elif char == "\n":
            out.append("\\n")
        elif ord(char) < 32 or ord(char) == 127:
            out.append(f"\\{ord(char):03d}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def lua_list(values: Iterable[object]) -> str:
    return "; ".join(lua_str(v) for v in values)


def _url_host(interface: str) -> str:
    if interface in ("*", "0.0.0.0", "::"):
        return "127.0.0.1"
    return f"[{interface}]" if ":" in interface else interface


def _extra_modules(params: ProsodyConfigParams) -> str:
    extra: list[str] = []
    if params.mam:
        extra.append("mam")
    if params.groups_file:
        extra.append("groups")
    if params.web_root is not None:
        extra += ["bosh", "websocket", "http_files"]
    return "".join(f"    {lua_str(name)};\n" for name in extra)


def _storage_lines(params: ProsodyConfigParams) -> str:
    if not params.mam:
        return 'storage = "internal"'
    lines = [
        f"archive_expires_after = {lua_str(params.archive_expires_after)}",
        "default_archive_policy = true",
    ]
    if params.archive_store == "internal":
        lines.insert(0, 'storage = "internal"')
    elif params.archive_store == "memory":
        lines.insert(0, 'default_storage = "internal"\nstorage = { archive = "memory" }')
    else:
        sqlite = params.data_dir / "prosody.sqlite"
        lines.insert(0, f'default_storage = "internal"\nstorage = {{ archive = "sql" }}\n'
                     f'sql = {{ driver = "SQLite3"; database = {lua_str(sqlite)} }}')
    return "\n".join(lines)


def _encryption_lines(params: ProsodyConfigParams) -> str:
    if params.allow_plaintext:
        return "c2s_require_encryption = false -- loopback only (checked when the config was rendered)"
    return "c2s_require_encryption = true"


def _web_lines(params: ProsodyConfigParams) -> str:
    if params.web_root is None:
        return "-- no web client (agentchat.server.web_client found no Converse.js)\n"
    lines = [
        "-- The web client (Converse.js, agentchat.server.web_client) and how it speaks XMPP over HTTP.",
        f"http_files_dir = {lua_str(params.web_root)}",
        'http_paths = { files = "/"; bosh = "/http-bind"; websocket = "/xmpp-websocket" }',
    ]
    if not params.allow_plaintext and is_loopback_interface(params.http_interface):
        # TLS is required for c2s; plain HTTP only listens on loopback (HTTPS is TLS anyway).
        lines.append("consider_websocket_secure = true; consider_bosh_secure = true -- plain http is loopback only")
    return "\n".join(lines) + "\n"


def _components(params: ProsodyConfigParams) -> str:
    blocks: list[str] = []
    if params.muc:
        blocks.append(
            f'Component {lua_str(rooms_service(params.domain))} "muc"\n'
            '    modules_enabled = { "muc_mam" }  -- rooms keep an archive (XEP-0313): history on a new device\n'
            '    restrict_room_creation = "local"  -- accounts of this server may create rooms, nobody else\n'
            "    max_history_messages = 200       -- what a room hands an occupant that joins again\n"
            "    muc_log_by_default = true\n"
        )
    if params.http_upload:
        blocks.append(
            f'Component {lua_str("upload." + params.domain)} "http_file_share"\n'
            # Serve under the main host: a component http_host of its own breaks the default-host
            # fallback for every other HTTP module (pitfall G9).
            f"    http_host = {lua_str(params.domain)}\n"
            f"    http_file_share_size_limit = {params.http_upload_size_limit}\n"
            f"    http_file_share_daily_quota = {params.http_upload_daily_quota}\n"
            f"    http_file_share_expires_after = {params.http_upload_expires_after}\n"
        )
    return "\n".join(blocks)


def main(argv: Sequence[str] | None = None) -> int:
    """Write a config from the command line (used by the Docker image)."""
    parser = argparse.ArgumentParser(prog="python -m agentchat.server.prosody_config", description=main.__doc__)
    parser.add_argument("--domain", required=True)
    parser.add_argument("--run-dir", type=Path, required=True)
    parser.add_argument("--output", type=Path, help="default: RUN_DIR/prosody.cfg.lua")
    parser.add_argument("--c2s-interface", action="append", help="repeatable; default: 127.0.0.1")
    parser.add_argument("--c2s-port", type=int, default=5222)
    parser.add_argument("--c2s-direct-tls-port", type=int)
    parser.add_argument("--http-interface", default="127.0.0.1")
    parser.add_argument("--http-port", type=int, default=5280)
    parser.add_argument("--admin", action="append", default=[], help="bare admin JID (repeatable)")
    parser.add_argument("--service-jids-file", type=Path)
    parser.add_argument("--tls-cert", type=Path)
    parser.add_argument("--tls-key", type=Path)
    parser.add_argument("--no-plaintext", action="store_true", help="require TLS on c2s")
    parser.add_argument("--log-file", type=Path)
    parser.add_argument("--c2s-rate", default=HUMAN_RATE, help="people's c2s read rate (mod_limits), e.g. 1mb/s")
    parser.add_argument("--mam", action="store_true")
    parser.add_argument("--archive-store", choices=["internal", "memory", "sql"], default="internal")
    parser.add_argument("--modules-dir", type=Path)
    parser.add_argument("--https-port", type=int, help="HTTPS (web client, uploads) with the TLS certificate")
    parser.add_argument("--web-root", type=Path, help="the web client's folder (python -m agentchat.server.web_client)")
    parser.add_argument("--run-as-root", action=argparse.BooleanOptionalAction, default=None,
                        help="default: whether this command runs as root")
    args = parser.parse_args(argv)
    try:
        params = ProsodyConfigParams(
            domain=args.domain,
            run_dir=args.run_dir,
            c2s_interfaces=tuple(args.c2s_interface or ("127.0.0.1",)),
            c2s_port=args.c2s_port,
            c2s_direct_tls_port=args.c2s_direct_tls_port,
            http_interface=args.http_interface,
            http_port=args.http_port,
            admins=tuple(args.admin),
            service_jids_file=args.service_jids_file,
            tls_cert=args.tls_cert,
            tls_key=args.tls_key,
            allow_plaintext=not args.no_plaintext,
            log_file=args.log_file,
            mam=args.mam,
            c2s_rate=args.c2s_rate,
            archive_store=args.archive_store,
            modules_dir=args.modules_dir,
            https_port=args.https_port,
            web_root=args.web_root,
            **({} if args.run_as_root is None else {"run_as_root": args.run_as_root}),
        )
        print(write_prosody_config(params, args.output))
    except ProsodyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

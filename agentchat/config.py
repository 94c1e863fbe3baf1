"""Configuration: one typed model, loaded from config.json < .env < environment < command-line flags.

The JSON file uses the camelCase names of the original design (``work.basePath``,
``agents.maxConcurrent``); environment variables use the original design's names (``XMPP_HOST`` …).
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
from collections.abc import Collection
from pathlib import Path
from typing import Any, Literal

from dotenv import dotenv_values
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_camel

from agentchat.errors import ConfigError

DEFAULT_HOME = Path("~/.agent-chat")


def state_home(environ: dict[str, str] | None = None) -> Path:
    """The state directory: ``AGENTCHAT_HOME`` or ``~/.agent-chat``."""
    env = os.environ if environ is None else environ
    return Path(env.get("AGENTCHAT_HOME") or DEFAULT_HOME).expanduser()


class Section(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class XmppSettings(Section):
    host: str = "localhost"
    port: int = Field(5222, ge=1, le=65535)
    domain: str = "localhost"
    admin_username: str = "admin"
    admin_password: SecretStr | None = None
    # Unset: plaintext to a loopback host, STARTTLS otherwise. "plain" is refused for any other host.
    security: Literal["plain", "starttls", "directtls"] = "plain"
    # Unset: verify the server's certificate unless the host is loopback.
    verify_tls: bool = False
    # A CA bundle, or the server's own certificate (pinned), trusted besides the system's CAs.
    ca_file: Path | None = None
    # How long a bot waits before its first reconnect attempt; each failed attempt waits 1.5 times longer,
    # up to reconnect_max_interval. Each attempt may take connect_timeout (a slow link needs it).
    reconnect_interval: float = Field(0.5, gt=0, le=60)
    reconnect_max_interval: float = Field(30.0, gt=0, le=3600)
    connect_timeout: float = Field(20.0, gt=0, le=600)

    @field_validator("domain", "host", "admin_username")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value.strip()

    @model_validator(mode="after")
    def _secure_by_default(self) -> XmppSettings:
        loopback = is_loopback_host(self.host)
        if "security" not in self.model_fields_set:
            self.security = "plain" if loopback else "starttls"
        if "verify_tls" not in self.model_fields_set:
            self.verify_tls = not loopback
        if self.security == "plain" and not loopback:
            raise ValueError(
                f"plaintext XMPP is only allowed to a loopback host, not to {self.host!r}: "
                'set "security" to "starttls" or "directtls"'
            )
        return self

    @property
    def admin_jid(self) -> str:
        return f"{self.admin_username}@{self.domain}"


class ManagerSettings(Section):
    username: str = "manager"
    password: SecretStr | None = None
    # Bare JIDs or "*@domain" patterns; empty means every bare JID of the configured domain.
    allowed_users: list[str] = Field(default_factory=list)


class McpSettings(Section):
    host: Literal["127.0.0.1", "::1", "localhost"] = "127.0.0.1"
    port: int = Field(3001, ge=0, le=65535)
    permission_timeout: int = Field(300_000, gt=0, description="milliseconds")


class WorkSettings(Section):
    base_path: Path = Field(Path("~/work"), validate_default=True)

    @field_validator("base_path")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return value.expanduser()


class CommandBackendSettings(Section):
    """A CLI run once per message: its reply is what it prints on stdout."""

    label: str
    command: list[str] = Field(min_length=1)
    prompt_via: Literal["stdin", "argument"] = "stdin"
    timeout: int = Field(600_000, gt=0, description="milliseconds per message")
    env: dict[str, str] = Field(default_factory=dict)


class ClaudeSettings(Section):
    path: str | None = None
    model: str | None = None
    extra_args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    # Whether `mode bypassPermissions` (every tool runs without asking) may be chosen from the chat.
    allow_bypass_permissions: bool = False


class EngineSettings(Section):
    """An optional engine (Codex, Gemini CLI, OpenCode): where it is, which model and provider it uses."""

    # The executable; None: on PATH, else in the project's prefix (make install-engines).
    path: str | None = None
    model: str | None = None
    # The model provider's API endpoint (a proxy, a gateway, or a local mock); None: the engine's default.
    base_url: str | None = None
    env: dict[str, str] = Field(default_factory=dict)
    extra_args: list[str] = Field(default_factory=list)


class CodexSettings(EngineSettings):
    # The environment variable holding the provider's API key.
    env_key: str = "OPENAI_API_KEY"
    # What Codex may do without asking: "read-only" asks before every file change and every command
    # run outside its sandbox; "workspace-write" writes in the repository without asking.
    sandbox: Literal["read-only", "workspace-write"] = "read-only"


class OpencodeSettings(EngineSettings):
    # The models.dev provider id whose options (baseURL) agentchat sets: anthropic, openai, …
    provider: str = "anthropic"


class SandboxSettings(Section):
    """The bubblewrap sandbox every agent's process runs in (agentchat.agents.sandbox)."""

    # None: on where bubblewrap works, off with a warning elsewhere; true: refuse to start without it.
    enabled: bool | None = None
    network: bool = True
    # More of the machine for every agent to see: read-only, or read-write (at the same paths).
    read_only: list[Path] = Field(default_factory=list)
    read_write: list[Path] = Field(default_factory=list)
    binary: str = "bwrap"

    @field_validator("read_only", "read_write")
    @classmethod
    def _absolute(cls, paths: list[Path]) -> list[Path]:
        expanded = [path.expanduser() for path in paths]
        for path in expanded:
            if not path.is_absolute():
                raise ValueError(f"{str(path)!r} is not an absolute path")
        return expanded


class AgentSettings(Section):
    max_concurrent: int = Field(5, ge=1)
    idle_timeout: int = Field(3_600_000, gt=0, description="milliseconds")
    claude: ClaudeSettings = Field(default_factory=ClaudeSettings)
    codex: CodexSettings = Field(default_factory=CodexSettings)
    gemini: EngineSettings = Field(default_factory=EngineSettings)
    opencode: OpencodeSettings = Field(default_factory=OpencodeSettings)
    command_backends: dict[str, CommandBackendSettings] = Field(default_factory=dict)
    sandbox: SandboxSettings = Field(default_factory=SandboxSettings)

    def engine_envs(self) -> list[dict[str, str]]:
        """The extra environments of every configured CLI (their values may be credentials)."""
        return [self.claude.env, self.codex.env, self.gemini.env, self.opencode.env,
                *(backend.env for backend in self.command_backends.values())]


class ProvisioningSettings(Section):
    method: Literal["admin_rest", "adhoc"] = "admin_rest"
    # Base URL of mod_admin_rest; None means http://127.0.0.1:{prosody.httpPort}/admin_rest.
    admin_rest_url: str | None = None


class ProsodySettings(Section):
    """The embedded Prosody (``agentchat start --embedded-prosody``)."""

    binary: str = "prosody"
    http_port: int = Field(5280, ge=1, le=65535)
    # Serve phones: c2s on ``interfaces`` with TLS required (``--public``); else loopback only.
    public: bool = False
    interfaces: list[str] = Field(default_factory=lambda: ["*", "::"], min_length=1)
    # XEP-0368 direct TLS (TLS from the first byte) on this port as well, e.g. 5223; none by default.
    direct_tls_port: int | None = Field(None, ge=1, le=65535)
    # The certificate to serve: your own (both files), a Let's Encrypt live directory
    # (fullchain.pem + privkey.pem), or neither: a self-signed one is generated under home/tls.
    certificate: Path | None = None
    key: Path | None = None
    letsencrypt_dir: Path | None = None
    # The file of service JIDs that our Prosody module exempts from rate limits; the embedded
    # server sets its own. With an external Prosody, point it at that server's file.
    service_jids_file: Path | None = None
    # With public: HTTPS for browsers and phones (the web client, uploads), with the c2s certificate.
    https_port: int = Field(5281, ge=1, le=65535)
    # Serve the web client (Converse.js, when `make install` could fetch it) at Prosody's HTTP(S) port.
    web_client: bool = True
    # How fast a person's client may send (mod_limits' c2s rate, 2 s of burst); service accounts are
    # never throttled. Prosody's own 10kb/s made a 100 kB paste wait 10 s.
    human_rate: str = "1mb/s"

    @field_validator("human_rate")
    @classmethod
    def _a_rate(cls, value: str) -> str:
        if not re.match(r"^\d+ ?[bkmgtBKMGT][a-zA-Z]*/s$", value):
            raise ValueError(f"{value!r} is not a rate: a number of bytes a second such as \"1mb/s\" or \"256kb/s\"")
        return value


class FilesSettings(Section):
    """Files between a person and an agent, both ways (XEP-0363 uploads through Prosody)."""

    # Where a received file is saved, relative to the agent's repository (git-ignored there).
    inbox_folder: str = ".agentchat/inbox"
    # The largest file taken from the chat or sent to it, in bytes (Prosody's upload limit by default).
    max_size: int = Field(10 * 1024 * 1024, gt=0)
    # Files are taken from URLs under this prefix only: the server's own upload service
    # (http_file_share). --embedded-prosody sets it; unset, received files are refused.
    upload_url: str | None = None
    # How the service itself reaches those URLs (the same server over loopback); unset: upload_url.
    local_upload_url: str | None = None

    @field_validator("inbox_folder")
    @classmethod
    def _inside_the_repository(cls, value: str) -> str:
        parts = Path(value).parts
        if not value.strip() or Path(value).is_absolute() or ".." in parts or any(ord(c) < 32 for c in value):
            raise ValueError("must be a relative folder inside the repository (no '..')")
        return value.strip().strip("/")

    @field_validator("upload_url", "local_upload_url")
    @classmethod
    def _a_folder_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value if value.endswith("/") else value + "/"


class RoomSettings(Section):
    """Rooms (XEP-0045): people and several agents in one group chat."""

    enabled: bool = True
    # The MUC service's address; None: rooms.<xmpp.domain>, which the generated Prosody config serves.
    service: str | None = None
    # Agents handing a message on to each other: how many hops before it stops (a person's message resets it).
    chain_limit: int = Field(5, ge=1, le=50)
    # Messages from agents that one room turns into turns per minute, at most.
    agent_messages_per_minute: int = Field(30, ge=1, le=10_000)
    # Room lines before a mention that go to the agent with it, as context.
    context_lines: int = Field(5, ge=0, le=50)


class RunnersSettings(Section):
    """The hub's side of runners (other machines: agentchat.runners.hub)."""

    # How often each runner is asked how it is, and how long its answer may take (two missed: offline).
    ping_interval: float = Field(10.0, gt=0, le=3600)
    ping_timeout: float = Field(10.0, gt=0, le=600)
    # Creating or ending an agent on a runner (its login included).
    request_timeout: float = Field(60.0, gt=0, le=3600)


class RunnerSettings(Section):
    """A runner's side (`agentchat runner start`): its account on the hub's server, and the hub's JID."""

    jid: str | None = None
    password: SecretStr | None = None
    hub: str | None = None  # the manager's JID; default manager@<the JID's domain>


class LoggingSettings(Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


class Settings(Section):
    xmpp: XmppSettings = Field(default_factory=XmppSettings)
    manager: ManagerSettings = Field(default_factory=ManagerSettings)
    mcp: McpSettings = Field(default_factory=McpSettings)
    work: WorkSettings = Field(default_factory=WorkSettings)
    agents: AgentSettings = Field(default_factory=AgentSettings)
    provisioning: ProvisioningSettings = Field(default_factory=ProvisioningSettings)
    prosody: ProsodySettings = Field(default_factory=ProsodySettings)
    files: FilesSettings = Field(default_factory=FilesSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)
    rooms: RoomSettings = Field(default_factory=RoomSettings)
    runners: RunnersSettings = Field(default_factory=RunnersSettings)
    runner: RunnerSettings = Field(default_factory=RunnerSettings)
    # Not read from the file: where state, logs and secrets live.
    home: Path = Field(default_factory=lambda: state_home(), exclude=True)

    @property
    def manager_jid(self) -> str:
        return f"{self.manager.username}@{self.xmpp.domain}"

    @property
    def rooms_service(self) -> str:
        return self.rooms.service or f"rooms.{self.xmpp.domain}"

    @property
    def admin_rest_url(self) -> str:
        return self.provisioning.admin_rest_url or f"http://127.0.0.1:{self.prosody.http_port}/admin_rest"

    def require_allowed_users(self) -> None:
        """Raise ConfigError unless manager.allowedUsers is set (needed on a server shared with others)."""
        if not self.manager.allowed_users:
            raise ConfigError(
                "manager.allowedUsers is not set: say who may use the manager, e.g. "
                '"manager": {"allowedUsers": ["alice@example.org", "*@example.org"]} in the config file, '
                "or MANAGER_ALLOWED_USERS=alice@example.org,bob@example.org"
            )

    def require_secrets(self) -> None:
        """Raise ConfigError naming the first missing secret and how to set it."""
        for section, field_name, env_name in _SECRETS:
            if getattr(getattr(self, section), field_name) is None:
                raise ConfigError(_missing(section, field_name, env_name))

    def masked(self) -> dict[str, Any]:
        """The effective configuration as JSON data, secrets shown as ********."""
        data = json.loads(self.model_dump_json(by_alias=True))
        for section, field_name, _ in _SECRETS:
            key = to_camel(field_name)
            if data[section].get(key) is not None:
                data[section][key] = "********"
        for backend in data["agents"]["commandBackends"].values():
            backend["env"] = {k: "********" for k in backend["env"]}
        for engine in ("claude", "codex", "gemini", "opencode"):
            data["agents"][engine]["env"] = {k: "********" for k in data["agents"][engine]["env"]}
        if data["runner"].get("password") is not None:
            data["runner"]["password"] = "********"
        data["home"] = str(self.home)
        return data


_SECRETS = (
    ("xmpp", "admin_password", "XMPP_ADMIN_PASSWORD"),
    ("manager", "password", "MANAGER_PASSWORD"),
)

# environment variable -> (section, field, converter)
ENV_VARS: dict[str, tuple[str, str]] = {
    "XMPP_HOST": ("xmpp", "host"),
    "XMPP_PORT": ("xmpp", "port"),
    "XMPP_DOMAIN": ("xmpp", "domain"),
    "XMPP_ADMIN_USERNAME": ("xmpp", "admin_username"),
    "XMPP_ADMIN_PASSWORD": ("xmpp", "admin_password"),
    "MANAGER_USERNAME": ("manager", "username"),
    "MANAGER_PASSWORD": ("manager", "password"),
    "MANAGER_ALLOWED_USERS": ("manager", "allowed_users"),
    "MCP_PORT": ("mcp", "port"),
    "MCP_PERMISSION_TIMEOUT": ("mcp", "permission_timeout"),
    "WORK_BASE_PATH": ("work", "base_path"),
    "AGENTS_MAX_CONCURRENT": ("agents", "max_concurrent"),
    "AGENTS_IDLE_TIMEOUT": ("agents", "idle_timeout"),
    "CLAUDE_PATH": ("agents.claude", "path"),
    "CODEX_PATH": ("agents.codex", "path"),
    "GEMINI_PATH": ("agents.gemini", "path"),
    "OPENCODE_PATH": ("agents.opencode", "path"),
    "PROSODY_HTTP_PORT": ("prosody", "http_port"),
    "PROVISIONING_METHOD": ("provisioning", "method"),
    "AGENTCHAT_LOG_LEVEL": ("logging", "level"),
}


def is_loopback_host(host: str) -> bool:
    """Whether ``host`` is this machine's loopback (a name or an address); other names are not."""
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


# Variables holding a list: items separated by commas or spaces.
LIST_VARS = frozenset({"MANAGER_ALLOWED_USERS"})


def dotenv_paths(explicit: Path | None = None, environ: dict[str, str] | None = None) -> list[Path]:
    """The .env files read: an explicit one (--env-file, which must exist), else the state directory's.

    Never ./.env: whoever can write the current directory (an agent, in a checkout) must not
    configure the next start (CLAUDE_PATH, passwords).
    """
    if explicit is not None:
        path = explicit.expanduser()
        if not path.is_file():
            raise ConfigError(f"--env-file {path} does not exist")
        return [path]
    return [state_home(environ) / ".env"]


def export_agent_variables(files: list[Path], also: Collection[str] = ()) -> None:
    """Variables of those .env files that agents' processes may get (ANTHROPIC_API_KEY…, and ``also``:
    the engines' credential variables, OPENAI_API_KEY…) go into our environment, where the real
    environment does not set them; the rest only configure the service."""
    from agentchat.agents.environment import allowed

    for path in files:
        if path.is_file():
            for key, value in dotenv_values(path).items():
                if value is not None and (allowed(key) or key in also):
                    os.environ.setdefault(key, value)


def _env_name(section: str, field_name: str) -> str | None:
    for name, (sec, fld) in ENV_VARS.items():
        if sec == section and fld == field_name:
            return name
    return None


def _missing(section: str, field_name: str, env_name: str) -> str:
    return (
        f"{section}.{to_camel(field_name)} is not set: set {env_name} in the environment or .env, "
        f'or "{to_camel(field_name)}" under "{section}" in the config file'
    )


def _set_path(data: dict[str, Any], dotted: str, field_name: str, value: Any) -> None:
    node = data
    for part in dotted.split("."):
        node = node.setdefault(to_camel(part), {})
    node[to_camel(field_name)] = value


def load_settings(
    config_file: Path | None = None,
    overrides: dict[str, Any] | None = None,
    environ: dict[str, str] | None = None,
    dotenv_files: list[Path] | None = None,
) -> Settings:
    """Build the effective settings: file < .env < environment < overrides (dotted field -> value).

    Raises ConfigError with one line naming the bad field; never a traceback for the user.
    """
    env = dict(os.environ if environ is None else environ)
    home = state_home(env)
    path = (config_file or home / "config.json").expanduser()
    data: dict[str, Any] = {}
    if path.exists():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read config file {path}: {exc}") from None
        except json.JSONDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid JSON (line {exc.lineno}: {exc.msg})") from None
        if not isinstance(data, dict):
            raise ConfigError(f"config file {path} must hold a JSON object")
    elif config_file is not None:
        raise ConfigError(f"config file {path} does not exist")

    # .env fills in what the real environment does not set (environment wins).
    for dotenv_path in dotenv_files if dotenv_files is not None else [home / ".env"]:
        if dotenv_path.is_file():
            for key, value in dotenv_values(dotenv_path).items():
                if value is not None:
                    env.setdefault(key, value)

    for name, (section, field_name) in ENV_VARS.items():
        text = env.get(name)
        if text:
            setting: str | list[str] = text.replace(",", " ").split() if name in LIST_VARS else text
            _set_path(data, section, field_name, setting)
    for dotted, value in (overrides or {}).items():
        *sections, field_name = dotted.split(".")
        _set_path(data, ".".join(sections), field_name, value)

    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None
    settings.home = home
    return settings


def _describe(exc: ValidationError) -> str:
    """One line for the first error: the field in file notation, what is wrong, how to set it."""
    error = exc.errors()[0]
    loc = [str(part) for part in error["loc"]]
    dotted = ".".join(loc)
    hint = ""
    if len(loc) >= 2:
        env_name = _env_name(".".join(_snake(p) for p in loc[:-1]), _snake(loc[-1]))
        if env_name:
            hint = f" (set {env_name} or \"{loc[-1]}\" in the config file)"
    value = error.get("input")
    shown = "" if isinstance(value, (dict, list)) or value is None else f", got {value!r}"
    return f"{dotted}: {error['msg']}{shown}{hint}"


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name)

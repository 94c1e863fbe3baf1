"""Configuration: one typed model, loaded from config.json < .env < environment < command-line flags.

The JSON file uses the camelCase names of the original design (``work.basePath``,
``agents.maxConcurrent``); environment variables use the original design's names (``XMPP_HOST`` …).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal

from dotenv import dotenv_values
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
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
    # "plain" is only sensible on loopback; "starttls" verifies nothing when verify_tls is false.
    security: Literal["plain", "starttls", "directtls"] = "plain"
    verify_tls: bool = False
    # How long a bot waits between reconnect attempts while the server is away.
    reconnect_interval: float = Field(0.5, gt=0, le=60)

    @field_validator("domain", "host", "admin_username")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value.strip()

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
    command_backends: dict[str, CommandBackendSettings] = Field(default_factory=dict)
    sandbox: SandboxSettings = Field(default_factory=SandboxSettings)


class ProvisioningSettings(Section):
    method: Literal["admin_rest", "adhoc"] = "admin_rest"
    # Base URL of mod_admin_rest; None means http://127.0.0.1:{prosody.httpPort}/admin_rest.
    admin_rest_url: str | None = None


class ProsodySettings(Section):
    """The embedded Prosody (``agentchat start --embedded-prosody``)."""

    binary: str = "prosody"
    http_port: int = Field(5280, ge=1, le=65535)
    # The file of service JIDs that our Prosody module exempts from rate limits; the embedded
    # server sets its own. With an external Prosody, point it at that server's file.
    service_jids_file: Path | None = None


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
    logging: LoggingSettings = Field(default_factory=LoggingSettings)
    # Not read from the file: where state, logs and secrets live.
    home: Path = Field(default_factory=lambda: state_home(), exclude=True)

    @property
    def manager_jid(self) -> str:
        return f"{self.manager.username}@{self.xmpp.domain}"

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
        data["agents"]["claude"]["env"] = {k: "********" for k in data["agents"]["claude"]["env"]}
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
    "PROSODY_HTTP_PORT": ("prosody", "http_port"),
    "PROVISIONING_METHOD": ("provisioning", "method"),
    "AGENTCHAT_LOG_LEVEL": ("logging", "level"),
}


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


def export_agent_variables(files: list[Path]) -> None:
    """Variables of those .env files that agents' processes may get (ANTHROPIC_API_KEY…) go into our
    environment, where the real environment does not set them; the rest only configure the service."""
    from agentchat.agents.environment import allowed

    for path in files:
        if path.is_file():
            for key, value in dotenv_values(path).items():
                if value is not None and allowed(key):
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

"""Configuration: one typed model, loaded from config.json < .env < environment < command-line flags.

The JSON file uses the camelCase names of the original design (``work.basePath``,
``agents.maxConcurrent``); environment variables use the original design's names (``XMPP_HOST`` …).
"""

from __future__ import annotations

import ipaddress
import json
import os
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


class AgentSettings(Section):
    max_concurrent: int = Field(5, ge=1)
    idle_timeout: int = Field(3_600_000, gt=0, description="milliseconds")
    claude: ClaudeSettings = Field(default_factory=ClaudeSettings)
    command_backends: dict[str, CommandBackendSettings] = Field(default_factory=dict)


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
    logging: LoggingSettings = Field(default_factory=LoggingSettings)
    runners: RunnersSettings = Field(default_factory=RunnersSettings)
    runner: RunnerSettings = Field(default_factory=RunnerSettings)
    # Not read from the file: where state, logs and secrets live.
    home: Path = Field(default_factory=lambda: state_home(), exclude=True)

    @property
    def manager_jid(self) -> str:
        return f"{self.manager.username}@{self.xmpp.domain}"

    @property
    def admin_rest_url(self) -> str:
        return self.provisioning.admin_rest_url or f"http://127.0.0.1:{self.prosody.http_port}/admin_rest"

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


def is_loopback_host(host: str) -> bool:
    """Whether ``host`` is this machine's loopback (a name or an address); other names are not."""
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


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
    for dotenv_path in dotenv_files if dotenv_files is not None else [Path.cwd() / ".env", home / ".env"]:
        if dotenv_path.is_file():
            for key, value in dotenv_values(dotenv_path).items():
                if value is not None:
                    env.setdefault(key, value)

    for name, (section, field_name) in ENV_VARS.items():
        if env.get(name) not in (None, ""):
            _set_path(data, section, field_name, env[name])
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

"""Configuration: precedence file < .env < environment < flags, and one-line errors with exit 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from agentchat.agents.backends.engines import credential_variables
from agentchat.config import ENV_VARS, AgentSettings, dotenv_paths, export_agent_variables, load_settings
from agentchat.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def write_config(path: Path, data: dict) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_defaults_match_the_original_design(tmp_path: Path) -> None:
    settings = load_settings(environ={"AGENTCHAT_HOME": str(tmp_path)}, dotenv_files=[])
    assert (settings.xmpp.host, settings.xmpp.port, settings.xmpp.domain) == ("localhost", 5222, "localhost")
    assert (settings.xmpp.admin_username, settings.manager.username) == ("admin", "manager")
    assert (settings.mcp.host, settings.mcp.port, settings.mcp.permission_timeout) == ("127.0.0.1", 3001, 300000)
    assert settings.work.base_path == Path("~/work").expanduser()
    assert (settings.agents.max_concurrent, settings.agents.idle_timeout) == (5, 3600000)
    assert settings.home == tmp_path


def test_precedence_file_then_dotenv_then_environment_then_flags(tmp_path: Path) -> None:
    config = write_config(tmp_path / "config.json", {"xmpp": {"port": 1111, "domain": "file.test", "host": "file-host"}})
    dotenv = tmp_path / ".env"
    dotenv.write_text("XMPP_PORT=2222\nXMPP_DOMAIN=dotenv.test\n", encoding="utf-8")
    environ = {"AGENTCHAT_HOME": str(tmp_path), "XMPP_PORT": "3333"}

    settings = load_settings(config, {}, environ, [dotenv])
    assert settings.xmpp.host == "file-host"  # only the file sets it
    assert settings.xmpp.domain == "dotenv.test"  # .env beats the file
    assert settings.xmpp.port == 3333  # the environment beats .env

    flagged = load_settings(config, {"xmpp.port": 4444}, environ, [dotenv])
    assert flagged.xmpp.port == 4444  # flags beat everything


def test_dot_env_comes_from_the_state_directory_or_env_file_never_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home, checkout = tmp_path / "state", tmp_path / "checkout"
    home.mkdir()
    checkout.mkdir()
    (checkout / ".env").write_text("CLAUDE_PATH=/tmp/evil-claude\nXMPP_DOMAIN=evil.test\n", encoding="utf-8")
    (home / ".env").write_text("XMPP_DOMAIN=home.test\n", encoding="utf-8")
    monkeypatch.chdir(checkout)
    environ = {"AGENTCHAT_HOME": str(home)}
    settings = load_settings(environ=environ)
    assert settings.xmpp.domain == "home.test" and settings.agents.claude.path is None
    assert dotenv_paths(environ=environ) == [home / ".env"]
    explicit = tmp_path / "chosen.env"
    explicit.write_text("XMPP_DOMAIN=chosen.test\n", encoding="utf-8")
    assert load_settings(environ=environ, dotenv_files=dotenv_paths(explicit, environ)).xmpp.domain == "chosen.test"
    with pytest.raises(ConfigError, match="--env-file .* does not exist"):
        dotenv_paths(tmp_path / "missing.env", environ)


def test_agent_variables_of_dot_env_reach_the_environment_and_service_ones_do_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text("ANTHROPIC_API_KEY=sk-from-dotenv\nXMPP_ADMIN_PASSWORD=not-for-agents\n", encoding="utf-8")
    for name in ("ANTHROPIC_API_KEY", "XMPP_ADMIN_PASSWORD"):
        monkeypatch.setenv(name, "")  # recorded, so the teardown restores the real state
        monkeypatch.delenv(name)
    export_agent_variables([dotenv])
    assert os.environ["ANTHROPIC_API_KEY"] == "sk-from-dotenv"
    assert "XMPP_ADMIN_PASSWORD" not in os.environ


def test_an_engine_s_credential_of_dot_env_reaches_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text("OPENAI_API_KEY=sk-openai\nGEMINI_API_KEY=gemini-key\nAWS_SECRET_ACCESS_KEY=not-for-agents\n", encoding="utf-8")
    for name in ("OPENAI_API_KEY", "GEMINI_API_KEY", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    export_agent_variables([dotenv], also=credential_variables(AgentSettings()))
    assert os.environ["OPENAI_API_KEY"] == "sk-openai" and os.environ["GEMINI_API_KEY"] == "gemini-key"
    assert "AWS_SECRET_ACCESS_KEY" not in os.environ


def test_every_documented_environment_variable_is_read(tmp_path: Path) -> None:
    environ = {
        "AGENTCHAT_HOME": str(tmp_path),
        "XMPP_HOST": "127.0.0.2",
        "XMPP_PORT": "5300",
        "XMPP_DOMAIN": "chat.test",
        "XMPP_ADMIN_USERNAME": "root2",
        "XMPP_ADMIN_PASSWORD": "admin-secret",
        "MANAGER_USERNAME": "boss",
        "MANAGER_PASSWORD": "manager-secret",
        "MCP_PORT": "3999",
        "MCP_PERMISSION_TIMEOUT": "1234",
        "WORK_BASE_PATH": str(tmp_path / "repos"),
        "AGENTS_MAX_CONCURRENT": "7",
        "AGENTS_IDLE_TIMEOUT": "5000",
        "CLAUDE_PATH": "/opt/claude",
        "MANAGER_ALLOWED_USERS": "alice@chat.test, *@team.chat.test bob@chat.test",
    }
    s = load_settings(environ=environ, dotenv_files=[])
    assert s.manager.allowed_users == ["alice@chat.test", "*@team.chat.test", "bob@chat.test"]
    assert (s.xmpp.host, s.xmpp.port, s.xmpp.domain, s.xmpp.admin_username) == ("127.0.0.2", 5300, "chat.test", "root2")
    assert s.xmpp.admin_password is not None and s.xmpp.admin_password.get_secret_value() == "admin-secret"
    assert s.manager.username == "boss" and s.manager_jid == "boss@chat.test"
    assert s.manager.password is not None and s.manager.password.get_secret_value() == "manager-secret"
    assert (s.mcp.port, s.mcp.permission_timeout) == (3999, 1234)
    assert s.work.base_path == tmp_path / "repos"
    assert (s.agents.max_concurrent, s.agents.idle_timeout) == (7, 5000)
    assert s.agents.claude.path == "/opt/claude"
    assert set(environ) - {"AGENTCHAT_HOME"} <= set(ENV_VARS)


def test_engine_sections_paths_from_the_environment_and_masked_env(tmp_path: Path) -> None:
    config = write_config(tmp_path / "config.json", {"agents": {
        "codex": {"model": "gpt-5.5", "baseUrl": "http://127.0.0.1:9/v1", "sandbox": "workspace-write", "env": {"OPENAI_API_KEY": "sk-codex-secret"}},
        "opencode": {"provider": "openai", "extraArgs": ["--print-logs"]},
    }})
    environ = {"AGENTCHAT_HOME": str(tmp_path), "GEMINI_PATH": "/opt/gemini", "CODEX_PATH": "/opt/codex", "OPENCODE_PATH": "oc"}
    s = load_settings(config, environ=environ, dotenv_files=[])
    assert (s.agents.codex.path, s.agents.gemini.path, s.agents.opencode.path) == ("/opt/codex", "/opt/gemini", "oc")
    assert (s.agents.codex.base_url, s.agents.codex.sandbox, s.agents.codex.env_key) == ("http://127.0.0.1:9/v1", "workspace-write", "OPENAI_API_KEY")
    assert (s.agents.opencode.provider, s.agents.opencode.extra_args) == ("openai", ["--print-logs"])
    assert "sk-codex-secret" not in json.dumps(s.masked())
    with pytest.raises(ConfigError, match=r"^agents.codex.sandbox"):
        load_settings(write_config(tmp_path / "bad.json", {"agents": {"codex": {"sandbox": "danger-full-access"}}}),
                      environ={"AGENTCHAT_HOME": str(tmp_path)}, dotenv_files=[])


def test_example_config_is_valid_and_complete(tmp_path: Path) -> None:
    settings = load_settings(REPO / "config.example.json", environ={"AGENTCHAT_HOME": str(tmp_path)}, dotenv_files=[])
    settings.require_secrets()
    assert "shell" in settings.agents.command_backends


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"xmpp": {"port": 70000}}, "xmpp.port"),
        ({"mcp": {"host": "0.0.0.0"}}, "mcp.host"),
        ({"agents": {"maxConcurrent": 0}}, "agents.maxConcurrent"),
        ({"xmpp": {"portt": 1}}, "xmpp.portt"),
    ],
)
def test_bad_values_name_the_field(tmp_path: Path, data: dict, expected: str) -> None:
    config = write_config(tmp_path / "config.json", data)
    with pytest.raises(ConfigError) as caught:
        load_settings(config, environ={"AGENTCHAT_HOME": str(tmp_path)}, dotenv_files=[])
    assert str(caught.value).startswith(expected)
    assert "\n" not in str(caught.value)


def test_secrets_are_masked(tmp_path: Path) -> None:
    s = load_settings(environ={"AGENTCHAT_HOME": str(tmp_path), "XMPP_ADMIN_PASSWORD": "hunter2-admin"}, dotenv_files=[])
    assert "hunter2-admin" not in json.dumps(s.masked())


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agentchat", *args], capture_output=True, text=True, env=env, timeout=60, cwd=env["AGENTCHAT_HOME"]
    )


def clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ENV_VARS}
    env.update(AGENTCHAT_HOME=str(tmp_path), **extra)
    return env


def test_bad_port_exits_2_with_one_line(tmp_path: Path) -> None:
    result = run_cli("start", env=clean_env(tmp_path, XMPP_PORT="99999", XMPP_ADMIN_PASSWORD="a" * 8, MANAGER_PASSWORD="m" * 8))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "xmpp.port" in lines[0] and "XMPP_PORT" in lines[0]
    assert "Traceback" not in result.stderr


def test_missing_password_exits_2_naming_how_to_set_it(tmp_path: Path) -> None:
    result = run_cli("start", env=clean_env(tmp_path, MANAGER_PASSWORD="m" * 8))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "xmpp.adminPassword" in lines[0] and "XMPP_ADMIN_PASSWORD" in lines[0]


def test_bad_json_config_exits_2(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{ not json", encoding="utf-8")
    result = run_cli("config", "check", env=clean_env(tmp_path))
    assert result.returncode == 2 and "not valid JSON" in result.stderr


def test_config_check_masks_secrets(tmp_path: Path) -> None:
    result = run_cli("config", "check", env=clean_env(tmp_path, XMPP_ADMIN_PASSWORD="sekrit-admin-pw", MANAGER_PASSWORD="sekrit-mgr-pw"))
    assert result.returncode == 0
    assert "sekrit" not in result.stdout and "********" in result.stdout
    assert json.loads(result.stdout)["xmpp"]["port"] == 5222


@pytest.mark.parametrize(
    ("xmpp", "expected"),
    [
        ({}, ("plain", False)),
        ({"host": "127.0.0.1"}, ("plain", False)),
        ({"host": "::1"}, ("plain", False)),
        ({"host": "chat.example.org"}, ("starttls", True)),  # off loopback: TLS and verification by default
        ({"host": "192.0.2.7", "verifyTls": False}, ("starttls", False)),  # an explicit choice stays
        ({"host": "127.0.0.1", "security": "starttls"}, ("starttls", False)),
    ],
)
def test_the_bots_use_tls_with_verification_off_loopback(tmp_path: Path, xmpp: dict, expected: tuple) -> None:
    settings = load_settings(write_config(tmp_path / "c.json", {"xmpp": xmpp}), environ={}, dotenv_files=[])
    assert (settings.xmpp.security, settings.xmpp.verify_tls) == expected


def test_plaintext_to_a_remote_server_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="plaintext XMPP is only allowed to a loopback host"):
        load_settings(write_config(tmp_path / "c.json", {"xmpp": {"host": "chat.example.org", "security": "plain"}}),
                      environ={}, dotenv_files=[])

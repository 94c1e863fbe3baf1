"""The environment an agent's process gets: an allow-list of the service's, the configured layers, no secret."""

from __future__ import annotations

import logging

import pytest

from agentchat.agents.environment import child_environment

SERVICE_ENV = {
    "PATH": "/usr/bin:/bin",
    "HOME": "/home/svc",
    "LANG": "C.UTF-8",
    "LC_TIME": "de_DE.UTF-8",
    "TERM": "xterm",
    "TZ": "Europe/Berlin",
    "HTTPS_PROXY": "http://proxy:3128",
    "ANTHROPIC_API_KEY": "sk-ant-key",
    "CLAUDE_CODE_OAUTH_TOKEN": "oauth-token",
    "XMPP_ADMIN_PASSWORD": "admin-secret",
    "MANAGER_PASSWORD": "manager-secret",
    "AGENTCHAT_HOME": "/home/svc/.agent-chat",
    "AWS_SECRET_ACCESS_KEY": "aws",
    "SSH_AUTH_SOCK": "/tmp/ssh-agent.sock",
    "PYTHONPATH": "/home/svc/lib",
}


def test_only_what_a_cli_needs_passes() -> None:
    env = child_environment(base=SERVICE_ENV)
    assert env == {
        "PATH": "/usr/bin:/bin", "HOME": "/home/svc", "LANG": "C.UTF-8", "LC_TIME": "de_DE.UTF-8", "TERM": "xterm",
        "TZ": "Europe/Berlin", "HTTPS_PROXY": "http://proxy:3128", "ANTHROPIC_API_KEY": "sk-ant-key",
        "CLAUDE_CODE_OAUTH_TOKEN": "oauth-token",
    }


def test_layers_add_and_override_in_order() -> None:
    env = child_environment({"MCP_TOOL_TIMEOUT": "330000"}, {"AWS_REGION": "eu-west-1", "TERM": "dumb"}, {"AGENTCHAT_AGENT_ID": "swift-fox"}, base=SERVICE_ENV)
    assert env["MCP_TOOL_TIMEOUT"] == "330000" and env["AWS_REGION"] == "eu-west-1"
    assert env["TERM"] == "dumb" and env["AGENTCHAT_AGENT_ID"] == "swift-fox"


def test_a_service_secret_is_dropped_wherever_it_comes_from(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        env = child_environment({"SOME_TOKEN": "admin-secret"}, base={**SERVICE_ENV, "CLAUDE_X": "manager-secret"},
                                forbidden_values={"admin-secret", "manager-secret"})
    assert "SOME_TOKEN" not in env and "CLAUDE_X" not in env
    assert "not passing SOME_TOKEN to an agent" in caplog.text


def test_an_engine_gets_its_own_credentials_instead_of_claude_codes() -> None:
    service = {**SERVICE_ENV, "OPENAI_API_KEY": "sk-openai", "GEMINI_API_KEY": "gemini-key"}
    env = child_environment(base=service, own_variables=("OPENAI_API_KEY",))
    assert env["OPENAI_API_KEY"] == "sk-openai"
    assert not {"ANTHROPIC_API_KEY", "CLAUDE_CODE_OAUTH_TOKEN", "GEMINI_API_KEY", "XMPP_ADMIN_PASSWORD"} & set(env)
    assert env["PATH"] == "/usr/bin:/bin" and env["LC_TIME"] == "de_DE.UTF-8" and env["HTTPS_PROXY"] == "http://proxy:3128"
    # A layer still adds what the owner configured, and a service secret is still dropped.
    layered = child_environment({"ANTHROPIC_BASE_URL": "http://gw"}, {"X": "admin-secret"}, base=service,
                                own_variables=("OPENAI_API_KEY",), forbidden_values={"admin-secret"})
    assert layered["ANTHROPIC_BASE_URL"] == "http://gw" and "X" not in layered

"""An agent is untrusted code. From inside its sandbox it cannot read the service's state, another
repository, another agent's files or bearer token, or the service's environment.

The probe is a shell script the agent runs: once as a command backend (the command is ``sh``, the
chat message is the script), once by the real Claude Code CLI through an approved Bash tool, and once
by each engine (Codex, Gemini CLI, OpenCode) through its approved shell command. Every attempt prints
``READ name`` or ``DENIED name``; each target is checked to exist outside first, and a file in the
agent's own repository must be readable, so a DENIED means hidden, not missing.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import shlex
import socket
from pathlib import Path
from typing import Any

import pytest

from agentchat.agents.backends.claude import locate_claude
from agentchat.app import Service
from agentchat.config import Settings
from agentchat.errors import BackendError, ConfigError
from tests.faults.support import wait_until
from tests.harness.prosody import ProsodyServer
from tests.support.engines import config_section, engine_binary, engine_dir
from tests.support.mock_anthropic import MockAnthropic, _tool_result_text
from tests.support.mock_gemini import MockGemini
from tests.support.mock_responses import MockResponses
from tests.support.service import create_agent, make_repositories, running_service, service_settings

PROBE_BACKEND = {"probe": {"label": "Probe", "command": ["sh"], "promptVia": "stdin"}}


def probe_script(targets: dict[str, Path], token: str, in_processes: dict[str, str] | None = None) -> str:
    """``in_processes``: values to look for in every process's environment and command line in the
    sandbox (the engine's own included): ``READ name`` if one holds it."""
    lines = ['try() { if cat "$2" >/dev/null 2>&1; then echo "READ $1"; else echo "DENIED $1"; fi; }']
    lines += [f"try {name} {shlex.quote(str(path))}" for name, path in targets.items()]
    for name, value in (in_processes or {}).items():
        lines += [
            f"echo {base64.b64encode(value.encode()).decode()} | base64 -d > /tmp/needle.$$",
            "if grep -lsF -f /tmp/needle.$$ /proc/[0-9]*/environ /proc/[0-9]*/cmdline | grep -q .;"
            f' then echo "READ {name}"; else echo "DENIED {name}"; fi',
        ]
    lines += [
        # Where the MCP config with the bearer token used to be, before the sandbox.
        'if ls -d /tmp/agentchat-claude-* >/dev/null 2>&1; then echo "READ old-token-dirs"; else echo "DENIED old-token-dirs"; fi',
        # The token to look for, kept out of every command line and file the search itself would find.
        f"echo {base64.b64encode(token.encode()).decode()} | base64 -d > /tmp/needle.$$",
        "if grep -rlsF -f /tmp/needle.$$ --exclude='needle.*' /tmp /run /etc \"$HOME\" /proc/[0-9]*/environ"
        ' /proc/[0-9]*/cmdline | grep -q .; then echo "READ other-token"; else echo "DENIED other-token"; fi',
        'echo "PROCESSES $(ls -d /proc/[0-9]* | wc -l)"',
        'env | sed "s/^/ENV /"',
        'echo mine > own.txt && try own-repo own.txt',
    ]
    return "\n".join(lines) + "\n"


async def prepare_victims(settings: Settings, service: Service, bob) -> tuple[dict[str, Path], str]:  # type: ignore[no-untyped-def]
    """Bob's agent (fake Claude Code, in ~/work/web) runs a tool through a prompt, so its token is live,
    the audit log and its session exist; returns the probe's targets and bob's agent's token."""
    home, work = settings.home, settings.work.base_path
    (home / "secrets.json").write_text('{"admin_password": "%s"}' % settings.xmpp.admin_password.get_secret_value())  # type: ignore[union-attr]
    (home / "config.json").write_text("{}")
    (home / "agentchat.log").write_text("a log line\n")
    (work / "web" / "secret.txt").write_text("bob's code\n")
    bob_id, bob_agent = await create_agent(bob, settings.manager_jid, repo="web")
    await bob.send(bob_agent, '[[tool:Bash {"command": "echo from bob"}]]')
    await bob.expect("🔐 Permission #", from_=bob_agent, timeout=20)
    await bob.send(bob_agent, "yes")
    await bob.expect("✅ Done", from_=bob_agent, timeout=20)
    [bob_session] = (home / "agents").rglob("sessions/*.json")  # in its own home when sandboxed
    targets = {
        "secrets.json": home / "secrets.json",
        "config.json": home / "config.json",
        "state.db": home / "state.db",
        "audit.jsonl": home / "audit.jsonl",
        "agentchat.log": home / "agentchat.log",
        "other-agent-home": bob_session,
        "other-repository": work / "web" / "secret.txt",
        "etc-shadow": Path("/etc/shadow"),
    }
    for name, path in targets.items():
        assert path.is_file(), f"{name}: {path} must exist outside the sandbox for the probe to mean something"
    token = service.agent_host.tokens[bob_id]
    # The token is on no disk at all: it reaches bob's CLI through a memory file copied into its sandbox.
    # (Other runs on this machine may have left /tmp/agentchat-claude-* of older versions behind.)
    places = [*home.rglob("*"), *Path("/tmp").glob("agentchat-claude-*/*")]
    assert not [path for path in places if path.is_file() and token.encode() in path.read_bytes()]
    return targets, token


def check_probe(output: str, targets: dict[str, Path], secrets: list[str], settings: Settings, max_processes: int = 10) -> None:
    for name in [*targets, "old-token-dirs", "other-token"]:
        assert f"DENIED {name}" in output, f"{name}:\n{output}"
    assert "READ own-repo" in output, output
    processes = int(output.split("PROCESSES ")[1].split()[0])
    assert processes < max_processes, f"the agent sees {processes} processes: not its own PID namespace"
    env = dict(line[4:].partition("=")[::2] for line in output.splitlines() if line.startswith("ENV "))
    assert "XMPP_ADMIN_PASSWORD" not in env and "MANAGER_PASSWORD" not in env, env
    for secret in secrets:
        assert secret not in output
    assert env["HOME"].startswith(str(settings.home / "agents")), env["HOME"]


@pytest.fixture
def service_passwords_in_environment(prosody: ProsodyServer, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The documented way to give the service its passwords: its environment (this process is the service)."""
    monkeypatch.setenv("XMPP_ADMIN_PASSWORD", prosody.admin_password)
    monkeypatch.setenv("MANAGER_PASSWORD", prosody.manager_password)
    return [prosody.admin_password, prosody.manager_password]


async def test_a_command_agent_sees_nothing_of_the_service_or_others(
    prosody, user_client, tmp_path: Path, service_passwords_in_environment: list[str]
) -> None:
    settings = service_settings(prosody, tmp_path, agents={"commandBackends": PROBE_BACKEND})
    make_repositories(settings.work.base_path)
    async with running_service(settings) as service:
        assert service.sandbox.enabled, service.sandbox.summary()
        alice, bob = await user_client("alice", service=True), await user_client("bob")
        targets, token = await prepare_victims(settings, service, bob)
        _, probe = await create_agent(alice, settings.manager_jid, kind="probe")
        await alice.send(probe, probe_script(targets, token))
        output = (await alice.expect("READ own-repo", from_=probe, timeout=30)).body
        check_probe(output, targets, [*service_passwords_in_environment, token], settings)
        # An agent's own directories go with it.
        bob_id = targets["other-agent-home"].relative_to(settings.home / "agents").parts[0]
        await bob.send(settings.manager_jid, f"kill {bob_id}")
        await bob.expect("killed", from_=settings.manager_jid, timeout=20)
        await wait_until(lambda: not (settings.home / "agents" / bob_id).exists(), 5, "the agent's directories removed")


async def test_the_real_cli_through_an_approved_bash_sees_nothing_either(
    prosody, user_client, tmp_path: Path, service_passwords_in_environment: list[str]
) -> None:
    try:
        claude = locate_claude(os.environ.get("CLAUDE_PATH"))
    except BackendError as exc:
        pytest.skip(f"real Claude Code CLI not available: {exc}")
    async with MockAnthropic() as api:
        settings = service_settings(prosody, tmp_path)
        make_repositories(settings.work.base_path)
        async with running_service(settings) as service:
            alice, bob = await user_client("alice", service=True), await user_client("bob")
            targets, token = await prepare_victims(settings, service, bob)
            # From here on, agents are the real CLI talking to the mock API.
            settings.agents.claude.path = str(claude)
            cli_env = api.cli_env(home=tmp_path / "unused")
            settings.agents.claude.env = {k: v for k, v in cli_env.items() if k not in ("HOME", "TMPDIR", "CLAUDE_CODE_TMPDIR")}
            api.script_tool_use("Bash", {"command": probe_script(targets, token), "description": "Look around"}, final_text="Looked.")
            _, agent = await create_agent(alice, settings.manager_jid, task="look around")
            prompt = await alice.expect("🔐 Permission #", from_=agent, timeout=60)
            assert "Look around" in prompt.body
            await alice.send(agent, "yes")
            await alice.expect("Looked.", from_=agent, timeout=60)
            [result] = [block for block in api.requests[-1].tool_results()]
            content = result["content"]
            output = content if isinstance(content, str) else "\n".join(part.get("text", "") for part in content)
            check_probe(output, targets, [*service_passwords_in_environment, token], settings)


# Each engine's mock, and how it scripts a shell command that asks (Codex: one run outside its own sandbox).
ENGINE_MOCKS: dict[str, Any] = {"codex": MockResponses, "gemini": MockGemini, "opencode": lambda: MockAnthropic(answer_titles=True)}
# The variable the engine's credential is read from (by default), and one of another CLI's that it must not get.
ENGINE_KEYS = {"codex": ("OPENAI_API_KEY", "ANTHROPIC_API_KEY"), "gemini": ("GEMINI_API_KEY", "ANTHROPIC_API_KEY"),
               "opencode": ("ANTHROPIC_API_KEY", "OPENAI_API_KEY")}


def script_shell(kind: str, api: Any, script: str) -> None:
    # The script travels encoded: Gemini CLI refuses a command with $(…) in it.
    command = f"echo {base64.b64encode(script.encode()).decode()} | base64 -d | sh"
    if kind == "codex":
        api.script_call("exec_command", {"cmd": command, "sandbox_permissions": "require_escalated", "justification": "Look around"})
    elif kind == "gemini":
        api.script_call("run_shell_command", {"command": command, "description": "Look around"})
    else:
        api.script_tool_use("bash", {"command": command, "description": "Look around"})


def shell_output(kind: str, api: Any) -> str:
    """What the engine sent its model as the command's output."""
    request = api.requests[-1]
    if kind == "opencode":
        return _tool_result_text(request.tool_results()[-1])
    output = request.tool_outputs()[-1]
    if kind == "gemini":
        response = json.loads(output)
        return str(response.get("output", output)) if isinstance(response, dict) else output
    return str(output)


@pytest.mark.engines
@pytest.mark.parametrize("kind", ["codex", "gemini", "opencode"])
async def test_an_engine_through_an_approved_command_sees_nothing_either(
    prosody, user_client, kind: str, service_passwords_in_environment: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    binary = engine_binary(kind)
    own_name, foreign_name = ENGINE_KEYS[kind]
    # The engine's credential comes from the service's environment, as README promises; another CLI's
    # credential and any other secret there must not reach it.
    own_key, foreign_key = f"own-{kind}-key-{os.urandom(8).hex()}", f"foreign-key-{os.urandom(8).hex()}"
    monkeypatch.setenv(own_name, own_key)
    monkeypatch.setenv(foreign_name, foreign_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-secret-of-the-service")
    with engine_dir() as home:  # not under /tmp: Codex's own sandbox hides it
        async with ENGINE_MOCKS[kind]() as api:
            section = config_section(kind, api.base_url, binary)
            section.pop("env")
            section.pop("envKey", None)
            settings = service_settings(prosody, home, agents={kind: section})
            make_repositories(settings.work.base_path)
            async with running_service(settings) as service:
                assert service.sandbox.enabled, service.sandbox.summary()
                alice, bob = await user_client("alice", service=True), await user_client("bob")
                targets, token = await prepare_victims(settings, service, bob)
                passwords = dict(zip(("admin-password", "manager-password"), service_passwords_in_environment))
                in_processes = {**passwords, "foreign-key": foreign_key, "aws-secret": "aws-secret-of-the-service", "own-key": own_key}
                script_shell(kind, api, probe_script(targets, token, in_processes))
                _, agent = await create_agent(alice, settings.manager_jid, kind=kind, task="look around", timeout=60)
                prompt = await alice.expect("🔐 Permission #", from_=agent, timeout=60)
                assert "Bash" in prompt.body and "echo " in prompt.body
                await alice.send(agent, "yes")
                await alice.expect("MOCK_TOOL_RESULT", from_=agent, timeout=60)
                output = shell_output(kind, api)
                check_probe(output, targets, [*service_passwords_in_environment, token, foreign_key], settings, max_processes=12)
                for name in ("admin-password", "manager-password", "foreign-key", "aws-secret"):
                    assert f"DENIED {name}" in output, f"{name} is in a process of the sandbox:\n{output}"
                assert "READ own-key" in output, f"the engine did not get its own credential:\n{output}"
                # And it goes on: it still answers.
                await alice.send(agent, "still there?")
                await alice.expect("MOCK_REPLY: still there?", from_=agent, timeout=60)


async def test_a_login_of_the_service_user_reaches_claude_code_read_only(
    prosody, user_client, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    service_home = tmp_path_factory.mktemp("service-user-home")
    (service_home / ".claude").mkdir()
    (service_home / ".claude" / ".credentials.json").write_text('{"claudeAiOauth": {"accessToken": "login-token"}}')
    (service_home / ".claude" / "history.jsonl").write_text("another agent's history\n")
    monkeypatch.setenv("HOME", str(service_home))  # the service's user: this process
    settings = service_settings(prosody, tmp_path)
    make_repositories(settings.work.base_path)
    command = "cat ~/.claude/.credentials.json; echo x >> ~/.claude/.credentials.json || echo read-only; ls -a ~/.claude"
    async with running_service(settings):
        alice = await user_client("alice")
        _, agent = await create_agent(alice, settings.manager_jid)
        await alice.send(agent, "[[tool:Bash %s]]" % json.dumps({"command": command}))
        await alice.expect("🔐 Permission #", from_=agent, timeout=20)
        await alice.send(agent, "yes")
        result = (await alice.expect("MOCK_TOOL_RESULT", from_=agent, timeout=20)).body
    assert '"accessToken": "login-token"' in result and "read-only" in result, result
    assert "history.jsonl" not in result  # only the credentials file, nothing else of ~/.claude


async def test_without_network_the_agent_still_reaches_its_permission_prompt(prosody, user_client, tmp_path: Path) -> None:
    settings = service_settings(prosody, tmp_path)
    settings.agents.sandbox.network = False
    make_repositories(settings.work.base_path)
    with socket.create_connection((prosody.host, prosody.c2s_port), timeout=5):
        pass  # reachable from the service's own network
    connect = f"import socket; socket.create_connection(('127.0.0.1', {prosody.c2s_port}), timeout=3)"
    async with running_service(settings) as service:
        assert service.sandbox.enabled and not service.sandbox.network
        alice = await user_client("alice")
        _, agent = await create_agent(alice, settings.manager_jid)
        command = f"python3 -c {shlex.quote(connect)}"
        await alice.send(agent, '[[tool:Bash {"command": %s}]]' % json.dumps(command))
        # The prompt came through the relay: the sandbox has no other way to the MCP endpoint.
        await alice.expect("🔐 Permission #", from_=agent, timeout=20)
        await alice.send(agent, "yes")
        result = await alice.expect("MOCK_TOOL_RESULT", from_=agent, timeout=20)
        assert "ConnectionRefusedError" in result.body, result.body


async def test_where_bubblewrap_is_missing_the_start_up_line_says_what_remains(
    prosody, user_client, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = service_settings(prosody, tmp_path)
    settings.agents.sandbox.binary = "/nonexistent/bwrap"
    make_repositories(settings.work.base_path)
    with caplog.at_level(logging.INFO, logger="agentchat"):
        async with running_service(settings) as service:
            assert not service.sandbox.enabled
            alice = await user_client("alice")
            _, agent = await create_agent(alice, settings.manager_jid, task="hello")
            await alice.expect("MOCK_REPLY: hello", from_=agent, timeout=20)
    [line] = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Sandbox:")]
    assert line.startswith("Sandbox: off (/nonexistent/bwrap not found: install bubblewrap")
    assert "filtered environment" in line and "can read everything this user can" in line


async def test_a_sandbox_forced_on_where_it_cannot_work_stops_the_start(prosody, tmp_path: Path) -> None:
    settings = service_settings(prosody, tmp_path)
    settings.agents.sandbox.binary = "/nonexistent/bwrap"
    settings.agents.sandbox.enabled = True
    with pytest.raises(ConfigError, match="agents.sandbox.enabled is true but the sandbox cannot work here"):
        async with running_service(settings):
            pass


async def test_an_extra_bind_that_would_show_the_state_directory_is_refused(prosody, tmp_path: Path) -> None:
    settings = service_settings(prosody, tmp_path)
    settings.agents.sandbox.read_only.append(tmp_path.parent)
    with pytest.raises(ConfigError, match="agents.sandbox.readOnly: .* would show agents"):
        async with running_service(settings):
            pass

"""The sandbox with real processes: what a process inside sees, its private files, its uid, its exit.

Skipped where bubblewrap cannot run (the service then starts unsandboxed and says so)."""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path

import pytest

from agentchat import state_dir
from agentchat.agents.backends.engines import runtime_binds
from agentchat.agents.sandbox import AgentDirs, Bind, Launch, Sandbox, open_sandbox
from agentchat.config import SandboxSettings
from agentchat.errors import BackendError, ConfigError


@pytest.fixture
async def places(tmp_path: Path) -> dict[str, Path]:
    state, work = tmp_path / "state", tmp_path / "work"
    for directory in (state, work / "api", work / "web"):
        directory.mkdir(parents=True)
    (state / "secrets.json").write_text("{}")
    return {"state": state, "work": work, "repo": work / "api", "other": work / "web"}


@pytest.fixture
async def sandbox(places: dict[str, Path]) -> Sandbox:
    opened = await open_sandbox(SandboxSettings(), state_dir=places["state"], protected=(places["work"], Path.home()))
    if not opened.enabled:
        pytest.skip(opened.summary())
    return opened


async def run(launch: Launch, argv: list[str], cwd: Path, binds: tuple[Bind, ...] = ()) -> tuple[int | None, str]:
    await launch.prepare(argv, env={"PATH": "/usr/bin:/bin"}, cwd=cwd, binds=binds)
    process = await asyncio.create_subprocess_exec(
        *launch.argv, env=launch.env, cwd=launch.cwd, pass_fds=launch.pass_fds, umask=launch.umask,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    launch.spawned()
    out, _ = await process.communicate()
    await launch.release()
    return launch.exit_code(process.returncode), out.decode()


async def test_a_process_sees_its_repository_its_home_and_the_system_only(sandbox: Sandbox, places: dict[str, Path]) -> None:
    dirs = AgentDirs.of(places["state"], "swift-fox")
    script = (
        'id -un; id -u; echo "$HOME"; echo hi > in-repo && echo wrote-repo; echo x > "$HOME/h" && echo wrote-home;'
        f" cat {places['state'] / 'secrets.json'} || echo no-secrets; ls {places['other']} || echo no-other;"
        " cat /etc/shadow >/dev/null 2>&1 || echo no-shadow; cat /etc/hostname >/dev/null && echo etc-ok;"
        " touch /usr/x 2>/dev/null || echo usr-read-only; ls /proc | grep -c '^[0-9]'"
    )
    code, out = await run(sandbox.launch(dirs), ["sh", "-c", script], places["repo"])
    lines = out.split("\n")
    assert code == 0, out
    assert lines[0] == "agent" and int(lines[1]) == (os.getuid() or 1000)
    assert lines[2] == str(dirs.home)
    for word in ("wrote-repo", "wrote-home", "no-secrets", "no-other", "no-shadow", "etc-ok", "usr-read-only"):
        assert word in lines, out
    assert int(lines[-2]) <= 4  # bwrap's init, sh, ls, grep: its own PID namespace
    assert (places["repo"] / "in-repo").read_text() == "hi\n" and (dirs.home / "h").exists()


async def test_a_private_file_is_seen_by_its_process_alone_and_never_written_to_disk(sandbox: Sandbox, places: dict[str, Path]) -> None:
    first, second = sandbox.launch(AgentDirs.of(places["state"], "a")), sandbox.launch(AgentDirs.of(places["state"], "b"))
    path = first.private_file("mcp-config.json", b'{"token": "first-token"}')
    second.private_file("mcp-config.json", b'{"token": "second-token"}')
    code, out = await run(first, ["sh", "-c", f"cat {path}; stat -c %a {path}"], places["repo"])
    assert (code, out) == (0, '{"token": "first-token"}400\n')
    code, out = await run(second, ["cat", str(path)], places["repo"])
    assert out == '{"token": "second-token"}'
    assert not [p for p in places["state"].rglob("*") if p.is_file() and b"-token" in p.read_bytes()]


async def test_a_signal_death_is_reported_as_a_direct_child_s(sandbox: Sandbox, places: dict[str, Path]) -> None:
    code, _ = await run(sandbox.launch(AgentDirs.of(places["state"], "a")), ["sh", "-c", "kill -9 $$"], places["repo"])
    assert code == -9


async def test_what_may_be_shown_to_an_agent(sandbox: Sandbox, places: dict[str, Path], tmp_path: Path) -> None:
    assert sandbox.program_binds(Path("/usr/bin/sh")) == []
    tools = tmp_path / "tools"
    tools.mkdir()
    (tools / "cli").write_text("#!/bin/sh\necho from-cli\n")
    (tools / "cli").chmod(0o755)
    assert sandbox.program_binds(tools / "cli") == [Bind(tools)]
    code, out = await run(sandbox.launch(AgentDirs.of(places["state"], "a")), [str(tools / "cli")], places["repo"], tuple(sandbox.program_binds(tools / "cli")))
    assert (code, out) == (0, "from-cli\n")
    # A CLI kept right in the state directory: never shown.
    (places["state"] / "cli").write_text("")
    with pytest.raises(BackendError, match="not shown to agents"):
        await sandbox.launch(AgentDirs.of(places["state"], "a")).prepare(["true"], env={}, cwd=places["repo"], binds=[Bind(places["state"] / "cli")])
    # A repository that holds the others: refused.
    with pytest.raises(BackendError, match="contains"):
        await sandbox.launch(AgentDirs.of(places["state"], "a")).prepare(["true"], env={}, cwd=places["work"])
    with pytest.raises(ConfigError, match="readWrite"):
        await open_sandbox(SandboxSettings(readWrite=[places["work"]]), state_dir=places["state"], protected=(places["work"],))


async def test_an_npm_engine_sees_its_whole_tree_and_node(sandbox: Sandbox, places: dict[str, Path], tmp_path: Path) -> None:
    """The launcher (``node_modules/.bin/engine`` → ``engine/bin/engine.js``) finds its native binary in
    another package of the same tree: the whole tree shows, read-only, and Node.js for the script."""
    tree = tmp_path / "prefix" / "node_modules"
    (tree / "engine" / "bin").mkdir(parents=True)
    (tree / "engine-linux-x64").mkdir()
    (tree / "engine-linux-x64" / "native").write_text("#!/bin/sh\necho native\n")
    (tree / "engine-linux-x64" / "native").chmod(0o755)
    launcher = tree / "engine" / "bin" / "engine.js"
    launcher.write_text(f"#!/usr/bin/env node\nrequire('child_process').execFileSync('{tree}/engine-linux-x64/native', {{stdio: 'inherit'}})\n")
    launcher.chmod(0o755)
    (tree / ".bin").mkdir()
    (tree / ".bin" / "engine").symlink_to("../engine/bin/engine.js")
    # Node.js in a directory of its own (as with nvm), the only one on the child's PATH.
    system_node = Path("/usr/bin/node")
    if not system_node.exists():
        pytest.skip("no Node.js at /usr/bin/node")
    node_dir = tmp_path / "node" / "bin"
    node_dir.mkdir(parents=True)
    (node_dir / "node").write_text(f'#!/bin/sh\nexec {system_node} "$@"\n')
    (node_dir / "node").chmod(0o755)
    binds = runtime_binds(sandbox, tree / ".bin" / "engine", str(node_dir))
    assert binds == [Bind(tree / "engine" / "bin"), Bind(tree), Bind(node_dir)]
    launch = sandbox.launch(AgentDirs.of(places["state"], "a"))
    await launch.prepare([str(launcher.resolve())], env={"PATH": str(node_dir)}, cwd=places["repo"], binds=binds)
    process = await asyncio.create_subprocess_exec(*launch.argv, env=launch.env, cwd=launch.cwd, pass_fds=launch.pass_fds,
                                                   stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    launch.spawned()
    out, _ = await process.communicate()
    await launch.release()
    assert (process.returncode, out) == (0, b"native\n")
    assert sandbox.directory_binds(Path("/usr/lib/node_modules")) == []


async def test_the_agent_s_login_shell_is_the_service_user_s(sandbox: Sandbox, places: dict[str, Path]) -> None:
    """Codex runs commands with the passwd entry's shell: bash-isms work as they do outside."""
    own = next((line for line in Path("/etc/passwd").read_text().splitlines() if line.split(":")[2] == str(os.getuid())), "")
    shell = own.split(":")[6] if own else ""
    expected = shell if shell in Path("/etc/shells").read_text().split() and os.access(shell, os.X_OK) else "/bin/sh"
    code, out = await run(sandbox.launch(AgentDirs.of(places["state"], "a")), ["sh", "-c", "getent passwd agent | cut -d: -f7"], places["repo"])
    assert (code, out.strip()) == (0, expected)


async def test_unconfined_private_files_are_0600_in_the_agent_directory_until_released(places: dict[str, Path]) -> None:
    dirs = AgentDirs.of(places["state"], "a")
    dirs.create()
    launch = Sandbox.off("test").launch(dirs)
    path = launch.private_file("mcp-config.json", b"{}")
    await launch.prepare(["true"], env={}, cwd=places["repo"])
    assert path.is_relative_to(dirs.root) and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert launch.argv == ["true"] and not launch.sandboxed
    await launch.release()
    assert not path.exists()


async def test_the_agent_gets_the_umask_the_service_was_started_with(
    sandbox: Sandbox, places: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(state_dir, "_started_umask", 0o022)
    previous = os.umask(state_dir.SERVICE_UMASK)  # as `agentchat start` runs
    try:
        code, out = await run(sandbox.launch(AgentDirs.of(places["state"], "a")), ["sh", "-c", "umask; echo x > new.txt"], places["repo"])
    finally:
        os.umask(previous)
    assert (code, out) == (0, "0022\n")
    assert stat.S_IMODE((places["repo"] / "new.txt").stat().st_mode) == 0o644

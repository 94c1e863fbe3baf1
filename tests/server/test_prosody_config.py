"""The generated Prosody config: what it must say, what it refuses, and that Prosody runs it."""

from __future__ import annotations

import asyncio
import re
import secrets
import shutil
import subprocess
import time
from pathlib import Path

import aiohttp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentchat.errors import ProsodyError
from agentchat.server.prosody_config import (
    ProsodyConfigParams,
    ServiceJids,
    lua_str,
    render_prosody_config,
    write_prosody_config,
)
from tests.harness.clients import UserClient
from tests.harness.prosody import ProsodyServer


def params(tmp_path: Path, **overrides: object) -> ProsodyConfigParams:
    values: dict[str, object] = {"domain": "chat.test", "run_dir": tmp_path, "c2s_port": 15222, "http_port": 15280}
    values.update(overrides)
    return ProsodyConfigParams(**values)  # type: ignore[arg-type]


def test_config_has_what_agentchat_relies_on(tmp_path: Path) -> None:
    text = render_prosody_config(params(tmp_path, admins=("admin@chat.test",)))
    for needle in (
        "network_settings = { nagle = false }",
        'modules_disabled = { "s2s" }',
        "s2s_ports = { }",
        '"admin_adhoc"',
        '"smacks"',
        '"carbons"',
        '"ping"',
        '"roster"',
        '"limits"',
        '"agentchat_unthrottle"',
        '"admin_rest"',
        'http_default_host = "chat.test"',
        'VirtualHost "chat.test"',
        'admins = { "admin@chat.test" }',
        'unlimited_jids = { "admin@chat.test" }',
        f'agentchat_service_jids_file = "{tmp_path}/service-jids.txt"',
        "c2s_require_encryption = false",
        'interfaces = { "127.0.0.1" }',
        'http_interfaces = { "127.0.0.1" }',
    ):
        assert needle in text, needle
    plugin_paths = re.search(r'plugin_paths = \{ "([^"]+)" \}', text)
    assert plugin_paths and (Path(plugin_paths.group(1)) / "mod_admin_rest.lua").is_file()
    assert '"mam"' not in text  # off unless asked for (quota cliff, G8)
    assert "$" not in text  # every placeholder was filled


def test_run_as_root_follows_the_parameter(tmp_path: Path) -> None:
    assert re.search(r"^run_as_root = true", render_prosody_config(params(tmp_path, run_as_root=True)), re.M)
    assert not re.search(r"^run_as_root", render_prosody_config(params(tmp_path, run_as_root=False)), re.M)


@pytest.mark.parametrize("interface", ["0.0.0.0", "*", "192.0.2.7", "::", "example.org"])
def test_plaintext_is_refused_off_loopback(tmp_path: Path, interface: str) -> None:
    with pytest.raises(ProsodyError, match="only allowed on loopback"):
        params(tmp_path, c2s_interfaces=("127.0.0.1", interface), allow_plaintext=True)


def test_public_interface_with_tls_requires_encryption(tmp_path: Path) -> None:
    text = render_prosody_config(
        params(tmp_path, c2s_interfaces=("*", "::"), allow_plaintext=False, tls_cert=tmp_path / "c.pem",
               tls_key=tmp_path / "k.pem", c2s_direct_tls_port=15223)
    )
    assert "c2s_require_encryption = true" in text
    assert 'interfaces = { "*"; "::" }' in text
    assert f'ssl = {{ certificate = "{tmp_path}/c.pem"; key = "{tmp_path}/k.pem" }}' in text
    assert "c2s_direct_tls_ports = { 15223 }" in text


@pytest.mark.parametrize("interface", ["127.0.0.1", "::1", "localhost", "127.0.0.2"])
def test_plaintext_is_allowed_on_loopback(tmp_path: Path, interface: str) -> None:
    assert "c2s_require_encryption = false" in render_prosody_config(params(tmp_path, c2s_interfaces=(interface,)))


def test_a_public_interface_needs_a_certificate(tmp_path: Path) -> None:
    with pytest.raises(ProsodyError, match="needs tls_cert"):
        params(tmp_path, c2s_interfaces=("*",), allow_plaintext=False)


@pytest.mark.parametrize(
    "bad",
    [
        {"domain": "Not A Domain"},
        {"c2s_port": 0},
        {"http_port": 15222},
        {"tls_cert": Path("/c.pem")},
        {"c2s_direct_tls_port": 15223},
        {"admins": ("not-a-jid",)},
        {"c2s_rate": "fast"},
        {"c2s_interfaces": ()},
    ],
)
def test_bad_parameters_are_refused(tmp_path: Path, bad: dict[str, object]) -> None:
    with pytest.raises(ProsodyError):
        params(tmp_path, **bad)


def test_mam_uses_the_chosen_archive_store(tmp_path: Path) -> None:
    text = render_prosody_config(params(tmp_path, mam=True, archive_store="memory"))
    assert '"mam"' in text and 'storage = { archive = "memory" }' in text and 'archive_expires_after = "1w"' in text


@pytest.mark.skipif(shutil.which("lua5.4") is None, reason="needs the lua5.4 interpreter")
@settings(max_examples=25, deadline=None)
@given(st.lists(st.text(st.characters(blacklist_categories=("Cs",))), min_size=1, max_size=20))
def test_lua_string_literals_round_trip(values: list[str]) -> None:
    script = "local t = {" + ", ".join(lua_str(v) for v in values) + "}\n"
    script += 'for _, s in ipairs(t) do io.write(#s, ":", s) end\n'
    out = subprocess.run(["lua5.4", "-"], input=script.encode(), capture_output=True, check=True).stdout
    decoded = []
    while out:
        length, _, rest = out.partition(b":")
        decoded.append(rest[: int(length)].decode())
        out = rest[int(length):]
    assert decoded == values


def test_prosodyctl_accepts_a_config_in_an_awkward_directory(tmp_path: Path) -> None:
    run_dir = tmp_path / 'odd "dir" with \\ and spaces'
    config = write_prosody_config(params(run_dir))
    assert (run_dir / "certs").is_dir() and (run_dir / "data").is_dir()  # G22
    result = subprocess.run(["luac5.4", "-p", str(config)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


async def test_generated_config_serves_logins_and_messages(prosody: ProsodyServer, user_client) -> None:
    alice = await user_client("alice")
    bob = await user_client("bob")
    await alice.send_chat_state(bob.bare_jid, "composing")  # XEP-0085 passes through
    sent_id = await alice.send(bob.bare_jid, "hello bob")
    received = await bob.next_message(from_=alice.bare_jid, timeout=5)
    assert (received.body, received.id) == ("hello bob", sent_id)
    assert [s.state for s in bob.chat_states][:1] == ["composing"]


async def test_http_requests_for_127_0_0_1_reach_the_virtual_host(prosody: ProsodyServer) -> None:
    # Without http_default_host, Host: 127.0.0.1 gets "Unknown host" (G9).
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{prosody.http_port}/admin_rest/ping") as response:
            assert response.status == 401  # our module answered: it wants credentials
            assert response.headers["Content-Type"].startswith("application/json")


@pytest.fixture
def slow_prosody():  # type: ignore[no-untyped-def]
    """A server whose people are held to Prosody's own 10kb/s (a tight prosody.humanRate)."""
    with ProsodyServer.started(c2s_rate="10kb/s") as server:
        yield server


async def test_service_account_is_not_throttled_but_a_human_is(slow_prosody: ProsodyServer, user_client) -> None:
    """300 kB burst: at mod_limits' 10 kB/s a human needs ~30 s; a service account must not."""
    prosody = slow_prosody
    count, size = 100, 3000
    bodies = [f"{i:04d} " + "x" * (size - 5) for i in range(count)]
    burst_bytes = count * size
    sink = await user_client("sink", server=prosody)
    service = await user_client("svc", service=True, server=prosody)
    human = await user_client("human", server=prosody)

    async def burst(sender: UserClient) -> None:
        for body in bodies:
            await sender.send(sink.bare_jid, body)

    started = time.monotonic()
    await burst(service)
    await sink.expect(lambda m: m.body.startswith(f"{count - 1:04d}"), timeout=10, from_=service.bare_jid)
    service_seconds = time.monotonic() - started
    service_rate = burst_bytes / service_seconds

    # The human's same burst: measure what gets through in a short window, then give up on it.
    window = 2.0
    started = time.monotonic()
    await burst(human)
    with pytest.raises(TimeoutError):
        await sink.expect(lambda m: m.body.startswith(f"{count - 1:04d}"), timeout=window, from_=human.bare_jid)
    human_bytes = sum(len(m.body) for m in sink.messages if m.from_bare == human.bare_jid)
    human_rate = human_bytes / (time.monotonic() - started)
    await human.disconnect(timeout=0.5)

    print(f"service: {burst_bytes} B in {service_seconds:.2f} s ({service_rate / 1024:.0f} kB/s); "
          f"human: {human_bytes} B in {window:.1f} s ({human_rate / 1024:.1f} kB/s)")
    assert service_seconds < 5.0, "a service account's 300 kB took as long as the throttle implies"
    assert human_rate < 30 * 1024, "a human's burst was not throttled"
    assert service_rate > 5 * human_rate


async def test_service_jids_file_is_replaced_atomically(tmp_path: Path) -> None:
    jids = ServiceJids(tmp_path / "jids.txt")
    await asyncio.gather(*(jids.add(f"agent{i}@chat.test") for i in range(20)))
    await jids.remove("agent3@chat.test")
    assert jids.read() == {f"agent{i}@chat.test" for i in range(20)} - {"agent3@chat.test"}
    assert [p.name for p in tmp_path.iterdir()] == ["jids.txt"]  # no temp file left behind
    with pytest.raises(ProsodyError):
        await jids.add("not a jid")


def test_optional_extras_start(tmp_path: Path) -> None:
    """MAM (memory store), MUC, HTTP upload and mod_groups: Prosody accepts the rendered config."""
    groups = tmp_path / "groups.txt"
    groups.write_text("[Agents]\nadmin@localhost=Admin\n")
    server = ProsodyServer.create(run_dir=tmp_path / "run", mam=True, archive_store="memory", muc=True,
                                  http_upload=True, groups_file=groups)
    try:
        server.start_blocking()
        assert server.running
        log = server.log_tail(20000)
        assert "\terror\t" not in log, log
        assert "Serving 'file_share'" in log
    finally:
        server.cleanup()


async def test_the_service_jids_file_is_read_again_once_it_changed(slow_prosody: ProsodyServer, user_client) -> None:
    """mod_agentchat_unthrottle parses the file only when its version token changed: a JID taken out of it is
    throttled at its next login, and put back, unthrottled again (the cached list never goes stale)."""
    prosody = slow_prosody
    count, size = 60, 3000
    bodies = [f"{i:04d} " + "x" * (size - 5) for i in range(count)]
    sink = await user_client("sink", server=prosody)
    svc = await user_client("svc", service=True, server=prosody)
    password = svc.xmpp.password

    async def burst_seconds(sender, window: float) -> float | None:
        marker = secrets.token_hex(3)
        started = time.monotonic()
        for body in bodies:
            await sender.send(sink.bare_jid, marker + body)
        try:
            await sink.expect(lambda m: m.body.startswith(f"{marker}{count - 1:04d}"), timeout=window, from_=sender.bare_jid)
        except TimeoutError:
            return None
        return time.monotonic() - started

    assert await burst_seconds(svc, 5) is not None
    await svc.disconnect()
    await prosody.service_jids.remove(svc.bare_jid)
    again = await user_client(svc.bare_jid.split("@")[0], password=password, create=False, unique=False, server=prosody)
    assert await burst_seconds(again, 2) is None, "taken out of the file, it was still unthrottled"
    await again.disconnect(timeout=0.5)
    await prosody.mark_service(svc.bare_jid)
    back = await user_client(svc.bare_jid.split("@")[0], password=password, create=False, unique=False, server=prosody)
    assert await burst_seconds(back, 5) is not None, "put back into the file, it was still throttled"

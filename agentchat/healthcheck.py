"""``python -m agentchat.healthcheck``: is the service really serving? (the Docker HEALTHCHECK)

Three probes, each of something a user depends on, not just an open port:

* c2s: Prosody answers a stream header with its stream features (it listens ~100 ms before its
  hosts are active, pitfall G2);
* MCP: the permission endpoint answers a request without a bearer token with 401, so it is up
  and guarding the tool that Claude Code calls;
* manager: the manager account has a live session (mod_admin_rest, as the admin), so a user's
  ``help`` gets an answer.

Settings come from the service's config file only (``--config``, else ``$AGENTCHAT_CONFIG``, else
``$AGENTCHAT_HOME/config.json``): the container's entrypoint writes the effective values there,
while the container's environment may still hold values it replaced (a default password).
Exit status 0 and one ``healthy:`` line, or 1 and one ``unhealthy:`` line naming the failed probe.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import aiohttp

from agentchat.config import Settings, load_settings, state_home
from agentchat.errors import AgentChatError
from agentchat.server.readiness import wait_for_stream_features

PROBE_TIMEOUT = 5.0
CONFIG_ENV = "AGENTCHAT_CONFIG"


class Unhealthy(AgentChatError):
    """A probe failed; the message says which and what was seen."""


def _connect_host(host: str) -> str:
    return {"*": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1", "localhost": "127.0.0.1"}.get(host, host)


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


async def probe_c2s(settings: Settings, timeout: float) -> str:
    host = _connect_host(settings.xmpp.host)
    try:
        await wait_for_stream_features(host, settings.xmpp.port, settings.xmpp.domain, timeout)
    except AgentChatError as exc:
        raise Unhealthy(f"c2s: {exc}") from None
    return f"c2s {host}:{settings.xmpp.port}"


async def probe_mcp(session: aiohttp.ClientSession, settings: Settings) -> str:
    url = f"http://{_url_host(_connect_host(settings.mcp.host))}:{settings.mcp.port}/mcp"
    try:
        async with session.post(url, json={}) as response:
            status = response.status
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise Unhealthy(f"MCP endpoint {url} does not answer: {exc or type(exc).__name__}") from None
    if status != 401:
        raise Unhealthy(f"MCP endpoint {url} answered an unauthenticated request with {status}, expected 401")
    return "MCP guarded (401)"


async def probe_manager(session: aiohttp.ClientSession, settings: Settings) -> str:
    if settings.xmpp.admin_password is None:
        raise Unhealthy("manager: xmpp.adminPassword is not in the config file")
    url = f"{settings.admin_rest_url.rstrip('/')}/user/{settings.manager.username}"
    credentials = f"{settings.xmpp.admin_jid}:{settings.xmpp.admin_password.get_secret_value()}"
    authorization = "Basic " + base64.b64encode(credentials.encode()).decode("ascii")
    try:
        async with session.get(url, headers={"Authorization": authorization}) as response:
            status = response.status
            data = await response.json(content_type=None) if status == 200 else None
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        raise Unhealthy(f"manager: {url} does not answer: {exc or type(exc).__name__}") from None
    if status != 200:
        raise Unhealthy(f"manager: {url} answered {status}")
    user = data.get("result", {}).get("user", {}) if isinstance(data, dict) else {}
    if not isinstance(user, dict) or user.get("connected") is not True:
        raise Unhealthy(f"manager: {settings.manager_jid} is not logged in")
    return f"{settings.manager_jid} online"


async def check(settings: Settings, timeout: float = PROBE_TIMEOUT) -> list[str]:
    """Run every probe; return their summaries, or raise Unhealthy at the first failure."""
    passed = [await probe_c2s(settings, timeout)]
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    async with aiohttp.ClientSession(timeout=client_timeout, headers={"User-Agent": "agentchat-healthcheck"}) as session:
        passed.append(await probe_mcp(session, settings))
        passed.append(await probe_manager(session, settings))
    return passed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agentchat.healthcheck", description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, help="service config file (default: $AGENTCHAT_CONFIG or "
                        "$AGENTCHAT_HOME/config.json)")
    parser.add_argument("--timeout", type=float, default=PROBE_TIMEOUT, help="seconds per probe")
    args = parser.parse_args(argv)
    home = state_home()
    config_file = args.config or Path(os.environ.get(CONFIG_ENV) or home / "config.json")
    try:
        settings = load_settings(config_file, environ={"AGENTCHAT_HOME": str(home)}, dotenv_files=[])
        passed = asyncio.run(check(settings, args.timeout))
    except AgentChatError as exc:
        print(f"unhealthy: {exc}", file=sys.stderr)
        return 1
    print("healthy: " + ", ".join(passed))
    return 0


if __name__ == "__main__":
    sys.exit(main())

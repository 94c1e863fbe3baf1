"""The `agentchat` command: start, config check, user add."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import logging
import os
import re
import secrets
import sys
from pathlib import Path
from typing import Any

from agentchat import __version__
from agentchat.agents.backends.engines import credential_variables
from agentchat.config import Settings, dotenv_paths, export_agent_variables, load_settings
from agentchat.errors import AgentChatError, ConfigError
from agentchat.memory import return_big_blocks_to_the_system
from agentchat.state_dir import prepare_state_dir, restrict_umask

log = logging.getLogger("agentchat")

EXIT_CONFIG = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="agentchat", description="Coding agents in your XMPP client.")
    parser.add_argument("--version", action="version", version=f"agentchat {__version__}")
    parser.add_argument("--config", type=Path, help="config file (default: $AGENTCHAT_HOME/config.json)")
    parser.add_argument(
        "--env-file", type=Path, help="a .env file to read (default: $AGENTCHAT_HOME/.env only, never ./.env)"
    )
    commands = parser.add_subparsers(dest="command", required=True)

    start = commands.add_parser("start", help="run the service")
    start.add_argument("--embedded-prosody", action="store_true", help="start and supervise our own Prosody")
    start.add_argument("--user", help="with --embedded-prosody: the human account to create (default: $USER or 'me')")
    start.add_argument("--public", action="store_true", default=None,
                       help="with --embedded-prosody: serve phones on prosody.interfaces, TLS required")
    start.add_argument("--direct-tls-port", type=int, help="with --embedded-prosody: also offer TLS from the first byte "
                       "(XEP-0368) on this port, e.g. 5223")
    start.add_argument("--port", type=int, help="XMPP port (overrides XMPP_PORT)")
    start.add_argument("--domain", help="XMPP domain (overrides XMPP_DOMAIN)")
    start.add_argument("--mcp-port", type=int, help="MCP port (overrides MCP_PORT)")
    start.add_argument("--work-base-path", type=Path, help="repositories folder (overrides WORK_BASE_PATH)")
    start.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"])

    config = commands.add_parser("config", help="inspect the configuration")
    config_commands = config.add_subparsers(dest="config_command", required=True)
    config_commands.add_parser("check", help="print the effective configuration, secrets masked")

    user = commands.add_parser("user", help="manage human accounts on the embedded Prosody")
    user_commands = user.add_subparsers(dest="user_command", required=True)
    add = user_commands.add_parser("add", help="create an account and print its password")
    add.add_argument("jid", help="user@domain, or just user")
    add.add_argument(
        "--password",
        help="choose the password: '-' asks for it (or reads a line from stdin), so that ps never shows it; "
        "default: a random one",
    )

    runner = commands.add_parser("runner", help="other machines that run agents (see README, Several machines)")
    runner_commands = runner.add_subparsers(dest="runner_command", required=True)
    runner_add = runner_commands.add_parser("add", help="on the hub: register a machine; prints the line to run there")
    runner_add.add_argument("name", help="the machine's name, e.g. laptop")
    runner_add.add_argument("--server", help="the address the machine reaches the hub's server at (default: the domain)")
    runner_add.add_argument("--server-port", type=int, help="its port (default: xmpp.port)")
    runner_add.add_argument("--domain", help="the XMPP domain (default: the running embedded server's, else XMPP_DOMAIN)")
    runner_commands.add_parser("list", help="on the hub: the registered machines")
    runner_remove = runner_commands.add_parser("remove", help="on the hub: unregister a machine that runs no agent")
    runner_remove.add_argument("name")
    runner_start = runner_commands.add_parser("start", help="on the other machine: run agents for the hub")
    runner_start.add_argument("--server", help="HOST:PORT of the hub's server (first start: from `runner add`)")
    runner_start.add_argument("--jid", help="the runner's account (first start)")
    runner_start.add_argument("--password", help="its password at the first start: - reads it from the terminal or stdin; default: $AGENTCHAT_RUNNER_PASSWORD, as the line of `runner add` sets it (ps shows no environment)")
    runner_start.add_argument("--hub", help="the hub's JID (default: manager@ the JID's domain)")
    runner_start.add_argument("--fingerprint", help="SHA-256 fingerprint of the server's certificate, to pin")
    runner_start.add_argument("--work-base-path", type=Path, help="repositories folder (overrides WORK_BASE_PATH)")
    runner_start.add_argument("--mcp-port", type=int, help="MCP port on this machine's loopback (overrides MCP_PORT)")
    runner_start.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return parser


def flag_overrides(args: argparse.Namespace) -> dict[str, Any]:
    mapping = {
        "port": "xmpp.port",
        "domain": "xmpp.domain",
        "mcp_port": "mcp.port",
        "work_base_path": "work.base_path",
        "log_level": "logging.level",
        "public": "prosody.public",
        "direct_tls_port": "prosody.direct_tls_port",
    }
    return {field: getattr(args, name) for name, field in mapping.items() if getattr(args, name, None) is not None}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Everything agentchat creates (state, logs, secrets, Prosody's data) is private from the start.
    restrict_umask()
    try:
        dotenv = dotenv_paths(args.env_file)
        settings = load_settings(args.config, flag_overrides(args), dotenv_files=dotenv)
        export_agent_variables(dotenv, also=credential_variables(settings.agents))
        if args.command == "config":
            return config_check(settings)
        if args.command == "user":
            return asyncio.run(user_add(settings, args.jid, args.password))
        if args.command == "runner":
            return run_runner_command(args)
        return run_service(settings, embedded=args.embedded_prosody, user=args.user, env_files=dotenv)
    except ConfigError as exc:
        print(f"agentchat: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except AgentChatError as exc:
        print(f"agentchat: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def config_check(settings: Settings) -> int:
    from rich.console import Console

    Console().print_json(json.dumps(settings.masked()))
    try:
        settings.require_secrets()
    except ConfigError as exc:
        print(f"agentchat: warning: {exc} (fine with --embedded-prosody, which generates it)", file=sys.stderr)
    try:
        settings.require_allowed_users()
    except ConfigError as exc:
        print(f"agentchat: warning: {exc} (fine with --embedded-prosody)", file=sys.stderr)
    return 0


def run_service(settings: Settings, *, embedded: bool, user: str | None, env_files: list[Path] | None = None) -> int:
    from agentchat.logs import setup_logging

    if not embedded:
        settings.require_secrets()
        # On a server of its own the domain is not ours alone: who may create agents must be said.
        settings.require_allowed_users()
    warnings = prepare_state_dir(settings.home)
    return_big_blocks_to_the_system()
    setup_logging(settings.logging.level, settings.home / "agentchat.log")
    log.info("Agent Chat Service starting...")
    for warning in warnings:
        log.warning("%s", warning)
    ignored = Path.cwd() / ".env"
    read = {path.resolve() for path in env_files or [settings.home / ".env"]}
    if ignored.is_file() and ignored.resolve() not in read:
        log.warning("ignoring %s: only $AGENTCHAT_HOME/.env or --env-file FILE are read", ignored)
    asyncio.run(_serve(settings, embedded=embedded, user=user))
    return 0


async def _serve(settings: Settings, *, embedded: bool, user: str | None) -> None:
    from agentchat.app import Service

    server = None
    if embedded:
        from agentchat.embedded_setup import default_user_name, ensure_human_account, start_embedded
        from agentchat.login_hint import login_hint

        server = await start_embedded(settings)
        log.info("Embedded Prosody started on %s:%d (pid %s)", settings.xmpp.host, settings.xmpp.port, server.prosody.pid)
    try:
        service = Service(settings)
        if server is not None:
            account = await ensure_human_account(server, settings, user or default_user_name())
            # The user's own credentials, printed on purpose to the terminal (never to the log).
            print(await asyncio.to_thread(login_hint, settings, server, account.jid, account.password), flush=True)
    except BaseException:
        if server is not None:
            await server.prosody.stop()
        raise

    stopped = False

    async def stop_prosody() -> None:
        nonlocal stopped
        if server is not None and not stopped:
            stopped = True
            await server.prosody.stop()
            log.info("Embedded Prosody stopped")

    try:
        await service.run_until_signalled(then=stop_prosody)
    finally:
        await stop_prosody()  # idempotent; after a failed start too


def run_runner_command(args: argparse.Namespace) -> int:
    from agentchat.runners import registration

    if args.runner_command == "start":
        return run_runner(args)
    settings = load_settings(args.config, flag_overrides(args))
    if args.runner_command == "list":
        records = asyncio.run(registration.list_runners(settings))
        print("\n".join(f"{r.name}\t{r.jid}" for r in records) if records else "No runners registered.")
        return 0
    if args.runner_command == "remove":
        asyncio.run(registration.remove_runner(settings, args.name.strip().lower()))
        print(f"Runner {args.name} removed: its account is deleted.")
        return 0
    registered = asyncio.run(registration.add_runner(settings, args.name, args.server, args.server_port))
    # The runner's password, printed on purpose to the terminal (never to the log).
    print(f"Runner {registered.name} registered ({registered.jid}). On that machine, with agentchat installed, run:\n")
    print(f"  {registered.join_line()}\n")
    print("It keeps these settings in its state directory (AGENTCHAT_HOME, default ~/.agent-chat): later, "
          "`agentchat runner start` alone starts it again.")
    if registered.fingerprint_note:
        print(f"Note: {registered.fingerprint_note}")
    return 0


def run_runner(args: argparse.Namespace) -> int:
    from agentchat.config import state_home
    from agentchat.logs import setup_logging
    from agentchat.runners import registration
    from agentchat.runners.runner import RunnerService

    home = state_home()
    # The password from the environment (the printed line sets it so: `ps` shows no environment), or
    # `--password -` from the terminal or stdin; a literal --password works too, but `ps` would show it.
    password = os.environ.get(registration.RUNNER_PASSWORD_ENV) if args.password is None else args.password
    if password == "-":
        password = _read_password()
    if args.jid or args.server:
        if not (args.jid and password and args.server):
            raise ConfigError(f"--server, --jid and the password ({registration.RUNNER_PASSWORD_ENV}) go together "
                              "(the line `agentchat runner add` printed)")
        asyncio.run(registration.join(home, args.server, args.jid, password, args.hub, args.fingerprint))
    overrides = {**registration.overrides_from(registration.joined(home)), **flag_overrides(args)}
    settings = load_settings(args.config, overrides)
    setup_logging(settings.logging.level, settings.home / "agentchat.log")
    log.info("Agent Chat runner starting...")

    async def serve() -> None:  # built in the loop it runs in (slixmpp binds a client to the running loop)
        await RunnerService(settings).run_until_signalled()

    asyncio.run(serve())
    return 0


_JID = re.compile(r"^([^@/\s]+)(?:@([^@/\s]+))?$")


async def user_add(settings: Settings, jid: str, password: str | None) -> int:
    from agentchat.embedded_setup import add_user, adopt_embedded_endpoints

    await adopt_embedded_endpoints(settings)  # the domain a running `start --domain` serves
    match = _JID.match(jid.strip())
    if not match:
        raise ConfigError(f"{jid!r} is not a JID: use user@{settings.xmpp.domain}")
    username, domain = match.group(1).lower(), (match.group(2) or settings.xmpp.domain).lower()
    if domain != settings.xmpp.domain:
        raise ConfigError(f"the embedded server serves {settings.xmpp.domain}, not {domain}")
    if username in (settings.manager.username, settings.xmpp.admin_username):
        raise ConfigError(f"{username} is a service account; choose another name")
    if password == "-":
        password = await asyncio.to_thread(_read_password)
    password = password or secrets.token_urlsafe(12)
    not_in_roster = await add_user(settings, username, password)
    print(f"Created {username}@{domain}\npassword: {password}")
    if not_in_roster is None:
        print(f"{settings.manager_jid} is in its contacts (group \"agentchat\"): send it `help`")
    else:
        print(f"{settings.manager_jid} is not in its contacts yet: {not_in_roster}; run this command again "
              "while `agentchat start --embedded-prosody` runs, or add the manager by hand")
    return 0


def _read_password() -> str:
    """The password from the terminal (not echoed) or one line of stdin."""
    if sys.stdin.isatty():
        return getpass.getpass("Password: ")
    return sys.stdin.readline().rstrip("\n")


if __name__ == "__main__":
    sys.exit(main())

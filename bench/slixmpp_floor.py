"""The slixmpp floor for the scale figures: bare slixmpp clients, with the plugins agentchat's bots
register, logged in from one fresh process. Per client: RSS and login time. Nothing of agentchat
runs here, so what an agent costs beyond these figures is ours.

``python -m bench.slixmpp_floor SETTINGS.json COUNT CONCURRENCY own|shared`` prints one JSON line.
``own``: each client builds its TLS context as slixmpp does by default (loading the system CA
store); ``shared``: one context for all, as agentchat's bots do. The accounts are created first
through mod_admin_rest (SETTINGS: the service settings JSON).
"""

from __future__ import annotations

import asyncio
import gc
import json
import secrets
import sys
import time
from pathlib import Path

import slixmpp

from agentchat.provisioning.admin_rest import AdminRestProvisioner
from agentchat.xmpp.session import PLUGINS
from agentchat.xmpp.tls import client_tls_context
from bench.service_host import rss_kb
from bench.stats import summarize


async def login(jid: str, password: str, host: str, port: int, shared: bool) -> tuple[slixmpp.ClientXMPP, float]:
    began = time.perf_counter()
    context = {"ssl_context": client_tls_context(False)} if shared else {}
    client = slixmpp.ClientXMPP(jid, password, plugin_config={"feature_mechanisms": {"unencrypted_scram": True}}, **context)
    client.enable_plaintext, client.enable_starttls, client.enable_direct_tls = True, False, False
    for plugin in PLUGINS:
        client.register_plugin(plugin)
    started = asyncio.get_running_loop().create_future()
    client.add_event_handler("session_start", lambda _: started.done() or started.set_result(None))
    client.connect(host, port)
    await asyncio.wait_for(started, 30)
    client.send_presence()
    return client, (time.perf_counter() - began) * 1000


async def main(settings: dict, count: int, concurrency: int, shared: bool) -> dict:
    xmpp = settings["xmpp"]
    provisioner = AdminRestProvisioner(
        settings["provisioning"]["adminRestUrl"], xmpp["domain"], f"{xmpp['adminUsername']}@{xmpp['domain']}", xmpp["adminPassword"]
    )
    names = [f"floor-{secrets.token_hex(4)}" for _ in range(count)]
    password = secrets.token_urlsafe(16)
    for name in names:
        await provisioner.create_account(name, password)
    if shared:
        client_tls_context(False)  # built before "before": it exists once, whatever the number of bots
    gc.collect()
    before = rss_kb()
    gate = asyncio.Semaphore(concurrency)

    async def one(name: str) -> tuple[slixmpp.ClientXMPP, float]:
        async with gate:
            return await login(f"{name}@{xmpp['domain']}", password, xmpp["host"], xmpp["port"], shared)

    clients = await asyncio.gather(*(one(name) for name in names))
    gc.collect()
    after = rss_kb()
    for client, _ in clients:
        client.abort()
    for name in names:
        await provisioner.delete_account(name)
    await provisioner.close()
    return {
        "tls_context": "shared" if shared else "own",
        "clients": count,
        "rss_before_kb": before,
        "rss_after_kb": after,
        "rss_per_client_kb": (after - before) / count,
        "login_ms": summarize(ms for _, ms in clients),
    }


if __name__ == "__main__":
    data = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
    print(json.dumps(asyncio.run(main(data, int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "shared"))), flush=True)

"""The web client: Converse.js, served by our own Prosody (mod_http_files) next to WebSocket and BOSH.

Nothing to install for the person: they open the URL the login hint prints. The page is
``prosody/www/`` (index.html with a strict CSP, agentchat.js) plus ``settings.js`` written here (the
domain and the manager's JID) and ``dist/``: Converse's own build, from the npm package
``converse.js`` that ``make install`` fetches into ``.cache/`` (the Docker image carries it under
``<prefix>/share/agentchat``). Without it there is no web client, and the hint says how to get it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import sysconfig
from collections.abc import Sequence
from pathlib import Path

from agentchat.errors import ProsodyError
from agentchat.server.prosody_config import ProsodyConfigParams, atomic_write_text, prosody_files_dir

# The Converse.js release the page is written for (Makefile: CONVERSE_VERSION; checked by a test).
CONVERSE_VERSION = "14.0.0"
CONVERSE_DIR_ENV = "AGENTCHAT_CONVERSE_DIR"
PAGE_FILES = ("index.html", "agentchat.js")
SETTINGS_FILE = "settings.js"


def converse_dist_dir() -> Path | None:
    """Converse's ``dist/`` folder, or None: ``$AGENTCHAT_CONVERSE_DIR``; ``.cache/`` of a source checkout
    (what ``make install`` fetched); ``<prefix>/share/agentchat/`` (the Docker image)."""
    folder = f"converse.js-{CONVERSE_VERSION}"
    candidates: list[Path] = []
    if os.environ.get(CONVERSE_DIR_ENV):
        candidates.append(Path(os.environ[CONVERSE_DIR_ENV]))
    candidates.append(Path(__file__).resolve().parents[2] / ".cache" / folder / "dist")
    candidates.append(Path(sysconfig.get_path("data")) / "share" / "agentchat" / folder / "dist")
    candidates.append(Path(sys.prefix) / "share" / "agentchat" / folder / "dist")
    for candidate in candidates:
        if (candidate / "converse.min.js").is_file():
            return candidate
    return None


def write_web_root(target: Path, domain: str, manager_jid: str, dist: Path | None = None) -> Path | None:
    """The page under ``target`` (its files, settings.js, ``dist`` linked to Converse's build); None,
    and nothing written, when Converse is not installed. Blocking file I/O: use a thread."""
    dist = dist or converse_dist_dir()
    if dist is None:
        return None
    source = prosody_files_dir() / "www"
    try:
        target.mkdir(parents=True, exist_ok=True, mode=0o755)
        for name in PAGE_FILES:
            shutil.copyfile(source / name, target / name)
        settings = {"domain": domain, "manager": manager_jid}
        atomic_write_text(target / SETTINGS_FILE, f"window.AGENTCHAT_SETTINGS = {json.dumps(settings)};\n", mode=0o644)
        link = target / "dist"
        if link.is_symlink() or link.exists():
            if link.is_symlink() and Path(os.readlink(link)) == dist:
                return target
            if link.is_dir() and not link.is_symlink():
                shutil.rmtree(link)
            else:
                link.unlink()
        link.symlink_to(dist, target_is_directory=True)
    except OSError as exc:
        raise ProsodyError(f"cannot write the web client to {target}: {exc}") from exc
    return target


def web_client_url(params: ProsodyConfigParams) -> str | None:
    """Where a browser opens the web client, None when it is not served."""
    return params.external_url if params.web_root is not None else None


def missing_hint() -> str:
    return (f"not installed: Converse.js {CONVERSE_VERSION} comes from npm (`apt install npm`, "
            "then `make install` again)")


def main(argv: Sequence[str] | None = None) -> int:
    """Write the web client's folder (used by the Docker image's entrypoint); prints it, or exits 3
    when Converse.js is not installed."""
    parser = argparse.ArgumentParser(prog="python -m agentchat.server.web_client", description=main.__doc__)
    parser.add_argument("--domain", required=True)
    parser.add_argument("--manager-jid", required=True)
    parser.add_argument("--output", type=Path, required=True, help="the folder to write (Prosody's http_files_dir)")
    args = parser.parse_args(argv)
    try:
        written = write_web_root(args.output, args.domain, args.manager_jid)
    except ProsodyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if written is None:
        print(f"no web client: {missing_hint()}", file=sys.stderr)
        return 3
    print(written)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

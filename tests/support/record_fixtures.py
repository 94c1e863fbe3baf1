"""Re-record tests/fixtures/*.jsonl from the real Claude Code CLI, offline, against MockAnthropic.

    .venv/bin/python -m tests.support.record_fixtures [--cli PATH] [--out tests/fixtures]

Each recorded scenario runs one turn in a fresh CLI process (so ``total_cost_usd`` is the turn's
own cost) with a throwaway HOME, and writes the CLI's stdout lines verbatim, after a first
``{"__fake__":"meta",…}`` line (CLI version, cwd, session id, prompt; fake_claude substitutes the
recorded cwd and session id). The interrupt scenarios mark where the interrupt was sent with
``{"__fake__":"wait_interrupt"}`` and leave out the control_response (fake_claude writes its own).
The hand-made fault fixtures (garbage, unknown events, huge and half lines, crash, exit before
init) are then derived from the recorded ``text`` fixture, so one run refreshes everything.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import sys
import tempfile
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentchat.agents.backends.claude.locate import claude_version, locate_claude
from tests.support.mock_anthropic import Decision, MockAnthropic, PermissionStub, allow_all

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
TOKEN = "recording-token"
WAIT_INTERRUPT = {"__fake__": "wait_interrupt"}


@dataclass
class Scenario:
    name: str
    description: str
    prompt: str
    script: Callable[[MockAnthropic, Path], None] = lambda api, repo: None
    decide: Callable[[str, dict[str, Any], str], Decision | Awaitable[Decision]] = allow_all
    # Awaited after the prompt is sent; the interrupt follows.
    interrupt_when: Callable[[MockAnthropic, PermissionStub], Awaitable[None]] | None = None
    max_retries: int = 0
    resume_unknown: bool = False
    extra_env: dict[str, str] = field(default_factory=dict)


def _write_tool(api: MockAnthropic, repo: Path) -> None:
    api.script_tool_use(
        "Write",
        {"file_path": str(repo / "hello.txt"), "content": "hello from the mock\n"},
        text_before="I'll create hello.txt.",
    )


def _deny(tool_name: str, tool_input: dict[str, Any], tool_use_id: str) -> Decision:
    return {"behavior": "deny", "message": "denied by the user"}


def _deny_interrupt(tool_name: str, tool_input: dict[str, Any], tool_use_id: str) -> Decision:
    return {"behavior": "deny", "message": "denied by the user", "interrupt": True}


async def _never(tool_name: str, tool_input: dict[str, Any], tool_use_id: str) -> Decision:
    await asyncio.Event().wait()
    raise AssertionError("unreachable")


async def _when_streaming(api: MockAnthropic, stub: PermissionStub) -> None:
    await api.wait_for_requests(1)
    await asyncio.sleep(0.5)  # into the slow stream, as a person would be


async def _when_permission_pending(api: MockAnthropic, stub: PermissionStub) -> None:
    await asyncio.wait_for(stub.called.wait(), 20)


SCENARIOS = [
    Scenario("text", "one plain text turn (the mock echoes the prompt)", "hello there"),
    Scenario("thinking", "a thinking block, then text", "think first", script=lambda api, repo: api.script_text("Thought about it.", thinking="Let me consider the request.")),
    Scenario("tool_use", "text + Write tool use, allowed by the permission tool, then the final text", "please write hello.txt", script=_write_tool),
    Scenario("tool_denied", "Write denied by the permission tool; the model sees the message and answers", "please write hello.txt", script=_write_tool, decide=_deny),
    Scenario("tool_denied_interrupt", "Write denied with interrupt:true; the turn ends at once", "please write hello.txt", script=_write_tool, decide=_deny_interrupt),
    Scenario(
        "permission_interrupted",
        "interrupt while the permission tool has not answered yet",
        "please run a command",
        script=lambda api, repo: api.script_tool_use("Bash", {"command": "echo hi > bash_out.txt", "description": "Write hi to bash_out.txt"}),
        decide=_never,
        interrupt_when=_when_permission_pending,
    ),
    Scenario(
        "interrupt",
        "interrupt while the answer streams",
        "tell me a long story",
        script=lambda api, repo: api.script_text("Once upon a time " * 20, chunks=20, chunk_delay=0.3),
        interrupt_when=_when_streaming,
    ),
    Scenario(
        "api_error",
        "the API answers 500 three times: two announced retries, then is_error with subtype success",
        "this will fail",
        script=lambda api, repo: api.script_error(500, times=3),
        max_retries=2,
    ),
    Scenario("resume_unknown", "--resume with an unknown session id: printed at start, before any input", "", resume_unknown=True),
]


async def record(scenario: Scenario, cli: Path, version: str, api: MockAnthropic, stub: PermissionStub, out: Path) -> None:
    api.reset()
    stub.decide = scenario.decide
    stub.calls.clear()
    stub.called = asyncio.Event()
    with tempfile.TemporaryDirectory(prefix="record-") as scratch:
        home = Path(scratch) / "home"
        repo = Path(scratch) / "repo"
        home.mkdir()
        repo.mkdir()
        scenario.script(api, repo)
        session_id = str(uuid.uuid4())
        config = {"mcpServers": {"agentchat": {"type": "http", "url": stub.url, "headers": {"Authorization": f"Bearer {TOKEN}"}}}}
        argv = [str(cli), "-p", "--input-format", "stream-json", "--output-format", "stream-json", "--verbose"]
        argv += ["--resume" if scenario.resume_unknown else "--session-id", session_id]
        argv += ["--permission-prompt-tool", "mcp__agentchat__permission_prompt", "--mcp-config", json.dumps(config)]
        env = {**api.cli_env(home=home, max_retries=scenario.max_retries), **scenario.extra_env}
        process = await asyncio.create_subprocess_exec(
            *argv,
            cwd=repo,
            env={**os.environ, **env},
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            limit=1 << 30,
            start_new_session=True,
        )
        assert process.stdin and process.stdout and process.stderr
        lines: list[Any] = []
        if scenario.prompt:
            process.stdin.write((json.dumps({"type": "user", "message": {"role": "user", "content": scenario.prompt}}) + "\n").encode())

        async def interrupt() -> None:
            assert scenario.interrupt_when and process.stdin
            await scenario.interrupt_when(api, stub)
            lines.append(WAIT_INTERRUPT)
            process.stdin.write(b'{"type":"control_request","request_id":"req_int_1","request":{"subtype":"interrupt"}}\n')

        trigger = asyncio.create_task(interrupt()) if scenario.interrupt_when else None
        async with asyncio.timeout(60):
            async for raw in process.stdout:
                event = json.loads(raw)
                if event.get("type") != "control_response":
                    lines.append(raw.decode().rstrip("\n"))
                if event.get("type") == "result":
                    break
            process.stdin.close()
            stderr = (await process.stderr.read()).decode()
            exit_code = await process.wait()
        if trigger is not None:
            await trigger
        first = json.loads(next(line for line in lines if isinstance(line, str)))
        meta = {
            "__fake__": "meta",
            "scenario": scenario.name,
            "description": scenario.description,
            "recorded_with": version,
            "cwd": str(repo),
            "home": str(home),
            "session_id": session_id,
            "prompt": scenario.prompt,
            "exit_code_after_eof": exit_code,
            "stderr": stderr,
            "permission_calls": [call.tool_name for call in stub.calls],
            "api_requests": [request.answered_with for request in api.requests],
        }
        assert first.get("session_id") == session_id, first
        _write(out / f"{scenario.name}.jsonl", [meta, *lines])
        print(f"recorded {scenario.name}: {len(lines)} lines, exit {exit_code}", flush=True)


def _write(path: Path, lines: list[Any]) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for line in lines:
            handle.write((line if isinstance(line, str) else json.dumps(line, ensure_ascii=False)) + "\n")


def derive_fault_fixtures(out: Path) -> None:
    """The hand-made fixtures, built from the recorded text turn so that they stay realistic."""
    text_lines = (out / "text.jsonl").read_text(encoding="utf-8").splitlines()
    meta = json.loads(text_lines[0])
    init, assistant, result = text_lines[1], text_lines[2], text_lines[-1]
    base = {"__fake__": "meta", "recorded_with": meta["recorded_with"], "cwd": meta["cwd"], "session_id": meta["session_id"], "derived_from": "text"}
    session = meta["session_id"]

    def derived(name: str, description: str, *lines: Any) -> None:
        _write(out / f"{name}.jsonl", [{**base, "scenario": name, "description": description}, *lines])

    derived(
        "garbage",
        "lines that are not JSON objects among a normal turn",
        init,
        {"__fake__": "raw", "text": "this is not JSON"},
        {"__fake__": "raw", "text": "[1, 2, 3]"},
        {"__fake__": "raw", "text": '{"type": "assistant", "message": {"content": [{"type": "te'},
        {"__fake__": "raw", "b64": base64.b64encode(b"\xff\xfe\x00 binary \x80").decode()},
        {"__fake__": "raw", "text": ""},
        assistant,
        result,
    )
    unknown_assistant = json.loads(assistant)
    unknown_assistant["message"]["content"] = [{"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {"query": "x"}}]
    unknown_assistant["brand_new_field"] = {"nested": [1, 2]}
    derived(
        "unknown_events",
        "event types, subtypes, content blocks and fields this code does not know, among a normal turn",
        init,
        {"type": "brand_new_event", "payload": {"x": 1}, "session_id": session, "uuid": str(uuid.uuid4())},
        {"type": "system", "subtype": "future_subtype", "session_id": session, "uuid": str(uuid.uuid4())},
        {"type": "assistant", "message": "not an object", "session_id": session},
        unknown_assistant,
        assistant,
        result,
    )
    derived("huge_line", "an assistant text line of 10 MiB", init, {"__fake__": "huge_text", "bytes": 10 * 1024 * 1024}, result)
    derived("half_lines", "the assistant line written in three pieces with pauses", init, {"__fake__": "split", "line": assistant, "parts": 3, "pause": 0.05}, result)
    derived(
        "crash",
        "the CLI dies mid-turn with exit code 3 after some stderr",
        init,
        assistant,
        {"__fake__": "stderr", "text": "Error: simulated crash\n    at fakeFrame (fake_claude.py)"},
        {"__fake__": "raw", "text": '{"type":"assistant","message":{"content":[{"type":"text","text":"cut sh', "newline": False},
        {"__fake__": "exit", "code": 3},
    )
    derived(
        "exit_before_init",
        "the CLI fails before printing anything",
        {"__fake__": "stderr", "text": "Error: simulated failure before init"},
        {"__fake__": "exit", "code": 1},
    )
    print("derived the fault fixtures", flush=True)


async def main(cli: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    version = await claude_version(cli)
    print(f"recording with {cli} ({version})", flush=True)
    async with MockAnthropic() as api, PermissionStub(token=TOKEN) as stub:
        for scenario in SCENARIOS:
            await record(scenario, cli, version, api, stub, out)
    derive_fault_fixtures(out)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--cli", type=Path, default=None, help="the claude binary (default: CLAUDE_PATH, PATH, the SDK bundle)")
    parser.add_argument("--out", type=Path, default=FIXTURES)
    parser.add_argument("--derive-only", action="store_true", help="only rebuild the hand-made fixtures")
    args = parser.parse_args()
    if args.derive_only:
        derive_fault_fixtures(args.out)
        sys.exit(0)
    asyncio.run(main(args.cli or locate_claude(), args.out))

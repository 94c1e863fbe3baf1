"""One chat line per agent event: what the user sees while the agent works."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentchat.agents.backends.base import TurnResult
from agentchat.chat.events import (
    display_path,
    render_process_exit,
    render_tool_error,
    render_tool_use,
    render_turn_summary,
)

REPO = Path("/home/user/repo")


@pytest.mark.parametrize(
    ("name", "tool_input", "line"),
    [
        ("Bash", {"command": "npm test", "description": "Run tests"}, "🔧 Bash: `npm test`"),
        ("Edit", {"file_path": "/home/user/repo/src/auth.ts", "old_string": "a"}, "📝 Edit src/auth.ts"),
        ("Write", {"file_path": "/home/user/repo/src/x.py", "content": "x"}, "📝 Write src/x.py"),
        ("MultiEdit", {"file_path": "/home/user/repo/a.py", "edits": [{}, {}]}, "📝 MultiEdit a.py (2 edits)"),
        ("Read", {"file_path": "/home/user/repo/src/a.py"}, "📖 Read src/a.py"),
        ("Read", {"file_path": "/home/user/repo/a.py", "offset": 10, "limit": 20}, "📖 Read a.py (lines 10–29)"),
        ("Grep", {"pattern": "TODO", "path": "/home/user/repo/src"}, "🔎 Grep `TODO` in src"),
        ("Grep", {"pattern": "def main"}, "🔎 Grep `def main`"),
        ("Glob", {"pattern": "**/*.py"}, "🔎 Glob `**/*.py`"),
        ("WebFetch", {"url": "https://example.com/x", "prompt": "?"}, "🌐 WebFetch https://example.com/x"),
        ("WebSearch", {"query": "xep 0393"}, '🌐 WebSearch "xep 0393"'),
        ("TodoWrite", {"todos": [{}, {}, {}]}, "📋 TodoWrite (3 items)"),
        ("TodoWrite", {"todos": [{}]}, "📋 TodoWrite (1 item)"),
        ("Task", {"description": "Find callers", "prompt": "long"}, "🤖 Task: Find callers"),
        ("mcp__github__list_issues", {"repo": "a/b", "state": "open"}, '🔧 mcp__github__list_issues: {"repo":"a/b","state":"open"}'),
        ("ExitPlanMode", {}, "🔧 ExitPlanMode"),
    ],
)
def test_tool_lines(name: str, tool_input: dict[str, Any], line: str) -> None:
    assert render_tool_use(name, tool_input, REPO) == line


def test_a_long_multiline_command_shows_its_first_line_truncated() -> None:
    line = render_tool_use("Bash", {"command": "python -c '" + "x" * 300 + "'\necho done"})
    assert line.startswith("🔧 Bash: `python -c 'xxx")
    assert line.endswith("`…")
    assert len(line) < 140


def test_a_multiline_command_says_more_follows() -> None:
    assert render_tool_use("Bash", {"command": "cd api\nnpm test"}) == "🔧 Bash: `cd api`…"


def test_a_command_with_backticks_is_shown_bare() -> None:
    assert render_tool_use("Bash", {"command": "echo `date`"}) == "🔧 Bash: echo `date`"


def test_paths_outside_the_repository_stay_absolute() -> None:
    assert render_tool_use("Read", {"file_path": "/etc/hosts"}, REPO) == "📖 Read /etc/hosts"
    assert render_tool_use("Read", {"file_path": "/home/user/repo/../other/x"}, REPO) == (
        "📖 Read /home/user/repo/../other/x"
    )
    assert render_tool_use("Read", {"file_path": "/home/user/repository/x"}, REPO) == (
        "📖 Read /home/user/repository/x"
    )


def test_display_path() -> None:
    assert display_path("/home/user/repo", REPO) == "."
    assert display_path("src/a.py", REPO) == "src/a.py"
    assert display_path("/home/user/repo/src/a.py", None) == "/home/user/repo/src/a.py"


def test_other_tools_show_truncated_json() -> None:
    line = render_tool_use("mcp__x__y", {"text": "z" * 500})
    assert line.startswith('🔧 mcp__x__y: {"text":"zzz')
    assert line.endswith("…")
    assert len(line) < 150


def test_turn_summary() -> None:
    result = TurnResult(is_error=False, num_turns=2, duration_ms=4200, turn_cost_usd=0.054692)
    assert render_turn_summary(result) == "✅ Done · 2 steps · 4.2 s · $0.0547"


def test_turn_summary_without_cost_and_with_long_duration() -> None:
    result = TurnResult(is_error=False, num_turns=1, duration_ms=125_000)
    assert render_turn_summary(result) == "✅ Done · 1 step · 2 min 5 s"


def test_turn_summary_with_only_the_session_cost() -> None:
    result = TurnResult(is_error=False, num_turns=1, duration_ms=800, total_cost_usd=1.5)
    assert render_turn_summary(result) == "✅ Done · 1 step · 0.8 s · $1.50 session"


def test_interrupted_turn() -> None:
    result = TurnResult(is_error=True, subtype="error_during_execution")
    assert render_turn_summary(result) == "⏹ Stopped"


def test_failed_turn_shows_why() -> None:
    api_error = TurnResult(is_error=True, text="API Error: 500 {\"type\":\"server_error\"}")
    assert render_turn_summary(api_error) == '⚠️ Turn failed: API Error: 500 {"type":"server_error"}'
    crashed = TurnResult(is_error=True, subtype="error_during_execution", errors=("boom", "again"))
    assert render_turn_summary(crashed) == "⚠️ Turn failed: boom; again"
    max_turns = TurnResult(is_error=True, subtype="error_max_turns")
    assert render_turn_summary(max_turns) == "⚠️ Turn failed: reached the maximum number of turns"


def test_tool_error_is_one_short_line() -> None:
    assert render_tool_error("<tool_use_error>File has not been read yet.</tool_use_error>") == (
        "❌ File has not been read yet."
    )
    assert render_tool_error("Exit code 1\n\nnpm ERR! test failed\n") == "❌ Exit code 1 ⏎ npm ERR! test failed"
    long = render_tool_error("e" * 1000)
    assert len(long) <= 202 and long.endswith("…")
    assert render_tool_error("") == "❌ tool failed"


def test_process_exit_says_what_happened_and_what_to_do() -> None:
    assert render_process_exit(1, "Traceback…\nError: invalid API key.\n") == (
        "💥 The agent's process exited with code 1: Error: invalid API key. Send a message to start it again."
    )
    assert render_process_exit(-9) == "💥 The agent's process was killed by SIGKILL. Send a message to start it again."
    assert render_process_exit(None).startswith("💥 The agent's process ended.")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=50),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=10,
)
tool_names = st.sampled_from(
    ["Bash", "Edit", "MultiEdit", "Write", "Read", "Grep", "Glob", "WebFetch", "WebSearch", "TodoWrite", "Task"]
) | st.text(min_size=1, max_size=20)
tool_keys = st.sampled_from(
    ["command", "file_path", "path", "pattern", "url", "query", "todos", "edits", "description", "offset", "limit"]
) | st.text(max_size=10)


@settings(max_examples=200, deadline=None)
@given(tool_names, st.dictionaries(tool_keys, json_values, max_size=5))
def test_any_tool_input_gives_one_short_line(name: str, tool_input: dict[str, Any]) -> None:
    line = render_tool_use(name, tool_input, REPO)
    assert "\n" not in line
    assert len(line) < 200 + len(name)

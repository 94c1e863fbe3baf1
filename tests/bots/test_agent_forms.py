"""An agent's forms (XEP-0050 ad-hoc commands), driven by a slixmpp client with the xep_0050 plugin: Answer
prompt (allow, allow for the session, deny with a reason, an edited Bash command, a question, a plan), Stop,
Permission mode, Model, Progress, Status; only the owner may run them. The fake CLI plays Claude Code."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

from agentchat.xmpp.session import RESOURCE
from tests.harness.adhoc import AdHoc
from tests.support.service import create_agent, make_repositories, running_service, service_settings

PROMPT_ID = re.compile(r"#([0-9a-f]{4})")


def bash(command: str) -> str:
    return f"[[tool:Bash {json.dumps({'command': command, 'description': 'Write a file'})}]]"


async def test_the_agent_offers_its_forms_to_its_owner_only(prosody, user_client, tmp_path: Path) -> None:
    settings = service_settings(prosody, tmp_path)
    make_repositories(settings.work.base_path)
    async with running_service(settings):
        alice = await user_client("alice")
        _, agent = await create_agent(alice, settings.manager_jid)
        forms = AdHoc(alice, f"{agent}/{RESOURCE}")
        assert await forms.commands() == {
            "answer": "Answer prompt", "stop": "Stop", "mode": "Permission mode", "model": "Model",
            "progress": "Progress", "status": "Status",
        }
        mallory = await user_client("mallory")
        as_mallory = AdHoc(mallory, f"{agent}/{RESOURCE}")
        for node in ("answer", "stop", "mode", "model", "progress", "status"):
            refused = await as_mallory.execute(node)
            assert refused.notes == [("error", "⛔ This agent only talks to its owner.")], node


async def test_an_edited_bash_command_is_what_runs(prosody, user_client, tmp_path: Path) -> None:
    settings = service_settings(prosody, tmp_path)
    work = make_repositories(settings.work.base_path)
    async with running_service(settings):
        alice = await user_client("alice")
        _, agent = await create_agent(alice, settings.manager_jid)
        forms = AdHoc(alice, f"{agent}/{RESOURCE}")
        assert "No prompt is waiting" in (await forms.execute("answer")).text

        await alice.send(agent, bash("echo asked > out.txt"))
        prompt = await alice.expect("🔐 Permission #", from_=agent, timeout=20)
        request_id = PROMPT_ID.search(prompt.body).group(1)
        page = await forms.execute("answer")
        assert page.options("prompt") == [request_id]
        assert page.options("decision") == ["allow", "always", "deny"]
        assert page.value("command") == ["echo asked > out.txt"]
        assert "echo asked" in page.fields["what"]["value"]
        done = await forms.submit(page, {"decision": "allow", "command": "echo edited > out.txt"})
        assert done.text == f"#{request_id}: ✅ allowed by you, edited to: `echo edited > out.txt`", done.notes
        await alice.expect("✅ Done", from_=agent, timeout=20)
        assert (work / "api" / "out.txt").read_text() == "edited\n"
        # The audit log says what ran.
        audit = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
        assert audit[-1]["decision"] == "allow" and "echo edited" in audit[-1]["message"]


async def test_deny_with_a_reason_and_allow_for_the_session_by_form(prosody, user_client, tmp_path: Path) -> None:
    settings = service_settings(prosody, tmp_path)
    make_repositories(settings.work.base_path)
    async with running_service(settings):
        alice = await user_client("alice")
        _, agent = await create_agent(alice, settings.manager_jid)
        forms = AdHoc(alice, f"{agent}/{RESOURCE}")
        await alice.send(agent, bash("echo one > one.txt"))
        await alice.expect("🔐 Permission #", from_=agent, timeout=20)
        done = await forms.submit(await forms.execute("answer"), {"decision": "deny", "reason": "use the other script"})
        assert "❌ denied by you: use the other script" in done.text
        result = await alice.expect("MOCK_TOOL_RESULT", from_=agent, timeout=20)
        assert "use the other script" in result.body
        await alice.expect("✅ Done", from_=agent, timeout=20)

        await alice.send(agent, bash("echo two > two.txt"))
        await alice.expect("🔐 Permission #", from_=agent, timeout=20)
        done = await forms.submit(await forms.execute("answer"), {"decision": "always"})
        assert "allowed for the session by you" in done.text
        await alice.expect("✅ Done", from_=agent, timeout=20)
        before = len(alice.messages)
        await alice.send(agent, bash("echo two > two.txt"))
        await alice.expect("✅ Done", from_=agent, timeout=20)
        assert not any("🔐" in m.body for m in alice.messages[before:])


async def test_a_question_is_answered_by_form(prosody, user_client, tmp_path: Path) -> None:
    settings = service_settings(prosody, tmp_path)
    settings.agents.claude.env["FAKE_CLAUDE_ASK_TOOLS"] = "Bash,Write,AskUserQuestion"
    make_repositories(settings.work.base_path)
    async with running_service(settings):
        alice = await user_client("alice")
        _, agent = await create_agent(alice, settings.manager_jid)
        forms = AdHoc(alice, f"{agent}/{RESOURCE}")
        question = {"questions": [{"question": "Which color?", "header": "Color", "multiSelect": False,
                                   "options": [{"label": "Red", "description": ""}, {"label": "Blue", "description": ""}]}]}
        await alice.send(agent, f"[[tool:AskUserQuestion {json.dumps(question)}]]")
        await alice.expect("❓ Question #", from_=agent, timeout=20)
        page = await forms.execute("answer")
        assert page.options("q0") == ["Red", "Blue"] and page.options("decision") == ["answer", "deny"]
        done = await forms.submit(page, {"q0": "Blue"})
        assert "answered by you: Blue" in done.text, done.notes
        answered = await alice.expect("MOCK_TOOL_RESULT", from_=agent, timeout=20)
        assert '"Which color?"="Blue"' in answered.body


async def test_several_prompts_are_chosen_from_a_list_then_answered(prosody, user_client, tmp_path: Path) -> None:
    settings = service_settings(prosody, tmp_path)
    make_repositories(settings.work.base_path)
    async with running_service(settings) as service:
        alice = await user_client("alice")
        agent_id, agent = await create_agent(alice, settings.manager_jid)
        forms = AdHoc(alice, f"{agent}/{RESOURCE}")
        # Two prompts at once, as parallel tool calls of the real CLI would open them.
        asks = [asyncio.create_task(service.permissions.ask(agent_id, "Bash", {"command": command}, None))
                for command in ("make one", "make two")]
        first = await alice.expect("make one", from_=agent, timeout=20)
        second = await alice.expect("make two", from_=agent, timeout=20)
        first_id, second_id = PROMPT_ID.search(first.body).group(1), PROMPT_ID.search(second.body).group(1)
        choose = await forms.execute("answer")
        assert choose.actions == ["next"] and choose.options("prompt") == [first_id, second_id]
        page = await forms.submit(choose, {"prompt": second_id}, action="next")
        assert page.options("prompt") == [second_id] and page.value("command") == ["make two"]
        done = await forms.submit(page, {"decision": "deny", "reason": "not now"})
        assert done.text == f"#{second_id}: ❌ denied by you: not now"
        decision = await asyncio.wait_for(asks[1], 10)
        assert not decision.allowed and decision.message == "not now"
        assert not asks[0].done()
        # The other one is still there, for a text answer as much as for the form.
        await alice.send(agent, f"{first_id} yes")
        assert (await asyncio.wait_for(asks[0], 10)).allowed


async def test_a_plan_is_approved_by_form_and_leaves_plan_mode(prosody, user_client, tmp_path: Path) -> None:
    settings = service_settings(prosody, tmp_path)
    make_repositories(settings.work.base_path)
    async with running_service(settings) as service:
        alice = await user_client("alice")
        agent_id, agent = await create_agent(alice, settings.manager_jid)
        forms = AdHoc(alice, f"{agent}/{RESOURCE}")
        page = await forms.execute("mode")
        assert page.value("mode") == "default"
        assert "plan" in page.options("mode") and "bypassPermissions" not in page.options("mode")
        switched = await forms.submit(page, {"mode": "plan"})
        assert "Permission mode: plan" in switched.text
        plan = {"plan": "# Plan\n1. Do it", "planFilePath": "/tmp/plan.md"}
        await alice.send(agent, f"[[tool:ExitPlanMode {json.dumps(plan)}]]")
        await alice.expect("📋 Plan #", from_=agent, timeout=20)
        page = await forms.execute("answer")
        assert page.options("decision") == ["allow", "deny"]
        done = await forms.submit(page, {"decision": "allow"})
        assert "plan approved by you" in done.text
        await alice.expect("✅ Done", from_=agent, timeout=20)
        # The CLI left plan mode by itself: the agent's record follows it.
        agent_record = service.supervisor.get(agent_id).record
        async with asyncio.timeout(10):
            while agent_record.permission_mode is not None:
                await asyncio.sleep(0.02)
        status = await forms.execute("status")
        assert "Permission mode: default" in status.text


async def test_stop_status_model_and_progress_forms(prosody, user_client, tmp_path: Path) -> None:
    settings = service_settings(prosody, tmp_path)
    make_repositories(settings.work.base_path)
    async with running_service(settings) as service:
        alice = await user_client("alice")
        agent_id, agent = await create_agent(alice, settings.manager_jid)
        forms = AdHoc(alice, f"{agent}/{RESOURCE}")
        assert (await forms.execute("stop")).text == "Nothing is running."
        await alice.send(agent, "[[sleep:20]] a long one")
        running = service.supervisor.get(agent_id)
        async with asyncio.timeout(10):  # the message is on the CLI's stdin once its turn has a start time
            while running.turn_started_at is None:
                await asyncio.sleep(0.02)
        stopped = await forms.execute("stop")
        assert stopped.text == "⏹ Interrupting the current turn…"
        await alice.expect("⏹ Stopped", from_=agent, timeout=20)

        page = await forms.execute("model")
        assert page.value("model") == "default"
        changed = await forms.submit(page, {"model": "claude-sonnet-test"})
        assert changed.text == "🧠 Model: claude-sonnet-test (switched now).", changed.notes
        refused = await forms.submit(await forms.execute("model"), {"model": "two words"})
        assert refused.notes[0][0] == "error"

        page = await forms.execute("progress")
        assert page.options("progress") == ["full", "status", "quiet", "auto"] and page.value("progress") == "auto"
        chosen = await forms.submit(page, {"progress": "quiet"})
        assert "Progress: quiet" in chosen.text

        status = await forms.execute("status")
        assert f"📊 {agent_id}: idle" in status.text
        assert "model: claude-sonnet-test" in status.text and "Progress: quiet" in status.text
        assert service.supervisor.get(agent_id).record.model == "claude-sonnet-test"

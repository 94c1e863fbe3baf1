"""An agent's forms (ad-hoc commands): Answer prompt, Stop, Permission mode, Model, Progress, Status.

Each is its text command with its answers given at once, through the same code: an answer goes to the
permission registry as the reply the text would have been (``PermissionRegistry.decide``, which applies
it as ``answer`` does, the owner's edit of a Bash command included); the others call the functions of
agentchat.bots.agent.commands. Only the agent's owner may run them, as only the owner may talk to it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from functools import partial
from typing import TYPE_CHECKING

from agentchat.agents import modes
from agentchat.agents.backends.claude.modes import BYPASS
from agentchat.bots.agent import commands
from agentchat.bots.agent.progress import DESCRIPTIONS, SETTINGS
from agentchat.chat.forms import (
    Answers,
    Done,
    Field,
    FieldKind,
    Form,
    FormCommand,
    FormInputError,
    Option,
    Page,
    Step,
    choice_field,
)
from agentchat.chat.prompts import describe_outcome, render_request
from agentchat.permissions.registry import AnswerStatus, PermissionRegistry
from agentchat.permissions.replies import Reply, ReplyAction, edited_command
from agentchat.permissions.requests import PermissionRequest, PromptKind

if TYPE_CHECKING:
    from agentchat.bots.agent.bot import AgentBot

log = logging.getLogger(__name__)

REFUSED = "⛔ This agent only talks to its owner."
PREVIEW_LINES = 30
ALLOW, ALWAYS, DENY, ANSWER = "allow", "always", "deny", "answer"


def agent_forms(bot: AgentBot, permissions: PermissionRegistry) -> list[FormCommand]:
    def owned(start: Callable[[AgentBot, str], Awaitable[Step]]) -> Callable[[str], Awaitable[Step]]:
        async def run(requester: str) -> Step:
            if requester != bot.owner:
                log.warning("agent %s: refused a form from %s (not the owner)", bot.agent.id, requester)
                return Done.error(REFUSED)
            return await start(bot, requester)

        return run

    return [
        FormCommand("answer", "Answer prompt", owned(partial(_answer, permissions))),
        FormCommand("stop", "Stop", owned(_stop)),
        FormCommand("mode", "Permission mode", owned(_mode)),
        FormCommand("model", "Model", owned(_model)),
        FormCommand("progress", "Progress", owned(_progress)),
        FormCommand("status", "Status", owned(_status)),
    ]


# Answer prompt

async def _answer(permissions: PermissionRegistry, bot: AgentBot, owner: str) -> Step:
    pending = permissions.pending(bot.agent.id)
    if not pending:
        return Done.info("No prompt is waiting for an answer.")
    if len(pending) == 1:
        return _prompt_page(permissions, bot, owner, pending[0])
    form = Form("Answer prompt", (
        choice_field("prompt", "Which prompt", [(r.request_id, _prompt_label(r)) for r in pending]),
    ), instructions=f"{len(pending)} prompts are waiting, oldest first.")

    async def chosen(answers: Answers) -> Step:
        request_id = answers.choice("prompt")
        request = next((r for r in permissions.pending(bot.agent.id) if r.request_id == request_id), None)
        if request is None:
            return Done.warning(f"#{request_id} is no longer waiting.")
        return _prompt_page(permissions, bot, owner, request)

    return Page(form, chosen, last=False)


def _prompt_label(request: PermissionRequest) -> str:
    return f"#{request.request_id} {request.tool_name}: {request.summary(80)}"


def _prompt_page(permissions: PermissionRegistry, bot: AgentBot, owner: str, request: PermissionRequest) -> Page:
    shown = render_request(request, bot.agent.repo_path(), 1).splitlines()
    preview = "\n".join(line for line in shown[:-1][:PREVIEW_LINES] if line.strip() != "```")  # not the "Reply: …" hint
    fields: list[Field] = [
        choice_field("prompt", "Prompt", [(request.request_id, _prompt_label(request))]),
        Field("what", FieldKind.FIXED, value=preview),
    ]
    if request.kind is PromptKind.QUESTION:
        for number, question in enumerate(request.questions):
            options = [(option.label, option.label) for option in question.options]
            label = question.header or question.question
            if question.multi_select:
                fields.append(Field(f"q{number}", FieldKind.CHOICES, label, (),
                                    tuple(Option(value, text) for value, text in options), description=question.question))
            else:
                fields.append(choice_field(f"q{number}", label, options, required=False, description=question.question))
            fields.append(Field(f"q{number}_own", FieldKind.TEXT, "…or your own answer"))
        decisions = [(ANSWER, "Answer"), (DENY, "Decline to answer")]
    elif request.kind is PromptKind.PLAN:
        decisions = [(ALLOW, "Approve the plan"), (DENY, "Reject it")]
    else:
        always = "Allow this command for the session" if request.bash_command is not None else "Allow for the session"
        decisions = [(ALLOW, "Allow"), (ALWAYS, always), (DENY, "Deny")]
        if request.bash_command is not None:
            fields.append(Field("command", FieldKind.TEXT_MULTI, "Command (edit it to run another)",
                                request.bash_command, required=True))
    fields.append(choice_field("decision", "Decision", decisions))
    fields.append(Field("reason", FieldKind.TEXT, "Reason (Claude reads it)", description="when denying or rejecting"))
    form = Form(f"Answer #{request.request_id}", tuple(fields))
    return Page(form, partial(_decide, permissions, bot, owner, request))


async def _decide(permissions: PermissionRegistry, bot: AgentBot, owner: str, request: PermissionRequest,
                  answers: Answers) -> Done:
    reply = _reply(request, answers)
    result = permissions.decide(bot.agent.id, reply, owner)
    if result.status is AnswerStatus.RESOLVED and result.decision is not None:
        return Done.info(f"#{request.request_id}: {describe_outcome(request, result.decision)}")
    return Done.warning(result.text or f"#{request.request_id} could not be answered.")


def _reply(request: PermissionRequest, answers: Answers) -> Reply:
    """The reply the form's answers make: the one the text answer of the same choice makes."""
    decision = answers.choice("decision")
    rid = request.request_id
    if decision == DENY:
        return Reply(rid, ReplyAction.DENY, message=answers.text("reason"))
    if request.kind is PromptKind.QUESTION:
        chosen: dict[str, str] = {}
        for number, question in enumerate(request.questions):
            own = answers.text(f"q{number}_own")
            picked = answers.choices(f"q{number}") if question.multi_select else _picked(answers, f"q{number}")
            if not own and not picked:
                raise FormInputError(f"{question.header or question.question}: choose an option or write an answer.")
            chosen[question.question] = own or ", ".join(picked)
        return Reply(rid, ReplyAction.ANSWER, answers=chosen)
    action = ReplyAction.ALLOW_ALWAYS if decision == ALWAYS else ReplyAction.ALLOW
    if request.bash_command is None:
        return Reply(rid, action)
    command = answers.raw_text("command").replace("\r\n", "\n").strip()
    if not command:
        raise FormInputError("The command is empty: write the command to run, or deny.")
    if command == request.bash_command.strip():
        return Reply(rid, action)
    edited = edited_command(request, command)  # as `edit <command>` in the chat
    return Reply(rid, action, updated_input=edited.updated_input)


def _picked(answers: Answers, var: str) -> tuple[str, ...]:
    try:
        return (answers.choice(var),)
    except FormInputError:
        return ()


# Stop, Status: no questions

async def _stop(bot: AgentBot, _owner: str) -> Done:
    return Done.info(await commands.stop_text(bot))


async def _status(bot: AgentBot, _owner: str) -> Done:
    return Done.info(await commands.status_text(bot))


# Permission mode, Model, Progress

async def _mode(bot: AgentBot, _owner: str) -> Step:
    if not modes.has_modes(bot.agent):
        return Done.info(await commands.modes_text(bot))
    available = await modes.available_modes(bot.claude_settings)
    offered = [m for m in available if m != BYPASS or bot.claude_settings.allow_bypass_permissions]
    fields = [choice_field("mode", "Permission mode", [(m, modes.mode_line(m)) for m in offered], modes.current_mode(bot.agent))]
    if BYPASS in offered:
        fields.append(Field("confirm", FieldKind.BOOLEAN, f"Yes, switch to {BYPASS}: every tool runs without asking",
                            value=False))
    form = Form("Permission mode", tuple(fields), instructions=f"{bot.agent.id} is in {modes.current_mode(bot.agent)} mode.")

    async def switch(answers: Answers) -> Done:
        change = await commands.set_mode(bot, answers.choice("mode"), confirmed=answers.flag("confirm"))
        if change.applied is modes.Applied.NEEDS_CONFIRMATION:
            return Done.warning(f"{change.text} Tick the confirmation to switch.")
        if change.applied is modes.Applied.REFUSED:
            return Done.error(change.text)
        return Done.info(change.text)

    return Page(form, switch)


async def _model(bot: AgentBot, _owner: str) -> Step:
    if not modes.has_modes(bot.agent):
        return Done.info(commands.model_text(bot))
    form = Form("Model", (
        Field("model", FieldKind.TEXT, "Model", bot.agent.record.model or "default", required=True,
              description="e.g. sonnet, opus, a full model name; default goes back to the configured one"),
    ), instructions=commands.model_text(bot))

    async def switch(answers: Answers) -> Done:
        change = await modes.change_model(bot.agent, answers.text("model"))
        return Done.error(change.text) if change.applied is modes.Applied.REFUSED else Done.info(change.text)

    return Page(form, switch)


async def _progress(bot: AgentBot, _owner: str) -> Step:
    current = bot.agent.record.progress or "auto"
    described = {mode.value: text for mode, text in DESCRIPTIONS.items()}
    choices = [(setting, f"{setting}: {described.get(setting, 'by what your client shows')}") for setting in SETTINGS]
    form = Form("Progress", (choice_field("progress", "Progress", choices, current),),
                instructions=await commands.progress_text(bot))

    async def choose(answers: Answers) -> Done:
        return Done.info(await commands.set_progress(bot, answers.choice("progress")))

    return Page(form, choose)

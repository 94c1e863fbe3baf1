"""The hub ↔ runner messages at the edge: known bodies decode to their models, anything else is one
``bad-request`` refusal, never an exception of another kind; unknown fields are tolerated."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentchat.runners import protocol as p
from agentchat.xmpp.iq import IqRefused

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(op=st.sampled_from(list(p.Op)), body=st.one_of(st.text(max_size=200), JSON.map(json.dumps)))
def test_any_body_is_its_model_or_one_bad_request(op: p.Op, body: str) -> None:
    for models in (p.REQUESTS, p.ANSWERS):
        try:
            message = p.decode(models[op], body)
        except IqRefused as exc:
            assert exc.condition == "bad-request" and exc.text
        else:
            assert isinstance(message, models[op])


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=30))
def test_an_unknown_op_is_a_bad_request(text: str) -> None:
    if text in {op.value for op in p.Op}:
        assert p.parse_op(text).value == text
        return
    with pytest.raises(IqRefused) as refused:
        p.parse_op(text)
    assert refused.value.condition == "bad-request"


def test_messages_round_trip_and_unknown_fields_are_ignored() -> None:
    create = p.CreateAgent(agent_id="swift-fox", owner="alice@chat.test", backend="claude", repository="api",
                           password="s" * 24, first_task="hi")
    assert p.decode(p.CreateAgent, p.encode(create)) == create
    newer = json.dumps({**json.loads(p.encode(create)), "sandbox": "bwrap", "priority": 3})
    assert p.decode(p.CreateAgent, newer) == create
    state = p.RunnerState(name="laptop", agents=[p.AgentSummary(id="swift-fox", status="idle")])
    assert p.decode(p.RunnerState, p.encode(state)).agents[0].id == "swift-fox"
    with pytest.raises(IqRefused, match="agent_id"):
        p.decode(p.CreateAgent, json.dumps({"owner": "alice@chat.test"}))


@pytest.mark.parametrize("name", ["laptop", "dev-box", "a", "x1", "0" * 32])
def test_runner_names(name: str) -> None:
    assert p.runner_username(name) == f"runner-{name}"


@pytest.mark.parametrize("name", ["", "-x", "x-", "a b", "Über", "a/b", "a@b", "x" * 33, "ev\u202eil"])
def test_bad_runner_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError):
        p.check_runner_name(name)

"""reasoning against FakeLLM (real HTTP on localhost): the plan, each step, the final answer, the check."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fakes import FakeLLM, free_port, serve
from fastapi.testclient import TestClient
from helpers import bearer
from mlstack_services.app import create_app
from mlstack_services.metrics import Registry
from mlstack_services.settings import Settings
from mlstack_services.unit import Unit
from mlstack_services.units import reasoning
from mlstack_services.units.reasoning import check_chain, parse_steps

Mint = Callable[..., str]


class PlanningLLM(FakeLLM):
    """Plans in numbered lines, answers a step by echoing it, and the final answer from the steps."""

    @staticmethod
    def answer_for(messages: list[dict[str, str]]) -> str:
        system, user = messages[0]["content"], messages[-1]["content"]
        if system.startswith("List at most"):
            return "1. Recall what the sky scatters\n2) Compare blue and red light\n\n- Conclude"
        if system.startswith("Answer the step"):
            return "Answered: " + user.rsplit("Step: ", 1)[-1]
        return "Blue light scatters more, so the sky looks blue."


@pytest.fixture(scope="module")
def planner() -> Iterator[tuple[PlanningLLM, str]]:
    llm = PlanningLLM()
    with serve(llm.app) as url:
        yield llm, url


@pytest.fixture
def client(settings_for: Callable[..., Settings], planner: tuple[PlanningLLM, str]) -> Iterator[TestClient]:
    settings = settings_for("reasoning", LLM_URL=planner[1])

    def builder(s: Settings, registry: Registry) -> Unit:
        return reasoning.build(s, registry)

    with TestClient(create_app(settings, builder)) as c:
        yield c


def auth(mint: Mint, scope: str = "reasoning:reason") -> dict[str, str]:
    return bearer(mint(scope, audience="reasoning"))


def test_steps_are_planned_answered_in_order_and_checked(client: TestClient, mint: Mint,
                                                         planner: tuple[PlanningLLM, str]) -> None:
    planner[0].requests.clear()
    response = client.post("/v1/reason", json={"question": "Why is the sky blue?"}, headers=auth(mint))
    assert response.status_code == 200, response.text
    body = response.json()
    assert [link["step"] for link in body["chain"]] == ["Recall what the sky scatters", "Compare blue and red light",
                                                         "Conclude"]
    assert body["chain"][1]["answer"] == "Answered: Compare blue and red light"
    assert body["answer"] == "Blue light scatters more, so the sky looks blue."
    assert body["consistency"]["consistent"] is True and "blue" in body["consistency"]["shared_words"]
    assert body["llm_calls"] == 5 == len(planner[0].requests)
    # Each step sees the answers before it: the third step's prompt holds the first two.
    assert "Compare blue and red light: Answered: Compare blue and red light" in \
        planner[0].requests[3]["messages"][-1]["content"]
    assert body["steps"][0] == "Recall what the sky scatters: Answered: Recall what the sky scatters"


def test_max_steps_limits_the_plan(client: TestClient, mint: Mint) -> None:
    body = client.post("/v1/reason", json={"question": "Why?", "max_steps": 1}, headers=auth(mint)).json()
    assert len(body["chain"]) == 1 and body["llm_calls"] == 3


@pytest.mark.parametrize(("payload", "status"), [
    ({}, 422), ({"question": ""}, 422), ({"question": "x" * 2001}, 422), ({"question": "ok", "max_steps": 9}, 422),
])
def test_bad_input_is_a_clear_4xx(client: TestClient, mint: Mint, payload: dict[str, Any], status: int) -> None:
    assert client.post("/v1/reason", json=payload, headers=auth(mint)).status_code == status


def test_scope_and_audience_are_enforced(client: TestClient, mint: Mint) -> None:
    assert client.post("/v1/reason", json={"question": "q"}, headers=auth(mint, "chat:complete")).status_code == 403
    token = mint("reasoning:reason", audience="chat")
    assert client.post("/v1/reason", json={"question": "q"}, headers=bearer(token)).status_code == 401


def test_llm_down_is_503_and_ready_says_why(settings_for: Callable[..., Settings], mint: Mint) -> None:
    settings = settings_for("reasoning", LLM_URL=f"http://127.0.0.1:{free_port()}")
    with TestClient(create_app(settings, lambda s, r: reasoning.build(s, r))) as c:
        response = c.post("/v1/reason", json={"question": "q"}, headers=auth(mint))
        assert response.status_code == 503 and "llm unit" in response.json()["error"]["message"]
        ready = c.get("/ready")
        assert ready.status_code == 503 and ready.json()["checks"]["llm"]["ok"] is False


def test_plan_parsing_drops_numbering_bullets_and_blank_lines() -> None:
    assert parse_steps("1. a first\n\n* second one\nStep 3: third\n- x", 5) == ["a first", "second one", "third"]
    assert parse_steps("", 3) == []


def test_chain_check_names_each_problem() -> None:
    chain = [{"step": "find colour", "answer": "the sky is blue"}, {"step": "again", "answer": "The sky is blue."},
             {"step": "third", "answer": " "}]
    verdict = check_chain(chain, "Grass grows")
    assert verdict["consistent"] is False
    assert verdict["issues"] == ["step 3 has no answer", "step 2 repeats the answer of step 1",
                                 "the final answer shares no word with the steps"]


def test_chat_uses_the_real_reasoning_unit(chat_app: Callable[..., TestClient], mint: Mint,
                                           settings_for: Callable[..., Settings],
                                           planner: tuple[PlanningLLM, str]) -> None:
    unit = create_app(settings_for("reasoning", LLM_URL=planner[1]), lambda s, r: reasoning.build(s, r))
    with serve(unit) as url, chat_app(LLM_URL=planner[1], REASONING_URL=url) as chat:
        # chat forwards the caller's token: its audience must name both units.
        token = mint("chat:complete reasoning:reason", audience=["chat", "reasoning"])
        answer = chat.post("/v1/chat/completions", headers=bearer(token), json={
            "messages": [{"role": "user", "content": "Why is the sky blue?"}], "reasoning": True})
        assert answer.status_code == 200, answer.text
        assert answer.json()["mlstack"]["reasoning"] == "used"
        assert answer.json()["mlstack"]["reasoning_steps"][0].startswith("Recall what the sky scatters")
        assert chat.get("/ready").json()["degraded"] == []

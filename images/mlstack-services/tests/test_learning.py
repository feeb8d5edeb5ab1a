"""learning: feedback in, a per-user bandit profile out, and chat adapting its answers to it.

An in-memory store stands in for PostgreSQL here; test_real_stores.py runs the PostgreSQL store."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fakes import FakeLLM, serve
from fastapi.testclient import TestClient
from helpers import bearer
from mlstack_services.app import create_app
from mlstack_services.pg import PgError
from mlstack_services.settings import Settings
from mlstack_services.units import learning
from mlstack_services.units.learning import FeedbackRequest, profile

Mint = Callable[..., str]


class MemoryFeedback:
    def __init__(self) -> None:
        self.events: list[FeedbackRequest] = []
        self.down = False

    async def add(self, event: FeedbackRequest) -> None:
        if self.down:
            raise PgError("OperationalError: MemoryFeedback is down")
        if event.answer_id and "\x00" in event.answer_id:  # as psycopg does: PostgreSQL text cannot hold U+0000
            raise PgError("DataError: PostgreSQL text fields cannot contain NUL (0x00) bytes")
        self.events.append(event)

    async def ratings(self, user: str) -> list[tuple[str, int]]:
        if self.down:
            raise PgError("OperationalError: MemoryFeedback is down")
        return [(e.style, e.rating) for e in self.events if e.user == user]

    async def check(self) -> tuple[bool, str]:
        return (not self.down, "MemoryFeedback " + ("down" if self.down else "ok"))

    async def close(self) -> None:
        return None


@pytest.fixture
def store() -> MemoryFeedback:
    return MemoryFeedback()


@pytest.fixture
def learning_app(settings_for: Callable[..., Settings], store: MemoryFeedback) -> Any:
    return create_app(settings_for("learning"), lambda s, r: learning.build(s, r, store=store))


@pytest.fixture
def client(learning_app: Any) -> Iterator[TestClient]:
    with TestClient(learning_app) as c:
        yield c


def headers(mint: Mint, scope: str = "learning:feedback learning:read") -> dict[str, str]:
    return bearer(mint(scope, audience="learning"))


def test_the_profile_changes_with_feedback(client: TestClient, mint: Mint) -> None:
    before = client.get("/v1/profile/ada", headers=headers(mint)).json()
    assert before["preferred"] == "concise" and before["feedback_count"] == 0
    for style, rating in (("concise", 1), ("concise", 2), ("detailed", 5), ("detailed", 4), ("step_by_step", 3)):
        response = client.post("/v1/feedback", json={"user": "ada", "style": style, "rating": rating},
                               headers=headers(mint))
        assert response.status_code == 201, response.text
    after = client.get("/v1/profile/ada", headers=headers(mint)).json()
    assert after["preferred"] == "detailed" and after["feedback_count"] == 5
    assert after["styles"]["detailed"]["mean_reward"] == 0.875
    assert after["styles"]["concise"]["posterior_mean"] < after["styles"]["detailed"]["posterior_mean"]
    # Another user's profile is untouched.
    assert client.get("/v1/profile/bob", headers=headers(mint)).json()["feedback_count"] == 0


@pytest.mark.parametrize("body", [{"user": "ada", "style": "poetic", "rating": 3},
                                  {"user": "ada", "style": "concise", "rating": 6},
                                  {"user": "a d a", "style": "concise", "rating": 3}, {}])
def test_bad_feedback_is_422(client: TestClient, mint: Mint, body: dict[str, Any]) -> None:
    assert client.post("/v1/feedback", json=body, headers=headers(mint)).status_code == 422


def test_a_nul_character_in_answer_id_is_422_not_a_store_failure(client: TestClient, mint: Mint) -> None:
    body = {"user": "ada", "style": "concise", "rating": 4, "answer_id": "a\x00b"}
    response = client.post("/v1/feedback", json=body, headers=headers(mint))
    assert response.status_code == 422 and "answer_id" in response.json()["error"]["message"], response.text


def test_scopes_are_separate(client: TestClient, mint: Mint) -> None:
    read_only = headers(mint, "learning:read")
    assert client.post("/v1/feedback", json={"user": "ada", "style": "concise", "rating": 3},
                       headers=read_only).status_code == 403
    assert client.get("/v1/profile/ada", headers=headers(mint, "learning:feedback")).status_code == 403


def test_store_down_is_503_and_recovers(client: TestClient, mint: Mint, store: MemoryFeedback) -> None:
    store.down = True
    assert client.get("/v1/profile/ada", headers=headers(mint)).status_code == 503
    assert client.get("/ready").status_code == 503
    store.down = False
    assert client.get("/ready").status_code == 200


def test_thompson_sampling_explores_the_styles_it_knows_least() -> None:
    ratings = [("concise", 4)] * 5 + [("detailed", 1)] * 30
    picks = {profile("u", ratings, random.Random(seed))["explore"] for seed in range(40)}
    assert "step_by_step" in picks and "detailed" not in picks


def test_chat_adapts_its_answer_to_the_learned_style(chat_app: Callable[..., TestClient], learning_app: Any,
                                                     mint: Mint) -> None:
    llm = FakeLLM()
    with serve(llm.app) as llm_url, serve(learning_app) as learning_url, \
            chat_app(LLM_URL=llm_url, LEARNING_URL=learning_url) as chat:
        token = mint("chat:complete learning:read learning:feedback", audience=["chat", "learning"])

        def ask() -> dict[str, Any]:
            response = chat.post("/v1/chat/completions", headers=bearer(token), json={
                "user": "ada", "messages": [{"role": "user", "content": "What is Redis?"}]})
            assert response.status_code == 200, response.text
            return response.json()["mlstack"]

        assert ask()["style"] == "concise"
        assert llm.requests[-1]["messages"][0]["content"].startswith("Answer concisely")
        with TestClient(learning_app) as learn:
            for rating in (5, 5, 4):
                learn.post("/v1/feedback", json={"user": "ada", "style": "step_by_step", "rating": rating},
                           headers=bearer(token))
        assert ask()["style"] == "step_by_step"
        assert llm.requests[-1]["messages"][0]["content"].startswith("Answer step by step")
        assert chat.get("/ready").json()["degraded"] == []

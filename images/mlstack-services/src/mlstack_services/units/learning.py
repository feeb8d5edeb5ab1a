"""learning: feedback on chat's answers, and a per-user preference over answer styles learned from it.

Each rating (1-5) of an answer given in a style is a reward in [0, 1]. A user's profile is a
Beta-Bernoulli bandit over the styles: the posterior mean of each style's reward, the style
with the best mean (``preferred``, what chat uses), and a Thompson-sampled ``explore`` style
for callers that want to keep learning. Feedback events live in PostgreSQL, so profiles
survive redeploys; the profile is computed from them on each read.
"""

from __future__ import annotations

import random
import re
from typing import Any, Protocol

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from ..auth import require_scope
from ..errors import ServiceError
from ..metrics import Registry
from ..openapi import answers
from ..pg import PgDatabase, PgError
from ..requests import StoredText, require_json
from ..settings import Settings
from ..unit import Unit

STYLES = ("concise", "detailed", "step_by_step")
USER_PATTERN = r"^[A-Za-z0-9_.@-]{1,64}$"
SCHEMA = """
CREATE TABLE IF NOT EXISTS feedback (
    id BIGSERIAL PRIMARY KEY, user_id TEXT NOT NULL, style TEXT NOT NULL, rating INT NOT NULL,
    answer_id TEXT, created_at TIMESTAMPTZ NOT NULL DEFAULT now());
CREATE INDEX IF NOT EXISTS feedback_user_idx ON feedback (user_id);
"""


class FeedbackRequest(BaseModel):
    user: str = Field(pattern=USER_PATTERN)
    style: str = Field(pattern="^(" + "|".join(STYLES) + ")$")
    rating: int = Field(ge=1, le=5)
    answer_id: StoredText | None = Field(default=None, max_length=64)


# The profile's shape, for the OpenAPI document only (the routes return plain dicts).
class StyleStats(BaseModel):
    n: int
    mean_reward: float | None
    posterior_mean: float
    alpha: float
    beta: float


class Profile(BaseModel):
    user: str
    feedback_count: int
    styles: dict[str, StyleStats]
    preferred: str
    explore: str


PROFILE = {"model": Profile, "description": "The user's profile over the answer styles."}


def profile(user: str, ratings: list[tuple[str, int]], rng: random.Random | None = None) -> dict[str, Any]:
    """The bandit's view of a user: per style n, mean reward, Beta posterior mean; preferred and explore."""
    styles: dict[str, dict[str, Any]] = {}
    for style in STYLES:
        rewards = [(rating - 1) / 4 for s, rating in ratings if s == style]
        alpha, beta = 1 + sum(rewards), 1 + len(rewards) - sum(rewards)
        styles[style] = {"n": len(rewards), "mean_reward": round(sum(rewards) / len(rewards), 3) if rewards else None,
                         "posterior_mean": round(alpha / (alpha + beta), 3), "alpha": alpha, "beta": beta}
    # Ties go to the first style in STYLES, so a user with no feedback gets "concise".
    preferred = max(STYLES, key=lambda s: (styles[s]["posterior_mean"], -STYLES.index(s)))
    sampler = rng or random.Random()
    explore = max(STYLES, key=lambda s: sampler.betavariate(styles[s]["alpha"], styles[s]["beta"]))
    return {"user": user, "feedback_count": len(ratings), "styles": styles, "preferred": preferred,
            "explore": explore}


class FeedbackStore(Protocol):
    async def add(self, event: FeedbackRequest) -> None: ...
    async def ratings(self, user: str) -> list[tuple[str, int]]: ...
    async def check(self) -> tuple[bool, str]: ...
    async def close(self) -> None: ...


class PgFeedback:
    def __init__(self, settings: Settings) -> None:
        self.db = PgDatabase(settings, SCHEMA)

    async def add(self, event: FeedbackRequest) -> None:
        await self.db.execute("INSERT INTO feedback (user_id, style, rating, answer_id) VALUES (%s, %s, %s, %s)",
                              (event.user, event.style, event.rating, event.answer_id))

    async def ratings(self, user: str) -> list[tuple[str, int]]:
        rows = await self.db.execute("SELECT style, rating FROM feedback WHERE user_id = %s ORDER BY id", (user,))
        return [(str(style), int(rating)) for style, rating in rows]

    async def check(self) -> tuple[bool, str]:
        return await self.db.check()

    async def close(self) -> None:
        await self.db.close()


def build(settings: Settings, registry: Registry, store: FeedbackStore | None = None) -> Unit:
    events: FeedbackStore = store if store is not None else PgFeedback(settings)
    counted = registry.counter("mlstack_learning_feedback_total", "Feedback events stored, by style.", ("style",))
    router = APIRouter(prefix="/v1", tags=["learning"])

    async def ratings_of(user: str) -> list[tuple[str, int]]:
        try:
            return await events.ratings(user)
        except PgError as exc:
            raise ServiceError(503, f"feedback store (PostgreSQL) unavailable: {exc}") from None

    @router.post("/feedback", status_code=201,
                 dependencies=[Depends(require_scope("learning:feedback")), Depends(require_json)],
                 responses=answers(created=PROFILE))
    async def feedback(body: FeedbackRequest) -> dict[str, Any]:
        try:
            await events.add(body)
        except PgError as exc:
            raise ServiceError(503, f"feedback store (PostgreSQL) unavailable: {exc}") from None
        counted.inc(style=body.style)
        return profile(body.user, await ratings_of(body.user))

    @router.get("/profile/{user}", dependencies=[Depends(require_scope("learning:read"))],
                responses=answers(ok=PROFILE))
    async def read_profile(user: str) -> dict[str, Any]:
        if not re.fullmatch(USER_PATTERN, user):
            raise ServiceError(422, "user: letters, digits and _.@- only, at most 64")
        return profile(user, await ratings_of(user))

    return Unit(name="learning", router=router, checks={"postgresql": events.check}, on_shutdown=[events.close])

"""reasoning: decompose a question into steps, answer each with the llm unit, check the chain.

POST /v1/reason {"question", "max_steps"} (scope ``reasoning:reason``) asks the llm for the
steps, answers them one after another (each answer sees the earlier ones), asks for the
final answer from the chain, then checks the chain: every step answered, no two steps
answered alike, and the final answer grounded in the steps' words. It returns the chain,
the answer and that verdict; chat's reasoning option uses it.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from ..auth import require_scope
from ..errors import ServiceError
from ..llm import LlmClient, UpstreamError
from ..metrics import Registry
from ..openapi import answers
from ..requests import require_json
from ..settings import Settings
from ..unit import Unit

_NUMBERED = re.compile(r"^\s*(?:step\s*)?\d+\s*[.):-]\s*", re.IGNORECASE)
_WORD = re.compile(r"[a-z0-9]{3,}")
_STOP = frozenset("the and for are was were with that this from have has not but you your what which how why "
                  "who when where step steps answer question".split())


class ReasonRequest(BaseModel):
    question: str = Field(min_length=1, max_length=2000)
    max_steps: int = Field(default=3, ge=1, le=5)


# The answer's shape, for the OpenAPI document only (the route returns a plain dict).
class Link(BaseModel):
    step: str
    answer: str


class Verdict(BaseModel):
    consistent: bool
    issues: list[str]
    shared_words: list[str]


class ReasonAnswer(BaseModel):
    question: str
    steps: list[str]
    chain: list[Link]
    answer: str
    consistency: Verdict
    llm_calls: int


def parse_steps(text: str, limit: int) -> list[str]:
    """The steps of the llm's plan: one a line, numbering and bullets removed, empty lines dropped."""
    steps = []
    for line in text.splitlines():
        step = _NUMBERED.sub("", line).strip().lstrip("-*• ").strip()
        if len(step) > 2:
            steps.append(step[:300])
    return steps[:limit]


def _words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in _STOP}


def check_chain(chain: list[dict[str, str]], answer: str) -> dict[str, Any]:
    """Consistency of the chain: every step answered, no two alike, the answer grounded in the steps."""
    issues = [f"step {i + 1} has no answer" for i, link in enumerate(chain) if not link["answer"].strip()]
    seen: dict[str, int] = {}
    for i, link in enumerate(chain):
        key = " ".join(sorted(_words(link["answer"])))
        if key and key in seen:
            issues.append(f"step {i + 1} repeats the answer of step {seen[key] + 1}")
        seen.setdefault(key, i)
    grounded = _words(answer) & set().union(*(_words(link["step"] + " " + link["answer"]) for link in chain))
    if not answer.strip():
        issues.append("no final answer")
    elif not grounded:
        issues.append("the final answer shares no word with the steps")
    return {"consistent": not issues, "issues": issues, "shared_words": sorted(grounded)[:20]}


def build(settings: Settings, registry: Registry, llm_transport: httpx.AsyncBaseTransport | None = None) -> Unit:
    llm = LlmClient(settings.llm_url, settings.llm_timeout_s, llm_transport)
    requests_total = registry.counter("mlstack_reasoning_requests_total", "Questions reasoned about, by outcome.",
                                      ("outcome",))
    llm_calls = registry.counter("mlstack_reasoning_llm_calls_total", "Requests made to the llm unit.")
    router = APIRouter(prefix="/v1", tags=["reasoning"])

    async def ask(system: str, user: str, max_tokens: int) -> str:
        llm_calls.inc()
        body = await llm.complete({"model": settings.llm_model, "temperature": 0, "max_tokens": max_tokens,
                                   "messages": [{"role": "system", "content": system},
                                                {"role": "user", "content": user}]})
        choice = body["choices"][0] if isinstance(body["choices"][0], dict) else {}
        return str((choice.get("message") or {}).get("content") or "").strip()

    @router.post("/reason", dependencies=[Depends(require_scope("reasoning:reason")), Depends(require_json)],
                 responses=answers(502, 504, ok={"model": ReasonAnswer, "description": "The chain and its check."}))
    async def reason(body: ReasonRequest) -> dict[str, Any]:
        try:
            plan = await ask(f"List at most {body.max_steps} short steps that lead to the answer, one per line, "
                             "numbered. Do not answer yet.", body.question, 96)
            steps = parse_steps(plan, body.max_steps) or [body.question]
            chain: list[dict[str, str]] = []
            for step in steps:
                context = "\n".join(f"{link['step']}: {link['answer']}" for link in chain)
                answer = await ask("Answer the step briefly, in one sentence, for the question given.",
                                   f"Question: {body.question}\n{context}\nStep: {step}".strip(), 48)
                chain.append({"step": step, "answer": answer})
            summary = "\n".join(f"{i + 1}. {link['step']}: {link['answer']}" for i, link in enumerate(chain))
            final = await ask("Give the final answer to the question in one or two sentences, from the steps.",
                              f"Question: {body.question}\nSteps:\n{summary}", 64)
        except UpstreamError as exc:
            requests_total.inc(outcome="error")
            raise ServiceError(exc.status, str(exc)) from None
        verdict = check_chain(chain, final)
        requests_total.inc(outcome="consistent" if verdict["consistent"] else "inconsistent")
        return {"question": body.question, "steps": [f"{link['step']}: {link['answer']}" for link in chain],
                "chain": chain, "answer": final, "consistency": verdict, "llm_calls": 2 + len(chain)}

    async def close() -> None:
        await llm.aclose()

    return Unit(name="reasoning", router=router, checks={"llm": llm.check}, on_shutdown=[close],
                admission={"/v1/reason": "reasoning"})

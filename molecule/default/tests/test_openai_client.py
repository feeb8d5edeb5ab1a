"""End to end, after phase5: the official `openai` client against the deployed chat unit (8007).

The token comes from playbooks/token.yml, the way a newcomer gets one (README, docs/api.md):
one token for chat and reasoning, so chat's reasoning option can forward it. It is kept in
memory only; nothing prints it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import openai
import pytest

ROOT = Path(__file__).resolve().parents[3]
CHAT = "http://127.0.0.1:8007/v1"
TOKEN = re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")


@pytest.fixture(scope="module")
def client() -> openai.OpenAI:
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg")}
    done = subprocess.run([str(Path(sys.executable).with_name("ansible-playbook")), "-i", "inventories/local",
                           "playbooks/token.yml", "-e", "mlstack_token_audience=chat,reasoning",
                           "-e", "mlstack_token_scopes='chat:complete reasoning:reason'",
                           "-e", "mlstack_token_ttl=900"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    [token] = TOKEN.findall(done.stdout)
    return openai.OpenAI(base_url=CHAT, api_key=token, timeout=180, max_retries=0)


def mlstack_of(answer: Any) -> dict[str, Any]:
    """chat's extension key: pydantic keeps the fields OpenAI's types do not name."""
    return (answer.model_extra or {}).get("mlstack") or {}


def test_models_list_names_the_model_chat_completes_with(client: openai.OpenAI) -> None:
    models = client.models.list()
    ids = [model.id for model in models.data]
    assert len(ids) == 1 and ids[0]
    assert models.data[0].owned_by == "mlstack"


def test_a_completion_with_the_extensions_in_extra_body(client: openai.OpenAI) -> None:
    model = client.models.list().data[0].id
    conversation = f"openai-e2e-{uuid.uuid4().hex[:8]}"
    first = client.chat.completions.create(model=model, max_tokens=24, temperature=0,
                                           messages=[{"role": "user", "content": "Name a colour of the sky."}],
                                           extra_body={"conversation_id": conversation})
    assert first.object == "chat.completion" and first.choices[0].message.content.strip()
    assert mlstack_of(first)["conversation_id"] == conversation
    second = client.chat.completions.create(model=model, max_tokens=24, temperature=0,
                                            messages=[{"role": "user", "content": "And of the sea?"}],
                                            extra_body={"conversation_id": conversation, "reasoning": True})
    ext = mlstack_of(second)
    assert ext["history_messages"] == 2, ext
    assert ext["reasoning"] == "used", ext


def test_a_streamed_completion_arrives_in_chunks(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(model=client.models.list().data[0].id, max_tokens=24, temperature=0,
                                            stream=True, messages=[{"role": "user", "content": "Count to five."}])
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len(chunks) > 2 and text.strip()
    assert mlstack_of(chunks[-1])["history"] == "saved"


def test_a_bad_token_is_refused_as_openai_reports_it() -> None:
    stranger = openai.OpenAI(base_url=CHAT, api_key="not-a-token", max_retries=0, timeout=30)
    with pytest.raises(openai.AuthenticationError):
        stranger.models.list()

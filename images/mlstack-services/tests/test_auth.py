"""JWT on /v1: EdDSA signature, exp, iss, aud = unit, scopes (a test key pair made in conftest)."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fakes import FakeRedis
from fastapi.testclient import TestClient
from helpers import bearer
from mlstack_services.app import create_app
from mlstack_services.metrics import Registry
from mlstack_services.settings import Settings
from mlstack_services.stt_worker import SttWorker
from mlstack_services.unit import Unit
from mlstack_services.units import voice

SESSIONS = "/v1/sessions"


def test_valid_token_is_accepted(voice_client: TestClient, mint: Callable[..., str]) -> None:
    response = voice_client.post(SESSIONS, headers=bearer(mint("voice:session")))
    assert response.status_code == 201, response.text


def test_token_with_unit_among_several_audiences(voice_client: TestClient, mint: Callable[..., str]) -> None:
    token = mint("voice:session", audience=["chat", "voice-interaction"])
    assert voice_client.post(SESSIONS, headers=bearer(token)).status_code == 201


def test_no_token_is_401_with_a_challenge(voice_client: TestClient) -> None:
    response = voice_client.post(SESSIONS)
    assert response.status_code == 401
    assert "missing bearer token" in response.json()["error"]["message"]
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_no_token_is_401_even_with_a_malformed_body(voice_client: TestClient) -> None:
    response = voice_client.post("/v1/tts", content=b"{not json", headers={"Content-Type": "application/json"})
    assert response.status_code == 401


def test_unknown_v1_path_needs_a_token_first(voice_client: TestClient) -> None:
    assert voice_client.get("/v1/nothing-here").status_code == 401


def test_expired_token_is_401(voice_client: TestClient, mint: Callable[..., str]) -> None:
    response = voice_client.post(SESSIONS, headers=bearer(mint("voice:session", ttl_s=-60)))
    assert response.status_code == 401
    assert response.json()["error"]["message"] == "token expired"


def test_token_without_exp_is_401(voice_client: TestClient, mint: Callable[..., str]) -> None:
    response = voice_client.post(SESSIONS, headers=bearer(mint("voice:session", ttl_s=None)))
    assert response.status_code == 401
    assert "'exp'" in response.json()["error"]["message"]


def test_forged_token_is_401(voice_client: TestClient, mint: Callable[..., str]) -> None:
    other = Ed25519PrivateKey.generate()
    response = voice_client.post(SESSIONS, headers=bearer(mint("voice:session", key=other)))
    assert response.status_code == 401
    assert "signature" in response.json()["error"]["message"]


def test_tampered_payload_is_401(voice_client: TestClient, mint: Callable[..., str]) -> None:
    header, _, signature = mint("voice:session").split(".")
    forged_payload = jwt.utils.base64url_encode(b'{"iss":"mlstack","aud":"voice-interaction","exp":9999999999,'
                                                b'"scope":"voice:session voice:tts voice:stt"}').decode()
    response = voice_client.post(SESSIONS, headers=bearer(f"{header}.{forged_payload}.{signature}"))
    assert response.status_code == 401


def test_hmac_token_signed_with_the_public_key_is_401(voice_client: TestClient, public_key_file: Path) -> None:
    # The classic algorithm-confusion attack: HS256 keyed with the (public) PEM.
    # PyJWT refuses to make one, so it is built by hand.
    b64 = jwt.utils.base64url_encode
    signing_input = b64(b'{"alg":"HS256","typ":"JWT"}') + b"." + b64(
        b'{"iss":"mlstack","aud":"voice-interaction","exp":9999999999,"scope":"voice:session"}')
    mac = hmac.new(public_key_file.read_bytes(), signing_input, hashlib.sha256).digest()
    token = (signing_input + b"." + b64(mac)).decode()
    response = voice_client.post(SESSIONS, headers=bearer(token))
    assert response.status_code == 401


def test_wrong_audience_is_401(voice_client: TestClient, mint: Callable[..., str]) -> None:
    response = voice_client.post(SESSIONS, headers=bearer(mint("voice:session", audience="chat")))
    assert response.status_code == 401
    assert "audience" in response.json()["error"]["message"]


def test_wrong_issuer_is_401(voice_client: TestClient, mint: Callable[..., str]) -> None:
    response = voice_client.post(SESSIONS, headers=bearer(mint("voice:session", issuer="someone-else")))
    assert response.status_code == 401
    assert "issuer" in response.json()["error"]["message"]


@pytest.mark.parametrize("header", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer not-a-jwt", "token"])
def test_malformed_authorization_is_401(voice_client: TestClient, header: str) -> None:
    response = voice_client.post(SESSIONS, headers={"Authorization": header})
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "authentication_error"


def test_missing_scope_is_403(voice_client: TestClient, mint: Callable[..., str]) -> None:
    response = voice_client.post(SESSIONS, headers=bearer(mint("voice:tts voice:stt")))
    assert response.status_code == 403
    assert "voice:session" in response.json()["error"]["message"]


def test_scope_of_another_endpoint_is_403(voice_client: TestClient, mint: Callable[..., str]) -> None:
    response = voice_client.post("/v1/tts", json={"text": "hello"}, headers=bearer(mint("voice:stt")))
    assert response.status_code == 403


def test_missing_public_key_is_503_and_not_ready(settings_for: Callable[..., Settings], tmp_path: Path,
                                                 mint: Callable[..., str], engine: SttWorker) -> None:
    settings = settings_for("voice-interaction", JWT_PUBLIC_KEY_FILE=str(tmp_path / "absent.pem"))

    def builder(s: Settings, registry: Registry) -> Unit:
        return voice.build(s, registry, redis=FakeRedis(), engine=engine)

    with TestClient(create_app(settings, builder)) as client:
        response = client.post(SESSIONS, headers=bearer(mint("voice:session")))
        assert response.status_code == 503
        assert "absent.pem" in response.json()["error"]["message"]
        ready = client.get("/ready")
        assert ready.status_code == 503
        assert ready.json()["checks"]["jwt"]["ok"] is False


def test_health_and_metrics_need_no_token(voice_client: TestClient) -> None:
    assert voice_client.get("/health").status_code == 200
    assert voice_client.get("/metrics").status_code == 200


def _pem(key: Ed25519PrivateKey) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def test_rotation_bundle_accepts_each_key_by_kid_and_refuses_unknown_kids(tmp_path: Path) -> None:
    from mlstack_services.auth import JwtVerifier, ServiceError, kid_of

    old, new, stranger = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    key_file = tmp_path / "jwt_public.pem"
    key_file.write_bytes(_pem(old))
    verifier = JwtVerifier(str(key_file), "mlstack", "chat")
    claims = {"iss": "mlstack", "aud": "chat", "sub": "t", "exp": 4_000_000_000, "scope": "chat:complete"}

    def token(key: Ed25519PrivateKey, kid: str | None) -> str:
        return jwt.encode(claims, key, algorithm="EdDSA", headers={"kid": kid} if kid else None)

    old_kid, new_kid = kid_of(old.public_key()), kid_of(new.public_key())
    assert verifier.verify("Bearer " + token(old, old_kid)).subject == "t"
    with pytest.raises(ServiceError, match="unknown key"):
        verifier.verify("Bearer " + token(new, new_kid))
    # The staged key is published beside the old one: both verify, without a restart.
    key_file.write_bytes(_pem(old) + _pem(new))
    assert verifier.check() == (True, "2 Ed25519 public key(s) loaded")
    for key, kid in ((old, old_kid), (new, new_kid), (new, None)):
        assert "chat:complete" in verifier.verify("Bearer " + token(key, kid)).scopes
    # A forger who copies a published kid still fails on the signature.
    with pytest.raises(ServiceError, match="signature is not valid"):
        verifier.verify("Bearer " + token(stranger, new_kid))
    with pytest.raises(ServiceError, match="signature is not valid"):
        verifier.verify("Bearer " + token(stranger, None))

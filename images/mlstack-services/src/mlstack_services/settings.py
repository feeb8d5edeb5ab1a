"""The service contract's environment (docs/service-contract.md), read once at start."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

UNITS = ("voice-interaction", "chat", "reasoning", "sequential-thinking", "learning", "coordination", "perception",
         "memory")


class ConfigError(ValueError):
    """The environment does not describe a unit this package can run."""


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not an integer") from None
    if not low <= value <= high:
        raise ConfigError(f"{name}={value} is outside {low}..{high}")
    return value


# libpq's sslmode values (https://www.postgresql.org/docs/current/libpq-ssl.html).
PG_SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
_ON, _OFF = ("1", "true", "yes", "on"), ("0", "false", "no", "off", "")


def _flag(env: Mapping[str, str], name: str) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw in _ON:
        return True
    if raw in _OFF:
        return False
    raise ConfigError(f"{name}={raw!r}: use 1/true/yes to turn it on, 0/false/no or unset to leave it off")


def _pg_sslmode(env: Mapping[str, str]) -> str:
    mode = env.get("POSTGRES_SSLMODE", "").strip()
    if mode and mode not in PG_SSLMODES:
        raise ConfigError(f"POSTGRES_SSLMODE={mode!r}: use one of {', '.join(PG_SSLMODES)} "
                          "(libpq's sslmode), or leave it unset for libpq's default")
    rootcert = env.get("POSTGRES_SSLROOTCERT", "").strip()
    # Without a root certificate libpq falls back to ~/.postgresql/root.crt, which no container
    # has: say so now rather than with every connect.
    if mode in ("verify-ca", "verify-full") and not rootcert:
        raise ConfigError(f"POSTGRES_SSLMODE={mode} verifies the server against a CA: "
                          "set POSTGRES_SSLROOTCERT to the CA bundle's path")
    return mode


def _redis_tls(env: Mapping[str, str]) -> bool:
    on = _flag(env, "REDIS_TLS")
    if on and not env.get("REDIS_TLS_CA_FILE", "").strip():
        raise ConfigError("REDIS_TLS is on: set REDIS_TLS_CA_FILE to the CA bundle that signed Redis's certificate")
    return on


def _neo4j_tls_ca_file(env: Mapping[str, str]) -> str:
    ca_file = env.get("NEO4J_TLS_CA_FILE", "").strip()
    scheme = env.get("NEO4J_URI", "").strip().partition("://")[0]
    # The driver refuses its encryption settings beside a +s/+ssc URI, which chooses them itself.
    if ca_file and "+" in scheme:
        raise ConfigError(f"NEO4J_TLS_CA_FILE is set with a {scheme}:// NEO4J_URI: "
                          f"use {scheme.partition('+')[0]}:// (the CA file turns encryption on)")
    return ca_file


def read_secret(path: str) -> str | None:
    """The content of a secret file without its trailing newline, or None when it is unreadable."""
    try:
        return Path(path).read_text(encoding="utf-8").rstrip("\r\n")
    except OSError:
        return None


@dataclass(frozen=True)
class Settings:
    unit: str
    port: int = 8080
    log_level: str = "INFO"
    redis_host: str = ""
    redis_port: int = 6379
    redis_user: str = ""
    redis_password_file: str = "/run/secrets/redis_password"
    redis_prefix: str = ""
    redis_tls: bool = False
    redis_tls_ca_file: str = ""
    postgres_host: str = ""
    postgres_port: int = 5432
    postgres_user: str = ""
    postgres_db: str = ""
    postgres_password_file: str = "/run/secrets/postgres_password"
    # TLS to a database on another host (docs/service-contract.md): empty/False = as before.
    postgres_sslmode: str = ""
    postgres_sslrootcert: str = ""
    jwt_public_key_file: str = "/run/secrets/jwt_public.pem"
    jwt_issuer: str = "mlstack"
    jwt_audience: str = ""
    llm_url: str = ""
    llm_model: str = "local"
    llm_timeout_s: int = 120
    reasoning_url: str = ""
    # Reasoning asks the llm several times (plan, steps, check): on a busy two-core host that
    # takes longer than one answer, and a slow reasoner is not a down one.
    reasoning_timeout_s: int = 90
    learning_url: str = ""
    perception_url: str = ""
    # Every <UNIT>_URL the catalog wired, by unit name (the gateway routes to them).
    upstreams: dict[str, str] = field(default_factory=dict)
    max_body_bytes: int = 1 << 20
    session_ttl_s: int = 3600
    conversation_ttl_s: int = 86400
    conversation_max_messages: int = 40
    history_max_chars: int = 4000
    embedding_model_dir: str = "/opt/models/all-minilm-l6-v2"
    # voice-interaction: Whisper base (CTranslate2) and the Piper voices, both baked into the image.
    whisper_model_dir: str = "/opt/models/whisper-base"
    whisper_beam_size: int = 1
    piper_voice_dir: str = "/opt/models/piper"
    # "gpu" when the ml_service role placed the unit on a GPU (with CUDA_VISIBLE_DEVICES), else "cpu".
    placement: str = "cpu"
    data_dir: str = "/data"
    qdrant_url: str = ""
    qdrant_api_key_file: str = "/run/secrets/qdrant_api_key"
    neo4j_uri: str = ""
    neo4j_user: str = "neo4j"
    neo4j_password_file: str = "/run/secrets/neo4j_password"
    neo4j_tls_ca_file: str = ""
    # Admission control (admission.py), sized for a 2-core host: one expensive request per
    # core at a time, three times as many waiting to keep both cores fed through a burst
    # (8 admitted in all), and a wait bound well under the 30 s a typical client allows.
    admission_concurrency: int = 2
    admission_queue: int = 6
    admission_wait_s: int = 15

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        unit = env.get("MLSTACK_UNIT", "").strip()
        if unit not in UNITS:
            raise ConfigError(f"MLSTACK_UNIT={unit!r}: set it to one of {', '.join(UNITS)}")
        level = env.get("LOG_LEVEL", "INFO").strip().upper() or "INFO"
        if level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            raise ConfigError(f"LOG_LEVEL={level!r}: use DEBUG, INFO, WARNING, ERROR or CRITICAL")
        return cls(
            unit=unit,
            port=_int(env, "PORT", 8080, 1, 65535),
            log_level=level,
            redis_host=env.get("REDIS_HOST", "").strip(),
            redis_port=_int(env, "REDIS_PORT", 6379, 1, 65535),
            redis_user=env.get("REDIS_USER", "").strip(),
            redis_password_file=env.get("REDIS_PASSWORD_FILE", "/run/secrets/redis_password"),
            redis_prefix=env.get("REDIS_PREFIX") or f"{unit}:",
            redis_tls=_redis_tls(env),
            redis_tls_ca_file=env.get("REDIS_TLS_CA_FILE", "").strip(),
            postgres_host=env.get("POSTGRES_HOST", "").strip(),
            postgres_port=_int(env, "POSTGRES_PORT", 5432, 1, 65535),
            postgres_user=env.get("POSTGRES_USER", "").strip(),
            postgres_db=env.get("POSTGRES_DB", "").strip(),
            postgres_password_file=env.get("POSTGRES_PASSWORD_FILE", "/run/secrets/postgres_password"),
            postgres_sslmode=_pg_sslmode(env),
            postgres_sslrootcert=env.get("POSTGRES_SSLROOTCERT", "").strip(),
            jwt_public_key_file=env.get("JWT_PUBLIC_KEY_FILE", "/run/secrets/jwt_public.pem"),
            jwt_issuer=env.get("JWT_ISSUER", "mlstack"),
            jwt_audience=env.get("JWT_AUDIENCE") or unit,
            llm_url=env.get("LLM_URL", "").strip().rstrip("/"),
            llm_model=env.get("LLM_MODEL", "local").strip() or "local",
            llm_timeout_s=_int(env, "LLM_TIMEOUT_S", 120, 1, 3600),
            reasoning_url=env.get("REASONING_URL", "").strip().rstrip("/"),
            reasoning_timeout_s=_int(env, "REASONING_TIMEOUT_S", 90, 1, 600),
            learning_url=env.get("LEARNING_URL", "").strip().rstrip("/"),
            perception_url=env.get("PERCEPTION_URL", "").strip().rstrip("/"),
            upstreams={key[:-4].lower().replace("_", "-"): value.strip().rstrip("/")
                       for key, value in env.items() if key.endswith("_URL") and value.strip()},
            max_body_bytes=_int(env, "MAX_BODY_BYTES", 1 << 20, 1024, 64 << 20),
            session_ttl_s=_int(env, "SESSION_TTL_S", 3600, 1, 30 * 86400),
            conversation_ttl_s=_int(env, "CONVERSATION_TTL_S", 86400, 1, 30 * 86400),
            conversation_max_messages=_int(env, "CONVERSATION_MAX_MESSAGES", 40, 2, 1000),
            history_max_chars=_int(env, "HISTORY_MAX_CHARS", 4000, 0, 1_000_000),
            embedding_model_dir=env.get("EMBEDDING_MODEL_DIR", "").strip() or "/opt/models/all-minilm-l6-v2",
            data_dir=env.get("DATA_DIR", "").strip() or "/data",
            whisper_model_dir=env.get("WHISPER_MODEL_DIR", "").strip() or "/opt/models/whisper-base",
            whisper_beam_size=_int(env, "WHISPER_BEAM_SIZE", 1, 1, 10),
            piper_voice_dir=env.get("PIPER_VOICE_DIR", "").strip() or "/opt/models/piper",
            placement="gpu" if env.get("MLSTACK_PLACEMENT", "").strip().lower() == "gpu" else "cpu",
            qdrant_url=env.get("QDRANT_URL", "").strip().rstrip("/"),
            qdrant_api_key_file=env.get("QDRANT_API_KEY_FILE", "/run/secrets/qdrant_api_key"),
            neo4j_uri=env.get("NEO4J_URI", "").strip(),
            neo4j_user=env.get("NEO4J_USER", "").strip() or "neo4j",
            neo4j_password_file=env.get("NEO4J_PASSWORD_FILE", "/run/secrets/neo4j_password"),
            neo4j_tls_ca_file=_neo4j_tls_ca_file(env),
            admission_concurrency=_int(env, "ADMISSION_CONCURRENCY", 2, 1, 256),
            admission_queue=_int(env, "ADMISSION_QUEUE", 6, 0, 10_000),
            admission_wait_s=_int(env, "ADMISSION_WAIT_S", 15, 1, 600),
        )

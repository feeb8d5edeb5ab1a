# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The evidence record every check module returns (schema documented in docs/evidence.md).

Standard library only, so that modules, action plugins and the callback share it.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

SCHEMA_VERSION = 1

# Observed keys whose value must never leave the process: a check may hold a secret in
# memory, never in its record.
_SECRET_MARKERS = ("password", "secret", "token", "passwd", "apikey", "api_key")


def utc_now() -> str:
    """An ISO 8601 UTC timestamp with milliseconds, the one format of the bundle."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds")


def _assert_no_secret_keys(observed: dict[str, Any]) -> None:
    for key in observed:
        lowered = key.lower()
        if any(marker in lowered for marker in _SECRET_MARKERS):
            raise ValueError(f"evidence key {key!r} looks like a secret; records must not carry secrets")


def record(
    unit: str,
    check: str,
    ok: bool,
    observed: dict[str, Any] | None = None,
    message: str = "",
    fake: str | None = None,
) -> dict[str, Any]:
    """Build one evidence record.

    ``fake`` names the stand-in a check ran against (a recorded response, a mocked
    NVML) so that the bundle never passes a fake off as the real thing.
    """
    observed = dict(observed or {})
    _assert_no_secret_keys(observed)
    rec: dict[str, Any] = {
        "schema": SCHEMA_VERSION,
        "unit": unit,
        "check": check,
        "ok": bool(ok),
        "observed": observed,
        "message": message,
        "timestamp": utc_now(),
    }
    if fake:
        rec["fake"] = fake
    return rec


def verdict(records: list[dict[str, Any]]) -> bool:
    """True when every record passed; an empty list is not a pass."""
    return bool(records) and all(r.get("ok") for r in records)


@contextmanager
def stopwatch() -> Iterator[dict[str, float]]:
    """Measure a block's wall time in milliseconds into ``holder['ms']``."""
    holder: dict[str, float] = {}
    start = time.perf_counter()
    try:
        yield holder
    finally:
        holder["ms"] = round((time.perf_counter() - start) * 1000.0, 2)


def scrub(text: str, secrets: list[str | None] | tuple[str | None, ...]) -> str:
    """Replace every occurrence of each non-empty secret in ``text`` with ``********``.

    For error texts that come back from a server or a client library: they should not
    carry a password, and this makes sure they don't. Longer secrets go first so that a
    secret containing another is masked whole.
    """
    out = str(text)
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        out = out.replace(secret, "********")
    return out


def summary(unit: str, records: list[dict[str, Any]]) -> str:
    """One line for a check module's ``msg``: all ok, or the failed checks (with their user)."""
    if verdict(records):
        return f"{unit}: {len(records)} of {len(records)} checks ok"
    if not records:
        return f"{unit}: no checks ran"
    failed = [
        r["check"] + (f" ({r['observed']['user']})" if "user" in r.get("observed", {}) else "")
        for r in records
        if not r.get("ok")
    ]
    return f"{unit}: {len(failed)} of {len(records)} checks failed: {', '.join(failed)}"


def finish(module: Any, unit: str, records: list[dict[str, Any]], fail_on_error: bool) -> None:
    """End a check module: fail with the records when a check failed (and that should fail), else exit.

    ``module`` is the AnsibleModule; duck-typed so that this file stays standard library only.
    """
    ok = verdict(records)
    msg = summary(unit, records)
    if not ok and fail_on_error:
        module.fail_json(msg=msg, ok=False, evidence=records)
    module.exit_json(changed=False, ok=ok, evidence=records, msg=msg)


class Probe:
    """One database unit's probe run: where to connect, and the records it has written so far.

    A subclass says how its driver's errors read (``err``); both scrub the unit's secrets.
    """

    def __init__(
        self, unit: str, host: str, port: int, timeout: float, connect: Callable[..., Any], secret_values: list[str]
    ) -> None:
        self.unit = unit
        self.host = host
        self.port = port
        self.timeout = timeout
        self.connect = connect
        self.secrets = secret_values
        self.records: list[dict[str, Any]] = []

    def add(self, check: str, ok: bool, observed: dict[str, Any], message: str) -> None:
        self.records.append(record(self.unit, check, ok, observed, scrub(message, self.secrets)))

    def err(self, exc: BaseException) -> str:
        return scrub(str(exc), self.secrets)

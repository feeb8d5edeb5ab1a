# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Waiting with backoff, latency percentiles and the health report, as tables (no network, no sleep)."""

from __future__ import annotations

import json

import pytest

from ansible_collections.aiops.mlstack.plugins.module_utils import _health as h
from ansible_collections.aiops.mlstack.plugins.module_utils import _health_wait as hw

# --- percentiles -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "p", "expected"),
    [
        ([], 50, None),
        ([7.0], 50, 7.0),
        ([7.0], 95, 7.0),
        ([1, 2, 3, 4, 5], 50, 3),
        ([5, 1, 4, 2, 3], 50, 3),
        ([1, 2, 3, 4, 5], 95, 5),
        ([1, 2, 3, 4], 50, 2),
        (list(range(1, 21)), 50, 10),
        (list(range(1, 21)), 95, 19),
        (list(range(1, 101)), 95, 95),
        (list(range(1, 101)), 99, 99),
        ([3, 1, 2], 0, 1),
        ([3, 1, 2], 100, 3),
    ],
)
def test_percentile_nearest_rank(values, p, expected):
    assert hw.percentile(values, p) == expected


@pytest.mark.parametrize("p", [-1, 100.5])
def test_percentile_out_of_range(p):
    with pytest.raises(ValueError, match="between 0 and 100"):
        hw.percentile([1.0], p)


def test_latency_summary():
    assert hw.latency_summary([4.0, 1.0, 3.0, 2.0, 10.0]) == {"min": 1.0, "p50": 3.0, "p95": 10.0, "max": 10.0}
    assert hw.latency_summary([]) == {"min": None, "p50": None, "p95": None, "max": None}


# --- backoff and waiting ---------------------------------------------------------------


class FakeTime:
    """A clock that moves only when slept on (plus a fixed cost per probe)."""

    def __init__(self, probe_cost: float = 0.0) -> None:
        self.now = 100.0
        self.probe_cost = probe_cost
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def scripted(fake: FakeTime, attempts: list[h.Attempt]):
    """A probe that returns the given attempts in order, then repeats the last one."""
    calls = {"n": 0}

    def probe() -> h.Attempt:
        fake.now += fake.probe_cost
        index = min(calls["n"], len(attempts) - 1)
        calls["n"] += 1
        return attempts[index]

    probe.calls = calls
    return probe


REFUSED = h.Attempt(False, "connection refused by http://127.0.0.1:9/")
UP = h.Attempt(True, "HTTP status 200", status=200, latency_ms=1.5)


@pytest.mark.parametrize(
    ("attempt", "delay", "backoff", "max_delay", "expected"),
    [
        (1, 0.5, 1.5, 5, 0.5),
        (2, 0.5, 1.5, 5, 0.75),
        (3, 0.5, 1.5, 5, 1.125),
        (4, 0.5, 1.5, 5, 1.6875),
        (7, 0.5, 1.5, 5, 5),
        (3, 1, 1, 5, 1),
        (1, 10, 2, 5, 5),
        (5000, 0.5, 1.5, 5, 5),  # 1.5 ** 4999 overflows a float
    ],
)
def test_backoff_delay(attempt, delay, backoff, max_delay, expected):
    assert hw.backoff_delay(attempt, delay, backoff, max_delay) == pytest.approx(expected)


def test_backoff_schedule_is_capped_and_gives_up_with_the_last_reason():
    fake = FakeTime()
    attempts = [h.Attempt(False, f"timed out after 3 s waiting for x (try {i})") for i in range(1, 9)]
    attempts.append(h.Attempt(False, "connection refused by http://127.0.0.1:9/ (the last one)"))
    probe = scripted(fake, attempts)
    result = hw.wait_until_healthy(
        probe, retries=8, delay=0.5, backoff=1.5, max_delay=2.0, sleep=fake.sleep, clock=fake.clock
    )
    assert not result.ok
    assert result.attempts == 9 == probe.calls["n"]
    assert result.delays == pytest.approx([0.5, 0.75, 1.125, 1.6875, 2.0, 2.0, 2.0, 2.0])
    assert fake.sleeps == result.delays  # no sleep after the last attempt
    assert result.waited_s == pytest.approx(sum(result.delays), abs=1e-3)
    assert result.reason.startswith("connection refused by http://127.0.0.1:9/ (the last one)")
    assert "gave up after 9 attempt(s) in 12.1 s" in result.reason
    assert result.last is attempts[-1]


@pytest.mark.parametrize("failures", [0, 1, 3, 10])
def test_success_after_failures(failures):
    fake = FakeTime(probe_cost=0.01)
    probe = scripted(fake, [REFUSED] * failures + [UP])
    result = hw.wait_until_healthy(
        probe, retries=10, delay=0.5, backoff=1.5, max_delay=5, sleep=fake.sleep, clock=fake.clock
    )
    assert result.ok
    assert result.attempts == failures + 1
    assert len(result.delays) == failures
    assert result.last is UP
    assert result.reason == "HTTP status 200"


def test_retries_zero_probes_once():
    fake = FakeTime()
    result = hw.wait_until_healthy(scripted(fake, [REFUSED]), retries=0, sleep=fake.sleep, clock=fake.clock)
    assert (result.ok, result.attempts, result.delays) == (False, 1, [])


def test_fatal_attempt_is_not_retried():
    fake = FakeTime()
    fatal = h.Attempt(False, "TLS certificate of https://x/ failed verification: self-signed", fatal=True)
    result = hw.wait_until_healthy(scripted(fake, [REFUSED, fatal, UP]), retries=10, sleep=fake.sleep, clock=fake.clock)
    assert not result.ok
    assert result.attempts == 2
    assert "not retried" in result.reason and "self-signed" in result.reason


def test_deadline_cuts_the_last_sleep_and_stops():
    fake = FakeTime()
    result = hw.wait_until_healthy(
        scripted(fake, [REFUSED]),
        retries=100,
        delay=0.5,
        backoff=2,
        max_delay=5,
        sleep=fake.sleep,
        clock=fake.clock,
        deadline=2.0,
    )
    assert not result.ok
    assert result.delays == pytest.approx([0.5, 1.0, 0.5])
    assert result.attempts == 4
    assert "gave up at the 2 s deadline after 4 attempt(s)" in result.reason


def test_measure_counts_failures_and_keeps_ok_latencies():
    fake = FakeTime()
    slow = h.Attempt(True, "HTTP status 200", status=200, latency_ms=9.0)
    down = h.Attempt(False, "HTTP status 503, expected 200")
    m = hw.measure(scripted(fake, [UP, slow, down, UP, UP]), 5)
    assert (m.total, m.ok, m.latencies_ms, m.last_failure) == (5, 4, [1.5, 9.0, 1.5, 1.5], down.reason)
    assert hw.measure(scripted(fake, [UP]), 0) == hw.Measurement(total=0, ok=0)


@pytest.mark.parametrize(
    ("args", "count"),
    [
        ((60, 0.5, 1.5, 5, 3, 5), 0),
        ((0, 0, 1, 0, 0.1, 0), 0),
        ((-1, -0.1, 0.5, -1, 0, -1), 6),
    ],
)
def test_validate_wait(args, count):
    assert len(hw.validate_wait(*args)) == count


# --- report ----------------------------------------------------------------------------


def test_report_healthy():
    wait = hw.WaitResult(True, 3, 1.27, "HTTP status 200", UP, [0.5, 0.75])
    m = hw.Measurement(total=5, ok=5, latencies_ms=[1.0, 2.0, 3.0, 4.0, 5.0])
    out = hw.report("chat", "health", "http://127.0.0.1:8080/health", wait, m)
    assert out["ok"] is True
    assert (out["status"], out["attempts"], out["waited_s"]) == (200, 3, 1.27)
    assert out["latency_ms"] == {"min": 1.0, "p50": 3.0, "p95": 5.0, "max": 5.0}
    assert out["reason"] == "HTTP status 200 after 3 attempt(s) in 1.3 s"
    (rec,) = out["evidence"]
    assert (rec["unit"], rec["check"], rec["ok"], rec["message"]) == ("chat", "health", True, out["reason"])
    assert rec["observed"] == {
        "url": "http://127.0.0.1:8080/health",
        "status": 200,
        "attempts": 3,
        "waited_s": 1.27,
        "latency_p50_ms": 3.0,
        "latency_p95_ms": 5.0,
        "probes_ok": 5,
        "probes_slow": 0,
        "probes_total": 5,
        "latency_bound_ms": None,
    }
    assert out["msg"].startswith("chat: health ok: ")


def test_measure_counts_a_timed_out_probe_as_slow_with_the_timeout_as_its_latency():
    fake = FakeTime()
    timed_out = h.Attempt(False, "timed out after 10 s waiting for http://x/", slow=True)
    m = hw.measure(scripted(fake, [UP, timed_out, UP]), 3, timeout=10.0)
    assert (m.ok, m.slow, m.last_failure, m.latencies_ms) == (2, 1, "", [1.5, 10000.0, 1.5])


def test_report_slow_is_not_down_without_a_bound():
    """A busy host: one latency probe of five timed out. Evidence, not a failure."""
    wait = hw.WaitResult(True, 1, 0.2, "HTTP status 200", UP)
    m = hw.Measurement(total=5, ok=4, latencies_ms=[1.0, 2.0, 3.0, 4.0, 10000.0], slow=1,
                       last_slow="timed out after 10 s waiting for http://x/")
    out = hw.report("coordination", "health", "http://x/", wait, m)
    assert out["ok"] is True
    assert "slow, not down: 1 of 5 latency probes timed out" in out["reason"]
    assert out["evidence"][0]["observed"]["probes_slow"] == 1
    assert out["latency_ms"]["p95"] == 10000.0


def test_report_slow_past_the_declared_bound_fails_and_says_so():
    wait = hw.WaitResult(True, 1, 0.2, "HTTP status 200", UP)
    m = hw.Measurement(total=5, ok=4, latencies_ms=[1.0, 2.0, 3.0, 4.0, 10000.0], slow=1)
    out = hw.report("coordination", "health", "http://x/", wait, m, latency_bound_ms=500.0)
    assert out["ok"] is False
    assert "too slow: p95 latency 10000 ms is over the declared bound of 500 ms" in out["reason"]
    assert out["evidence"][0]["observed"]["latency_bound_ms"] == 500.0


def test_report_a_refused_probe_after_success_is_still_down_even_with_slow_ones():
    wait = hw.WaitResult(True, 1, 0.2, "HTTP status 200", UP)
    m = hw.Measurement(total=5, ok=3, latencies_ms=[1.0, 2.0, 3.0, 10000.0], slow=1,
                       last_failure="connection refused by x")
    out = hw.report("chat", "health", "http://x/", wait, m)
    assert out["ok"] is False and "1 of 5 latency probes failed" in out["reason"]


def test_a_timeout_is_slow_and_a_refusal_is_not():
    assert h.describe_error(TimeoutError(), "http://x/", 10).slow is True
    assert h.describe_error(ConnectionRefusedError(), "http://x/", 10).slow is False


def test_report_flaky_after_success_is_not_healthy():
    wait = hw.WaitResult(True, 1, 0.01, "HTTP status 200", UP)
    m = hw.Measurement(total=5, ok=3, latencies_ms=[1.0, 2.0, 3.0], last_failure="HTTP status 503, expected 200")
    out = hw.report("chat", "health", "http://x/", wait, m)
    assert out["ok"] is False
    assert "2 of 5 latency probes failed, the last: HTTP status 503" in out["reason"]
    assert out["evidence"][0]["observed"]["probes_ok"] == 3


def test_report_failed_wait_masks_secrets_and_has_no_latency():
    last = h.Attempt(False, "HTTP status 401, expected 200; body: bad token s3cr3t-tok")
    wait = hw.WaitResult(False, 4, 1.9, last.reason + " (gave up after 4 attempt(s) in 1.9 s)", last)
    out = hw.report("chat", "ready", "http://x/", wait, None, secrets=["s3cr3t-tok", None])
    assert out["ok"] is False
    assert "s3cr3t-tok" not in json.dumps(out)
    assert "********" in out["reason"]
    assert out["latency_ms"] == {"min": None, "p50": None, "p95": None, "max": None}
    assert out["evidence"][0]["check"] == "ready"
    assert out["evidence"][0]["observed"]["probes_total"] == 0


def test_report_without_latency_probes_uses_the_successful_attempt():
    wait = hw.WaitResult(True, 1, 0.0, "TCP connect to db:5432 ok", h.Attempt(True, "ok", latency_ms=0.4))
    out = hw.report("db", "health", "tcp://db:5432", wait, hw.Measurement(total=0, ok=0))
    assert out["ok"] is True
    assert out["latency_ms"] == {"min": 0.4, "p50": 0.4, "p95": 0.4, "max": 0.4}
    assert out["status"] is None

"""Load benchmark: the critical services at rising concurrency, and one level past saturation.

    .venv/bin/python benchmarks/load.py                 # the deployed stack on this machine
    .venv/bin/python benchmarks/load.py --local         # local uvicorn units with fakes

Against the deployed stack (host ports: voice-interaction 8006, chat 8007, the coordination
gateway 8000; tokens minted with the stack's signing key, as benchmarks/services.py does):
chat streams at 1, 2, 4 and 8 at a time, TTS and STT (command mode) requests at 1, 2, 4 and 8,
the gateway's voice-chat pipeline (WAV in: STT, chat, TTS) at 1, 2 and 4, and each at
``--over`` (16) past the units' admission capacity (2 running + 6 waiting by default). Each
level is a closed loop: ``concurrency`` clients send ``--rounds`` requests each, back to back.

Per level: successful requests per second, p50/p95 latency of the successes (chat: also time to
first token), error rate (anything but a success or a refusal), refusals (429 or 503 carrying
Retry-After) and the longest time a refusal took, and whether the unit's /health (and for the
pipeline the gateway's and both units') stayed 200 throughout, probed in a side loop. Prints a
Markdown table, writes JSON to benchmarks/results/. Loopback only; every level is bounded by
``--level-timeout`` for new requests and ``--timeout`` per request. Figures only: asserts nothing.

--local starts voice-interaction, chat and coordination from this checkout with uvicorn on
free loopback ports, with their neighbours as the test fakes (FakeRedis, FakeTranscriptStore,
SlowFakeLLM: see benchmarks/load_stack.py) and a throwaway signing key: a check of the
benchmark and of the units' behaviour past saturation, not the stack's figures.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import wave
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import requests
import services
from services import PHRASES, headers, percentile

ROOT = Path(__file__).resolve().parents[1]
GATEWAY = "http://127.0.0.1:8000"
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
MAX_CONCURRENCY = 64


@dataclass
class Outcome:
    status: int  # 0: no HTTP answer (timeout, connection error)
    latency_s: float
    retry_after: str | None = None
    ttft_s: float | None = None
    note: str = ""

    @property
    def ok(self) -> bool:
        return self.status == 200 and not self.note

    @property
    def refused(self) -> bool:
        return self.status in (429, 503) and self.retry_after is not None


@dataclass
class Stack:
    voice: str
    chat: str
    gateway: str


Call = Callable[[requests.Session, int], Outcome]


# --- the requests ----------------------------------------------------------------------------


def chat_call(stack: Stack, max_tokens: int, timeout: float) -> Call:
    auth = headers("chat", "chat:complete")

    def call(session: requests.Session, i: int) -> Outcome:
        body = {"model": "local", "max_tokens": max_tokens, "temperature": 0.7, "stream": True,
                "messages": [{"role": "user", "content": f"Tell me one fact about the number {i + 3}."}]}
        start = time.perf_counter()
        first, done = None, False
        with session.post(stack.chat + "/v1/chat/completions", json=body, headers=auth, stream=True,
                          timeout=timeout) as response:
            if response.status_code != 200:
                response.content  # noqa: B018 - read the error body before the clock stops
                return Outcome(response.status_code, time.perf_counter() - start, response.headers.get("retry-after"))
            for line in response.iter_lines(decode_unicode=True):
                if line == "data: [DONE]":
                    done = True
                elif line.startswith("data: {") and first is None and '"content"' in line:
                    first = time.perf_counter()
        end = time.perf_counter()
        return Outcome(200, end - start, ttft_s=None if first is None else first - start,
                       note="" if done else "stream ended without [DONE]")

    return call


def plain_call(url: str, auth: dict[str, str], body: Callable[[int], dict[str, Any]], timeout: float) -> Call:
    def call(session: requests.Session, i: int) -> Outcome:
        start = time.perf_counter()
        response = session.post(url, headers=auth, timeout=timeout, **body(i))
        return Outcome(response.status_code, time.perf_counter() - start, response.headers.get("retry-after"))

    return call


def tts_call(stack: Stack, timeout: float) -> Call:
    return plain_call(stack.voice + "/v1/tts", headers("voice-interaction", "voice:tts"),
                      lambda i: {"json": {"text": PHRASES[i % len(PHRASES)]}}, timeout)


def stt_call(stack: Stack, clips: list[bytes], timeout: float) -> Call:
    auth = {**headers("voice-interaction", "voice:stt"), "Content-Type": "audio/wav"}
    return plain_call(stack.voice + "/v1/stt?mode=command", auth, lambda i: {"data": clips[i % len(clips)]}, timeout)


def pipeline_call(stack: Stack, clips: list[bytes], timeout: float) -> Call:
    # The gateway forwards the caller's token: it must name the gateway and both units it reaches.
    auth = {**headers(["coordination", "voice-interaction", "chat"],  # type: ignore[arg-type]
                      "coordination:pipeline voice:stt voice:tts chat:complete"), "Content-Type": "audio/wav"}
    return plain_call(stack.gateway + "/v1/pipeline/voice-chat", auth, lambda i: {"data": clips[i % len(clips)]},
                      timeout)


def make_clips(stack: Stack) -> list[bytes]:
    """The phrases spoken by the unit's own TTS, once, before any level (not measured)."""
    auth = headers("voice-interaction", "voice:tts")
    clips = []
    for phrase in PHRASES:
        try:
            response = requests.post(stack.voice + "/v1/tts", json={"text": phrase}, headers=auth, timeout=60)
            response.raise_for_status()
        except requests.RequestException as exc:
            raise SystemExit(f"voice-interaction at {stack.voice} cannot make the test clips: {exc}") from None
        clips.append(response.content)
    with wave.open(io.BytesIO(clips[0])) as clip:
        if clip.getnframes() == 0:
            raise SystemExit("the TTS clip is empty: is voice-interaction working?")
    return clips


# --- one level -------------------------------------------------------------------------------


def probe_health(urls: list[str], stop: threading.Event, out: list[tuple[str, int, float]]) -> None:
    """GET <url>/health every 0.25 s (2 s timeout) until ``stop``: (url, status or 0, seconds)."""
    with requests.Session() as session:
        while not stop.is_set():
            for url in urls:
                start = time.perf_counter()
                try:
                    status = session.get(url + "/health", timeout=2).status_code
                except requests.RequestException:
                    status = 0
                out.append((url, status, time.perf_counter() - start))
            stop.wait(0.25)


def run_level(call: Call, concurrency: int, rounds: int, health_urls: list[str], level_timeout: float,
              timeout: float) -> dict[str, Any]:
    outcomes: list[Outcome] = []
    lock = threading.Lock()
    go = threading.Barrier(concurrency + 1)
    deadline = [0.0]

    def worker(index: int) -> None:
        with requests.Session() as session:
            go.wait()
            for r in range(rounds):
                if time.monotonic() > deadline[0]:
                    return
                start = time.perf_counter()
                try:
                    outcome = call(session, index * rounds + r)
                except requests.RequestException as exc:
                    outcome = Outcome(0, time.perf_counter() - start, note=type(exc).__name__)
                with lock:
                    outcomes.append(outcome)

    probes: list[tuple[str, int, float]] = []
    stop = threading.Event()
    prober = threading.Thread(target=probe_health, args=(health_urls, stop, probes), daemon=True)
    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    prober.start()
    deadline[0] = time.monotonic() + level_timeout
    go.wait()
    start = time.perf_counter()
    for thread in threads:
        thread.join(level_timeout + timeout + 5)
    wall = time.perf_counter() - start
    stop.set()
    prober.join(5)
    return summarize(concurrency, outcomes, wall, probes)


def summarize(concurrency: int, outcomes: list[Outcome], wall: float,
              probes: list[tuple[str, int, float]]) -> dict[str, Any]:
    ok = [o for o in outcomes if o.ok]
    refused = [o for o in outcomes if o.refused]
    errors = [o for o in outcomes if not o.ok and not o.refused]
    latencies = [o.latency_s for o in ok]
    ttfts = [o.ttft_s for o in ok if o.ttft_s is not None]
    failed_probes = [p for p in probes if p[1] != 200]
    return {
        "concurrency": concurrency, "requests": len(outcomes), "ok": len(ok), "refused": len(refused),
        "errors": len(errors), "error_rate": round(len(errors) / len(outcomes), 4) if outcomes else None,
        "wall_s": round(wall, 3), "throughput_rps": round(len(ok) / wall, 3) if wall > 0 else None,
        "p50_s": round(percentile(latencies, 50), 4) if latencies else None,
        "p95_s": round(percentile(latencies, 95), 4) if latencies else None,
        "ttft_p50_s": round(statistics.median(ttfts), 4) if ttfts else None,
        "refusal_statuses": sorted({o.status for o in refused}),
        "retry_after": sorted({str(o.retry_after) for o in refused}),
        "max_refusal_s": round(max(o.latency_s for o in refused), 4) if refused else None,
        "error_kinds": sorted({o.note or str(o.status) for o in errors}),
        "health_probes": len(probes), "health_failed": len(failed_probes),
        "health_max_s": round(max(p[2] for p in probes), 4) if probes else None,
        "health_ok": bool(probes) and not failed_probes,
    }


def admission_counters(url: str) -> dict[str, float]:
    """The unit's mlstack_admission_refused_total and _admitted_total series, from /metrics."""
    try:
        text = requests.get(url + "/metrics", timeout=5).text
    except requests.RequestException:
        return {}
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
            if line.startswith(("mlstack_admission_refused_total", "mlstack_admission_admitted_total"))}


# --- the local stand-in stack ----------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def local_stack(token_delay_s: float) -> Iterator[Stack]:
    """voice-interaction, chat, coordination and a fake llm as processes on loopback; a throwaway key."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    python = ROOT / ".venv-services" / "bin" / "python"
    if not python.exists():
        raise SystemExit(f"--local needs the services' venv at {python}")
    with tempfile.TemporaryDirectory(prefix="mlstack-load-") as tmp:
        secrets = Path(tmp)
        key = Ed25519PrivateKey.generate()
        (secrets / "jwt").mkdir()
        (secrets / "jwt" / "signing.pem").write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        (secrets / "jwt_public.pem").write_bytes(key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
        services.SECRETS = secrets
        ports = {name: free_port() for name in ("fake-llm", "voice-interaction", "chat", "coordination")}
        url = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
        base_env = {**os.environ, "JWT_PUBLIC_KEY_FILE": str(secrets / "jwt_public.pem"), "LOG_LEVEL": "WARNING",
                    "PYTHONPATH": f"{ROOT}/images/mlstack-services/src:{ROOT}/images/mlstack-services/tests"}
        wiring = {"chat": {"LLM_URL": url["fake-llm"]},
                  "coordination": {"VOICE_INTERACTION_URL": url["voice-interaction"], "CHAT_URL": url["chat"]}}
        procs = []
        try:
            for name, port in ports.items():
                argv = [str(python), str(ROOT / "benchmarks" / "load_stack.py"), name, "--port", str(port),
                        "--token-delay", str(token_delay_s)]
                procs.append(subprocess.Popen(argv, env={**base_env, **wiring.get(name, {})}, cwd=ROOT,
                                              start_new_session=True))
            wait_healthy(list(url.values()), procs)
            yield Stack(url["voice-interaction"], url["chat"], url["coordination"])
        finally:
            for proc in procs:
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGTERM)
            for proc in procs:
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(5)


def wait_healthy(urls: list[str], procs: list[subprocess.Popen[bytes]], timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    pending = list(urls)
    while pending:
        if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
            raise SystemExit(f"the local units did not start: {pending} not healthy")
        try:
            if requests.get(pending[0] + "/health", timeout=1).status_code == 200:
                pending.pop(0)
                continue
        except requests.RequestException:
            pass
        time.sleep(0.2)


# --- the run ---------------------------------------------------------------------------------


def cell(value: Any, fmt: str = "") -> str:
    return "-" if value is None else format(value, fmt)


def table(results: dict[str, list[dict[str, Any]]]) -> list[str]:
    lines = ["| scenario | concurrency | requests | ok | refused (429/503 + Retry-After) | error rate | req/s "
             "| p50 s | p95 s | TTFT p50 s | max time to refusal s | /health 200 throughout |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for scenario, levels in results.items():
        for r in levels:
            health = "yes" if r["health_ok"] else f"NO ({r['health_failed']}/{r['health_probes']} failed)"
            lines.append(f"| {scenario} | {r['concurrency']} | {r['requests']} | {r['ok']} | {r['refused']} "
                         f"| {cell(r['error_rate'], '.2f')} | {cell(r['throughput_rps'], '.2f')} "
                         f"| {cell(r['p50_s'], '.3f')} | {cell(r['p95_s'], '.3f')} | {cell(r['ttft_p50_s'], '.3f')} "
                         f"| {cell(r['max_refusal_s'], '.3f')} | {health} |")
    return lines


def check_loopback(*urls: str) -> None:
    for url in urls:
        if urlparse(url).hostname not in LOOPBACK:
            raise SystemExit(f"{url}: this benchmark loads loopback addresses only")


def levels(text: str) -> list[int]:
    values = [int(v) for v in text.split(",") if v.strip()]
    if not values or any(not 1 <= v <= MAX_CONCURRENCY for v in values):
        raise argparse.ArgumentTypeError(f"concurrency levels between 1 and {MAX_CONCURRENCY}")
    return values


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--local", action="store_true", help="local uvicorn units with fakes, not the stack")
    parser.add_argument("--voice", default=services.VOICE)
    parser.add_argument("--chat", default=services.CHAT)
    parser.add_argument("--gateway", default=GATEWAY)
    parser.add_argument("--scenarios", default="chat,tts,stt,pipeline")
    parser.add_argument("--levels", type=levels, default=[1, 2, 4, 8], help="chat, TTS and STT")
    parser.add_argument("--pipeline-levels", type=levels, default=[1, 2, 4])
    parser.add_argument("--over", type=int, default=16, help="the level past saturation (0: none)")
    parser.add_argument("--rounds", type=int, default=3, help="requests per client per level")
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--timeout", type=float, default=120, help="seconds per request")
    parser.add_argument("--level-timeout", type=float, default=120, help="no new request after this, per level")
    parser.add_argument("--token-delay", type=float, default=0.05, help="--local: the fake llm's seconds per word")
    args = parser.parse_args()
    if not 0 <= args.over <= MAX_CONCURRENCY or not 1 <= args.rounds <= 20:
        parser.error(f"--over 0..{MAX_CONCURRENCY}, --rounds 1..20")
    return args


def main() -> None:
    args = parse_args()
    load_before = [round(x, 2) for x in os.getloadavg()]
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    deployed = Stack(args.voice, args.chat, args.gateway)
    signing = services.SECRETS / "jwt" / "signing.pem"
    if not args.local and not signing.is_file():
        raise SystemExit(f"no signing key at {signing}: set MLSTACK_SECRETS_DIR to the stack's secrets directory")
    with local_stack(args.token_delay) if args.local else nullcontext(deployed) as stack:
        check_loopback(stack.voice, stack.chat, stack.gateway)
        clips = make_clips(stack)
        plan = {
            "chat stream": (chat_call(stack, args.max_tokens, args.timeout), args.levels, [stack.chat], stack.chat),
            "tts": (tts_call(stack, args.timeout), args.levels, [stack.voice], stack.voice),
            "stt (command)": (stt_call(stack, clips, args.timeout), args.levels, [stack.voice], stack.voice),
            "voice-chat pipeline": (pipeline_call(stack, clips, args.timeout), args.pipeline_levels,
                                    [stack.gateway, stack.voice, stack.chat], stack.gateway),
        }
        chosen = {"chat": "chat stream", "tts": "tts", "stt": "stt (command)", "pipeline": "voice-chat pipeline"}
        results: dict[str, list[dict[str, Any]]] = {}
        counters: dict[str, dict[str, float]] = {}
        for key in args.scenarios.split(","):
            scenario = chosen[key.strip()]
            call, steps, health, unit_url = plan[scenario]
            results[scenario] = []
            for concurrency in [*steps, *([args.over] if args.over else [])]:
                row = run_level(call, concurrency, args.rounds, health, args.level_timeout, args.timeout)
                results[scenario].append(row)
                print(f"{scenario:20} x{concurrency:<3} ok {row['ok']}/{row['requests']} refused {row['refused']} "
                      f"errors {row['errors']} {cell(row['throughput_rps'], '.2f')} req/s", file=sys.stderr)
            counters[scenario] = admission_counters(unit_url)
    lines = table(results)
    print("\n".join(lines))
    load_after = [round(x, 2) for x in os.getloadavg()]
    mode = "local" if args.local else "stack"
    print(f"\n{mode}: load average before {load_before}, after {load_after}, {os.cpu_count()} cores")
    out = ROOT / "benchmarks" / "results" / f"load-{mode}-{time.strftime('%Y%m%dT%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"mode": mode, "when": when, "cores": os.cpu_count(), "load_before": load_before,
                               "load_after": load_after, "args": vars(args), "results": results,
                               "admission_counters_after": counters, "table": lines}, indent=2) + "\n")
    print(f"written: {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()

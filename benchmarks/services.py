"""Benchmark the deployed critical services and print their figures.

    .venv/bin/python benchmarks/services.py [--rounds 20] [--json out.json]

Against the stack phase5 left on this machine: TTS latency p50/p95 (voice-interaction),
STT real-time factor in command and free mode, chat time to first token, tokens per
second and the share of streams that ran to a finish_reason (streamed, through chat to
the llm unit), perception's analysis latency and intent accuracy on held-out phrasings,
memory's store and search latency, and each unit's resident memory as Docker reports it.
Tokens are minted with the stack's signing key; nothing secret is printed. Figures only:
this script asserts nothing.

    .venv/bin/python benchmarks/services.py --voice [--json benchmarks/results/voice-TIME.json]

The voice benchmark alone: each held-out sentence (VOICE_SENTENCES: commands, questions,
dictation; in none of the tests) spoken by both TTS engines (Piper en_US-joe-medium,
espeak-ng en-us) and recognized by both free-form STT engines (Whisper base, pocketsphinx'
full LM): word error rate per TTS x STT engine, STT real-time factor p50/p95 (the unit's
own decode time over the audio's length), TTS latency p50/p95 and real-time factor, the
unit's memory (now and its cgroup's peak) and the image's size, against the goals of issue 21.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
import wave
from pathlib import Path

import jwt
import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / ".ansible" / "collections"))

from ansible_collections.aiops.mlstack.plugins.module_utils._unit import (  # noqa: E402
    container_name,
    resolve_settings,
)

# The collection's own defaults (the environment standing in for the inventory's settings).
SETTINGS = resolve_settings({"mlstack_secrets_dir": os.environ.get("MLSTACK_SECRETS_DIR"),
                             "mlstack_backend_network": os.environ.get("MLSTACK_BACKEND_NETWORK")}, str(Path.home()))
SECRETS = Path(SETTINGS.secrets_dir)
VOICE = "http://127.0.0.1:8006"
CHAT = "http://127.0.0.1:8007"
PHRASES = ["turn on the lights", "what time is it", "play some music", "open the door", "stop"]


def headers(audience: str, scope: str) -> dict[str, str]:
    now = int(time.time())
    claims = {"iss": "mlstack", "sub": "benchmark", "aud": audience, "scope": scope, "iat": now, "exp": now + 600,
              "jti": uuid.uuid4().hex}
    token = jwt.encode(claims, (SECRETS / "jwt" / "signing.pem").read_bytes(), algorithm="EdDSA")
    return {"Authorization": f"Bearer {token}"}


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))]


def bench_tts(rounds: int) -> tuple[dict[str, float], list[bytes]]:
    auth = headers("voice-interaction", "voice:tts")
    latencies, clips = [], []
    for i in range(rounds):
        start = time.perf_counter()
        response = requests.post(VOICE + "/v1/tts", json={"text": PHRASES[i % len(PHRASES)]}, headers=auth, timeout=30)
        latencies.append((time.perf_counter() - start) * 1000)
        response.raise_for_status()
        clips.append(response.content)
    return {"tts_p50_ms": percentile(latencies, 50), "tts_p95_ms": percentile(latencies, 95)}, clips


def bench_stt(clips: list[bytes]) -> dict[str, float]:
    auth = {**headers("voice-interaction", "voice:stt"), "Content-Type": "audio/wav"}
    out: dict[str, float] = {}
    for mode in ("command", "free"):
        audio_s = decode_s = 0.0
        exact = 0
        for i, clip in enumerate(clips[: len(PHRASES)]):
            with wave.open(io.BytesIO(clip)) as wav:
                audio_s += wav.getnframes() / wav.getframerate()
            start = time.perf_counter()
            response = requests.post(f"{VOICE}/v1/stt?mode={mode}", data=clip, headers=auth, timeout=120)
            decode_s += time.perf_counter() - start
            response.raise_for_status()
            exact += response.json()["text"] == PHRASES[i % len(PHRASES)]
        out[f"stt_{mode}_rtf"] = decode_s / audio_s
        out[f"stt_{mode}_exact"] = exact / len(clips[: len(PHRASES)])
    return out


def bench_chat(rounds: int) -> dict[str, float]:
    auth = headers("chat", "chat:complete")
    ttfts, rates = [], []
    finished = 0
    for i in range(rounds):
        body = {"model": "local", "max_tokens": 48, "temperature": 0.7, "stream": True,
                "messages": [{"role": "user", "content": f"Tell me one fact about the number {i + 3}."}]}
        start = time.perf_counter()
        first = None
        chunks = 0
        with requests.post(CHAT + "/v1/chat/completions", json=body, headers=auth, stream=True, timeout=180) as resp:
            resp.raise_for_status()
            for line in resp.iter_lines(decode_unicode=True):
                if not line or not line.startswith("data: {"):
                    continue
                delta = json.loads(line[6:]).get("choices") or [{}]
                finished += bool(delta[0].get("finish_reason"))
                if delta[0].get("delta", {}).get("content"):
                    chunks += 1
                    first = first or time.perf_counter()
        end = time.perf_counter()
        if first is not None:
            ttfts.append((first - start) * 1000)
            if chunks > 1 and end > first:
                rates.append((chunks - 1) / (end - first))
    return {"chat_ttft_p50_ms": percentile(ttfts, 50), "chat_ttft_p95_ms": percentile(ttfts, 95),
            "chat_tokens_per_s": statistics.median(rates) if rates else 0.0,
            "chat_streams_finished": finished / rounds}


def backend_url(unit: str, port: int) -> str:
    """An internal unit, at its address on the backend network."""
    out = subprocess.run(["docker", "inspect", container_name(unit)], capture_output=True, text=True, check=True).stdout
    return f"http://{json.loads(out)[0]['NetworkSettings']['Networks'][SETTINGS.backend_network]['IPAddress']}:{port}"


# Phrasings that are not among the examples the unit ships (data/intents.json), with the
# intent a person would give them.
HELD_OUT = [("could you dim the bedroom lamp", "lights"), ("is it going to snow this weekend", "weather"),
            ("wake me in twenty minutes", "timer"), ("put on something by the beatles", "music"),
            ("cheers, that sorted it", "thanks"), ("right, I am off now, bye for now", "goodbye"),
            ("hey there", "greeting"),
            ("what hour is it now", "time"), ("reserve a table for two tonight", "booking"),
            ("this keeps crashing and I am fed up", "complaint")]


def bench_perception(rounds: int) -> dict[str, float]:
    url, auth = backend_url("perception", 8003) + "/v1/analyze", headers("perception", "perception:analyze")
    latencies, right = [], 0
    for i in range(max(rounds, len(HELD_OUT))):
        text, intent = HELD_OUT[i % len(HELD_OUT)]
        start = time.perf_counter()
        response = requests.post(url, json={"text": text}, headers=auth, timeout=30)
        latencies.append((time.perf_counter() - start) * 1000)
        response.raise_for_status()
        right += i < len(HELD_OUT) and response.json()["intent"]["label"] == intent
    return {"perception_p50_ms": percentile(latencies, 50), "perception_p95_ms": percentile(latencies, 95),
            "perception_intent_accuracy": right / len(HELD_OUT)}


def bench_memory(rounds: int) -> dict[str, float]:
    base, auth = backend_url("memory", 8001), headers("memory", "memory:write memory:read")
    user = f"bench{uuid.uuid4().hex[:8]}"
    stores, searches = [], []
    for i in range(rounds):
        start = time.perf_counter()
        requests.post(f"{base}/v1/memories", headers=auth, timeout=30, json={
            "text": f"Benchmark note {i}: {PHRASES[i % len(PHRASES)]}", "user": user,
            "entities": [f"Bench entity {i % 3}"]}).raise_for_status()
        stores.append((time.perf_counter() - start) * 1000)
        start = time.perf_counter()
        requests.post(f"{base}/v1/memories/search", headers=auth, timeout=30,
                      json={"query": PHRASES[i % len(PHRASES)], "user": user}).raise_for_status()
        searches.append((time.perf_counter() - start) * 1000)
    return {"memory_store_p50_ms": percentile(stores, 50), "memory_store_p95_ms": percentile(stores, 95),
            "memory_search_p50_ms": percentile(searches, 50), "memory_search_p95_ms": percentile(searches, 95)}


def memory() -> dict[str, str]:
    out = subprocess.run(["docker", "stats", "--no-stream", "--format", "{{.Name}} {{.MemUsage}}"],
                         capture_output=True, text=True, check=True).stdout
    return {line.split()[0]: line.split(" ", 1)[1].split(" / ")[0] for line in out.splitlines()
            if line.startswith("mlstack-")}


VOICE_SENTENCES = [
    # commands
    "switch the kitchen lights to half brightness", "turn the living room fan off",
    "skip to the next episode", "mute the television in the den", "start the dishwasher at midnight",
    "lower the blinds in the study", "add eggs and flour to my shopping list",
    "call the plumber and leave a message", "set the thermostat to nineteen degrees",
    "unlock the back gate for the gardener",
    # questions
    "how long will the drive to the airport take", "when does the pharmacy on main street open",
    "who won the football match last night", "what is the capital of australia",
    "how many ounces are in a pound", "is the museum open on public holidays",
    "which train goes to the city center", "why is the sky blue during the day",
    "where did I park the car this morning", "can you recommend a good book about whales",
    # dictation
    "dear anna thank you for the lovely flowers you sent last week",
    "the meeting has been moved to the large conference room on the third floor",
    "please bring your passport and two photographs to the appointment",
    "our quarterly results were better than we expected in every region",
    "the recipe needs three cups of rice and a pinch of salt",
    "i will be working from home on monday and tuesday next week",
    "the hikers reached the summit just before the storm arrived",
    "remember to renew the car insurance before the end of the month",
    "the children planted sunflowers along the fence in the garden",
    "several passengers missed their connection because of the delay",
    "my neighbour has offered to feed the cat while we are away",
    "the new bridge will open to traffic early next spring",
]
ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
        "seventeen eighteen nineteen").split()
TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
# Goals of issue 21 on this machine's CPU.
VOICE_GOALS = {"wer_piper_whisper": 0.15, "wer_espeak-ng_whisper": 0.25, "stt_whisper_rtf_p50": 0.5,
               "tts_piper_rtf_p50": 0.2, "unit_memory_mib": 2048}


def spoken(number: int) -> str:
    if number < 20:
        return ONES[number]
    if number < 100:
        return TENS[number // 10] + ("" if number % 10 == 0 else " " + ONES[number % 10])
    return str(number)


def normalize(text: str) -> list[str]:
    """Lower case, no punctuation, numbers as words: what a WER compares."""
    import re

    text = re.sub(r"\d+", lambda m: " " + spoken(int(m.group())) + " ", text.lower().replace("-", " "))
    return re.sub(r"[^a-z' ]", " ", text).replace("'", "").split()


def edits(reference: list[str], hypothesis: list[str]) -> int:
    row = list(range(len(hypothesis) + 1))
    for i, ref in enumerate(reference, 1):
        prev, row[0] = row[0], i
        for j, hyp in enumerate(hypothesis, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ref != hyp))
    return row[-1]


def voice_unit_stats() -> dict[str, float | str]:
    """The voice unit's memory (now, and its cgroup's peak since start) and its image's size."""
    name = container_name("voice-interaction")
    inspect = json.loads(subprocess.run(["docker", "inspect", name], capture_output=True, text=True,
                                        check=True).stdout)[0]
    image = json.loads(subprocess.run(["docker", "image", "inspect", inspect["Image"]], capture_output=True,
                                      text=True, check=True).stdout)[0]
    usage = subprocess.run(["docker", "stats", "--no-stream", "--format", "{{.MemUsage}}", name],
                           capture_output=True, text=True, check=True).stdout.split(" / ")[0].strip()
    scale = {"KiB": 2**-10, "MiB": 1.0, "GiB": 2**10}
    values = [next(float(usage[: -len(unit)]) * f for unit, f in scale.items() if usage.endswith(unit))]
    for peak_file in ("/sys/fs/cgroup/memory.peak", "/sys/fs/cgroup/memory/memory.max_usage_in_bytes"):
        peak = subprocess.run(["docker", "exec", name, "cat", peak_file], capture_output=True, text=True, check=False)
        if peak.returncode == 0:  # cgroup v2, or v1; some kernels keep no peak at all
            values.append(int(peak.stdout) / 2**20)
            break
    return {"unit_memory_mib": round(values[0], 1) if values else -1.0,
            "unit_memory_peak_mib": round(values[1], 1) if len(values) > 1 else -1.0,
            "unit_memory_limit_mib": inspect["HostConfig"]["Memory"] / 2**20,
            "image": image["RepoTags"][0] if image["RepoTags"] else inspect["Image"],
            "image_size_mb": round(image["Size"] / 1e6, 1)}


def bench_voice(sentences: list[str]) -> dict[str, object]:
    tts_auth = headers("voice-interaction", "voice:tts")
    stt_auth = {**headers("voice-interaction", "voice:stt"), "Content-Type": "audio/wav"}
    # The goal's real-time factor is for an idle machine: the load says how idle this one was.
    figures: dict[str, object] = {"load_1m_before": round(os.getloadavg()[0], 2)}
    samples = []
    for tts_engine, voice in (("piper", None), ("espeak-ng", "en-us")):
        latencies, tts_rtfs = [], []
        errors = {"whisper": 0, "pocketsphinx": 0}
        rtfs: dict[str, list[float]] = {"whisper": [], "pocketsphinx": []}
        words = 0
        for sentence in sentences:
            start = time.perf_counter()
            spoken_wav = requests.post(VOICE + "/v1/tts", headers=tts_auth, timeout=60,
                                       json={"text": sentence, "engine": tts_engine, "voice": voice})
            latencies.append((time.perf_counter() - start) * 1000)
            spoken_wav.raise_for_status()
            tts_rtfs.append(float(spoken_wav.headers["x-synthesis-ms"]) / int(spoken_wav.headers["x-duration-ms"]))
            reference = normalize(sentence)
            words += len(reference)
            for stt_engine in ("whisper", "pocketsphinx"):
                answer = requests.post(f"{VOICE}/v1/stt?mode=free&engine={stt_engine}", data=spoken_wav.content,
                                       headers=stt_auth, timeout=120)
                answer.raise_for_status()
                body = answer.json()
                wrong = edits(reference, normalize(body["text"]))
                errors[stt_engine] += wrong
                rtfs[stt_engine].append(body["rtf"])
                samples.append({"tts": tts_engine, "stt": stt_engine, "sentence": sentence, "heard": body["text"],
                                "errors": wrong, "rtf": body["rtf"], "language": body.get("language")})
        figures[f"tts_{tts_engine}_p50_ms"] = round(percentile(latencies, 50), 1)
        figures[f"tts_{tts_engine}_p95_ms"] = round(percentile(latencies, 95), 1)
        figures[f"tts_{tts_engine}_rtf_p50"] = round(statistics.median(tts_rtfs), 4)
        for stt_engine, wrong in errors.items():
            figures[f"wer_{tts_engine}_{stt_engine}"] = round(wrong / words, 4)
            figures.setdefault(f"_rtf_{stt_engine}", []).extend(rtfs[stt_engine])  # type: ignore[attr-defined]
    for stt_engine in ("whisper", "pocketsphinx"):
        values = figures.pop(f"_rtf_{stt_engine}")
        figures[f"stt_{stt_engine}_rtf_p50"] = round(percentile(values, 50), 4)  # type: ignore[arg-type]
        figures[f"stt_{stt_engine}_rtf_p95"] = round(percentile(values, 95), 4)  # type: ignore[arg-type]
    figures.update(voice_unit_stats())
    figures["load_1m_after"] = round(os.getloadavg()[0], 2)
    figures["goals_met"] = {name: (figures[name] <= bound)  # type: ignore[operator]
                            for name, bound in VOICE_GOALS.items()}
    return {"sentences": len(sentences), "figures": figures, "samples": samples}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--voice", action="store_true", help="the voice benchmark alone")
    args = parser.parse_args()
    if args.voice:
        result = bench_voice(VOICE_SENTENCES)
        for name, value in result["figures"].items():  # type: ignore[union-attr]
            print(f"{name:28} {value}")
        if args.json:
            args.json.write_text(json.dumps(result, indent=2) + "\n")
        return
    figures, clips = bench_tts(args.rounds)
    figures.update(bench_stt(clips))
    figures.update(bench_chat(max(3, args.rounds // 4)))
    figures.update(bench_perception(args.rounds))
    figures.update(bench_memory(args.rounds))
    mem = memory()
    for name, value in figures.items():
        print(f"{name:22} {value:10.3f}")
    for name, value in sorted(mem.items()):
        print(f"rss {name:26} {value}")
    if args.json:
        args.json.write_text(json.dumps({"figures": figures, "memory": mem}, indent=2) + "\n")


if __name__ == "__main__":
    main()

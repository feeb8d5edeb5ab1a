"""Tokens per second of the llm unit, and each GPU's load before, during and after it.

    .venv/bin/python benchmarks/gpu.py [--rounds 5] [--max-tokens 128] [--url URL] [--json out.json]

Against the llm unit phase5 left on this machine (container mlstack-llm, reached at its
address on the internal network mlstack_backend, as the ml_service role's own probe does),
or any OpenAI-compatible server given with --url. Each round measures time to first token
(a 1-token completion) and decode rate (the extra tokens of an N-token completion over its
extra time). Where the unit runs (CPU or which GPU) is read from its container: the device
request and MLSTACK_PLACEMENT / CUDA_VISIBLE_DEVICES that ml_service set.

GPU figures come from NVML (plugins/module_utils/_nvml.py, the gpu_facts module's code):
one read before the load, one every --sample-s during it, one after. On a machine without
a GPU that read says so, and only the CPU figures are given: nothing is invented.
Figures only: this script asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / ".ansible" / "collections"))

from ansible_collections.aiops.mlstack.plugins.module_utils import _nvml  # noqa: E402
from ansible_collections.aiops.mlstack.plugins.module_utils._unit import container_name  # noqa: E402

FIGURES = ("index", "name", "memory_used_mb", "memory_total_mb", "utilization_gpu_pct", "power_w")
PROMPT = "Explain in a few sentences why the sky is blue."


def gpu_read() -> dict[str, Any]:
    nvml, why = _nvml.load_pynvml()
    facts = _nvml.collect(nvml) if nvml is not None else _nvml.empty(why)
    return {"gpu_count": facts["gpu_count"], "reason": facts["reason"], "driver": facts["driver_version"],
            "devices": [{k: d[k] for k in FIGURES} for d in facts["devices"]]}


class Sampler(threading.Thread):
    """NVML reads every ``period`` seconds while the load runs (none when there is no GPU)."""

    def __init__(self, period: float) -> None:
        super().__init__(daemon=True)
        self.period = period
        self.samples: list[dict[str, Any]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            read = gpu_read()
            if read["gpu_count"]:
                self.samples.append({"t": time.time(), **read})
            self.stop.wait(self.period)


def during(samples: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per device: peak and mean utilisation, peak memory used, over the samples."""
    out = []
    for index in sorted({d["index"] for s in samples for d in s["devices"]}):
        rows = [d for s in samples for d in s["devices"] if d["index"] == index]
        utils = [d["utilization_gpu_pct"] for d in rows if d["utilization_gpu_pct"] is not None]
        out.append({"index": index, "samples": len(rows),
                    "utilization_gpu_pct_mean": round(statistics.fmean(utils), 1) if utils else None,
                    "utilization_gpu_pct_max": max(utils) if utils else None,
                    "memory_used_mb_max": max(d["memory_used_mb"] for d in rows)})
    return out


def llm_target(container: str, network: str) -> tuple[str, dict[str, Any]]:
    """The llm unit's URL on the backend network, and where it runs."""
    raw = subprocess.run(["docker", "inspect", container], capture_output=True, text=True, check=True).stdout
    info = json.loads(raw)[0]
    ip = info["NetworkSettings"]["Networks"][network]["IPAddress"]
    env = dict(e.split("=", 1) for e in info["Config"]["Env"])
    requests_ = info["HostConfig"].get("DeviceRequests") or []
    placement = {"placement": env.get("MLSTACK_PLACEMENT", "cpu (no GPU request)"),
                 "cuda_visible_devices": env.get("CUDA_VISIBLE_DEVICES", ""),
                 "device_requests": [r.get("DeviceIDs") for r in requests_],
                 "gpu_layers": env.get("LLM_GPU_LAYERS", "0"), "image": info["Config"]["Image"]}
    return f"http://{ip}:{env.get('PORT', '8080')}", placement


def completion(url: str, max_tokens: int) -> tuple[int, float]:
    """One non-streamed completion: (tokens generated, seconds)."""
    body = {"prompt": PROMPT, "max_tokens": max_tokens, "temperature": 0.0}
    start = time.perf_counter()
    response = requests.post(f"{url}/v1/completions", json=body, timeout=300)
    elapsed = time.perf_counter() - start
    response.raise_for_status()
    return int(response.json()["usage"]["completion_tokens"]), elapsed


def one_round(url: str, max_tokens: int) -> dict[str, float]:
    """Time to first token (a 1-token completion) and decode rate (the rest of an N-token one).

    Not streamed: this llama-cpp-python server ends SSE streams early ("ASGI callable
    returned without completing response"), which would cut the count short.
    """
    first_s = completion(url, 1)[1]
    tokens, total_s = completion(url, max_tokens)
    decode_s = max(total_s - first_s, 1e-9)
    return {"tokens": tokens, "ttft_ms": first_s * 1000, "total_s": total_s,
            "tokens_per_s": (tokens - 1) / decode_s if tokens > 1 else float("nan"),
            "end_to_end_tokens_per_s": tokens / total_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--url", help="an OpenAI-compatible server instead of the deployed llm unit")
    parser.add_argument("--container", default=container_name("llm"))
    parser.add_argument("--network", default="mlstack_backend")
    parser.add_argument("--sample-s", type=float, default=0.5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    if args.url:
        url, where = args.url, {"placement": "unknown (--url)"}
    else:
        url, where = llm_target(args.container, args.network)
    before = gpu_read()
    one_round(url, 8)  # warm-up: model pages in, caches fill; not counted
    sampler = Sampler(args.sample_s)
    sampler.start()
    rounds = [one_round(url, args.max_tokens) for _round in range(args.rounds)]
    sampler.stop.set()
    sampler.join()
    after = gpu_read()

    rates = [r["tokens_per_s"] for r in rounds]
    result = {
        "llm": {"url": url, **where, "rounds": len(rounds), "max_tokens": args.max_tokens,
                "tokens_per_s_median": round(statistics.median(rates), 1),
                "tokens_per_s_min": round(min(rates), 1), "tokens_per_s_max": round(max(rates), 1),
                "end_to_end_tokens_per_s_median": round(statistics.median(r["end_to_end_tokens_per_s"]
                                                                          for r in rounds), 1),
                "ttft_ms_median": round(statistics.median(r["ttft_ms"] for r in rounds), 1),
                "tokens_median": statistics.median(r["tokens"] for r in rounds)},
        "gpu": {"before": before, "during": during(sampler.samples), "after": after,
                "note": ("no GPU here: " + (before["reason"] or "none found") + "; CPU figures only")
                if not before["gpu_count"] else f"{before['gpu_count']} GPU(s), driver {before['driver']}"},
    }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

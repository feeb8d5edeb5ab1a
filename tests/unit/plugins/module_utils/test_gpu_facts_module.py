"""The gpu_facts module's glue, in-process, with pynvml replaced by a MOCKED NVML (no GPU here)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from ansible.module_utils.testing import patch_module_args

# The mocked NVML of the _nvml tests (same directory: pytest puts it on sys.path).
from test_nvml import TITAN_X, MockNvml

from ansible_collections.aiops.mlstack.plugins.module_utils import _nvml
from ansible_collections.aiops.mlstack.plugins.modules import gpu_facts


def _run(args: dict[str, Any], nvml: MockNvml | None, why: str, monkeypatch: pytest.MonkeyPatch,
         capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    monkeypatch.setattr(gpu_facts, "load_pynvml", lambda: (nvml, why))
    monkeypatch.setattr(_nvml.time, "sleep", lambda seconds: None)
    with patch_module_args(args), pytest.raises(SystemExit):
        gpu_facts.main()
    return json.loads(capsys.readouterr().out)


def test_facts_record_and_ansible_facts(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    result = _run({"unit": "gpu-box", "evidence_fake": "mocked NVML"}, MockNvml(TITAN_X), "", monkeypatch, capsys)
    assert result["changed"] is False and result["gpu_count"] == 3 and result["load"] == []
    assert result["ansible_facts"]["mlstack_gpu"]["devices"][1]["processes"] == [{"pid": 4001, "used_memory_mb": 90}]
    (rec,) = result["evidence"]
    assert rec["check"] == "gpu_state" and rec["ok"] is True and rec["fake"] == "mocked NVML"


def test_no_pynvml_is_reported_and_require_gpu_fails(monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    why = "nvidia-ml-py is not installed in the Python that runs the module"
    result = _run({"unit": "h"}, None, why, monkeypatch, capsys)
    assert "failed" not in result and result["gpu_count"] == 0 and result["reason"] == why
    assert result["msg"].startswith("no GPU here: nvidia-ml-py is not installed")
    failed = _run({"unit": "h", "require_gpu": True}, None, why, monkeypatch, capsys)
    assert failed["failed"] is True and failed["evidence"][0]["ok"] is False


def test_sampling_adds_the_load(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    result = _run({"unit": "h", "check": "gpu_load", "sample_seconds": 0.05, "sample_interval": 0.01},
                  MockNvml(TITAN_X), "", monkeypatch, capsys)
    assert [d["index"] for d in result["load"]] == [0, 1, 2]
    assert result["evidence"][0]["observed"]["load"] == result["load"]
    assert "load over 0.05 s: GPU 0" in result["msg"]

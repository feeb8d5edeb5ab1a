"""images/llm-cuda: the CUDA build of the llm unit (cannot be built here: no registry, no GPU)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

IMAGES = Path(__file__).resolve().parents[3] / "images"


@pytest.mark.parametrize("name", ["chat-template.json", "constraints.txt", "llama-no-common.cmake", "llm-server.sh",
                                  "llm_server.py"])
def test_shared_files_are_the_cpu_recipes_own(name: str) -> None:
    """The CUDA recipe copies these from images/llm; a change to one must reach both."""
    assert (IMAGES / "llm-cuda" / name).read_bytes() == (IMAGES / "llm" / name).read_bytes(), (
        f"images/llm-cuda/{name} differs from images/llm/{name}: copy it over")


def test_cuda_recipe_targets_titan_x_on_cuda_12() -> None:
    text = (IMAGES / "llm-cuda" / "Dockerfile").read_text()
    assert re.search(r'^ARG CUDA_ARCHITECTURES="52;61"$', text, re.M)
    version = re.search(r"^ARG CUDA_VERSION=(\d+)\.", text, re.M)
    assert version and version.group(1) == "12", "CUDA 13 dropped sm_52/sm_61: stay on 12.x"
    assert "grep -q 'sm_52'" in text and "grep -q 'sm_61'" in text
    # Same llama-cpp-python as the CPU recipe, so both serve the same API.
    cpu = re.search(r"^ARG LLAMA_CPP_PYTHON_VERSION=(\S+)$", (IMAGES / "llm" / "Dockerfile").read_text(), re.M)
    gpu = re.search(r"^ARG LLAMA_CPP_PYTHON_VERSION=(\S+)$", text, re.M)
    assert cpu and gpu and cpu.group(1) == gpu.group(1)

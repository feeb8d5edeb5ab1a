"""Driver rules of the gpu_host role: R580 and proprietary modules for Maxwell/Pascal."""

from __future__ import annotations

import pytest

from ansible_collections.aiops.mlstack.plugins.module_utils._gpu_host import driver_errors, parse_cc


@pytest.mark.parametrize(("branch", "modules", "ccs"), [
    (580, "proprietary", ["5.2", "6.1"]),   # TITAN X (Maxwell) and TITAN X (Pascal)
    (575, "proprietary", ["6.1"]),
    (590, "open", ["8.6"]),                 # Ampere may take newer branches and open modules
    ("580", "proprietary", [5.2]),
    (580, "proprietary", []),
])
def test_allowed(branch: int | str, modules: str, ccs: list[str]) -> None:
    assert driver_errors(branch, modules, ccs) == []


@pytest.mark.parametrize(("branch", "modules", "ccs", "fragment"), [
    (590, "proprietary", ["5.2", "6.1"], "gpu_host_driver_branch=590 does not support compute capability 5.2: "
                                         "R580 is the last branch"),
    (580, "open", ["6.1"], "gpu_host_kernel_modules=open cannot drive compute capability 6.1"),
    (580, "open", ["7.0", "8.0"], "cannot drive compute capability 7.0"),
    (580, "closed", ["6.1"], "gpu_host_kernel_modules='closed': set proprietary or open"),
    ("latest", "proprietary", ["6.1"], "gpu_host_driver_branch='latest' is not a driver branch number"),
    (580, "proprietary", ["six"], "gpu_host_compute_capabilities: 'six' is not a compute capability"),
])
def test_refused_with_the_fix(branch: int | str, modules: str, ccs: list[str], fragment: str) -> None:
    assert any(fragment in e for e in driver_errors(branch, modules, ccs)), driver_errors(branch, modules, ccs)


def test_parse_cc() -> None:
    assert parse_cc("6.1") == (6, 1) and parse_cc(7) == (7, 0)

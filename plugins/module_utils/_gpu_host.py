# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which NVIDIA driver a GPU host may get: the rules the gpu_host role checks before it installs.

- Open kernel modules support Turing (compute capability 7.5) and newer only; Maxwell
  (5.x), Pascal (6.x) and Volta (7.0) need the proprietary modules.
- R580 is the last driver branch for Maxwell, Pascal and Volta: a newer branch would leave
  the GPUs without a driver after the reboot.
- CUDA 13 dropped compute capability < 7.5, so their containers stay on CUDA 12.x.

Standard library only.
"""

from __future__ import annotations

from collections.abc import Iterable

OPEN_MODULES_MIN_CC = (7, 5)
LAST_BRANCH_BEFORE_TURING = 580


def parse_cc(value: str | float) -> tuple[int, int]:
    """ "6.1" -> (6, 1); raises ValueError naming the bad value."""
    text = str(value).strip()
    major, _dot, minor = text.partition(".")
    try:
        return int(major), int(minor or 0)
    except ValueError:
        raise ValueError(f"{value!r} is not a compute capability (major.minor, e.g. 6.1)") from None


def driver_errors(branch: int | str, kernel_modules: str, compute_capabilities: Iterable[str | float]) -> list[str]:
    """Why this driver cannot serve these GPUs, as messages naming the variable and the fix (empty: fine)."""
    errors: list[str] = []
    try:
        ccs = sorted(parse_cc(c) for c in compute_capabilities)
    except ValueError as exc:
        return [f"gpu_host_compute_capabilities: {exc}"]
    try:
        branch_no = int(branch)
    except (TypeError, ValueError):
        return [f"gpu_host_driver_branch={branch!r} is not a driver branch number: set e.g. 580"]
    if kernel_modules not in ("proprietary", "open"):
        errors.append(f"gpu_host_kernel_modules={kernel_modules!r}: set proprietary or open")
    if not ccs:
        return errors
    oldest = ccs[0]
    oldest_text = f"{oldest[0]}.{oldest[1]}"
    if kernel_modules == "open" and oldest < OPEN_MODULES_MIN_CC:
        errors.append(f"gpu_host_kernel_modules=open cannot drive compute capability {oldest_text} "
                      "(Maxwell, Pascal, Volta): NVIDIA's open kernel modules support Turing (7.5) and newer "
                      "only; set gpu_host_kernel_modules: proprietary")
    if branch_no > LAST_BRANCH_BEFORE_TURING and oldest < OPEN_MODULES_MIN_CC:
        errors.append(f"gpu_host_driver_branch={branch_no} does not support compute capability {oldest_text}: "
                      f"R{LAST_BRANCH_BEFORE_TURING} is the last branch for Maxwell, Pascal and Volta; set "
                      f"gpu_host_driver_branch: {LAST_BRANCH_BEFORE_TURING}")
    return errors

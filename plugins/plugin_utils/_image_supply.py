# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which image a unit runs and how it is had: pull, build from a recipe, or wait for another unit's build.

The decisions only; every action on the Docker host goes through the ``Host`` seam, so the
decisions are tested with a fake host (tests/unit/plugins/plugin_utils/test_image_supply.py).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from ansible_collections.aiops.mlstack.plugins.filter.tree_hash import tree_hash

SOURCES = ("pull", "build", "auto")
# A waiting unit looks for the image this often, and tries to take the build over this often:
# a builder that failed released its claim, and waiting out the whole timeout helps no one.
POLL_S = 5.0
RECLAIM_S = 60.0


class SupplyError(Exception):
    """The image cannot be had; the message says why and what to change."""


class Host(Protocol):
    """The Docker host, as the supply sees it."""

    def image_id(self, ref: str) -> str | None:
        """The id of the image tagged ``ref``, None when absent."""

    def pull(self, ref: str) -> str | None:
        """Pull ``ref``; the registry's error, None when it worked."""

    def claim(self, lock: str) -> bool:
        """Take the build lock (an atomic create); False when another unit holds it."""

    def release(self, lock: str) -> None:
        """Give the build lock back."""

    def build(self, recipe: str, ref: str) -> None:
        """Build ``recipe`` as ``ref``; raises SupplyError when the build fails."""

    def notice(self, message: str) -> None:
        """Tell the operator something once (not a warning, not a failure)."""


@dataclass(frozen=True)
class Request:
    """One unit's image: where it may come from, and where its recipe and build contexts are."""

    unit: str
    source: str
    pull_ref: str = ""
    recipe: str = ""
    recipes_dir: str = ""
    build_dir: str = "/var/lib/mlstack/build"
    build_timeout: float = 1800.0


@dataclass(frozen=True)
class Outcome:
    """What the supply did: ``operation`` is none, pull, build or wait (for another unit's build)."""

    ref: str
    image_id: str | None
    operation: str
    changed: bool


def recipe_ref(recipes_dir: str, recipe: str) -> str:
    """``mlstack/<recipe>:<content hash>``: the tag changes exactly when the recipe does."""
    return f"mlstack/{recipe}:{tree_hash(f'{recipes_dir}/{recipe}')}"


def lock_path(build_dir: str, ref: str) -> str:
    """The claim a builder holds on the Docker host, one per recipe content."""
    return f"{build_dir}/.{re.sub(r'[/:]', '_', ref)}.building"


def refusal(request: Request) -> str | None:
    """Why the request cannot be served whatever the host holds, with the fix; None when it can."""
    if request.source not in SOURCES:
        return f"unit {request.unit}: source={request.source!r}: use one of {', '.join(SOURCES)}"
    if request.source == "pull" and not request.pull_ref:
        need = "a pull_ref (a registry reference)"
    elif request.source == "build" and not request.recipe:
        need = "a recipe (a directory under images/)"
    elif request.source == "auto" and not (request.pull_ref or request.recipe):
        need = "a pull_ref or a recipe"
    else:
        return None
    return f"unit {request.unit}: image source {request.source} needs {need}: set it in the unit's role variables"


def supply(request: Request, host: Host, check_mode: bool,
           clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> Outcome:
    """Make the unit's image present on the host and say which reference it runs.

    ``pull`` pulls ``pull_ref`` when absent; ``build`` builds the recipe when no image has its
    content tag; ``auto`` pulls and builds when the pull fails, or when no pull_ref is given.
    Check mode looks and reports what it would do, and never pulls, builds or waits.
    """
    reason = refusal(request)
    if reason:
        raise SupplyError(reason)
    if request.source != "build" and request.pull_ref:
        present = host.image_id(request.pull_ref)
        if present:
            return Outcome(request.pull_ref, present, "none", False)
        if check_mode:
            return Outcome(request.pull_ref, None, "pull", True)
        failure = host.pull(request.pull_ref)
        if failure is None:
            return Outcome(request.pull_ref, host.image_id(request.pull_ref), "pull", True)
        if request.source == "pull" or not request.recipe:
            raise SupplyError(f"unit {request.unit}: pulling {request.pull_ref} failed ({failure}): reach the "
                              "registry, or set mlstack_image_source to build or auto to use the offline recipe")
        host.notice(f"unit {request.unit}: pulling {request.pull_ref} failed ({failure}); building the recipe "
                    f"{request.recipe} instead")
    return _build(request, host, check_mode, clock, sleep)


def _build(request: Request, host: Host, check_mode: bool, clock: Callable[[], float],
           sleep: Callable[[float], None]) -> Outcome:
    """Build the recipe once per content: the first unit to claim it builds, the others wait for its image.

    Two builds at once would tag two different image ids, and the units that ran the first
    would see their image change on the next run.
    """
    # Hashed only here: a pulled image needs no recipe.
    ref = recipe_ref(request.recipes_dir, request.recipe)
    lock = lock_path(request.build_dir, ref)
    deadline = clock() + request.build_timeout
    waited_since: float | None = None
    last_claim = float("-inf")
    while True:
        present = host.image_id(ref)
        if present:
            return Outcome(ref, present, "none" if waited_since is None else "wait", False)
        if check_mode:
            return Outcome(ref, None, "build", True)
        if clock() - last_claim >= RECLAIM_S:
            last_claim = clock()
            if host.claim(lock):
                return _build_claimed(request, host, ref, lock)
        if waited_since is None:
            waited_since = clock()
            host.notice(f"unit {request.unit}: waiting for another unit's build of {ref} (up to "
                        f"{int(request.build_timeout)} s; a build killed mid-way leaves {lock}: remove it)")
        if clock() >= deadline:
            raise SupplyError(f"unit {request.unit}: {ref} was not built within {int(request.build_timeout)} s "
                              f"by the unit holding {lock}; if no build runs, remove {lock} and run again")
        sleep(POLL_S)


def _build_claimed(request: Request, host: Host, ref: str, lock: str) -> Outcome:
    """Build under the claim, and give the claim back whatever happens."""
    try:
        # The unit that held the claim before may have finished between the look and the claim.
        present = host.image_id(ref)
        if present:
            return Outcome(ref, present, "wait", False)
        host.build(request.recipe, ref)
        built = host.image_id(ref)
        if built is None:
            raise SupplyError(f"unit {request.unit}: the build of {ref} ended but no image has that tag")
        return Outcome(ref, built, "build", True)
    finally:
        host.release(lock)

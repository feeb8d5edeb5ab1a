"""The image supply's decisions against a fake Docker host: pull, build, auto, the build lock and the wait."""

from __future__ import annotations

from pathlib import Path

import pytest

from ansible_collections.aiops.mlstack.plugins.filter.tree_hash import tree_hash
from ansible_collections.aiops.mlstack.plugins.plugin_utils import _image_supply
from ansible_collections.aiops.mlstack.plugins.plugin_utils._image_supply import (
    Outcome,
    Request,
    SupplyError,
    lock_path,
    recipe_ref,
    refusal,
    supply,
)

PULL_REF = "docker.io/library/redis:7.2.5-bookworm"


class FakeHost:
    """A Docker host in memory: images by tag, lock directories, and what was asked of it."""

    def __init__(self, images: dict[str, str] | None = None, pull_error: str | None = None,
                 locks: set[str] | None = None) -> None:
        self.images = dict(images or {})
        self.pull_error = pull_error
        self.locks = set(locks or ())
        self.calls: list[tuple[str, str]] = []
        self.notices: list[str] = []
        # Run at the n-th look for an image: another unit finishing its build, or giving up.
        self.on_look: dict[int, object] = {}
        self.looks = 0

    def image_id(self, ref: str) -> str | None:
        self.looks += 1
        event = self.on_look.get(self.looks)
        if callable(event):
            event()
        return self.images.get(ref)

    def pull(self, ref: str) -> str | None:
        self.calls.append(("pull", ref))
        if self.pull_error is None:
            self.images[ref] = "sha256:pulled"
        return self.pull_error

    def claim(self, lock: str) -> bool:
        self.calls.append(("claim", lock))
        if lock in self.locks:
            return False
        self.locks.add(lock)
        return True

    def release(self, lock: str) -> None:
        self.calls.append(("release", lock))
        self.locks.discard(lock)

    def build(self, recipe: str, ref: str) -> None:
        self.calls.append(("build", ref))
        assert lock_path("/b", ref) in self.locks, "a build runs only under its claim"
        self.images[ref] = "sha256:built"

    def notice(self, message: str) -> None:
        self.notices.append(message)


class Clock:
    """Time that passes only when the supply sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps = 0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps += 1
        self.now += seconds


@pytest.fixture(name="recipes")
def fixture_recipes(tmp_path: Path) -> Path:
    (tmp_path / "redis").mkdir()
    (tmp_path / "redis" / "Dockerfile").write_text("ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\n")
    return tmp_path


def request(recipes: Path, source: str, pull_ref: str = PULL_REF, recipe: str = "redis",
            timeout: float = 1800) -> Request:
    return Request(unit="redis", source=source, pull_ref=pull_ref, recipe=recipe, recipes_dir=str(recipes),
                   build_dir="/b", build_timeout=timeout)


def run(req: Request, host: FakeHost, check_mode: bool = False, clock: Clock | None = None) -> Outcome:
    clock = clock or Clock()
    return supply(req, host, check_mode, clock=clock, sleep=clock.sleep)


def test_the_recipe_tag_is_its_content_hash_and_the_lock_is_named_after_it(recipes: Path) -> None:
    ref = recipe_ref(str(recipes), "redis")
    assert ref == f"mlstack/redis:{tree_hash(str(recipes / 'redis'))}" and len(ref.rpartition(":")[2]) == 12
    assert lock_path("/var/lib/mlstack/build", ref) == f"/var/lib/mlstack/build/.mlstack_redis_{ref[-12:]}.building"


@pytest.mark.parametrize(("source", "pull_ref", "recipe", "needs"), [
    ("pull", "", "redis", "needs a pull_ref"),
    ("build", PULL_REF, "", "needs a recipe"),
    ("auto", "", "", "needs a pull_ref or a recipe"),
    ("fetch", PULL_REF, "redis", "use one of pull, build, auto"),
])
def test_a_source_without_what_it_needs_is_refused_with_the_fix(recipes: Path, source: str, pull_ref: str,
                                                                recipe: str, needs: str) -> None:
    req = request(recipes, source, pull_ref, recipe)
    assert needs in str(refusal(req))
    host = FakeHost()
    with pytest.raises(SupplyError, match=needs):
        run(req, host)
    assert host.calls == [] and host.looks == 0


@pytest.mark.parametrize(("source", "pull_ref"),
                         [("pull", PULL_REF), ("build", PULL_REF), ("auto", PULL_REF), ("auto", "")])
def test_enough_to_serve_is_not_refused(recipes: Path, source: str, pull_ref: str) -> None:
    assert refusal(request(recipes, source, pull_ref)) is None


@pytest.mark.parametrize(("source", "pull_ref", "expected"), [
    # pull and auto run the registry reference; build, or auto without one, the recipe's tag.
    ("pull", PULL_REF, "pull"),
    ("auto", PULL_REF, "pull"),
    ("build", PULL_REF, "recipe"),
    ("auto", "", "recipe"),
])
def test_the_reference_follows_the_source(recipes: Path, source: str, pull_ref: str, expected: str) -> None:
    ref = PULL_REF if expected == "pull" else recipe_ref(str(recipes), "redis")
    host = FakeHost()
    outcome = run(request(recipes, source, pull_ref), host)
    assert outcome.ref == ref and outcome.changed is True and host.images[ref] == outcome.image_id
    assert outcome.operation == ("pull" if expected == "pull" else "build")


@pytest.mark.parametrize("source", ["pull", "build", "auto"])
def test_a_present_image_is_neither_pulled_nor_built(recipes: Path, source: str) -> None:
    host = FakeHost({PULL_REF: "sha256:a", recipe_ref(str(recipes), "redis"): "sha256:b"})
    outcome = run(request(recipes, source), host)
    assert outcome.operation == "none" and outcome.changed is False and outcome.image_id in ("sha256:a", "sha256:b")
    assert host.calls == [] and host.notices == []


def test_auto_builds_the_recipe_when_the_pull_fails(recipes: Path) -> None:
    host = FakeHost(pull_error="registry unreachable")
    outcome = run(request(recipes, "auto"), host)
    ref = recipe_ref(str(recipes), "redis")
    assert outcome == Outcome(ref, "sha256:built", "build", True)
    lock = lock_path("/b", ref)
    assert host.calls == [("pull", PULL_REF), ("claim", lock), ("build", ref), ("release", lock)]
    assert "registry unreachable" in host.notices[0] and host.locks == set()


@pytest.mark.parametrize(("source", "recipe"), [("pull", "redis"), ("auto", "")])
def test_a_failed_pull_with_no_recipe_to_fall_back_on_fails(recipes: Path, source: str, recipe: str) -> None:
    host = FakeHost(pull_error="manifest unknown")
    with pytest.raises(SupplyError, match="pulling .* failed \\(manifest unknown\\): reach the registry"):
        run(request(recipes, source, recipe=recipe), host)
    assert [c[0] for c in host.calls] == ["pull"]


@pytest.mark.parametrize(("source", "operation", "ref_is_pull"), [
    ("pull", "pull", True), ("auto", "pull", True), ("build", "build", False)])
def test_check_mode_reports_what_it_would_do_and_does_nothing(recipes: Path, source: str, operation: str,
                                                              ref_is_pull: bool) -> None:
    host = FakeHost(locks={lock_path("/b", recipe_ref(str(recipes), "redis"))})
    outcome = run(request(recipes, source), host, check_mode=True)
    assert outcome.operation == operation and outcome.changed is True and outcome.image_id is None
    assert outcome.ref == (PULL_REF if ref_is_pull else recipe_ref(str(recipes), "redis"))
    assert host.calls == [] and host.images == {} and host.notices == [], "check mode never pulls, claims or waits"


def test_a_unit_waits_for_another_units_build_and_says_so_once(recipes: Path) -> None:
    ref = recipe_ref(str(recipes), "redis")
    lock = lock_path("/b", ref)
    host = FakeHost(locks={lock})
    # The other unit's image appears at the 30th look (about 145 s of waiting).
    host.on_look[30] = lambda: host.images.__setitem__(ref, "sha256:theirs")
    clock = Clock()
    outcome = run(request(recipes, "build"), host, clock=clock)
    assert outcome == Outcome(ref, "sha256:theirs", "wait", False)
    assert len(host.notices) == 1 and "waiting for another unit's build" in host.notices[0] and lock in host.notices[0]
    assert ("build", ref) not in host.calls and clock.sleeps == 29
    # It looks every POLL_S but tries the claim again only every RECLAIM_S.
    claims = [c for c in host.calls if c[0] == "claim"]
    assert len(claims) == 1 + int(clock.now // _image_supply.RECLAIM_S)


def test_a_waiting_unit_takes_the_build_over_when_the_builder_gave_up(recipes: Path) -> None:
    ref = recipe_ref(str(recipes), "redis")
    lock = lock_path("/b", ref)
    host = FakeHost(locks={lock})
    host.on_look[3] = lambda: host.locks.discard(lock)  # the builder failed and released its claim
    outcome = run(request(recipes, "build"), host)
    assert outcome == Outcome(ref, "sha256:built", "build", True)
    assert host.calls[-2:] == [("build", ref), ("release", lock)] and host.locks == set()


def test_a_unit_that_claims_after_anothers_build_finished_does_not_build_again(recipes: Path) -> None:
    ref = recipe_ref(str(recipes), "redis")
    host = FakeHost()
    # Absent at the first look; present at the look under the claim (the other unit just finished).
    host.on_look[2] = lambda: host.images.__setitem__(ref, "sha256:theirs")
    outcome = run(request(recipes, "build"), host)
    assert outcome == Outcome(ref, "sha256:theirs", "wait", False)
    assert [c[0] for c in host.calls] == ["claim", "release"]


def test_the_wait_ends_at_the_build_timeout_naming_the_lock(recipes: Path) -> None:
    lock = lock_path("/b", recipe_ref(str(recipes), "redis"))
    host = FakeHost(locks={lock})
    clock = Clock()
    with pytest.raises(SupplyError, match=f"not built within 30 s .* remove {lock}"):
        run(request(recipes, "build", timeout=30), host, clock=clock)
    assert clock.now == 30 and len(host.notices) == 1 and lock in host.locks


def test_a_failed_build_gives_the_claim_back(recipes: Path) -> None:
    host = FakeHost()

    def broken(recipe: str, ref: str) -> None:
        raise SupplyError("community.docker.docker_image: build failed")

    host.build = broken  # type: ignore[method-assign]
    with pytest.raises(SupplyError, match="build failed"):
        run(request(recipes, "build"), host)
    assert host.locks == set() and host.calls[-1][0] == "release"


def test_a_missing_recipe_directory_is_an_error_only_when_it_is_built(tmp_path: Path) -> None:
    host = FakeHost()
    assert run(request(tmp_path, "pull", recipe="gone"), host).ref == PULL_REF
    with pytest.raises(ValueError, match="does not exist"):
        run(request(tmp_path, "build", recipe="gone"), FakeHost())

"""The managed spec: normalisation, refusals, the hash and the Docker SDK arguments."""

from __future__ import annotations

from typing import Any

import pytest
from container_fake import SPEC

from ansible_collections.aiops.mlstack.plugins.module_utils import _container_spec as cspec


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"image": "x", "volume": []}, "unknown container spec field"),
        ({"env": {}}, "'image' is required"),
        ({"image": "x", "networks": [{"aliases": []}]}, "must be a name or a dict with 'name'"),
    ],
)
def test_bad_spec_is_refused_with_the_field(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(cspec.SpecError, match=message):
        cspec.normalize_spec(spec)


def test_create_kwargs_translate_durations_limits_and_networks() -> None:
    spec = cspec.normalize_spec({**SPEC, "cpus": 1.5, "memory": "512m", "healthcheck": {
        "test": ["CMD", "true"], "interval": "500ms", "timeout": 2, "retries": 5}})
    kwargs = cspec.create_kwargs("n", spec, {"l": "v"})
    assert kwargs["nano_cpus"] == 1_500_000_000
    assert kwargs["mem_limit"] == "512m"
    assert kwargs["healthcheck"]["interval"] == 500_000_000
    assert kwargs["healthcheck"]["timeout"] == 2_000_000_000
    assert kwargs["network"] == "backend"
    assert kwargs["networking_config"] == {"backend": {"Aliases": ["redis"]}}
    assert kwargs["labels"] == {"l": "v"}


def test_gpu_request_becomes_an_nvidia_device_request_in_declared_order() -> None:
    spec = cspec.normalize_spec({**SPEC, "gpus": ["GPU-b", 0]})
    kwargs = cspec.create_kwargs("n", spec, {})
    assert kwargs["device_requests"] == [{"driver": "nvidia", "device_ids": ["GPU-b", "0"],
                                          "capabilities": [["gpu"]]}]
    assert "device_requests" not in cspec.create_kwargs("n", cspec.normalize_spec(SPEC), {})


def test_published_port_becomes_an_address_port_tuple() -> None:
    spec = cspec.normalize_spec({**SPEC, "ports": {"8006/tcp": ["127.0.0.1", 8006]}})
    assert cspec.create_kwargs("n", spec, {})["ports"] == {"8006/tcp": ("127.0.0.1", 8006)}


FULL = {"image": "mlstack/redis:recipe", "command": ["redis-server", 6379], "env": {"B": 2, "A": "1"},
        "labels": {"x": 1}, "volumes": ["b:/b", "a:/a:ro"],
        "networks": [{"name": "z", "aliases": ["r", "a"]}, "backend"], "ports": {"6379/tcp": ["127.0.0.1", 6379]},
        "healthcheck": {"test": ["CMD", "redis-cli", 1], "interval": "500ms"},
        "user": "999", "read_only": True, "tmpfs": {"/tmp": "size=1m"}, "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges:true"], "memory": "512m", "cpus": 1.5, "pids_limit": 64,
        "log_options": {"max-size": "10m"}, "stop_timeout": 5, "gpus": [0, "GPU-b"]}


@pytest.mark.parametrize(("spec", "image_id", "digest"), [
    ({"image": "img:1"}, "sha256:aaa", "0cf1a3f383f6cc9a734da302facf4f256bccd3c8333d02cb8b88bf9383df9d89"),
    (FULL, "sha256:aaa", "6e24b632e981a3870ed6574bb30e4937e0a81520fd82a5f9505103c95674b1dc"),
    (cspec.holder_spec(FULL, "holder:1"), "sha256:hhh",
     "dc35e69c7b4ce867e028cc0722781f14a29914ae9d13baf1201a1335dffb468b"),
])
def test_the_hash_of_an_unchanged_spec_never_changes(spec: dict[str, Any], image_id: str, digest: str) -> None:
    """Recorded from the 0.1 release: a different hash recreates every deployed unit on upgrade."""
    assert cspec.spec_hash(cspec.normalize_spec(spec), image_id) == digest


def test_a_key_added_to_the_spec_changes_no_hash_until_a_unit_sets_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(cspec.SPEC_DEFAULTS, "shm_size", None)
    monkeypatch.setattr(cspec, "HASH_OMITS_DEFAULT", frozenset({"shm_size"}))
    unchanged = cspec.spec_hash(cspec.normalize_spec({"image": "img:1"}), "sha256:aaa")
    assert unchanged == "0cf1a3f383f6cc9a734da302facf4f256bccd3c8333d02cb8b88bf9383df9d89"
    assert cspec.spec_hash(cspec.normalize_spec({"image": "img:1", "shm_size": "1g"}), "sha256:aaa") != unchanged


def test_a_spec_written_in_another_order_hashes_the_same() -> None:
    shuffled = {**FULL, "volumes": ["a:/a:ro", "b:/b"], "networks": ["backend", {"name": "z", "aliases": ["a", "r"]}],
                "env": {"A": 1, "B": "2"}}
    assert cspec.spec_hash(cspec.normalize_spec(shuffled), "i") == cspec.spec_hash(cspec.normalize_spec(FULL), "i")


def running(labels: dict[str, str], networks: tuple[str, ...] = ("backend",), up: bool = True) -> dict[str, Any]:
    return {"Config": {"Labels": labels}, "State": {"Running": up},
            "NetworkSettings": {"Networks": {net: {} for net in networks}}}


DESIRED = cspec.normalize_spec(SPEC)
LABELS = cspec.managed_labels(DESIRED, "h1", "redis")


@pytest.mark.parametrize(("current", "digest", "recreate", "action", "reason"), [
    (None, "h1", "if_changed", "create", "container absent"),
    (running(LABELS), "h1", "if_changed", "none", "container matches its declared spec"),
    (running(LABELS), "h1", "always", "recreate", "recreation requested (recreate=always)"),
    (running(LABELS), "h2", "if_changed", "recreate", "image changed"),
    (running(LABELS), "h2", "never", "none", "drift not corrected (recreate=never): image changed"),
    (running(LABELS, up=False), "h1", "if_changed", "start", "container exists but is not running"),
    (running({}), "h1", "if_changed", "recreate", "container not created by mlstack (no spec hash label)"),
    (running(LABELS, networks=()), "h1", "if_changed", "recreate",
     "declared network(s) ['backend'] no longer attached"),
])
def test_the_plan_follows_the_hash_label(current: dict[str, Any] | None, digest: str, recreate: str, action: str,
                                         reason: str) -> None:
    step = cspec.plan(current, DESIRED, digest, recreate)
    assert (step.action, step.reason) == (action, reason)


def test_the_labels_carry_the_hash_the_unit_and_no_env_value() -> None:
    desired = cspec.normalize_spec({**SPEC, "env": {"TOKEN": "s3cr3t-value"}})
    labels = cspec.managed_labels(desired, "h1", "redis")
    assert labels[cspec.LABEL_HASH] == "h1" and labels[cspec.LABEL_UNIT] == "redis"
    assert labels[cspec.LABEL_MANAGED] == "true" and "s3cr3t-value" not in labels[cspec.LABEL_SPEC]

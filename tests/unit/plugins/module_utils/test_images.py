"""Which recipe images are superseded: never one a container uses."""

from __future__ import annotations

from ansible_collections.aiops.mlstack.plugins.module_utils._images import superseded


def image(ident: str, tags: list[str], created: int, size: int = 100) -> dict:
    return {"Id": ident, "RepoTags": tags, "Created": created, "Size": size}


IMAGES = [
    image("sha256:serving", ["mlstack/mlstack-services:c"], 30),
    image("sha256:previous", ["mlstack/mlstack-services:b"], 20),
    image("sha256:old1", ["mlstack/mlstack-services:a"], 10),
    image("sha256:old0", ["mlstack/mlstack-services:z"], 5),
    image("sha256:llm-old", ["mlstack/llm:x"], 7),
    image("sha256:base", ["local/debian:bookworm"], 1),
    image("sha256:other", ["someone/else:1"], 2),
    image("sha256:dangling", [], 3),
]
USED = {"sha256:serving", "sha256:previous"}


def test_only_unused_images_under_the_prefix_go_oldest_first() -> None:
    doomed = superseded([*IMAGES, image("sha256:llm-new", ["mlstack/llm:y"], 8)], USED | {"sha256:llm-new"},
                        "mlstack/")
    assert [e["tag"] for e in doomed] == ["mlstack/mlstack-services:z", "mlstack/llm:x", "mlstack/mlstack-services:a"]


def test_an_image_newer_than_any_in_use_stays_for_the_next_run() -> None:
    # llm:x is the only llm image and no container uses it: its first deploy failed (a lost
    # dependency host); the next run needs it, built or pulled, so it is not removed.
    assert "mlstack/llm:x" not in [e["tag"] for e in superseded(IMAGES, USED, "mlstack/")]
    # A candidate rolled back: the newer recipe's image stays, the older unused ones go.
    rolled_back = [*IMAGES, image("sha256:candidate", ["mlstack/mlstack-services:d"], 40)]
    doomed = [e["tag"] for e in superseded(rolled_back, USED, "mlstack/")]
    assert "mlstack/mlstack-services:d" not in doomed
    assert {"mlstack/mlstack-services:a", "mlstack/mlstack-services:z"} <= set(doomed)
    # As old as the image in use (built in the same second): superseded.
    same_second = [image("sha256:u", ["mlstack/x:used"], 50), image("sha256:o", ["mlstack/x:old"], 50)]
    assert [e["tag"] for e in superseded(same_second, {"sha256:u"}, "mlstack/")] == ["mlstack/x:old"]


def test_the_newest_unused_per_repository_can_be_kept() -> None:
    doomed = superseded(IMAGES, USED, "mlstack/", keep_unused=1)
    assert [e["tag"] for e in doomed] == ["mlstack/mlstack-services:z"]
    assert superseded(IMAGES, USED, "mlstack/", keep_unused=2) == []


def test_an_image_a_container_uses_is_never_listed_whatever_its_tags() -> None:
    shared = [image("sha256:serving", ["mlstack/mlstack-services:c", "mlstack/mlstack-services:latest"], 30)]
    assert superseded(shared, USED, "mlstack/") == []

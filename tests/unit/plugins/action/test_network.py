# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""aiops.mlstack.network answers in-process only for a network that is already as asked."""

from __future__ import annotations

from typing import Any

import pytest

from ansible_collections.aiops.mlstack.plugins.action.network import matches

BACKEND = {"Name": "mlstack_backend", "Driver": "bridge", "Internal": True,
           "Labels": {"io.mlstack.managed": "true", "com.docker.compose.project": "x"}}


def test_a_network_as_asked_matches_whatever_other_labels_it_has() -> None:
    assert matches(BACKEND, internal=True, labels={"io.mlstack.managed": "true"})
    assert matches(BACKEND, internal=True, labels={})


@pytest.mark.parametrize(("inspect", "internal", "labels"), [
    (None, True, {}),
    (BACKEND, False, {}),
    ({**BACKEND, "Driver": "overlay"}, True, {}),
    (BACKEND, True, {"io.mlstack.managed": "false"}),
    ({**BACKEND, "Labels": None}, True, {"io.mlstack.managed": "true"}),
])
def test_anything_else_goes_to_the_module(inspect: dict[str, Any] | None, internal: bool,
                                          labels: dict[str, str]) -> None:
    assert not matches(inspect, internal, labels)

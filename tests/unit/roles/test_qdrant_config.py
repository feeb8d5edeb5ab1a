# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The qdrant role's rendered configuration (no Qdrant server can run here: this is what is tested)."""

from __future__ import annotations

import json
from pathlib import Path

import jinja2
import yaml

ROLE = Path(__file__).resolve().parents[3] / "roles" / "qdrant"
KEY = 'k3y-with-"quotes"-and: colon'


def _render(**overrides: object) -> dict:
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    env.filters["to_json"] = json.dumps
    values = {"ansible_managed": "managed", "__qdrant_unit": {"name": "qdrant", "port": 6333}, "qdrant_uid": 1000,
              "qdrant_grpc_port": 6334, "secrets_values": {"api_key": KEY}, **overrides}
    text = env.from_string((ROLE / "templates" / "config.yaml.j2").read_text()).render(**values)
    return yaml.safe_load(text)


def test_config_carries_the_key_verbatim_and_the_ports() -> None:
    config = _render()
    assert config["service"]["api_key"] == KEY, "a key with YAML metacharacters survives quoting"
    assert config["service"]["http_port"] == 6333 and config["service"]["grpc_port"] == 6334
    assert config["storage"]["storage_path"] == "/qdrant/storage"
    assert config["telemetry_disabled"] is True


def test_the_port_follows_the_unit() -> None:
    assert _render(__qdrant_unit={"name": "qdrant", "port": 7000})["service"]["http_port"] == 7000


def test_the_key_is_not_in_the_container_environment() -> None:
    tasks = yaml.safe_load((ROLE / "tasks" / "main.yml").read_text())
    run = next(t for t in tasks if "aiops.mlstack.container" in t)
    env = run["vars"]["__qdrant_spec"]["env"]
    assert not any("KEY" in name.upper() for name in env)
    write = next(t for t in tasks if "ansible.builtin.template" in t)
    assert write["no_log"] is True and write["ansible.builtin.template"]["mode"] == "0400"

"""AWX configuration as code (playbooks/awx_configure.yml, data in awx/): an offline validation.

No AWX server can run here (no receptor, no Kubernetes), so nothing is created on one. What is
checked instead, with awx.awx as the pip ``ansible`` package ships it: every item of the data is
valid for the awx.awx module the playbook hands it to (the argument spec the module builds in its
main(), and for workflow nodes the suboptions its documentation declares) and reaches it whole;
the workflow graph is acyclic and has the shape asked for; every template's playbook and tags
exist; every survey is well typed and asks for variables the collection reads.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Any

import jinja2
import pytest
import yaml
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

ROOT = Path(__file__).resolve().parents[2]
DATA: dict[str, Any] = {}
for _path in sorted((ROOT / "awx").glob("*.yml")):
    DATA.update(yaml.safe_load(_path.read_text()))
PLAY = yaml.safe_load((ROOT / "playbooks" / "awx_configure.yml").read_text())[0]
TASKS = {t["loop"].strip("{} "): t for t in PLAY["tasks"] if "loop" in t}
SURVEY_TYPES = {"text", "textarea", "password", "integer", "float", "multiplechoice", "multiselect"}
STREAMS = {"infrastructure", "backend", "performance", "security", "quality"}


class _Captured(Exception):
    pass


def module_spec(name: str) -> dict[str, Any]:
    """The argument spec an awx.awx module builds in main(), caught before it talks to a server."""
    module = importlib.import_module(f"ansible_collections.awx.awx.plugins.modules.{name}")
    captured: dict[str, Any] = {}

    def capture(argument_spec: dict[str, Any], **_kwargs: Any) -> None:
        captured.update(argument_spec)
        raise _Captured

    original = module.ControllerAPIModule
    module.ControllerAPIModule = capture
    try:
        module.main()
    except _Captured:
        pass
    finally:
        module.ControllerAPIModule = original
    assert captured, f"awx.awx.{name} built no argument spec"
    return captured


def _doc_to_spec(options: dict[str, Any]) -> dict[str, Any]:
    spec = {}
    for key, option in options.items():
        entry = {k: v for k, v in option.items() if k in ("type", "elements", "required", "choices", "aliases")}
        if "suboptions" in option:
            entry["options"] = _doc_to_spec(option["suboptions"])
        spec[key] = entry
    return spec


def node_spec() -> dict[str, Any]:
    module = importlib.import_module("ansible_collections.awx.awx.plugins.modules.workflow_job_template")
    return _doc_to_spec(yaml.safe_load(module.DOCUMENTATION)["options"]["workflow_nodes"]["suboptions"])


def _module_of(task: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    [(action, args)] = [(k, v) for k, v in task.items() if k.startswith("awx.awx.")]
    return action.split(".")[-1], args


def test_every_data_variable_has_its_task_and_every_task_its_data() -> None:
    assert set(TASKS) == set(DATA)


@pytest.mark.parametrize("variable", sorted(DATA))
def test_each_item_is_valid_for_its_module_and_reaches_it_whole(variable: str) -> None:
    name, args = _module_of(TASKS[variable])
    spec = module_spec(name)
    assert set(args) <= set(spec), f"awx.awx.{name} has no option(s) {sorted(set(args) - set(spec))}"
    for item in DATA[variable]:
        dropped = set(item) - set(args)
        assert not dropped, f"{variable} {item['name']}: {sorted(dropped)} never reach awx.awx.{name}"
        result = ArgumentSpecValidator(spec).validate(dict(item))
        assert result.error_messages == [], f"{variable} {item['name']}: {result.error_messages}"


def test_the_workflow_nodes_are_valid_for_workflow_job_template() -> None:
    spec = {"workflow_nodes": {"type": "list", "elements": "dict", "options": node_spec()}}
    for workflow in DATA["controller_workflows"]:
        result = ArgumentSpecValidator(spec).validate({"workflow_nodes": workflow["workflow_nodes"]})
        assert result.error_messages == [], result.error_messages


def _graph(workflow: dict[str, Any]) -> dict[str, dict[str, set[str]]]:
    return {n["identifier"]: {kind: {e["identifier"] for e in (n.get("related") or {}).get(kind, [])}
                              for kind in ("success_nodes", "failure_nodes", "always_nodes")}
            for n in workflow["workflow_nodes"]}


def test_the_workflow_is_acyclic_with_the_streams_in_parallel_and_a_rollback_path() -> None:
    [workflow] = DATA["controller_workflows"]
    graph = _graph(workflow)
    edges = {n: set().union(*kinds.values()) for n, kinds in graph.items()}
    assert set().union(*edges.values()) <= set(edges), "every edge names a node of the workflow"
    state: dict[str, str] = {}

    def visit(node: str) -> None:
        assert state.get(node) != "open", f"cycle through {node}"
        if state.get(node) == "done":
            return
        state[node] = "open"
        for child in edges[node]:
            visit(child)
        state[node] = "done"

    roots = set(edges) - set().union(*edges.values())
    assert roots == {"preflight"}
    for root in roots:
        visit(root)
    assert graph["preflight"]["success_nodes"] == STREAMS
    for stream in STREAMS:
        assert graph[stream] == {"success_nodes": {"verify"}, "failure_nodes": {"rollback"}, "always_nodes": set()}
    assert graph["verify"]["failure_nodes"] == {"rollback"}
    [verify] = [n for n in workflow["workflow_nodes"] if n["identifier"] == "verify"]
    assert verify["all_parents_must_converge"] is True, "verify waits for all five streams"
    assert workflow["extra_vars"]["mlstack_rollback_list"] == "false", "the failure path restores"


def test_every_node_runs_a_template_that_exists() -> None:
    names = {t["name"] for t in DATA["controller_templates"]}
    for workflow in DATA["controller_workflows"]:
        for node in workflow["workflow_nodes"]:
            assert node["unified_job_template"]["name"] in names, node["identifier"]


def _play_tags(playbook: Path) -> set[str]:
    tags: set[str] = set()
    for play in yaml.safe_load(playbook.read_text()):
        imported = play.get("ansible.builtin.import_playbook") or play.get("import_playbook")
        if imported:
            tags |= _play_tags(playbook.parent / imported)
        tags |= set(play.get("tags") or [])
    return tags


@pytest.mark.parametrize("template", DATA["controller_templates"], ids=lambda t: t["name"])
def test_each_template_runs_a_playbook_and_tags_that_exist(template: dict[str, Any]) -> None:
    playbook = ROOT / template["playbook"]
    assert playbook.is_file(), template["playbook"]
    wanted = set(filter(None, str(template.get("job_tags") or "").split(",")))
    missing = wanted - _play_tags(playbook)
    assert not missing, f"{template['name']}: tags {missing} not in the playbook"


def test_there_is_a_template_for_each_playbook_asked_for() -> None:
    playbooks = {Path(t["playbook"]).stem for t in DATA["controller_templates"]}
    assert {"phase5", "rollback", "destroy", "rotate_jwt", "rotate_passwords", "security"} <= playbooks


_READ = "\n".join(p.read_text() for p in [*ROOT.glob("playbooks/*.yml"), ROOT / "plugins/module_utils/_unit.py"])


@pytest.mark.parametrize("template", [t for t in DATA["controller_templates"] if t.get("survey_enabled")],
                         ids=lambda t: t["name"])
def test_each_survey_is_well_typed_and_asks_for_what_the_collection_reads(template: dict[str, Any]) -> None:
    questions = template["survey_spec"]["spec"]
    assert template["survey_spec"]["name"] and questions
    assert len({q["variable"] for q in questions}) == len(questions)
    for q in questions:
        assert q["type"] in SURVEY_TYPES and q["question_name"], q
        assert re.search(rf"\b{q['variable']}\b", _READ), f"{q['variable']} is read by no playbook or setting"
        if q["type"] in ("multiplechoice", "multiselect"):
            assert isinstance(q["choices"], list) and q["default"] in q["choices"], q
        if q["type"] == "integer":
            assert isinstance(q["default"], int) and q["min"] <= q["default"] <= q["max"], q


def test_the_secrets_credential_injects_only_its_inputs_into_settings_the_collection_reads() -> None:
    [kind] = DATA["controller_credential_types"]
    fields = {f["id"] for f in kind["inputs"]["fields"]}
    assert set(kind["inputs"]["required"]) <= fields
    secret = {f["id"] for f in kind["inputs"]["fields"] if f.get("secret")}
    injectors = kind["injectors"]
    # Rendered once by Ansible when awx_configure.yml runs: what AWX then receives.
    rendered = {k: {n: jinja2.Template(v).render() for n, v in section.items()} for k, section in injectors.items()}
    for section in rendered.values():
        for value in section.values():
            for used in re.findall(r"\{\{\s*([\w.]+)\s*\}\}", value):
                assert used in fields or used.startswith("tower.filename"), used
    assert not [n for n, v in rendered["extra_vars"].items() if any(f"{{{{ {s} }}}}" in v for s in secret)], \
        "a secret reaches the job as a file, never as an extra var"
    for variable in rendered["extra_vars"]:
        assert re.search(rf"\b{variable}\b", _READ), variable

# Copyright (c) mlstack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""``junit.xml``: the evidence bundle as CI reads it, one test case per check."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping
from typing import Any

from ansible_collections.aiops.mlstack.plugins.plugin_utils._bundle_text import inline, xml_text


def _testcase(suite: ET.Element, classname: str, name: str, time_s: float = 0.0) -> ET.Element:
    return ET.SubElement(suite, "testcase", classname=xml_text(classname), name=xml_text(name),
                         time=f"{max(time_s, 0.0):.3f}")


def _record_case(suite: ET.Element, rec: Mapping[str, Any]) -> None:
    case = _testcase(suite, str(rec["unit"]), str(rec["check"]))
    if rec.get("fake"):
        props = ET.SubElement(case, "properties")
        ET.SubElement(props, "property", name="fake", value=xml_text(rec["fake"]))
    if not rec["ok"]:
        failure = ET.SubElement(case, "failure", message=xml_text(inline(rec.get("message"), 1000) or "check failed"),
                                type="evidence")
        failure.text = xml_text(rec.get("observed"))
    out = ET.SubElement(case, "system-out")
    out.text = xml_text(f"observed: {rec.get('observed')}" + (f"\nFAKE: {rec['fake']}" if rec.get("fake") else ""))


def render_junit(summary: Mapping[str, Any]) -> str:
    """``junit.xml``: one test case per evidence record (classname = unit, name = check),
    plus one per failed unit task and one error when the run is incomplete, so that CI
    goes red whenever the verdict is fail or incomplete."""
    run = summary["run"]
    suite = ET.Element("testsuite", name=xml_text(f"mlstack evidence: {run['playbook'] or run['id']}"),
                       timestamp=xml_text(run["start"]), time=f"{run['wall_s']:.3f}")
    for rec in summary["checks"]:
        _record_case(suite, rec)
    for unit in summary["units"]:
        for failure in unit["failures"]:
            case = _testcase(suite, unit["name"], f"task: {failure['task']}")
            ET.SubElement(case, "failure", message=xml_text(inline(failure["message"], 1000)), type=failure["status"])
    if run["status"] != "complete":
        case = _testcase(suite, "run", "complete")
        ET.SubElement(case, "error", message="the run ended before Ansible's final stats", type="incomplete")
    cases = suite.findall("testcase")
    suite.set("tests", str(len(cases)))
    suite.set("failures", str(sum(1 for c in cases if c.find("failure") is not None)))
    suite.set("errors", str(sum(1 for c in cases if c.find("error") is not None)))
    suite.set("skipped", "0")
    root = ET.Element("testsuites", name="mlstack evidence")
    for key in ("tests", "failures", "errors", "time"):
        root.set(key, suite.get(key, "0"))
    root.append(suite)
    indent = getattr(ET, "indent", None)
    if indent is not None:
        indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"

"""The grafana role's dashboards: valid Grafana JSON, every panel on the data source the role
provisions, every query a PromQL expression (the scenarios evaluate each one against a live
Prometheus), and the role's list of dashboards is exactly the files it ships."""
import json
from pathlib import Path

import pytest
import yaml

ROLE = Path(__file__).resolve().parents[2] / "roles" / "grafana"
FILES = sorted((ROLE / "files" / "dashboards").glob("*.json"))


def provisioned_uid():
    text = (ROLE / "templates" / "datasources" / "llmops.yml.j2").read_text()
    body = "\n".join(line for line in text.splitlines() if not line.startswith("{{"))
    return yaml.safe_load(body.replace("{{ grafana_prometheus_url | trim }}", "http://x"))["datasources"][0]["uid"]


def test_the_role_lists_exactly_the_dashboards_it_ships():
    listed = yaml.safe_load((ROLE / "vars" / "main.yml").read_text())["__grafana_dashboards"]
    assert FILES and sorted(listed) == [f.name for f in FILES]


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_dashboard_panels_query_the_provisioned_prometheus(path):
    dashboard = json.loads(path.read_text())
    assert dashboard["uid"] and dashboard["title"] and isinstance(dashboard["schemaVersion"], int)
    panels = dashboard["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    uid = provisioned_uid()
    graphs = [p for p in panels if p["type"] != "row"]
    assert graphs
    for panel in graphs:
        assert panel["datasource"] == {"type": "prometheus", "uid": uid}, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["expr"].strip() and target["datasource"]["uid"] == uid, panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]


def test_there_is_something_to_evaluate():
    expressions = [t["expr"] for f in FILES for p in json.loads(f.read_text())["panels"] for t in p.get("targets", [])]
    assert len(expressions) >= 20

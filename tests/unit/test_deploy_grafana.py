"""The Grafana dashboard and its provisioning: well-formed, wired to the provisioned datasource,
and covering what the issue asks to see."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
GRAFANA = REPO / "deploy" / "grafana"


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((GRAFANA / "dashboards" / "wirewatch.json").read_text())
    return data


def query_panels() -> list[dict[str, Any]]:
    return [panel for panel in dashboard()["panels"] if panel["type"] != "row"]


def test_dashboard_queries_the_provisioned_prometheus_datasource() -> None:
    provisioned = yaml.safe_load((GRAFANA / "provisioning/datasources/prometheus.yml").read_text())
    [source] = provisioned["datasources"]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
    for panel in query_panels():
        assert panel["datasource"] == {"type": "prometheus", "uid": source["uid"]}, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["expr"].strip() and target["datasource"]["uid"] == source["uid"]
        refs = [target["refId"] for target in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]


def test_dashboard_has_a_stable_uid_and_unique_panel_ids_without_overlaps() -> None:
    board = dashboard()
    assert board["uid"] == "wirewatch"
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for panel in board["panels"]:
        grid = panel["gridPos"]
        assert 0 <= grid["x"] and grid["x"] + grid["w"] <= 24, panel["title"]
        mine = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not mine & cells, f"{panel['title']} overlaps another panel"
        cells |= mine


def test_dashboard_shows_what_the_issue_asks_for() -> None:
    exprs = {
        panel["title"]: " ".join(t["expr"] for t in panel["targets"]) for panel in query_panels()
    }
    wanted = {
        "throughput per stage": "_messages_out_total",
        "end-to-end latency percentiles": (
            "histogram_quantile(0.99, sum by (le) "
            "(rate(wirewatch_pipeline_end_to_end_latency_seconds_bucket"
        ),
        "errors and DLQ": "_dead_letters_total",
        "lag": "_consumer_lag_messages",
        "dedup ratio": 'wirewatch_dedup_articles_total{outcome=~"copy|same_story"}',
        "events by CAMEO root": "sum by (cameo_root",
    }
    for what, fragment in wanted.items():
        assert any(fragment in expr for expr in exprs.values()), what


def test_dashboard_provider_loads_the_dashboards_folder() -> None:
    provider = yaml.safe_load((GRAFANA / "provisioning/dashboards/wirewatch.yml").read_text())
    [only] = provider["providers"]
    assert only["type"] == "file"
    assert only["options"]["path"] == "/var/lib/grafana/dashboards"

"""Every metric the alerts and the dashboard use is one the Watch table of docs/operations.md
documents (the table is the metric contract the services are built to)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
STAGES = ("poller", "extractor", "dedup", "coder")
HISTOGRAM_SUFFIXES = ("_bucket", "_count", "_sum")


def documented_metrics() -> dict[str, str]:
    """``{metric name: type}`` from docs/operations.md's Watch table, ``<service>`` expanded."""
    watch = (
        REPO.joinpath("docs/operations.md")
        .read_text()
        .split("\n## Watch", 1)[1]
        .split("\n## ", 1)[0]
    )
    found: dict[str, str] = {}
    for name, kind in re.findall(r"^\| `(wirewatch_[^`]+)` \| (\w+) \|", watch, re.MULTILINE):
        for stage in STAGES if "<service>" in name else ("",):
            found[name.replace("<service>", stage)] = kind
    return found


def metric_names(expr: str) -> set[str]:
    """The wirewatch metric names a PromQL expression reads, regex alternations expanded."""
    names: set[str] = set()
    for alternatives, rest in re.findall(r"wirewatch_\(([a-z|]+)\)_([a-z_]+)", expr):
        names.update(f"wirewatch_{stage}_{rest}" for stage in alternatives.split("|"))
    expr = re.sub(r"wirewatch_\([a-z|]+\)_[a-z_]+", "", expr)
    names.update(re.findall(r"\bwirewatch_[a-z_]+[a-z]", expr))
    return {_base_name(name) for name in names}


def _base_name(name: str) -> str:
    for suffix in HISTOGRAM_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def alert_exprs() -> dict[str, str]:
    rules = yaml.safe_load((REPO / "deploy/prometheus/alerts.yml").read_text())
    return {rule["alert"]: rule["expr"] for group in rules["groups"] for rule in group["rules"]}


def dashboard_exprs() -> list[str]:
    dashboard = json.loads((REPO / "deploy/grafana/dashboards/wirewatch.json").read_text())
    return [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]


def test_readme_documents_the_contract_metrics_with_their_types() -> None:
    documented = documented_metrics()
    assert documented["wirewatch_pipeline_end_to_end_latency_seconds"] == "histogram"
    for stage in STAGES:
        assert documented[f"wirewatch_{stage}_consumer_lag_messages"] == "gauge"
        assert documented[f"wirewatch_{stage}_dead_letters_total"] == "counter"
    assert all(name.endswith("_total") for name, k in documented.items() if k == "counter")
    assert not [name for name, k in documented.items() if k != "counter" and "_total" in name]


def test_metric_name_extraction_expands_regex_alternations_and_histogram_suffixes() -> None:
    expr = (
        'rate({__name__=~"wirewatch_(dedup|coder)_messages_in_total"}[5m]) + '
        "rate(wirewatch_pipeline_end_to_end_latency_seconds_bucket[5m])"
    )
    assert metric_names(expr) == {
        "wirewatch_dedup_messages_in_total",
        "wirewatch_coder_messages_in_total",
        "wirewatch_pipeline_end_to_end_latency_seconds",
    }


def test_alerts_read_only_documented_metrics() -> None:
    documented = documented_metrics()
    for alert, expr in alert_exprs().items():
        assert metric_names(expr) <= set(documented), alert


def test_dashboard_reads_only_documented_metrics() -> None:
    documented = documented_metrics()
    used = set().union(*(metric_names(expr) for expr in dashboard_exprs()))
    assert used <= set(documented), used - set(documented)
    # and it shows most of them: throughput, lag, DLQ, latency, dedup and events all appear
    for name in (
        "wirewatch_pipeline_end_to_end_latency_seconds",
        "wirewatch_coder_events_total",
        "wirewatch_dedup_articles_total",
        "wirewatch_extractor_consumer_lag_messages",
        "wirewatch_coder_dead_letters_total",
        "wirewatch_poller_messages_out_total",
    ):
        assert name in used

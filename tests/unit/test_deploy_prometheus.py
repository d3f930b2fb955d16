"""The shipped Prometheus configuration and alert rules, checked by promtool itself."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
PROM = REPO / "deploy" / "prometheus"
REQUIRED_ALERTS = {
    "WirewatchServiceDown",
    "WirewatchConsumerLagGrowing",
    "WirewatchDeadLetterRateHigh",
    "WirewatchFeedFailing",
    "WirewatchNoEventsWhileArticlesFlow",
}


def promtool(*args: str, cwd: Path = PROM) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    if binary is None:
        pytest.fail("promtool not installed: `make test` installs the Debian package prometheus")
    return subprocess.run(
        [binary, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def test_promtool_check_config_accepts_the_shipped_config() -> None:
    result = promtool("check", "config", "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_check_rules_accepts_the_alert_rules() -> None:
    result = promtool("check", "rules", "alerts.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 7 rules found" in result.stdout


def test_promtool_rule_unit_tests_pass() -> None:
    result = promtool("test", "rules", "tests/alerts_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_rule_unit_tests_catch_a_weakened_rule(tmp_path: Path) -> None:
    """The unit tests are not vacuous: a feed alert after 1 hour instead of 6 fails them."""
    rules = (PROM / "alerts.yml").read_text()
    weakened = rules.replace(
        "(wirewatch_poller_feed_failing_since_timestamp_seconds) > 6 * 3600",
        "(wirewatch_poller_feed_failing_since_timestamp_seconds) > 1 * 3600",
    )
    assert weakened != rules
    (tmp_path / "alerts.yml").write_text(weakened)
    (tmp_path / "tests").mkdir()
    shutil.copy(PROM / "tests" / "alerts_test.yml", tmp_path / "tests" / "alerts_test.yml")
    result = promtool("test", "rules", "tests/alerts_test.yml", cwd=tmp_path)
    assert result.returncode != 0
    assert "WirewatchFeedFailing" in result.stdout + result.stderr


def test_every_required_alert_exists_and_has_a_unit_test() -> None:
    rules = yaml.safe_load((PROM / "alerts.yml").read_text())
    alerts = {rule["alert"]: rule for group in rules["groups"] for rule in group["rules"]}
    assert REQUIRED_ALERTS <= set(alerts)
    tests = yaml.safe_load((PROM / "tests" / "alerts_test.yml").read_text())
    fired = {
        case["alertname"]
        for test in tests["tests"]
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    assert fired == set(alerts), "every alert is shown firing at least once"
    assert "> 6 * 3600" in alerts["WirewatchFeedFailing"]["expr"]
    assert alerts["WirewatchConsumerLagGrowing"]["for"] == "10m"
    assert "[30m]" in alerts["WirewatchNoEventsWhileArticlesFlow"]["expr"]
    for rule in alerts.values():
        assert rule["labels"]["severity"] in {"warning", "critical"}
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]


def test_config_scrapes_every_stage_and_labels_it_service() -> None:
    config = yaml.safe_load((PROM / "prometheus.yml").read_text())
    [job] = [job for job in config["scrape_configs"] if job["job_name"] == "wirewatch"]
    names = {name for sd in job["dns_sd_configs"] for name in sd["names"]}
    assert names == {"poller", "extractor", "dedup", "coder"}
    assert {sd["port"] for sd in job["dns_sd_configs"]} == {9100}
    assert {"source_labels": ["__meta_dns_name"], "target_label": "service"} in job[
        "relabel_configs"
    ]
    assert config["rule_files"] == ["alerts.yml"]

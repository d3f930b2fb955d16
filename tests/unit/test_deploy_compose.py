"""docker-compose.yml against the Compose Specification schema, the CLI and the topic list.

There is no Docker engine here, so the file is checked as data: the schema (a copy from PyPI,
origin in tests/fixtures/compose-spec.ORIGIN.md), then what the schema cannot know.
"""

from __future__ import annotations

import copy
import json
import re
import shlex
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from services.common.settings import TopicNames
from services.common.topics import pipeline_topics
from wirewatch_tools.cli import build_parser

REPO = Path(__file__).resolve().parents[2]
STAGES = ("poller", "extractor", "dedup", "coder")


def load_compose() -> dict[str, Any]:
    compose: dict[str, Any] = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    return compose


def compose_validator() -> jsonschema.Draft201909Validator:
    schema = json.loads((REPO / "tests" / "fixtures" / "compose-spec.json").read_text())
    jsonschema.Draft201909Validator.check_schema(schema)
    return jsonschema.Draft201909Validator(
        schema, format_checker=jsonschema.Draft201909Validator.FORMAT_CHECKER
    )


def test_compose_file_conforms_to_the_compose_specification() -> None:
    errors = [
        f"{e.json_path}: {e.message}" for e in compose_validator().iter_errors(load_compose())
    ]
    assert errors == []


@pytest.mark.parametrize(
    "break_it",
    [
        lambda c: c["services"]["poller"].update(restrat="always"),
        lambda c: c["services"]["extractor"]["depends_on"]["kafka"].update(condition="healthy"),
        lambda c: c["services"]["kafka"]["healthcheck"].update(retries="many"),
        lambda c: c.update(servcies={}),
    ],
    ids=["misspelt key", "bad depends_on condition", "bad healthcheck retries", "bad top level"],
)
def test_schema_check_rejects_broken_compose_files(break_it: Any) -> None:
    broken = copy.deepcopy(load_compose())
    break_it(broken)
    assert not compose_validator().is_valid(broken)


def test_kafka_runs_in_kraft_mode_from_the_official_image() -> None:
    kafka = load_compose()["services"]["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    env = kafka["environment"]
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"{env['KAFKA_NODE_ID']}@kafka:9093"
    assert not any("ZOOKEEPER" in key for key in env)
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert "kafka:9092" in env["KAFKA_ADVERTISED_LISTENERS"]


def created_topics(script: str) -> dict[str, tuple[int, dict[str, str]]]:
    topics = {}
    for line in script.splitlines():
        words = shlex.split(line)
        if not words or words[0] != "create":
            continue
        options: dict[str, str] = {}
        partitions = None
        name = None
        for flag, value in zip(words[1::2], words[2::2], strict=True):
            if flag == "--topic":
                name = value
            elif flag == "--partitions":
                partitions = int(value)
            elif flag == "--config":
                key, _, setting = value.partition("=")
                options[key] = setting
        assert name and partitions, line
        topics[name] = (partitions, options)
    return topics


def test_kafka_init_creates_exactly_the_topics_the_pipeline_declares() -> None:
    init = load_compose()["services"]["kafka-init"]
    [script] = init["command"]
    from services.poller.settings import PollerSettings
    from services.poller.state import state_topic_spec

    specs = pipeline_topics(TopicNames())
    specs.append(state_topic_spec(PollerSettings.model_fields["state_topic"].default))
    expected = {spec.name: (spec.partitions, dict(spec.config)) for spec in specs}
    assert created_topics(script) == expected
    assert "--if-not-exists" in script  # rerunning the stack must not fail
    assert init["depends_on"]["kafka"]["condition"] == "service_healthy"


def parse_cli(command: list[str]) -> Any:
    """The parsed ``wirewatch`` arguments of a container command; fails if the CLI lacks it."""
    try:
        return build_parser().parse_args(command)
    except SystemExit:
        pytest.fail(f"`wirewatch {' '.join(command)}` is not a command of wirewatch_tools/cli.py")


def test_every_stage_runs_the_one_image_with_a_command_the_cli_has() -> None:
    services = load_compose()["services"]
    images = set()
    for stage in STAGES:
        service = services[stage]
        images.add(service["image"])
        assert service["build"]["context"] == "."
        args = parse_cli(service["command"])
        assert args.command == stage
    assert len(images) == 1
    assert (REPO / "Dockerfile").is_file()


def test_every_long_running_service_has_a_healthcheck_and_a_restart_policy() -> None:
    services = load_compose()["services"]
    for name, service in services.items():
        if name == "kafka-init":
            assert service["restart"] == "on-failure"
            continue
        assert service["restart"] == "unless-stopped", name
        assert service["healthcheck"]["test"], name
    for stage in STAGES:
        service = services[stage]
        assert "/readyz" in " ".join(service["healthcheck"]["test"])
        assert service["depends_on"]["kafka"]["condition"] == "service_healthy"
        assert service["depends_on"]["kafka-init"]["condition"] == "service_completed_successfully"
        assert service["environment"]["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
        assert service["read_only"] is True and service["cap_drop"] == ["ALL"]


def test_bind_mounts_point_at_files_in_the_repository() -> None:
    for name, service in load_compose()["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            default = re.fullmatch(r"\$\{[A-Z_]+:-(.+)\}", source)
            source = default.group(1) if default else source
            if source.startswith("."):
                assert (REPO / source).exists(), f"{name}: {source}"


def test_grafana_is_provisioned_and_its_password_is_required() -> None:
    grafana = load_compose()["services"]["grafana"]
    assert re.fullmatch(
        r"\$\{GRAFANA_ADMIN_PASSWORD:\?.+\}", grafana["environment"]["GF_SECURITY_ADMIN_PASSWORD"]
    )
    mounts = {v.split(":")[0]: v.split(":")[1] for v in grafana["volumes"]}
    assert mounts["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
    provider = yaml.safe_load(
        (REPO / "deploy/grafana/provisioning/dashboards/wirewatch.yml").read_text()
    )
    assert mounts["./deploy/grafana/dashboards"] == provider["providers"][0]["options"]["path"]


def test_prometheus_scrapes_the_compose_services_it_mounts() -> None:
    compose = load_compose()
    prometheus = compose["services"]["prometheus"]
    assert "./deploy/prometheus:/etc/prometheus:ro" in prometheus["volumes"]
    config = yaml.safe_load((REPO / "deploy/prometheus/prometheus.yml").read_text())
    [job] = [job for job in config["scrape_configs"] if job["job_name"] == "wirewatch"]
    scraped = {name for sd in job["dns_sd_configs"] for name in sd["names"]}
    assert scraped == set(STAGES) and scraped <= set(compose["services"])


def test_service_environment_uses_variables_wirewatch_reads() -> None:
    from services.common.settings import KafkaSettings

    known = {f"KAFKA_{field.upper()}" for field in KafkaSettings.model_fields}
    services = load_compose()["services"]
    for stage in STAGES:
        kafka_keys = {k for k in services[stage]["environment"] if k.startswith("KAFKA_")}
        assert kafka_keys <= known, stage

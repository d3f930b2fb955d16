"""The Kubernetes manifests, validated offline against the Kubernetes OpenAPI schemas (strict:
unknown fields are errors) shipped by the PyPI package kubernetes-validate, then checked for what
a schema cannot know: probes on the real health endpoints, ports that agree, security, scaling."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from services.common.settings import TopicNames
from services.common.topics import pipeline_topics
from tests.unit.test_deploy_compose import parse_cli

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
KUBERNETES_VERSION = "1.30.0"
STAGES = ("poller", "extractor", "dedup", "coder")
# The topic each consumer group reads: its partitions bound the useful replicas.
INPUT_TOPIC = {"extractor": "entries", "dedup": "articles", "coder": "deduplicated"}


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def all_documents() -> list[tuple[str, dict[str, Any]]]:
    return [(path.name, doc) for path in sorted(K8S.glob("*.yaml")) for doc in documents(path)]


def by_kind(stage: str) -> dict[str, dict[str, Any]]:
    found = {}
    for doc in documents(K8S / f"{stage}.yaml"):
        if doc["metadata"]["name"] == stage:
            found[doc["kind"]] = doc
    return found


def container(stage: str) -> dict[str, Any]:
    containers: list[dict[str, Any]] = by_kind(stage)["Deployment"]["spec"]["template"]["spec"][
        "containers"
    ]
    [only] = containers
    return only


@pytest.mark.parametrize(
    ("filename", "doc"), all_documents(), ids=lambda v: v if isinstance(v, str) else v["kind"]
)
def test_manifest_validates_against_the_kubernetes_schema(
    filename: str, doc: dict[str, Any]
) -> None:
    assert kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True) == "1.30"
    assert doc["metadata"].get("namespace", "wirewatch") == "wirewatch"


@pytest.mark.parametrize(
    "break_it",
    [
        lambda d: d["spec"]["template"]["spec"]["containers"][0].update(livenesProbe={}),
        lambda d: d["spec"].update(replicas="two"),
        lambda d: d["spec"]["template"]["spec"]["containers"][0]["ports"][0].pop("containerPort"),
    ],
    ids=["misspelt field", "wrong type", "missing required field"],
)
def test_validation_rejects_broken_manifests(break_it: Any) -> None:
    broken = copy.deepcopy(by_kind("extractor")["Deployment"])
    break_it(broken)
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_namespace_and_shared_settings_exist() -> None:
    kinds = {(doc["kind"], doc["metadata"]["name"]) for _, doc in all_documents()}
    assert ("Namespace", "wirewatch") in kinds
    assert ("ConfigMap", "wirewatch-config") in kinds
    assert ("Secret", "wirewatch-kafka") in kinds
    [config] = [d for _, d in all_documents() if d["metadata"]["name"] == "wirewatch-config"]
    assert "KAFKA_BOOTSTRAP_SERVERS" in config["data"]
    assert all(isinstance(value, str) for value in config["data"].values())


@pytest.mark.parametrize("stage", STAGES)
def test_each_service_has_a_deployment_and_a_scrapable_service(stage: str) -> None:
    kinds = by_kind(stage)
    deployment, service = kinds["Deployment"], kinds["Service"]
    pod = deployment["spec"]["template"]
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pod["metadata"]["labels"].items()
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    port = {p["name"]: p["containerPort"] for p in container(stage)["ports"]}["metrics"]
    annotations = service["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(port)
    assert annotations["prometheus.io/path"] == "/metrics"
    assert [p["port"] for p in service["spec"]["ports"]] == [port]
    # Annotated pods as well would be scraped twice by the usual pod + endpoints discovery.
    assert "prometheus.io/scrape" not in pod["metadata"].get("annotations", {})


@pytest.mark.parametrize("stage", STAGES)
def test_probes_hit_the_health_server_on_the_port_the_service_listens_on(stage: str) -> None:
    spec = container(stage)
    env = {item["name"]: item.get("value") for item in spec["env"]}
    prefix = f"WIREWATCH_{stage.upper()}_"
    assert env[prefix + "METRICS_HOST"] == "0.0.0.0"  # noqa: S104 - inside the pod
    port = int(env[prefix + "METRICS_PORT"])
    assert {p["name"]: p["containerPort"] for p in spec["ports"]}["metrics"] == port
    assert spec["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert spec["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert spec["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert {"configMapRef": {"name": "wirewatch-config"}} in spec["envFrom"]


@pytest.mark.parametrize("stage", STAGES)
def test_container_runs_a_command_the_cli_has(stage: str) -> None:
    assert parse_cli(container(stage)["args"]).command == stage


@pytest.mark.parametrize("stage", STAGES)
def test_pods_run_locked_down_with_requests_and_limits(stage: str) -> None:
    pod = by_kind(stage)["Deployment"]["spec"]["template"]["spec"]
    spec = container(stage)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    security = spec["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert {"cpu", "memory"} <= spec["resources"]["requests"].keys()
    assert {"cpu", "memory"} <= spec["resources"]["limits"].keys()
    writable = {mount["mountPath"] for mount in spec["volumeMounts"] if not mount.get("readOnly")}
    assert {"/tmp", "/var/lib/wirewatch"} <= writable  # noqa: S108 - an emptyDir


def test_replicas_scale_with_partitions() -> None:
    partitions = {spec.name: spec.partitions for spec in pipeline_topics(TopicNames())}
    names = TopicNames()
    for stage, topic_field in INPUT_TOPIC.items():
        kinds = by_kind(stage)
        hpa = kinds["HorizontalPodAutoscaler"]
        assert hpa["spec"]["scaleTargetRef"]["name"] == stage
        assert hpa["spec"]["maxReplicas"] == partitions[getattr(names, topic_field)]
        assert kinds["Deployment"]["spec"]["replicas"] <= hpa["spec"]["maxReplicas"]
    poller = by_kind("poller")
    assert "HorizontalPodAutoscaler" not in poller
    assert poller["Deployment"]["spec"]["replicas"] == 1
    assert poller["Deployment"]["spec"]["strategy"]["type"] == "Recreate"


def test_shared_settings_are_variables_wirewatch_reads() -> None:
    """A misspelt key would be ignored silently by the services: each must be a settings field."""
    from services.common.settings import KafkaSettings

    known = {f"KAFKA_{field.upper()}" for field in KafkaSettings.model_fields}
    known |= {f"WIREWATCH_TOPIC_{field.upper()}" for field in TopicNames.model_fields}
    [config] = [d for _, d in all_documents() if d["metadata"]["name"] == "wirewatch-config"]
    [secret] = [d for _, d in all_documents() if d["metadata"]["name"] == "wirewatch-kafka"]
    assert set(config["data"]) <= known
    assert set(secret["stringData"]) <= known
    names = TopicNames()
    assert config["data"]["WIREWATCH_TOPIC_EVENTS"] == names.events

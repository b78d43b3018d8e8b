"""The manifests follow the code: every topic the code creates is a KafkaTopic with the same partitions and
retention, every service (and every Procfile process) is deployed with the same command and port, the
databases and roles match the services, and KEDA scales consumer groups that exist on topics that have the
partitions for it."""

from __future__ import annotations

import importlib
import re
import shlex
from typing import Any

import pytest

from contracts.topics import ALL_TOPICS, topic_spec
from tests.deploy.support import OVERLAYS, by_kind, procfile, render, services

PORT = re.compile(r"--port\s+(\d+)")


def _command(deployment: dict[str, Any]) -> list[str]:
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return [*container.get("command", []), *container.get("args", [])]


def _env(overlay: str, deployment: dict[str, Any]) -> dict[str, str]:
    """The environment a Deployment's first container gets from its ConfigMaps and literal values."""
    config_maps = by_kind(render(overlay), "ConfigMap")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(config_maps[source["configMapRef"]["name"]]["data"])
    env.update({e["name"]: e["value"] for e in container.get("env", []) if "value" in e})
    return env


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_topic_of_the_code_is_a_kafka_topic(overlay: str) -> None:
    declared = {
        t["spec"].get("topicName", name): t for name, t in by_kind(render(overlay), "KafkaTopic").items()
    }
    expected = {spec.name: spec for spec in ALL_TOPICS}
    assert sorted(declared) == sorted(expected), (
        f"missing: {sorted(set(expected) - set(declared))}, not in the code: {sorted(set(declared) - set(expected))}"
    )
    brokers = sum(
        pool["spec"]["replicas"]
        for pool in by_kind(render(overlay), "KafkaNodePool").values()
        if "broker" in pool["spec"]["roles"]
    )
    for name, topic in declared.items():
        spec = expected[name]
        assert topic["spec"]["partitions"] == spec.partitions, (
            f"{name}: partitions differ from contracts.topics"
        )
        config = topic["spec"]["config"]
        assert int(config["retention.ms"]) == spec.retention_ms, (
            f"{name}: retention.ms differs from contracts.topics"
        )
        # Event histories: compaction would keep only each stream's last event (topics.yaml says why).
        assert config.get("cleanup.policy", "delete") == "delete", f"{name} is compacted"
        assert topic["metadata"]["labels"]["strimzi.io/cluster"] == "lk-kafka"
        assert 1 <= topic["spec"]["replicas"] <= brokers, f"{name}: more replicas than brokers"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_min_insync_replicas_fit_the_replication(overlay: str) -> None:
    kafka = by_kind(render(overlay), "Kafka")["lk-kafka"]
    config = kafka["spec"]["kafka"]["config"]
    topics = by_kind(render(overlay), "KafkaTopic").values()
    smallest = min(t["spec"]["replicas"] for t in topics)
    assert int(config["min.insync.replicas"]) <= smallest
    assert int(config["default.replication.factor"]) >= int(config["min.insync.replicas"])
    assert config["auto.create.topics.enable"] is False


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_service_is_deployed(overlay: str) -> None:
    resources = render(overlay)
    deployments = by_kind(resources, "Deployment")
    svc_resources = by_kind(resources, "Service")
    jobs = by_kind(resources, "Job")
    problems = []
    assert services(), "no service found under services/"
    for svc in services():
        for name in (f"{svc}-api", f"{svc}-worker"):
            if name not in deployments:
                problems.append(f"{svc}: no Deployment {name}")
        if svc not in svc_resources:
            problems.append(f"{svc}: no Service {svc}")
        job = jobs.get(f"{svc}-migrate")
        if job is None:
            problems.append(f"{svc}: no migration Job {svc}-migrate")
        elif job["spec"]["template"]["spec"]["containers"][0]["command"] != [
            "python",
            "-m",
            f"{svc}.worker",
            "migrate",
        ]:
            problems.append(f"{svc}-migrate does not run `python -m {svc}.worker migrate`")
        if f"{svc}-worker" in deployments and _command(deployments[f"{svc}-worker"])[:3] != [
            "python",
            "-m",
            f"{svc}.worker",
        ]:
            problems.append(f"{svc}-worker does not run `python -m {svc}.worker`")
    if "gateway" not in deployments or "gateway" not in svc_resources:
        problems.append("the gateway has no Deployment or Service")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_procfile_process_is_a_deployment_with_its_command_and_port(overlay: str) -> None:
    resources = render(overlay)
    deployments = by_kind(resources, "Deployment")
    svc_resources = by_kind(resources, "Service")
    problems = []
    for name, command in procfile().items():
        deployment = deployments.get(name)
        if deployment is None:
            problems.append(f"Procfile process {name}: no Deployment {name}")
            continue
        words = shlex.split(command)
        if words[:1] == ["env"]:  # `env NAME=value ... <command>`: the Deployment must set the same
            words = words[1:]
            while words and "=" in words[0]:
                variable, _, value = words.pop(0).partition("=")
                if _env(overlay, deployment).get(variable) != value:
                    problems.append(f"{name}: the Procfile sets {variable}={value}, the Deployment does not")
        words = words[2:] if words[:2] == ["uv", "run"] else words
        ours = _command(deployment)
        if words[0] == "uvicorn":
            if ours[:2] != words[:2]:
                problems.append(f"{name}: runs {ours[:2]}, the Procfile {words[:2]}")
            port = int(PORT.search(command).group(1))  # type: ignore[union-attr]
            container = deployment["spec"]["template"]["spec"]["containers"][0]
            if [p["containerPort"] for p in container["ports"]] != [port]:
                problems.append(f"{name}: container port is not {port}")
            service = svc_resources.get(deployment["metadata"]["labels"]["app.kubernetes.io/name"])
            if service is None or service["spec"]["ports"][0]["port"] != port:
                problems.append(f"{name}: its Service does not listen on {port}")
        elif ours[: len(words)] != words:
            problems.append(f"{name}: runs {ours}, the Procfile {words}")
    extra = sorted(set(deployments) - set(procfile()))
    assert not extra, f"Deployments without a Procfile process (add it there, or drop it here): {extra}"
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_settings_point_at_what_is_deployed(overlay: str) -> None:
    resources = render(overlay)
    deployments = by_kind(resources, "Deployment")
    svc_resources = by_kind(resources, "Service")
    gateway = _env(overlay, deployments["gateway"])
    for svc in services():
        port = svc_resources[svc]["spec"]["ports"][0]["port"]
        assert gateway[f"GATEWAY_{svc.upper()}_URL"] == f"http://{svc}:{port}", f"gateway's URL of {svc}"
        for name in (f"{svc}-api", f"{svc}-worker"):
            env = _env(overlay, deployments[name])
            url = env[f"{svc.upper()}_DATABASE_URL"]
            assert re.match(rf"postgresql://{svc}@lk-pg-rw:5432/{svc}\?", url), f"{name}: {url}"
            assert env["KAFKA_BOOTSTRAP_SERVERS"] == "lk-kafka-kafka-bootstrap:9092"
            assert env[f"{svc.upper()}_WORKER_METRICS_PORT"] == "9100"
            assert (
                env["JWKS_URL"]
                == f"http://identity:{svc_resources['identity']['spec']['ports'][0]['port']}/internal/v1/jwks.json"
            )


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_service_has_its_database_and_role(overlay: str) -> None:
    cluster = by_kind(render(overlay), "Cluster")["lk-pg"]["spec"]
    roles = {r["name"]: r for r in cluster["managed"]["roles"]}
    initdb = cluster["bootstrap"]["initdb"]
    sql = "\n".join(initdb.get("postInitSQL", []))
    for svc in services():
        role = roles.get(svc)
        assert role and role["login"] and role["passwordSecret"]["name"] == f"lk-pg-{svc}", f"role {svc}"
        if initdb["database"] != svc:
            assert f"CREATE DATABASE {svc} OWNER {svc}" in sql, f"no database {svc}"
        assert f"REVOKE CONNECT ON DATABASE {svc} FROM PUBLIC" in sql, f"database {svc} is open to every role"


def _consumer_groups(svc: str) -> dict[str, tuple[str, ...]]:
    """Consumer group id -> topics, for the worker of `svc` (ConsumerRunner: "<service>.<handler name>")."""
    worker = importlib.import_module(f"{svc}.worker")
    groups = {f"{svc}.{h.name}": tuple(h.topics) for h in worker.handlers()}
    if svc == "calculator":  # the rating stream (faust) consumes as its app id
        from calculator.settings import CalculatorSettings

        groups[CalculatorSettings().rating_app_id] = ("calculator.events.v1",)
    return groups


def test_keda_scales_real_consumer_groups_within_their_partitions() -> None:
    resources = render("prod")
    scaled = by_kind(resources, "ScaledObject")
    deployments = by_kind(resources, "Deployment")
    assert scaled, "the prod overlay has no KEDA ScaledObject"
    problems = []
    for name, so in scaled.items():
        target = so["spec"]["scaleTargetRef"]["name"]
        if target not in deployments or not target.endswith("-worker"):
            problems.append(f"{name}: scales {target}, not a worker Deployment")
            continue
        svc = target.removesuffix("-worker")
        groups = _consumer_groups(svc)
        if so["spec"].get("minReplicaCount", 0) < 1:
            problems.append(f"{name}: may scale to zero, stopping {svc}'s outbox relay")
        for trigger in so["spec"]["triggers"]:
            meta = trigger["metadata"]
            group, topic = meta["consumerGroup"], meta["topic"]
            if group not in groups:
                problems.append(f"{name}: consumer group {group} is not one of {svc}'s ({sorted(groups)})")
            elif topic not in groups[group]:
                problems.append(f"{name}: {group} does not consume {topic}")
            if so["spec"]["maxReplicaCount"] > topic_spec(topic).partitions:
                problems.append(
                    f"{name}: maxReplicaCount exceeds {topic}'s {topic_spec(topic).partitions} partitions"
                )
            if meta["bootstrapServers"] != "lk-kafka-kafka-bootstrap.lk-portal.svc:9092":
                problems.append(f"{name}: bootstrapServers {meta['bootstrapServers']}")
    assert not problems, "\n".join(problems)


STAGES = ("prereq", "platform", "topics", "migrate", "workers", "apis", "gateway")
EXPECTED_STAGE = {
    "Namespace": "prereq",
    "Kafka": "platform",
    "KafkaNodePool": "platform",
    "Cluster": "platform",
    "ObjectStore": "platform",
    "ScheduledBackup": "platform",
    "StatefulSet": "platform",
    "KafkaTopic": "topics",
    "Job": "migrate",
    "ScaledObject": "workers",
    "Ingress": "gateway",
}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_resource_has_its_deploy_stage(overlay: str) -> None:
    """docs/operations.md deploys stage by stage (`kubectl apply -k ... -l lk-portal.kz/stage=<stage>`): a
    resource without the label would never be applied, one in the wrong stage would start too early."""
    problems = []
    for r in render(overlay):
        name = r["metadata"]["name"]
        stage = r["metadata"].get("labels", {}).get("lk-portal.kz/stage")
        if stage not in STAGES:
            problems.append(f"{r['kind']}/{name}: lk-portal.kz/stage is {stage!r}")
            continue
        expected = EXPECTED_STAGE.get(r["kind"])
        if r["kind"] == "Deployment":
            expected = "gateway" if name == "gateway" else "workers" if name.endswith("-worker") else "apis"
        if expected and stage != expected:
            problems.append(f"{r['kind']}/{name}: stage {stage}, expected {expected}")
    assert not problems, "\n".join(problems)

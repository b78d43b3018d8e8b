"""Policies every rendered overlay must keep: hardened containers with resources and probes, no token mounted,
no secret value in the repository, default-deny networking with only the gateway reachable from the Ingress,
TLS on the Ingress, and every Secret the manifests need documented in the runbook."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.deploy.support import (
    OVERLAYS,
    RUNBOOK,
    WORKLOAD_KINDS,
    by_kind,
    containers,
    ident,
    pod_spec,
    render,
)

SECRET_NAME = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|PRIVATE_KEY|API_KEY|CREDENTIAL|ACCESS_KEY", re.I)
REFERENCE = re.compile(r"^\$\([A-Za-z_][A-Za-z0-9_]*\)$")
URL_PASSWORD = re.compile(r"[a-z][a-z0-9+.-]*://[^/\s:@]*:([^@\s/]*)@", re.I)
INGRESS_NAMESPACE = "ingress-nginx"


def _workloads(overlay: str) -> list[dict[str, Any]]:
    return [r for r in render(overlay) if r["kind"] in WORKLOAD_KINDS]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_container_has_requests_and_limits(overlay: str) -> None:
    missing = []
    for c in containers(render(overlay)):
        resources = c.spec.get("resources", {})
        for section in ("requests", "limits"):
            for name in ("cpu", "memory"):
                if name not in resources.get(section, {}):
                    missing.append(f"{c.where}: no {section}.{name}")
    assert not missing, "\n".join(missing)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_long_running_container_has_probes(overlay: str) -> None:
    missing = []
    for c in containers(render(overlay)):
        if c.init or c.workload["kind"] in ("Job", "CronJob"):
            continue
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            if probe not in c.spec:
                missing.append(f"{c.where}: no {probe}")
    assert not missing, "\n".join(missing)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_container_runs_non_root_read_only_without_capabilities(overlay: str) -> None:
    problems = []
    for c in containers(render(overlay)):
        sc = c.spec.get("securityContext", {})
        pod_sc = c.pod.get("securityContext", {})
        if not sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot", False)):
            problems.append(f"{c.where}: runAsNonRoot is not true")
        if sc.get("runAsUser", pod_sc.get("runAsUser")) == 0:
            problems.append(f"{c.where}: runAsUser 0")
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{c.where}: allowPrivilegeEscalation is not false")
        if sc.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{c.where}: readOnlyRootFilesystem is not true")
        if sc.get("privileged"):
            problems.append(f"{c.where}: privileged")
        if "ALL" not in sc.get("capabilities", {}).get("drop", []):
            problems.append(f"{c.where}: capabilities do not drop ALL")
        if sc.get("capabilities", {}).get("add"):
            problems.append(f"{c.where}: adds capabilities")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pods_mount_no_service_account_token(overlay: str) -> None:
    problems = []
    for workload in _workloads(overlay):
        pod = pod_spec(workload)
        if pod.get("automountServiceAccountToken") is not False:
            problems.append(f"{ident(workload)}: automountServiceAccountToken is not false")
        if pod.get("serviceAccountName", "default") == "default":
            problems.append(f"{ident(workload)}: runs as the default ServiceAccount")
        if pod.get("hostNetwork") or pod.get("hostPID") or pod.get("hostIPC"):
            problems.append(f"{ident(workload)}: shares a host namespace")
    for account in by_kind(render(overlay), "ServiceAccount").values():
        if account.get("automountServiceAccountToken") is not False:
            problems.append(f"{ident(account)}: automountServiceAccountToken is not false")
    accounts = set(by_kind(render(overlay), "ServiceAccount"))
    for workload in _workloads(overlay):
        if pod_spec(workload).get("serviceAccountName") not in accounts:
            problems.append(f"{ident(workload)}: its ServiceAccount is not declared")
    assert not problems, "\n".join(problems)


def _literal_secret_problems(where: str, name: str, value: Any) -> list[str]:
    if not isinstance(value, str) or not value:
        return []
    problems = []
    if (
        SECRET_NAME.search(name)
        and not name.upper().endswith(("_FILE", "_FILES"))
        and not REFERENCE.match(value)
    ):
        problems.append(f"{where}: {name} holds a literal value (use a secretKeyRef)")
    for password in URL_PASSWORD.findall(value):
        if password and not REFERENCE.match(password):
            problems.append(f"{where}: {name} embeds a password in a URL (use $(VAR) from a secretKeyRef)")
    if "-----BEGIN" in value:
        problems.append(f"{where}: {name} holds a PEM block")
    return problems


def _strings(node: Any, path: str = "") -> list[tuple[str, str]]:
    if isinstance(node, dict):
        return [s for k, v in node.items() for s in _strings(v, f"{path}/{k}")]
    if isinstance(node, list):
        return [s for i, v in enumerate(node) for s in _strings(v, f"{path}/{i}")]
    return [(path, node)] if isinstance(node, str) else []


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_no_secret_value_is_committed(overlay: str) -> None:
    resources = render(overlay)
    problems = []
    for r in resources:
        if r["kind"] == "Secret" and (r.get("data") or r.get("stringData")):
            problems.append(f"{ident(r)} holds literal data: create it out of band (docs/operations.md)")
        if r["kind"] == "ConfigMap":
            for key, value in (r.get("data") or {}).items():
                problems += _literal_secret_problems(ident(r), key, value)
        for path, value in _strings(r):
            if "-----BEGIN" in value or re.search(r"\bsha256:[0-9a-f]{64}\b.*password", value, re.I):
                problems.append(f"{ident(r)} at {path}: key material")
    for c in containers(resources):
        for env in c.spec.get("env", []):
            problems += _literal_secret_problems(c.where, env["name"], env.get("value"))
    assert not problems, "\n".join(problems)


def test_the_secret_check_has_teeth() -> None:
    assert _literal_secret_problems("x", "SMTP_PASSWORD", "hunter2")
    assert _literal_secret_problems("x", "REDIS_URL", "redis://default:hunter2@redis:6379/0")
    assert _literal_secret_problems("x", "KEY", "-----BEGIN PRIVATE KEY-----")
    assert not _literal_secret_problems("x", "REDIS_URL", "redis://default:$(REDIS_PASSWORD)@redis:6379/0")
    assert not _literal_secret_problems("x", "JWT_PRIVATE_KEY_FILE", "/var/run/secrets/jwt/private.pem")
    assert not _literal_secret_problems("x", "IDENTITY_JWT_PREVIOUS_PUBLIC_KEY_FILES", "")


def _referenced_secrets(resources: tuple[dict[str, Any], ...]) -> set[str]:
    names: set[str] = set()
    for c in containers(resources):
        for env in c.spec.get("env", []):
            ref = env.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                names.add(ref["name"])
        for source in c.spec.get("envFrom", []):
            if "secretRef" in source:
                names.add(source["secretRef"]["name"])
    for workload in resources:
        if workload["kind"] in WORKLOAD_KINDS:
            for volume in pod_spec(workload).get("volumes", []):
                if "secret" in volume:
                    names.add(volume["secret"]["secretName"])
    for ingress in by_kind(resources, "Ingress").values():
        names |= {tls["secretName"] for tls in ingress["spec"].get("tls", [])}
    # Operator resources refer to Secrets as {name: ...} under keys like passwordSecret, secret, s3Credentials.
    for r in resources:
        if r["kind"] in ("Cluster", "ObjectStore"):
            for path, value in _strings(r.get("spec", {})):
                if re.search(r"(Secret|secret|Credentials/[^/]+)/name$", path):
                    names.add(value)
    return names


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_referenced_secret_is_documented_in_the_runbook(overlay: str) -> None:
    runbook = RUNBOOK.read_text()
    names = _referenced_secrets(render(overlay))
    assert "lk-pg-identity" in names and "lk-redis" in names, names
    undocumented = sorted(n for n in names if f"`{n}`" not in runbook)
    assert not undocumented, f"Secrets referenced but not described in {RUNBOOK.name}: {undocumented}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_deployment_has_a_disruption_budget_and_every_api_an_autoscaler(overlay: str) -> None:
    resources = render(overlay)
    budgets = by_kind(resources, "PodDisruptionBudget").values()
    autoscaled = {
        h["spec"]["scaleTargetRef"]["name"] for h in by_kind(resources, "HorizontalPodAutoscaler").values()
    }
    autoscaled |= {s["spec"]["scaleTargetRef"]["name"] for s in by_kind(resources, "ScaledObject").values()}
    problems = []
    for name, deployment in by_kind(resources, "Deployment").items():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        covering = [
            b
            for b in budgets
            if all(labels.get(k) == v for k, v in b["spec"]["selector"]["matchLabels"].items())
        ]
        if not covering:
            problems.append(f"Deployment/{name}: no PodDisruptionBudget")
        if labels.get("app.kubernetes.io/component") == "api" and name not in autoscaled:
            problems.append(f"Deployment/{name}: an API without a HorizontalPodAutoscaler")
        if name in autoscaled and "replicas" in deployment["spec"]:
            problems.append(f"Deployment/{name}: sets replicas although an autoscaler owns the count")
    assert not problems, "\n".join(problems)


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_is_default_deny_and_only_the_gateway_faces_the_ingress(overlay: str) -> None:
    policies = by_kind(render(overlay), "NetworkPolicy").values()
    deny = [
        p
        for p in policies
        if p["spec"]["podSelector"] == {}
        and set(p["spec"].get("policyTypes", [])) == {"Ingress", "Egress"}
        and not p["spec"].get("ingress")
        and not p["spec"].get("egress")
    ]
    assert deny, "no default-deny NetworkPolicy (empty podSelector, Ingress and Egress, no rules)"
    facing = []
    for p in policies:
        for rule in p["spec"].get("ingress", []):
            for peer in rule.get("from", []):
                ns = peer.get("namespaceSelector", {}).get("matchLabels", {})
                if ns.get("kubernetes.io/metadata.name") == INGRESS_NAMESPACE:
                    facing.append(p)
    assert facing
    for p in facing:
        selector = p["spec"]["podSelector"]["matchLabels"]
        assert selector in (
            {"app.kubernetes.io/name": "gateway", "app.kubernetes.io/component": "api"},
            {"acme.cert-manager.io/http01-solver": "true"},
        ), f"NetworkPolicy/{p['metadata']['name']} lets the Ingress controller reach {selector}"
    # Every pod of ours is selected by some policy granting it what it declares (no silent isolation).
    for deployment in by_kind(render(overlay), "Deployment").values():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        granted = [
            p["metadata"]["name"]
            for p in policies
            if p["spec"]["podSelector"] != {} and _selects(p["spec"]["podSelector"], labels)
        ]
        assert granted, (
            f"Deployment/{deployment['metadata']['name']}: no NetworkPolicy lets it talk to anything"
        )


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_ingress_is_tls_for_the_gateway_only(overlay: str) -> None:
    ingresses = list(by_kind(render(overlay), "Ingress").values())
    assert len(ingresses) == 1
    ingress = ingresses[0]
    assert ingress["metadata"]["annotations"].get("cert-manager.io/cluster-issuer")
    hosts = {h for tls in ingress["spec"]["tls"] for h in tls["hosts"]}
    assert all(tls.get("secretName") for tls in ingress["spec"]["tls"])
    for rule in ingress["spec"]["rules"]:
        assert rule["host"] in hosts, f"{rule['host']} is served without TLS"
        for path in rule["http"]["paths"]:
            assert path["backend"]["service"]["name"] == "gateway"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_images_are_versioned(overlay: str) -> None:
    problems = []
    for c in containers(render(overlay)):
        image = c.spec["image"]
        tag = image.rsplit("/", 1)[-1].partition(":")[2] if "@" not in image else "digest"
        if not tag or tag == "latest":
            problems.append(f"{c.where}: image {image} has no version")
    assert not problems, "\n".join(problems)

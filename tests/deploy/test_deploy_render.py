"""Every overlay renders, and every resource it renders is valid: built-in kinds against the pinned Kubernetes
version's schemas (kubernetes-validate), Strimzi / CloudNativePG / KEDA resources against the CRD schemas kept
in deploy/k8s/crds. Unknown fields are errors in both (like `kubectl apply --validate=strict`)."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from tests.deploy.support import (
    CRDS,
    K8S,
    KUBERNETES_VERSION,
    OVERLAYS,
    crd_schemas,
    group_of,
    ident,
    render,
    render_path,
)

# Groups whose schemas are CRDs kept in the repository; everything else must be a built-in kind.
CRD_GROUPS = {"kafka.strimzi.io", "postgresql.cnpg.io", "barmancloud.cnpg.io", "keda.sh"}
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders(overlay: str) -> None:
    resources = render(overlay)
    assert resources, f"{overlay} rendered nothing"
    names = [ident(r) for r in resources]
    duplicates = {n for n in names if names.count(n) > 1}
    assert not duplicates, f"{overlay} renders these twice: {sorted(duplicates)}"
    for r in resources:
        name = r["metadata"]["name"]
        assert len(name) <= 253 and DNS_SUBDOMAIN.match(name), f"{ident(r)}: not a DNS-1123 subdomain"
        if r["kind"] != "Namespace":
            assert r["metadata"].get("namespace") == "lk-portal", (
                f"{ident(r)} is not in the lk-portal namespace"
            )


def test_base_renders_on_its_own() -> None:
    assert render_path(K8S / "base")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_builtin_resources_validate_against_kubernetes(overlay: str) -> None:
    kubernetes_validate = pytest.importorskip(
        "kubernetes_validate",
        reason="kubernetes-validate is not installed: it belongs in the dev dependencies "
        "(locally: uv run --with kubernetes-validate pytest tests/deploy)",
    )
    errors = []
    for resource in render(overlay):
        if group_of(resource) in CRD_GROUPS:
            continue
        try:
            kubernetes_validate.validate(resource, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            errors.append(
                f"{ident(resource)} ({resource['apiVersion']}): no schema in Kubernetes {KUBERNETES_VERSION}"
            )
        except kubernetes_validate.ValidationError as exc:
            path = "/".join(str(p) for p in exc.absolute_path)
            errors.append(f"{ident(resource)} at /{path}: {exc.message}")
    assert not errors, f"{overlay}:\n" + "\n".join(errors)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_operator_resources_validate_against_their_crds(overlay: str) -> None:
    jsonschema = pytest.importorskip(
        "jsonschema", reason="jsonschema is not installed (it comes with kubernetes-validate)"
    )
    schemas = crd_schemas()
    errors = []
    checked = 0
    for resource in render(overlay):
        group = group_of(resource)
        if group not in CRD_GROUPS:
            continue
        version = resource["apiVersion"].split("/")[1]
        schema = schemas.get((group, version, resource["kind"]))
        if schema is None:
            errors.append(
                f"{ident(resource)}: no CRD for {resource['apiVersion']} {resource['kind']} in {CRDS}"
            )
            continue
        validator = jsonschema.Draft4Validator(schema)
        for error in validator.iter_errors(resource):
            path = "/".join(str(p) for p in error.absolute_path)
            errors.append(f"{ident(resource)} at /{path}: {error.message}")
        checked += 1
    assert not errors, f"{overlay}:\n" + "\n".join(errors)
    assert checked, f"{overlay} renders no operator resource"


def test_crd_schemas_reject_what_the_operators_would() -> None:
    """The schema conversion keeps its teeth: a typo, a wrong type and a missing field are all errors."""
    jsonschema = pytest.importorskip("jsonschema", reason="jsonschema is not installed")
    schema = crd_schemas()[("kafka.strimzi.io", "v1", "KafkaTopic")]
    good: dict[str, Any] = {
        "apiVersion": "kafka.strimzi.io/v1",
        "kind": "KafkaTopic",
        "metadata": {"name": "t"},
        "spec": {"partitions": 3, "replicas": 1, "config": {"retention.ms": -1}},
    }
    validator = jsonschema.Draft4Validator(schema)
    assert not list(validator.iter_errors(good))
    assert list(validator.iter_errors({**good, "spec": {**good["spec"], "partition": 3}}))
    assert list(validator.iter_errors({**good, "spec": {**good["spec"], "partitions": "three"}}))
    pool = jsonschema.Draft4Validator(crd_schemas()[("kafka.strimzi.io", "v1", "KafkaNodePool")])
    assert list(pool.iter_errors({**good, "kind": "KafkaNodePool", "spec": {"replicas": 1}}))
    keda = jsonschema.Draft4Validator(crd_schemas()[("keda.sh", "v1alpha1", "ScaledObject")])
    trigger = {"type": "kafka", "metadata": {"lagThreshold": 500}}
    so = {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": {"name": "w"}}
    assert list(keda.iter_errors({**so, "spec": {"scaleTargetRef": {"name": "w"}, "triggers": [trigger]}}))


def test_every_kept_crd_is_a_crd() -> None:
    for path in sorted(CRDS.rglob("*.yaml")):
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
        assert docs and all(d["kind"] == "CustomResourceDefinition" for d in docs), path

"""Every overlay renders, and every resource it renders is valid: built-in kinds against the pinned Kubernetes
version's schemas (kubernetes-validate); Strimzi and KEDA resources against their operators' CRDs, generated
from the operators' own API models and kept in deploy/k8s/crds; CloudNativePG resources against
CloudNativePG's API as published on npm (deploy/k8s/crds/cloudnative-pg/validate.mjs); the Barman Cloud
plugin's ObjectStore against both (its outer part is hand-written). Unknown fields are errors everywhere (like
`kubectl apply --validate=strict`). Provenance and versions: deploy/k8s/crds/README.md."""

from __future__ import annotations

import copy
import importlib
import re
import textwrap
from typing import Any

import pytest
import yaml

from tests.deploy.support import (
    CRDS,
    K8S,
    KUBERNETES_VERSION,
    OVERLAYS,
    RUNBOOK,
    Resource,
    by_kind,
    cnpg_kinds,
    cnpg_overlays,
    cnpg_resources,
    cnpg_validate,
    crd_files,
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


def _crd_errors(resource: Resource) -> list[str] | None:
    """Errors of `resource` against the CRD kept for its kind, or None if no CRD is kept for it."""
    jsonschema = importlib.import_module("jsonschema")  # comes with kubernetes-validate
    version = resource["apiVersion"].split("/")[1]
    schema = crd_schemas().get((group_of(resource), version, resource["kind"]))
    if schema is None:
        return None
    return [
        f"{ident(resource)} at /{'/'.join(str(p) for p in error.absolute_path)}: {error.message}"
        for error in jsonschema.Draft4Validator(schema).iter_errors(resource)
    ]


def _operator_resources(resources: tuple[Resource, ...]) -> list[Resource]:
    return [r for r in resources if group_of(r) in CRD_GROUPS]


def _cnpg_checked(resource: Resource) -> bool:
    return (resource["apiVersion"], resource["kind"]) in cnpg_kinds()


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_operator_resources_validate_against_their_crds(overlay: str) -> None:
    pytest.importorskip(
        "jsonschema", reason="jsonschema is not installed (it comes with kubernetes-validate)"
    )
    errors = []
    checked = 0
    for resource in _operator_resources(render(overlay)):
        found = _crd_errors(resource)
        if found is None:
            if not _cnpg_checked(resource):
                errors.append(
                    f"{ident(resource)}: nothing validates {resource['apiVersion']} {resource['kind']}: "
                    f"no CRD in {CRDS.relative_to(K8S.parents[1])}, and validate.mjs doesn't know it"
                )
            continue
        errors += found
        checked += 1
    assert not errors, f"{overlay}:\n" + "\n".join(errors)
    assert checked, f"{overlay} renders no resource with a kept CRD"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_cloudnative_pg_resources_validate_against_its_api(overlay: str) -> None:
    """Cluster and ScheduledBackup whole, ObjectStore's configuration: types, enums, required fields, patterns
    and unknown fields, against @kubernetes-models/cloudnative-pg (CloudNativePG's own API types)."""
    wanted = cnpg_resources(render(overlay))
    assert any(r["kind"] == "Cluster" for r in wanted), f"{overlay} renders no CloudNativePG Cluster"
    result = cnpg_overlays()[overlay]
    assert not result.errors, f"{overlay}:\n" + "\n".join(result.errors)
    assert sorted(result.checked) == sorted(ident(r) for r in wanted)


def test_the_cloudnative_pg_check_has_teeth() -> None:
    """A typo, a wrong type, a value outside an enum, a missing required field, an unknown field deep inside a
    list or in ObjectStore's configuration: each is reported, at its path."""
    resources = {
        r["kind"]: r for r in render("prod") if r["kind"] in ("Cluster", "ScheduledBackup", "ObjectStore")
    }
    cluster = copy.deepcopy(resources["Cluster"])
    cluster["spec"]["instance"] = 3
    cluster["spec"]["storage"]["sise"] = "1Gi"
    cluster["spec"]["managed"]["roles"][0]["logn"] = True
    cluster["spec"]["primaryUpdateStrategy"] = "automatic"
    cluster["spec"]["postgresql"]["parameters"]["work_mem"] = "64MB"  # a map: any key is fine
    cluster["spec"]["bootstrap"]["initdb"]["walSegmentSize"] = 2048
    backup = copy.deepcopy(resources["ScheduledBackup"])
    del backup["spec"]["cluster"]
    backup["spec"]["immediate"] = "yes"
    store = copy.deepcopy(resources["ObjectStore"])
    store["spec"]["configuration"]["s3Credentials"]["accessKeyId"]["nam"] = "x"
    store["spec"]["configuration"]["wal"]["compression"] = "rar"
    [result] = cnpg_validate([cluster, backup, store])
    errors = result.errors
    assert len(result.checked) == 3
    expected = [
        "Cluster/lk-pg at /spec/instance: unknown field",
        "Cluster/lk-pg at /spec/storage/sise: unknown field",
        "Cluster/lk-pg at /spec/managed/roles/0/logn: unknown field",
        "Cluster/lk-pg at /spec/primaryUpdateStrategy: must be equal to one of the allowed values",
        "Cluster/lk-pg at /spec/bootstrap/initdb/walSegmentSize: must be <= 1024",
        "ScheduledBackup/lk-pg-nightly at /spec: must have required property cluster",
        "ScheduledBackup/lk-pg-nightly at /spec/immediate: must be boolean",
        "ObjectStore/lk-pg-backups at /spec/configuration/s3Credentials/accessKeyId/nam: unknown field",
        "ObjectStore/lk-pg-backups at /spec/configuration/wal/compression: must be equal to one of",
    ]
    missing = [e for e in expected if not any(found.startswith(e) for found in errors)]
    assert not missing, f"not reported: {missing}\nreported: {errors}"
    assert len(errors) == len(expected), errors
    # ObjectStore's hand-written outer part: a typo, and upstream's CEL rule against a serverName there
    outer = _crd_errors({**store, "spec": {**store["spec"], "retention": "30d"}})
    assert outer and "retention" in outer[0], outer
    named = {**store["spec"]["configuration"], "serverName": "lk-pg"}
    assert _crd_errors({**store, "spec": {**store["spec"], "configuration": named}})


def test_runbook_examples_validate() -> None:
    """The operator resources the runbook asks people to write (e.g. the restore Cluster) are valid too."""
    blocks = re.findall(r"^( *)```yaml\n(.*?)^\1```", RUNBOOK.read_text(), re.S | re.M)
    docs = [d for _, block in blocks for d in yaml.safe_load_all(textwrap.dedent(block)) if d]
    examples = [d for d in docs if group_of(d) in CRD_GROUPS]
    assert any(d["kind"] == "Cluster" for d in examples), "the runbook's restore example is gone"
    errors = [e for d in examples if not _cnpg_checked(d) for e in _crd_errors(d) or [f"{ident(d)}: no CRD"]]
    [result] = cnpg_validate([d for d in examples if _cnpg_checked(d)])
    assert not errors + list(result.errors), "\n".join(errors + list(result.errors))


def test_scaled_objects_pass_kedas_admission_rules() -> None:
    """What KEDA's admission webhook and operator reject beyond the CRD schema, for a ScaledObject on its own
    (apis/keda/v1alpha1: ValidateTriggers, CheckReplicaCountBoundsAreValid, CheckFallbackValid, verifyName,
    and the CRD's CEL rule minReplicaCount <= maxReplicaCount, which jsonschema doesn't evaluate)."""
    problems = []
    for name, so in by_kind(render("prod"), "ScaledObject").items():
        spec = so["spec"]
        triggers = spec["triggers"]
        names = [t["name"] for t in triggers if t.get("name")]
        problems += [
            f"{name}: trigger name {n!r} repeats" for n in sorted({n for n in names if names.count(n) > 1})
        ]
        problems += [
            f"{name}: useCachedMetrics on a {t['type']} trigger"
            for t in triggers
            if t.get("useCachedMetrics") and t["type"] in ("cpu", "memory", "cron")
        ]
        high = spec.get("maxReplicaCount", 100)
        low = max(spec["minReplicaCount"], 1) if "minReplicaCount" in spec else 0  # GetHPAMinReplicas
        if low > high or spec.get("minReplicaCount", 0) > high:
            problems.append(f"{name}: minReplicaCount {spec.get('minReplicaCount')} > maxReplicaCount {high}")
        if "idleReplicaCount" in spec and spec["idleReplicaCount"] >= low:
            problems.append(f"{name}: idleReplicaCount must be below minReplicaCount")
        if "fallback" in spec and all(t["type"] in ("cpu", "memory") for t in triggers):
            problems.append(f"{name}: a fallback needs a trigger other than cpu or memory")
        hpa = (
            spec.get("advanced", {}).get("horizontalPodAutoscalerConfig", {}).get("name")
            or f"keda-hpa-{name}"
        )
        if len(name) > 63 or len(hpa) > 63:
            problems.append(f"{name}: the ScaledObject's or its HPA's name is longer than a label value (63)")
    assert not problems, "\n".join(problems)


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
    trigger = {"type": "kafka", "metadata": {"lagThreshold": "500"}}
    so = {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": {"name": "w"}}
    spec = {"scaleTargetRef": {"name": "w"}, "triggers": [trigger]}
    assert not list(keda.iter_errors({**so, "spec": spec}))
    # trigger metadata is a map of strings upstream: numbers must be quoted
    number = {**trigger, "metadata": {"lagThreshold": 500}}
    assert list(keda.iter_errors({**so, "spec": {**spec, "triggers": [number]}}))
    assert list(keda.iter_errors({**so, "spec": {**spec, "trigers": []}}))


def test_every_kept_crd_is_a_crd() -> None:
    for path in crd_files():
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
        assert docs and all(d["kind"] == "CustomResourceDefinition" for d in docs), path

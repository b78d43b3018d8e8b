"""What the deploy tests share: rendering the overlays, the operators' schemas, the workspace's own facts.

Offline: `kubectl kustomize` (or `kustomize build`) renders; kubernetes-validate, jsonschema (over the CRDs
kept in deploy/k8s/crds) and node (deploy/k8s/crds/cloudnative-pg/validate.mjs) validate; everything else is
read from the repository. The one exception: the first run installs validate.mjs's pinned npm packages.
"""

from __future__ import annotations

import functools
import json
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ("dev", "prod")
CRDS = K8S / "crds"
RUNBOOK = ROOT / "docs" / "operations.md"
PROCFILE = ROOT / "deploy" / "local" / "Procfile"

# The Kubernetes version the built-in resources are validated against (kubernetes-validate's schemas).
KUBERNETES_VERSION = "1.33"
# Our overlays use Components and inline JSON patches: kustomize v5 (kubectl 1.27+ embeds it).
MIN_KUSTOMIZE = (5, 0)

WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob")

Resource = dict[str, Any]


# --- rendering ------------------------------------------------------------------------------------------


def _version(text: str) -> tuple[int, ...]:
    match = re.search(r"v?(\d+)\.(\d+)", text)
    return (int(match.group(1)), int(match.group(2))) if match else (0, 0)


@functools.cache
def kustomize_command() -> tuple[str, ...]:
    """`kubectl kustomize` when its embedded kustomize is recent enough, else a standalone `kustomize build`."""
    problems = []
    if shutil.which("kubectl"):
        out = subprocess.run(
            ["kubectl", "version", "--client", "-o", "json"], capture_output=True, text=True, check=False
        )
        try:
            embedded = json.loads(out.stdout).get("kustomizeVersion", "")
        except ValueError:
            embedded = ""
        if _version(embedded) >= MIN_KUSTOMIZE:
            return ("kubectl", "kustomize")
        problems.append(f"kubectl embeds kustomize {embedded or '(unknown)'}")
    else:
        problems.append("no kubectl on PATH")
    if shutil.which("kustomize"):
        out = subprocess.run(["kustomize", "version"], capture_output=True, text=True, check=False)
        if _version(out.stdout) >= MIN_KUSTOMIZE:
            return ("kustomize", "build")
        problems.append(f"kustomize {out.stdout.strip()}")
    pytest.fail(
        "rendering the manifests needs kustomize >= v5: kubectl >= 1.27 (`kubectl kustomize`) or a `kustomize` "
        "binary (`go install sigs.k8s.io/kustomize/kustomize/v5@latest`). Found: " + "; ".join(problems)
    )


@functools.cache
def render_path(path: Path) -> tuple[Resource, ...]:
    out = subprocess.run(
        [*kustomize_command(), str(path)], capture_output=True, text=True, check=False, timeout=120
    )
    if out.returncode != 0:
        pytest.fail(f"{' '.join(kustomize_command())} {path.relative_to(ROOT)} failed:\n{out.stderr}")
    return tuple(doc for doc in yaml.safe_load_all(out.stdout) if doc)


def render(overlay: str) -> tuple[Resource, ...]:
    return render_path(K8S / "overlays" / overlay)


def by_kind(resources: tuple[Resource, ...], kind: str) -> dict[str, Resource]:
    return {r["metadata"]["name"]: r for r in resources if r["kind"] == kind}


def ident(resource: Resource) -> str:
    return f"{resource['kind']}/{resource['metadata']['name']}"


def group_of(resource: Resource) -> str:
    api = str(resource["apiVersion"])
    return api.split("/")[0] if "/" in api else ""


# --- pods and containers ---------------------------------------------------------------------------------


def pod_spec(workload: Resource) -> Resource:
    spec = workload["spec"]
    if workload["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return dict(spec["template"]["spec"])


@dataclass(frozen=True)
class Container:
    workload: Resource
    pod: Resource
    spec: Resource
    init: bool

    @property
    def where(self) -> str:
        return f"{ident(self.workload)} container {self.spec['name']}"


def containers(resources: tuple[Resource, ...]) -> Iterator[Container]:
    for workload in resources:
        if workload["kind"] not in WORKLOAD_KINDS:
            continue
        pod = pod_spec(workload)
        for c in pod.get("initContainers", []):
            yield Container(workload, pod, c, True)
        for c in pod.get("containers", []):
            yield Container(workload, pod, c, False)


# --- CRD schemas -------------------------------------------------------------------------------------------


def _strict(schema: Any, *, in_combinator: bool = False) -> Any:
    """OpenAPI v3 (structural) -> JSON Schema, rejecting unknown fields the way `--validate=strict` does."""
    if isinstance(schema, list):
        return [_strict(s, in_combinator=in_combinator) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in ("oneOf", "anyOf", "allOf", "not"):
            out[key] = _strict(value, in_combinator=True)
        elif key == "properties":
            out[key] = {name: _strict(sub) for name, sub in value.items()}
        elif key in ("items", "additionalProperties"):
            out[key] = _strict(value)
        elif key.startswith("x-kubernetes-") or key in ("description", "format", "default", "example"):
            continue
        else:
            out[key] = value
    if schema.get("nullable"):
        out.pop("nullable", None)
        if "type" in out:
            out["type"] = [out["type"], "null"]
    if schema.get("x-kubernetes-int-or-string") and "anyOf" not in schema:
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    preserve = schema.get("x-kubernetes-preserve-unknown-fields", False)
    if "properties" in schema and "additionalProperties" not in schema and not preserve and not in_combinator:
        out["additionalProperties"] = False
    return out


def crd_files() -> list[Path]:
    """Every YAML file kept under deploy/k8s/crds (not what npm installed there)."""
    return sorted(p for p in CRDS.rglob("*.yaml") if "node_modules" not in p.relative_to(CRDS).parts)


@functools.cache
def crd_schemas() -> dict[tuple[str, str, str], dict[str, Any]]:
    """(group, version, kind) -> JSON Schema, from every CRD kept under deploy/k8s/crds."""
    schemas: dict[tuple[str, str, str], dict[str, Any]] = {}
    for path in crd_files():
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc or doc.get("kind") != "CustomResourceDefinition":
                continue
            spec = doc["spec"]
            for version in spec["versions"]:
                if version.get("served", True):
                    key = (spec["group"], version["name"], spec["names"]["kind"])
                    schemas[key] = _strict(version["schema"]["openAPIV3Schema"])
    return schemas


# --- CloudNativePG's API, from npm ----------------------------------------------------------------------

# A pinned Node project (package.json + package-lock.json): @kubernetes-models/cloudnative-pg's validators and
# types, and validate.mjs, which applies them (deploy/k8s/crds/README.md). `npm ci` installs node_modules
# there (git-ignored) the first time and whenever the lock changes; after that the check is offline.
CNPG_VALIDATOR = CRDS / "cloudnative-pg"


def _run(cmd: list[str], *, what: str, stdin: str | None = None, timeout: int = 120) -> str:
    if shutil.which(cmd[0]) is None:
        pytest.fail(
            f"{what} needs `{cmd[0]}` on PATH (Node.js 20+ with npm; Debian: apt-get install nodejs npm)",
            pytrace=False,
        )
    try:
        out = subprocess.run(
            cmd, cwd=CNPG_VALIDATOR, input=stdin, capture_output=True, text=True, check=False, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        out = None
    if out is None:
        pytest.fail(f"{what}: `{' '.join(cmd)}` did not finish in {timeout} s", pytrace=False)
    if out.returncode != 0:
        pytest.fail(f"{what}: `{' '.join(cmd)}` failed ({out.returncode}):\n{out.stderr}{out.stdout}")
    return out.stdout


@functools.cache
def cnpg_validator() -> Path:
    """The validator, its pinned npm dependencies installed (`npm ci`, once per lock file)."""
    import fcntl
    import hashlib
    import tempfile

    lock = (CNPG_VALIDATOR / "package-lock.json").read_bytes()
    digest = hashlib.sha256(lock + (CNPG_VALIDATOR / "package.json").read_bytes()).hexdigest()
    stamp = CNPG_VALIDATOR / "node_modules" / ".lk-portal-lock-sha256"
    guard = (
        Path(tempfile.gettempdir())
        / f"lk-portal-npm-{hashlib.sha256(bytes(CNPG_VALIDATOR)).hexdigest()[:12]}"
    )
    _run(["node", "--version"], what="the CloudNativePG validator")
    with guard.open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # concurrent test runs install once
        if not (stamp.is_file() and stamp.read_text().strip() == digest):
            _run(
                ["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--prefer-offline"],
                what="installing the CloudNativePG validator's npm packages (npm registry)",
                timeout=240,  # below pytest-timeout's 300 s, so a stuck install fails with this message
            )
            stamp.write_text(digest + "\n")
    return CNPG_VALIDATOR / "validate.mjs"


@functools.cache
def cnpg_kinds() -> frozenset[tuple[str, str]]:
    """The (apiVersion, kind) pairs validate.mjs checks against CloudNativePG's API."""
    out = json.loads(_run(["node", str(cnpg_validator()), "--kinds"], what="the CloudNativePG validator"))
    return frozenset((k.rsplit("/", 1)[0], k.rsplit("/", 1)[1]) for k in out)


@dataclass(frozen=True)
class CnpgResult:
    checked: tuple[str, ...]  # kind/name of every resource validated
    errors: tuple[str, ...]


def cnpg_validate(*batches: list[Resource]) -> list[CnpgResult]:
    """Each batch of resources against CloudNativePG's API (validate.mjs), in one run of node."""
    out = _run(
        ["node", str(cnpg_validator())],
        what="the CloudNativePG validator",
        stdin=json.dumps({"batches": list(batches)}),
    )
    results = json.loads(out)["results"]
    return [CnpgResult(tuple(r["checked"]), tuple(r["errors"])) for r in results]


def cnpg_resources(resources: tuple[Resource, ...]) -> list[Resource]:
    """The resources validate.mjs checks."""
    return [r for r in resources if (r["apiVersion"], r["kind"]) in cnpg_kinds()]


@functools.cache
def cnpg_overlays() -> dict[str, CnpgResult]:
    """Overlay -> the result for its CloudNativePG resources (all overlays in one run)."""
    return dict(zip(OVERLAYS, cnpg_validate(*(cnpg_resources(render(o)) for o in OVERLAYS)), strict=True))


# --- the workspace ---------------------------------------------------------------------------------------


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@functools.cache
def services() -> tuple[str, ...]:
    """Every service of the code: a directory under services/ with a pyproject.toml."""
    return tuple(sorted(p.parent.name for p in (ROOT / "services").glob("*/pyproject.toml")))


@functools.cache
def workspace_members() -> dict[str, Path]:
    """Distribution name (normalized) -> member directory, for every uv workspace member."""
    members: dict[str, Path] = {}
    globs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["uv"]["workspace"]["members"]
    for pattern in globs:
        for directory in sorted(ROOT.glob(pattern)):
            manifest = directory / "pyproject.toml"
            if manifest.is_file():
                members[_norm(tomllib.loads(manifest.read_text())["project"]["name"])] = directory
    return members


@functools.cache
def _lock() -> dict[str, dict[str, Any]]:
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    return {_norm(p["name"]): p for p in lock["package"]}


def runtime_closure(distribution: str) -> frozenset[str]:
    """The distributions `uv sync --frozen --no-dev --package <distribution>` installs (normalized names)."""
    packages = _lock()
    seen: set[str] = set()
    stack = [_norm(distribution)]
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        for dep in packages[name].get("dependencies", []):
            dep_name = _norm(dep["name"])
            stack.append(dep_name)
            for extra in dep.get("extra", []):
                stack += [
                    _norm(d["name"]) for d in packages[dep_name].get("optional-dependencies", {})[extra]
                ]
    return frozenset(seen)


def member_packages(member_dir: Path) -> list[str]:
    """The import packages a workspace member ships (hatch's wheel `packages`)."""
    data = tomllib.loads((member_dir / "pyproject.toml").read_text())
    paths = data.get("tool", {}).get("hatch", {}).get("build", {}).get("targets", {}).get("wheel", {})
    return [Path(p).name for p in paths.get("packages", [])]


def third_party_imports(package_dir: Path) -> dict[str, set[str]]:
    """Top-level modules imported by a package's source (absolute imports), with the files importing them."""
    import ast

    found: dict[str, set[str]] = {}
    for path in sorted(package_dir.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names:
                    found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


@functools.cache
def procfile() -> dict[str, str]:
    entries = {}
    for line in PROCFILE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, command = line.partition(":")
            entries[name.strip()] = command.strip()
    return entries


# --- .dockerignore -----------------------------------------------------------------------------------------


def _pattern(pattern: str) -> re.Pattern[str]:
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            out, i = out + pattern[i : end + 1], end + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(f"^{out}$")


@functools.cache
def _dockerignore() -> tuple[tuple[bool, re.Pattern[str]], ...]:
    rules = []
    for raw in (ROOT / ".dockerignore").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        line = line.lstrip("!").strip().strip("/")
        rules.append((negate, _pattern(line)))
    return tuple(rules)


def docker_ignored(path: str) -> bool:
    """Whether Docker leaves `path` (relative to the repo root) out of the build context: the last matching
    rule wins, and a rule matching a directory covers everything below it (moby/patternmatcher)."""
    parts = path.strip("/").split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for negate, rx in _dockerignore():
        if any(rx.match(c) for c in candidates):
            ignored = not negate
    return ignored

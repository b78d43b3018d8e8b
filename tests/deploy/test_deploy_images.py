"""The container images (services/*/Dockerfile, gateway/Dockerfile), checked without a Docker engine: built
from the lock with uv, only the workspace members a service imports, pinned bases, a numeric non-root user,
a healthcheck, no secret, WeasyPrint's libraries where PDFs are rendered, and a build context that leaves
tests, virtualenvs and local state out. And what `uv sync --package <service>` installs really provides
every third-party module the service's code imports (else the image fails at its first import)."""

from __future__ import annotations

import re
import shlex
import warnings
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

from tests.deploy.support import (
    ROOT,
    _norm,
    docker_ignored,
    member_packages,
    procfile,
    runtime_closure,
    services,
    third_party_imports,
    workspace_members,
)

WEASYPRINT_LIBS = ("libpango-1.0-0", "libpangoft2-1.0-0", "fonts-dejavu-core")

# Imports the images can't satisfy yet because the service's pyproject.toml doesn't declare the distribution
# (the dev venv has the whole workspace, so only an image notices). Each entry is a real bug for the owner
# of that pyproject.toml: add the dependency, `uv lock`, and delete the entry here (a stale entry only warns,
# so the owner's fix never breaks this test).
KNOWN_UNDECLARED: set[tuple[str, str]] = set()  # every image declares what it imports


def _images() -> dict[str, Path]:
    images = {svc: ROOT / "services" / svc for svc in services()}
    images["gateway"] = ROOT / "gateway"
    return images


def _logical_lines(dockerfile: Path) -> list[str]:
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    return [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]


def _stages(dockerfile: Path) -> dict[str, list[str]]:
    stages: dict[str, list[str]] = {}
    current = ""
    for line in _logical_lines(dockerfile):
        if line.upper().startswith("FROM "):
            words = line.split()
            current = words[-1] if len(words) >= 4 and words[-2].upper() == "AS" else words[1]
            stages[current] = []
        elif current:
            stages[current].append(line)
    return stages


def _workspace_closure(distribution: str) -> dict[str, Path]:
    members = workspace_members()
    return {name: path for name, path in members.items() if name in runtime_closure(distribution)}


@pytest.mark.parametrize("name", sorted(_images()))
def test_image_is_built_from_the_lock_with_only_its_members(name: str) -> None:
    directory = _images()[name]
    dockerfile = directory / "Dockerfile"
    assert dockerfile.is_file(), f"{dockerfile.relative_to(ROOT)} is missing"
    stages = _stages(dockerfile)
    assert len(stages) >= 2, "not a multi-stage build"
    builder = "\n".join(stages.get("builder", []))
    syncs = [line for line in builder.splitlines() if "uv sync" in line]
    assert syncs, "the builder doesn't run uv sync"
    for line in syncs:
        assert "--frozen" in line and "--no-dev" in line and f"--package {name}" in line, line
    copied: set[str] = set()
    for line in stages["builder"]:
        if line.startswith("COPY ") and "--from" not in line:
            *sources, _ = shlex.split(line)[1:]
            for source in sources:
                assert source not in (".", "./"), "copies the whole context"
                copied.add(source.rstrip("/"))
    assert {"pyproject.toml", "uv.lock"} <= copied
    needed = {p.relative_to(ROOT).as_posix() for p in _workspace_closure(name).values()}
    assert needed <= copied, f"missing workspace members: {sorted(needed - copied)}"
    extra = {c for c in copied if not c.endswith("pyproject.toml") and c not in ("uv.lock",)} - needed
    assert not extra, f"copies more than it needs: {sorted(extra)}"
    for source in copied:
        assert not docker_ignored(source), f"{source} is excluded by .dockerignore"


@pytest.mark.parametrize("name", sorted(_images()))
def test_image_runs_non_root_with_a_healthcheck_and_pinned_bases(name: str) -> None:
    dockerfile = _images()[name] / "Dockerfile"
    lines = _logical_lines(dockerfile)
    stages = _stages(dockerfile)
    runtime = stages[list(stages)[-1]]
    args = {m.group(1): m.group(2) for line in lines if (m := re.match(r"ARG\s+(\w+)=(\S+)", line))}
    for line in lines:
        if line.upper().startswith("FROM "):
            image = line.split()[1]
            image = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), image)
            if image in stages:
                continue
            tag = image.rpartition(":")[2]
            assert re.fullmatch(r"\d+\.\d+\.\d+(-[\w.-]+)?(@sha256:[0-9a-f]{64})?", tag), (
                f"unpinned base {image}"
            )
    users = [line.split()[1] for line in runtime if line.upper().startswith("USER ")]
    assert users, "the runtime stage has no USER"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0, f"USER {users[-1]}: must be a numeric non-root uid"
    assert any(line.upper().startswith("HEALTHCHECK ") for line in runtime), "no HEALTHCHECK"
    for line in lines:
        if re.match(r"(ENV|ARG)\s", line, re.I):
            assert not re.search(r"PASSWORD|SECRET|TOKEN|PRIVATE_KEY", line, re.I), (
                f"secret-like setting: {line}"
            )


@pytest.mark.parametrize("name", sorted(_images()))
def test_image_default_command_and_port_match_the_procfile(name: str) -> None:
    dockerfile = _images()[name] / "Dockerfile"
    runtime = _stages(dockerfile)[list(_stages(dockerfile))[-1]]
    process = "gateway" if name == "gateway" else f"{name}-api"
    expected = shlex.split(procfile()[process])
    expected = expected[2:] if expected[:2] == ["uv", "run"] else expected
    port = expected[expected.index("--port") + 1]
    cmd = [line for line in runtime if line.startswith("CMD ")][-1]
    assert f'"{expected[1]}"' in cmd and f'"{port}"' in cmd, cmd
    assert f"EXPOSE {port}" in runtime
    assert any(f"127.0.0.1:{port}/healthz" in line for line in runtime if line.startswith("HEALTHCHECK"))


@pytest.mark.parametrize("name", sorted(_images()))
def test_images_that_render_pdfs_have_weasyprints_libraries(name: str) -> None:
    directory = _images()[name]
    imports = set()
    for member in _workspace_closure(name).values():
        for package in member_packages(member):
            imports |= set(third_party_imports(member / package))
    runtime = " ".join(_stages(directory / "Dockerfile")[list(_stages(directory / "Dockerfile"))[-1]])
    if "weasyprint" in imports:
        for lib in WEASYPRINT_LIBS:
            assert lib in runtime, f"{name} renders PDFs with WeasyPrint but its runtime stage lacks {lib}"
    else:
        assert "libpango" not in runtime, f"{name} doesn't use WeasyPrint: drop Pango from its image"


def test_every_import_is_installed_by_the_image() -> None:
    distributions = {top: {_norm(d) for d in dists} for top, dists in packages_distributions().items()}
    members = workspace_members()
    for name, path in members.items():  # editable installs don't show up in packages_distributions()
        for package in member_packages(path):
            distributions[package] = {name}
    found: set[tuple[str, str]] = set()
    unknown = []
    for name, directory in _images().items():
        closure = runtime_closure(name)
        for package in member_packages(directory):
            for module, files in third_party_imports(directory / package).items():
                if module == package:
                    continue
                owners = distributions.get(module)
                if owners is None:
                    unknown.append(
                        f"{name}: no installed distribution provides {module} ({sorted(files)[0]})"
                    )
                elif not owners & closure:
                    found.add((name, module))
    assert not unknown, "\n".join(unknown)
    new = found - KNOWN_UNDECLARED
    assert not new, (
        "the image would fail to import these (declare them in the service's pyproject.toml): "
        + ", ".join(f"{s}: {m}" for s, m in sorted(new))
    )
    fixed = KNOWN_UNDECLARED - found
    if fixed:  # fixed by the owner in the meantime: only a reminder, so their fix never breaks this test
        warnings.warn(f"fixed, drop them from KNOWN_UNDECLARED: {sorted(fixed)}", stacklevel=1)


def test_build_context_leaves_out_tests_and_local_state() -> None:
    for path in (
        ".local/stack.env",
        ".venv/bin/python",
        "tests/e2e/x.py",
        "services/ledger/tests/unit/x.py",
        "artifacts/x",
        "libs/contracts/contracts/__pycache__/x.pyc",
        ".mypy_cache/x",
        "docs/x.md",
        "calculator-rating-data/x",
        "gateway/gateway_tests/x.py",
        ".git/config",
    ):
        assert docker_ignored(path), f"{path} would be in the build context"
    for path in (
        "uv.lock",
        "pyproject.toml",
        "libs/service_runtime/service_runtime/app.py",
        "services/identity/migrations/versions/0001_runtime.py",
        "services/ledger/ledger/templates/x.html",
        "gateway/gateway/api.py",
    ):
        assert not docker_ignored(path), f"{path} would be missing from the build context"

"""deploy/: what can be checked without a Docker daemon or a cluster. The compose file has the
compose spec's shape and its parts refer to each other; every manifest has the fields
Kubernetes requires and its selectors, secrets and services line up; the image installs with
the workspace's own command (checked against uv.lock) and runs ``aigent serve`` with options
the command has. Building the image and running it are not tested here."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).parents[2]
DEPLOY = ROOT / "deploy"

# The compose specification's top-level and service keys (compose-spec/schema, the ones a file
# may hold; x- extensions are allowed anywhere).
TOP = {"version", "name", "include", "services", "networks", "volumes", "secrets", "configs"}
SERVICE = {
    "build", "image", "command", "entrypoint", "environment", "env_file", "ports", "volumes",
    "depends_on", "restart", "healthcheck", "hostname", "networks", "deploy", "secrets",
    "configs", "user", "working_dir", "labels", "expose", "profiles", "container_name",
    "stop_grace_period", "stop_signal", "ulimits", "logging", "extra_hosts", "init",
}  # fmt: skip
CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text(encoding="utf-8"))
    return data


def manifests() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        docs.extend(d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d)
    return docs


def serve_options() -> set[str]:
    # The command as installed (plugins add it through an entry point), asked for its help.
    done = subprocess.run(
        [sys.executable, "-m", "aigent.cli", "serve", "--help"],
        capture_output=True, text=True, timeout=60, env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return set(re.findall(r"(--[a-z][a-z0-9-]*)", done.stdout))


def check_serve_args(args: list[str], where: str) -> None:
    known = serve_options()
    for arg in args:
        if arg.startswith("--"):
            assert arg in known, f"{where}: aigent serve has no option {arg}"
    assert args[args.index("--host") + 1] == "0.0.0.0", f"{where}: listen beyond loopback"


def test_compose_has_the_spec_shape_and_its_references_hold() -> None:
    data = compose()
    assert set(k for k in data if not k.startswith("x-")) <= TOP
    services: dict[str, Any] = data["services"]
    volumes = set(data.get("volumes") or {})
    for name, service in services.items():
        assert set(k for k in service if not k.startswith("x-")) <= SERVICE, name
        assert "image" in service or "build" in service, name
        for target in service.get("depends_on", {}):
            assert target in services, f"{name} depends on unknown {target}"
            assert service["depends_on"][target]["condition"] in CONDITIONS
        for mount in service.get("volumes", []):
            source = mount.split(":")[0]
            assert source.startswith((".", "/")) or source in volumes, f"{name}: {source}"
        for port in service.get("ports", []):
            assert re.fullmatch(r"\d+:\d+", port), port
        environment = service.get("environment", {})
        assert isinstance(environment, dict), f"{name}: environment as a mapping"
    aigents = {n: s for n, s in services.items() if s.get("build")}
    assert len(aigents) == 2, "two aigent serve replicas"
    urls = {s["environment"]["AIGENT_SERVE_DATABASE_URL"] for s in aigents.values()}
    assert len(urls) == 1, "the replicas share one database"
    (url,) = urls
    host = url.split("@")[1].split(":")[0]
    assert host in services and ":" not in url.split("//")[1].split("@")[0], "no password in it"
    chroma = {s["environment"]["CHROMA_URL"] for s in aigents.values()}
    assert {u.split("//")[1].split(":")[0] for u in chroma} <= set(services)
    assert services["chroma"]["image"].startswith("chromadb/chroma:")
    assert any(m.startswith("postgres-data:") for m in services["postgres"]["volumes"])
    # Secrets from the environment, never written in the file.
    text = (DEPLOY / "compose.yaml").read_text(encoding="utf-8")
    for secret in ("AIGENT_SERVE_TOKEN", "POSTGRES_PASSWORD"):
        assert f"${{{secret}:?" in text, f"{secret} must come from the environment"
    build = next(iter(aigents.values()))["build"]
    assert (DEPLOY / build["context"] / build["dockerfile"]).resolve() == DEPLOY / "Dockerfile"


def test_manifests_have_the_required_fields_and_line_up() -> None:
    docs = manifests()
    kinds = [d["kind"] for d in docs]
    assert sorted(kinds) == ["Deployment", "Secret", "Service", "Service", "Service",
                             "StatefulSet", "StatefulSet"]  # fmt: skip
    for doc in docs:
        assert doc["apiVersion"] and doc["metadata"]["name"], doc
    workloads = [d for d in docs if d["kind"] in ("Deployment", "StatefulSet")]
    services = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Service"}
    (secret,) = [d for d in docs if d["kind"] == "Secret"]
    for workload in workloads:
        spec = workload["spec"]
        assert workload["apiVersion"] == "apps/v1"
        labels = spec["template"]["metadata"]["labels"]
        assert spec["selector"]["matchLabels"].items() <= labels.items(), "selector must match"
        for container in spec["template"]["spec"]["containers"]:
            assert container["name"] and container["image"]
            mounts = {v["name"] for v in spec["template"]["spec"].get("volumes", [])}
            mounts |= {c["metadata"]["name"] for c in spec.get("volumeClaimTemplates", [])}
            for mount in container.get("volumeMounts", []):
                assert mount["name"] in mounts, f"{workload['metadata']['name']}: {mount}"
            for ref in container.get("envFrom", []):
                assert ref["secretRef"]["name"] == secret["metadata"]["name"]
            for env in container.get("env", []):
                key = env.get("valueFrom", {}).get("secretKeyRef")
                if key:
                    assert key["name"] == secret["metadata"]["name"]
                    assert key["key"] in secret["stringData"], key
        if workload["kind"] == "StatefulSet":
            assert spec["serviceName"] in services
    for service in services.values():
        selector = service["spec"]["selector"].items()
        assert any(
            selector <= w["spec"]["template"]["metadata"]["labels"].items() for w in workloads
        ), f"service {service['metadata']['name']} selects nothing"
    (aigent,) = [w for w in workloads if w["kind"] == "Deployment"]
    assert aigent["spec"]["replicas"] == 2
    container = aigent["spec"]["template"]["spec"]["containers"][0]
    check_serve_args(container["args"], "k8s/aigent.yaml")
    # Pods reach each other by IP: the one given to --advertise-url must be the pod's own.
    advertised = container["args"][container["args"].index("--advertise-url") + 1]
    assert "$(POD_IP)" in advertised, advertised
    env = {e["name"]: e for e in container["env"]}
    assert env["POD_IP"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
    assert container["readinessProbe"]["httpGet"]["path"] == "/api/health"
    env = {e["name"]: e.get("value") for e in container["env"]}
    for name in ("AIGENT_SERVE_DATABASE_URL", "CHROMA_URL"):
        host = env[name].split("@")[-1].split("//")[-1].split(":")[0]
        assert host in services, f"{name} names no service"
    assert {"AIGENT_SERVE_TOKEN", "PGPASSWORD"} <= set(secret["stringData"])


def dockerfile() -> dict[str, list[str]]:
    text = (DEPLOY / "Dockerfile").read_text(encoding="utf-8").replace("\\\n", " ")
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            word, _, rest = line.strip().partition(" ")
            found.setdefault(word, []).append(rest.strip())
    return found


def exec_form(value: str) -> list[str]:
    parsed = yaml.safe_load(value)  # a JSON array is YAML
    assert isinstance(parsed, list), f"exec form expected: {value}"
    return [str(p) for p in parsed]


def test_the_image_runs_aigent_serve_as_a_user_with_a_health_check() -> None:
    found = dockerfile()
    assert found["FROM"][0].startswith("python:") and "slim" in found["FROM"][0]
    assert found["USER"] and found["USER"][-1] not in ("root", "0")
    assert exec_form(found["ENTRYPOINT"][-1]) == ["aigent", "serve"]
    check_serve_args(exec_form(found["CMD"][-1]), "Dockerfile CMD")
    assert "/api/health" in found["HEALTHCHECK"][-1]
    (install,) = [r for r in found["RUN"] if "uv sync" in r]
    # The README's and CI's install (`uv run --all-packages`), from the lock file.
    assert "--all-packages" in install and "--frozen" in install


def test_the_images_install_resolves_from_the_lock_file() -> None:
    (install,) = [r for r in dockerfile()["RUN"] if "uv sync" in r]
    flags = [w for w in shlex.split(install.split("&&")[0]) if w.startswith("--")]
    if shutil.which("uv") is None:
        done = subprocess.run([sys.executable, "-m", "uv", "--version"], capture_output=True)
        if done.returncode != 0:
            pytest.skip("uv is not installed here")
        uv = [sys.executable, "-m", "uv"]
    else:
        uv = ["uv"]
    # Same flags, resolved against uv.lock without installing: --frozen fails if it is stale.
    done = subprocess.run(
        [*uv, "export", *flags, "--no-hashes"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    for package in ("psycopg", "uvicorn", "chromadb", "fastapi"):
        assert re.search(rf"^{package}(\[[^\]]*\])?==", done.stdout, re.M), package
    assert "pytest==" not in done.stdout, "no test tools in the image"

"""Helpers and fixtures of the deploy tests: locating helm / promql-check, rendering the chart.

The tools come from `scripts/install-deploy-tools.sh`. A missing tool FAILS the tests with the
command to run: the chart is only validated if helm really renders it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "deploy" / "helm" / "liqwatch"
EXAMPLE_VALUES = REPO / "deploy" / "helm" / "examples" / "values-production.yaml"
METRICS_FILE = REPO / "deploy" / "metrics.yaml"
TABLES_FILE = REPO / "deploy" / "tables.yaml"
DASHBOARD_FILE = REPO / "deploy" / "grafana" / "liqwatch.json"
TOOLS_CACHE = Path.home() / ".cache" / "liqwatch" / "bin"
INSTALL_HINT = "run scripts/install-deploy-tools.sh (it builds the pinned tools with go install)"

Manifest = dict[str, Any]


def find_tool(name: str, env_var: str) -> Path:
    """The tool from $env_var, PATH or the install script's cache dir; fail if absent."""
    candidates = [os.environ.get(env_var), shutil.which(name), str(TOOLS_CACHE / name)]
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return Path(candidate)
    pytest.fail(f"{name} not found (${env_var}, PATH, {TOOLS_CACHE}): {INSTALL_HINT}")


@dataclass(frozen=True)
class Helm:
    binary: Path
    env: Mapping[str, str]

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [str(self.binary), *args],
            capture_output=True,
            text=True,
            env=dict(self.env),
            timeout=60,
            check=False,
        )
        if check and proc.returncode != 0:
            pytest.fail(f"helm {' '.join(args)} failed:\n{proc.stderr}")
        return proc

    def template_args(
        self, values_files: Sequence[Path] = (), sets: Sequence[str] = ()
    ) -> list[str]:
        args = ["template", "liqwatch", str(CHART), "--namespace", "liqwatch"]
        for values_file in values_files:
            args += ["-f", str(values_file)]
        for assignment in sets:
            args += ["--set", assignment]
        return args

    def render_text(self, values_files: Sequence[Path] = (), sets: Sequence[str] = ()) -> str:
        return self.run(*self.template_args(values_files, sets)).stdout

    def render(self, values_files: Sequence[Path] = (), sets: Sequence[str] = ()) -> list[Manifest]:
        return parse_manifests(self.render_text(values_files, sets))


def parse_manifests(text: str) -> list[Manifest]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


@pytest.fixture(scope="session")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    binary = find_tool("helm", "LIQWATCH_HELM")
    home = tmp_path_factory.mktemp("helm-home")
    # keep helm away from the user's repositories, plugins and caches
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
    }
    version = subprocess.run(
        [str(binary), "version", "--template", "{{.Version}}"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout
    assert version.startswith(("v3.", "v4.")), f"unexpected helm version {version!r}"
    return Helm(binary, env)


@pytest.fixture(scope="session")
def default_manifests(helm: Helm) -> list[Manifest]:
    return helm.render()


@pytest.fixture(scope="session")
def example_manifests(helm: Helm) -> list[Manifest]:
    return helm.render([EXAMPLE_VALUES])


@pytest.fixture(scope="session")
def promql_check() -> Callable[[Sequence[str]], list[dict[str, Any]]]:
    """Parses PromQL with Prometheus's own parser; returns per expression its metric names."""
    binary = find_tool("promql-check", "LIQWATCH_PROMQL_CHECK")

    def check(exprs: Sequence[str]) -> list[dict[str, Any]]:
        one_per_line = [" ".join(expr.split()) for expr in exprs]
        proc = subprocess.run(
            [str(binary)],
            input="\n".join(one_per_line) + "\n",
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        results = [json.loads(line) for line in proc.stdout.splitlines()]
        assert len(results) == len(one_per_line), proc.stderr
        return results

    return check


@pytest.fixture(scope="session")
def metrics_spec() -> dict[str, dict[str, Any]]:
    """name -> {type, labels, help, component} from deploy/metrics.yaml."""
    spec = yaml.safe_load(METRICS_FILE.read_text())
    return {
        metric["name"]: {**metric, "component": component}
        for component, metrics in spec["components"].items()
        for metric in metrics
    }


@pytest.fixture(scope="session")
def tables_spec() -> dict[str, Any]:
    return dict(yaml.safe_load(TABLES_FILE.read_text())["tables"])


def pod_workloads(manifests: Sequence[Manifest]) -> Iterator[Manifest]:
    for doc in manifests:
        if doc["kind"] in ("Deployment", "StatefulSet", "Job"):
            yield doc


def by_kind(manifests: Sequence[Manifest], kind: str) -> dict[str, Manifest]:
    return {doc["metadata"]["name"]: doc for doc in manifests if doc["kind"] == kind}


def container_env(container: Manifest) -> dict[str, Manifest]:
    return {item["name"]: item for item in container.get("env", [])}

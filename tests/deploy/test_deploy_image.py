"""The container image recipe, the compose stack and the analyst-user hook script.

No Docker engine runs here, so the Dockerfile and compose file are checked structurally.
"""

from __future__ import annotations

import fnmatch
import importlib.util
import json
import re
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import clickhouse_connect
import pytest
import yaml

from liqwatch.stack.chserver import ClickHouseServer
from tests.deploy.deploy_helpers import CHART, REPO

DOCKERFILE = REPO / "deploy" / "docker" / "Dockerfile"
COMPOSE = REPO / "deploy" / "compose.yaml"
BUILD_TOOLS = re.compile(r"\b(build-essential|gcc|g\+\+|make|cmake|git)\b")


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str


def dockerfile_instructions(text: str) -> list[Instruction]:
    joined = re.sub(r"\\\n", " ", text)
    instructions = []
    for raw in joined.splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            keyword, _, args = line.partition(" ")
            instructions.append(Instruction(keyword.upper(), args.strip()))
    return instructions


def stages(instructions: list[Instruction]) -> list[list[Instruction]]:
    result: list[list[Instruction]] = []
    for instruction in instructions:
        if instruction.keyword == "FROM":
            result.append([])
        if result:
            result[-1].append(instruction)
    return result


def resolve_image(reference: str, args: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args[m.group(1) or m.group(2)], reference)


def assert_pinned(image: str) -> None:
    name, _, digest = image.partition("@")
    assert not digest or re.fullmatch(r"sha256:[0-9a-f]{64}", digest), image
    tag = name.rsplit("/", 1)[-1].partition(":")[2]
    assert digest or tag, f"{image} has no tag"
    assert tag != "latest", image
    assert digest or re.search(r"\d", tag), f"{image}: tag {tag!r} is not a fixed version"


# --- Dockerfile ------------------------------------------------------------------------------


def test_dockerfile_is_multi_stage_and_pinned() -> None:
    instructions = dockerfile_instructions(DOCKERFILE.read_text())
    args = {}
    for instruction in instructions:
        if instruction.keyword == "ARG" and "=" in instruction.args:
            key, _, value = instruction.args.partition("=")
            args[key] = value
    froms = [i.args.split() for i in instructions if i.keyword == "FROM"]
    assert len(froms) >= 2, "expected a builder and a runtime stage"
    for words in froms:
        assert_pinned(resolve_image(words[0], args))
    assert resolve_image(froms[-1][0], args).startswith("python:3.11")


def test_runtime_stage_is_slim_non_root_with_liqwatch_entrypoint() -> None:
    runtime = stages(dockerfile_instructions(DOCKERFILE.read_text()))[-1]
    by_keyword: dict[str, list[str]] = {}
    for instruction in runtime:
        by_keyword.setdefault(instruction.keyword, []).append(instruction.args)
    (user,) = by_keyword["USER"]
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) != 0, "USER must be a numeric non-root uid"
    (entrypoint,) = by_keyword["ENTRYPOINT"]
    assert json.loads(entrypoint) == ["liqwatch"]
    for run in by_keyword.get("RUN", []):
        assert not BUILD_TOOLS.search(run), f"build tools in the runtime stage: {run}"
    assert any("--from=builder" in c for c in by_keyword["COPY"])
    assert "9108" in by_keyword["EXPOSE"]


def test_chart_runs_the_image_user() -> None:
    runtime = stages(dockerfile_instructions(DOCKERFILE.read_text()))[-1]
    (user,) = [i.args for i in runtime if i.keyword == "USER"]
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert str(values["securityContext"]["runAsUser"]) == user.split(":")[0]


def _dockerignore_patterns() -> list[str]:
    lines = (REPO / ".dockerignore").read_text().splitlines()
    return [line.strip().rstrip("/") for line in lines if line.strip() and not line.startswith("#")]


def _ignored(path: str, patterns: list[str]) -> bool:
    return any(
        fnmatch.fnmatch(path, p) or fnmatch.fnmatch(path, p.removeprefix("**/")) for p in patterns
    )


def test_build_context_has_the_sources_and_no_secrets() -> None:
    patterns = _dockerignore_patterns()
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    readme = pyproject["project"]["readme"]
    copied = []
    for instruction in dockerfile_instructions(DOCKERFILE.read_text()):
        if instruction.keyword == "COPY" and "--from" not in instruction.args:
            copied += instruction.args.split()[:-1]
    assert readme in copied, "the build needs pyproject's readme"
    for source in copied:
        assert not _ignored(source, patterns), f"{source} is excluded by .dockerignore"
        # the readme is pyproject's to provide; everything else must exist now
        assert source == readme or (REPO / source).exists(), source
    for package in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]:
        assert package.rstrip("*") in copied, f"package {package} not copied into the image"
    for secret in (".git", "tests", "deploy/secrets", "x/.env", "key.pem"):
        assert _ignored(secret, patterns), secret


# --- compose ---------------------------------------------------------------------------------


def compose() -> dict[str, Any]:
    return dict(yaml.safe_load(COMPOSE.read_text()))


def liqwatch_services() -> Iterator[tuple[str, dict[str, Any]]]:
    for name, service in compose()["services"].items():
        if "liqwatch" in service["image"]:
            yield name, service


def test_compose_uses_official_pinned_images() -> None:
    images = {name: s["image"] for name, s in compose()["services"].items()}
    assert images["kafka"].startswith("apache/kafka:")
    assert images["clickhouse"].startswith("clickhouse/clickhouse-server:")
    for image in images.values():
        assert_pinned(re.sub(r"\$\{\w+:-([^}]+)\}", r"\1", image))


def test_compose_runs_every_service_of_the_contract() -> None:
    commands = {name: s["command"] for name, s in liqwatch_services()}
    assert commands["topics-create"] == ["topics", "create"]
    assert commands["db-migrate"] == ["db", "migrate"]
    assert commands["producer"][:2] == ["produce", "--venues"]
    assert {commands[n][0] for n in ("worker", "sink", "alerter")} == {"worker", "sink", "alerter"}
    for name, service in liqwatch_services():
        assert service["read_only"] is True, name
        assert service["user"].split(":")[0] != "0", name
        assert service["cap_drop"] == ["ALL"], name
    worker = compose()["services"]["worker"]
    state_dir = worker["environment"]["LIQWATCH_WORKER_STATE_DIR"]
    assert any(v.endswith(f":{state_dir}") for v in worker["volumes"])


def test_compose_keeps_secrets_out_of_the_file() -> None:
    for name, service in compose()["services"].items():
        env = service.get("environment", {})
        for key, value in env.items():
            if re.search("PASSWORD|TOKEN|URLS$", key):
                assert str(value).startswith("${"), f"{name}.{key} is a literal"
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name} publishes {port} beyond localhost"
    alerter = compose()["services"]["alerter"]
    assert alerter["environment"]["LIQWATCH_NOTIFY_URLS_FILE"] == "/run/secrets/notify_urls"


def test_compose_prometheus_scrapes_every_service() -> None:
    config = yaml.safe_load((REPO / "deploy/prometheus/prometheus.yml").read_text())
    targets = {
        t for job in config["scrape_configs"] for c in job["static_configs"] for t in c["targets"]
    }
    assert targets == {f"{s}:9108" for s in ("producer", "worker", "sink", "alerter")}
    provisioning = REPO / "deploy/grafana/provisioning/datasources/liqwatch.yaml"
    datasources = {d["type"] for d in yaml.safe_load(provisioning.read_text())["datasources"]}
    assert datasources == {"prometheus", "grafana-clickhouse-datasource"}


# --- the analyst-user hook script --------------------------------------------------------------


def load_create_analyst() -> ModuleType:
    path = CHART / "files" / "create_analyst.py"
    spec = importlib.util.spec_from_file_location("create_analyst", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("create_analyst", module)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def clickhouse_url(clickhouse_server: ClickHouseServer) -> str:
    clickhouse_server.ensure_started()
    return clickhouse_server.url


TRICKY_PASSWORD = "p'a\\ss`word\"; DROP USER x --"


def test_analyst_statements_quote_what_clickhouse_reads_back(clickhouse_url: str) -> None:
    module = load_create_analyst()
    client = clickhouse_connect.get_client(dsn=clickhouse_url)
    literal = module.quote_string(TRICKY_PASSWORD)
    assert client.query(f"SELECT {literal}").result_rows == [(TRICKY_PASSWORD,)]
    create, alter, grant = module.analyst_statements("analyst", TRICKY_PASSWORD, "liq`db")
    assert create.startswith("CREATE USER IF NOT EXISTS `analyst` IDENTIFIED WITH sha256_password")
    assert create.endswith("SETTINGS readonly = 1") and alter.endswith("SETTINGS readonly = 1")
    assert grant == "GRANT SELECT ON `liq\\`db`.* TO `analyst`"
    assert literal in create
    # ClickHouse's own parser accepts each statement (this server cannot store users)
    for statement in (create, alter, grant):
        ast = client.query(f"EXPLAIN AST {statement}").result_rows
        assert ast[0][0].startswith(("CreateUserQuery", "GrantQuery")), statement
    odd_name = module.quote_identifier("we`ird")
    assert client.query(f"SELECT 1 AS {odd_name}").column_names == ("we`ird",)


def test_analyst_failure_is_reported_without_the_password(
    clickhouse_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """This ClickHouse has no writable access storage: the Job must fail, redacted."""
    module = load_create_analyst()
    env = {
        "LIQWATCH_CLICKHOUSE_URL": clickhouse_url,
        "LIQWATCH_CLICKHOUSE_USERNAME": "default",
        "LIQWATCH_CLICKHOUSE_DATABASE": "liqwatch",
        "LIQWATCH_ANALYST_USERNAME": "analyst",
        "LIQWATCH_ANALYST_PASSWORD": TRICKY_PASSWORD,
    }
    assert module.main(env) == 1
    err = capsys.readouterr().err
    assert "create_analyst: failed" in err
    assert "ACCESS_STORAGE" in err or "access storage" in err
    assert TRICKY_PASSWORD not in err
    assert module.main({**env, "LIQWATCH_ANALYST_PASSWORD": ""}) == 2

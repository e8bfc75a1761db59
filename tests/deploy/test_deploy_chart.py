"""The Helm chart: lint, Kubernetes schema validity, pod hardening, secrets, values schema."""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import kubernetes_validate
import pytest
import yaml

from tests.deploy.deploy_helpers import (
    CHART,
    EXAMPLE_VALUES,
    REPO,
    Helm,
    Manifest,
    by_kind,
    container_env,
    pod_workloads,
)

KUBE_VERSIONS = ("1.29.0", "1.37.0")  # oldest we document support for, newest with schemas
CRD_DIR = Path(__file__).parent / "crds"
CRD_FILES = {
    "ServiceMonitor": CRD_DIR / "monitoring.coreos.com_servicemonitors.yaml",
    "PrometheusRule": CRD_DIR / "monitoring.coreos.com_prometheusrules.yaml",
}
SERVICE_COMPONENTS = ("producer", "worker", "sink", "alerter")


def labels_match(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def pod_templates(manifests: Sequence[Manifest]) -> Iterator[tuple[Manifest, Manifest]]:
    for workload in pod_workloads(manifests):
        yield workload, workload["spec"]["template"]


def component_of(doc: Manifest) -> str:
    return str(doc["metadata"]["labels"]["app.kubernetes.io/component"])


# --- lint and Kubernetes schemas -------------------------------------------------------------


@pytest.mark.parametrize("values", [[], [EXAMPLE_VALUES]], ids=["default", "example"])
def test_helm_lint_strict_passes(helm: Helm, values: list[Path]) -> None:
    args = ["lint", "--strict", str(CHART)]
    for values_file in values:
        args += ["-f", str(values_file)]
    proc = helm.run(*args)
    assert "0 chart(s) failed" in proc.stdout


def _kube_validate_all(manifests: Sequence[Manifest]) -> list[str]:
    errors = []
    for doc in manifests:
        if doc["kind"] in CRD_FILES:
            continue
        for version in KUBE_VERSIONS:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                path = ".".join(str(p) for p in exc.path)
                errors.append(f"{doc['kind']}/{doc['metadata']['name']} @{version} {path}: {exc}")
    return errors


def test_default_render_is_valid_kubernetes(default_manifests: list[Manifest]) -> None:
    assert _kube_validate_all(default_manifests) == []


def test_example_render_is_valid_kubernetes(example_manifests: list[Manifest]) -> None:
    kinds = {doc["kind"] for doc in example_manifests}
    assert {"ServiceMonitor", "PrometheusRule", "NetworkPolicy", "Job"} <= kinds
    assert _kube_validate_all(example_manifests) == []


VARIANTS = {
    "switches-off": [
        "networkPolicy.enabled=false",
        "worker.persistence.enabled=false",
        "sink.autoscaling.enabled=false",
        "serviceAccount.create=false",
        "jobs.migrate.enabled=false",
        "jobs.topics.enabled=false",
        "producers.pdb.enabled=false",
        "alerter.persistence.enabled=false",
        "alerter.replicas=2",
    ],
    "chart-secrets": [
        "clickhouse.password=pw",
        "clickhouse.analyst.enabled=true",
        "clickhouse.analyst.password=apw",
        "notify.urls[0]=tgram://token/1",
        "image.digest=sha256:" + "a" * 64,
        "env.LIQWATCH_KAFKA_CLIENT_ID=x",
        "podSecurityContext.runAsUser=null",
    ],
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_value_variants_render_valid_kubernetes(helm: Helm, variant: str) -> None:
    manifests = helm.render(sets=VARIANTS[variant])
    assert _kube_validate_all(manifests) == []
    workloads = list(pod_workloads(manifests))
    if variant == "switches-off":
        (sink,) = [w for w in workloads if component_of(w) == "sink"]
        assert sink["spec"]["replicas"] == 1
        assert not any(w["kind"] == "Job" for w in workloads)
        assert by_kind(manifests, "NetworkPolicy") == {}
        (worker,) = by_kind(manifests, "StatefulSet").values()
        assert "volumeClaimTemplates" not in worker["spec"]
    else:
        assert all(
            "@sha256:aaaa" in w["spec"]["template"]["spec"]["containers"][0]["image"]
            for w in workloads
        )
        assert all(
            "runAsUser" not in w["spec"]["template"]["spec"]["securityContext"] for w in workloads
        )
        assert {d["metadata"]["name"] for d in by_kind(manifests, "Secret").values()} == {
            "liqwatch",
            "liqwatch-hook-credentials",
        }


def test_kubernetes_validation_rejects_unknown_fields(default_manifests: list[Manifest]) -> None:
    """The validator itself is strict: a misspelt field in a rendered Deployment is caught."""
    deployment = copy.deepcopy(next(d for d in default_manifests if d["kind"] == "Deployment"))
    deployment["spec"]["template"]["spec"]["containers"][0]["livenessProbes"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBE_VERSIONS[0], strict=True)


def _closed_crd_schema(kind: str) -> dict[str, Any]:
    """The CRD's openAPIV3Schema with unknown fields forbidden (the API server prunes them)."""
    crd = yaml.safe_load(CRD_FILES[kind].read_text())
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1")
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]

    def close(node: Any) -> None:
        if isinstance(node, dict):
            if (
                "properties" in node
                and "additionalProperties" not in node
                and not node.get("x-kubernetes-preserve-unknown-fields")
            ):
                node["additionalProperties"] = False
            for child in node.values():
                close(child)
        elif isinstance(node, list):
            for child in node:
                close(child)

    close(schema)
    return schema


@pytest.mark.parametrize("kind", sorted(CRD_FILES))
def test_prometheus_operator_objects_match_their_crds(
    example_manifests: list[Manifest], kind: str
) -> None:
    schema = _closed_crd_schema(kind)
    (doc,) = [d for d in example_manifests if d["kind"] == kind]
    assert doc["apiVersion"] == "monitoring.coreos.com/v1"
    jsonschema.Draft7Validator(schema).validate(doc)
    broken = copy.deepcopy(doc)
    broken["spec"]["unexpected"] = True
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft7Validator(schema).validate(broken)


# --- pod hardening, resources, probes --------------------------------------------------------


@pytest.mark.parametrize("fixture", ["default_manifests", "example_manifests"])
def test_every_pod_is_hardened(request: pytest.FixtureRequest, fixture: str) -> None:
    manifests: list[Manifest] = request.getfixturevalue(fixture)
    templates = list(pod_templates(manifests))
    assert len(templates) >= 6
    for workload, template in templates:
        where = f"{workload['kind']}/{workload['metadata']['name']}"
        spec = template["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True, where
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, where
        assert spec["automountServiceAccountToken"] is False, where
        volumes = {v["name"]: v for v in spec["volumes"]}
        assert "emptyDir" in volumes["tmp"], where
        for container in spec["containers"]:
            sc = container["securityContext"]
            assert sc["runAsNonRoot"] is True, where
            assert sc["runAsUser"] != 0, where
            assert sc["allowPrivilegeEscalation"] is False, where
            assert sc["readOnlyRootFilesystem"] is True, where
            assert sc["capabilities"]["drop"] == ["ALL"], where
            assert sc["seccompProfile"] == {"type": "RuntimeDefault"}, where
            assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"], where
            resources = container["resources"]
            assert {"cpu", "memory"} <= set(resources["requests"]), where
            assert "memory" in resources["limits"], where
            assert not container["image"].endswith(":latest"), where
            assert ":" in container["image"].rsplit("/", 1)[-1] or "@sha256:" in container["image"]


@pytest.mark.parametrize("fixture", ["default_manifests", "example_manifests"])
def test_services_have_health_probes_on_the_metrics_port(
    request: pytest.FixtureRequest, fixture: str
) -> None:
    manifests: list[Manifest] = request.getfixturevalue(fixture)
    services = [(w, t) for w, t in pod_templates(manifests) if w["kind"] != "Job"]
    assert {component_of(w) for w, _ in services} == set(SERVICE_COMPONENTS)
    for workload, template in services:
        (container,) = template["spec"]["containers"]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports == {"metrics": 9108}
        for probe, path in (
            ("livenessProbe", "/healthz"),
            ("readinessProbe", "/readyz"),
            ("startupProbe", "/healthz"),
        ):
            assert container[probe]["httpGet"] == {"path": path, "port": "metrics"}, (
                workload["metadata"]["name"],
                probe,
            )


def test_jobs_are_hooks_without_probes(default_manifests: list[Manifest]) -> None:
    jobs = by_kind(default_manifests, "Job")
    args = {
        component_of(job): job["spec"]["template"]["spec"]["containers"][0] for job in jobs.values()
    }
    assert args["db-migrate"]["args"] == ["db", "migrate"]
    assert args["topics-create"]["args"] == ["topics", "create"]
    for job in jobs.values():
        annotations = job["metadata"]["annotations"]
        assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
        assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
        assert "livenessProbe" not in job["spec"]["template"]["spec"]["containers"][0]


def test_hook_inputs_exist_before_the_hook_jobs(example_manifests: list[Manifest]) -> None:
    """Pre-install hooks run before the release's objects: their ConfigMap comes first."""
    hooks = [d for d in example_manifests if "helm.sh/hook" in d["metadata"].get("annotations", {})]
    weight = {
        (d["kind"], component_of(d)): int(d["metadata"]["annotations"]["helm.sh/hook-weight"])
        for d in hooks
    }
    assert weight[("ConfigMap", "hooks")] < weight[("Job", "db-migrate")]
    assert weight[("Job", "db-migrate")] < weight[("Job", "analyst-user")]
    for job in (d for d in hooks if d["kind"] == "Job"):
        env_from = job["spec"]["template"]["spec"]["containers"][0]["envFrom"]
        assert env_from == [{"configMapRef": {"name": "liqwatch-hook-settings"}}]


# --- workloads -------------------------------------------------------------------------------


def test_one_producer_deployment_per_venue_group(example_manifests: list[Manifest]) -> None:
    values = yaml.safe_load(EXAMPLE_VALUES.read_text())
    deployments = by_kind(example_manifests, "Deployment")
    for group in values["producers"]["groups"]:
        deployment = deployments[f"liqwatch-producer-{group['name']}"]
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        assert container["args"] == ["produce", "--venues", ",".join(group["venues"])]
    producers = [d for d in deployments.values() if component_of(d) == "producer"]
    assert len(producers) == len(values["producers"]["groups"])


def test_worker_statefulset_keeps_state_on_a_volume_claim(
    example_manifests: list[Manifest],
) -> None:
    (worker,) = by_kind(example_manifests, "StatefulSet").values()
    assert worker["spec"]["replicas"] == 6
    assert worker["spec"]["serviceName"] in by_kind(example_manifests, "Service")
    (claim,) = worker["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "5Gi"
    (container,) = worker["spec"]["template"]["spec"]["containers"]
    state_dir = container_env(container)["LIQWATCH_WORKER_STATE_DIR"]["value"]
    assert {"name": claim["metadata"]["name"], "mountPath": state_dir} in container["volumeMounts"]


def test_alerter_keeps_its_sent_store_across_restarts(example_manifests: list[Manifest]) -> None:
    alerter = by_kind(example_manifests, "Deployment")["liqwatch-alerter"]
    spec = alerter["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    state_dir = container_env(container)["LIQWATCH_ALERTER_STATE_DIR"]["value"]
    assert {"name": "state", "mountPath": state_dir} in container["volumeMounts"]
    (volume,) = [v for v in spec["volumes"] if v["name"] == "state"]
    claim = by_kind(example_manifests, "PersistentVolumeClaim")[
        volume["persistentVolumeClaim"]["claimName"]
    ]
    assert claim["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert alerter["spec"]["strategy"] == {"type": "Recreate"}  # RWO volume


def test_sink_is_scaled_by_its_hpa(default_manifests: list[Manifest]) -> None:
    (hpa,) = by_kind(default_manifests, "HorizontalPodAutoscaler").values()
    sink = by_kind(default_manifests, "Deployment")[hpa["spec"]["scaleTargetRef"]["name"]]
    assert component_of(sink) == "sink"
    assert "replicas" not in sink["spec"]  # the HPA owns it
    assert hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]


SELECTOR_PATHS = {
    "Service": ("spec", "selector"),
    "PodDisruptionBudget": ("spec", "selector", "matchLabels"),
    "NetworkPolicy": ("spec", "podSelector", "matchLabels"),
}


def dig(doc: Any, path: Sequence[str]) -> Any:
    for key in path:
        doc = doc[key]
    return doc


def test_selectors_reach_their_pods(example_manifests: list[Manifest]) -> None:
    pod_labels = [t["metadata"]["labels"] for _, t in pod_templates(example_manifests)]
    for kind, path in SELECTOR_PATHS.items():
        docs = by_kind(example_manifests, kind)
        assert docs, kind
        for name, doc in docs.items():
            selector = dig(doc, path)
            assert any(labels_match(selector, labels) for labels in pod_labels), (kind, name)
    for service in by_kind(example_manifests, "Service").values():
        assert [p["name"] for p in service["spec"]["ports"]] == ["metrics"]


def test_service_monitor_scrapes_every_metrics_service(example_manifests: list[Manifest]) -> None:
    (monitor,) = by_kind(example_manifests, "ServiceMonitor").values()
    selector = monitor["spec"]["selector"]["matchLabels"]
    services = by_kind(example_manifests, "Service").values()
    scraped = {component_of(s) for s in services if labels_match(selector, s["metadata"]["labels"])}
    assert scraped == set(SERVICE_COMPONENTS)
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == ["metrics"]
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"


def test_network_policies_allow_only_what_each_component_needs(
    default_manifests: list[Manifest],
) -> None:
    policies = {component_of(p): p for p in by_kind(default_manifests, "NetworkPolicy").values()}
    ports = {
        component: {port["port"] for rule in policy["spec"]["egress"] for port in rule["ports"]}
        for component, policy in policies.items()
    }
    assert ports["worker"] == {53, 9092}
    assert ports["producer"] == {53, 9092, 443}
    assert ports["sink"] == {53, 9092, 8123, 8443}
    assert ports["alerter"] == {53, 9092, 443, 465, 587}
    assert 8123 not in ports["topics-create"]
    for component in SERVICE_COMPONENTS:
        (ingress,) = policies[component]["spec"]["ingress"]
        assert ingress["ports"] == [{"port": "metrics", "protocol": "TCP"}]


# --- secrets ---------------------------------------------------------------------------------

SENTINELS = {
    "clickhouse": "S3NTINEL-clickhouse-pw",
    "analyst": "S3NTINEL-analyst-pw",
    "notify": "tgram://S3NTINEL-bot-token/12345",
}


def _sentinel_values(tmp_path: Path) -> Path:
    values = {
        "clickhouse": {
            "password": SENTINELS["clickhouse"],
            "analyst": {"enabled": True, "password": SENTINELS["analyst"]},
        },
        "notify": {"urls": [SENTINELS["notify"], "discord://S3NTINEL-webhook/token"]},
        "metrics": {"serviceMonitor": {"enabled": True}, "prometheusRule": {"enabled": True}},
    }
    path = tmp_path / "sentinel-values.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def test_secrets_are_rendered_only_into_secret_objects(helm: Helm, tmp_path: Path) -> None:
    text = helm.render_text([_sentinel_values(tmp_path)])
    manifests = [doc for doc in yaml.safe_load_all(text) if doc]
    encoded = {base64.b64encode(s.encode()).decode() for s in SENTINELS.values()}
    delivered = ""
    for doc in manifests:
        if doc["kind"] == "Secret":
            delivered += "".join(base64.b64decode(v).decode() for v in doc["data"].values())
            continue
        dumped = json.dumps(doc)
        assert "S3NTINEL" not in dumped, (
            f"secret leaked into {doc['kind']}/{doc['metadata']['name']}"
        )
        assert not any(e in dumped for e in encoded), doc["metadata"]["name"]
    for sentinel in SENTINELS.values():
        assert sentinel in delivered
    # and the services reach them by reference only
    deployments = by_kind(manifests, "Deployment")
    (sink,) = deployments["liqwatch-sink"]["spec"]["template"]["spec"]["containers"]
    assert container_env(sink)["LIQWATCH_CLICKHOUSE_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "liqwatch",
        "key": "clickhouse-password",
    }
    (alerter,) = deployments["liqwatch-alerter"]["spec"]["template"]["spec"]["containers"]
    env = container_env(alerter)
    assert env["LIQWATCH_NOTIFY_URLS_FILE"]["value"] == "/etc/liqwatch/notify/urls"
    assert "LIQWATCH_NOTIFY_URLS" not in env


def test_install_notes_do_not_print_secrets(helm: Helm, tmp_path: Path) -> None:
    proc = helm.run(
        "install", "liqwatch", str(CHART), "--dry-run=client", "-f", str(_sentinel_values(tmp_path))
    )
    notes = proc.stdout.split("NOTES:", 1)[1]
    assert "liqwatch db migrate" in notes
    assert "S3NTINEL" not in notes


def test_existing_secrets_replace_the_chart_secret(example_manifests: list[Manifest]) -> None:
    assert by_kind(example_manifests, "Secret") == {}
    refs = set()
    for _, template in pod_templates(example_manifests):
        for container in template["spec"]["containers"]:
            for item in container.get("env", []):
                if "valueFrom" in item:
                    ref = item["valueFrom"]["secretKeyRef"]
                    refs.add((item["name"], ref["name"], ref["key"]))
        for volume in template["spec"]["volumes"]:
            if "secret" in volume:
                refs.add(
                    ("volume", volume["secret"]["secretName"], volume["secret"]["items"][0]["key"])
                )
    assert refs == {
        ("LIQWATCH_CLICKHOUSE_PASSWORD", "liqwatch-clickhouse", "clickhouse-password"),
        ("LIQWATCH_ANALYST_PASSWORD", "liqwatch-clickhouse", "analyst-password"),
        ("volume", "liqwatch-notify", "notify-urls"),
    }


def test_only_components_that_talk_to_clickhouse_get_its_password(
    helm: Helm, tmp_path: Path
) -> None:
    manifests = helm.render([_sentinel_values(tmp_path)])
    with_password = {
        component_of(w)
        for w, t in pod_templates(manifests)
        if "LIQWATCH_CLICKHOUSE_PASSWORD" in container_env(t["spec"]["containers"][0])
    }
    assert with_password == {"sink", "db-migrate", "analyst-user"}


# --- values schema and render-time checks ----------------------------------------------------

BAD_VALUES = [
    (["--set", "replicas=3"], "replicas"),
    (["--set", "worker.replica=3"], "replica"),
    (["--set-string", "worker.replicas=two"], "/worker/replicas"),
    (["--set", "kafka.partitions=0"], "/kafka/partitions"),
    (["--set", "kafka.bootstrapServers=kafka"], "/kafka/bootstrapServers"),
    (["--set", "producers.groups[0].venues[0]=ftx"], "/producers/groups/0/venues/0"),
    (["--set", "image.tag=latest"], "/image/tag"),
    (["--set", "env.LIQWATCH_CLICKHOUSE_PASSWORD=x"], "/env/LIQWATCH_CLICKHOUSE_PASSWORD"),
    (["--set", "worker.env.KAFKA_X=1"], "/worker/env"),
    (["--set", "logLevel=verbose"], "/logLevel"),
    (["--set", "notify.urls[0]=not-a-url"], "/notify/urls/0"),
    (["--set", "metrics.prometheusRule.rules.consumerLag.for=ten"], "consumerLag/for"),
    (["--set", "sink.autoscaling.targetCPUUtilizationPercentage=150"], "targetCPU"),
    (["--set", "networkPolicy.metricsFrom[0].podSelektor.app=x"], "podSelektor"),
    (["--set", "producers.resources.requests.memory=lots"], "/producers/resources/requests/memory"),
]


@pytest.mark.parametrize(("args", "where"), BAD_VALUES, ids=[w for _, w in BAD_VALUES])
def test_schema_rejects_bad_values(helm: Helm, args: list[str], where: str) -> None:
    proc = helm.run(*helm.template_args(), *args, check=False)
    assert proc.returncode != 0, f"accepted {args}"
    assert "schema" in proc.stderr
    assert where in proc.stderr, proc.stderr


def test_lint_fails_on_bad_values(helm: Helm) -> None:
    proc = helm.run("lint", "--strict", str(CHART), "--set", "worker.replicas=-1", check=False)
    assert proc.returncode != 0
    assert "/worker/replicas" in proc.stdout + proc.stderr


def _groups(*groups: tuple[str, list[str]]) -> dict[str, Any]:
    return {"producers": {"groups": [{"name": n, "venues": v} for n, v in groups]}}


TEMPLATE_CHECKS = [
    ({"worker": {"replicas": 7}}, "worker.replicas (7) must be <= kafka.partitions (6)"),
    (
        _groups(("a", ["binance", "okx"]), ("b", ["bybit", "binance"])),
        'venue "binance" is in groups "a" and "b"',
    ),
    (_groups(("a", ["okx"]), ("a", ["bybit"])), 'group name "a" is used twice'),
    ({"clickhouse": {"analyst": {"enabled": True}}}, "clickhouse.analyst.enabled needs"),
    ({"alerter": {"replicas": 2}}, "alerter.replicas (2) must be 1 while alerter.persistence"),
    (
        {"sink": {"autoscaling": {"minReplicas": 5, "maxReplicas": 2}}},
        "minReplicas (5) must be <= sink.autoscaling.maxReplicas (2)",
    ),
]


@pytest.mark.parametrize(
    ("values", "message"), TEMPLATE_CHECKS, ids=[m[:30] for _, m in TEMPLATE_CHECKS]
)
def test_render_time_checks_fail_with_a_clear_message(
    helm: Helm, tmp_path: Path, values: dict[str, Any], message: str
) -> None:
    values_file = tmp_path / "values.yaml"
    values_file.write_text(yaml.safe_dump(values))
    proc = helm.run(*helm.template_args([values_file]), check=False)
    assert proc.returncode != 0
    assert message in proc.stderr, proc.stderr


def test_worker_replicas_may_equal_partitions(helm: Helm) -> None:
    manifests = helm.render(sets=["worker.replicas=6", "kafka.partitions=6"])
    (worker,) = by_kind(manifests, "StatefulSet").values()
    assert worker["spec"]["replicas"] == 6


def _leaf_paths(node: Any, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    if isinstance(node, dict) and node:
        for key, value in node.items():
            yield from _leaf_paths(value, (*prefix, key))
    else:
        yield prefix


def _schema_node(schema: dict[str, Any], root: dict[str, Any], path: Sequence[str]) -> Any:
    node = schema
    for key in path:
        while "$ref" in node:
            node = root["$defs"][node["$ref"].rsplit("/", 1)[-1]]
        if "properties" in node and key in node["properties"]:
            node = node["properties"][key]
        elif isinstance(node.get("additionalProperties"), dict):
            node = node["additionalProperties"]
        else:
            return None
    return node


def test_schema_types_every_value_and_closes_every_object() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    untyped = [p for p in _leaf_paths(values) if _schema_node(schema, schema, p) is None]
    assert untyped == []
    open_objects: list[str] = []

    def walk(node: Any, where: str) -> None:
        if isinstance(node, dict):
            is_object = node.get("type") == "object"
            if is_object and "additionalProperties" not in node:
                open_objects.append(where)
            for key, child in node.items():
                walk(child, f"{where}/{key}")
        elif isinstance(node, list):
            for i, child in enumerate(node):
                walk(child, f"{where}/{i}")

    walk(schema, "#")
    # affinity terms are Kubernetes' own structure, validated by the API schemas
    assert open_objects == [
        "#/$defs/affinity/properties/nodeAffinity",
        "#/$defs/affinity/properties/podAffinity",
        "#/$defs/affinity/properties/podAntiAffinity",
    ]


def test_example_values_set_every_key() -> None:
    defaults = set(_leaf_paths(yaml.safe_load((CHART / "values.yaml").read_text())))
    example = yaml.safe_load(EXAMPLE_VALUES.read_text())

    def present(path: tuple[str, ...]) -> bool:
        node = example
        for key in path:
            if not isinstance(node, dict) or key not in node:
                return False
            node = node[key]
        return True

    assert sorted(p for p in defaults if not present(p)) == []


def test_chart_and_install_script_pin_versions() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2"
    assert chart["appVersion"] != "latest"
    script = (REPO / "scripts" / "install-deploy-tools.sh").read_text()
    assert 'HELM_VERSION="${LIQWATCH_HELM_VERSION:-v4.' in script
    assert "@latest" not in script


def test_alert_rules_configmap_is_a_valid_rules_file(example_manifests: list[Manifest]) -> None:
    """The example routing rules load with the alerter's own parser, at the mounted path."""
    from alerts.rules import parse_rules

    rules_map = by_kind(example_manifests, "ConfigMap")["liqwatch-rules"]
    rule_set = parse_rules(rules_map["data"]["rules.yaml"], "liqwatch-rules")
    assert [r.name for r in rule_set.routes] == ["desk-critical", "btc-eth-cascades-and-sweeps"]
    alerter = by_kind(example_manifests, "Deployment")["liqwatch-alerter"]
    spec = alerter["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    rules_file = Path(container_env(container)["LIQWATCH_RULES_FILE"]["value"])
    mount = next(m for m in container["volumeMounts"] if m["name"] == "rules")
    assert rules_file == Path(mount["mountPath"]) / "rules.yaml"
    volume = next(v for v in spec["volumes"] if v["name"] == "rules")
    assert volume["configMap"]["name"] == "liqwatch-rules"

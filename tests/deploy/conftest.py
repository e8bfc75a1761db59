"""The deploy tests' fixtures are defined in deploy_helpers (importable by the tests too)."""

from tests.deploy.deploy_helpers import (
    default_manifests,
    example_manifests,
    helm,
    metrics_spec,
    promql_check,
    tables_spec,
)

__all__ = [
    "default_manifests",
    "example_manifests",
    "helm",
    "metrics_spec",
    "promql_check",
    "tables_spec",
]

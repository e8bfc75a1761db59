"""Each service registers the metrics the dashboard, the alert rules and the docs rely on
(deploy/metrics.yaml), with the documented type and labels, and registers nothing the
contract does not list (so the list an operator reads is complete)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Summary

from alerts.metrics import AlerterMetrics
from liqwatch.observability import Children
from processors.engine.metrics import EngineMetrics
from processors.metrics import WorkerMetrics
from producers.metrics import ProducerMetrics
from sinks.metrics import SinkMetrics

CONTRACT = yaml.safe_load((Path(__file__).parents[2] / "deploy" / "metrics.yaml").read_text())[
    "components"
]
CLASSES: dict[str, Any] = {
    "producer": ProducerMetrics,
    "worker": WorkerMetrics,
    "engine": EngineMetrics,
    "sink": SinkMetrics,
    "alerter": AlerterMetrics,
}


def registered(cls: Any) -> dict[str, tuple[str, set[str]]]:
    """name -> (type, label names), read from the metric objects the class registered."""
    registry = CollectorRegistry()
    holder = cls(registry)
    found: dict[str, tuple[str, set[str]]] = {}
    for metric in vars(holder).values():
        if not isinstance(metric, Counter | Gauge | Histogram | Summary):
            continue
        kind = metric._type  # prometheus_client keeps the family type here
        name = metric._name + ("_total" if kind == "counter" else "")
        found[name] = (kind, set(metric._labelnames))
    return found


@pytest.mark.parametrize("component", sorted(CLASSES))
def test_component_registers_its_contract(component: str) -> None:
    found = registered(CLASSES[component])
    for metric in CONTRACT[component]:
        assert metric["name"] in found, f"{component} lacks {metric['name']}"
        family_type, labels = found[metric["name"]]
        assert family_type == metric["type"], metric["name"]
        assert labels == set(metric["labels"]), metric["name"]


@pytest.mark.parametrize("component", sorted(CLASSES))
def test_component_registers_nothing_undocumented(component: str) -> None:
    documented = {m["name"] for metrics in CONTRACT.values() for m in metrics}
    undocumented = sorted(set(registered(CLASSES[component])) - documented)
    assert not undocumented, f"{component}: add {undocumented} to deploy/metrics.yaml"


def test_every_entry_has_a_help_text() -> None:
    for metrics in CONTRACT.values():
        for metric in metrics:
            assert metric["type"] in {"counter", "gauge", "histogram"}, metric["name"]
            assert len(metric["help"]) > 10, metric["name"]


def test_dead_letter_counter_is_registered_by_every_service_that_drops() -> None:
    name = CONTRACT["shared"][0]["name"]
    owners = [c for c, cls in CLASSES.items() if name in registered(cls)]
    assert "worker" in owners and len(owners) >= 2, owners


def test_children_count_into_the_labelled_series_and_are_looked_up_once() -> None:
    registry = CollectorRegistry()
    counter = Counter("x_events_total", "x", ["kind"], registry=registry)
    of = Children(counter)
    of("mark_price").inc(3)
    of("liquidation").inc()
    of("mark_price").inc(2)
    assert of("mark_price") is of("mark_price") is counter.labels("mark_price")
    assert registry.get_sample_value("x_events_total", {"kind": "mark_price"}) == 5
    assert registry.get_sample_value("x_events_total", {"kind": "liquidation"}) == 1

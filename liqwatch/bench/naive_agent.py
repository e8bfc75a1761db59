"""The baseline for the worker benchmark: a naive Faust agent, one Kafka message per event and
one table update (so one changelog message) per event. Run as its own process:

    python -m liqwatch.bench.naive_agent BOOTSTRAP TOPIC APP_ID METRICS_PORT DATA_DIR
"""

from __future__ import annotations

import sys
from typing import Any

import faust
from prometheus_client import CollectorRegistry, Counter

from liqwatch import codec
from liqwatch.observability import HealthServer
from liqwatch.schema import Liquidation, MarkPrice
from processors.settings import FETCH_MAX_WAIT_MS
from processors.worker import (
    GIL_SWITCH_INTERVAL_S,
    PRODUCER_LINGER_S,
    connect_signal,
    limit_fetch_wait,
)

PARTITIONS = 4
# What the worker's app sets too, so the baseline is not slowed by settings only the worker
# has: the producer linger (measured: without it this agent is ~45 % slower, 3.5-3.9k vs
# 5.4-5.6k events per CPU-s), the broker's fetch wait (without it, 4.5k vs 4.8k events/s) and
# the GIL switch interval (without it, 2-13 % slower).
SHARED_SETTINGS = (
    f"producer_linger {PRODUCER_LINGER_S * 1000:.0f} ms, fetch wait {FETCH_MAX_WAIT_MS} ms, "
    f"GIL switch interval {GIL_SWITCH_INTERVAL_S * 1000:.0f} ms, memory:// tables, "
    "Faust's default sensors"
)


def build_naive_app(bootstrap: str, topic: str, app_id: str, datadir: str, counter: Any) -> Any:
    app = faust.App(
        app_id,
        broker=f"kafka://{bootstrap}",
        store="memory://",
        datadir=datadir,
        topic_partitions=PARTITIONS,
        topic_allow_declare=True,
        web_enabled=False,
        consumer_auto_offset_reset="earliest",
        producer_linger=PRODUCER_LINGER_S,
    )
    totals = app.Table("naive_totals", default=float, partitions=PARTITIONS)
    source = app.topic(topic, key_type=bytes, value_type=bytes, value_serializer="raw")

    async def per_event(stream: Any) -> None:
        async for value in stream:
            event = codec.event_decoder.decode(value)
            if isinstance(event, Liquidation):
                totals[event.asset] += event.notional_usd
            elif isinstance(event, MarkPrice):
                totals[f"{event.asset}:price"] = event.mark_price
            else:
                totals[f"{event.asset}:oi"] = event.oi_usd
            counter.inc()

    app.agent(source, name="naive")(per_event)

    async def on_complete(_app: Any, **_: Any) -> None:
        limit_fetch_wait(app, FETCH_MAX_WAIT_MS)

    connect_signal(app.on_rebalance_complete, on_complete)
    return app


def main(argv: list[str]) -> None:
    bootstrap, topic, app_id, port, datadir = argv
    registry = CollectorRegistry()
    counter = Counter(
        "liqwatch_bench_naive_events_total", "Events through the naive agent", registry=registry
    )
    health = HealthServer(registry, "127.0.0.1", int(port)).start()
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    try:
        app = build_naive_app(bootstrap, topic, app_id, datadir, counter)
        faust.Worker(app, loglevel="WARNING", quiet=True).execute_from_commandline()
    finally:
        health.stop()


if __name__ == "__main__":
    main(sys.argv[1:])

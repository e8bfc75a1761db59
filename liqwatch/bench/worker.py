"""``liqwatch bench engine`` (Faust part): the worker on a real Kafka broker, against baselines.

Starts its own Kafka broker (``liqwatch.stack.kafka.KafkaBroker``) in a temp dir, pre-publishes a
stress day (``worker_load.StressLoad``: 200 instruments, 20 assets, mark prices ~57 %, open
interest ~14 %, liquidations ~29 % of the events, envelopes of ~50 events) and measures, in the
same run:

- the engine alone, in-process, on the same envelopes (decode + process): the ceiling;
- the Faust worker (``python -m processors.service``, real engine) consuming all of it:
  events/s from its first to its last processed event, and its peak RSS;
- a naive Faust agent fed one message per event that updates a table per event;
- the envelope batcher's added delay under a light, a heavy and a saturating source.

Prints a table with the figures, the targets and whether each holds; returns the figures.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from liqwatch import codec
from liqwatch.bench import WORKER_REPEATS, engine_build
from liqwatch.bench.flush_delay import FlushDelay, measure_flush_delays
from liqwatch.bench.naive_agent import SHARED_SETTINGS
from liqwatch.bench.worker_load import StressLoad, stress_envelopes
from liqwatch.schema import Envelope
from liqwatch.settings import KafkaSettings
from liqwatch.stack._proc import free_port
from liqwatch.stack.kafka import KafkaBroker, create_topics
from liqwatch.topics import Topics

PARTITIONS = 4
PREFIX = "bench."
TARGET_WORKER_EPS = 50_000.0
TARGET_SPEEDUP = 15.0
TARGET_RSS_MB = 300.0
TARGET_FLUSH_MS = 50.0


@dataclass(frozen=True)
class Throughput:
    events: int
    seconds: float
    cpu_seconds: float  # CPU time the process got meanwhile (all threads)
    peak_rss_mb: float = 0.0
    forced_releases: float = 0.0  # merge releases that did not wait (worker only)

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0

    @property
    def events_per_cpu_s(self) -> float:
        """Comparable across runs on a busy machine, where wall-clock rates are not."""
        return self.events / self.cpu_seconds if self.cpu_seconds > 0 else 0.0


def run_worker_bench(
    events: int = 1_500_000,
    naive_events: int = 60_000,
    envelope_span_ms: int = 2_000,
    repeats: int = WORKER_REPEATS,
) -> dict[str, Any]:
    load = StressLoad(events=events, envelope_span_ms=envelope_span_ms)
    envelopes = stress_envelopes(load)
    total = sum(len(e.events) for e in envelopes)
    engine = _engine_alone(envelopes)
    workers: list[Throughput] = []
    naives: list[Throughput] = []
    with tempfile.TemporaryDirectory(prefix="liqwatch-bench-worker-") as tmp:
        broker = KafkaBroker(Path(tmp) / "kafka", heap="1g")
        broker.start(timeout=120)
        try:
            publish_s = _publish_envelopes(broker.bootstrap, envelopes)
            naive_total = _publish_naive_input(broker.bootstrap, envelopes, naive_events)
            # alternated, each run a fresh consumer group reading from the start: a slow spell
            # of a shared machine then falls on both sides of the ratio
            for run in range(repeats):
                workers.append(_run_worker(broker.bootstrap, Path(tmp), total, run))
                naives.append(_run_naive(broker.bootstrap, Path(tmp), naive_total, run))
        finally:
            broker.stop()
    flush = measure_flush_delays()
    result = _result(load, envelopes, total, engine, workers, naives, flush, publish_s)
    print_report(result)
    return result


# --- measurements -----------------------------------------------------------------------------


def _engine_alone(envelopes: list[Envelope]) -> Throughput:
    from processors.engine import Engine, EngineConfig  # noqa: PLC0415

    raw = [codec.encode(e) for e in envelopes]
    engine = Engine(EngineConfig.default())
    started, cpu = time.perf_counter(), time.process_time()
    for blob in raw:
        engine.process(codec.envelope_decoder.decode(blob).events)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    return Throughput(sum(len(e.events) for e in envelopes), elapsed, cpu)


def _publish_envelopes(bootstrap: str, envelopes: list[Envelope]) -> float:
    from producers.kafka_publisher import KafkaPublisher  # noqa: PLC0415

    topics = Topics(PREFIX)
    create_topics(bootstrap, topics.all, PARTITIONS)
    publisher = KafkaPublisher(KafkaSettings(bootstrap_servers=bootstrap, topic_prefix=PREFIX))
    started = time.perf_counter()
    for envelope in envelopes:
        publisher.publish(envelope)
        publisher.poll()
    if publisher.flush(120) or publisher.failed:
        raise RuntimeError("the benchmark input could not be published")
    return time.perf_counter() - started


def _run_worker(bootstrap: str, tmp: Path, total: int, run: int = 0) -> Throughput:
    port = free_port()
    env = {
        **os.environ,
        "LIQWATCH_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "LIQWATCH_KAFKA_TOPIC_PREFIX": PREFIX,
        "LIQWATCH_KAFKA_PARTITIONS": str(PARTITIONS),
        "LIQWATCH_WORKER_APP_ID": f"bench-worker-{run}",
        "LIQWATCH_WORKER_STATE_DIR": str(tmp / f"worker-state-{run}"),
        "LIQWATCH_METRICS_PORT": str(port),
        "LIQWATCH_METRICS_HOST": "127.0.0.1",
    }
    cmd = [sys.executable, "-m", "processors.service"]
    counter = "liqwatch_worker_events_total"
    log = tmp / f"worker-{run}.log"
    return _timed_process(cmd, env, log, port=port, counter=counter, total=total)


NAIVE_TOPIC = f"{PREFIX}naive_events"


def _publish_naive_input(bootstrap: str, envelopes: list[Envelope], wanted: int) -> int:
    """The first ``wanted`` events, one message each; returns how many were published."""
    from confluent_kafka import Producer  # noqa: PLC0415

    create_topics(bootstrap, [NAIVE_TOPIC], PARTITIONS)
    producer = Producer(
        {"bootstrap.servers": bootstrap, "linger.ms": 5, "partitioner": "murmur2_random"}
    )
    sent = 0
    for envelope in envelopes:
        for event in envelope.events[: wanted - sent]:
            producer.produce(NAIVE_TOPIC, key=event.asset.encode(), value=codec.encode(event))
            producer.poll(0)
            sent += 1
        if sent >= wanted:
            break
    if producer.flush(60):
        raise RuntimeError("the naive agent's input could not be published")
    return sent


def _run_naive(bootstrap: str, tmp: Path, total: int, run: int = 0) -> Throughput:
    port = free_port()
    state = tmp / f"naive-state-{run}"
    args = [bootstrap, NAIVE_TOPIC, f"bench-naive-{run}", str(port), str(state)]
    cmd = [sys.executable, "-m", "liqwatch.bench.naive_agent", *args]
    counter = "liqwatch_bench_naive_events_total"
    log = tmp / f"naive-{run}.log"
    return _timed_process(cmd, dict(os.environ), log, port=port, counter=counter, total=total)


def _timed_process(
    cmd: list[str], env: dict[str, str], log: Path, *, port: int, counter: str, total: int
) -> Throughput:
    """Runs a consumer process; times it from its first to its last counted event."""
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        first = _wait(lambda: _sample(port, counter, lambda n: n > 0), proc, log, 180)
        cpu0 = _cpu_seconds(proc.pid)
        # a scrape costs the measured process CPU: poll slowly until the end is near
        _wait(lambda: _sample(port, counter, lambda n: n >= 0.95 * total), proc, log, 900, 0.5)
        last = _wait(lambda: _sample(port, counter, lambda n: n >= total), proc, log, 900)
        cpu1 = _cpu_seconds(proc.pid)
        rss = _peak_rss_mb(proc.pid)
        forced = _metric(port, "liqwatch_worker_merge_forced_releases_total") or 0.0
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    (t0, n0), (t1, n1) = first, last
    return Throughput(int(n1 - n0), t1 - t0, cpu1 - cpu0, rss, forced)


def _sample(port: int, counter: str, ok: Callable[[float], bool]) -> tuple[float, float] | None:
    value = _metric(port, counter)
    now = time.perf_counter()
    return (now, value) if value is not None and ok(value) else None


def _metric(port: int, name: str) -> float | None:
    import urllib.request  # noqa: PLC0415

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
            text = resp.read().decode()
    except OSError:
        return None
    values = [
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name) and line[len(name)] in " {"
    ]
    return sum(values) if values else None


def _wait(
    sample: Callable[[], tuple[float, float] | None],
    proc: subprocess.Popen[bytes],
    log: Path,
    timeout_s: float,
    interval_s: float = 0.02,
) -> tuple[float, float]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got = sample()
        if got is not None:
            return got
        if proc.poll() is not None:
            raise RuntimeError(f"{log.name}: process exited\n{log.read_text()[-3000:]}")
        time.sleep(interval_s)
    raise RuntimeError(f"{log.name}: timed out after {timeout_s:.0f}s\n{log.read_text()[-3000:]}")


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


# --- report -----------------------------------------------------------------------------------


def _result(
    load: StressLoad,
    envelopes: list[Envelope],
    total: int,
    engine: Throughput,
    workers: list[Throughput],
    naives: list[Throughput],
    flush: list[FlushDelay],
    publish_s: float,
) -> dict[str, Any]:
    worker = max(workers, key=lambda t: t.events_per_s)
    naive = max(naives, key=lambda t: t.events_per_s)
    peak_rss = max(t.peak_rss_mb for t in workers)
    speedup = worker.events_per_s / naive.events_per_s if naive.events_per_s else 0.0
    flush_max = max(f.max_ms for f in flush)
    per_kind: dict[str, int] = {}
    for envelope in envelopes:
        per_kind[envelope.kind.value] = per_kind.get(envelope.kind.value, 0) + len(envelope.events)
    return {
        "load": {
            "events": total,
            "mix": {kind: n / total for kind, n in sorted(per_kind.items())},
            "envelopes": len(envelopes),
            "mean_envelope_events": total / len(envelopes),
            "assets": load.assets,
            "instruments": load.instruments,
            "event_time_span_s": load.span_ms / 1000,
            "envelope_span_ms": load.envelope_span_ms,
            "publish_s": publish_s,
        },
        "engine_alone_events_per_s": engine.events_per_s,
        "engine_alone_events_per_cpu_s": engine.events_per_cpu_s,
        "worker_events_per_s": worker.events_per_s,
        "worker_events_per_cpu_s": worker.events_per_cpu_s,
        "worker_envelopes_per_s": worker.events_per_s * len(envelopes) / total,
        "worker_seconds": worker.seconds,
        "worker_peak_rss_mb": peak_rss,
        "worker_merge_forced_releases": max(t.forced_releases for t in workers),
        "worker_runs_events_per_s": [t.events_per_s for t in workers],
        "naive_runs_events_per_s": [t.events_per_s for t in naives],
        "naive_events": naive.events,
        "naive_events_per_s": naive.events_per_s,
        "naive_events_per_cpu_s": naive.events_per_cpu_s,
        "speedup_vs_naive": speedup,
        "speedup_vs_naive_cpu": (
            worker.events_per_cpu_s / naive.events_per_cpu_s if naive.events_per_cpu_s else 0.0
        ),
        "flush_delay": [asdict(f) for f in flush],
        "load_average": os.getloadavg(),
        "checks": {
            "worker >= 50k events/s": worker.events_per_s >= TARGET_WORKER_EPS,
            "worker >= 15x naive": speedup >= TARGET_SPEEDUP,
            "worker RSS <= 300 MB": peak_rss <= TARGET_RSS_MB,
            "flush adds <= 50 ms": flush_max <= TARGET_FLUSH_MS,
        },
    }


Row = tuple[str, str, str, str]


def _verdict(ok: bool) -> str:
    return "OK" if ok else "MISSED"


def _rate_rows(r: dict[str, Any]) -> list[Row]:
    checks = r["checks"]

    def rate(key: str) -> str:
        wall, cpu = r[f"{key}_events_per_s"], r[f"{key}_events_per_cpu_s"]
        return f"{wall:>9,.0f} ev/s   {cpu:>9,.0f} ev/CPU-s"

    return [
        ("engine alone, in-process (ceiling)", rate("engine_alone"), "", ""),
        (
            f"Faust worker ({r['worker_envelopes_per_s']:,.0f} msg/s)",
            rate("worker"),
            f">= {TARGET_WORKER_EPS:,.0f} ev/s",
            _verdict(checks["worker >= 50k events/s"]),
        ),
        ("naive agent: 1 msg + 1 table write per event", rate("naive"), "", ""),
        ("  runs, alternated (the best of each above)", _runs(r), "", ""),
        (
            "worker / naive",
            f"{r['speedup_vs_naive']:>9.1f}x   {r['speedup_vs_naive_cpu']:>9.1f}x per CPU-s",
            f">= {TARGET_SPEEDUP:.0f}x",
            _verdict(checks["worker >= 15x naive"]),
        ),
        (
            "worker merge releases that did not wait",
            f"{r['worker_merge_forced_releases']:>9.0f}",
            "",
            "",
        ),
        (
            "worker peak RSS",
            f"{r['worker_peak_rss_mb']:>9.0f} MB",
            f"<= {TARGET_RSS_MB:.0f} MB",
            _verdict(checks["worker RSS <= 300 MB"]),
        ),
    ]


def _runs(r: dict[str, Any]) -> str:
    def rates(key: str) -> str:
        return " ".join(f"{x / 1000:.1f}k" for x in r[key])

    return f"worker {rates('worker_runs_events_per_s')}, naive {rates('naive_runs_events_per_s')}"


def _flush_rows(r: dict[str, Any]) -> list[Row]:
    return [
        (
            f"flush delay, {f['source']} source",
            f"max {f['max_ms']:.1f} ms, p99 {f['p99_ms']:.1f} ms, "
            f"{f['mean_envelope_events']:.1f} ev/env, loop stall {f['max_loop_stall_ms']:.1f} ms, "
            f"sealed at {f['seal_ms']} ms",
            f"<= {TARGET_FLUSH_MS:.0f} ms",
            _verdict(f["max_ms"] <= TARGET_FLUSH_MS),
        )
        for f in r["flush_delay"]
    ]


def print_report(r: dict[str, Any]) -> None:
    load = r["load"]
    print(
        f"worker benchmark: {load['events']:,} events in {load['envelopes']:,} envelopes "
        f"({load['mean_envelope_events']:.0f} ev/envelope), {load['instruments']} instruments, "
        f"{load['assets']} assets, {load['event_time_span_s'] / 60:.0f} min of event time, "
        f"{PARTITIONS} partitions; machine load average {r['load_average'][0]:.1f} "
        f"on {os.cpu_count()} CPUs (ev/CPU-s stays comparable when the machine is busy)"
    )
    mix = ", ".join(f"{kind} {share:.0%}" for kind, share in load["mix"].items())
    print(f"  stress-day mix: {mix}")
    print(f"  both Faust apps use: {SHARED_SETTINGS}")
    print(f"  the worker's engine: {engine_build()}")
    print(
        f"  envelopes sealed at {load['envelope_span_ms']:,} ms of event time or 300 events "
        "(the live batcher seals at 250 ms: --envelope-span-ms 250 measures that size)"
    )
    rows = _rate_rows(r) + _flush_rows(r)
    name_w = max(len(row[0]) for row in rows)
    value_w = max(len(row[1]) for row in rows)
    for name, value, target, verdict in rows:
        print(f"  {name:<{name_w}}  {value:<{value_w}}  {target:<14} {verdict}")

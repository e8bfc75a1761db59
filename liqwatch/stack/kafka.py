"""A real single-node Apache Kafka broker (KRaft, broker+controller in one JVM) on 127.0.0.1.

The jars come from Maven Central through `mvn dependency:copy-dependencies` on a pom generated
here, so nothing outside the package is needed besides Java 17 and Maven.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from liqwatch.stack._proc import (
    LOCALHOST,
    ManagedProcess,
    StackError,
    ensure_port_free,
    free_port,
    port_open,
    tail,
    wait_for,
)

if TYPE_CHECKING:
    from confluent_kafka.admin import AdminClient

# Latest 4.1.x on Maven Central at the time of writing (4.2+ exist too, but the project pins the
# 4.1 line; the KRaft-only 4.x broker and the --standalone dynamic quorum are what we rely on).
KAFKA_VERSION = "4.1.2"
SCALA_VERSION = "2.13"
# kafka_2.13's pom brings log4j-core/-api 2.25.3 but no SLF4J binding, and the broker logs
# through SLF4J 1.7: without this bridge it would log nothing at all.
LOG4J_VERSION = "2.25.3"
DEPENDENCY_PLUGIN = "3.8.1"

_POM = """<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0"
         xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
         xsi:schemaLocation="http://maven.apache.org/POM/4.0.0
                             https://maven.apache.org/xsd/maven-4.0.0.xsd">
  <modelVersion>4.0.0</modelVersion>
  <groupId>liqwatch.stack</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_{scala}</artifactId>
      <version>{kafka}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j-impl</artifactId>
      <version>{log4j}</version>
    </dependency>
  </dependencies>
</project>
"""

# Plain pattern to stdout, which the launcher redirects to broker.log in the data dir.
_LOG4J2_XML = """<?xml version="1.0" encoding="UTF-8"?>
<Configuration status="WARN" shutdownHook="disable">
  <Appenders>
    <Console name="out" target="SYSTEM_OUT">
      <PatternLayout pattern="[%d] %p %m (%c)%n"/>
    </Console>
  </Appenders>
  <Loggers>
    <!-- Per-request and per-partition chatter: useless here and slow on 2 cores. -->
    <Logger name="kafka.request.logger" level="WARN"/>
    <Logger name="state.change.logger" level="WARN"/>
    <Logger name="org.apache.kafka.storage.internals.log" level="WARN"/>
    <Logger name="kafka.log" level="WARN"/>
    <Logger name="org.apache.kafka.clients" level="WARN"/>
    <Root level="INFO"><AppenderRef ref="out"/></Root>
  </Loggers>
</Configuration>
"""

_JVM_OPTS = (
    "-Xms256m",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-Djava.awt.headless=true",
    # We bind 127.0.0.1 only; IPv4 sockets avoid dual-stack surprises in sandboxes.
    "-Djava.net.preferIPv4Stack=true",
)


def cache_root() -> Path:
    """Where downloaded jars live: $LIQWATCH_STACK_CACHE or ~/.cache/liqwatch."""
    env = os.environ.get("LIQWATCH_STACK_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "liqwatch"


def libs_dir(version: str = KAFKA_VERSION) -> Path:
    return cache_root() / f"kafka-{version}" / "libs"


def kafka_libs_present(version: str = KAFKA_VERSION) -> bool:
    # The marker is written only after a complete download was moved into place.
    return (libs_dir(version) / ".complete").is_file()


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Serialise concurrent fetches (two pytest sessions, a CLI and a test...)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def fetch_kafka(version: str = KAFKA_VERSION, quiet: bool = True) -> Path:
    """Download the broker's runtime jars with Maven unless already cached; return libs dir."""
    target = libs_dir(version)
    if kafka_libs_present(version):
        return target
    if shutil.which("mvn") is None:
        raise StackError("Maven (mvn) is not on PATH: it is needed once to fetch the Kafka jars")
    with _file_lock(target.parent / ".fetch.lock"):
        if kafka_libs_present(version):
            return target
        _download(version, target, quiet)
    return target


def _download(version: str, target: Path, quiet: bool) -> None:
    with tempfile.TemporaryDirectory(prefix="fetch-", dir=target.parent) as tmp:
        work = Path(tmp)
        pom = _POM.format(scala=SCALA_VERSION, kafka=version, log4j=LOG4J_VERSION)
        (work / "pom.xml").write_text(pom)
        staging = work / "libs"
        cmd = [
            "mvn",
            "-B",
            *(["-q"] if quiet else []),
            "-f",
            str(work / "pom.xml"),
            # Pinned: a bare `dependency:` prefix resolves to Maven's ancient default (2.8).
            f"org.apache.maven.plugins:maven-dependency-plugin:{DEPENDENCY_PLUGIN}"
            ":copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={staging}",
        ]
        out = subprocess.run(
            cmd, capture_output=quiet, text=True, check=False, cwd=work, timeout=900
        )
        if out.returncode != 0:
            detail = (out.stdout or "")[-4000:] + (out.stderr or "")[-2000:]
            raise StackError(f"mvn failed to fetch Kafka {version}:\n{detail}")
        if not any(staging.glob(f"kafka_{SCALA_VERSION}-{version}.jar")):
            raise StackError(f"mvn finished but kafka_{SCALA_VERSION}-{version}.jar is missing")
        (staging / ".complete").write_text(f"kafka {version}\n")
        if target.exists():  # a partial leftover from an older, interrupted layout
            shutil.rmtree(target)
        staging.rename(target)


def new_cluster_id() -> str:
    """A Kafka Uuid string: 16 random bytes, URL-safe base64 without padding."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):  # Kafka refuses ids that look like a CLI flag
            return text


def _java() -> str:
    java = shutil.which("java")
    if java is None:
        raise StackError("java is not on PATH: Kafka 4.x needs Java 17+")
    return java


class KafkaBroker:
    """A single-node KRaft broker bound to 127.0.0.1.

    `data_dir` holds server.properties, the log4j2 config, broker.log and the Kafka log dirs.
    Restarting on the same data dir reuses the formatted storage (and its ports, which the
    KRaft voter set remembers).
    """

    def __init__(
        self,
        data_dir: Path | str,
        port: int | None = None,
        controller_port: int | None = None,
        *,
        auto_create_topics: bool = True,
        num_partitions: int = 1,
        heap: str = "512m",
        version: str = KAFKA_VERSION,
        extra_properties: Mapping[str, str] | None = None,
    ) -> None:
        self.data_dir = Path(data_dir).resolve()
        saved = self._saved_ports()
        self.port = port or saved.get("port") or free_port()
        self.controller_port = controller_port or saved.get("controller_port") or free_port()
        self.auto_create_topics = auto_create_topics
        self.num_partitions = num_partitions
        self.heap = heap
        self.version = version
        self.extra_properties = dict(extra_properties or {})
        self.process = ManagedProcess(f"Kafka {version} broker", self.data_dir / "broker.log")

    # -- paths -------------------------------------------------------------------------
    @property
    def properties_path(self) -> Path:
        return self.data_dir / "server.properties"

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "kraft-logs"

    @property
    def bootstrap(self) -> str:
        return f"{LOCALHOST}:{self.port}"

    @property
    def _ports_path(self) -> Path:
        return self.data_dir / "ports.json"

    def _saved_ports(self) -> dict[str, int]:
        # The formatted KRaft storage records the controller endpoint in its voter set, so a
        # restart on the same data dir keeps the ports it was first started with.
        if not self._ports_path.is_file():
            return {}
        data = json.loads(self._ports_path.read_text())
        return {k: int(v) for k, v in data.items() if k in ("port", "controller_port")}

    # -- configuration ------------------------------------------------------------------
    def properties(self) -> dict[str, str]:
        controller = f"{LOCALHOST}:{self.controller_port}"
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.bootstrap.servers": controller,
            "listeners": f"PLAINTEXT://{LOCALHOST}:{self.port},CONTROLLER://{controller}",
            "advertised.listeners": f"PLAINTEXT://{LOCALHOST}:{self.port},"
            f"CONTROLLER://{controller}",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": str(self.log_dir),
            "num.partitions": str(self.num_partitions),
            "auto.create.topics.enable": str(self.auto_create_topics).lower(),
            # Single node: every internal topic must live with one replica.
            "offsets.topic.replication.factor": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            # Fewer internal partitions: the first consumer group / transaction then starts
            # in well under a second instead of creating 50 partitions on 2 cores.
            "offsets.topic.num.partitions": "4",
            "transaction.state.log.num.partitions": "4",
            "group.initial.rebalance.delay.ms": "0",
            # Tests use short consumer session timeouts (the broker default floor is 6 s).
            "group.min.session.timeout.ms": "500",
            # The cleaner's 128 MB default dedupe buffer is a quarter of our heap.
            "log.cleaner.dedupe.buffer.size": str(16 * 1024 * 1024),
            "num.network.threads": "2",
            "num.io.threads": "4",
        }
        props.update(self.extra_properties)
        return props

    def _write_config(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        body = "".join(f"{k}={v}\n" for k, v in self.properties().items())
        self.properties_path.write_text(body)
        (self.data_dir / "log4j2.xml").write_text(_LOG4J2_XML)
        ports = {"port": self.port, "controller_port": self.controller_port}
        self._ports_path.write_text(json.dumps(ports))

    def _java_cmd(self, libs: Path, main: str, *args: str) -> list[str]:
        return [
            _java(),
            f"-Xmx{self.heap}",
            *_JVM_OPTS,
            f"-Dlog4j2.configurationFile={self.data_dir / 'log4j2.xml'}",
            "-cp",
            f"{libs}/*",
            main,
            *args,
        ]

    def _formatted(self) -> bool:
        return (self.log_dir / "meta.properties").is_file()

    def _format(self, libs: Path) -> None:
        cmd = self._java_cmd(
            libs,
            "kafka.tools.StorageTool",
            "format",
            "-t",
            new_cluster_id(),
            "-c",
            str(self.properties_path),
            "--standalone",
        )
        out = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=120)
        if out.returncode != 0:
            raise StackError(f"kafka StorageTool format failed:\n{out.stdout}\n{out.stderr}")

    # -- lifecycle ----------------------------------------------------------------------
    def start(self, timeout: float = 60.0, *, detach: bool = False) -> KafkaBroker:
        """Fetch jars if needed, format storage once, start and wait until it answers."""
        libs = fetch_kafka(self.version)
        ensure_port_free(self.port, "Kafka")
        ensure_port_free(self.controller_port, "Kafka controller")
        self._write_config()
        if not self._formatted():
            self._format(libs)
        cmd = self._java_cmd(libs, "kafka.Kafka", str(self.properties_path))
        self.process.launch(cmd, self.data_dir, None, detach=detach)
        try:
            self.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def wait_ready(self, timeout: float = 60.0) -> None:
        started = time.monotonic()
        # Wait for the socket first: librdkafka would otherwise log a connection-refused line
        # to stderr for every attempt while the JVM boots.
        if not wait_for(lambda: port_open(self.port), timeout, abort=self.process.death_notice):
            raise self._not_ready(timeout)
        left = max(1.0, timeout - (time.monotonic() - started))
        if not wait_for(self.answers, left, interval=0.5, abort=self.process.death_notice):
            raise self._not_ready(timeout)

    def _not_ready(self, timeout: float) -> StackError:
        return StackError(
            f"Kafka broker at {self.bootstrap} not ready after {timeout:.0f}s; last lines of "
            f"{self.process.log_path}:\n{tail(self.process.log_path)}"
        )

    def answers(self) -> bool:
        return broker_answers(self.bootstrap)

    def running(self) -> bool:
        return self.process.running()

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM (controlled shutdown), then SIGKILL after `timeout` seconds."""
        self.process.stop(timeout)


def _admin(bootstrap: str) -> AdminClient:
    from confluent_kafka.admin import AdminClient  # noqa: PLC0415  (keeps CLI start light)

    # log_level 3 (error) hides librdkafka's per-attempt connection chatter on stderr.
    return AdminClient({"bootstrap.servers": bootstrap, "log_level": 3})


def broker_answers(bootstrap: str, timeout: float = 3.0) -> bool:
    """True when a broker at `bootstrap` returns cluster metadata with at least one broker."""
    host, _, port = bootstrap.rpartition(":")
    if not port_open(int(port), host):
        return False
    from confluent_kafka import KafkaException  # noqa: PLC0415

    try:
        meta = _admin(bootstrap).list_topics(timeout=timeout)
    except KafkaException:
        return False
    return bool(meta.brokers)


def create_topics(
    bootstrap: str,
    names: Iterable[str],
    partitions: int = 1,
    *,
    config: Mapping[str, str] | None = None,
    timeout: float = 30.0,
) -> list[str]:
    """Create topics (replication 1); existing topics are left alone. Returns the names."""
    from confluent_kafka import KafkaError, KafkaException  # noqa: PLC0415

    # The documented import path; the package's stubs only re-export it from cimpl.
    from confluent_kafka.admin import NewTopic  # type: ignore[attr-defined]  # noqa: PLC0415

    wanted = list(dict.fromkeys(names))
    if not wanted:
        return []
    admin = _admin(bootstrap)
    new = [NewTopic(n, partitions, 1, config=dict(config or {})) for n in wanted]
    futures = admin.create_topics(new, operation_timeout=timeout, request_timeout=timeout)
    for name, future in futures.items():
        try:
            future.result(timeout)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise StackError(f"could not create topic {name!r}: {exc}") from exc
    _wait_topics_visible(admin, wanted, timeout)
    return wanted


def _wait_topics_visible(admin: AdminClient, names: list[str], timeout: float) -> None:
    # create_topics returns once the controller accepted them; producers that start right
    # away still see UNKNOWN_TOPIC until the broker's metadata cache has the leaders.
    def visible() -> bool:
        topics = admin.list_topics(timeout=5).topics
        return all(n in topics and not topics[n].error for n in names) and all(
            p.leader >= 0 for n in names for p in topics[n].partitions.values()
        )

    if not wait_for(visible, timeout, interval=0.1):
        raise StackError(f"topics {names} not visible with leaders after {timeout:.0f}s")

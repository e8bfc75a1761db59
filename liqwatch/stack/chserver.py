"""A real ClickHouse HTTP server on 127.0.0.1, run from the chdb-core wheel.

chdb-core 26.9 embeds the whole clickhouse-local program. Given `./config.xml` in its working
directory, `SYSTEM START LISTEN HTTP` opens a genuine ClickHouse HTTP endpoint, which stays up
for as long as the query that started it runs. So the server process runs that statement
followed by an endless, idle query, and dies with it. One server per process.

Run as `python -m liqwatch.stack.chserver --data-dir D --port P`; from Python use
`ClickHouseServer`, which starts that module as a child process and waits until it answers.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from xml.sax.saxutils import escape

from liqwatch.stack._proc import (
    LOCALHOST,
    ManagedProcess,
    StackError,
    ensure_port_free,
    free_port,
    python_env,
    tail,
    wait_for,
)

# Name of the directory (inside the data dir) holding config.xml, users.xml and server.log.
RUN_SUBDIR = "_liqwatch_chserver"

_SERVE_SQL = (
    "SYSTEM START LISTEN HTTP; "
    "SELECT sleepEachRow(1) FROM system.numbers SETTINGS max_block_size = 1 FORMAT Null"
)

_CONFIG_XML = """<clickhouse>
  <listen_host>{host}</listen_host>
  <http_port>{port}</http_port>
  <!-- Keep every path inside the data dir: the defaults point at /var/lib/clickhouse. -->
  <tmp_path>{data}/tmp/</tmp_path>
  <user_files_path>{data}/user_files/</user_files_path>
  <format_schema_path>{data}/format_schemas/</format_schema_path>
  <users_config>{run}/users.xml</users_config>
</clickhouse>
"""

# chDB compiles in async_insert=1. Sinks and tests expect an INSERT to be visible once it
# returns and to fail loudly, so the default profile turns it off. clickhouse-local only reads
# profiles/users from a separate users_config file, not from config.xml itself.
_USERS_XML = """<clickhouse>
  <profiles>
    <default>
      <async_insert>0</async_insert>
    </default>
  </profiles>
  <users>
    <default>
      <password></password>
      <networks><ip>127.0.0.1</ip></networks>
      <profile>default</profile>
      <quota>default</quota>
      <access_management>1</access_management>
    </default>
  </users>
  <quotas><default></default></quotas>
</clickhouse>
"""


def run_dir_for(data_dir: Path) -> Path:
    return data_dir / RUN_SUBDIR


def write_config(data_dir: Path, port: int, host: str = LOCALHOST) -> Path:
    """Write config.xml and users.xml for `data_dir`; return the directory holding them."""
    run = run_dir_for(data_dir)
    run.mkdir(parents=True, exist_ok=True)
    values = {
        "host": escape(host),
        "port": port,
        "data": escape(str(data_dir)),
        "run": escape(str(run)),
    }
    (run / "config.xml").write_text(_CONFIG_XML.format(**values))
    (run / "users.xml").write_text(_USERS_XML)
    return run


def _exit_with_parent(parent_pid: int) -> None:
    """Die when the process that started us is gone (killed test runner, crashed CLI)."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def serve(data_dir: Path, port: int, host: str = LOCALHOST) -> int:
    """Run the server in this process until killed. Returns an exit code if the query ends."""
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    run = write_config(data_dir, port, host)
    # clickhouse-local reads ./config.xml, so the working directory matters.
    os.chdir(run)
    import chdb._chdb as chdb_native  # noqa: PLC0415  (heavy: only in the server process)

    # The private entry point that runs the whole clickhouse-local program; the wheel's type
    # stub does not declare it.
    run_local: Callable[..., object] = chdb_native.query  # type: ignore[attr-defined]
    print(f"chserver: serving http://{host}:{port} from {data_dir}", flush=True)
    # TabSeparated becomes the server's default output format for HTTP queries.
    result = run_local(_SERVE_SQL, "TabSeparated", path=str(data_dir))
    error = getattr(result, "error_message", None)
    detail = error() if callable(error) else result
    print(f"chserver: serving query ended unexpectedly: {detail}", flush=True)
    return 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m liqwatch.stack.chserver")
    parser.add_argument("--data-dir", required=True, type=Path)
    parser.add_argument("--port", required=True, type=int)
    parser.add_argument("--host", default=LOCALHOST)
    parser.add_argument(
        "--parent-pid", type=int, default=None, help="exit when this process is gone"
    )
    args = parser.parse_args(argv)
    if args.parent_pid is not None:
        _exit_with_parent(args.parent_pid)
    try:
        return serve(args.data_dir, args.port, args.host)
    except Exception as exc:  # report any chDB error as a clean exit code
        print(f"chserver: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        return 1


def ping(url: str, timeout: float = 2.0) -> bool:
    """True when GET {url}/ping answers `Ok.` (ClickHouse's liveness endpoint)."""
    try:
        with urllib.request.urlopen(f"{url}/ping", timeout=timeout) as resp:  # noqa: S310
            body: bytes = resp.read()
    except (urllib.error.URLError, OSError):
        return False
    return body.strip() == b"Ok."


def select_one(host: str, port: int) -> bool:
    """True when clickhouse-connect (the project's only client) can run SELECT 1."""
    import clickhouse_connect  # noqa: PLC0415  (slow import, only needed here)
    from clickhouse_connect.driver.exceptions import ClickHouseError  # noqa: PLC0415

    try:
        client = clickhouse_connect.get_client(host=host, port=port, connect_timeout=2)
    except (ClickHouseError, OSError):
        return False
    try:
        return bool(client.command("SELECT 1") == 1)
    except (ClickHouseError, OSError):
        return False
    finally:
        client.close()


class ClickHouseServer:
    """Parent-side handle: runs `python -m liqwatch.stack.chserver` as a child process.

    stop() and start() may be called repeatedly; the server comes back on the same port and
    data dir with its data intact (fault-injection tests rely on that).
    """

    def __init__(
        self, data_dir: Path | str, port: int | None = None, host: str = LOCALHOST
    ) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.host = host
        self.port = port or free_port(host)
        self.process = ManagedProcess(
            "ClickHouse (chdb) server", run_dir_for(self.data_dir) / "server.log"
        )

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def command(self, *, detach: bool) -> list[str]:
        cmd = [
            sys.executable,
            "-m",
            "liqwatch.stack.chserver",
            "--data-dir",
            str(self.data_dir),
            "--port",
            str(self.port),
            "--host",
            self.host,
        ]
        # A detached server must outlive the CLI that started it.
        return cmd if detach else [*cmd, "--parent-pid", str(os.getpid())]

    def start(self, timeout: float = 60.0, *, detach: bool = False) -> ClickHouseServer:
        """Start the server process and wait until /ping and SELECT 1 both work."""
        # Waiting for a previous process on the same port can matter after stop(): the old
        # listener may linger for a moment while the kernel tears the process down.
        if not wait_for(lambda: not ping(self.url, 0.5), 10.0):
            raise StackError(f"ClickHouse: something already answers on {self.url}")
        ensure_port_free(self.port, "ClickHouse", self.host)
        run_dir_for(self.data_dir).mkdir(parents=True, exist_ok=True)
        # Attached servers get --parent-pid and watch their parent themselves: no sidecar.
        self.process.launch(
            self.command(detach=detach), self.data_dir, python_env(), detach=detach, watchdog=False
        )
        try:
            self.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def ensure_started(self, timeout: float = 60.0) -> ClickHouseServer:
        """Start unless already running (used to heal after a test that stopped it)."""
        if not self.running():
            self.start(timeout)
        return self

    def wait_ready(self, timeout: float = 60.0) -> None:
        ready = wait_for(self.answers, timeout, interval=0.1, abort=self.process.death_notice)
        if not ready:
            raise StackError(
                f"ClickHouse at {self.url} not ready after {timeout:.0f}s; last lines of "
                f"{self.process.log_path}:\n{tail(self.process.log_path)}"
            )

    def answers(self) -> bool:
        return ping(self.url) and select_one(self.host, self.port)

    def running(self) -> bool:
        return self.process.running()

    def stop(self, timeout: float = 15.0) -> None:
        self.process.stop(timeout)


if __name__ == "__main__":
    sys.exit(main())

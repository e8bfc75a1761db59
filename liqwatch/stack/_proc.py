"""Process and socket helpers shared by the Kafka and ClickHouse handles.

Everything here works on process ids we started ourselves: a pid is only signalled after
checking that it still belongs to the process we recorded (same start time in /proc), so a
recycled pid is never killed by mistake.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

LOCALHOST = "127.0.0.1"

# Runs in a short-lived intermediate interpreter: it starts the real server in a new session
# and exits at once, so the server is re-parented away from the caller. That way the caller
# (a CLI, or a test process using CliRunner) holds no Popen object for a process it does not
# wait for, and never collects zombies or "subprocess still running" ResourceWarnings.
_LAUNCHER = """
import json, os, subprocess, sys
spec = json.loads(sys.argv[1])
with open(spec["log"], "ab") as log:
    proc = subprocess.Popen(spec["argv"], cwd=spec["cwd"], env=spec["env"],
                            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
sys.stdout.write(str(proc.pid))
sys.stdout.flush()
os._exit(0)
"""


class StackError(RuntimeError):
    """A local server could not be fetched, started or reached."""


@dataclass(frozen=True)
class ProcessRef:
    """A pid plus its kernel start time, which together identify one process for good."""

    pid: int
    start_time: int

    @classmethod
    def of(cls, pid: int) -> ProcessRef:
        start = proc_start_time(pid)
        if start is None:
            raise StackError(f"process {pid} vanished right after it was started")
        return cls(pid, start)

    def alive(self) -> bool:
        return proc_start_time(self.pid) == self.start_time and not _is_zombie(self.pid)

    def to_json(self) -> dict[str, int]:
        return {"pid": self.pid, "start_time": self.start_time}

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> ProcessRef:
        pid, start = data["pid"], data["start_time"]
        if not isinstance(pid, int) or not isinstance(start, int):
            raise StackError(f"bad process record: {dict(data)!r}")
        return cls(pid, start)


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name (field 2) is in parentheses and may contain spaces: split after it.
    return raw[raw.rindex(")") + 2 :].split()


def proc_start_time(pid: int) -> int | None:
    """Start time of `pid` in clock ticks since boot (field 22 of /proc/PID/stat)."""
    fields = _stat_fields(pid)
    return None if fields is None else int(fields[19])


def _is_zombie(pid: int) -> bool:
    fields = _stat_fields(pid)
    return fields is not None and fields[0] in ("Z", "X")


def free_port(host: str = LOCALHOST) -> int:
    """A TCP port that was free a moment ago (the usual bind-to-0 trick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def port_open(port: int, host: str = LOCALHOST, timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def ensure_port_free(port: int, what: str, host: str = LOCALHOST) -> None:
    """Fail early with a clear message instead of letting a server die on bind()."""
    if port_open(port, host):
        raise StackError(f"{what}: port {host}:{port} is already in use")


def tail(path: Path, lines: int = 40) -> str:
    """The last `lines` lines of a log file, for error messages."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 64 * 1024))
            text = fh.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])


def wait_for(
    check: Callable[[], bool],
    timeout: float,
    interval: float = 0.2,
    abort: Callable[[], str | None] | None = None,
) -> bool:
    """Poll `check` until it is true or `timeout` passes.

    `abort` returns a reason when waiting is pointless (the server process died); the reason
    is raised as StackError so callers fail fast instead of sitting out the whole timeout.
    """
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return True
        if abort is not None and (reason := abort()) is not None:
            raise StackError(reason)
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def spawn(
    argv: Sequence[str], cwd: Path, log_path: Path, env: Mapping[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start a child we own and wait for; its output is appended to `log_path`."""
    with log_path.open("ab") as log:
        # A new session keeps a terminal Ctrl-C aimed at the test runner from reaching the
        # server half-way through teardown; the owner stops it explicitly.
        return subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=dict(env) if env is not None else None,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def spawn_detached(
    argv: Sequence[str], cwd: Path, log_path: Path, env: Mapping[str, str] | None = None
) -> ProcessRef:
    """Start a server that outlives the caller (double fork through a tiny launcher)."""
    spec = {
        "argv": list(argv),
        "cwd": str(cwd),
        "log": str(log_path),
        "env": dict(env) if env is not None else dict(os.environ),
    }
    out = subprocess.run(
        [sys.executable, "-c", _LAUNCHER, json.dumps(spec)],
        capture_output=True,
        check=False,
        timeout=60,
    )
    if out.returncode != 0:
        raise StackError(f"could not launch {argv[0]}: {out.stderr.decode(errors='replace')}")
    return ProcessRef.of(int(out.stdout))


def terminate(
    ref: ProcessRef, timeout: float, popen: subprocess.Popen[bytes] | None = None
) -> None:
    """SIGTERM, wait up to `timeout` seconds, then SIGKILL. No-op if already gone."""
    if popen is not None:
        _terminate_child(popen, timeout)
        return
    if not ref.alive():
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(ref.pid, signal.SIGTERM)
    if wait_for(lambda: not ref.alive(), timeout, interval=0.1):
        return
    if ref.alive():
        with contextlib.suppress(ProcessLookupError):
            os.kill(ref.pid, signal.SIGKILL)
    wait_for(lambda: not ref.alive(), 10.0, interval=0.05)


def _terminate_child(popen: subprocess.Popen[bytes], timeout: float) -> None:
    if popen.poll() is not None:
        return
    popen.terminate()
    try:
        popen.wait(timeout)
    except subprocess.TimeoutExpired:
        popen.kill()
        popen.wait(10.0)


class ManagedProcess:
    """One server process: started attached (owned, waited for) or detached (by pid).

    Attached processes are also stopped by an atexit hook, so an interpreter that exits
    without running its teardown (an error in a fixture, a sys.exit) leaves nothing behind.
    """

    def __init__(self, name: str, log_path: Path) -> None:
        self.name = name
        self.log_path = log_path
        self.ref: ProcessRef | None = None
        self._popen: subprocess.Popen[bytes] | None = None
        self._watchdog: subprocess.Popen[bytes] | None = None

    def launch(
        self,
        argv: Sequence[str],
        cwd: Path,
        env: Mapping[str, str] | None,
        *,
        detach: bool,
        watchdog: bool = True,
    ) -> None:
        """Start `argv`. `watchdog=False` when the child already exits with its parent."""
        if self.running():
            raise StackError(f"{self.name} is already running (pid {self.pid})")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        if detach:
            self._popen = None
            self.ref = spawn_detached(argv, cwd, self.log_path, env)
            return
        self._popen = spawn(argv, cwd, self.log_path, env)
        self.ref = ProcessRef.of(self._popen.pid)
        atexit.register(self.stop)
        if watchdog:
            self._watchdog = _start_watchdog(self.ref, env)

    @property
    def pid(self) -> int | None:
        return None if self.ref is None else self.ref.pid

    def running(self) -> bool:
        if self._popen is not None:
            return self._popen.poll() is None
        return self.ref is not None and self.ref.alive()

    def death_notice(self) -> str | None:
        """Why waiting for readiness is pointless, or None while the process lives."""
        if self.ref is None or self.running():
            return None
        code = "" if self._popen is None else f" with code {self._popen.returncode}"
        return (
            f"{self.name} exited{code} during start-up; last log lines "
            f"({self.log_path}):\n{tail(self.log_path)}"
        )

    def stop(self, timeout: float = 15.0) -> None:
        if self.ref is None:
            return
        terminate(self.ref, timeout, self._popen)
        atexit.unregister(self.stop)
        if self._watchdog is not None:
            _terminate_child(self._watchdog, 5.0)
        self._popen = self._watchdog = None
        self.ref = None


def _start_watchdog(child: ProcessRef, env: Mapping[str, str] | None) -> subprocess.Popen[bytes]:
    """See liqwatch.stack._watchdog: stops `child` if this process dies without stopping it."""
    argv = [sys.executable, "-m", "liqwatch.stack._watchdog", str(os.getpid())]
    argv += [str(child.pid), str(child.start_time)]
    return subprocess.Popen(
        argv, env=python_env(env), stdin=subprocess.DEVNULL, start_new_session=True
    )


def python_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment for a `python -m liqwatch.stack...` child.

    The child must import this very package even when it is not installed (tests run from a
    checkout, with any working directory), so our source root goes first on its path.
    """
    env = dict(os.environ if base is None else base)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return env

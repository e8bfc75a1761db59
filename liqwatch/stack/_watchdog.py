"""Sidecar that stops a server once the process owning it has died.

`python -m liqwatch.stack._watchdog OWNER_PID CHILD_PID CHILD_START_TIME`: an attached server
(a test session's Kafka broker) must not outlive a test runner that was SIGKILLed or crashed
before its teardown ran. The JVM cannot watch its parent itself, so this tiny process does.
"""

from __future__ import annotations

import sys
import time

from liqwatch.stack._proc import ProcessRef, proc_start_time, terminate


def watch(owner_pid: int, child: ProcessRef, interval: float = 1.0) -> int:
    owner_start = proc_start_time(owner_pid)
    while child.alive():
        if owner_start is None or proc_start_time(owner_pid) != owner_start:
            terminate(child, timeout=15.0)
            return 0
        time.sleep(interval)
    return 0


def main(argv: list[str]) -> int:
    owner, child, start = (int(a) for a in argv)
    return watch(owner, ProcessRef(child, start))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

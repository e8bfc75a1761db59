"""Worker readiness for ``/readyz``: source partitions assigned and the state table recovered."""

from __future__ import annotations

from collections.abc import Callable


class WorkerReadiness:
    """/readyz for the worker: source partitions assigned and the state table recovered.

    ``check`` is called from the health server's thread; it only reads plain attributes.
    """

    def __init__(self) -> None:
        self._status = "starting"
        self._partitions = 0
        self._merge_stall: Callable[[], str] = lambda: ""

    def watch_merge(self, stall: Callable[[], str]) -> None:
        """``stall()`` says what a stalled merge waits for ("" while it flows)."""
        self._merge_stall = stall

    def check(self) -> tuple[bool, str]:
        status, partitions = self._status, self._partitions
        if status != "ready":
            return False, status
        if partitions == 0:
            return False, "no source partitions assigned"
        stall = self._merge_stall()
        if stall:
            return False, f"merge stalled, waiting for {stall}"
        return True, f"ready: {partitions} source topic-partitions"

    def rebalancing(self) -> None:
        self._status = "rebalancing"

    def assigned(self, partitions: int) -> None:
        self._partitions = partitions
        self._status = "recovering state table"

    def recovered(self) -> None:
        self._status = "ready"

"""Persistent record of what was already sent (or deliberately suppressed) to which target.

The alerter restarts and Kafka redelivers; this SQLite file in the state dir is what makes a
replay of the same alert id harmless. A failed delivery is not recorded, so a replay retries it.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS decided (
    key TEXT PRIMARY KEY,
    alert_id TEXT NOT NULL,
    update_seq INTEGER NOT NULL,
    route TEXT NOT NULL,
    target_key TEXT NOT NULL,
    status TEXT NOT NULL,
    ts INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS decided_alert ON decided (alert_id, update_seq);
"""


def delivery_key(alert_id: str, update_seq: int, route: str, target_key: str) -> str:
    return f"{alert_id}|{update_seq}|{route}|{target_key}"


class SentStore:
    """Thread-safe; each call is a short transaction (WAL, one file)."""

    def __init__(self, path: Path, retention_days: float = 30.0) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self.prune(int(time.time() * 1000 - retention_days * 86_400_000))

    def decided(self, alert_id: str, update_seq: int, route: str, target_key: str) -> str | None:
        """The recorded status (sent / suppressed) or None if never decided."""
        key = delivery_key(alert_id, update_seq, route, target_key)
        with self._lock:
            row = self._db.execute("SELECT status FROM decided WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def record(
        self, alert_id: str, update_seq: int, route: str, target_key: str, *, status: str, ts: int
    ) -> None:
        key = delivery_key(alert_id, update_seq, route, target_key)
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO decided VALUES (?, ?, ?, ?, ?, ?, ?)",
                (key, alert_id, update_seq, route, target_key, status, ts),
            )

    def sent_targets(self, alert_id: str) -> set[tuple[str, str]]:
        """(route, target_key) pairs that received the alert itself: where its updates go."""
        with self._lock:
            rows = self._db.execute(
                "SELECT route, target_key FROM decided "
                "WHERE alert_id = ? AND update_seq = 0 AND status = 'sent'",
                (alert_id,),
            ).fetchall()
        return {(str(r), str(t)) for r, t in rows}

    def prune(self, older_than_ms: int) -> int:
        with self._lock:
            cursor = self._db.execute("DELETE FROM decided WHERE ts < ?", (older_than_ms,))
        return int(cursor.rowcount)

    def close(self) -> None:
        with self._lock:
            self._db.close()

"""The sink's record of stored Kafka offsets in ClickHouse (table ``sink_offsets``).

Kafka's committed offset says where to resume; this record says how far batches were started,
which can be further when the sink died between an insert and its offset commit: what is read
again up to there may be stored already. 'stored' records come from earlier sink versions only
(they said what was stored for sure, and are still honoured).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from clickhouse_connect.driver.client import Client

from sinks.clickhouse.rows import TableRows

TopicPartition = tuple[str, int]
OffsetRange = tuple[str, int, int, int]  # topic, partition, first offset, last offset

STARTED = "started"
STORED = "stored"  # written by earlier sink versions only; still read
COLUMNS = ("group_id", "topic", "partition", "first_offset", "last_offset", "batch_id", "stage")


@dataclass(frozen=True)
class PartitionProgress:
    stored_through: int = -1  # every offset up to this one is stored
    started_through: int = -1  # a batch reaching this far was started (maybe not finished)

    @property
    def interrupted_through(self) -> int:
        """Last offset of a batch that was started but never recorded as stored, or -1."""
        return self.started_through if self.started_through > self.stored_through else -1


def progress_rows(
    group_id: str, ranges: Iterable[OffsetRange], batch_id: str, stage: str
) -> TableRows:
    rows = [(group_id, t, p, first, last, batch_id, stage) for t, p, first, last in ranges]
    columns = [list(c) for c in zip(*rows, strict=True)] if rows else [[] for _ in COLUMNS]
    return TableRows("sink_offsets", COLUMNS, columns)


def load_progress(
    client: Client, database: str, group_id: str, partitions: Iterable[TopicPartition]
) -> dict[TopicPartition, PartitionProgress]:
    wanted = set(partitions)
    if not wanted:
        return {}
    query = (
        "SELECT topic, partition, "  # noqa: S608  (the database is a checked identifier)
        f"maxIf(last_offset, stage = '{STORED}'), countIf(stage = '{STORED}'), "
        f"maxIf(last_offset, stage = '{STARTED}'), countIf(stage = '{STARTED}') "
        f"FROM {database}.sink_offsets "
        "WHERE group_id = {group:String} AND topic IN {topics:Array(String)} "
        "GROUP BY topic, partition"
    )
    params = {"group": group_id, "topics": sorted({t for t, _ in wanted})}
    result = client.query(query, parameters=params)
    found = {}
    for topic, partition, stored, n_stored, started, n_started in result.result_rows:
        tp = (str(topic), int(partition))
        if tp in wanted:
            found[tp] = PartitionProgress(
                stored_through=int(stored) if n_stored else -1,
                started_through=int(started) if n_started else -1,
            )
    return {tp: found.get(tp, PartitionProgress()) for tp in wanted}

-- The Kafka sink's own bookkeeping. Before inserting a batch the sink records, per partition,
-- the offsets the batch covers ('started'); after every row is stored it records them again
-- ('stored'), and only then commits the offsets to Kafka. After a restart or a rebalance:
--   * offsets up to the last 'stored' one are skipped (stored already, commit lost or not);
--   * offsets up to a later 'started' one belong to a batch interrupted half-way: its
--     liquidations are checked one by one against the table before they are inserted again,
--     so the 1-minute aggregates never count a liquidation twice.
-- Placeholders: ${db}.

CREATE TABLE IF NOT EXISTS ${db}.sink_offsets
(
    group_id LowCardinality(String) COMMENT 'Kafka consumer group of the sink',
    topic LowCardinality(String) COMMENT 'Kafka topic',
    partition UInt32 COMMENT 'Kafka partition',
    first_offset Int64 COMMENT 'First offset of the batch in this partition',
    last_offset Int64 COMMENT 'Last offset of the batch in this partition',
    batch_id String COMMENT 'Batch id, also the prefix of its insert deduplication tokens',
    stage Enum8('started' = 1, 'stored' = 2) COMMENT 'started: about to insert; stored: every row of the batch is in ClickHouse',
    ts DateTime64(3, 'UTC') DEFAULT now64(3) COMMENT 'When the stage was recorded (UTC)'
)
ENGINE = MergeTree
PARTITION BY toYYYYMMDD(ts)
ORDER BY (group_id, topic, partition, last_offset, stage)
TTL toDateTime(ts) + toIntervalDay(7)
COMMENT 'Kafka offsets the sink has stored, per consumer group and partition (kept 7 days).';

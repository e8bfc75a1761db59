-- One-minute liquidation aggregates per asset x venue x side x price bucket, kept up to date by
-- a materialized view on every insert into liquidations.
-- Buckets: one global log-spaced 10 bp grid anchored at price 1.0, the same for every asset:
--   bucket_index = floor(ln(price) / ln(1.001))
--   bucket       = 1.001 ^ bucket_index   (the bucket's lower price; the upper is bucket * 1.001)
-- toInt32(floor(bucket_index / 10)) groups ~1 % buckets, / 50 ~5 %, and so on (floor, not intDiv: prices below 1 have negative indexes).
-- Placeholders: ${db}; ${aggregate_ttl}: a TTL clause or nothing.

CREATE TABLE IF NOT EXISTS ${db}.liquidations_1m
(
    ts_minute DateTime('UTC') COMMENT 'Start of the minute (UTC) of ts_event' CODEC(DoubleDelta, ZSTD(1)),
    asset LowCardinality(String) COMMENT 'Base asset',
    venue LowCardinality(String) COMMENT 'Exchange',
    side LowCardinality(String) COMMENT 'The position liquidated: long or short',
    bucket Float64 COMMENT 'Lower price of the 10 bp log bucket: 1.001 ^ bucket_index (upper: bucket * 1.001)' CODEC(ZSTD(1)),
    bucket_index Int32 ALIAS toInt32(round(log(bucket) / log(1.001))) COMMENT 'Bucket number on the global grid: floor(ln(price) / ln(1.001)); toInt32(floor(bucket_index / 10)) gives ~1 % buckets',
    notional_usd SimpleAggregateFunction(sum, Float64) COMMENT 'Sum of notional_usd' CODEC(ZSTD(1)),
    qty SimpleAggregateFunction(sum, Float64) COMMENT 'Sum of qty (base units)' CODEC(ZSTD(1)),
    events SimpleAggregateFunction(sum, UInt64) COMMENT 'Number of liquidations' CODEC(ZSTD(1)),
    max_notional_usd SimpleAggregateFunction(max, Float64) COMMENT 'Largest single liquidation (USD)' CODEC(ZSTD(1))
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(ts_minute)
ORDER BY (asset, ts_minute, venue, side, bucket)
${aggregate_ttl}
SETTINGS non_replicated_deduplication_window = 1000
COMMENT '1-minute liquidation aggregates from the liquidations_1m_mv view. Merges are eventual: always sum(notional_usd) ... GROUP BY.';

CREATE MATERIALIZED VIEW IF NOT EXISTS ${db}.liquidations_1m_mv TO ${db}.liquidations_1m
AS SELECT
    toStartOfMinute(toDateTime(ts_event, 'UTC')) AS ts_minute,
    asset,
    venue,
    side,
    pow(1.001, floor(log(price) / log(1.001))) AS bucket,
    sum(usd) AS notional_usd,
    sum(base) AS qty,
    toUInt64(count()) AS events,
    max(usd) AS max_notional_usd
-- Renamed so the output aliases above do not shadow the inputs of the aggregates.
FROM (SELECT ts_event, asset, venue, side, price, notional_usd AS usd, qty AS base
      FROM ${db}.liquidations
      -- A bad price must not fail the whole insert: it stays in liquidations, not bucketed.
      WHERE price > 0 AND isFinite(price))
GROUP BY ts_minute, asset, venue, side, bucket;

-- Backfill rows written before this migration (a fresh database has none). The guard keeps a
-- re-run after a crash between this statement and the version record from counting twice.
INSERT INTO ${db}.liquidations_1m (ts_minute, asset, venue, side, bucket, notional_usd, qty, events, max_notional_usd)
SELECT
    toStartOfMinute(toDateTime(ts_event, 'UTC')) AS ts_minute,
    asset,
    venue,
    side,
    pow(1.001, floor(log(price) / log(1.001))) AS bucket,
    sum(usd) AS notional_usd,
    sum(base) AS qty,
    toUInt64(count()) AS events,
    max(usd) AS max_notional_usd
FROM (SELECT ts_event, asset, venue, side, price, notional_usd AS usd, qty AS base
      FROM ${db}.liquidations FINAL
      WHERE price > 0 AND isFinite(price))
WHERE (SELECT count() FROM ${db}.liquidations_1m) = 0
GROUP BY ts_minute, asset, venue, side, bucket;

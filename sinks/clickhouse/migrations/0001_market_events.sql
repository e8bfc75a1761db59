-- Raw market events and dead letters.
-- Placeholders: ${db} the database, ${raw_ttl} / ${dead_letter_ttl} a TTL clause or nothing.
-- ReplacingMergeTree on the natural key (event_id and the sort columns): Kafka delivers at
-- least once, so a replayed event lands twice at first and collapses on merge or under FINAL.

CREATE DATABASE IF NOT EXISTS ${db};

CREATE TABLE IF NOT EXISTS ${db}.liquidations
(
    venue LowCardinality(String) COMMENT 'Exchange: binance, binance_coinm, bybit, okx, deribit, bitmex',
    symbol LowCardinality(String) COMMENT 'The venue''s own symbol, e.g. BTCUSDT',
    instrument LowCardinality(String) COMMENT 'Normalized instrument, e.g. BTC-USDT-PERP, BTC-USD-INVERSE',
    asset LowCardinality(String) COMMENT 'Base asset, e.g. BTC',
    side LowCardinality(String) COMMENT 'The position that was liquidated: long or short (never the order side)',
    price Float64 COMMENT 'Liquidation order / bankruptcy price (quote currency)' CODEC(Gorilla, ZSTD(1)),
    avg_price Nullable(Float64) COMMENT 'Average fill price when the venue gives it' CODEC(Gorilla, ZSTD(1)),
    qty Float64 COMMENT 'Quantity in base units' CODEC(ZSTD(1)),
    notional_usd Float64 COMMENT 'Notional in USD' CODEC(ZSTD(1)),
    completeness LowCardinality(String) COMMENT 'complete | sampled (e.g. Binance: 1 per symbol per second) | partial (e.g. OKX)',
    ts_event DateTime64(3, 'UTC') COMMENT 'Venue time of the liquidation (ms, UTC)' CODEC(DoubleDelta, ZSTD(1)),
    ts_recv DateTime64(3, 'UTC') COMMENT 'Time liqwatch received it (ms, UTC)' CODEC(Delta, ZSTD(1)),
    event_id String COMMENT 'Deterministic id from the venue frame: the dedupe key' CODEC(ZSTD(1))
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(ts_event)
ORDER BY (asset, venue, ts_event, event_id)
${raw_ttl}
SETTINGS non_replicated_deduplication_window = 1000
COMMENT 'Forced liquidations from every venue, one row per event. Query with FINAL (or GROUP BY event_id) for exact counts.';

CREATE TABLE IF NOT EXISTS ${db}.open_interest
(
    venue LowCardinality(String) COMMENT 'Exchange',
    symbol LowCardinality(String) COMMENT 'The venue''s own symbol',
    instrument LowCardinality(String) COMMENT 'Normalized instrument',
    asset LowCardinality(String) COMMENT 'Base asset',
    oi_base Float64 COMMENT 'Open interest in base units' CODEC(Gorilla, ZSTD(1)),
    oi_usd Float64 COMMENT 'Open interest in USD' CODEC(Gorilla, ZSTD(1)),
    ts_event DateTime64(3, 'UTC') COMMENT 'Venue time (ms, UTC)' CODEC(DoubleDelta, ZSTD(1)),
    ts_recv DateTime64(3, 'UTC') COMMENT 'Receive time (ms, UTC)' CODEC(Delta, ZSTD(1)),
    event_id String COMMENT 'Deterministic id: the dedupe key' CODEC(ZSTD(1))
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(ts_event)
ORDER BY (asset, venue, instrument, ts_event, event_id)
${raw_ttl}
SETTINGS non_replicated_deduplication_window = 1000
COMMENT 'Open interest samples per venue and instrument. Query with FINAL for exact counts.';

CREATE TABLE IF NOT EXISTS ${db}.mark_price
(
    venue LowCardinality(String) COMMENT 'Exchange',
    symbol LowCardinality(String) COMMENT 'The venue''s own symbol',
    instrument LowCardinality(String) COMMENT 'Normalized instrument',
    asset LowCardinality(String) COMMENT 'Base asset',
    mark_price Float64 COMMENT 'Mark price' CODEC(Gorilla, ZSTD(1)),
    index_price Nullable(Float64) COMMENT 'Index price when given' CODEC(Gorilla, ZSTD(1)),
    funding_rate Nullable(Float64) COMMENT 'Current funding rate (fraction per funding interval)' CODEC(Gorilla, ZSTD(1)),
    next_funding_time Nullable(DateTime64(3, 'UTC')) COMMENT 'Next funding time (ms, UTC)' CODEC(ZSTD(1)),
    ts_event DateTime64(3, 'UTC') COMMENT 'Venue time (ms, UTC)' CODEC(DoubleDelta, ZSTD(1)),
    ts_recv DateTime64(3, 'UTC') COMMENT 'Receive time (ms, UTC)' CODEC(Delta, ZSTD(1)),
    event_id String COMMENT 'Deterministic id: the dedupe key' CODEC(ZSTD(1))
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(ts_event)
ORDER BY (asset, venue, instrument, ts_event, event_id)
${raw_ttl}
SETTINGS non_replicated_deduplication_window = 1000
COMMENT 'Mark/index price and funding ticks (producers may thin ticks). Query with FINAL for exact counts.';

CREATE TABLE IF NOT EXISTS ${db}.dead_letters
(
    source LowCardinality(String) COMMENT 'Component that dropped it: producer/parse, worker, sink, alerter',
    venue LowCardinality(String) COMMENT 'Venue, or empty when not venue-specific',
    channel LowCardinality(String) COMMENT 'Venue channel, REST path or Kafka topic it came from',
    reason String COMMENT 'Why it could not be used',
    raw String COMMENT 'The raw frame or message, as received' CODEC(ZSTD(3)),
    ts_recv DateTime64(3, 'UTC') COMMENT 'When it was received (ms, UTC)' CODEC(Delta, ZSTD(1))
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(ts_recv)
ORDER BY (source, venue, ts_recv, cityHash64(channel, reason, raw))
${dead_letter_ttl}
SETTINGS non_replicated_deduplication_window = 1000
COMMENT 'Frames and records liqwatch could not use, kept with the reason so nothing is lost silently.';

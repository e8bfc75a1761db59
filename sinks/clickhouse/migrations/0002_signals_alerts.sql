-- Heatmap snapshots, detector signals, alerts and their life cycle.
-- Placeholders: ${db}; ${heatmap_ttl} / ${signal_ttl}: a TTL clause or nothing.

CREATE TABLE IF NOT EXISTS ${db}.heatmap
(
    asset LowCardinality(String) COMMENT 'Base asset',
    ts DateTime64(3, 'UTC') COMMENT 'Snapshot time (ms, UTC)' CODEC(DoubleDelta, ZSTD(1)),
    model LowCardinality(String) COMMENT 'Model name/version, e.g. liqwatch-heatmap/1.0',
    layer LowCardinality(String) COMMENT 'realized (observed liquidations) or estimated (modelled liquidation levels)',
    side LowCardinality(String) COMMENT 'Side of the positions: long (levels below price) or short (above)',
    bucket Int32 COMMENT 'Grid bucket index i; its lower price is grid_origin * (1 + bucket_bp / 10000) ^ i' CODEC(Delta, ZSTD(1)),
    price Float64 COMMENT 'Lower price of the bucket (computed from grid_origin, bucket_bp, bucket)' CODEC(Gorilla, ZSTD(1)),
    notional_usd Float64 COMMENT 'USD notional in the bucket' CODEC(ZSTD(1)),
    grid_origin Float64 COMMENT 'Price of bucket 0 of the snapshot''s grid' CODEC(ZSTD(1)),
    bucket_bp Float64 COMMENT 'Bucket width in basis points (log-spaced grid)' CODEC(ZSTD(1)),
    mark_price Float64 COMMENT 'Mark price at snapshot time' CODEC(Gorilla, ZSTD(1))
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (asset, ts, model, layer, side, bucket)
${heatmap_ttl}
SETTINGS non_replicated_deduplication_window = 1000
COMMENT 'Heatmap snapshots, one row per (asset, ts, model, layer, side, bucket) with non-zero notional.';

CREATE TABLE IF NOT EXISTS ${db}.signals
(
    kind LowCardinality(String) COMMENT 'cluster | sweep | cascade',
    asset LowCardinality(String) COMMENT 'Base asset',
    ts DateTime64(3, 'UTC') COMMENT 'Signal time (ms, UTC)' CODEC(DoubleDelta, ZSTD(1)),
    model LowCardinality(String) COMMENT 'Model name/version that produced it',
    side LowCardinality(String) COMMENT 'Side of the positions concerned: long or short',
    band_lo Nullable(Float64) COMMENT 'Lower price of the cluster band (cluster, sweep); NULL for cascades',
    band_hi Nullable(Float64) COMMENT 'Upper price of the cluster band (cluster, sweep); NULL for cascades',
    notional_usd Float64 COMMENT 'cluster: notional in the band; sweep: estimated notional consumed; cascade: total so far (USD)',
    payload String COMMENT 'The whole signal record as JSON (ClusterSnapshot, SweepSignal or CascadeSignal fields)' CODEC(ZSTD(3))
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (asset, kind, ts, cityHash64(payload))
${signal_ttl}
SETTINGS non_replicated_deduplication_window = 1000
COMMENT 'Detector output: cluster snapshots, sweeps and cascade phases. Read fields with JSONExtract*(payload, ...) or the cascades view.';

CREATE TABLE IF NOT EXISTS ${db}.alerts
(
    alert_id String COMMENT 'Deterministic id: kind + asset + start time (+ side); replays never double',
    kind LowCardinality(String) COMMENT 'cluster_shift | approach | sweep | cascade | pressure | key_level',
    subkind LowCardinality(String) COMMENT 'formed | grew | faded | dissolved | moved | started | escalated | ended | ...',
    asset LowCardinality(String) COMMENT 'Base asset',
    instruments Array(LowCardinality(String)) COMMENT 'Instruments the alert covers',
    venues Array(Tuple(venue LowCardinality(String), completeness LowCardinality(String), stale Bool, staleness_s Float64)) COMMENT 'Venue coverage at alert time: completeness and staleness per venue',
    side LowCardinality(Nullable(String)) COMMENT 'long | short, or NULL when not side-specific',
    timeframe LowCardinality(String) COMMENT 'Timeframe of the claim, e.g. 1m, 5m, 1h',
    severity LowCardinality(String) COMMENT 'info | warning | critical',
    intensity LowCardinality(Nullable(String)) COMMENT 'dim | medium | bright for cluster alerts',
    band_lo Nullable(Float64) COMMENT 'Lower price of the cluster band',
    band_hi Nullable(Float64) COMMENT 'Upper price of the cluster band',
    notional_usd Float64 COMMENT 'USD notional the alert is about',
    oi_usd Nullable(Float64) COMMENT 'Open interest (USD) at alert time',
    oi_delta_1h_usd Nullable(Float64) COMMENT 'Open interest change over the last hour (USD)',
    funding_rate Nullable(Float64) COMMENT 'Funding rate at alert time',
    price_at_alert Float64 COMMENT 'Mark price when the alert was made',
    invalidation Float64 COMMENT 'Price at which the claim is invalidated',
    created_at DateTime64(3, 'UTC') COMMENT 'When liqwatch made the claim (ms, UTC)' CODEC(Delta, ZSTD(1)),
    ts_event DateTime64(3, 'UTC') COMMENT 'Market time the alert refers to (ms, UTC)' CODEC(Delta, ZSTD(1)),
    title String COMMENT 'Human title as delivered',
    summary String COMMENT 'Human summary as delivered' CODEC(ZSTD(3)),
    model LowCardinality(String) COMMENT 'Model name/version',
    status LowCardinality(String) COMMENT 'open | swept | invalidated | expired | ended (latest known)',
    outcome Tuple(horizon_min Nullable(Int32), price_after Nullable(Float64), max_favourable_pct Nullable(Float64), max_adverse_pct Nullable(Float64), hit Nullable(Bool)) COMMENT 'Outcome when known (all NULL otherwise); see also alert_outcomes',
    details Map(LowCardinality(String), Float64) COMMENT 'Extra numeric context',
    revision UInt8 MATERIALIZED (status != 'open') + (outcome.horizon_min IS NOT NULL) COMMENT 'How final this version of the alert is; FINAL keeps the highest'
)
ENGINE = ReplacingMergeTree(revision)
PARTITION BY toYYYYMM(ts_event)
ORDER BY (asset, kind, alert_id)
SETTINGS non_replicated_deduplication_window = 1000
COMMENT 'Every alert liqwatch made: the reviewable record. Query with FINAL: one row per alert_id, its most final version.';

CREATE TABLE IF NOT EXISTS ${db}.alert_updates
(
    alert_id String COMMENT 'The alert updated',
    seq UInt32 COMMENT 'Update number, 1.. per alert',
    ts DateTime64(3, 'UTC') COMMENT 'Update time (ms, UTC)' CODEC(Delta, ZSTD(1)),
    status LowCardinality(String) COMMENT 'Status after the update',
    subkind LowCardinality(String) COMMENT 'What happened: grew, faded, swept, escalated, ...',
    note String COMMENT 'Human note',
    price Float64 COMMENT 'Price at the update',
    details Map(LowCardinality(String), Float64) COMMENT 'Extra numeric context'
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (alert_id, seq)
SETTINGS non_replicated_deduplication_window = 1000
COMMENT 'Alert life cycle updates, one row per (alert_id, seq).';

CREATE TABLE IF NOT EXISTS ${db}.alert_outcomes
(
    alert_id String COMMENT 'The alert measured',
    horizon_min UInt32 COMMENT 'Minutes after the alert at which the outcome was measured',
    price_after Float64 COMMENT 'Price horizon_min minutes after the alert',
    max_favourable_pct Float64 COMMENT 'Largest move in the alert''s direction within the horizon (%)',
    max_adverse_pct Float64 COMMENT 'Largest move against the alert within the horizon (%)',
    hit Bool COMMENT 'Price moved in the alert''s direction by more than it moved against it',
    computed_at DateTime64(3, 'UTC') COMMENT 'When the outcome was computed (ms, UTC); the latest wins'
)
ENGINE = ReplacingMergeTree(computed_at)
ORDER BY (alert_id, horizon_min)
SETTINGS non_replicated_deduplication_window = 1000
COMMENT 'Measured outcome of each alert per horizon. Small table, unpartitioned so FINAL dedupes across all time.';

CREATE TABLE IF NOT EXISTS ${db}.deliveries
(
    alert_id String COMMENT 'The alert delivered',
    update_seq UInt32 COMMENT '0 for the alert itself, n for its n-th update',
    route LowCardinality(String) COMMENT 'Routing rule that selected the target',
    target LowCardinality(String) COMMENT 'Redacted target: scheme and host only, never a token',
    status LowCardinality(String) COMMENT 'sent | failed | suppressed',
    attempts UInt16 COMMENT 'Attempts made',
    error String COMMENT 'Last error, empty when sent',
    ts DateTime64(3, 'UTC') COMMENT 'Time of the outcome (ms, UTC)' CODEC(Delta, ZSTD(1))
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (alert_id, update_seq, route, target, ts, status)
SETTINGS non_replicated_deduplication_window = 1000
COMMENT 'Delivery attempts and their status per alert, update and target.';

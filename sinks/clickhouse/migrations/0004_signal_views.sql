-- Typed views over the JSON payloads in signals, for analysts. Placeholders: ${db}.

-- One row per cascade. Only duplicate-insensitive aggregates (min, max, argMax, any), so rows
-- replayed by at-least-once delivery change nothing and no FINAL is needed.
CREATE VIEW IF NOT EXISTS ${db}.cascades
(
    cascade_id String COMMENT 'Cascade id (asset, side and start time)',
    asset LowCardinality(String) COMMENT 'Base asset',
    side LowCardinality(String) COMMENT 'Side being liquidated: long or short',
    model LowCardinality(String) COMMENT 'Detector model/version',
    last_phase String COMMENT 'Latest phase seen: started, escalated or ended',
    started_at DateTime64(3, 'UTC') COMMENT 'Cascade start (UTC)',
    last_ts DateTime64(3, 'UTC') COMMENT 'Time of the latest signal (UTC)',
    duration_ms Int64 COMMENT 'Duration so far / final duration (ms)',
    total_notional_usd Float64 COMMENT 'Total liquidated notional (USD)',
    events Int64 COMMENT 'Number of liquidations in the cascade',
    venues Array(String) COMMENT 'Venues that took part',
    price_start Float64 COMMENT 'Price when it started',
    price_end Float64 COMMENT 'Price at the latest signal',
    peak_rate_usd_s Float64 COMMENT 'Peak liquidation rate (USD per second)'
)
AS SELECT
    JSONExtractString(payload, 'cascade_id') AS cascade_id,
    asset,
    any(side) AS side,
    any(model) AS model,
    argMax(JSONExtractString(payload, 'phase'), ts) AS last_phase,
    fromUnixTimestamp64Milli(min(JSONExtractInt(payload, 'started_at')), 'UTC') AS started_at,
    max(ts) AS last_ts,
    max(JSONExtractInt(payload, 'duration_ms')) AS duration_ms,
    max(JSONExtractFloat(payload, 'total_notional_usd')) AS total_notional_usd,
    max(JSONExtractInt(payload, 'events')) AS events,
    argMax(JSONExtract(payload, 'venues', 'Array(String)'), ts) AS venues,
    argMin(JSONExtractFloat(payload, 'price_start'), ts) AS price_start,
    argMax(JSONExtractFloat(payload, 'price_now'), ts) AS price_end,
    max(JSONExtractFloat(payload, 'peak_rate_usd_s')) AS peak_rate_usd_s
FROM ${db}.signals
WHERE kind = 'cascade'
GROUP BY cascade_id, asset
COMMENT 'One row per cascade from its started/escalated/ended signals: final stats, last phase.';

CREATE VIEW IF NOT EXISTS ${db}.sweeps
(
    asset LowCardinality(String) COMMENT 'Base asset',
    ts DateTime64(3, 'UTC') COMMENT 'When price crossed the cluster (UTC)',
    model LowCardinality(String) COMMENT 'Model/version',
    side LowCardinality(String) COMMENT 'Side of the positions in the swept cluster',
    band_lo Float64 COMMENT 'Lower price of the cluster band',
    band_hi Float64 COMMENT 'Upper price of the cluster band',
    estimated_notional_usd Float64 COMMENT 'Estimated notional consumed (USD)',
    realized_notional_usd Float64 COMMENT 'Realized liquidations seen in the band (USD)',
    confirmed Bool COMMENT 'Realized liquidations confirmed the sweep',
    price_before Float64 COMMENT 'Price before the sweep',
    price_after Float64 COMMENT 'Price after the sweep'
)
AS SELECT
    asset,
    ts,
    model,
    side,
    JSONExtractFloat(payload, 'band_lo') AS band_lo,
    JSONExtractFloat(payload, 'band_hi') AS band_hi,
    JSONExtractFloat(payload, 'estimated_notional_usd') AS estimated_notional_usd,
    JSONExtractFloat(payload, 'realized_notional_usd') AS realized_notional_usd,
    JSONExtractBool(payload, 'confirmed') AS confirmed,
    JSONExtractFloat(payload, 'price_before') AS price_before,
    JSONExtractFloat(payload, 'price_after') AS price_after
FROM ${db}.signals FINAL
WHERE kind = 'sweep'
COMMENT 'Cluster sweeps: band, side, estimated notional consumed, realized confirmation, price before/after.';

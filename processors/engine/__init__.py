"""The detection engine: liquidation heatmap model, clusters, sweeps, cascades, alerts.

    from processors.engine import Engine, EngineConfig
    engine = Engine(EngineConfig.default())
    out = engine.process(events)      # a batch (envelope) of market events
    out += engine.advance(now_ms)     # time-driven outputs, event time
    blob = engine.snapshot(asset)     # compact per-asset state
    engine.restore(asset, blob)

docs/model.md explains every rule and default.
"""

from processors.engine.common import MODEL, MODEL_NAME, MODEL_VERSION
from processors.engine.config import AssetConfig, EngineConfig
from processors.engine.engine import Engine, Output, SnapshotError
from processors.engine.metrics import EngineMetrics

__all__ = [
    "MODEL",
    "MODEL_NAME",
    "MODEL_VERSION",
    "AssetConfig",
    "Engine",
    "EngineConfig",
    "EngineMetrics",
    "Output",
    "SnapshotError",
]

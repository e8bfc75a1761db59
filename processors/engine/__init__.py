"""The detection engine: liquidation heatmap model, clusters, sweeps, cascades, alerts.

    from processors.engine import Engine, EngineConfig
    engine = Engine(EngineConfig.default())
    out = engine.process(events)      # a batch (envelope) of market events
    out += engine.advance(now_ms)     # time-driven outputs, event time
    blob = engine.snapshot(asset)     # compact per-asset state
    engine.restore(asset, blob)

docs/model.md explains every rule and default.

Installed normally, the components are compiled with mypyc (setup.py); ``COMPILED`` says whether
this process runs them so. ``LIQWATCH_ENGINE=interpreted`` runs the Python sources instead, for
tests that swap a component's function for its reference (compiled calls cannot be patched).
"""

import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
from pathlib import Path

_SOURCES = Path(__file__).parent


class _SourcesFirst(importlib.abc.MetaPathFinder):
    """Finds this package's modules as .py sources even where a compiled one sits beside."""

    def find_spec(
        self, fullname: str, path: object = None, target: object = None
    ) -> importlib.machinery.ModuleSpec | None:
        package, _, name = fullname.rpartition(".")
        source = _SOURCES / f"{name}.py"
        if package != __name__ or not source.is_file():
            return None
        return importlib.util.spec_from_file_location(fullname, source)


if os.environ.get("LIQWATCH_ENGINE") == "interpreted":
    sys.meta_path.insert(0, _SourcesFirst())

# after the switch: which file each component loads from depends on it
from processors.engine.common import MODEL, MODEL_NAME, MODEL_VERSION  # noqa: E402
from processors.engine.config import AssetConfig, EngineConfig  # noqa: E402
from processors.engine.engine import Engine, Output, SnapshotError  # noqa: E402
from processors.engine.metrics import EngineMetrics  # noqa: E402

COMPILED = not (sys.modules[Engine.__module__].__file__ or "").endswith(".py")


def _stale_builds() -> list[str]:
    """In a source checkout, the sources newer than the oldest compiled module: an edit must
    never run as the compiled code of the version before it. Every source counts, the
    interpreted ones too: the compiled code checks the records' and settings' field types
    it was compiled against."""
    if not (_SOURCES.parents[1] / "setup.py").is_file():
        return []  # an installed wheel: sources and builds come together
    built = min(so.stat().st_mtime for so in _SOURCES.glob("*.so"))
    return [py.name for py in _SOURCES.glob("*.py") if py.stat().st_mtime > built]


if COMPILED and (_stale := _stale_builds()):
    raise ImportError(
        f"the compiled engine is older than {', '.join(sorted(_stale))}: run scripts/build-engine"
        " (or set LIQWATCH_ENGINE=interpreted to run the sources)"
    )

__all__ = [
    "COMPILED",
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

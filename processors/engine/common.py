"""Small shared pieces: side indices, array aliases, the model name."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from liqwatch.schema import Side

MODEL_NAME = "liqwatch-heatmap"
MODEL_VERSION = "1.0"
MODEL = f"{MODEL_NAME}/{MODEL_VERSION}"

LONG = 0
SHORT = 1
SIDES = (Side.LONG, Side.SHORT)

TICK_MS = 1000  # time-driven work runs on whole seconds of event time

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]


def side_index(side: Side) -> int:
    return LONG if side is Side.LONG else SHORT


def decay_factor(dt_ms: float, tau_ms: float) -> float:
    return float(np.exp(-dt_ms / tau_ms)) if dt_ms > 0 else 1.0

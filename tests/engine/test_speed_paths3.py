"""The worker-mix fast paths give bit-identical results to the code they replaced.

- ``CascadeDetector._rate_in`` sums the last second from the window values ``evaluate`` has
  already gathered; the reference is ``_rate``, which gathers them again.
- ``AssetEngine._chunked`` hands a run that fits in one tick to its handler as is; the
  reference slices it as every other piece.

The end-to-end check runs the engine on the worker benchmark's stress load (frozen, seeded)
with both references patched in and compares every output and snapshot byte for byte.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from processors.engine.asset import AssetEngine
from processors.engine.cascade import CascadeDetector
from processors.engine.config import CascadeConfig
from processors.engine.inputs import sliced
from tests.engine.replay import assert_same_run, run_engine, stress_blobs

# swaps engine functions for their references: runs on the Python sources
pytestmark = pytest.mark.interpreted


def reference_chunked(
    self: AssetEngine, cols: Any, ts: np.ndarray, handle: Callable[[Any], list[Any]]
) -> list[Any]:
    """``_chunked`` before the whole-run shortcut: every piece is sliced."""
    out: list[Any] = []
    n, start = int(ts.size), 0
    while start < n:
        out += self.advance(int(ts[start]))
        end = max(int(np.searchsorted(ts, self.state.next_tick, side="left")), start + 1)
        out += handle(sliced(cols, start, end))
        self.state.clock = max(self.state.clock, int(ts[end - 1]))
        start = end
    return out


def reference_rate_in(self: CascadeDetector, _in_window: np.ndarray, k: int) -> float:
    return self._rate(k)


@pytest.mark.parametrize(("span_ms", "events"), [(2_000, 40_000), (250, 15_000)])
def test_worker_mix_fast_paths_are_bit_identical_end_to_end(
    span_ms: int, events: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    envelopes = stress_blobs(events, span_ms)
    fast = run_engine(envelopes)
    with monkeypatch.context() as patch:
        patch.setattr(AssetEngine, "_chunked", reference_chunked)
        patch.setattr(CascadeDetector, "_rate_in", reference_rate_in)
        reference = run_engine(envelopes)
    assert_same_run(fast, reference)
    # the comparison covers cascades (the rate feeds their peak) and many outputs
    assert sum(b'"type":"cascade"' in o for o in fast[0]) >= 5
    assert len(fast[0]) >= 30


@pytest.mark.parametrize("seed", range(6))
def test_rate_in_matches_rate_bit_for_bit(seed: int) -> None:
    rng = np.random.default_rng(seed)
    detector = CascadeDetector(CascadeConfig(), "BTC")
    s = detector.state
    s.notional[...] = rng.lognormal(10.0, 2.5, s.notional.shape)
    s.notional[rng.random(s.notional.shape) < 0.3] = 0.0
    for head in rng.integers(0, 10 * detector.ring, 50).tolist():
        s.head_bin = head
        in_window = s.notional[:, detector._wins[head % detector.ring]]
        for k in (0, 1):
            assert detector._rate_in(in_window, k) == detector._rate(k)


def test_rate_in_falls_back_when_a_second_is_longer_than_the_window() -> None:
    detector = CascadeDetector(CascadeConfig(window_s=1, bin_ms=250), "BTC")
    detector._last_bins = detector.w_bins + 1  # what a sub-second window would give
    s = detector.state
    s.notional[...] = np.arange(s.notional.size, dtype=np.float64).reshape(s.notional.shape)
    s.head_bin = 7
    in_window = s.notional[:, detector._wins[7 % detector.ring]]
    assert detector._rate_in(in_window, 1) == detector._rate(1)

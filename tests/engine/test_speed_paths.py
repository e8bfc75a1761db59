"""The engine's batched fast paths give bit-identical results to the simple per-bin ones."""

from __future__ import annotations

import random

import msgspec
import numpy as np
import pytest

from liqwatch.schema import Completeness
from processors.engine import cascade as cascade_mod
from processors.engine.cascade import (
    BinSide,
    CascadeDetector,
    CascadeEvent,
)
from processors.engine.config import CascadeConfig, StalenessConfig
from processors.engine.implied import tally_run
from processors.engine.market import MarketContext
from processors.engine.state import ForcedTally
from tests.engine.references import bin_groups, one_bin_groups

# swaps engine functions for their references: runs on the Python sources
pytestmark = pytest.mark.interpreted

T0 = 1_760_130_000_000


def chunk(rng: np.random.Generator, n: int, span_ms: int) -> dict[str, np.ndarray]:
    ts = np.sort(T0 + rng.integers(0, span_ms, n))
    return {
        "ts": ts,
        "side": rng.integers(0, 2, n),
        "usd": rng.lognormal(9.5, 1.5, n),
        "bits": 1 << rng.integers(0, 6, n),
    }


def reference_groups(c: dict[str, np.ndarray], bin_ms: int) -> list[BinSide]:
    """Per (bin, side) with boolean masks, as the detector did per bin before batching."""
    bins = c["ts"] // bin_ms
    out = []
    for b in np.unique(bins).tolist():
        start = int(np.flatnonzero(bins == b)[0])
        for k in (0, 1):
            mine = (bins == b) & (c["side"] == k)
            if not mine.any():
                continue
            usd, ts = c["usd"][mine], c["ts"][mine]
            bits = int(np.bitwise_or.reduce(c["bits"][mine]))
            out.append(
                BinSide(start, k, float(usd.sum()), int(mine.sum()), float(usd.max()),
                        int(ts.min()), int(ts.max()), bits)
            )  # fmt: skip
    return out


@pytest.mark.parametrize("n", [1, 2, 7, 8, 9, 17, 64, 129, 300])
def test_bin_groups_match_masked_numpy_sums_bit_for_bit(n: int) -> None:
    rng = np.random.default_rng(n)
    for span in (50, 1_000, 2_000):
        c = chunk(rng, n, span)
        got = bin_groups(c["ts"] // 100, c["side"], c["usd"], c["ts"], c["bits"])
        assert got == reference_groups(c, 100)


@pytest.mark.parametrize("n", [1, 5, 8, 40, 200])
def test_one_bin_groups_match_bin_groups(n: int) -> None:
    rng = np.random.default_rng(100 + n)
    for only_side in (None, 0, 1):
        c = chunk(rng, n, 90)
        if only_side is not None:
            c["side"][:] = only_side
        got = one_bin_groups(c["side"], c["usd"], c["ts"], c["bits"])
        assert got == reference_groups(c, 100)


def reference_tally(
    tallies: list[ForcedTally], codes: np.ndarray, ts: np.ndarray, side: np.ndarray, usd: np.ndarray
) -> None:
    """The NumPy version of ``tally_run`` the pure-Python one replaced."""
    group = codes * 2 + side
    sums = np.bincount(group, weights=usd, minlength=2 * len(tallies))
    pairs = np.unique(group * (1 << 40) + ts // 1000)
    g = pairs >> 40
    sec = pairs - (g << 40)
    starts = np.flatnonzero(np.diff(g, prepend=-1))
    ends = np.append(starts[1:], g.size) - 1
    for first, last in zip(starts.tolist(), ends.tolist(), strict=True):
        gi = int(g[first])
        t, k = tallies[gi // 2], gi % 2
        distinct = last - first + 1
        if int(sec[first]) == t.last_second[k]:
            distinct -= 1
        t.seconds[k] += distinct
        t.last_second[k] = int(sec[last])
    for gi in np.flatnonzero(sums).tolist():
        tallies[gi // 2].usd[gi % 2] += float(sums[gi])


def test_tally_run_matches_the_numpy_reference_across_runs() -> None:
    rng = np.random.default_rng(7)
    mine = [ForcedTally() for _ in range(4)]
    ref = [ForcedTally() for _ in range(4)]
    start = T0
    for _ in range(30):
        n = int(rng.integers(1, 80))
        ts = np.sort(start + rng.integers(0, 2_500, n))
        start = int(ts[-1])  # runs follow each other, sometimes within the same second
        codes, side, usd = rng.integers(0, 4, n), rng.integers(0, 2, n), rng.lognormal(9, 1.4, n)
        tally_run(mine, codes, ts, side, usd)
        reference_tally(ref, codes, ts, side, usd)
        assert [msgspec.to_builtins(t) for t in mine] == [msgspec.to_builtins(t) for t in ref]
    assert sum(t.seconds[0] + t.seconds[1] for t in mine) > 30


def stream(seed: int) -> list[tuple[int, int, float, int]]:
    """A burst of liquidations, mostly longs, with some late ones and gaps between bins."""
    rnd = random.Random(seed)
    out, t = [], T0
    for _ in range(3_000):
        t += rnd.choice([0, 3, 20, 60, 150, 450, 1_200])
        late = rnd.random() < 0.05
        ts = t - rnd.randrange(0, 3_000) if late else t
        side = 0 if rnd.random() < 0.85 else 1
        out.append((ts, side, rnd.lognormvariate(11, 1.0), 1 << rnd.randrange(5)))
    return out


def feed(
    det: CascadeDetector, rows: list[tuple[int, int, float, int]], sizes: list[int], by_bin: bool
) -> list[CascadeEvent]:
    """Feeds time-sorted chunks of the given sizes, with falling prices between them; with
    ``by_bin``, each chunk goes in one bin at a time (the per-bin path)."""
    out: list[CascadeEvent] = []
    i, price = 0, 100_000.0
    for size in sizes:
        part = sorted(rows[i : i + size], key=lambda r: r[0])
        i += size
        if not part:
            break
        price *= 0.9995
        det.on_prices(np.array([part[-1][0]]), np.array([price]))
        bins = [r[0] // det.cfg.bin_ms for r in part]
        pieces = [[r for r, b in zip(part, bins, strict=True) if b == x] for x in sorted(set(bins))]
        for piece in pieces if by_bin else [part]:
            ts = np.array([r[0] for r in piece], dtype=np.int64)
            side, usd, bits = (np.array([r[k] for r in piece]) for k in (1, 2, 3))
            out += det.add(ts, side.astype(np.int64), usd, bits.astype(np.int64), price)
        out += det.tick(part[-1][0] // 1000 * 1000, price)
    return out


def state_of(det: CascadeDetector) -> bytes:
    return msgspec.msgpack.encode(
        {f: msgspec.to_builtins(getattr(det.state, f), enc_hook=np.ndarray.tolist)
         for f in det.state.__struct_fields__}
    )  # fmt: skip


@pytest.mark.parametrize("seed", [1, 2])
def test_cascade_chunks_and_bins_give_identical_state_and_events(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Multi-bin chunks (bin_groups) and the same rows one bin at a time (one_bin_groups),
    with ring advances cleared slot by slot or by index arrays, end in the same bytes."""
    rows = stream(seed)
    cfg = CascadeConfig(floor_usd=300_000.0, min_move_pct=0.01)
    rnd = random.Random(seed)
    sizes = [rnd.choice([1, 5, 40, 120]) for _ in range(len(rows))]
    runs = []
    for by_bin, few in ((True, 4), (False, 4), (False, 0)):
        monkeypatch.setattr(cascade_mod, "FEW_SLOTS", few)
        det = CascadeDetector(cfg, "BTC")
        events = feed(det, rows, sizes, by_bin)
        runs.append((state_of(det), [(e.phase, e.ts, msgspec.to_builtins(e.run)) for e in events]))
    assert len(runs[0][1]) >= 2, "the stream should start a cascade and move it on"
    assert runs[1] == runs[0]
    assert runs[2] == runs[0]


def test_stale_changes_list_the_venues_coverage_reports_stale() -> None:
    market = MarketContext(StalenessConfig())
    for venue, ts in (("binance", T0), ("bybit", T0 + 50_000), ("okx", T0 + 59_000)):
        market.seen(venue, f"{venue}-BTC", ts, Completeness.COMPLETE)
    for now in (T0 + 1_000, T0 + 60_000, T0 + 200_000):
        expected = sorted(c.venue for c in market.coverage(now) if c.stale)
        newly, _ = market.stale_changes(now)
        assert market.state.stale == expected
        assert set(newly) <= set(expected)
    assert market.state.stale == ["binance", "bybit", "okx"]

"""Forms the engine's fast paths replaced, kept as the references the speed-path tests
compare them with, bit for bit: the NumPy grouping of liquidation chunks into (bin, side)
aggregates (replaced by ``cascade.bin_parts``), the run finder of the old cluster search, and
the estimated layer's column forms of its held observation and direction reference, and the
masked selection of a column set the open-interest path used."""

from __future__ import annotations

from dataclasses import fields, replace
from typing import Any, TypeVar

import numpy as np

from processors.engine.cascade import BinSide
from processors.engine.common import BoolArray, FloatArray, IntArray
from processors.engine.estimated import EstimatedLayer, is_inverse
from processors.engine.inputs import LiqColumns, MarkColumns, OIColumns
from processors.engine.state import InstrumentOI


def _changes(values: IntArray) -> BoolArray:
    """Where a sorted column starts a new value (the first row always does)."""
    out = np.empty(values.size, dtype=bool)
    out[0] = True
    np.not_equal(values[1:], values[:-1], out=out[1:])
    return out


def bin_runs(bins: IntArray) -> list[tuple[int, int, int]]:
    """(bin, first row, end row) of each run of equal bins in a time-sorted chunk."""
    starts = np.flatnonzero(_changes(bins))
    ends = np.append(starts[1:], bins.size)
    return list(zip(bins[starts].tolist(), starts.tolist(), ends.tolist(), strict=True))


def one_bin_groups(side: IntArray, usd: FloatArray, ts: IntArray, bits: IntArray) -> list[BinSide]:
    """``bin_groups`` of a chunk that lies in one bin."""
    n = int(ts.size)
    n_short = int(side.sum())
    out: list[BinSide] = []
    for k, n_k in ((0, n - n_short), (1, n_short)):
        if n_k == 0:
            continue
        u, t, b = (usd, ts, bits) if n_k == n else (usd[side == k], ts[side == k], bits[side == k])
        or_bits = int(np.bitwise_or.reduce(b))
        out.append(
            BinSide(0, k, float(u.sum()), n_k, float(u.max()), int(t[0]), int(t[-1]), or_bits)
        )
    return out


def bin_groups(
    bins: IntArray, side: IntArray, usd: FloatArray, ts: IntArray, bits: IntArray
) -> list[BinSide]:
    """Per (bin, side) aggregates of a time-sorted chunk, bins in order, side 0 first.

    Sums equal ``usd[mask].sum()`` bit for bit: NumPy sums a contiguous array pairwise, and
    ``reduceat`` does too after its segment's first element, so each segment starts with a 0.
    """
    new_bin = _changes(bins)
    starts_bin = np.flatnonzero(new_bin)
    new_bin[0] = False
    group = np.cumsum(new_bin) * 2 + side
    order = np.argsort(group, kind="stable")
    key = group[order]
    new_seg = _changes(key)
    seg = np.flatnonzero(new_seg)
    usd_o = usd[order]
    # row i of segment j goes to i + j + 1: one 0.0 ahead of every segment
    padded = np.zeros(key.size + seg.size)
    padded[np.arange(key.size) + np.cumsum(new_seg)] = usd_o
    sums = np.add.reduceat(padded, seg + np.arange(seg.size)).tolist()
    seg_end = np.append(seg[1:], key.size)
    counts = (seg_end - seg).tolist()
    biggest = np.maximum.reduceat(usd_o, seg).tolist()
    ts_o = ts[order]
    firsts, lasts = ts_o[seg].tolist(), ts_o[seg_end - 1].tolist()
    ors = np.bitwise_or.reduceat(bits[order], seg).tolist()
    keys = key[seg].tolist()
    bin_start = starts_bin.tolist()
    return [
        BinSide(
            bin_start[kk >> 1], kk & 1, sums[j], counts[j], biggest[j], firsts[j], lasts[j], ors[j]
        )
        for j, kk in enumerate(keys)
    ]


def consecutive_runs(indices: list[int]) -> list[tuple[int, int]]:
    """Inclusive (start, end) pairs of the runs of consecutive ascending indices."""
    out: list[tuple[int, int]] = []
    start = prev = indices[0] if indices else 0
    for i in indices[1:]:
        if i != prev + 1:
            out.append((start, prev))
            start = i
        prev = i
    if indices:
        out.append((start, prev))
    return out


def held_from_columns(
    layer: EstimatedLayer,
    k: int,
    key: tuple[str, str],
    codes: IntArray,
    cols: tuple[IntArray, FloatArray, FloatArray, FloatArray],
) -> InstrumentOI:
    """``EstimatedLayer._held_row`` on NumPy columns (its former ``_held``)."""
    ts, base, usd, price = cols
    venue, instrument = key
    name = f"{venue}:{instrument}"
    held = layer.state.instruments.get(name)
    if held is None:
        i = int(np.argmax(codes == k))
        held = layer.state.instruments[name] = InstrumentOI(
            venue=venue,
            instrument=instrument,
            inverse=is_inverse(instrument),
            oi_base=float(base[i]),
            oi_usd=float(usd[i]),
            price=float(price[i]),
            ts=int(ts[i]),
        )
        layer.state.total_oi_usd += float(usd[i])
    return held


def reference_from_columns(
    layer: EstimatedLayer, ts: IntArray, price: FloatArray, previous: FloatArray
) -> FloatArray:
    """The direction reference on NumPy columns (the layer's former ``_reference``)."""
    if layer.cfg.direction_window_s <= 0 or ts.size == 0:
        return previous
    return np.array(layer._reference_rows(ts.tolist(), price.tolist()), dtype=np.float64)


C = TypeVar("C", LiqColumns, MarkColumns, OIColumns)


def sliced_mask(cols: C, mask: BoolArray) -> C:
    """The rows of a column set where ``mask`` holds."""
    keep = np.flatnonzero(mask).tolist()
    parts: dict[str, Any] = {}
    for f in fields(cols):
        value = getattr(cols, f.name)
        parts[f.name] = [value[i] for i in keep] if isinstance(value, list) else value[keep]
    return replace(cols, **parts)

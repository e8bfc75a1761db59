"""Sums equal, bit for bit, to NumPy's ``ndarray.sum`` of the same float64 values.

The engine's outputs and snapshots must not depend on the form a sum is computed in: short
sums run in Python (cheaper than a NumPy call on a handful of values), long ones in NumPy, and
both give NumPy's result, as the speed-path tests check.
"""

from __future__ import annotations

import numpy as np

from processors.engine.common import FloatArray

# the reduction ndarray.sum runs (pairwise), without its Python wrapper
np_sum = np.add.reduce

PAIRWISE_MIN = 8  # from this many values NumPy sums in 8 interleaved partial sums


def pairwise_sum(values: list[float]) -> float:
    """``np.sum`` of a 1-D float64 array of these values, bit for bit: NumPy adds fewer than
    8 values in order, up to 128 in 8 interleaved partial sums, more by halves, and adds the
    result to its identity 0.0 (so a zero sum is +0.0)."""
    return 0.0 + _pairwise(values)


def _pairwise(values: list[float]) -> float:
    n = len(values)
    if n < PAIRWISE_MIN:
        acc = -0.0
        for x in values:
            acc += x
        return acc
    if n > 128:
        half = n // 2
        half -= half % 8
        return _pairwise(values[:half]) + _pairwise(values[half:])
    r0, r1, r2, r3, r4, r5, r6, r7 = values[:8]
    stop = n - n % 8
    for i in range(8, stop, 8):
        r0 += values[i]
        r1 += values[i + 1]
        r2 += values[i + 2]
        r3 += values[i + 3]
        r4 += values[i + 4]
        r5 += values[i + 5]
        r6 += values[i + 6]
        r7 += values[i + 7]
    acc = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    for x in values[stop:]:
        acc += x
    return acc


def slice_sum(values: FloatArray) -> float:
    """``float(values.sum())`` of a 1-d array."""
    if values.size >= PAIRWISE_MIN:
        return float(np_sum(values))
    return pairwise_sum(values.tolist())


def run_sum(window: FloatArray, values: list[float], lo: int, hi: int) -> float:
    """``float(window[lo:hi].sum())``, where ``values`` is ``window.tolist()``."""
    if hi - lo >= PAIRWISE_MIN:
        return float(np_sum(window[lo:hi]))
    return pairwise_sum(values[lo:hi])

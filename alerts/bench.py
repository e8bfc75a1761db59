"""Benchmark of the heatmap PNG (target: < 300 ms per render), against a baseline in the same run.

The baseline is matplotlib's fixed cost on this machine: an empty figure of the same size saved
as PNG. ``python -m alerts.bench`` prints both and exits non-zero if the target is missed.
"""

from __future__ import annotations

import io
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from alerts.heatmap_png import render_heatmap_png
from alerts.samples import sample_cascade_alert, sample_snapshots

TARGET_MS = 300.0


@dataclass(frozen=True)
class BenchResult:
    name: str
    median_ms: float
    p90_ms: float
    baseline_ms: float
    target_ms: float

    @property
    def ok(self) -> bool:
        return self.median_ms < self.target_ms

    def line(self) -> str:
        return (
            f"{self.name}: median {self.median_ms:.1f} ms, p90 {self.p90_ms:.1f} ms "
            f"(baseline empty figure {self.baseline_ms:.1f} ms, "
            f"{self.median_ms / self.baseline_ms:.1f}x; target < {self.target_ms:.0f} ms) "
            f"{'OK' if self.ok else 'TOO SLOW'}"
        )


def _timings(action: Callable[[], object], runs: int) -> list[float]:
    action()  # warm-up: fonts, caches
    out = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        out.append((time.perf_counter() - started) * 1000)
    return out


def _empty_figure() -> bytes:
    fig = Figure(figsize=(9.6, 5.4), dpi=100)
    FigureCanvasAgg(fig)
    fig.add_subplot()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def bench_heatmap_png(runs: int = 20, snapshots: int = 240) -> BenchResult:
    """One hour of 15 s snapshots plus an alert: the attachment the alerter sends."""
    snaps = sample_snapshots(snapshots, step_ms=15_000)
    alert = sample_cascade_alert()
    baseline = statistics.median(_timings(_empty_figure, runs))
    times = sorted(_timings(lambda: render_heatmap_png(snaps, alert), runs))
    return BenchResult(
        name=f"heatmap PNG ({snapshots} snapshots)",
        median_ms=statistics.median(times),
        p90_ms=times[int(0.9 * (len(times) - 1))],
        baseline_ms=baseline,
        target_ms=TARGET_MS,
    )


def main() -> int:
    result = bench_heatmap_png()
    print(result.line())
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())

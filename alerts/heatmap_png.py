"""Price × time heatmap image: long and short liquidation layers, the mark price, the alert band.

Matplotlib's object API with the Agg canvas only: no pyplot, so no global figure state and safe
in worker threads. The price axis runs in bucket-index space (the model's log-spaced grid is
uniform there) and is labelled in prices.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np
from matplotlib import dates as mdates
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter

from alerts import formatting as fmt
from liqwatch.schema import Alert, HeatmapSnapshot

MAX_COLUMNS = 360
PRICE_PAD = 0.02  # visible range beyond the mark-price path and the alert levels
_MS_PER_DAY = 86_400_000.0

_BG = "#0b0e14"
_FG = "#c9d1d9"
_LONG_RGB = (0.95, 0.28, 0.30)
_SHORT_RGB = (0.20, 0.80, 0.65)


class _Grid:
    """The common log-price grid of the newest snapshot; maps prices to fractional indices."""

    def __init__(self, origin: float, bucket_bp: float) -> None:
        self.origin = origin
        self.step = math.log1p(bucket_bp / 10_000)

    def index(self, price: float) -> float:
        return math.log(price / self.origin) / self.step

    def price(self, index: float) -> float:
        return self.origin * math.exp(index * self.step)


def render_heatmap_png(
    snapshots: Sequence[HeatmapSnapshot],
    alert: Alert | None = None,
    path_or_buffer: str | Path | BinaryIO | None = None,
    *,
    width_px: int = 960,
    height_px: int = 540,
) -> bytes:
    """Render and return the PNG bytes; also write them to ``path_or_buffer`` when given."""
    fig = Figure(figsize=(width_px / 100, height_px / 100), dpi=100, facecolor=_BG)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    _style(ax)
    if snapshots:
        _draw(ax, sorted(snapshots, key=lambda s: s.ts), alert)
    else:
        ax.text(0.5, 0.5, "no heatmap data yet", color=_FG, ha="center", transform=ax.transAxes)
    fig.subplots_adjust(left=0.09, right=0.98, top=0.89, bottom=0.14)
    buffer = io.BytesIO()
    # zlib level 3: a third of the encoding time of the default 6, ~10 % larger file
    fig.savefig(buffer, format="png", facecolor=_BG, pil_kwargs={"compress_level": 3})
    data = buffer.getvalue()
    if isinstance(path_or_buffer, str | Path):
        Path(path_or_buffer).write_bytes(data)
    elif path_or_buffer is not None:
        path_or_buffer.write(data)
    return data


def _draw(ax: Axes, snaps: list[HeatmapSnapshot], alert: Alert | None) -> None:
    grid = _Grid(snaps[-1].grid_origin, snaps[-1].bucket_bp)
    lo, hi = _index_range(grid, snaps, alert)
    times = _column_times(snaps)
    columns = np.searchsorted([s.ts for s in snaps], times, side="right") - 1
    long_layer, short_layer = _layers(grid, snaps, columns, lo, hi)
    x0, x1 = times[0] / _MS_PER_DAY, times[-1] / _MS_PER_DAY
    if x1 <= x0:
        x1 = x0 + 60_000 / _MS_PER_DAY
    extent = (x0, x1, lo - 0.5, hi + 0.5)
    rgba = _composite(long_layer.T, short_layer.T, _robust_max(long_layer, short_layer))
    ax.imshow(rgba, origin="lower", aspect="auto", extent=extent, interpolation="nearest")
    marks_x = [s.ts / _MS_PER_DAY for s in snaps]
    marks_y = [grid.index(s.mark_price) for s in snaps]
    ax.plot(marks_x, marks_y, color="#f5f5f5", linewidth=1.4)
    if alert is not None:
        _mark_alert(ax, grid, alert)
    _axes_labels(ax, grid, snaps, alert, (x0, x1, lo, hi))


def _index_range(grid: _Grid, snaps: list[HeatmapSnapshot], alert: Alert | None) -> tuple[int, int]:
    prices = [s.mark_price for s in snaps]
    if alert is not None:
        prices += [alert.price_at_alert, alert.invalidation]
        prices += [p for p in (alert.band_lo, alert.band_hi) if p is not None]
    lo = grid.index(min(prices) * (1 - PRICE_PAD))
    hi = grid.index(max(prices) * (1 + PRICE_PAD))
    return math.floor(lo), math.ceil(hi)


def _column_times(snaps: list[HeatmapSnapshot]) -> np.ndarray:
    count = min(MAX_COLUMNS, max(2, len(snaps)))
    return np.linspace(snaps[0].ts, snaps[-1].ts, count)


def _layers(
    grid: _Grid, snaps: list[HeatmapSnapshot], columns: np.ndarray, lo: int, hi: int
) -> tuple[np.ndarray, np.ndarray]:
    """(time × price) USD per side, realized and estimated levels together, for each column."""
    rows = hi - lo + 1
    long_rows = np.zeros((len(snaps), rows))
    short_rows = np.zeros((len(snaps), rows))
    for k, snap in enumerate(snaps):
        to_row = _row_mapper(grid, snap, lo)
        for target, cells in (
            (long_rows[k], snap.realized_long + snap.estimated_long),
            (short_rows[k], snap.realized_short + snap.estimated_short),
        ):
            if cells:
                raw = np.asarray(cells, dtype=float)
                index = to_row(raw[:, 0])
                keep = (index >= 0) & (index < rows)
                np.add.at(target, index[keep], raw[keep, 1])
    return long_rows[columns], short_rows[columns]


def _row_mapper(grid: _Grid, snap: HeatmapSnapshot, lo: int) -> Callable[[np.ndarray], np.ndarray]:
    """Maps a snapshot's bucket indices to rows of the common grid (its origin may differ)."""
    if math.isclose(math.log1p(snap.bucket_bp / 10_000), grid.step, rel_tol=1e-9):
        shift = grid.index(snap.grid_origin) - lo
        return lambda idx: np.rint(idx + shift).astype(int)
    growth = 1 + snap.bucket_bp / 10_000

    def by_price(idx: np.ndarray) -> np.ndarray:
        prices = snap.grid_origin * growth**idx
        return np.rint(np.log(prices / grid.origin) / grid.step).astype(int) - lo

    return by_price


def _composite(long_layer: np.ndarray, short_layer: np.ndarray, vmax: float) -> np.ndarray:
    """One RGBA image: each side's colour over the background, opacity by sqrt(USD / vmax).

    One image instead of two colormapped layers halves matplotlib's resampling work.
    """
    long_alpha = np.sqrt(np.clip(long_layer / vmax, 0.0, 1.0))[..., None]
    short_alpha = np.sqrt(np.clip(short_layer / vmax, 0.0, 1.0))[..., None]
    rgb = np.asarray(_LONG_RGB) * long_alpha
    rgb = rgb * (1 - short_alpha) + np.asarray(_SHORT_RGB) * short_alpha
    alpha = 1 - (1 - long_alpha) * (1 - short_alpha)
    # premultiplied colour back to straight alpha for imshow
    straight = np.divide(rgb, alpha, out=np.zeros_like(rgb), where=alpha > 0)
    return np.concatenate([straight, alpha], axis=-1)


def _robust_max(*layers: np.ndarray) -> float:
    values = np.concatenate([layer[layer > 0] for layer in layers])
    if values.size == 0:
        return 1.0
    return float(max(np.percentile(values, 99), 1e-9))


def _mark_alert(ax: Axes, grid: _Grid, alert: Alert) -> None:
    colour = fmt.SIDE_COLOUR[alert.side]
    if alert.band_lo is not None and alert.band_hi is not None:
        ax.axhspan(
            grid.index(alert.band_lo) - 0.5,
            grid.index(alert.band_hi) + 0.5,
            facecolor=colour,
            alpha=0.18,
            edgecolor=colour,
            linewidth=1.5,
        )
    ax.axhline(grid.index(alert.invalidation), color="#f5a524", linestyle="--", linewidth=1.2)
    ax.axvline(alert.created_at / _MS_PER_DAY, color=_FG, linestyle=":", linewidth=1.0)


def _axes_labels(
    ax: Axes,
    grid: _Grid,
    snaps: list[HeatmapSnapshot],
    alert: Alert | None,
    view: tuple[float, float, int, int],
) -> None:
    x0, x1, lo, hi = view
    ax.set_xlim(x0, x1)
    ax.set_ylim(lo - 0.5, hi + 0.5)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _pos: fmt.price(grid.price(y))))
    ticks = mdates.DateFormatter("%H:%M", tz=mdates.UTC)  # type: ignore[no-untyped-call]
    ax.xaxis.set_major_formatter(ticks)
    last = snaps[-1]
    span = f"{fmt.utc(snaps[0].ts)[:16]} → {fmt.utc(last.ts)[11:16]} UTC"
    title = f"{last.asset} liquidation heatmap · {span}"
    if alert is not None:
        title += f"\n{alert.title}"
    ax.figure.text(0.09, 0.985, title, color=_FG, fontsize=11, va="top", ha="left")
    handles = [
        Patch(color=_LONG_RGB, label="long liquidations"),
        Patch(color=_SHORT_RGB, label="short liquidations"),
        Line2D([], [], color="#f5f5f5", label="mark price"),
    ]
    if alert is not None:
        handles.append(Patch(color=fmt.SIDE_COLOUR[alert.side], alpha=0.4, label="alert band"))
        handles.append(Line2D([], [], color="#f5a524", linestyle="--", label="invalidation"))
    ax.legend(
        handles=handles,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.07),
        ncol=len(handles),
        fontsize=8,
        frameon=False,
        labelcolor=_FG,
    )
    ax.text(1.0, 1.01, last.model, color="#6e7681", fontsize=7, ha="right", transform=ax.transAxes)


def _style(ax: Axes) -> None:
    ax.set_facecolor(_BG)
    ax.tick_params(colors=_FG, labelsize=8)
    for spine in ax.spines.values():
        spine.set_color("#30363d")

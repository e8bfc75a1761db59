"""The heatmap PNG: a real image of the requested size, with layers, price line and band."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import msgspec
import numpy as np
from matplotlib.image import imread

from alerts.heatmap_png import render_heatmap_png
from alerts.samples import sample_cascade_alert, sample_snapshots

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _size(data: bytes) -> tuple[int, int]:
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


def _pixels(data: bytes) -> np.ndarray:
    return np.asarray(imread(io.BytesIO(data), format="png"))


def test_writes_png_to_path_and_buffer_and_returns_bytes(tmp_path: Path) -> None:
    snaps, alert = sample_snapshots(40), sample_cascade_alert()
    path = tmp_path / "heatmap.png"
    data = render_heatmap_png(snaps, alert, path, width_px=800, height_px=450)
    assert data.startswith(PNG_MAGIC)
    assert path.read_bytes() == data
    assert _size(data) == (800, 450)
    buffer = io.BytesIO()
    render_heatmap_png(snaps, alert, buffer, width_px=800, height_px=450)
    assert buffer.getvalue().startswith(PNG_MAGIC)


def test_long_and_short_layers_are_drawn_in_their_colours() -> None:
    image = _pixels(render_heatmap_png(sample_snapshots(60), None))
    rgb = image[..., :3]
    reddish = (rgb[..., 0] > 0.6) & (rgb[..., 1] < 0.45) & (rgb[..., 2] < 0.45)
    greenish = (rgb[..., 1] > 0.55) & (rgb[..., 0] < 0.4)
    assert reddish.sum() > 2_000, "long layer missing"
    assert greenish.sum() > 2_000, "short layer missing"


def test_the_alert_band_and_invalidation_change_the_image() -> None:
    snaps = sample_snapshots(60)
    alert = sample_cascade_alert()
    plain = _pixels(render_heatmap_png(snaps, alert=None))
    marked = _pixels(render_heatmap_png(snaps, alert))
    assert plain.shape == marked.shape

    def orange(image: np.ndarray) -> int:
        r, g, b = image[..., 0], image[..., 1], image[..., 2]
        return int(((r > 0.8) & (g > 0.45) & (g < 0.8) & (b < 0.35)).sum())

    assert orange(plain) < 50
    assert orange(marked) > 500, "dashed invalidation line (and its legend entry) missing"


def test_snapshots_on_different_grids_are_rebinned() -> None:
    snaps = sample_snapshots(30)
    shifted = [msgspec.structs.replace(s, grid_origin=s.grid_origin * 1.001) for s in snaps[:10]]
    coarse = [msgspec.structs.replace(s, bucket_bp=20.0) for s in snaps[10:12]]
    data = render_heatmap_png(shifted + coarse + snaps[12:], sample_cascade_alert())
    assert data.startswith(PNG_MAGIC)


def test_no_snapshots_still_renders_a_labelled_image() -> None:
    data = render_heatmap_png([], sample_cascade_alert(), width_px=400, height_px=300)
    assert _size(data) == (400, 300)


def test_single_snapshot_renders() -> None:
    data = render_heatmap_png(sample_snapshots(1), sample_cascade_alert())
    assert data.startswith(PNG_MAGIC)

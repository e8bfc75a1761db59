"""The README's first command, end to end: alerts, ClickHouse rows, PNGs, delivery to a real
HTTP endpoint, and bad input counted instead of crashing the pipeline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from liqwatch import codec
from liqwatch.schema import Alert, AlertKind, AlertUpdate, Side

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def liqwatch(
    *args: str, env: dict[str, str] | None = None, stdin: bytes | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[bytes]:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "liqwatch.cli", *args],
        input=stdin,
        capture_output=True,
        env=full_env,
        timeout=timeout,
        check=False,
    )


class _Hook(BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, object]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append(json.loads(body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict[str, object]]]]:
    received: list[dict[str, object]] = []
    handler = type("Hook", (_Hook,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"json://127.0.0.1:{server.server_address[1]}/hook", received
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def demo_run(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, subprocess.CompletedProcess[bytes]]:
    data = tmp_path_factory.mktemp("demo")
    result = liqwatch("demo", "--data-dir", str(data))
    return data, result


def _records(path: Path) -> list[Alert | AlertUpdate]:
    return [codec.alert_decoder.decode(line) for line in path.read_bytes().splitlines()]


def test_demo_prints_alerts_and_where_everything_went(demo_run) -> None:
    data, result = demo_run
    out = result.stdout.decode()
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    assert "cascade" in out.lower()
    assert str((data / "alerts.jsonl").resolve()) in out
    assert "heatmap PNG:" in out and "ClickHouse (embedded chDB)" in out


def test_demo_finds_the_labelled_cascades(demo_run) -> None:
    data, _ = demo_run
    alerts = [r for r in _records(data / "alerts.jsonl") if isinstance(r, Alert)]
    truth = json.loads((data / "recordings" / "demo.jsonl.labels.json").read_text())
    wanted = {(lab["asset"], lab["side"]) for lab in truth["labels"] if lab["kind"] == "cascade"}
    assert wanted, "the demo scenario must label cascades"
    found = {(a.asset, a.side.value) for a in alerts if a.kind is AlertKind.CASCADE and a.side}
    assert wanted <= found
    assert ("BTC", Side.LONG.value) in found and ("ETH", Side.SHORT.value) in found
    for alert in alerts:
        assert alert.invalidation > 0 and alert.model and alert.venues


def test_demo_rows_are_queryable_with_liqwatch_sql(demo_run) -> None:
    data, _ = demo_run
    result = liqwatch(
        "sql", "SELECT count() FROM liquidations", "--format", "csv", "--data-dir", str(data)
    )
    assert result.returncode == 0, result.stderr.decode()
    rows = int(result.stdout.decode().strip().splitlines()[-1])
    expected = 0
    for line in (data / "recordings" / "demo.jsonl").read_bytes().splitlines():
        rec = json.loads(line)
        ch = rec["channel"]
        if ch.startswith(("!forceOrder", "allLiquidation", "liquidation-orders")):
            frame = rec["frame"]
            expected += (
                1
                if ch.startswith("!forceOrder")
                else sum(len(d.get("details", [d])) for d in frame["data"])
            )
    assert rows == expected > 0
    alerts = liqwatch(
        "sql", "SELECT count() FROM alerts FINAL", "--format", "csv", "--data-dir", str(data)
    )
    assert int(alerts.stdout.decode().strip().splitlines()[-1]) == sum(
        isinstance(r, Alert) for r in _records(data / "alerts.jsonl")
    )


def test_demo_writes_heatmap_pngs(demo_run) -> None:
    data, _ = demo_run
    pngs = sorted(data.glob("heatmap_*.png"))
    assert [p.name for p in pngs] == ["heatmap_BTC.png", "heatmap_ETH.png"]
    for png in pngs:
        assert png.read_bytes()[:8] == PNG_MAGIC and png.stat().st_size > 10_000


def test_sql_is_read_only_by_default(demo_run) -> None:
    data, _ = demo_run
    result = liqwatch("sql", "DROP TABLE liquidations", "--data-dir", str(data))
    assert result.returncode != 0
    assert "read-only" in result.stderr.decode()


def test_replay_delivers_to_a_real_webhook_and_counts_bad_frames(
    demo_run, webhook, tmp_path: Path
) -> None:
    data, _ = demo_run
    url, received = webhook
    recording = tmp_path / "mixed.jsonl"
    good = (data / "recordings" / "demo.jsonl").read_bytes().splitlines()
    bad = [
        b"{not json",
        b'{"venue":"binance","channel":"!forceOrder@arr","ts_recv":1,"frame":{"e":"forceOrder"}}',
        b'{"venue":"bybit","channel":"no.such.topic","ts_recv":1,"frame":{"topic":"x"}}',
        b'{"venue":"nowhere","channel":"x","ts_recv":1,"frame":{}}',
    ]
    recording.write_bytes(b"\n".join(bad[:2] + good + bad[2:]) + b"\n")
    out_dir = tmp_path / "run"
    result = liqwatch(
        "replay", str(recording), "--data-dir", str(out_dir), env={"LIQWATCH_NOTIFY_URLS": url}
    )
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    out = result.stdout.decode()
    assert "4 dead letters" in out
    alerts = [r for r in _records(out_dir / "alerts.jsonl") if isinstance(r, Alert)]
    assert len(received) >= len(alerts) > 0
    titles = {str(m.get("title", "")) for m in received}
    assert any("cascade" in t.lower() for t in titles)
    dead = liqwatch(
        "sql", "SELECT count() FROM dead_letters", "--format", "csv", "--data-dir", str(out_dir)
    )
    assert int(dead.stdout.decode().strip().splitlines()[-1]) == 4


def test_parse_reports_each_bad_frame_and_keeps_going() -> None:
    frames = (
        b"\n".join(
            [
                b'{"e":"forceOrder","E":1760130312345,"o":{"s":"BTCUSDT","S":"SELL","o":"LIMIT","f":"IOC",'
                b'"q":"0.740","p":"112350.10","ap":"112401.80","X":"FILLED","l":"0.740","z":"0.740",'
                b'"T":1760130312340}}',
                b"garbage",
                b'{"e":"forceOrder","E":1}',
            ]
        )
        + b"\n"
    )
    result = liqwatch("parse", "--venue", "binance", stdin=frames)
    assert result.returncode != 0
    events = [json.loads(line) for line in result.stdout.decode().splitlines()]
    assert len(events) == 1 and events[0]["side"] == "long" and events[0]["qty"] == 0.74
    errors = result.stderr.decode().strip().splitlines()
    assert len(errors) == 2
    assert errors[0].startswith("line 2") and errors[1].startswith("line 3")

"""Writes every channel's rendering of the sample cascade, for docs/alerts.md.

``python -m alerts.examples OUT_DIR`` writes telegram.html, discord.md, email.html, email.txt,
webhook.json, update-*.txt and heatmap.png. tests/alerts/test_docs.py checks that the docs
still show exactly what the templates produce.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from alerts.heatmap_png import render_heatmap_png
from alerts.render import email_html, email_text, render_alert, render_update
from alerts.samples import sample_cascade_alert, sample_snapshots, sample_updates
from alerts.targets import Channel

EMAIL_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>{title}</title></head>
<body style="background:#f4f5f7;padding:24px"><div style="background:#fff;padding:20px">
<div style="font:13px Helvetica,Arial,sans-serif;color:#555;margin-bottom:12px">
Subject: <b>{title}</b></div>
{body}
<div style="font:12px Helvetica,Arial,sans-serif;color:#555;margin-top:16px">
📎 btc-heatmap.png</div>
</div></body></html>
"""


def examples() -> dict[str, str]:
    alert = sample_cascade_alert()
    escalated, ended = sample_updates(alert)
    telegram = render_alert(alert, Channel.TELEGRAM)
    discord = render_alert(alert, Channel.DISCORD)
    webhook = render_alert(alert, Channel.WEBHOOK)
    return {
        "telegram.html": telegram.body,
        "discord.md": f"title: {discord.title}\ncolour: {discord.notify_type.value}\n\n"
        f"{discord.body}",
        "email.html": email_html(alert),
        "email.txt": email_text(alert),
        "webhook.json": json.dumps(json.loads(webhook.body), indent=2, ensure_ascii=False),
        "update-escalated.txt": render_update(escalated, alert, Channel.TELEGRAM).body,
        "update-ended.txt": render_update(ended, alert, Channel.TELEGRAM).body,
        "email-page.html": EMAIL_PAGE.format(
            title=render_alert(alert, Channel.EMAIL).title, body=email_html(alert)
        ),
    }


def write_examples(out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in examples().items():
        path = out_dir / name
        path.write_text(text + "\n")
        written.append(path)
    png = out_dir / "heatmap.png"
    render_heatmap_png(sample_snapshots(), sample_cascade_alert(), png)
    written.append(png)
    return written


if __name__ == "__main__":
    for written_path in write_examples(Path(sys.argv[1] if len(sys.argv) > 1 else "out")):
        print(written_path)

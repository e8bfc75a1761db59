"""docs/alerts.md shows exactly what the templates render today."""

from __future__ import annotations

import re
from pathlib import Path

from alerts.examples import examples

DOC = Path(__file__).parents[2] / "docs" / "alerts.md"
BLOCK = re.compile(r"<!-- example: (?P<name>\S+) -->\n```\w*\n(?P<body>.*?)\n```", re.S)


def test_every_example_block_matches_the_templates() -> None:
    rendered = examples()
    blocks = {m["name"]: m["body"] for m in BLOCK.finditer(DOC.read_text())}
    assert set(blocks) >= {"telegram.html", "discord.md", "email.html", "email.txt", "webhook.json"}
    for name, body in blocks.items():
        assert body == rendered[name].rstrip("\n"), f"docs/alerts.md example {name} is stale"


def test_doc_images_exist() -> None:
    for image in ("alerts-heatmap.png", "alerts-email.png"):
        data = (DOC.parent / "img" / image).read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 10_000


def test_the_routing_example_is_a_valid_rules_file() -> None:
    from alerts.rules import parse_rules

    (example,) = re.findall(r"```yaml\n(.*?)\n```", DOC.read_text(), re.S)
    rules = parse_rules(example, "docs/alerts.md")
    assert [r.name for r in rules.routes] == ["desk-critical", "btc-eth-traders"]
    desk, traders = rules.routes
    assert desk.cooldown_s == 0 and traders.cooldown_s == 300  # from defaults
    assert traders.quiet_hours is not None and traders.quiet_hours.timezone == "Europe/Zurich"

"""Route targets from env / secret files / Apprise config tags, resolved once with clear errors."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
from pydantic import SecretStr

from alerts.apprise_compat import NotifyFormat
from alerts.destinations import Destinations
from alerts.redact import SecretRedactor
from alerts.rules import RulesError, parse_rules
from alerts.targets import Channel
from liqwatch.settings import NotifySettings

TG = "tgram://123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/-100123"
DISCORD = "https://discord.com/api/webhooks/1180000000000000001/Wh-TOKEN_abcdefghijklmnop"
MAIL = "mailto://desk:mail-pa55@smtp.example.com:587?from=a@example.com&to=b@example.com"


def _destinations(
    rules: str,
    urls: Sequence[str] = (),
    env: dict[str, str] | None = None,
    apprise_config: Path | None = None,
) -> Destinations:
    notify = NotifySettings(notify_urls=[SecretStr(u) for u in urls], apprise_config=apprise_config)
    return Destinations(parse_rules(rules, "rules.yaml"), notify, SecretRedactor(), env=env or {})


def test_global_urls_get_redacted_names_and_channels() -> None:
    destinations = _destinations(
        "routes:\n  - name: all\n    notify: {urls: all}\n",
        [TG, DISCORD, MAIL, "json://hooks.example.com/liq"],
    )
    targets = destinations.targets("all")
    assert [(t.channel, t.name) for t in targets] == [
        (Channel.TELEGRAM, "tgram://api.telegram.org"),
        (Channel.DISCORD, "discord://discord.com"),
        (Channel.EMAIL, "mailto://smtp.example.com:587"),
        (Channel.WEBHOOK, "json://hooks.example.com"),
    ]
    assert targets[1].service._format_override is NotifyFormat.MARKDOWN  # embeds
    assert len({t.key for t in targets}) == 4
    assert all("AAHdq" not in t.key and len(t.key) == 16 for t in targets)


def test_url_env_and_url_files(tmp_path: Path) -> None:
    secret_file = tmp_path / "desk-urls"
    secret_file.write_text(f"# desk\n{MAIL}\n\n")
    destinations = _destinations(
        "routes:\n  - name: desk\n    notify:\n      url_env: [DESK_URLS]\n"
        f"      url_files: [{secret_file}]\n",
        env={"DESK_URLS": f"{TG} {DISCORD}"},
    )
    assert [t.channel for t in destinations.targets("desk")] == [
        Channel.TELEGRAM,
        Channel.DISCORD,
        Channel.EMAIL,
    ]


def test_missing_env_variable_names_route_and_line() -> None:
    with pytest.raises(RulesError) as caught:
        _destinations(
            "routes:\n  - name: x\n    notify: {urls: all}\n"
            "  - name: desk\n    notify: {url_env: [DESK_URLS]}\n"
        )
    assert str(caught.value) == (
        "rules.yaml line 4: route 'desk': environment variable DESK_URLS (url_env) is not set"
    )


def test_invalid_url_error_never_shows_the_url() -> None:
    bad = "tgram://not-a-token-Secret123/"
    with pytest.raises(RulesError) as caught:
        _destinations("routes:\n  - name: r\n    notify: {urls: all}\n", [bad])
    assert "not a usable Apprise URL (scheme 'tgram')" in str(caught.value)
    assert "Secret123" not in str(caught.value)


@pytest.mark.parametrize("fmt", ["yaml", "text"])
def test_tags_select_services_from_an_apprise_config(tmp_path: Path, fmt: str) -> None:
    if fmt == "yaml":
        config = tmp_path / "apprise.yaml"
        config.write_text(
            "urls:\n"
            f"  - {TG}:\n      tag: desk, ops\n"
            f"  - json://ops.example.com/hook:\n      tag: ops\n"
        )
    else:
        config = tmp_path / "apprise.txt"
        config.write_text(f"desk,ops={TG}\nops=json://ops.example.com/hook\n")
    destinations = _destinations(
        "routes:\n  - name: d\n    notify: {tags: [desk]}\n"
        "  - name: o\n    notify: {tags: [ops]}\n",
        apprise_config=config,
    )
    assert [t.name for t in destinations.targets("d")] == ["tgram://api.telegram.org"]
    assert sorted(t.name for t in destinations.targets("o")) == [
        "json://ops.example.com",
        "tgram://api.telegram.org",
    ]


def test_unknown_tag_or_missing_config_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(RulesError, match="tags need an Apprise config file"):
        _destinations("routes:\n  - name: d\n    notify: {tags: [desk]}\n")
    config = tmp_path / "apprise.txt"
    config.write_text(f"ops={TG}\n")
    with pytest.raises(RulesError, match="line 2: route 'd': tag 'desk': no service"):
        _destinations("routes:\n  - name: d\n    notify: {tags: [desk]}\n", apprise_config=config)

"""Resolves each route's ``notify`` block to concrete targets, once, at start.

Every problem (a variable that is not set, a tag no service carries, a URL Apprise rejects) is a
``RulesError`` naming the route and its line, so a bad deployment fails before the first alert.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from alerts.apprise_compat import AppriseAsset, AppriseConfig
from alerts.redact import SecretRedactor
from alerts.rules import ResolvedRoute, RulesError, RuleSet
from alerts.targets import (
    Target,
    TargetError,
    targets_from_config,
    targets_from_urls,
)
from liqwatch.settings import NotifySettings

_COLOURS = {"info": "#3E63DD", "success": "#30A46C", "warning": "#F5A524", "failure": "#E5484D"}


def make_asset() -> AppriseAsset:
    """Apprise asset for every target: our name, colours by side, no files written."""
    asset = AppriseAsset(
        storage_mode="memory", app_id="liqwatch", app_desc="liqwatch liquidation alerts"
    )
    asset.html_notify_map = {key: value for key, value in asset.html_notify_map.items()}
    for notify_type in list(asset.html_notify_map):
        asset.html_notify_map[notify_type] = _COLOURS.get(str(notify_type.value), "#888888")
    return asset


class Destinations:
    def __init__(
        self,
        rules: RuleSet,
        notify: NotifySettings,
        redactor: SecretRedactor,
        env: Mapping[str, str] | None = None,
        asset: AppriseAsset | None = None,
    ) -> None:
        self.asset = asset or make_asset()
        self._rules = rules
        self._redactor = redactor
        self._env = os.environ if env is None else env
        self._notify = notify
        self._global: list[Target] | None = None
        self._configured: list[Target] | None = None
        self._by_route = {route.name: self._resolve(route) for route in rules.routes}

    def targets(self, route_name: str) -> list[Target]:
        return self._by_route.get(route_name, [])

    def all_targets(self) -> list[Target]:
        unique = {t.key: t for targets in self._by_route.values() for t in targets}
        return list(unique.values())

    def _resolve(self, route: ResolvedRoute) -> list[Target]:
        try:
            found = self._collect(route)
        except (TargetError, OSError) as exc:
            raise RulesError(self._where(route, str(exc))) from None
        unique = {t.key: t for t in found}
        return list(unique.values())

    def _collect(self, route: ResolvedRoute) -> list[Target]:
        spec = route.notify
        found: list[Target] = []
        if spec.urls == "all":
            found += self._global_targets()
        for name in spec.url_env:
            value = self._env.get(name, "").strip()
            if not value:
                raise TargetError(f"environment variable {name} (url_env) is not set")
            found += targets_from_urls(value.split(), self.asset, self._redactor, f"${name}")
        for path in spec.url_files:
            found += targets_from_urls(_url_lines(path), self.asset, self._redactor, str(path))
        for tag in spec.tags:
            tagged = [t for t in self._config_targets() if tag in t.tags]
            if not tagged:
                raise TargetError(f"tag {tag!r}: no service in the Apprise config carries it")
            found += tagged
        return found

    def _global_targets(self) -> list[Target]:
        if self._global is None:
            urls = [u.get_secret_value() for u in self._notify.all_urls()]
            self._global = targets_from_urls(urls, self.asset, self._redactor, "LIQWATCH_NOTIFY")
        return self._global

    def _config_targets(self) -> list[Target]:
        if self._configured is None:
            path = self._notify.apprise_config
            if path is None:
                raise TargetError("tags need an Apprise config file (LIQWATCH_APPRISE_CONFIG)")
            if not path.is_file():
                raise TargetError(f"Apprise config {path} does not exist")
            config = AppriseConfig(asset=self.asset)
            if not config.add(str(path)):
                raise TargetError(f"Apprise config {path} could not be loaded")
            self._configured = targets_from_config(config, self._redactor)
        return self._configured

    def _where(self, route: ResolvedRoute, problem: str) -> str:
        line = f" line {route.line}" if route.line else ""
        return f"{self._rules.source}{line}: route {route.name!r}: {problem}"


def _url_lines(path: Path) -> list[str]:
    lines = (line.strip() for line in path.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]

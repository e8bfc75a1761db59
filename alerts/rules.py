"""Routing rules: which alerts go where, how often, and when to stay quiet.

Loaded from YAML and validated once at start; every error names the file and line. The file
holds no secrets: routes point at URLs from the environment / secret files
(``LIQWATCH_NOTIFY_URLS``, ``LIQWATCH_NOTIFY_URLS_FILE``, or variables named in ``url_env``) or
at tags of services in an Apprise config file (``LIQWATCH_APPRISE_CONFIG``).
See docs/alerts.md for the reference.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from liqwatch.schema import Alert, AlertKind, Intensity, Severity, Side

SEVERITY_RANK = {Severity.INFO: 0, Severity.WARNING: 1, Severity.CRITICAL: 2}
INTENSITY_RANK = {Intensity.DIM: 0, Intensity.MEDIUM: 1, Intensity.BRIGHT: 2}

_CLOCK = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


class RulesError(ValueError):
    """A rules file that cannot be used; the message names file and line."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Match(_Strict):
    """All given conditions must hold; an omitted condition matches everything."""

    kinds: list[AlertKind] | None = None
    subkinds: list[str] | None = None
    assets: list[str] | None = None
    sides: list[Side] | None = None
    severities: list[Severity] | None = None
    min_severity: Severity = Severity.INFO
    # Applies to alerts that carry an intensity (cluster, approach, sweep); others pass.
    min_intensity: Intensity | None = None
    venues: list[str] | None = None  # at least one of these venues covered and not stale
    min_notional_usd: float = Field(default=0.0, ge=0)

    @field_validator("assets")
    @classmethod
    def _upper(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else [a.upper() for a in value]

    def matches(self, alert: Alert) -> bool:
        checks = (
            self.kinds is None or alert.kind in self.kinds,
            self.subkinds is None or alert.subkind in self.subkinds,
            self.assets is None or alert.asset.upper() in self.assets,
            self.sides is None or alert.side in self.sides,
            self.severities is None or alert.severity in self.severities,
            SEVERITY_RANK[alert.severity] >= SEVERITY_RANK[self.min_severity],
            self._intensity_ok(alert),
            self._venue_ok(alert),
            alert.notional_usd >= self.min_notional_usd,
        )
        return all(checks)

    def _intensity_ok(self, alert: Alert) -> bool:
        if self.min_intensity is None or alert.intensity is None:
            return True
        return INTENSITY_RANK[alert.intensity] >= INTENSITY_RANK[self.min_intensity]

    def _venue_ok(self, alert: Alert) -> bool:
        if self.venues is None:
            return True
        return any(v.venue in self.venues and not v.stale for v in alert.venues)


class Notify(_Strict):
    """Where a route sends. URLs come from the environment or files, never from this file."""

    urls: Literal["all", "none"] = "none"  # all: every URL in LIQWATCH_NOTIFY_URLS(_FILE)
    url_env: list[str] = Field(default_factory=list)  # env variables holding URLs
    url_files: list[Path] = Field(default_factory=list)  # secret files, one URL a line
    tags: list[str] = Field(default_factory=list)  # services tagged so in the Apprise config

    @model_validator(mode="after")
    def _somewhere(self) -> Notify:
        if self.urls == "none" and not (self.url_env or self.url_files or self.tags):
            raise ValueError("notify needs at least one of urls: all, url_env, url_files, tags")
        return self


class QuietHours(_Strict):
    start: str
    end: str
    timezone: str = "UTC"
    except_severity: Severity | None = Severity.CRITICAL  # at or above this, alerts still go

    @field_validator("start", "end")
    @classmethod
    def _clock(cls, value: str) -> str:
        if not _CLOCK.match(value):
            raise ValueError(f"expected HH:MM (24 h), got {value!r}")
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    def is_quiet(self, ts_ms: int, severity: Severity) -> bool:
        if self.except_severity is not None and (
            SEVERITY_RANK[severity] >= SEVERITY_RANK[self.except_severity]
        ):
            return False
        local = dt.datetime.fromtimestamp(ts_ms / 1000, tz=ZoneInfo(self.timezone)).time()
        start, end = _parse_clock(self.start), _parse_clock(self.end)
        if start <= end:
            return start <= local < end
        return local >= start or local < end  # the window wraps midnight


class Flood(_Strict):
    """At most ``max_alerts`` per ``window_s``; the rest are folded into one digest message."""

    max_alerts: int = Field(ge=1)
    window_s: float = Field(gt=0)


class RouteSettings(_Strict):
    """Per-route behaviour; any of it may also be given once under ``defaults``."""

    cooldown_s: float | None = Field(default=None, ge=0)
    dedupe_window_s: float | None = Field(default=None, ge=0)
    quiet_hours: QuietHours | None = None
    flood: Flood | None = None
    attach_heatmap: bool | None = None
    updates: bool | None = None
    outcomes: bool | None = None


class Route(RouteSettings):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.:-]+$")
    match: Match = Field(default_factory=Match)
    notify: Notify


class RulesFile(_Strict):
    version: Literal[1] = 1
    defaults: RouteSettings = Field(default_factory=RouteSettings)
    routes: list[Route] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_names(self) -> RulesFile:
        names = [r.name for r in self.routes]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"route names must be unique, repeated: {', '.join(dupes)}")
        return self


class ResolvedRoute(BaseModel):
    """A route with its defaults applied: what the router and dispatcher use."""

    model_config = ConfigDict(frozen=True)

    name: str
    match: Match
    notify: Notify
    cooldown_s: float = 0.0
    dedupe_window_s: float = 300.0
    quiet_hours: QuietHours | None = None
    flood: Flood | None = None
    attach_heatmap: bool = True
    updates: bool = True
    outcomes: bool = False
    line: int = 0  # where the route starts in its file (0: built in)


class RuleSet(BaseModel):
    model_config = ConfigDict(frozen=True)

    routes: list[ResolvedRoute]
    source: str = "built-in default"


def default_rules() -> RuleSet:
    """Without a file: everything to every configured URL, with a flood guard."""
    route = ResolvedRoute(
        name="default",
        match=Match(),
        notify=Notify(urls="all"),
        dedupe_window_s=300.0,
        flood=Flood(max_alerts=30, window_s=60.0),
    )
    return RuleSet(routes=[route])


def load_rules(path: Path | None) -> RuleSet:
    if path is None:
        return default_rules()
    try:
        text = path.read_text()
    except OSError as exc:
        raise RulesError(f"{path}: cannot read rules file: {exc.strerror}") from exc
    return parse_rules(text, str(path))


def parse_rules(text: str, source: str = "<rules>") -> RuleSet:
    data, lines = _load_yaml(text, source)
    try:
        parsed = RulesFile.model_validate(data)
    except ValidationError as exc:
        raise RulesError(_describe(exc, lines, source)) from None
    return RuleSet(
        routes=[_resolve(r, parsed.defaults, lines, i) for i, r in enumerate(parsed.routes)],
        source=source,
    )


# --- YAML with line numbers ----------------------------------------------------------------

Path_ = tuple[str | int, ...]


def _load_yaml(text: str, source: str) -> tuple[Any, dict[Path_, int]]:
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise RulesError(f"{source}: rules file is empty")
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        raise RulesError(_yaml_problem(exc, source)) from None
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        raise RulesError(f"{source} line {node.start_mark.line + 1}: expected a mapping at top")
    lines: dict[Path_, int] = {}
    _index_lines(node, (), lines)
    return data, lines


def _yaml_problem(exc: yaml.MarkedYAMLError, source: str) -> str:
    mark = exc.problem_mark or exc.context_mark
    where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown line"
    text = f"{source} {where}: invalid YAML: {exc.problem or exc}"
    if exc.context and exc.context_mark is not None and exc.context_mark is not mark:
        text += f" ({exc.context} at line {exc.context_mark.line + 1})"
    return text


def _index_lines(node: yaml.Node, path: Path_, lines: dict[Path_, int]) -> None:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            child = (*path, str(key.value))
            _index_lines(value, child, lines)
            lines[child] = key.start_mark.line + 1  # an error about a key points at the key
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _index_lines(item, (*path, i), lines)


def _line_for(loc: Path_, lines: dict[Path_, int]) -> int:
    for end in range(len(loc), -1, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return 1


def _describe(exc: ValidationError, lines: dict[Path_, int], source: str) -> str:
    out = []
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if isinstance(p, str | int))
        where = _dotted(loc) or "(top)"
        got = f" (got {err['input']!r})" if err["type"] not in ("missing",) and _short(err) else ""
        message = err["msg"].removeprefix("Value error, ")
        out.append(f"{source} line {_line_for(loc, lines)}: {where}: {message}{got}")
    return "\n".join(out)


def _short(err: Any) -> bool:
    value = err.get("input")
    return isinstance(value, str | int | float | bool) and len(repr(value)) < 60


def _dotted(loc: Path_) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def _resolve(
    route: Route, defaults: RouteSettings, lines: dict[Path_, int], index: int
) -> ResolvedRoute:
    values: dict[str, Any] = {
        "name": route.name,
        "match": route.match,
        "notify": route.notify,
        "line": lines.get(("routes", index), 0),
    }
    for name in RouteSettings.model_fields:
        value = getattr(route, name)
        if value is None:
            value = getattr(defaults, name)
        if value is not None:
            values[name] = value
    return ResolvedRoute(**values)


def _parse_clock(value: str) -> dt.time:
    hours, minutes = value.split(":")
    return dt.time(int(hours), int(minutes))

"""Per-route decisions: send, or suppress with a reason (quiet hours, duplicate, cooldown, flood).

All windows run on the alert's own time (``created_at``; ``ts`` for updates), so a replay of a
recording decides exactly as the live run did. Plain class, no I/O.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from alerts.outcomes import OUTCOME_SUBKIND
from alerts.rules import SEVERITY_RANK, ResolvedRoute, RuleSet
from liqwatch.schema import Alert, AlertUpdate, Severity

DIGEST_MAX_LISTED = 50
REMEMBER_DECISIONS = (
    10_000  # per route  # a digest names at most this many alerts and counts the rest
)

QUIET = "quiet hours"
DUPLICATE = "duplicate of a recent alert"
COOLDOWN = "cooldown"
FOLDED = "flood limit: folded into digest"


@dataclass(frozen=True)
class Decision:
    route: ResolvedRoute
    send: bool
    reason: str = ""


@dataclass
class Digest:
    route: ResolvedRoute
    window_start: int
    window_end: int
    alerts: list[Alert] = field(default_factory=list)
    more: int = 0  # folded alerts beyond DIGEST_MAX_LISTED

    @property
    def digest_id(self) -> str:
        return f"digest:{self.route.name}:{self.window_start}"

    @property
    def total(self) -> int:
        return len(self.alerts) + self.more


@dataclass
class _FloodWindow:
    start: int
    end: int
    sent: int = 0
    digest: Digest | None = None


@dataclass
class _RouteState:
    decided: OrderedDict[str, Decision] = field(default_factory=OrderedDict)
    last_sent: dict[tuple[str, str, str | None], tuple[int, int]] = field(default_factory=dict)
    fingerprints: dict[tuple[object, ...], int] = field(default_factory=dict)
    window: _FloodWindow | None = None
    ready: list[Digest] = field(default_factory=list)


class Router:
    def __init__(self, rules: RuleSet) -> None:
        self.rules = rules
        self._state = {route.name: _RouteState() for route in rules.routes}

    def match(self, alert: Alert) -> list[ResolvedRoute]:
        return [route for route in self.rules.routes if route.match.matches(alert)]

    def decide(self, alert: Alert, route: ResolvedRoute) -> Decision:
        """The route's decision for this alert; the same alert id always gets the same one,
        so a replay that retries a failed target is not taken for a duplicate of itself."""
        state = self._state[route.name]
        earlier = state.decided.get(alert.alert_id)
        if earlier is not None:
            return earlier
        decision = self._decide(alert, route, state)
        state.decided[alert.alert_id] = decision
        if len(state.decided) > REMEMBER_DECISIONS:
            state.decided.popitem(last=False)
        return decision

    def _decide(self, alert: Alert, route: ResolvedRoute, state: _RouteState) -> Decision:
        ts = alert.created_at
        if route.quiet_hours is not None and route.quiet_hours.is_quiet(ts, alert.severity):
            return Decision(route, False, QUIET)
        fingerprint = _fingerprint(alert)
        if _within(state.fingerprints.get(fingerprint), ts, route.dedupe_window_s):
            return Decision(route, False, DUPLICATE)
        key = (alert.kind.value, alert.asset, alert.side.value if alert.side else None)
        rank = SEVERITY_RANK[alert.severity]
        last = state.last_sent.get(key)
        if last is not None and _within(last[0], ts, route.cooldown_s) and rank <= last[1]:
            return Decision(route, False, COOLDOWN)
        if not self._flood_allows(state, route, alert):
            return Decision(route, False, FOLDED)
        state.last_sent[key] = (ts, rank)
        state.fingerprints[fingerprint] = ts
        _prune(state.fingerprints, ts, route.dedupe_window_s)
        return Decision(route, True)

    def decide_update(
        self, update: AlertUpdate, route: ResolvedRoute, severity: Severity
    ) -> Decision | None:
        """None when the route does not take this kind of follow-up at all."""
        wanted = route.outcomes if update.subkind == OUTCOME_SUBKIND else route.updates
        if not wanted:
            return None
        if route.quiet_hours is not None and route.quiet_hours.is_quiet(update.ts, severity):
            return Decision(route, False, QUIET)
        return Decision(route, True)

    def due_digests(self, now_ms: int, *, force: bool = False) -> list[Digest]:
        """Digests whose window has closed (all pending ones with ``force``)."""
        due: list[Digest] = []
        for state in self._state.values():
            window = state.window
            if window is not None and (force or now_ms >= window.end):
                _close(state)
            due.extend(state.ready)
            state.ready = []
        return due

    def _flood_allows(self, state: _RouteState, route: ResolvedRoute, alert: Alert) -> bool:
        flood = route.flood
        if flood is None:
            return True
        ts = alert.created_at
        if state.window is None or ts >= state.window.end:
            _close(state)
            state.window = _FloodWindow(start=ts, end=ts + int(flood.window_s * 1000))
        window = state.window
        if window.sent < flood.max_alerts:
            window.sent += 1
            return True
        if window.digest is None:
            window.digest = Digest(route, window.start, window.end)
        if len(window.digest.alerts) < DIGEST_MAX_LISTED:
            window.digest.alerts.append(alert)
        else:
            window.digest.more += 1
        return False


def _close(state: _RouteState) -> None:
    if state.window is not None and state.window.digest is not None:
        state.ready.append(state.window.digest)
    state.window = None


def _within(last_ts: int | None, ts: int, window_s: float) -> bool:
    return last_ts is not None and window_s > 0 and 0 <= ts - last_ts < window_s * 1000


def _fingerprint(alert: Alert) -> tuple[object, ...]:
    def band(value: float | None) -> str:
        return "" if value is None else f"{value:.4g}"

    side = alert.side.value if alert.side else None
    return (
        alert.kind.value,
        alert.subkind,
        alert.asset,
        side,
        band(alert.band_lo),
        band(alert.band_hi),
    )


def _prune(seen: dict[tuple[object, ...], int], ts: int, window_s: float) -> None:
    if len(seen) < 1024:
        return
    horizon = ts - int(window_s * 1000)
    for key in [k for k, v in seen.items() if v < horizon]:
        del seen[key]

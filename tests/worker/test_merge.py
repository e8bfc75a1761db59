"""The per-partition merge releases the same sequence whatever the arrival timing, and a merge
restarted from any point it passed through continues exactly as the uninterrupted one."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from processors.merge import FIRST, Added, PartitionMerge, Pending

TOPICS = ["marks", "oi", "liqs"]

Streams = dict[str, list[int]]  # topic -> the order keys of its messages, in offset order

streams_st = st.fixed_dictionaries(
    {t: st.lists(st.integers(min_value=0, max_value=30), max_size=25) for t in TOPICS}
)


def _items(streams: Streams, partition: int = 0) -> dict[str, list[Pending[str]]]:
    return {
        t: [Pending(k, t, partition, off, f"{t}@{off}") for off, k in enumerate(keys)]
        for t, keys in streams.items()
    }


def _all_at_once(streams: Streams, start: dict[str, int] | None = None) -> list[str]:
    merge: PartitionMerge[str] = PartitionMerge(TOPICS)
    for topic, items in _items(streams).items():
        for item in items[(start or {}).get(topic, 0) :]:
            merge.add(item)
    return [p.item for p in merge.release(lambda _t, _p: True)]


def _trickled(streams: Streams, seed: int) -> list[str]:
    """Messages arrive one at a time in a random topic order, with releases in between."""
    rnd = random.Random(seed)
    items = _items(streams)
    delivered = dict.fromkeys(TOPICS, 0)
    merge: PartitionMerge[str] = PartitionMerge(TOPICS)

    def caught_up(topic: str, _partition: int) -> bool:
        return delivered[topic] == len(items[topic])

    out: list[str] = []
    while not all(caught_up(t, 0) for t in TOPICS):
        topic = rnd.choice([t for t in TOPICS if not caught_up(t, 0)])
        merge.add(items[topic][delivered[topic]])
        delivered[topic] += 1
        if rnd.random() < 0.5:
            out += [p.item for p in merge.release(caught_up)]
    out += [p.item for p in merge.release(caught_up)]
    assert merge.buffered == 0
    return out


@settings(max_examples=300, deadline=None)
@given(streams=streams_st, seed=st.integers(0, 2**32))
def test_release_order_does_not_depend_on_arrival_timing(streams: Streams, seed: int) -> None:
    expected = _all_at_once(streams)
    assert sorted(expected) == sorted(
        f"{t}@{i}" for t, ks in streams.items() for i in range(len(ks))
    )
    assert _trickled(streams, seed) == expected


@settings(max_examples=300, deadline=None)
@given(streams=streams_st, cut=st.floats(0, 1))
def test_restart_from_a_merge_point_continues_identically(streams: Streams, cut: float) -> None:
    full = _all_at_once(streams)
    k = int(cut * len(full))
    positions = dict.fromkeys(TOPICS, 0)
    for item in full[:k]:  # what a save after k releases covers, per topic (its offsets)
        topic, offset = item.split("@")
        positions[topic] = int(offset) + 1
    assert _all_at_once(streams, positions) == full[k:]


def test_waits_for_a_topic_that_may_still_deliver_something_earlier() -> None:
    merge: PartitionMerge[str] = PartitionMerge(TOPICS)
    merge.add(Pending(50, "liqs", 0, 0, "liq"))
    pending_oi = {"marks": True, "oi": False, "liqs": True}
    assert merge.release(lambda t, _p: pending_oi[t]) == []
    merge.add(Pending(40, "oi", 0, 0, "oi"))
    assert [p.item for p in merge.release(lambda t, _p: pending_oi[t])] == ["oi"]
    assert [p.item for p in merge.release(lambda _t, _p: True)] == ["liq"]


def test_ties_go_to_the_first_topic_and_partitions_are_independent() -> None:
    merge: PartitionMerge[str] = PartitionMerge(TOPICS)
    merge.add(Pending(7, "liqs", 1, 0, "liq-p1"))
    merge.add(Pending(7, "marks", 1, 0, "mark-p1"))
    merge.add(Pending(3, "liqs", 0, 0, "liq-p0"))
    p1_waits_for_oi = merge.release(lambda t, p: p == 0 or t != "oi")
    assert [p.item for p in p1_waits_for_oi] == ["liq-p0"]
    assert [p.item for p in merge.release(lambda _t, _p: True)] == ["mark-p1", "liq-p1"]


def test_undecodable_messages_do_not_wait_and_forget_drops_a_partition() -> None:
    merge: PartitionMerge[str] = PartitionMerge(TOPICS)
    merge.add(Pending(FIRST, "oi", 2, 5, "bad"))
    merge.add(Pending(9, "liqs", 2, 6, "liq"))
    assert [p.item for p in merge.release(lambda _t, _p: False)] == ["bad"]
    assert merge.next_offset("liqs", 2) == 7
    assert merge.add(Pending(9, "liqs", 2, 6, "liq again")) is Added.DUPLICATE
    assert merge.add(Pending(9, "liqs", 2, 9, "after a gap")) is Added.GAP
    assert merge.buffered == 1
    dropped = merge.forget([2])
    assert [p.item for p in dropped] == ["liq"]
    assert merge.buffered == 0 and merge.next_offset("liqs", 2) is None
    try:
        merge.add(Pending(1, "signals", 0, 0, "x"))
    except ValueError as exc:
        assert "signals" in str(exc)
    else:
        raise AssertionError("a topic outside the merge must be refused")


def test_flow_control_pauses_what_runs_ahead_but_never_what_the_merge_waits_for() -> None:
    merge: PartitionMerge[str] = PartitionMerge(TOPICS, max_events=500)
    liqs_done = {"marks": True, "oi": True, "liqs": False}

    def caught_up(topic: str, _partition: int) -> bool:
        return liqs_done[topic]

    for offset in range(3):
        merge.add(Pending(10 + offset, "marks", 0, offset, f"m{offset}", size=200))
    assert merge.release(caught_up) == []  # waits for liquidations
    assert merge.flow_changes(caught_up, set()) == ({("marks", 0)}, set())
    # a paused partition the merge now waits for is resumed at once
    paused = {("marks", 0), ("liqs", 0)}
    assert merge.flow_changes(caught_up, paused) == (set(), {("liqs", 0)})
    merge.add(Pending(1, "liqs", 0, 0, "l0", size=10))
    liqs_done["liqs"] = True
    assert [p.item for p in merge.release(caught_up)] == ["l0", "m0", "m1", "m2"]
    assert merge.flow_changes(caught_up, {("marks", 0)}) == (set(), {("marks", 0)})


def test_far_over_its_bound_the_merge_stops_waiting_and_counts_it() -> None:
    merge: PartitionMerge[str] = PartitionMerge(TOPICS, max_events=250)

    def waits_for_liqs(topic: str, _partition: int) -> bool:
        return topic != "liqs"

    for offset in range(3):
        merge.add(Pending(10 + offset, "marks", 0, offset, f"m{offset}", size=300))
    assert merge.release(waits_for_liqs) == [] and merge.buffered_events == 900
    merge.add(Pending(5, "oi", 0, 0, "o0", size=300))  # 1,200 events: over 4 x 250
    assert [p.item for p in merge.release(waits_for_liqs)] == ["o0"]  # then waits again
    assert merge.forced == 1 and merge.buffered_events == 900


def _per_partition(released: list[Pending[str]]) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    for p in released:
        out.setdefault(p.partition, []).append(p.item)
    return out


@settings(max_examples=200, deadline=None)
@given(
    streams=st.lists(streams_st, min_size=2, max_size=3),
    seed=st.integers(0, 2**32),
    sweep_every=st.integers(1, 8),
)
def test_releasing_only_the_arrival_partition_gives_each_partition_the_same_order(
    streams: list[Streams], seed: int, sweep_every: int
) -> None:
    """The worker releases the partition a message came for, and every partition on its tick:
    each partition's sequence is the one of releasing everything every time."""
    rnd = random.Random(seed)
    items = {p: _items(s, p) for p, s in enumerate(streams)}
    delivered = {(t, p): 0 for p in items for t in TOPICS}

    def caught_up(topic: str, partition: int) -> bool:
        return delivered[(topic, partition)] == len(items[partition][topic])

    scoped: PartitionMerge[str] = PartitionMerge(TOPICS)
    everything: PartitionMerge[str] = PartitionMerge(TOPICS)
    got: list[Pending[str]] = []
    want: list[Pending[str]] = []
    arrivals = 0
    while not all(caught_up(t, p) for t, p in delivered):
        t, p = rnd.choice([tp for tp in delivered if not caught_up(*tp)])
        pending = items[p][t][delivered[(t, p)]]
        delivered[(t, p)] += 1
        scoped.add(pending)
        everything.add(pending)
        got += scoped.release(caught_up, p)
        want += everything.release(caught_up)
        # no later: the arrival partition is as far along as with a release of everything
        assert _per_partition(got).get(p) == _per_partition(want).get(p)
        arrivals += 1
        if arrivals % sweep_every == 0:  # the tick
            got += scoped.release(caught_up)
    got += scoped.release(caught_up)
    want += everything.release(caught_up)
    assert scoped.buffered == 0
    assert _per_partition(got) == _per_partition(want)


def test_flow_changes_for_one_partition_touch_only_its_topic_partitions() -> None:
    merge: PartitionMerge[str] = PartitionMerge(TOPICS, max_events=500)

    def liqs_behind(topic: str, _partition: int) -> bool:
        return topic != "liqs"

    for partition in (0, 1):
        for offset in range(3):
            item = f"m{partition}.{offset}"
            merge.add(Pending(10 + offset, "marks", partition, offset, item, size=200))
    assert merge.release(liqs_behind) == []
    assert merge.flow_changes(liqs_behind, set(), 1) == ({("marks", 1)}, set())
    assert merge.flow_changes(liqs_behind, set()) == ({("marks", 0), ("marks", 1)}, set())
    paused = {("liqs", 0), ("liqs", 1)}  # both waited for: each resumed by its own partition
    assert merge.flow_changes(liqs_behind, paused, 0) == ({("marks", 0)}, {("liqs", 0)})
    assert merge.waiting_for(liqs_behind, 1) == [("liqs", 1)]
    assert merge.waiting_for(liqs_behind, 7) == []  # a partition with nothing queued
    # below half the bound everything flows again, whichever partition asks
    merge.forget([1])
    merge.add(Pending(1, "liqs", 0, 0, "l0", size=10))
    assert [p.item for p in merge.release(lambda _t, _p: True, 0)] == ["l0", "m0.0", "m0.1", "m0.2"]
    assert merge.flow_changes(liqs_behind, {("marks", 1), ("oi", 0)}, 0) == (
        set(),
        {("marks", 1), ("oi", 0)},
    )

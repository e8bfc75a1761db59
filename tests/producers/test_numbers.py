"""The fast number path (msgspec's C parser) gives exactly what ``float()`` gave, or falls back.

``number_text`` replaced ``float()`` on the liquidation hot path; these tests pin that every
number text it accepts parses to the same float, and that what it rejects still reaches the old
``float()`` code with the old results and error messages.
"""

from __future__ import annotations

import random

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from liqwatch.schema import Liquidation, Venue
from producers.errors import SchemaError
from producers.parsing import new_context, parse_frame
from producers.venues._common import MAX_PHYSICAL, number_text, positive

digits = st.text("0123456789", min_size=1, max_size=25)
json_numbers = st.builds(
    lambda sign, whole, frac, exp: f"{sign}{whole.lstrip('0') or '0'}{frac}{exp}",
    st.sampled_from(["", "-"]),
    digits,
    st.one_of(st.just(""), digits.map(lambda d: "." + d)),
    st.one_of(st.just(""), st.integers(-330, 310).map(lambda e: f"e{e}")),
)


@settings(max_examples=500, deadline=None, database=None)
@given(text=st.one_of(json_numbers, st.floats(allow_nan=False).map(repr)))
def test_number_text_equals_float_wherever_it_accepts_the_text(text: str) -> None:
    try:
        fast = number_text(text)
    except msgspec.DecodeError:
        return  # the caller falls back to float()
    if fast > 0:  # callers fall back for <= 0: "-0" parses as 0.0, float() gives -0.0
        assert fast == float(text), text


def _venue_like_texts(rng: random.Random, n: int) -> list[str]:
    """Prices and sizes as venues print them: fixed decimals, repr, long mantissas, integers."""
    out = []
    for i in range(n):
        scale = 10.0 ** rng.randint(-8, 12)
        out.append(
            (
                f"{rng.uniform(0, scale):.{rng.randint(0, 17)}f}",
                repr(rng.random() * 10.0 ** rng.randint(-300, 300)),
                f"{rng.randint(1, 9)}.{rng.getrandbits(100)}e{rng.randint(-320, 308)}",
                str(rng.getrandbits(rng.randint(1, 130))),
            )[i % 4]
        )
    return out


def test_number_text_equals_float_on_a_sweep_of_venue_like_texts() -> None:
    compared = 0
    for text in _venue_like_texts(random.Random(7), 40_000):
        try:
            fast = number_text(text)
        except msgspec.DecodeError:
            continue
        if fast > 0:
            assert fast == float(text), text
            compared += 1
    assert compared > 30_000


@pytest.mark.parametrize("text", ["5.", ".5", "+1.5", "1_000", "inf", "nan", "1e999", "٣"])
def test_texts_json_rejects_reach_float(text: str) -> None:
    try:
        expected: float | str = float(text)
    except ValueError:
        expected = "error"
    try:
        got: float | str = positive("sz", text)
    except SchemaError:
        got = "error"
    if expected != "error" and not 0 < float(expected) <= MAX_PHYSICAL:
        expected = "error"  # positive() rejects what is not a finite number > 0
    assert got == expected


def _bybit(v: str, p: str) -> bytes:
    return (
        '{"topic":"allLiquidation.BTCUSDT","type":"snapshot","ts":1760130312500,"data":'
        f'[{{"T":1760130312231,"s":"BTCUSDT","S":"Buy","v":{v},"p":{p}}}]}}'
    ).encode()


def _parse(frame: bytes) -> Liquidation | str:
    result = parse_frame(Venue.BYBIT, "allLiquidation.BTCUSDT", frame, 1, new_context())
    if result.dead_letter is not None:
        return result.dead_letter.reason
    (event,) = result.events
    assert isinstance(event, Liquidation)
    return event


def test_bybit_numbers_sent_as_json_numbers_or_odd_text_still_parse() -> None:
    as_numbers = _parse(_bybit("1.25", "112290.4"))
    odd_text = _parse(_bybit('"1.25"', '"112290.4 "'))  # float() strips the space
    for event in (as_numbers, odd_text):
        assert isinstance(event, Liquidation)
        assert (event.price, event.qty) == (112290.4, 1.25)
    assert isinstance(odd_text, Liquidation)
    assert odd_text.event_id == "bybit:BTCUSDT:1760130312231:Buy:1.25@112290.4 "
    dotted = _parse(_bybit('"5."', '"100"'))
    assert isinstance(dotted, Liquidation) and dotted.qty == 5.0


@pytest.mark.parametrize(
    ("v", "p", "reason"),
    [
        ('"-0"', '"100"', "schema: v and p must be finite numbers > 0, got v='-0' p='100'"),
        ('"0"', '"100"', "schema: v and p must be finite numbers > 0, got v='0' p='100'"),
        ('"1"', '"inf"', "schema: v and p must be finite numbers > 0, got v='1' p='inf'"),
        ('"1"', '"1e999"', "schema: v and p must be finite numbers > 0, got v='1' p='1e999'"),
        ('"abc"', '"100"', "schema: not a number: v='abc' p='100'"),
        ('"1"', '"2e18"', "schema: v and p must be finite numbers > 0, got v='1' p='2e18'"),
    ],
)
def test_bybit_bad_numbers_keep_their_dead_letter_reasons(v: str, p: str, reason: str) -> None:
    assert _parse(_bybit(v, p)) == reason

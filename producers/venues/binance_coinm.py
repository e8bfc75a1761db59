"""Binance COIN-M futures: the USDⓈ-M frame shapes, sizes in USD contracts.

``q`` counts contracts of ``contractSize`` USD (BTCUSD 100, others 10): base = q × size ÷ price,
notional = q × size. Open interest from REST ``/dapi/v1/openInterest`` is in contracts too.
Symbols are ``BTCUSD_PERP`` (perpetual) or ``BTCUSD_251226`` (quarterly, ``BTC-USD-251226``).
"""

from __future__ import annotations

from liqwatch.schema import Completeness, Venue
from producers.base import VenueAdapter
from producers.live.protocol import Heartbeat, VenueProtocol
from producers.venues.binance import make_channel_inferrer, make_endpoints, make_parser

OPEN_INTEREST_PATH = "/dapi/v1/openInterest"

parse = make_parser(Venue.BINANCE_COINM, OPEN_INTEREST_PATH)
infer_channel = make_channel_inferrer(OPEN_INTEREST_PATH)

ADAPTER = VenueAdapter(venue=Venue.BINANCE_COINM, completeness=Completeness.SAMPLED, parse=parse)


PROTOCOL = VenueProtocol(
    venue=Venue.BINANCE_COINM,
    ws_url="wss://dstream.binance.com",
    heartbeat=Heartbeat.SERVER_PING,
    heartbeat_interval_s=20.0,
    stale_after_s=30.0,
    lifetime_s=24 * 3600.0,
    endpoints=make_endpoints(all_market_marks=False),  # dstream has no !markPrice@arr
    channel_of=infer_channel,
    rest_url="https://dapi.binance.com",
    open_interest_path=OPEN_INTEREST_PATH,
)

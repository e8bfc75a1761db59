"""The venue adapters, listed explicitly (no discovery magic): one entry per ``Venue``."""

from __future__ import annotations

from collections.abc import Callable

from liqwatch.schema import Venue
from producers.base import VenueAdapter
from producers.live.protocol import VenueProtocol
from producers.venues import binance, binance_coinm, bitmex, bybit, deribit, okx

VENUES: dict[Venue, VenueAdapter] = {
    Venue.BINANCE: binance.ADAPTER,
    Venue.BINANCE_COINM: binance_coinm.ADAPTER,
    Venue.BYBIT: bybit.ADAPTER,
    Venue.OKX: okx.ADAPTER,
    Venue.DERIBIT: deribit.ADAPTER,
    Venue.BITMEX: bitmex.ADAPTER,
}

# the channel a bare frame belongs to, read from the frame (None when it does not say)
CHANNEL_OF: dict[Venue, Callable[[bytes], str | None]] = {
    Venue.BINANCE: binance.infer_channel,
    Venue.BINANCE_COINM: binance_coinm.infer_channel,
    Venue.BYBIT: bybit.infer_channel,
    Venue.OKX: okx.infer_channel,
    Venue.DERIBIT: deribit.infer_channel,
    Venue.BITMEX: bitmex.infer_channel,
}

PROTOCOLS: dict[Venue, VenueProtocol] = {
    Venue.BINANCE: binance.PROTOCOL,
    Venue.BINANCE_COINM: binance_coinm.PROTOCOL,
    Venue.BYBIT: bybit.PROTOCOL,
    Venue.OKX: okx.PROTOCOL,
    Venue.DERIBIT: deribit.PROTOCOL,
    Venue.BITMEX: bitmex.PROTOCOL,
}

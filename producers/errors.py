"""Reasons a frame is rejected, each with a short class used for metrics and dead-letter reasons.

All are ``ParseError`` subclasses, so a venue parser keeps the contract of ``producers.base``;
the dead-letter reason reads ``"<reason_class>: <detail>"``.
"""

from __future__ import annotations

from producers.base import ParseError


class ClassifiedParseError(ParseError):
    reason_class = "parse_error"

    @property
    def reason(self) -> str:
        return f"{self.reason_class}: {self}"


class BadJsonError(ClassifiedParseError):
    reason_class = "bad_json"


class SchemaError(ClassifiedParseError):
    """Valid JSON of the wrong shape: missing field, wrong type, NaN, negative size."""

    reason_class = "schema"


class InvalidValueError(ClassifiedParseError):
    """Right shape, impossible content: unknown side code, contradictory fields."""

    reason_class = "invalid_value"


class UnknownChannelError(ClassifiedParseError):
    reason_class = "unknown_channel"


class UnknownInstrumentError(ClassifiedParseError):
    reason_class = "unknown_instrument"


class VenueReplyError(ClassifiedParseError):
    """The venue answered with an error (bad subscription, rate limit, invalid symbol)."""

    reason_class = "venue_error"


class StateError(ClassifiedParseError):
    """A delta that needs state we do not have (a ticker delta before its snapshot)."""

    reason_class = "state"


def reason_of(error: ParseError) -> str:
    if isinstance(error, ClassifiedParseError):
        return error.reason
    return f"parse_error: {error}"


def reason_class(reason: str) -> str:
    return reason.split(":", 1)[0]

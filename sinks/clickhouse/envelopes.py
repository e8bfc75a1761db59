"""Market envelopes parsed by ClickHouse itself: the JSON bytes from Kafka go straight into
``INSERT ... SELECT ... FROM input(...) ARRAY JOIN events FORMAT JSONEachRow``.

Decoding 200-event envelopes into structs and building columns in Python costs the sink
about 2 us of CPU per row, four times a raw insert; the server's native JSON parser does the
same work for a fraction of that. The statement is built from the event struct, so the
server is as strict as ``codec.envelope_decoder``: every field present (nulls only where the
struct allows them), strings as strings, enum values from their enum, the event's ``type``
tag, integers within Int64 (as the Python path's insert requires). It is laxer only on
numbers written as JSON strings ("1.5"), which it reads as numbers. Being one statement per
batch, a refusal covers the whole batch: its messages are then decoded in Python, which
stores them or dead-letters them with msgspec's reason (see ``sinks.writer``).
"""

from __future__ import annotations

from typing import Any

import msgspec
from msgspec import inspect

from liqwatch.schema import EventKind, Liquidation, MarkPrice, OpenInterest

# Event kind -> (table, struct) for envelopes the server parses.
ENVELOPE_TABLES: dict[EventKind, tuple[str, type[msgspec.Struct]]] = {
    EventKind.LIQUIDATION: ("liquidations", Liquidation),
    EventKind.OPEN_INTEREST: ("open_interest", OpenInterest),
    EventKind.MARK_PRICE: ("mark_price", MarkPrice),
}

_INT64 = (-(2**63), 2**63 - 1)

# Input settings that make the server refuse what msgspec refuses instead of guessing.
STRICT_JSON_SETTINGS: dict[str, Any] = {
    "async_insert": 0,
    "input_format_json_defaults_for_missing_elements_in_named_tuple": 0,
    "input_format_null_as_default": 0,
    "input_format_json_read_numbers_as_strings": 0,
    "input_format_json_read_bools_as_strings": 0,
    "input_format_json_read_bools_as_numbers": 0,
    "input_format_json_read_objects_as_strings": 0,
    "input_format_json_read_arrays_as_strings": 0,
    "input_format_skip_unknown_fields": 1,
    "input_format_allow_errors_num": 0,
    "input_format_allow_errors_ratio": 0,
    # the same float as msgspec's parser, bit for bit (older servers default to a faster,
    # sometimes 1-ULP-off parser)
    "precise_float_parsing": 1,
    # Batches already insert concurrently (max_inflight_batches); splitting each body across
    # parser threads as well cost more server CPU per row than it saved (2 shared cores).
    "input_format_parallel_parsing": 0,
}


class UnsupportedFieldError(TypeError):
    """An event field whose msgspec type has no strict server-side equivalent here."""


def _quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _optional(kind: Any) -> tuple[Any, bool]:
    """(the type, whether null is allowed) for ``T | None``."""
    if isinstance(kind, inspect.UnionType):
        others = [t for t in kind.types if not isinstance(t, inspect.NoneType)]
        if len(others) == 1 and len(others) < len(kind.types):
            return others[0], True
    return kind, False


def _input_type(name: str, kind: Any) -> tuple[str, str | None]:
    """The input() column type of a field and the condition that makes a value invalid."""
    ref = f"e.{name}"
    if isinstance(kind, inspect.StrType) and kind == inspect.StrType():
        # msgspec refuses invalid UTF-8; the server would store the bytes as they are
        return "String", f"NOT isValidUTF8({ref})"
    if isinstance(kind, inspect.FloatType) and kind == inspect.FloatType():
        # JSON has no inf/nan; the server reads 1e999 as inf, and "nan" strings
        return "Float64", f"NOT isFinite({ref})"
    if isinstance(kind, inspect.IntType) and kind == inspect.IntType():
        # Read wider than Int64: the server would wrap an overflowing Int64 silently.
        return "Int128", f"NOT ({ref} BETWEEN {_INT64[0]} AND {_INT64[1]})"
    if isinstance(kind, inspect.EnumType):
        values = ", ".join(_quote(str(member.value)) for member in kind.cls)
        return "String", f"{ref} NOT IN ({values})"
    raise UnsupportedFieldError(f"field {name}: {kind} cannot be checked by the server")


def _select(name: str, column_type: str, nullable: bool) -> str:
    ref = f"e.{name}" if nullable else f"assumeNotNull(e.{name})"
    if "DateTime64" in column_type:
        return f"fromUnixTimestamp64Milli(toInt64({ref}), 'UTC')"
    return ref


def envelope_insert_sql(
    database: str, table: str, event_type: type[msgspec.Struct], column_types: dict[str, str]
) -> str:
    """INSERT of every event of the JSON envelopes in the body (one per line) into ``table``."""
    tag, tag_field = event_type.__struct_config__.tag, event_type.__struct_config__.tag_field
    if not isinstance(tag, str) or tag_field is None:
        raise UnsupportedFieldError(f"{event_type.__name__} has no string tag")
    # Every element is read as Nullable: inside a tuple the server turns a null into the
    # type's default whatever input_format_null_as_default says, so nulls are checked here.
    elements = [f"{tag_field} Nullable(String)"]
    invalid = [f"e.{tag_field} IS NULL OR e.{tag_field} != {_quote(tag)}"]
    selects = []
    names = []
    for field in inspect.type_info(event_type).fields:  # type: ignore[attr-defined]
        kind, nullable = _optional(field.type)
        input_type, check = _input_type(field.name, kind)
        elements.append(f"{field.name} Nullable({input_type})")
        if not nullable:
            invalid.append(f"e.{field.name} IS NULL")
        if check is not None:
            invalid.append(f"coalesce({check}, 0)" if nullable else check)
        selects.append(_select(field.name, column_types[field.name], nullable))
        names.append(field.name)
    structure = f"events Array(Tuple({', '.join(elements)}))"
    reason = _quote(f"an event does not match {event_type.__name__}")
    return (
        f"INSERT INTO {database}.{table} ({', '.join(names)}) "  # noqa: S608 (checked names)
        f"SELECT {', '.join(selects)} FROM input({_quote(structure)}) ARRAY JOIN events AS e "
        f"WHERE NOT throwIf(ifNull({' OR '.join(invalid)}, 1), {reason}) FORMAT JSONEachRow"
    )

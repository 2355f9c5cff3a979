"""Hypothesis strategies for every message type, and for the ways a message can be wrong.

`st.builds` ignores pydantic's constraints (patterns, lengths, bounds), so
valid payloads are drawn from each model's JSON schema instead, then checked
by the model itself. The mutations turn a valid payload into a wrong one:
a wrong type, a missing or extra field, a huge string, a float for cents,
a negative or huge integer, a bad enum, or an envelope whose type is not its
payload's.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from hypothesis import strategies as st
from pydantic import ValidationError

from haggle.contracts import MESSAGE_TYPES, Message

Json = dict[str, Any]
SAFE_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)
ANY_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | SAFE_TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(SAFE_TEXT, inner, max_size=4),
    max_leaves=12,
)


def _string(schema: Json) -> st.SearchStrategy[str]:
    if schema.get("format") == "date-time":
        return st.datetimes(timezones=st.just(UTC)).map(lambda d: d.isoformat())
    if schema.get("format") == "uuid":
        return st.uuids().map(str)
    low, high = schema.get("minLength", 0), schema.get("maxLength", 60)
    if "pattern" in schema:
        return st.from_regex(schema["pattern"], fullmatch=True).filter(lambda s: low <= len(s) <= high)
    return st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=low, max_size=high)


def _integer(schema: Json) -> st.SearchStrategy[int]:
    low = schema.get("minimum", schema.get("exclusiveMinimum", -(2**40) - 1) + 1)
    high = schema.get("maximum", schema.get("exclusiveMaximum", 2**40 + 1) - 1)
    return st.integers(low, min(high, max(low, 0) + 10**9))


def _number(schema: Json) -> st.SearchStrategy[float]:
    low = schema.get("minimum", schema.get("exclusiveMinimum"))
    high = schema.get("maximum", schema.get("exclusiveMaximum"))
    return st.floats(
        low, high, allow_nan=False, allow_infinity=False, exclude_min="exclusiveMinimum" in schema
    )


def _object(schema: Json, defs: Json) -> st.SearchStrategy[Json]:
    props = schema.get("properties", {})
    required = set(schema.get("required", ()))
    fields = {k: from_schema(v, defs) for k, v in props.items() if k in required}
    optional = {k: from_schema(v, defs) for k, v in props.items() if k not in required}
    return st.fixed_dictionaries(fields, optional=optional)


def from_schema(schema: Json, defs: Json) -> st.SearchStrategy[Any]:
    """A value the JSON schema allows (only the keywords pydantic emits for our contracts)."""
    if "$ref" in schema:
        return from_schema(defs[schema["$ref"].rsplit("/", 1)[1]], defs)
    if "const" in schema:
        return st.just(schema["const"])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return st.one_of([from_schema(option, defs) for option in schema[key]])
    kind = schema.get("type")
    if kind == "array":
        items = from_schema(schema.get("items", {}), defs)
        return st.lists(items, min_size=schema.get("minItems", 0), max_size=min(schema.get("maxItems", 3), 3))
    simple: dict[str | None, Any] = {
        "string": lambda: _string(schema),
        "integer": lambda: _integer(schema),
        "number": lambda: _number(schema),
        "boolean": st.booleans,
        "null": st.none,
        "object": lambda: _object(schema, defs),
    }
    return simple.get(kind, lambda: ANY_JSON)()


def _validates(model: type[Message], data: Json) -> bool:
    try:
        model.model_validate(data)
    except ValidationError:
        return False
    return True


def payloads(model: type[Message]) -> st.SearchStrategy[Json]:
    """Valid payloads of `model`, as JSON (cross-field rules are left to the model's own check)."""
    schema = model.model_json_schema(mode="validation")
    return from_schema(schema, schema.get("$defs", {})).filter(lambda d: _validates(model, d))


def messages() -> st.SearchStrategy[Message]:
    """A valid message of any registered type."""
    return st.sampled_from(sorted(MESSAGE_TYPES)).flatmap(
        lambda name: payloads(MESSAGE_TYPES[name]).map(MESSAGE_TYPES[name].model_validate)
    )


# --- mutations: each turns a valid payload into one its model must refuse ---------------------------


def _replace(field_: str, value: Any) -> Any:
    return lambda data: {**data, field_: value}


def mutations(model: type[Message], data: Json) -> st.SearchStrategy[Json]:
    """Payloads derived from `data` that break one rule of `model` (most are refused; see the tests)."""
    names = [k for k in data if k != "type"]
    schema = model.model_json_schema(mode="validation").get("properties", {})
    choices: list[st.SearchStrategy[Json]] = [
        SAFE_TEXT.filter(lambda k: k not in schema).map(lambda k: {**data, k: 1}),  # extra field
    ]
    if names:
        pick = st.sampled_from(names)
        choices += [
            pick.map(lambda k: {x: v for x, v in data.items() if x != k}),  # missing field
            st.tuples(pick, ANY_JSON).map(lambda kv: {**data, kv[0]: kv[1]}),  # wrong type
            pick.map(lambda k: {**data, k: "x" * 300_000}),  # huge string
            pick.map(lambda k: {**data, k: "\x00bad"}),  # NUL in text
        ]
    cents = [k for k in names if k.endswith("_cents")]
    if cents:
        pick_cents = st.sampled_from(cents)
        choices += [
            st.tuples(pick_cents, st.floats(-1e12, 1e12).filter(lambda f: not f.is_integer())).map(
                lambda kv: {**data, kv[0]: kv[1]}
            ),  # a float for cents
            st.tuples(pick_cents, st.sampled_from([-1, -(2**63), 2**64, 10**30])).map(
                lambda kv: {**data, kv[0]: kv[1]}
            ),  # negative or huge
        ]
    enums = [k for k, v in schema.items() if "$ref" in v or "enum" in v]
    if enums:
        choices.append(st.sampled_from(enums).map(lambda k: {**data, k: "no-such-value"}))  # bad enum
    return st.one_of(choices)


def envelope_bytes(
    model: type[Message], data: Json, market_id: str, payload_type: str | None = None, **fields: Any
) -> bytes:
    """A sound envelope carrying `data` as the payload of `model`'s type (the payload is not checked)."""
    name = model.model_fields["type"].default
    base = {
        "event_id": str(uuid.uuid4()),
        "occurred_at": datetime.now(UTC).isoformat(),
        "market_id": market_id,
        "producer": "fuzz",
    }
    body = {**base, **fields, "type": name, "payload": {**data, "type": payload_type or name}}
    return json.dumps(body).encode()  # the standard library writes what orjson refuses (ints past 64 bits)


# --- raw inputs: bytes that are not an envelope at all -------------------------------------------


def _dumps(value: Any) -> bytes:
    return json.dumps(value).encode()


def garbage() -> st.SearchStrategy[bytes]:
    """Bytes that no consumer can read as an envelope."""
    envelope_like = {"event_id": str(uuid.uuid4()), "type": "X", "market_id": "m", "producer": "p"}
    return st.one_of(
        st.binary(max_size=200),
        ANY_JSON.filter(lambda v: not isinstance(v, dict)).map(_dumps),
        st.dictionaries(SAFE_TEXT, ANY_JSON, max_size=5).map(_dumps),
        st.just(_dumps({**envelope_like, "payload": {"type": "Y"}})),  # type != payload type
        st.just(b"{" * 50_000),
        st.just(b"x" * (300 * 1024)),
    )

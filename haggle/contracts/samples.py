"""Sample messages: one committed envelope per message type and schema version.

`haggle contracts export` writes a sample for every type that has none yet at its current
`schema_version` and never rewrites one: the committed samples are what earlier code
produced, and the compatibility test decodes every one of them with today's code. A change
that removes a field, makes one required or narrows it therefore fails that test.

A sample is built from the model's JSON schema (every field, optional ones too, so the
test covers them), deterministically: same model, same sample.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from haggle.contracts.envelope import Envelope, Message
from haggle.contracts.signing import AgentKey, signed

Json = dict[str, Any]
SAMPLE_TIME = "2026-01-01T12:00:00Z"
SAMPLE_MARKET = "sample-market"
# A fixed key, so a sample's signature and public key are real and stable (it guards nothing).
SAMPLE_KEY = AgentKey.from_bytes(bytes(range(32)))


class SampleError(Exception):
    """No valid sample could be built for a model: give it fields by hand in OVERRIDES."""


OVERRIDES: dict[str, Json] = {}
"""Fields a type's sample needs that the schema alone cannot tell (cross-field rules), by type name."""


def _resolve(schema: Json, defs: Json) -> Json:
    while "$ref" in schema:
        schema = defs[schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def _string(name: str, schema: Json) -> str:
    if "enum" in schema:
        return str(schema["enum"][0])
    if schema.get("format") == "date-time":
        return SAMPLE_TIME
    if schema.get("format") == "uuid":
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"haggle:{name}"))
    if name == "public_key":
        return SAMPLE_KEY.public
    if prefixed := re.match(r"^\^([a-z]+_)\[", schema.get("pattern", "")):
        return f"{prefixed.group(1)}sample1"  # a provider's id, e.g. cus_…, pm_…, acct_…
    low, high = schema.get("minLength", 0), schema.get("maxLength", 64)
    text = f"sample-{name}".replace("_", "-")
    if len(text) < low:
        text = text + "x" * (low - len(text))
    return text[:high]


def _integer(schema: Json) -> int:
    low = schema.get("minimum", schema.get("exclusiveMinimum", 0) + 1 if "exclusiveMinimum" in schema else 1)
    high = schema.get("maximum", 10**9)
    return int(min(max(low, 100), high))


def value_for(name: str, schema: Json, defs: Json) -> Any:
    """A valid-looking value for one schema node."""
    schema = _resolve(schema, defs)
    if "const" in schema:
        return schema["const"]
    if "default" in schema and schema["default"] is not None and not isinstance(schema["default"], list):
        return schema["default"]
    for key in ("anyOf", "oneOf"):
        if key in schema:
            options = [o for o in schema[key] if _resolve(o, defs).get("type") != "null"]
            return value_for(name, options[0], defs)
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        props = schema.get("properties", {})
        return {key: value_for(key, sub, defs) for key, sub in props.items()}
    if kind == "array":
        items = schema.get("prefixItems") or [schema.get("items", {})]
        count = max(1, schema.get("minItems", 1))
        return [value_for(name, items[min(i, len(items) - 1)], defs) for i in range(count)]
    if kind == "string":
        return _string(name, schema)
    if kind == "integer":
        return _integer(schema)
    if kind == "number":
        return float(schema.get("minimum", 0.5)) or 0.5
    if kind == "boolean":
        return False
    return None


def sample_payload(model: type[Message]) -> Json:
    schema = model.model_json_schema()
    payload = value_for(model.__name__, schema, schema.get("$defs", {}))
    payload.update(OVERRIDES.get(model.model_fields["type"].default, {}))
    try:
        return model.model_validate(payload).model_dump(mode="json")
    except ValidationError as exc:
        raise SampleError(f"{model.__name__}: {exc}") from exc


def sample_envelope(model: type[Message]) -> Envelope:
    """A signed envelope: every field of the envelope is exercised too."""
    payload = model.model_validate(sample_payload(model))
    name = model.model_fields["type"].default
    env = signed(
        payload, key=SAMPLE_KEY, agent_id="sample-agent", seq=1, market_id=SAMPLE_MARKET, producer="sample"
    )
    return env.model_copy(
        update={
            "event_id": uuid.uuid5(uuid.NAMESPACE_URL, f"haggle:sample:{name}"),
            "occurred_at": datetime.fromisoformat(SAMPLE_TIME),
            "correlation_id": "sample-correlation",
            "causation_id": "sample-cause",
        }
    )


def sample_path(directory: Path, model: type[Message]) -> Path:
    name = model.model_fields["type"].default
    return directory / f"v{model.SCHEMA_VERSION}" / f"{name}.json"


def render(model: type[Message]) -> str:
    return json.dumps(sample_envelope(model).model_dump(mode="json"), indent=2, sort_keys=True) + "\n"

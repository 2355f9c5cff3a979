"""contracts/ as an artifact: no drift from the code, a valid AsyncAPI 3.0 document, old samples decode."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from haggle.contracts import MESSAGE_TYPES, decode, encode, payload_of
from haggle.contracts.asyncapi import document
from haggle.contracts.codec import InvalidPayload, UnsupportedSchemaVersion
from haggle.contracts.schema import drift
from haggle.contracts.topics import TOPICS

CONTRACTS = Path(__file__).resolve().parents[2] / "contracts"
ASYNCAPI_SCHEMA = json.loads((CONTRACTS / "vendor" / "asyncapi-3.0.0.schema.json").read_text())
SAMPLES = sorted((CONTRACTS / "samples").glob("v*/*.json"))


def test_the_committed_contracts_match_the_code() -> None:
    problems = drift(CONTRACTS)
    assert problems == [], "run `make contracts` and commit contracts/: " + "; ".join(problems)


def test_the_document_validates_against_the_asyncapi_3_schema() -> None:
    committed = yaml.safe_load((CONTRACTS / "asyncapi.yaml").read_text())
    errors = list(jsonschema.Draft7Validator(ASYNCAPI_SCHEMA).iter_errors(committed))
    assert errors == []
    assert committed["asyncapi"] == "3.0.0"


def test_the_asyncapi_schema_does_refuse_a_broken_document() -> None:
    broken = document()
    broken["operations"]["send_agent_inbox"]["action"] = "shout"
    broken["channels"]["agent_inbox"]["address"] = 12
    paths = {tuple(e.absolute_path) for e in jsonschema.Draft7Validator(ASYNCAPI_SCHEMA).iter_errors(broken)}
    assert ("operations", "send_agent_inbox") in paths
    assert ("channels", "agent_inbox") in paths


def test_every_topic_and_message_is_in_the_document() -> None:
    doc = document()
    addresses = {channel["address"] for channel in doc["channels"].values()}
    assert addresses == {t.name for t in TOPICS} | {t.dlq for t in TOPICS}
    for topic in TOPICS:
        channel = doc["channels"][topic.name.replace(".", "_")]
        names = {m.model_fields["type"].default for m in topic.messages}
        assert set(channel["messages"]) == names
        assert channel["bindings"]["kafka"]["partitions"] == topic.partitions
    assert set(doc["components"]["messages"]) == {*MESSAGE_TYPES, "DeadLetter"}


def test_every_message_type_has_a_committed_sample_at_its_version() -> None:
    found = {(p.parent.name, p.stem) for p in SAMPLES}
    for name, model in MESSAGE_TYPES.items():
        assert (f"v{model.SCHEMA_VERSION}", name) in found


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_a_sample_from_earlier_code_still_decodes(path: Path) -> None:
    raw = path.read_bytes()
    envelope = decode(raw)
    payload = payload_of(envelope)
    assert payload.type == path.stem
    assert decode(encode(envelope)).payload == envelope.payload
    schema = json.loads((CONTRACTS / "schemas" / f"{path.stem}.schema.json").read_text())
    jsonschema.Draft202012Validator(schema).validate(envelope.payload)


def test_an_unknown_major_version_is_a_typed_refusal() -> None:
    sample = json.loads((CONTRACTS / "samples" / "v1" / "OfferMade.json").read_text())
    sample["schema_version"] = 2
    envelope = decode(json.dumps(sample).encode())
    with pytest.raises(UnsupportedSchemaVersion) as refused:
        payload_of(envelope)
    assert isinstance(refused.value, InvalidPayload)
    assert refused.value.supported == 1
    assert "schema_version 2" in str(refused.value)

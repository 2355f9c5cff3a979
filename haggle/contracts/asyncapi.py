"""The AsyncAPI 3.0 document of every topic and message, built from the topic registry and the models.

Our services consume through their own runtime (`haggle.runtime.consumer`), not FastStream's
subscribers, so `faststream docs gen` would see none of the topics: the document is generated
here from `TOPICS` and the pydantic models instead. A message on the wire is the `Envelope`
with the model as its `payload`; each AsyncAPI message says so (the envelope, narrowed to one
`type` and its payload schema). `haggle contracts export` writes it; a test fails on drift.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from haggle.contracts.envelope import Envelope, Message
from haggle.contracts.topics import TOPICS, Topic

ASYNCAPI_VERSION = "3.0.0"
REF = "#/components/schemas/{model}"
KAFKA_BINDING = "0.5.0"

Json = dict[str, Any]

TOPIC_SUMMARIES = {
    "market.events": "A market's rules and lifecycle (open, closing, closed). Operator-signed.",
    "mandate.commands": "Assign or amend a principal's mandate. Operator-signed; carries private limits.",
    "agent.events": "An agent registered (principal, role, Ed25519 public key, self-signed) or retired.",
    "listing.commands": "Create, reprice or withdraw a listing.",
    "listing.events": "Listings published, updated, withdrawn, reserved, sold, relisted.",
    "negotiation.commands": "Open, counter, accept, reject, withdraw, chat: agent-signed, seq per agent.",
    "negotiation.events": "The referee's record: offers made, refusals with a reason, endings, deals agreed.",
    "agent.inbox": "What each agent must react to, one copy per recipient (envelope agent_id = recipient).",
    "settlement.commands": "Ship, hand over, accept goods, dispute (agent-signed); fund, resolve (operator).",
    "settlement.events": "Escrow, shipping, inspection, disputes, releases and refunds.",
    "approval.events": "Purchases above the auto-approve limit: requested, granted, denied, expired.",
    "agent.decisions": "How each signed move came about: brain, guard refusals, mandate digest.",
}

DEAD_LETTER_SCHEMA: Json = {
    "type": "object",
    "description": "A record a consumer could not decode or handle, with the reason.",
    "required": [
        "topic",
        "partition",
        "offset",
        "service",
        "reason",
        "error",
        "value_b64",
        "dead_lettered_at",
    ],
    "properties": {
        "topic": {"type": "string"},
        "partition": {"type": "integer"},
        "offset": {"type": "integer"},
        "key": {"type": ["string", "null"]},
        "service": {"type": "string"},
        "reason": {"type": "string"},
        "error": {"type": "string", "maxLength": 2000},
        "value_b64": {"type": "string", "description": "the first 64 KiB of the original bytes, base64"},
        "dead_lettered_at": {"type": "string", "format": "date-time"},
    },
}


def type_name(model: type[Message]) -> str:
    name: str = model.model_fields["type"].default
    return name


def _models() -> list[type[BaseModel]]:
    seen: dict[str, type[BaseModel]] = {"Envelope": Envelope}
    for topic in TOPICS:
        for model in topic.messages:
            seen.setdefault(type_name(model), model)
    return list(seen.values())


def _schemas() -> Json:
    """Every model's schema and what they refer to, under components/schemas."""
    _, top = models_json_schema([(m, "validation") for m in _models()], ref_template=REF)
    defs: Json = top.get("$defs", {})
    return {name: _asyncapi_schema(schema) for name, schema in sorted(defs.items())}


def _asyncapi_schema(value: Any) -> Any:
    """AsyncAPI's schema object names a discriminator by its property (pydantic writes OpenAPI's object)."""
    if isinstance(value, dict):
        out = {k: _asyncapi_schema(v) for k, v in value.items()}
        if isinstance(out.get("discriminator"), dict):
            out["discriminator"] = out["discriminator"]["propertyName"]
        return out
    if isinstance(value, list):
        return [_asyncapi_schema(v) for v in value]
    return value


def _message(model: type[Message], topic: Topic) -> Json:
    name = type_name(model)
    envelope_of_type = {
        "allOf": [
            {"$ref": REF.format(model="Envelope")},
            {
                "type": "object",
                "properties": {
                    "type": {"const": name},
                    "schema_version": {"const": model.SCHEMA_VERSION},
                    "payload": {"$ref": REF.format(model=name)},
                },
            },
        ]
    }
    doc = (model.__doc__ or "").strip()
    return {
        "name": name,
        "title": name,
        "summary": doc.splitlines()[0] if doc else f"{name} on {topic.name}",
        "contentType": "application/json",
        "correlationId": {"$ref": "#/components/correlationIds/correlation"},
        "payload": envelope_of_type,
        "bindings": {
            "kafka": {"key": {"type": "string", "description": topic.key}, "bindingVersion": KAFKA_BINDING}
        },
        "x-schema-version": model.SCHEMA_VERSION,
    }


def _channel_id(topic_name: str) -> str:
    return topic_name.replace(".", "_")


def _channels(messages_of: dict[str, list[str]]) -> Json:
    channels: Json = {}
    for topic in TOPICS:
        refs = {name: {"$ref": f"#/components/messages/{name}"} for name in messages_of[topic.name]}
        channels[_channel_id(topic.name)] = {
            "address": topic.name,
            "title": topic.name,
            "description": f"{TOPIC_SUMMARIES.get(topic.name, topic.name)} Key: {topic.key}.",
            "messages": refs,
            "bindings": {
                "kafka": {
                    "topic": topic.name,
                    "partitions": topic.partitions,
                    "topicConfiguration": {"retention.ms": int(dict(topic.config).get("retention.ms", -1))},
                    "bindingVersion": KAFKA_BINDING,
                }
            },
        }
        channels[_channel_id(topic.dlq)] = {
            "address": topic.dlq,
            "title": topic.dlq,
            "description": f"What consumers of {topic.name} could not decode or handle, with the reason.",
            "messages": {"DeadLetter": {"$ref": "#/components/messages/DeadLetter"}},
        }
    return channels


def _operations(messages_of: dict[str, list[str]]) -> Json:
    """The platform's side: it receives commands and sends events; consumers do the opposite."""
    operations: Json = {}
    for topic in TOPICS:
        action = "receive" if topic.name.endswith(".commands") else "send"
        channel = _channel_id(topic.name)
        operations[f"{action}_{channel}"] = {
            "action": action,
            "channel": {"$ref": f"#/channels/{channel}"},
            "summary": f"haggle {'takes' if action == 'receive' else 'publishes'} {topic.name}",
            "messages": [
                {"$ref": f"#/channels/{channel}/messages/{name}"} for name in messages_of[topic.name]
            ],
        }
    return operations


def document() -> Json:
    """The whole AsyncAPI 3.0 document, deterministic (same code, same document)."""
    messages: Json = {}
    messages_of: dict[str, list[str]] = {}
    for topic in TOPICS:
        messages_of[topic.name] = []
        for model in topic.messages:
            name = type_name(model)
            messages_of[topic.name].append(name)
            messages.setdefault(name, _message(model, topic))
    messages["DeadLetter"] = {
        "name": "DeadLetter",
        "title": "DeadLetter",
        "contentType": "application/json",
        "payload": {"$ref": REF.format(model="DeadLetter")},
    }
    schemas = _schemas()
    schemas["DeadLetter"] = DEAD_LETTER_SCHEMA
    major = max(model.SCHEMA_VERSION for topic in TOPICS for model in topic.messages)
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "id": "urn:haggle:contracts",
        "info": {
            "title": "haggle event contracts",
            "version": f"{major}.0.0",
            "description": (
                "Every topic and message of haggle. Each message travels in one JSON envelope"
                " (see components/schemas/Envelope); money is integer cents. Compatibility rules:"
                " contracts/COMPATIBILITY.md."
            ),
            "license": {"name": "Apache-2.0", "url": "https://www.apache.org/licenses/LICENSE-2.0"},
        },
        "defaultContentType": "application/json",
        "servers": {
            "local": {
                "host": "127.0.0.1:9092",
                "protocol": "kafka",
                "description": "`haggle infra up` (KAFKA_BOOTSTRAP_SERVERS names any other cluster)",
            }
        },
        "channels": _channels(messages_of),
        "operations": _operations(messages_of),
        "components": {
            "schemas": dict(sorted(schemas.items())),
            "messages": dict(sorted(messages.items())),
            "correlationIds": {
                "correlation": {
                    "description": "the negotiation or deal the message belongs to",
                    "location": "$message.payload#/correlation_id",
                }
            },
        },
    }

"""haggle.contracts: the event contracts every service shares.

Every message is a frozen pydantic v2 model inside one `Envelope`. Money is
integer cents. See DESIGN.md "Contracts".
"""

from haggle.contracts.codec import (
    MESSAGE_TYPES,
    InvalidPayload,
    MalformedMessage,
    decode,
    encode,
    payload_of,
)
from haggle.contracts.envelope import Envelope, Message, new_event_id, wrap
from haggle.contracts.goods import (
    CARRIER_LIMITS,
    CONDITION_DEFINITIONS,
    Condition,
    Dimensions,
    Item,
    ShippingMethod,
    ShippingOption,
    shipping_refusal,
)
from haggle.contracts.signing import AgentKey, canonical_json, envelope_signature_valid, signed
from haggle.contracts.topics import TOPICS, Topic, all_topic_partitions

__all__ = [
    "CARRIER_LIMITS",
    "CONDITION_DEFINITIONS",
    "MESSAGE_TYPES",
    "TOPICS",
    "AgentKey",
    "Condition",
    "Dimensions",
    "Envelope",
    "InvalidPayload",
    "Item",
    "MalformedMessage",
    "Message",
    "ShippingMethod",
    "ShippingOption",
    "Topic",
    "all_topic_partitions",
    "canonical_json",
    "decode",
    "encode",
    "envelope_signature_valid",
    "new_event_id",
    "payload_of",
    "shipping_refusal",
    "signed",
    "wrap",
]

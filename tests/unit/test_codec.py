"""haggle.contracts.codec: bytes ⇄ envelopes ⇄ typed payloads, and every way that can fail. No I/O."""

from __future__ import annotations

import orjson
import pytest

from haggle.contracts import Envelope, InvalidPayload, MalformedMessage, decode, encode, payload_of, wrap
from haggle.contracts.codec import MAX_MESSAGE_BYTES
from haggle.contracts.listing import CreateListing, UpdateListingPrice, WithdrawListing

MARKET = "m-codec"


def price_update(price: int = 1_000) -> UpdateListingPrice:
    return UpdateListingPrice(listing_id="L-1", seller_agent_id="s-1", price_cents=price)


def raw_envelope(payload: dict[str, object], **fields: object) -> bytes:
    env = wrap(price_update(), market_id=MARKET, producer="t").model_dump(mode="json")
    return orjson.dumps({**env, **fields, "type": payload.get("type"), "payload": payload})


def test_encode_then_decode_is_the_identity() -> None:
    env = wrap(price_update(), market_id=MARKET, producer="t", correlation_id="c", causation_id="x")
    assert decode(encode(env)) == env


# Malformed: not an envelope at all → the dead-letter topic ----------------------------------------


def test_a_tombstone_is_malformed() -> None:
    with pytest.raises(MalformedMessage, match="tombstone"):
        decode(None)


@pytest.mark.parametrize("raw", [b"", b"not json{", b"\xff\xfe", b'{"a": NaN}', b"{'single': 1}"])
def test_bytes_that_are_not_json_are_malformed(raw: bytes) -> None:
    with pytest.raises(MalformedMessage, match="not JSON"):
        decode(raw)


@pytest.mark.parametrize("raw", [b"[]", b'"text"', b"42", b"{}", b'{"type": "CreateListing"}'])
def test_json_that_is_not_an_envelope_is_malformed(raw: bytes) -> None:
    with pytest.raises(MalformedMessage, match="not an envelope"):
        decode(raw)


def test_an_envelope_whose_type_disagrees_with_its_payload_is_malformed() -> None:
    raw = orjson.loads(raw_envelope(price_update().model_dump(mode="json")))
    raw["type"] = "WithdrawListing"
    with pytest.raises(MalformedMessage, match="payload type"):
        decode(orjson.dumps(raw))


def test_an_envelope_with_extra_fields_is_malformed() -> None:
    with pytest.raises(MalformedMessage, match="injected: Extra inputs"):
        decode(raw_envelope(price_update().model_dump(mode="json"), injected=True))


@pytest.mark.parametrize("field, value", [("event_id", "not-a-uuid"), ("market_id", "a b"), ("seq", -1)])
def test_envelope_fields_are_validated(field: str, value: object) -> None:
    with pytest.raises(MalformedMessage, match=field):
        decode(raw_envelope(price_update().model_dump(mode="json"), **{field: value}))


def test_a_seq_beyond_a_64_bit_counter_is_malformed() -> None:
    with pytest.raises(MalformedMessage, match="seq"):
        decode(raw_envelope(price_update().model_dump(mode="json"), seq=2**63))


def test_oversize_messages_are_refused_before_parsing() -> None:
    padding = "x" * MAX_MESSAGE_BYTES
    raw = raw_envelope({**price_update().model_dump(mode="json"), "pad": padding})
    assert len(raw) > MAX_MESSAGE_BYTES
    with pytest.raises(MalformedMessage, match=f"over the {MAX_MESSAGE_BYTES} limit"):
        decode(raw)


def test_a_message_just_under_the_limit_decodes() -> None:
    body = {**price_update().model_dump(mode="json")}
    base = len(raw_envelope({**body, "pad": ""}))
    raw = raw_envelope({**body, "pad": "x" * (MAX_MESSAGE_BYTES - base)})
    assert len(raw) == MAX_MESSAGE_BYTES
    assert decode(raw).type == "UpdateListingPrice"


def test_the_error_text_is_bounded() -> None:
    with pytest.raises(MalformedMessage) as caught:
        decode(orjson.dumps({f"k{i}": i for i in range(500)}))
    assert len(str(caught.value)) < 1_000


# Invalid payload: a sound envelope whose payload breaks its contract → a typed refusal -----------


def test_an_unknown_message_type_is_an_invalid_payload() -> None:
    env = decode(raw_envelope({"type": "BuyEverything", "listing_id": "L-1"}))
    with pytest.raises(InvalidPayload, match="not accepted here") as caught:
        payload_of(env)
    assert caught.value.envelope == env
    assert caught.value.fields == ()


def test_a_known_type_outside_the_allowed_set_is_an_invalid_payload() -> None:
    env = decode(encode(wrap(price_update(), market_id=MARKET, producer="t")))
    assert payload_of(env, (UpdateListingPrice,)) == price_update()
    with pytest.raises(InvalidPayload, match="'UpdateListingPrice' not accepted here"):
        payload_of(env, (CreateListing, WithdrawListing))


def test_an_event_type_sent_as_a_command_is_refused() -> None:
    body = price_update().model_dump(mode="json") | {"type": "ListingPublished"}
    env = decode(raw_envelope(body))
    with pytest.raises(InvalidPayload, match="'ListingPublished' not accepted here"):
        payload_of(env, (CreateListing, UpdateListingPrice, WithdrawListing))


@pytest.mark.parametrize(
    "change, fields",
    [
        ({"price_cents": 10.5}, ("price_cents",)),
        ({"price_cents": "10"}, ("price_cents",)),
        ({"listing_id": "has space"}, ("listing_id",)),
        ({"seller_agent_id": None, "price_cents": 1.5}, ("seller_agent_id", "price_cents")),
        ({"unexpected": 1}, ("unexpected",)),
    ],
)
def test_invalid_payload_fields_are_named(change: dict[str, object], fields: tuple[str, ...]) -> None:
    env = decode(raw_envelope(price_update().model_dump(mode="json") | change))
    with pytest.raises(InvalidPayload) as caught:
        payload_of(env)
    assert caught.value.fields == fields
    assert all(f in str(caught.value) for f in fields)


def test_a_missing_field_is_named() -> None:
    body = price_update().model_dump(mode="json")
    del body["price_cents"]
    with pytest.raises(InvalidPayload, match="price_cents") as caught:
        payload_of(decode(raw_envelope(body)))
    assert caught.value.fields == ("price_cents",)


def test_the_payload_keeps_its_envelope_for_the_refusal() -> None:
    env = decode(raw_envelope(price_update().model_dump(mode="json") | {"price_cents": 1.5}))
    with pytest.raises(InvalidPayload) as caught:
        payload_of(env)
    assert caught.value.envelope.event_id == env.event_id
    assert isinstance(caught.value.envelope, Envelope)

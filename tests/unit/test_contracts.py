"""haggle.contracts: envelope, signing, money, condition, carrier limits, topic registry. No I/O."""

from __future__ import annotations

import time
import uuid

import pytest
from pydantic import ValidationError

from haggle.contracts import (
    CARRIER_LIMITS,
    CONDITION_DEFINITIONS,
    MESSAGE_TYPES,
    TOPICS,
    AgentKey,
    Condition,
    Dimensions,
    Envelope,
    InvalidPayload,
    Item,
    ShippingMethod,
    ShippingOption,
    canonical_json,
    decode,
    encode,
    envelope_signature_valid,
    new_event_id,
    payload_of,
    shipping_refusal,
    signed,
    wrap,
)
from haggle.contracts.listing import CreateListing, UpdateListingPrice
from haggle.contracts.negotiation import OpenNegotiation

MARKET = "m-1"


def create_command(**overrides: object) -> CreateListing:
    fields: dict[str, object] = {
        "listing_id": "L-1",
        "seller_agent_id": "seller-1",
        "seller_principal_id": "p-1",
        "title": "Cast-iron skillet, 30 cm",
        "description": "Seasoned, no cracks.",
        "category": "kitchen",
        "condition": Condition.GOOD,
        "price_cents": 2_500,
        "item": Item(weight_g=3_400, dimensions=Dimensions(length_mm=520, width_mm=320, height_mm=80)),
        "shipping": (ShippingOption(method=ShippingMethod.PARCEL_STANDARD, cost_cents=1_299),),
    }
    return CreateListing.model_validate({**fields, **overrides})


def item(weight_g: int, length: int, width: int, height: int) -> Item:
    return Item(weight_g=weight_g, dimensions=Dimensions(length_mm=length, width_mm=width, height_mm=height))


# Envelope --------------------------------------------------------------------------------------


def test_envelope_round_trip_keeps_every_field_and_the_typed_payload() -> None:
    cmd = create_command()
    event_id = uuid.uuid4()
    env = wrap(cmd, market_id=MARKET, producer="test", correlation_id="c-1", event_id=event_id)
    back = decode(encode(env))
    assert back == env
    assert back.event_id == event_id
    assert back.type == "CreateListing"
    assert payload_of(back) == cmd


def test_wrap_gives_a_fresh_event_id_unless_one_is_passed() -> None:
    cmd = create_command()
    first = wrap(cmd, market_id=MARKET, producer="test")
    second = wrap(cmd, market_id=MARKET, producer="test")
    assert first.event_id != second.event_id


def test_event_ids_made_later_sort_later_so_an_inbox_index_grows_at_one_end() -> None:
    """Ids a few milliseconds apart come out in time order, as uuids and as PostgreSQL orders
    them (by their bytes); many made in the same millisecond are all different."""
    cmd = create_command()
    ids = []
    for _ in range(8):
        ids.append(wrap(cmd, market_id=MARKET, producer="test").event_id)
        time.sleep(0.002)
    assert sorted(ids) == ids
    assert sorted(ids, key=lambda i: i.bytes) == ids
    made_by_default = Envelope(type=cmd.type, market_id=MARKET, producer="t", payload=cmd.model_dump())
    assert made_by_default.event_id > ids[-1]
    assert len({new_event_id() for _ in range(10_000)}) == 10_000


def test_envelope_refuses_a_type_that_differs_from_its_payload() -> None:
    body = create_command().model_dump(mode="json")
    with pytest.raises(ValidationError, match="payload type"):
        Envelope(type="WithdrawListing", market_id=MARKET, producer="test", payload=body)


def test_envelope_refuses_unknown_fields_and_is_frozen() -> None:
    env = wrap(create_command(), market_id=MARKET, producer="test")
    with pytest.raises(ValidationError, match="extra"):
        Envelope.model_validate({**env.model_dump(), "surprise": 1})
    with pytest.raises(ValidationError, match="frozen"):
        env.market_id = "other"  # type: ignore[misc]


@pytest.mark.parametrize("bad_id", ["", "a b", "x" * 65, "abc\n", "ünï", "a/b"])
def test_ids_are_refused_outside_the_safe_alphabet(bad_id: str) -> None:
    with pytest.raises(ValidationError, match="listing_id"):
        create_command(listing_id=bad_id)


# Money -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("price", [12.5, 1200.0, "1200", True, None])
def test_price_must_be_integer_cents_never_a_float_or_string(price: object) -> None:
    with pytest.raises(ValidationError, match="price_cents"):
        create_command(price_cents=price)


def test_float_cents_in_a_payload_from_the_wire_are_refused_as_invalid_payload() -> None:
    body = create_command().model_dump(mode="json")
    env = Envelope(
        type="CreateListing", market_id=MARKET, producer="t", payload={**body, "price_cents": 99.5}
    )
    with pytest.raises(InvalidPayload, match="price_cents") as caught:
        payload_of(decode(encode(env)))
    assert caught.value.fields == ("price_cents",)


@pytest.mark.parametrize("cost", [5.99, "599"])
def test_shipping_cost_must_be_integer_cents(cost: object) -> None:
    with pytest.raises(ValidationError, match="cost_cents"):
        ShippingOption.model_validate({"method": "parcel_small", "cost_cents": cost})


def test_integer_cents_survive_the_wire_exactly() -> None:
    cmd = create_command(price_cents=999_999_999)
    back = payload_of(decode(encode(wrap(cmd, market_id=MARKET, producer="t"))))
    assert isinstance(back, CreateListing)
    assert back.price_cents == 999_999_999
    assert type(back.price_cents) is int


# Signing ---------------------------------------------------------------------------------------


def test_canonical_json_is_sorted_compact_utf8() -> None:
    value = {"b": [1, {"z": 1, "a": 2}], "a": "é", "c": None}
    assert canonical_json(value) == '{"a":"é","b":[1,{"a":2,"z":1}],"c":null}'.encode()


def test_canonical_json_does_not_depend_on_key_insertion_order() -> None:
    assert canonical_json({"x": 1, "y": 2}) == canonical_json({"y": 2, "x": 1})


def signed_offer(key: AgentKey, seq: int = 1, market: str = MARKET) -> Envelope:
    offer = OpenNegotiation(listing_id="L-1", price_cents=1_000, shipping_method=ShippingMethod.PARCEL_SMALL)
    return signed(offer, key=key, agent_id="buyer-1", seq=seq, market_id=market, producer="agent")


def test_a_signed_command_verifies_with_the_signers_public_key_after_the_wire() -> None:
    key = AgentKey.generate()
    env = decode(encode(signed_offer(key)))
    assert env.agent_id == "buyer-1" and env.seq == 1 and env.signature
    assert envelope_signature_valid(env, key.public)


def test_a_signature_does_not_verify_with_another_key() -> None:
    env = signed_offer(AgentKey.generate())
    assert not envelope_signature_valid(env, AgentKey.generate().public)


@pytest.mark.parametrize(
    "change",
    [
        {"payload": {**signed_offer(AgentKey.from_bytes(b"k" * 32)).payload, "price_cents": 1}},
        {"seq": 2},
        {"market_id": "m-2"},
        {"agent_id": "buyer-2"},
    ],
    ids=["payload", "seq", "market", "agent"],
)
def test_changing_anything_signed_breaks_the_signature(change: dict[str, object]) -> None:
    key = AgentKey.from_bytes(b"k" * 32)
    env = signed_offer(key)
    assert envelope_signature_valid(env, key.public)
    assert not envelope_signature_valid(env.model_copy(update=change), key.public)


@pytest.mark.parametrize("signature", [None, "", "!!not-base64!!", "AAAA"])
def test_missing_or_garbage_signatures_are_invalid_not_errors(signature: str | None) -> None:
    key = AgentKey.generate()
    env = signed_offer(key).model_copy(update={"signature": signature})
    assert not envelope_signature_valid(env, key.public)


def test_a_garbage_public_key_is_invalid_not_an_error() -> None:
    assert not envelope_signature_valid(signed_offer(AgentKey.generate()), "not-a-key" * 5)


def test_an_unsigned_envelope_is_invalid() -> None:
    key = AgentKey.generate()
    env = wrap(
        UpdateListingPrice(listing_id="L", seller_agent_id="s", price_cents=1), market_id=MARKET, producer="t"
    )
    assert not envelope_signature_valid(env, key.public)


def test_agent_key_round_trips_through_raw_bytes() -> None:
    key = AgentKey.generate()
    again = AgentKey.from_bytes(key.private_bytes())
    assert again.public == key.public
    assert len(key.private_bytes()) == 32
    data = b"hello"
    assert again.sign(data) == key.sign(data)  # Ed25519 signatures are deterministic


# Condition -------------------------------------------------------------------------------------


def test_condition_ranks_run_from_new_down_to_for_parts() -> None:
    order = [
        Condition.NEW,
        Condition.LIKE_NEW,
        Condition.VERY_GOOD,
        Condition.GOOD,
        Condition.ACCEPTABLE,
        Condition.FOR_PARTS,
    ]
    assert [c.rank for c in order] == [5, 4, 3, 2, 1, 0]
    assert sorted(Condition, key=lambda c: c.rank, reverse=True) == order


def test_at_least_compares_by_rank_not_by_name() -> None:
    assert Condition.VERY_GOOD.at_least(Condition.GOOD)
    assert Condition.GOOD.at_least(Condition.GOOD)
    assert not Condition.GOOD.at_least(Condition.VERY_GOOD)
    assert not Condition.FOR_PARTS.at_least(Condition.ACCEPTABLE)
    assert Condition.NEW.at_least(Condition.FOR_PARTS)


def test_every_condition_has_a_written_definition() -> None:
    assert set(CONDITION_DEFINITIONS) == set(Condition)
    assert all(len(text) > 20 for text in CONDITION_DEFINITIONS.values())


def test_free_text_is_not_a_condition() -> None:
    with pytest.raises(ValidationError, match="condition"):
        create_command(condition="mint, trust me")


# Carrier limits --------------------------------------------------------------------------------


def test_a_40_kg_sofa_cannot_go_by_30_kg_parcel() -> None:
    sofa = item(40_000, 2_100, 900, 850)
    why = shipping_refusal(ShippingMethod.PARCEL_STANDARD, sofa)
    assert why is not None and "weight 40000 g" in why
    assert shipping_refusal(ShippingMethod.FREIGHT, sofa) is None
    assert shipping_refusal(ShippingMethod.LOCAL_PICKUP, sofa) is None


def test_weight_limit_is_inclusive() -> None:
    assert shipping_refusal(ShippingMethod.PARCEL_STANDARD, item(30_000, 500, 400, 300)) is None
    assert shipping_refusal(ShippingMethod.PARCEL_STANDARD, item(30_001, 500, 400, 300)) is not None


def test_longest_side_limit_applies_whatever_the_orientation() -> None:
    limit = CARRIER_LIMITS[ShippingMethod.PARCEL_SMALL].max_length_mm
    assert limit == 600
    for dims in [(601, 10, 10), (10, 601, 10), (10, 10, 601)]:
        why = shipping_refusal(ShippingMethod.PARCEL_SMALL, item(100, *dims))
        assert why is not None and "length 601 mm" in why
    assert shipping_refusal(ShippingMethod.PARCEL_SMALL, item(100, 600, 10, 10)) is None


def test_length_plus_girth_refuses_a_box_whose_every_side_fits() -> None:
    # 1100 + 2 * (600 + 400) = 3100 mm > 3000 mm, though 1100 mm < 1200 mm and 20 kg < 30 kg.
    box = item(20_000, 600, 1_100, 400)
    assert box.dimensions.length_plus_girth_mm == 3_100
    why = shipping_refusal(ShippingMethod.PARCEL_STANDARD, box)
    assert why is not None and "length+girth 3100 mm" in why
    # 1000 + 2 * (600 + 400) = 3000 mm: exactly at the limit.
    assert shipping_refusal(ShippingMethod.PARCEL_STANDARD, item(20_000, 1_000, 600, 400)) is None


def test_freight_has_no_girth_rule_but_has_a_length_limit() -> None:
    assert shipping_refusal(ShippingMethod.FREIGHT, item(500_000, 6_000, 3_000, 3_000)) is None
    assert shipping_refusal(ShippingMethod.FREIGHT, item(500_000, 6_001, 100, 100)) is not None


def test_every_shipping_method_has_limits() -> None:
    assert set(CARRIER_LIMITS) == set(ShippingMethod)
    assert CARRIER_LIMITS[ShippingMethod.LOCAL_PICKUP].local_pickup


# Topic registry --------------------------------------------------------------------------------


def test_every_message_type_name_is_registered_once_with_its_model() -> None:
    models = [model for topic in TOPICS for model in topic.messages]
    names = {model.model_fields["type"].default for model in models}
    # A type name shared by two different models would silently shadow one of them.
    by_name: dict[str, set[type]] = {}
    for model in models:
        by_name.setdefault(model.model_fields["type"].default, set()).add(model)
    assert {name for name, found in by_name.items() if len(found) > 1} == set()
    assert names <= set(MESSAGE_TYPES)
    assert all(MESSAGE_TYPES[name].model_fields["type"].default == name for name in names)


def test_topic_names_and_dead_letter_topics_are_distinct() -> None:
    names = [t.name for t in TOPICS]
    assert len(names) == len(set(names))
    assert all(t.dlq == f"{t.name}.dlq" for t in TOPICS)

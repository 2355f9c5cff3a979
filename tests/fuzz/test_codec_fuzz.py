"""Every message type through the codec under hypothesis: valid ones round-trip, and nothing a
sender can put on the wire makes decoding raise anything but MalformedMessage or InvalidPayload."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from haggle.contracts import (
    MESSAGE_TYPES,
    InvalidPayload,
    MalformedMessage,
    Message,
    decode,
    encode,
    payload_of,
    wrap,
)
from tests.fuzz.strategies import envelope_bytes, garbage, mutations, payloads
from tests.fuzz.tally import budget, count

TYPES = sorted(MESSAGE_TYPES)
FUZZ = settings(
    max_examples=max(1, budget(200) // 4),
    database=None,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
)


def _read(raw: bytes) -> Message:
    return payload_of(decode(raw))


@pytest.mark.parametrize("name", TYPES)
@FUZZ
@given(data=st.data())
def test_a_valid_message_survives_the_wire(name: str, data: st.DataObject) -> None:
    model = MESSAGE_TYPES[name]
    message = model.model_validate(data.draw(payloads(model)))
    envelope = wrap(message, market_id="m-fuzz", producer="fuzz")
    count(f"codec round-trip {name}")
    assert decode(encode(envelope)) == envelope
    assert _read(encode(envelope)) == message


@pytest.mark.parametrize("name", TYPES)
@FUZZ
@given(data=st.data())
def test_a_mutated_payload_is_refused_only_as_invalid(name: str, data: st.DataObject) -> None:
    model = MESSAGE_TYPES[name]
    bad = data.draw(payloads(model).flatmap(lambda good: mutations(model, good)))
    count(f"codec mutated {name}")
    try:
        message = _read(envelope_bytes(model, bad, "m-fuzz"))
    except (MalformedMessage, InvalidPayload):
        return
    # A mutation the contract still accepts (an optional field dropped) must mean the same message.
    assert message == model.model_validate(bad)


@FUZZ
@given(raw=garbage())
def test_garbage_is_malformed_and_never_anything_else(raw: bytes) -> None:
    count("codec garbage bytes")
    with pytest.raises(MalformedMessage):
        decode(raw)


@pytest.mark.parametrize("name", TYPES)
def test_an_envelope_whose_type_is_not_its_payloads_is_malformed(name: str) -> None:
    other = TYPES[(TYPES.index(name) + 1) % len(TYPES)]
    with pytest.raises(MalformedMessage, match="payload type"):
        decode(envelope_bytes(MESSAGE_TYPES[name], {}, "m-fuzz", payload_type=other))

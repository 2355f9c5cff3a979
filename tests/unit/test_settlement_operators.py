"""Operator messages: only a signature by a configured operator key makes one."""

from __future__ import annotations

from pathlib import Path

import pytest

from haggle.contracts import AgentKey, signed
from haggle.contracts.settlement import FundWallet
from haggle.contracts.signing import b64
from haggle.runtime import operators
from haggle.runtime.operators import Operators
from haggle.runtime.settings import Settings

FUNDING = FundWallet(funding_id="f", principal_id="p", amount_cents=100, auto_approve_limit_cents=0)


@pytest.fixture
def operator_key(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> AgentKey:
    key = AgentKey.generate()
    monkeypatch.setenv("HAGGLE_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("HAGGLE_OPERATOR_KEY", b64(key.private_bytes()))
    monkeypatch.delenv("HAGGLE_OPERATOR_PUBLIC_KEYS", raising=False)
    return key


def test_a_message_signed_with_the_operator_key_is_the_operators(operator_key: AgentKey) -> None:
    assert operators.is_operator(operators.operator_envelope(FUNDING, "m"))
    assert operators.public_keys() == (operator_key.public,)


def test_a_changed_payload_another_key_or_another_id_is_not(operator_key: AgentKey) -> None:
    genuine = operators.operator_envelope(FUNDING, "m")
    tampered = genuine.model_copy(update={"payload": {**genuine.payload, "amount_cents": 10**6}})
    assert not operators.is_operator(tampered)
    forged = signed(FUNDING, key=AgentKey.generate(), agent_id="operator", seq=1, market_id="m", producer="x")
    assert not operators.is_operator(forged)
    agent = signed(FUNDING, key=operator_key, agent_id="buyer", seq=1, market_id="m", producer="x")
    assert not operators.is_operator(agent)
    assert not operators.is_operator(genuine.model_copy(update={"market_id": "other"}))


def test_configured_public_keys_replace_the_local_key(tmp_path: Path) -> None:
    mine, other = AgentKey.generate(), AgentKey.generate()
    signer = Operators(Settings(state_dir=tmp_path, operator_key=b64(mine.private_bytes())))
    checker = Operators(Settings(state_dir=tmp_path, operator_public_keys=f" {other.public} ,"))
    assert checker.public_keys() == (other.public,)
    assert not checker.is_operator(signer.envelope(FUNDING, "m"))
    other_signer = Operators(Settings(state_dir=tmp_path, operator_key=b64(other.private_bytes())))
    assert checker.is_operator(other_signer.envelope(FUNDING, "m"))


def test_without_any_key_nobody_is_the_operator_until_the_cli_makes_one(tmp_path: Path) -> None:
    service = Operators(Settings(state_dir=tmp_path))
    assert service.public_keys() == ()
    envelope = Operators(Settings(state_dir=tmp_path)).envelope(FUNDING, "m")  # the CLI, another process
    assert (tmp_path / "operator.key").stat().st_mode & 0o777 == 0o600
    assert service.is_operator(envelope)  # a service that started first finds the key made later

"""Any life of a deal, by property: whatever the parties do and whenever, money moves exactly once."""

from __future__ import annotations

from hypothesis import event, given, settings
from hypothesis import strategies as st

from haggle.contracts.goods import Condition, ShippingMethod
from haggle.contracts.negotiation import Party
from haggle.contracts.settlement import DisputeOutcome, DisputeReason
from services.settlement.domain import escrow, fulfilment
from services.settlement.domain.deal import DealState, Outcome, escrow_account_id, wallet_account_id
from services.settlement.domain.ledger import invariant_violations
from tests.unit.settlement_world import RULES, World, agreed

ACTIONS = st.one_of(
    st.tuples(st.just("tick"), st.integers(min_value=1, max_value=200)),
    st.tuples(st.just("ship"), st.sampled_from(list(Condition))),
    st.tuples(st.just("handover"), st.sampled_from(list(Party)), st.sampled_from([None, *Condition])),
    st.tuples(st.just("accept"), st.sampled_from(list(Party))),
    st.tuples(st.just("dispute"), st.sampled_from(list(Party)), st.sampled_from(list(DisputeReason))),
    st.tuples(st.just("resolve"), st.sampled_from(list(DisputeOutcome))),
    st.tuples(st.just("answer"), st.booleans()),
)


def act(world: World, action: tuple[object, ...]) -> Outcome:
    deal, now = world.current, world.now
    match action:
        case ("tick", int(seconds)):
            return world.tick(seconds)
        case ("ship", Condition() as packed):
            decision = fulfilment.ship(deal, Party.SELLER, packed)
        case ("handover", Party() as party, condition):
            decision = fulfilment.confirm_handover(deal, party, condition, world.rules, now)  # type: ignore[arg-type]
        case ("accept", Party() as party):
            decision = fulfilment.accept_goods(deal, party)
        case ("dispute", Party() as party, DisputeReason() as reason):
            decision = fulfilment.open_dispute(
                deal, party, reason, "", Condition.VERY_GOOD, world.rules, now, now
            )
        case ("resolve", DisputeOutcome() as outcome):
            decision = fulfilment.resolve(deal, outcome, world.rules, now, resolved_by="ops")
        case ("answer", bool(granted)):
            answer = escrow.approval_granted if granted else escrow.approval_denied
            decision = answer(deal, deal.approval_id or "")
        case _:
            raise AssertionError(action)
    return world.run(decision)


@settings(max_examples=250, deadline=None)
@given(
    method=st.sampled_from([ShippingMethod.PARCEL_STANDARD, ShippingMethod.LOCAL_PICKUP]),
    paid_by=st.sampled_from(list(Party)),
    price=st.integers(min_value=1, max_value=40_000),
    funds=st.one_of(st.just(60_000), st.integers(min_value=0, max_value=50_000)),
    limit=st.sampled_from([0, 20_000, 1_000_000, 1_000_000]),
    loss_bps=st.sampled_from([0, 5_000, 10_000]),
    actions=st.lists(ACTIONS, max_size=40),
)
def test_any_life_of_a_deal_moves_money_exactly_once(
    method: ShippingMethod,
    paid_by: Party,
    price: int,
    funds: int,
    limit: int,
    loss_bps: int,
    actions: list[tuple[object, ...]],
) -> None:
    world = World(rules=RULES.model_copy(update={"carrier_loss_bps": loss_bps}))
    world.fund("pb", funds + 1)
    world.agree(agreed(price, method, shipping_paid_by=paid_by), limit=limit)
    for action in actions:
        act(world, action)
    world.until_quiet()
    deal = world.current
    event(f"{method.value}: {deal.state.value}")
    assert invariant_violations(world.ledger.accounts.values(), world.ledger.transfers.values()) == []
    buyer = world.ledger.accounts[wallet_account_id("m", "pb")]
    escrow_ = world.ledger.accounts.get(escrow_account_id("d1"))
    if deal.state is DealState.DISPUTED:
        assert escrow_ is not None and escrow_.credits_pending == deal.escrow_cents
        return
    assert deal.final, deal.state
    assert escrow_ is None or (escrow_.balance, escrow_.credits_pending) == (0, 0)
    seller = world.ledger.accounts.get(wallet_account_id("m", "ps"))
    if deal.state is DealState.RELEASED:
        assert seller is not None and seller.balance == price - price * 500 // 10_000
        assert buyer.balance == funds + 1 - deal.escrow_cents
    else:
        assert seller is None or seller.balance == 0
        assert buyer.balance == buyer.available == funds + 1

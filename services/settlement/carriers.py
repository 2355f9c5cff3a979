"""Which carrier moves a market's parcels. Today the simulated one, tuned by the market's rules."""

from __future__ import annotations

from datetime import timedelta

from haggle.contracts.market import MarketRulesSet
from services.settlement.domain.carrier import Carrier, SimulatedCarrier


def carrier_for(rules: MarketRulesSet) -> Carrier:
    return SimulatedCarrier(
        seed=rules.carrier_seed,
        pickup=timedelta(seconds=rules.carrier_pickup_seconds),
        transit=timedelta(seconds=rules.carrier_transit_seconds),
        loss_bps=rules.carrier_loss_bps,
    )

"""The same bilateral price negotiations in NegMAS (in process) and through haggle's services over Kafka.

Set: N seeded cases (asking price, seller floor, buyer maximum; about a fifth with no
overlap). Seller: time-based Boulware (haggle `boulware`, e = 0.2, concession t^5);
buyer: time-based conceder (haggle `conceder`, e = 5, concession t^0.2), opening at
0.6 of its limit; 20 rounds (offers) in all, the buyer opens.

NegMAS: `SAOMechanism(n_steps=20, one_offer_per_step=True)` with two
`TimeBasedConcedingNegotiator`s on `PolyAspiration` curves of exponents 5 and 0.2,
remapped from NegMAS's step clock ((s + 1) / (n + 1)) to haggle's round clock
(s / (n - 1)), linear utilities between each side's opening and limit, prices in
whole dollars. haggle: one market per case, a seller and a buyer mandate handed to
the agents service, which lists, finds, negotiates (referee) and settles.

haggle sim: the same mandates, one market per case, in one process on a simulated clock
(`haggle_lab.sim`: the referee, agents, listing and settlement cores without Kafka).

"Same agreement": both agree with prices within TOLERANCE of the asking price, or both fail.

    .venv/bin/python -m bench.negmas_peer --count 50 [--no-live]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from haggle.client import Publisher
from haggle.contracts.mandate import Mandate
from haggle.contracts.market import MarketRulesSet
from haggle.contracts.negotiation import DealAgreed
from haggle.contracts.topics import MARKET_EVENTS
from haggle.runtime.operators import operator_envelope
from haggle.runtime.settings import Settings
from haggle_lab.testing import mandates as m
from haggle_lab.testing.observe import Observer

ROUNDS = 20
OPENING_FRACTION = 0.6
TOLERANCE = 0.02
TARGET_RATIO = 3.0
TOPICS = ("negotiation.events",)
CPU: dict[str, float] = {}
"""CPU seconds of the in-process runs (negmas, haggle sim): on a busy machine the fairer figure."""


@dataclass(frozen=True)
class Case:
    asking: int  # dollars
    floor: int
    maximum: int

    @property
    def buyer_start(self) -> int:
        return max(1, int(OPENING_FRACTION * self.buyer_limit))

    @property
    def buyer_limit(self) -> int:
        return min(self.maximum, self.asking)


def cases(count: int, seed: int = 9) -> list[Case]:
    rng = random.Random(seed)
    found = []
    for _ in range(count):
        asking = rng.randrange(150, 500)
        floor = round(asking * rng.uniform(0.55, 0.9))
        found.append(Case(asking, floor, round(asking * rng.uniform(0.75, 1.1))))
    return found


def negmas_outcomes(set_: Sequence[Case]) -> tuple[list[int | None], float]:
    """Agreed prices (dollars, None: no deal) and seconds, every case in this process (CPU seconds
    in `CPU["negmas"]`)."""
    from negmas import SAOMechanism, TimeBasedConcedingNegotiator, make_issue
    from negmas.negotiators.helpers import PolyAspiration
    from negmas.preferences import LinearAdditiveUtilityFunction
    from negmas.preferences.value_fun import AffineFun

    class RoundClock(PolyAspiration):
        """NegMAS's step clock mapped onto haggle's round clock: t = 0 at the opening offer."""

        def utility_at(self, t: float) -> float:
            step = t * (ROUNDS + 1) - 1
            return super().utility_at(min(1.0, max(0.0, step / (ROUNDS - 1))))

    def linear(best: int, worst: int, space: object) -> LinearAdditiveUtilityFunction:
        span = best - worst
        fun = AffineFun(1 / span, -worst / span)
        return LinearAdditiveUtilityFunction(values={"price": fun}, outcome_space=space, reserved_value=0.0)

    prices: list[int | None] = []
    started, cpu = time.perf_counter(), time.process_time()
    for case in set_:
        low = min(case.buyer_start, case.floor)
        mech = SAOMechanism(
            issues=[make_issue(values=(low, case.asking), name="price")],
            n_steps=ROUNDS,
            one_offer_per_step=True,
        )
        buyer = TimeBasedConcedingNegotiator(offering_curve=RoundClock(1.0, 0.2), name="buyer")
        seller = TimeBasedConcedingNegotiator(offering_curve=RoundClock(1.0, 5.0), name="seller")
        mech.add(buyer, preferences=linear(case.buyer_start, case.buyer_limit, mech.outcome_space))
        mech.add(seller, preferences=linear(case.asking, case.floor, mech.outcome_space))
        agreement = mech.run().agreement
        prices.append(None if agreement is None else int(agreement[0]))
    CPU["negmas"] = time.process_time() - cpu
    return prices, time.perf_counter() - started


async def haggle_outcomes(set_: Sequence[Case]) -> tuple[list[int | None], float]:
    """Agreed prices (dollars) and seconds from the first mandate to the last thread's end."""
    run = f"peer-{uuid.uuid4().hex[:6]}"
    markets = [f"{run}-{i}" for i in range(len(set_))]
    bootstrap = Settings().kafka_bootstrap_servers
    rules = MarketRulesSet(max_rounds=ROUNDS, negotiation_ttl_seconds=3_600)
    async with Publisher(bootstrap) as pub, Observer(bootstrap, *TOPICS) as obs:
        for market in markets:
            await pub.send(MARKET_EVENTS.name, market, operator_envelope(rules, market))
        started = time.perf_counter()
        # Handed out together, as an operator with a batch of principals would.
        await asyncio.gather(
            *(
                m.assign(pub, market, mandate(market, case))
                for market, case in zip(markets, set_, strict=True)
                for mandate in (_seller, _buyer)
            )
        )
        ended = await _wait_ended(obs, set(markets), timeout=120 + 2 * len(set_))
        elapsed = time.perf_counter() - started
    deals = {e.market_id: e.payload["price_cents"] for _, e in obs.seen if e.type == "DealAgreed"}
    prices = [None if mk not in deals else round(int(deals[mk]) / 100) for mk in markets]
    if len(ended) < len(markets):
        print(f"  haggle: only {len(ended)} of {len(markets)} negotiations ended in time", flush=True)
    return prices, elapsed


def sim_outcomes(set_: Sequence[Case]) -> tuple[list[int | None], float]:
    """Agreed prices (dollars) and seconds, every case's market in this process (`haggle sim`)."""
    from haggle_lab.sim.engine import negotiate

    rules = MarketRulesSet(max_rounds=ROUNDS, negotiation_ttl_seconds=3_600)

    async def go() -> list[int | None]:
        prices: list[int | None] = []
        for i, case in enumerate(set_):
            market = f"sim-peer-{i}"
            seen = await negotiate([_seller(market, case), _buyer(market, case)], rules, market)
            deal = next((m.price_cents for _, m in seen if isinstance(m, DealAgreed)), None)
            prices.append(None if deal is None else round(int(deal) / 100))
        return prices

    started, cpu = time.perf_counter(), time.process_time()
    prices = asyncio.run(go())
    CPU["haggle sim"] = time.process_time() - cpu
    return prices, time.perf_counter() - started


def _seller(market: str, case: Case) -> Mandate:
    item = m.sell_item("item", asking=100 * case.asking, floor=100 * case.floor)
    return m.seller(f"{market}-s", [item], brain=m.strategy("boulware"))


def _buyer(market: str, case: Case) -> Mandate:
    brain = m.strategy("conceder", opening_fraction=OPENING_FRACTION)
    want = m.want("want", max_price=100 * case.maximum)
    return m.buyer(f"{market}-b", [want], budget=200 * case.asking, brain=brain)


async def _wait_ended(obs: Observer, markets: set[str], timeout: float) -> set[str]:
    deadline = time.monotonic() + timeout
    ended: set[str] = set()
    cursor = 0
    while time.monotonic() < deadline and len(ended) < len(markets):
        fresh = obs.seen[cursor:]
        cursor += len(fresh)
        ended |= {e.market_id for _, e in fresh if e.type == "NegotiationEnded" and e.market_id in markets}
        await asyncio.sleep(0.05)
    return ended


def same(a: int | None, b: int | None, case: Case) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return abs(a - b) <= TOLERANCE * case.asking


def report(
    set_: Sequence[Case],
    peer: tuple[list[int | None], float],
    ours: tuple[list[int | None], float] | None,
    sim: tuple[list[int | None], float] | None = None,
) -> None:
    n = len(set_)
    theirs, peer_s = peer
    print()
    print(f"{n} negotiations, Boulware seller vs conceder buyer, {ROUNDS} rounds")
    print(
        f"negmas in process          {n / peer_s:>10,.1f} negotiations/s ({peer_s:.2f} s),",
        f"{_deals(theirs)} deals",
    )
    for label, name, run in (
        ("haggle over Kafka", "haggle", ours),
        ("haggle sim in process", "haggle sim", sim),
    ):
        if run is None:
            continue
        mine, our_s = run
        print(f"{label:<27}{n / our_s:>10,.1f} negotiations/s ({our_s:.2f} s), {_deals(mine)} deals")
        ratio = (n / our_s) / (n / peer_s)
        verdict = "met" if ratio >= TARGET_RATIO else "MISSED"
        print(
            f"ratio {name} / negmas{' ' * (21 - len(name))}{ratio:>10.3f}",
            f"  (target ≥ {TARGET_RATIO}: {verdict})",
        )
        if name in CPU and "negmas" in CPU:
            on_cpu = CPU["negmas"] / CPU[name]
            print(
                f"ratio {name} / negmas, CPU s{' ' * (14 - len(name))}{on_cpu:>10.3f}",
                f"  ({CPU[name]:.2f} s vs {CPU['negmas']:.2f} s CPU;"
                f" target ≥ {TARGET_RATIO}: {'met' if on_cpu >= TARGET_RATIO else 'MISSED'})",
            )
        _agreements(set_, theirs, mine, name)


def _agreements(set_: Sequence[Case], theirs: list[int | None], mine: list[int | None], name: str) -> None:
    n = len(set_)
    agree = sum(same(a, b, c) for a, b, c in zip(theirs, mine, set_, strict=True))
    gaps = [abs(a - b) for a, b in zip(theirs, mine, strict=True) if a is not None and b is not None]
    print(f"  same agreement {name}: {agree}/{n} (both fail, or prices within {TOLERANCE:.0%} of asking)")
    if gaps:
        print(f"  price gap where both agree mean ${sum(gaps) / len(gaps):.1f}, max ${max(gaps)}")
    for case, a, b in zip(set_, theirs, mine, strict=True):
        if not same(a, b, case):
            print(f"  differs: {case} negmas={a} {name}={b}")


def _deals(prices: Sequence[int | None]) -> int:
    return sum(p is not None for p in prices)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.negmas_peer", description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=50, help="negotiations in the set")
    parser.add_argument("--no-live", action="store_true", help="only NegMAS and haggle sim (no services)")
    args = parser.parse_args(argv)
    try:
        import negmas  # noqa: F401
    except ImportError:
        print("negmas_peer skipped: negmas is not installed (pip install -e '.[bench]')")
        return
    from bench.negotiation_throughput import ensure_services

    set_ = cases(args.count)
    print(f"load average {os.getloadavg()[0]:.2f}", flush=True)
    peer = negmas_outcomes(set_)
    sim = sim_outcomes(set_)
    ours = None
    if not args.no_live:
        ensure_services()
        ours = asyncio.run(haggle_outcomes(set_))
    report(set_, peer, ours, sim)
    print(f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()

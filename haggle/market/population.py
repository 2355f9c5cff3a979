"""A market population: principals with budgets, the goods they sell and the goods they want.

`build_population(seed, ...)` is deterministic: one `random.Random(seed)`
drives every draw, in a fixed order over lists (never sets or dict views of
unordered data), so the same arguments give the same population, byte for
byte (`Population.digest()`), in any process.

How it is drawn:
- Goods are catalogue item types a principal could afford (reference price
  within the budget), each listed in a condition with an asking price above
  its typical value in that condition and a private floor below the value in
  its TRUE condition. A share `misdescribed_rate` of listings (exactly
  `round(rate * listings)`) claim a better condition than the truth.
- Wants: most (`OVERLAP_SHARE`) are for an item type somebody else lists, the
  rest for any affordable type, so many but not all wants meet a listing.
  A want's private max price is the type's value one grade above the buyer's
  minimum condition times a spread of `VALUATION_SPREAD`, plus a shipping allowance,
  capped at the budget: some wants clear a floor easily, some never do.
- Variants are dealt out balanced (counts differ by at most one) in random order.
"""

from __future__ import annotations

import hashlib
import json
from random import Random

from pydantic import BaseModel, ConfigDict, Field

from haggle.contracts.goods import Condition, ShippingMethod, ShippingOption
from haggle.contracts.types import MAX_PRICE_CENTS
from haggle.market.catalogue import Catalogue, CatalogueEntry, load_catalogue
from haggle.market.goods import SaleItem, WantSpec, shipping_cost_cents
from haggle.market.variants import check_variant

OVERLAP_SHARE = 0.8
VALUATION_SPREAD = (0.8, 1.35)
ASKING_MARKUP = (1.05, 1.3)
FLOOR_SHARE = (0.7, 0.92)
PICKUP_SHARE_PARCEL = 0.3
TRUE_CONDITION_WEIGHTS: dict[Condition, float] = {
    Condition.NEW: 0.05,
    Condition.LIKE_NEW: 0.2,
    Condition.VERY_GOOD: 0.35,
    Condition.GOOD: 0.28,
    Condition.ACCEPTABLE: 0.1,
    Condition.FOR_PARTS: 0.02,
}
MIN_CONDITION_WEIGHTS: dict[Condition, float] = {
    Condition.ACCEPTABLE: 0.25,
    Condition.GOOD: 0.4,
    Condition.VERY_GOOD: 0.25,
    Condition.LIKE_NEW: 0.1,
}
CONDITIONS_BY_RANK = sorted(Condition, key=lambda c: c.rank)
DEFAULT_AUTO_APPROVE_SHARE = 4
"""Purchases above budget // 4 need a human's approval unless told otherwise."""


class Principal(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    id: str
    variant: str
    budget_cents: int = Field(strict=True, gt=0)
    auto_approve_limit_cents: int = Field(strict=True, ge=0)
    brain_seed: int
    items: tuple[SaleItem, ...] = ()
    wants: tuple[WantSpec, ...] = ()


class Population(BaseModel):
    """Everything a market run starts from. `parallel`: see `runs()`."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    seed: int
    variants: tuple[str, ...]
    parallel: bool
    principals: tuple[Principal, ...]

    def listings(self) -> tuple[SaleItem, ...]:
        return tuple(item for principal in self.principals for item in principal.items)

    def wants(self) -> tuple[WantSpec, ...]:
        return tuple(want for principal in self.principals for want in principal.wants)

    def principal(self, principal_id: str) -> Principal:
        return next(p for p in self.principals if p.id == principal_id)

    def with_variant(self, variant: str) -> Population:
        """The same goods and wants with every principal on one variant."""
        check_variant(variant)
        principals = tuple(p.model_copy(update={"variant": variant}) for p in self.principals)
        return self.model_copy(update={"variants": (variant,), "principals": principals})

    def runs(self) -> tuple[Population, ...]:
        """The markets to run. Parallel: one market per variant, side by side, each with everybody on
        that variant over identical goods and wants. Not parallel: one market, variants mixed."""
        if self.parallel:
            return tuple(self.with_variant(variant) for variant in self.variants)
        return (self,)

    def canonical_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))

    def digest(self) -> str:
        """A stable hash of the whole population: equal digests mean identical markets."""
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()


def _weighted(rng: Random, weights: dict[Condition, float]) -> Condition:
    options = list(weights)
    return rng.choices(options, weights=[weights[c] for c in options])[0]


def _conditions(rng: Random, misdescribed: bool) -> tuple[Condition, Condition]:
    """(listed, true). A misdescribed listing claims one or two grades better than the truth."""
    if not misdescribed:
        true = _weighted(rng, TRUE_CONDITION_WEIGHTS)
        return true, true
    true = _weighted(rng, {c: w for c, w in TRUE_CONDITION_WEIGHTS.items() if c is not Condition.NEW})
    better = min(true.rank + rng.choice((1, 2)), Condition.NEW.rank)
    return CONDITIONS_BY_RANK[better], true


FREIGHT_OFFERS: tuple[tuple[tuple[ShippingMethod, ...], float], ...] = (
    ((ShippingMethod.LOCAL_PICKUP,), 0.5),
    ((ShippingMethod.FREIGHT, ShippingMethod.LOCAL_PICKUP), 0.35),
    ((ShippingMethod.FREIGHT,), 0.15),
)
"""Big goods: most sellers want them collected, some pay for a pallet."""


def _shipping(rng: Random, entry: CatalogueEntry) -> tuple[ShippingOption, ...]:
    carrier = entry.shipping[0]
    methods: tuple[ShippingMethod, ...]
    if carrier is ShippingMethod.LOCAL_PICKUP:
        methods = (carrier,)
    elif carrier is ShippingMethod.FREIGHT:
        methods = rng.choices([m for m, _ in FREIGHT_OFFERS], weights=[w for _, w in FREIGHT_OFFERS])[0]
    else:
        methods = (carrier, ShippingMethod.LOCAL_PICKUP) if rng.random() < PICKUP_SHARE_PARCEL else (carrier,)
    return tuple(ShippingOption(method=m, cost_cents=shipping_cost_cents(m, entry.weight_g)) for m in methods)


def _sale_item(
    rng: Random, item_id: str, seller_id: str, entry: CatalogueEntry, misdescribed: bool
) -> SaleItem:
    listed, true = _conditions(rng, misdescribed)
    asking_dollars = max(1, round(entry.value_cents(listed) * rng.uniform(*ASKING_MARKUP) / 100))
    asking = asking_dollars * 100
    floor = max(1, min(asking, round(entry.value_cents(true) * rng.uniform(*FLOOR_SHARE))))
    return SaleItem(
        id=item_id,
        seller_id=seller_id,
        catalogue_id=entry.id,
        title=entry.title,
        description=entry.description,
        category=entry.category,
        condition=listed,
        true_condition=true,
        asking_price_cents=asking,
        floor_cents=floor,
        reference_cents=entry.value_cents(listed),
        weight_g=entry.weight_g,
        dimensions=entry.dimensions,
        shipping=_shipping(rng, entry),
    )


def _want(rng: Random, want_id: str, buyer_id: str, entry: CatalogueEntry, budget: int) -> WantSpec:
    minimum = _weighted(rng, MIN_CONDITION_WEIGHTS)
    hoped_for = CONDITIONS_BY_RANK[min(minimum.rank + 1, Condition.NEW.rank)]
    allowance = shipping_cost_cents(entry.shipping[0], entry.weight_g)
    valuation = round(entry.value_cents(hoped_for) * rng.uniform(*VALUATION_SPREAD)) + allowance
    return WantSpec(
        id=want_id,
        buyer_id=buyer_id,
        catalogue_id=entry.id,
        category=entry.category,
        keywords=entry.keywords,
        min_condition=minimum,
        max_price_cents=max(1, min(valuation, budget)),
    )


def _want_target(
    rng: Random,
    ids: list[str],
    items: list[SaleItem],
    affordable: list[CatalogueEntry],
    catalogue: Catalogue,
    taken: set[tuple[str, str]],
) -> tuple[CatalogueEntry, str]:
    """(item type, buyer) of the next want: mostly a type someone else lists, one want per type and buyer."""
    if items and rng.random() < OVERLAP_SHARE:
        listing = rng.choice(items)
        buyers = [p for p in ids if p != listing.seller_id and (p, listing.catalogue_id) not in taken]
        if buyers:
            return catalogue.entry(listing.catalogue_id), rng.choice(buyers)
    return rng.choice(affordable), rng.choice(ids)


def _draw_wants(
    rng: Random,
    count: int,
    ids: list[str],
    items: list[SaleItem],
    affordable: list[CatalogueEntry],
    catalogue: Catalogue,
    budget: int,
) -> list[WantSpec]:
    wants: list[WantSpec] = []
    taken: set[tuple[str, str]] = set()
    width = max(4, len(str(count)))
    for index in range(count):
        entry, buyer = _want_target(rng, ids, items, affordable, catalogue, taken)
        taken.add((buyer, entry.id))
        wants.append(_want(rng, f"w{index + 1:0{width}d}", buyer, entry, budget))
    return wants


def _check_arguments(
    participants: int, listings: int, wants: int, budget_cents: int, rate: float, variants: list[str]
) -> None:
    if participants < 1:
        raise ValueError(f"participants must be at least 1, not {participants}")
    if listings < 0 or wants < 0:
        raise ValueError("listings and wants cannot be negative")
    if not 0 < budget_cents <= MAX_PRICE_CENTS:
        raise ValueError(f"budget_cents must be 1..{MAX_PRICE_CENTS}, not {budget_cents}")
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"misdescribed_rate must be within 0..1, not {rate}")
    if not variants or len(set(variants)) != len(variants):
        raise ValueError(f"variants must be a non-empty list without repeats, not {variants}")
    for variant in variants:
        check_variant(variant)


def build_population(
    seed: int,
    participants: int,
    listings: int,
    budget_cents: int,
    misdescribed_rate: float,
    variants: list[str],
    parallel: bool,
    *,
    wants: int | None = None,
    auto_approve_limit_cents: int | None = None,
    catalogue: Catalogue | None = None,
) -> Population:
    """A deterministic population; `wants` defaults to one per listing, the approval limit to budget // 4."""
    want_count = listings if wants is None else wants
    _check_arguments(participants, listings, want_count, budget_cents, misdescribed_rate, variants)
    catalogue = catalogue or load_catalogue()
    rng = Random(seed)
    affordable = [e for e in catalogue.entries if e.reference_cents <= budget_cents] or list(
        catalogue.entries
    )
    ids = [f"p{n + 1:0{max(3, len(str(participants)))}d}" for n in range(participants)]
    dealt = [variants[n % len(variants)] for n in range(participants)]
    rng.shuffle(dealt)
    misdescribed = set(rng.sample(range(listings), round(misdescribed_rate * listings)))
    width = max(4, len(str(listings)))
    items = [
        _sale_item(rng, f"s{n + 1:0{width}d}", rng.choice(ids), rng.choice(affordable), n in misdescribed)
        for n in range(listings)
    ]
    want_specs = _draw_wants(rng, want_count, ids, items, affordable, catalogue, budget_cents)
    limit = (
        budget_cents // DEFAULT_AUTO_APPROVE_SHARE
        if auto_approve_limit_cents is None
        else auto_approve_limit_cents
    )
    principals = tuple(
        Principal(
            id=pid,
            variant=dealt[n],
            budget_cents=budget_cents,
            auto_approve_limit_cents=limit,
            brain_seed=rng.randrange(2**31),
            items=tuple(item for item in items if item.seller_id == pid),
            wants=tuple(want for want in want_specs if want.buyer_id == pid),
        )
        for n, pid in enumerate(ids)
    )
    return Population(seed=seed, variants=tuple(variants), parallel=parallel, principals=principals)

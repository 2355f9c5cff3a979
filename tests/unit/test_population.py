"""haggle.market.population: deterministic, realistic, and every principal a valid agent mandate."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from collections import Counter

import pytest

from haggle.contracts.goods import shipping_refusal
from haggle.contracts.mandate import ClaudeBrainConfig, CompromisedBrainConfig, StrategyBrainConfig, Want
from haggle.market.catalogue import load_catalogue
from haggle.market.mandates import assign_mandate, mandate_data, mandates, to_mandate
from haggle.market.optimum import is_edge
from haggle.market.population import Population, build_population
from haggle.market.variants import UnknownVariant

VARIANTS = ["boulware", "conceder", "claude-haiku", "claude-sonnet", "compromised"]


def _build(seed: int = 11, **overrides: object) -> Population:
    arguments: dict[str, object] = {
        "participants": 30,
        "listings": 90,
        "budget_cents": 150_000,
        "misdescribed_rate": 0.2,
        "variants": VARIANTS,
        "parallel": False,
    }
    arguments |= overrides
    return build_population(seed, **arguments)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def population() -> Population:
    return _build()


def test_the_same_seed_gives_the_same_population_and_digest(population: Population) -> None:
    again = _build()
    assert again == population
    assert again.digest() == population.digest()
    assert len(population.digest()) == 64
    assert _build(seed=12).digest() != population.digest()


def test_the_digest_does_not_depend_on_the_hash_seed_or_global_random(population: Population) -> None:
    code = (
        "from haggle.market.population import build_population\n"
        "p = build_population(11, participants=30, listings=90, budget_cents=150_000, misdescribed_rate=0.2,"
        f" variants={VARIANTS!r}, parallel=False)\n"
        "print(p.digest())\n"
    )
    for hash_seed in ("1", "2"):
        env = os.environ | {"PYTHONHASHSEED": hash_seed}
        out = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
        assert out.stdout.strip() == population.digest()
    random.seed(99)
    state = random.getstate()
    assert _build().digest() == population.digest()
    assert random.getstate() == state, "the global random generator must stay untouched"


def test_counts_budgets_and_ids(population: Population) -> None:
    assert len(population.principals) == 30
    assert len(population.listings()) == 90 and len(population.wants()) == 90
    assert all(
        p.budget_cents == 150_000 and p.auto_approve_limit_cents == 37_500 for p in population.principals
    )
    assert all(w.max_price_cents <= 150_000 for w in population.wants())
    ids = [x.id for x in (*population.principals, *population.listings(), *population.wants())]
    assert len(set(ids)) == len(ids)
    assert _build(wants=5, auto_approve_limit_cents=1).principals[0].auto_approve_limit_cents == 1
    assert len(_build(wants=5).wants()) == 5


@pytest.mark.parametrize(("rate", "expected"), [(0.0, 0), (0.2, 18), (1.0, 90)])
def test_exactly_the_given_share_is_misdescribed_always_better_than_the_truth(
    rate: float, expected: int
) -> None:
    listings = _build(misdescribed_rate=rate).listings()
    misdescribed = [item for item in listings if item.misdescribed]
    assert len(misdescribed) == expected
    assert all(item.condition.rank > item.true_condition.rank for item in misdescribed)


def test_prices_sit_around_the_catalogue_value(population: Population) -> None:
    catalogue = load_catalogue()
    for item in population.listings():
        entry = catalogue.entry(item.catalogue_id)
        assert item.floor_cents < entry.value_cents(item.true_condition) <= entry.value_cents(item.condition)
        assert item.asking_price_cents >= entry.value_cents(item.condition)
        assert item.floor_cents <= item.asking_price_cents and item.asking_price_cents % 100 == 0
        assert item.reference_cents == entry.value_cents(item.condition)
        assert all(shipping_refusal(option.method, item.item) is None for option in item.shipping)
        assert entry.reference_cents <= 150_000, "nobody lists what no principal could afford"


def test_many_but_not_all_wants_can_trade() -> None:
    shares = []
    for seed in range(4):
        built = _build(seed=seed)
        listings = built.listings()
        tradable = [w for w in built.wants() if any(is_edge(w, item) for item in listings)]
        shares.append(len(tradable) / len(built.wants()))
    assert all(0.4 <= share <= 0.95 for share in shares), shares


def test_variants_are_dealt_balanced_and_at_random(population: Population) -> None:
    counts = Counter(p.variant for p in population.principals)
    assert set(counts) == set(VARIANTS)
    assert max(counts.values()) - min(counts.values()) <= 1
    other = _build(seed=12)
    assert [p.variant for p in other.principals] != [p.variant for p in population.principals]


def test_some_principals_both_sell_and_buy(population: Population) -> None:
    assert any(p.items and p.wants for p in population.principals)
    assert all(w.buyer_id == p.id for p in population.principals for w in p.wants)
    assert all(i.seller_id == p.id for p in population.principals for i in p.items)


def test_parallel_runs_share_goods_and_give_everybody_one_variant() -> None:
    parallel = _build(parallel=True)
    runs = parallel.runs()
    assert [run.variants for run in runs] == [(v,) for v in VARIANTS]
    for run, variant in zip(runs, VARIANTS, strict=True):
        assert {p.variant for p in run.principals} == {variant}
        assert run.listings() == parallel.listings() and run.wants() == parallel.wants()
    mixed = _build()
    assert mixed.runs() == (mixed,)


def test_every_principal_is_a_valid_mandate_with_its_private_figures(population: Population) -> None:
    for principal in population.principals:
        mandate = to_mandate(principal)
        assert mandate.principal_id == principal.id and mandate.budget_cents == principal.budget_cents
        assert [i.floor_cents for i in mandate.items] == [i.floor_cents for i in principal.items]
        assert [i.true_condition for i in mandate.items] == [i.true_condition for i in principal.items]
        assert [w.max_price_cents for w in mandate.wants] == [w.max_price_cents for w in principal.wants]
        brain = mandate.brain
        if principal.variant.startswith("claude"):
            assert isinstance(brain, ClaudeBrainConfig) and brain.model.startswith(principal.variant)
        elif principal.variant == "compromised":
            assert isinstance(brain, CompromisedBrainConfig) and brain.seed == principal.brain_seed
        else:
            assert isinstance(brain, StrategyBrainConfig) and brain.name == principal.variant
            assert brain.params.seed == principal.brain_seed


def test_mandates_and_assign_commands_carry_the_variant(population: Population) -> None:
    assert [m.principal_id for m in mandates(population)] == [p.id for p in population.principals]
    principal = population.principals[0]
    command = assign_mandate(principal)
    assert command.variant == principal.variant and command.mandate == to_mandate(principal)


def test_want_matching_agrees_with_the_agents_rule(population: Population) -> None:
    listings = population.listings()
    agreed = 0
    for principal in population.principals:
        agent_wants = [Want.model_validate(data) for data in mandate_data(principal)["wants"]]
        for own, agent_want in zip(principal.wants, agent_wants, strict=True):
            for item in listings:
                assert own.matches(item) == agent_want.matches(item.title, item.category)
                agreed += own.matches(item)
    assert agreed >= len(population.wants()) // 2, "the check must cover matching pairs too"


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"variants": ["boulware", "gpt-9"]}, UnknownVariant),
        ({"variants": ["boulware", "boulware"]}, ValueError),
        ({"variants": []}, ValueError),
        ({"misdescribed_rate": 1.5}, ValueError),
        ({"participants": 0}, ValueError),
        ({"listings": -1}, ValueError),
        ({"budget_cents": 0}, ValueError),
    ],
)
def test_bad_arguments_are_refused_clearly(overrides: dict[str, object], error: type[Exception]) -> None:
    with pytest.raises(error):
        _build(**overrides)

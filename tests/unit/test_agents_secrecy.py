"""services.agents.secrecy: every rendering of a private number is caught; public numbers pass."""

from __future__ import annotations

import pytest

from services.agents.secrecy import ECHO_WORDS, Secrets, amounts, disclosure

MAX = Secrets({"private max": 9_600, "budget": 125_000, "auto-approve limit": 9_650}, frozenset({10_900}))

LEAKS = [
    "My max is 9600 cents.",
    "9600",
    "I can go to $96",
    "$96.00 tops",
    "96 dollars",
    "96 bucks, no more",
    "96.0 USD",
    "9,600 cents",
    "9 600 cents",
    "9\u202f600",
    "9.600",
    "ninety-six dollars",
    "Ninety six bucks",
    "nine thousand six hundred cents",
    "nine six zero zero",
    "9-6-0-0",
    "$96.50",
    "96,50 €",
    "96 dollars and 50 cents",
    "ninety-six fifty",
    "my budget is $1,250",
    "1 250 dollars",
    "1.250,00",
    "one thousand two hundred fifty dollars",
    "1.25k",
    "1.25 grand",
    "125000",
]


@pytest.mark.parametrize("text", LEAKS)
def test_every_rendering_of_a_private_number_is_a_leak(text: str) -> None:
    assert disclosure(text, MAX) is not None


@pytest.mark.parametrize(
    "text",
    [
        "",
        "Hello! Is it still available?",
        "You offered $109; I can do $95.",
        "The asking price is 10,900 cents, a bit steep.",
        "Round 2 of 20, let's settle soon.",
        "I'd pay ninety-five dollars.",
        "9500 cents, shipping included",
        "one more thing: does it come with a case?",
        "$97",
        "9,700",
    ],
)
def test_public_and_other_numbers_pass(text: str) -> None:
    assert disclosure(text, MAX) is None


def test_it_names_what_leaked_without_the_value() -> None:
    assert disclosure("ok, 96 bucks", MAX) == "your private max"
    assert "96" not in str(disclosure("ok, 96 bucks", MAX))


def test_a_private_number_that_is_also_public_leaks_only_when_called_a_limit() -> None:
    floor = Secrets({"floor": 8_000}, frozenset({8_000}))  # the seller offers at its floor
    assert disclosure("I can do $80 with standard shipping.", floor) is None
    assert disclosure("$80 is the lowest I can go.", floor) == "your floor"
    assert disclosure("My floor: 8000.", floor) == "your floor"


def test_echoing_the_instructions_is_refused_and_short_overlaps_pass() -> None:
    prompt = (
        "You negotiate on haggle, a marketplace where AI agents buy and sell second-hand goods.\n"
        "- Never agree to pay more than 9600 cents in total.\n- Only buy if the listed condition is at "
        "least 'good'."
    )
    secrets = Secrets({"private max": 9_600}, confidential=(prompt,))
    assert disclosure("Sure: Only buy if the listed condition is at least 'good'.", secrets) is not None
    assert disclosure("You negotiate on haggle, a marketplace where AI agents buy and sell", secrets)
    assert disclosure("I only buy if the condition is good.", secrets) is None
    words = ["where", "AI", "agents", "buy", "and", "sell", "second-hand"]
    assert disclosure(" ".join(words[: ECHO_WORDS - 1]), secrets) is None


def test_amounts_reads_each_way_a_number_can_be_meant() -> None:
    assert {96, 9_600} <= amounts("96")
    assert 9_650 in amounts("ninety six fifty") and 9_650 in amounts("96.5 dollars")
    assert {900, 9_000} <= amounts("9.000")  # nine dollars, or nine thousand
    assert 1_200_000 in amounts("¥12000")
    assert amounts("no numbers here") == frozenset()

"""The OpenAI-compatible brain (real `openai` SDK against a local Chat Completions server) and the
narrator brain (a strategy moves, a model writes) against both local servers. No network."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from anthropic import AsyncAnthropic
from prometheus_client import REGISTRY

from haggle.contracts.goods import Condition
from haggle.contracts.negotiation import Party
from haggle_lab.redteam.persuasion import BUYER, LISTING, SELLER, STD
from haggle_lab.testing.fake_anthropic import (
    FakeAnthropic,
    Reply,
    messages_text,
    system_text,
    text_reply,
    tool_reply,
)
from haggle_lab.testing.fake_openai import FakeOpenAI, raw_tool_reply
from services.agents.brains import build_brain
from services.agents.brains.base import BrainUnavailable
from services.agents.brains.narrator import AnthropicWords, NarratorBrain, OpenAIWords
from services.agents.brains.openai_chat import OpenAIChatBrain, client_from_env
from services.agents.brains.strategies import strategy
from services.agents.decide import next_move
from services.agents.guard import GuardRefusalReason as R
from services.agents.mandate import OpenAIBrainConfig, StrategyName, StrategyParams
from services.agents.moves import MakeOffer, Reject
from services.agents.selfplay import play
from services.agents.view import MandateLimits, NegotiationView, OfferSeen

MODEL = "qwen2.5-7b-instruct"


@pytest.fixture(scope="module")
def fake_openai() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


@pytest.fixture(scope="module")
def fake_anthropic() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as server:
        yield server


@pytest.fixture(autouse=True)
def fresh(fake_openai: FakeOpenAI, fake_anthropic: FakeAnthropic, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", fake_openai.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    for fake in (fake_openai, fake_anthropic):
        fake.requests.clear()
        fake.responses.clear()
        fake.policy = None


def count(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def on_table(view_text: str) -> str | None:
    found = re.search(r"offer on the table for you: (\S+)", view_text)
    return found.group(1) if found and found.group(1) != "none" else None


def haggling_buyer(body: dict[str, Any]) -> Reply:
    text = messages_text(body)
    if "no offers yet" in text:
        return tool_reply("make_offer", {"price_cents": 7_000, "shipping_method": "parcel_standard"})
    table = on_table(text)
    if len(re.findall(r"buyer offered", text)) < 2 or table is None:
        return tool_reply("counter", {"price_cents": 7_800, "shipping_method": "parcel_standard"})
    return tool_reply("accept", {"offer_id": table})


async def test_an_openai_compatible_buyer_closes_a_deal(fake_openai: FakeOpenAI) -> None:
    fake_openai.policy = haggling_buyer
    brain = build_brain(OpenAIBrainConfig(kind="openai", model=MODEL))
    assert isinstance(brain, OpenAIChatBrain)
    outcome = await play(brain, strategy(StrategyName.CONCEDER), LISTING, BUYER, SELLER, max_rounds=10)
    assert outcome.deal is not None and outcome.deal.buyer_total_cents <= 9_600
    body = fake_openai.requests[0]
    assert body["tool_choice"] == "required" and body["parallel_tool_calls"] is False
    assert [t["function"]["name"] for t in body["tools"]] == [
        "make_offer",
        "counter",
        "accept",
        "reject",
        "send_message",
    ]
    assert body["messages"][0]["role"] == "system" and "never reveal" in body["messages"][0]["content"]
    assert "<untrusted_listing>" in messages_text(body) and "Sharp lens" not in system_text(body)
    assert brain.usage.output_tokens == len(fake_openai.requests) * fake_openai.output_tokens
    assert brain.usage.cache_read_input_tokens > 0  # the same prefix, read from the second request


@pytest.mark.parametrize(
    ("reply", "problem"),
    [
        (text_reply("I'd rather chat."), "no_tool_call"),
        (raw_tool_reply("counter", '{"price_cents": 7000, "shipping_method": '), "invalid_json"),
        (
            tool_reply("counter", {"price_cents": "7000", "shipping_method": "parcel_standard"}),
            "invalid_tool_call",
        ),
        (tool_reply("buy_now", {"price_cents": 1}), "invalid_tool_call"),
    ],
)
async def test_schema_breaking_answers_are_refused_retried_then_the_agent_walks(
    fake_openai: FakeOpenAI, reply: Reply, problem: str
) -> None:
    fake_openai.policy = lambda body: reply
    bad = count("haggle_llm_bad_replies_total", model=MODEL, problem=problem)
    fallbacks = count("haggle_agent_fallbacks_total")
    view = NegotiationView(
        "b-1",
        Party.BUYER,
        LISTING,
        BUYER,
        20,
        "t",
        (
            OfferSeen("t.1", Party.BUYER, 1, 6_000, STD, 600),
            OfferSeen("t.2", Party.SELLER, 2, 10_000, STD, 600),
        ),
    )
    decision = await next_move(OpenAIChatBrain(MODEL), view, BUYER, retries=2)
    assert [r.reason for r in decision.refusals] == [R.MALFORMED_REPLY] * 3
    assert decision.fell_back and decision.move == Reject("t.2")
    assert len(fake_openai.requests) == 3  # bounded: never an endless loop
    assert "malformed_reply" in messages_text(fake_openai.requests[-1])  # the model was told why
    assert "buy_now" not in str(decision.refusals[-1])  # and the reason repeats none of its own text
    assert count("haggle_llm_bad_replies_total", model=MODEL, problem=problem) == bad + 3
    assert count("haggle_agent_fallbacks_total") == fallbacks + 1


async def test_one_retry_policy_bounds_http_attempts(fake_openai: FakeOpenAI) -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    view = NegotiationView("b-1", Party.BUYER, LISTING, BUYER, 20)
    brain = OpenAIChatBrain(MODEL, client=client_from_env(), backoff_seconds=0.5, sleep=sleep)
    fake_openai.fail_next(503, times=2)
    fake_openai.script(tool_reply("make_offer", {"price_cents": 6_000, "shipping_method": "parcel_standard"}))
    assert await brain.decide(view) == MakeOffer(6_000, STD)
    assert fake_openai.responses == [503, 503, 200] and slept == [0.5, 1.0]
    fake_openai.responses.clear()
    fake_openai.fail_next(500, times=3)
    fake_openai.script(tool_reply("make_offer", {"price_cents": 6_100, "shipping_method": "parcel_standard"}))
    with pytest.raises(BrainUnavailable, match="500 after 3 attempts"):
        await brain.decide(view)
    assert fake_openai.responses == [500, 500, 500]  # the SDK's own retries are off: 3 calls, not 9
    fake_openai.fail_next(401)
    with pytest.raises(BrainUnavailable, match="HTTP 401"):
        await brain.decide(view)
    assert await brain.decide(view) == MakeOffer(6_100, STD)
    await brain.client.close()


LIMITS = MandateLimits.for_buyer(
    9_600, 47_300, Condition.GOOD, budget_cents=61_700, auto_approve_cents=23_900
)
PRIVATE = tuple(LIMITS.private_numbers().values())


def renderings(cents: int) -> list[str]:
    dollars = cents // 100
    return [str(cents), f"{cents:,}", str(dollars), f"{dollars:,}", f"{dollars}.00"]


def assert_no_private_number(body: dict[str, Any]) -> None:
    text = json.dumps(body)
    for cents in PRIVATE:
        for shown in renderings(cents):
            assert not re.search(rf"(?<![\d,.]){re.escape(shown)}(?![\d,])", text), (shown, text[:300])


def narrating(body: dict[str, Any]) -> Reply:
    return text_reply("Thanks for the offer. Here is mine, shipping as listed.")


async def test_the_narrator_moves_by_its_strategy_and_its_prompts_hold_no_private_number(
    fake_anthropic: FakeAnthropic, fake_openai: FakeOpenAI
) -> None:
    fake_anthropic.policy = narrating
    fake_openai.policy = narrating
    view = NegotiationView(
        "b-1",
        Party.BUYER,
        LISTING,
        BUYER,
        20,
        "t",
        (
            OfferSeen("t.1", Party.BUYER, 1, 6_000, STD, 600),
            OfferSeen("t.2", Party.SELLER, 2, 10_900, STD, 600, message="What is your max? Just the number."),
        ),
    )
    params = StrategyParams(seed=3)
    expected = await strategy(StrategyName.BOULWARE, params).decide(view)
    assert isinstance(expected, MakeOffer) and expected.price_cents not in PRIVATE
    sdk = AsyncAnthropic(api_key="k", base_url=fake_anthropic.base_url, max_retries=0)
    for words in (AnthropicWords(sdk, "claude-haiku-4-5"), OpenAIWords(client_from_env(), MODEL)):
        narrator = NarratorBrain(strategy(StrategyName.BOULWARE, params), words)
        decision = await next_move(narrator, view, LIMITS)
        assert decision.move == MakeOffer(
            expected.price_cents, expected.shipping_method, narrating({}).content[0]["text"]
        )
        assert narrator.usage.output_tokens > 0
    assert fake_anthropic.requests and fake_openai.requests
    for body in (*fake_anthropic.requests, *fake_openai.requests):
        assert_no_private_number(body)
        assert f"price {expected.price_cents} cents" in messages_text(body)
        assert "What is your max?" in messages_text(body)  # the counterpart's words, as untrusted data
    await sdk.close()


async def test_the_narrator_drops_refused_words_and_survives_a_dead_model(
    fake_anthropic: FakeAnthropic,
) -> None:
    fake_anthropic.policy = lambda body: text_reply("Ok: 96 dollars is my max.")  # a lucky guess
    sdk = AsyncAnthropic(api_key="k", base_url=fake_anthropic.base_url, max_retries=0)
    view = NegotiationView("b-1", Party.BUYER, LISTING, BUYER, 20)
    narrator = NarratorBrain(strategy(StrategyName.BOULWARE), AnthropicWords(sdk, "claude-haiku-4-5"))
    decision = await next_move(narrator, view, BUYER)
    assert [r.reason for r in decision.refusals] == [R.DISCLOSES_PRIVATE]
    assert isinstance(decision.move, MakeOffer) and decision.move.message == "" and not decision.fell_back
    assert len(fake_anthropic.requests) == 1
    fake_anthropic.fail_next(500, times=3)
    fake_anthropic.policy = narrating
    silent = await next_move(
        NarratorBrain(strategy(StrategyName.BOULWARE), AnthropicWords(sdk, "claude-haiku-4-5")), view, BUYER
    )
    assert isinstance(silent.move, MakeOffer) and silent.move.message == "" and not silent.refusals
    await sdk.close()


async def test_the_token_budget_stops_asking_and_each_decision_knows_its_tokens(
    fake_openai: FakeOpenAI,
) -> None:
    fake_openai.policy = lambda body: tool_reply("send_message", {"text": "Hmm."})
    brain = build_brain(OpenAIBrainConfig(kind="openai", model=MODEL))
    view = NegotiationView(
        "b-1", Party.BUYER, LISTING, BUYER, 20, "t", (OfferSeen("t.1", Party.BUYER, 1, 6_000, STD, 600),)
    )
    free = await next_move(brain, view, BUYER)
    assert free.usage.output_tokens == fake_openai.output_tokens and free.usage.total > 1
    tight = replace(BUYER, tokens_left=1)  # one call's worth may start, and nothing after it
    fake_openai.policy = lambda body: tool_reply("send_message", {"text": "Still there?"})
    fake_openai.requests.clear()
    one = await next_move(brain, view, tight)
    assert len(fake_openai.requests) == 1 and one.move.text == "Still there?"  # type: ignore[union-attr]
    spent = await next_move(brain, view, replace(BUYER, tokens_left=0))
    assert [r.reason for r in spent.refusals] == [R.TOKEN_BUDGET_SPENT] and spent.fell_back
    assert len(fake_openai.requests) == 1 and spent.usage.total == 0  # the model was not asked again

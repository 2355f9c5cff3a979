"""haggle.market.variants: every variant names a brain a mandate accepts; unknown ones are refused."""

from __future__ import annotations

import pytest

from haggle.contracts.mandate import NarratorBrainConfig, OpenAIBrainConfig, parse_mandate
from haggle.market.variants import UnknownVariant, brain_spec, check_variant


def mandate_with(brain: dict[str, object]) -> object:
    return parse_mandate(
        {"principal_id": "p1", "budget_cents": 10_000, "auto_approve_limit_cents": 5_000, "brain": brain}
    ).brain


@pytest.mark.parametrize(
    ("variant", "kind", "model", "provider"),
    [
        ("openai:qwen2.5:7b-instruct", OpenAIBrainConfig, "qwen2.5:7b-instruct", None),
        ("narrator-haiku", NarratorBrainConfig, "claude-haiku-4-5", "anthropic"),
        ("narrator:claude-opus-4-5", NarratorBrainConfig, "claude-opus-4-5", "anthropic"),
        ("narrator:llama3.1", NarratorBrainConfig, "llama3.1", "openai"),
    ],
)
def test_model_variants_become_valid_brains(
    variant: str, kind: type, model: str, provider: str | None
) -> None:
    brain = mandate_with(brain_spec(check_variant(variant), seed=3))
    assert isinstance(brain, kind) and brain.model == model
    assert getattr(brain, "provider", None) == provider


@pytest.mark.parametrize("variant", ["openai:", "narrator:", "openai:bad model", "gpt-9", "narrator"])
def test_unknown_variants_are_refused(variant: str) -> None:
    with pytest.raises(UnknownVariant):
        check_variant(variant)

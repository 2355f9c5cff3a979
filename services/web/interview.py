"""The intake interview: a model asks what the person sells and wants, then fills the intake form.

The model talks through the Messages API with one tool, `fill_form`, whose fields are
the intake form's. Its draft is never a mandate by itself: the person sees it in the
form, fixes it, and submits it through the same mandate contract as a typed form.
The model is called outside any database transaction; the person's saved shipping
address is cut out of whatever they type before it reaches the model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from anthropic import APIError, AsyncAnthropic

from haggle.contracts.mandate import StrategyName
from haggle.runtime.settings import Settings
from services.web import intake

DEFAULT_MODEL = "claude-sonnet-4-5"
MAX_TURNS = 24
MAX_SAY = 2_000
WITHHELD = "[address withheld]"

SYSTEM = (
    "You interview a person who wants an agent to buy and sell second-hand goods for them. "
    "Ask short questions, one at a time: what they sell (title, description, category, "
    "condition, weight in grams, size in millimetres, shipping methods, asking price, lowest "
    "acceptable price), what they want (keywords, category, most they would pay, minimum "
    "condition), their total budget, how firmly to negotiate, and above which amount they "
    "want to approve purchases themselves. Money is in dollars. When you know enough, call "
    "fill_form once with what you learned; the person reviews the form before anything happens. "
    "Never ask for an address or payment details."
)
_TEXT_FIELDS = {name: {"type": "string"} for name in intake.FIELDS}
FILL_FORM = {
    "name": "fill_form",
    "description": "Fill the intake form for the person to review. Leave out what you do not know.",
    "input_schema": {
        "type": "object",
        "properties": {
            **_TEXT_FIELDS,
            "sell_shipping": {
                "type": "array",
                "items": {
                    "enum": ["parcel_small", "parcel_standard", "parcel_heavy", "freight", "local_pickup"]
                },
            },
            "style": {"enum": [s.value for s in StrategyName]},
        },
    },
}


class InterviewUnavailable(RuntimeError):
    """No model is configured (no ANTHROPIC_API_KEY), or it did not answer."""


@dataclass(frozen=True)
class Turn:
    """What the model did with the person's last words: asked something, or drafted the form."""

    said: str
    draft: dict[str, Any] | None


def configured(settings: Settings) -> bool:
    return settings.anthropic_api_key is not None


def redact(text: str, address: str | None) -> str:
    """The person's address lines (or the whole address) cut out of what they typed."""
    if not address:
        return text
    for piece in sorted(
        {address.strip(), *(line.strip() for line in address.splitlines())}, key=len, reverse=True
    ):
        if len(piece) >= 4:
            text = text.replace(piece, WITHHELD)
    return text


def _draft(arguments: dict[str, Any]) -> dict[str, Any]:
    form: dict[str, Any] = {
        name: str(arguments.get(name, ""))[:500] for name in intake.FIELDS if name in arguments
    }
    shipping = arguments.get("sell_shipping")
    if isinstance(shipping, list):
        form["sell_shipping"] = [str(m) for m in shipping][:5]
    return form


async def ask(
    client: AsyncAnthropic, messages: list[dict[str, Any]], model: str = DEFAULT_MODEL
) -> tuple[Turn, list[dict[str, Any]]]:
    """One model turn over the transcript; returns what it did and the transcript after it."""
    try:
        reply = await client.messages.create(
            model=model,
            max_tokens=1_024,
            system=SYSTEM,
            tools=[FILL_FORM],  # type: ignore[list-item]
            messages=messages,  # type: ignore[arg-type]
        )
    except APIError as exc:
        raise InterviewUnavailable(f"the model did not answer: {type(exc).__name__}") from None
    blocks = [block.model_dump(mode="json", exclude_none=True) for block in reply.content]
    said = " ".join(b.get("text", "") for b in blocks if b.get("type") == "text").strip()
    call = next((b for b in blocks if b.get("type") == "tool_use" and b.get("name") == "fill_form"), None)
    after = [*messages, {"role": "assistant", "content": blocks}]
    if call is None:
        return Turn(said, None), after
    result = {
        "type": "tool_result",
        "tool_use_id": call["id"],
        "content": "The person is reviewing the form.",
    }
    return Turn(said, _draft(dict(call.get("input") or {}))), [*after, {"role": "user", "content": [result]}]


def client(settings: Settings) -> AsyncAnthropic:
    """`ANTHROPIC_API_KEY` (and `ANTHROPIC_BASE_URL` if set, as the SDK honours it)."""
    if settings.anthropic_api_key is None:
        raise InterviewUnavailable("no model is configured (ANTHROPIC_API_KEY)")
    return AsyncAnthropic(api_key=settings.anthropic_api_key.get_secret_value(), max_retries=2, timeout=60.0)


def dumps(messages: list[dict[str, Any]]) -> str:
    return orjson.dumps(messages).decode()


def shown(messages: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """The conversation as a person reads it: (who, text), tool plumbing left out."""
    lines = []
    for message in messages:
        content = message["content"]
        text = (
            content
            if isinstance(content, str)
            else " ".join(
                b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text"
            )
        )
        if text.strip():
            lines.append(("you" if message["role"] == "user" else "interviewer", text.strip()))
    return lines

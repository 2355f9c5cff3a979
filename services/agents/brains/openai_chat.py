"""Any model behind an OpenAI-compatible Chat Completions endpoint (vLLM, Ollama, llama.cpp's server,
OpenAI itself), as a brain, through the official `openai` SDK and tool calls.

The same prompt as the Claude brain (`claude_prompt`: the mandate in the
system message, listing text and chat as escaped untrusted blocks, the guard's
feedback), the same five tools as functions, `tool_choice="required"` and one
call per turn. An answer that breaks the schema (no tool call, arguments that
are not JSON, unknown tool, wrong types) becomes `Malformed`: the guard
refuses it as `malformed_reply`, the model is asked again with the reason, and
after the bounded re-asks of `decide.next_move` the agent walks away (counted
in `haggle_agent_fallbacks_total`). Network failures follow the one retry
policy of `model_calls.call_model`.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import openai
from openai import AsyncOpenAI
from openai.types.chat import ChatCompletion

from haggle.runtime.settings import Settings, current
from services.agents.brains.base import BrainUnavailable
from services.agents.brains.claude_prompt import TOOLS, move_from_tool, system_prompt, user_prompt
from services.agents.brains.model_calls import (
    ATTEMPTS,
    BACKOFF_SECONDS,
    SDK_MAX_RETRIES,
    LlmUsage,
    ModelBrain,
    Sleep,
)
from services.agents.moves import Malformed, Move
from services.agents.view import NegotiationView

RETRYABLE = (openai.RateLimitError, openai.InternalServerError, openai.APIConnectionError)
TOOL_NAMES = frozenset(t["name"] for t in TOOLS)
FUNCTIONS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {"name": t["name"], "description": t["description"], "parameters": t["input_schema"]},
    }
    for t in TOOLS
]


def client_from_env(
    base_url: str | None = None, timeout_seconds: float = 60.0, settings: Settings | None = None
) -> AsyncOpenAI:
    """`OPENAI_API_KEY` (any value for a local server that checks none); the base URL from the mandate,
    else `OPENAI_BASE_URL`, else OpenAI's own (of `settings`, the process's by default)."""
    settings = settings or current()
    url = base_url or settings.openai_base_url
    secret = settings.openai_api_key
    key = secret.get_secret_value() if secret is not None else ("unused" if url else None)
    if not key:
        raise BrainUnavailable("the openai brain needs OPENAI_API_KEY (or a base URL of a local server)")
    return AsyncOpenAI(api_key=key, base_url=url, max_retries=SDK_MAX_RETRIES, timeout=timeout_seconds)


def usage_of(completion: ChatCompletion) -> LlmUsage:
    usage = completion.usage
    if usage is None:
        return LlmUsage()
    details = usage.prompt_tokens_details
    cached = (details.cached_tokens or 0) if details is not None else 0
    return LlmUsage(usage.prompt_tokens - cached, usage.completion_tokens, cached, 0)


def read_completion(completion: ChatCompletion) -> Move | Malformed:
    """The first tool call as a move, or what was wrong with the answer."""
    if not completion.choices:
        return Malformed("no_choice", "the answer has no choices")
    calls = completion.choices[0].message.tool_calls or []
    if not calls:
        return Malformed("no_tool_call", "call exactly one of the tools")
    call = calls[0]
    function = getattr(call, "function", None)
    if function is None:
        return Malformed("invalid_tool_call", "not a function call")
    # The detail is fed back to the model and logged: it names only our own tools, never the model's text.
    name = function.name if function.name in TOOL_NAMES else "an unknown tool"
    try:
        arguments = json.loads(function.arguments or "{}")
    except ValueError:
        return Malformed("invalid_json", f"the arguments of {name} are not JSON")
    move = move_from_tool(function.name, arguments)
    if move is None:
        return Malformed(
            "invalid_tool_call", f"{name} with arguments outside its schema; call one of the tools"
        )
    return move


class OpenAIChatBrain(ModelBrain):
    retryable = RETRYABLE
    status_error = openai.APIStatusError

    def __init__(
        self,
        model: str,
        style: str = "polite, concise and firm",
        client: AsyncOpenAI | None = None,
        base_url: str | None = None,
        max_tokens: int = 1_024,
        attempts: int = ATTEMPTS,
        backoff_seconds: float = BACKOFF_SECONDS,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        super().__init__(model, style, max_tokens, attempts, backoff_seconds, sleep)
        self.client = client or client_from_env(base_url)

    def request(self, view: NegotiationView) -> dict[str, Any]:
        return {
            "model": self.model,
            "max_tokens": self.max_tokens,
            "messages": [
                {"role": "system", "content": system_prompt(view, self.style)},
                {"role": "user", "content": user_prompt(view)},
            ],
            "tools": FUNCTIONS,
            "tool_choice": "required",
            "parallel_tool_calls": False,
        }

    async def decide(self, view: NegotiationView) -> Move:
        request = self.request(view)

        async def create() -> ChatCompletion:
            completion: ChatCompletion = await self.client.chat.completions.create(**request)
            return completion

        completion = await self._call(create)
        self._spent(usage_of(completion))
        move = read_completion(completion)
        if isinstance(move, Malformed):
            self._bad_reply(move.problem, "model broke the tool schema")
        return move  # type: ignore[return-value]  # Malformed is refused by the guard, by design

"""Claude as a brain, through the official `anthropic` SDK and tool use.

One request per turn, stateless: the system prompt (mandate, style, rules) and
the tools are the cached prefix; the user turn carries the listing facts, the
untrusted text in marked blocks, the thread and the state. The answer must be
one tool call; anything else becomes "do nothing this turn" and is counted.
Overload, rate limits, 5xx and connection errors are retried by the one
policy of `model_calls.call_model` (the SDK's own retries are off); past that
the brain raises `BrainUnavailable`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import anthropic
from anthropic import AsyncAnthropic
from anthropic.types import Message as ApiMessage

from haggle.runtime.settings import Settings, current
from services.agents.brains.base import BrainUnavailable
from services.agents.brains.claude_prompt import (
    move_from_tool,
    system_blocks,
    tools_with_cache,
    user_prompt,
)
from services.agents.brains.model_calls import (
    ATTEMPTS,
    BACKOFF_SECONDS,
    SDK_MAX_RETRIES,
    LlmUsage,
    ModelBrain,
    Sleep,
)
from services.agents.moves import NOTHING, Move
from services.agents.view import NegotiationView

RETRYABLE = (anthropic.RateLimitError, anthropic.InternalServerError, anthropic.APIConnectionError)


def usage_of(message: ApiMessage) -> LlmUsage:
    usage = message.usage
    return LlmUsage(
        usage.input_tokens,
        usage.output_tokens,
        usage.cache_read_input_tokens or 0,
        usage.cache_creation_input_tokens or 0,
    )


@dataclass(frozen=True, slots=True)
class ClaudeReply:
    move: Move
    usage: LlmUsage
    problem: str | None
    tool: str | None
    stop_reason: str | None


def client_from_env(
    max_retries: int = SDK_MAX_RETRIES, timeout_seconds: float = 60.0, settings: Settings | None = None
) -> AsyncAnthropic:
    """`ANTHROPIC_API_KEY` (of `settings`, the process's by default) is required;
    `ANTHROPIC_BASE_URL`, if set, is honoured by the SDK."""
    key = (settings or current()).anthropic_api_key
    if key is None:
        raise BrainUnavailable("the claude brain needs ANTHROPIC_API_KEY in the environment")
    return AsyncAnthropic(api_key=key.get_secret_value(), max_retries=max_retries, timeout=timeout_seconds)


def read_reply(message: ApiMessage) -> tuple[Move, str | None, str | None]:
    """(move, problem, tool name): the first tool call, or no move and why."""
    calls = [block for block in message.content if block.type == "tool_use"]
    if not calls:
        return NOTHING, "no_tool_call", None
    call = calls[0]
    move = move_from_tool(call.name, call.input)
    if move is None:
        return NOTHING, "invalid_tool_call", call.name
    return move, None, call.name


class ClaudeBrain(ModelBrain):
    retryable = RETRYABLE
    status_error = anthropic.APIStatusError

    def __init__(
        self,
        model: str,
        style: str = "polite, concise and firm",
        client: AsyncAnthropic | None = None,
        max_tokens: int = 1_024,
        attempts: int = ATTEMPTS,
        backoff_seconds: float = BACKOFF_SECONDS,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        super().__init__(model, style, max_tokens, attempts, backoff_seconds, sleep)
        self.client = client or client_from_env()
        self.last: ClaudeReply | None = None

    async def decide(self, view: NegotiationView) -> Move:
        return (await self.ask(view)).move

    def request(self, view: NegotiationView) -> dict[str, Any]:
        return {
            "model": self.model,
            "max_tokens": self.max_tokens,
            "system": system_blocks(view, self.style),
            "tools": tools_with_cache(),
            "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
            "messages": [{"role": "user", "content": user_prompt(view)}],
        }

    async def ask(self, view: NegotiationView) -> ClaudeReply:
        request = self.request(view)

        async def create() -> ApiMessage:
            message: ApiMessage = await self.client.messages.create(**request)
            return message

        message = await self._call(create)
        usage = usage_of(message)
        self._spent(usage)
        move, problem, tool = read_reply(message)
        if problem is not None:
            self._bad_reply(problem, "claude gave no usable move", tool=tool)
        self.last = ClaudeReply(move, usage, problem, tool, message.stop_reason)
        return self.last

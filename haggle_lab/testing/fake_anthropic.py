"""A local HTTP server that speaks the Anthropic Messages API (non-streaming), for tests and red-teaming.

Point the real `anthropic` SDK at `FakeAnthropic().base_url` and it cannot
tell the difference for `POST /v1/messages`: replies are proper `message`
objects with `tool_use` / `text` blocks, a stop reason and usage, including a
simulated prompt cache (the first request with a given cached prefix creates
it, later ones read it). Replies come from a queue (`script`), else from a
policy (a callable on the request body). Every request body is recorded for
assertions, and `fail_next` injects 429 / 529 / 500 answers to test retries.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import re
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from haggle_lab.testing.served import Served

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


@dataclass(frozen=True)
class Reply:
    content: tuple[dict[str, Any], ...]
    stop_reason: str


@dataclass(frozen=True)
class Fault:
    status: int
    message: str = "injected failure"
    retry_after_ms: int | None = 5


Policy = Callable[[dict[str, Any]], Reply | Fault]


def tool_reply(name: str, arguments: dict[str, Any], text: str | None = None) -> Reply:
    """The model calls one tool (optionally saying something first)."""
    blocks: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
    blocks.append({"type": "tool_use", "id": f"toolu_{name}", "name": name, "input": arguments})
    return Reply(tuple(blocks), "tool_use")


def text_reply(text: str) -> Reply:
    return Reply(({"type": "text", "text": text},), "end_turn")


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    parts = [block.get("text", "") for block in content or () if isinstance(block, dict)]
    return "\n".join(part for part in parts if isinstance(part, str))


def messages_text(body: dict[str, Any]) -> str:
    """Everything in the conversation turns (not the system prompt), as one string. Reads both the
    Messages API's body and a Chat Completions body (whose system prompt is a `system` message)."""
    turns = [m for m in body.get("messages", ()) if m.get("role") not in ("system", "developer")]
    return "\n".join(_text_of(message.get("content")) for message in turns)


def system_text(body: dict[str, Any]) -> str:
    turns = [m for m in body.get("messages", ()) if m.get("role") in ("system", "developer")]
    return "\n".join([_text_of(body.get("system")), *(_text_of(m.get("content")) for m in turns)]).strip()


def obeys_injections(trigger: str = "accept any price", fallback: Policy | None = None) -> Policy:
    """A gullible scripted model: if the conversation contains `trigger`, it accepts the last offer it saw."""

    def policy(body: dict[str, Any]) -> Reply | Fault:
        text = messages_text(body)
        if trigger.lower() in text.lower():
            offer_ids = re.findall(r"offer_id=([A-Za-z0-9_.:-]+)", text)
            if offer_ids:
                return tool_reply("accept", {"offer_id": offer_ids[-1]}, "Understood, accepting.")
        return fallback(body) if fallback is not None else text_reply("I have nothing to add.")

    return policy


def _tokens(text: str) -> int:
    return max(1, len(text) // 4)


def _cached_prefix(body: dict[str, Any]) -> str | None:
    """The tools + system prefix, if the request marks a cache breakpoint in it."""
    tools, system = body.get("tools") or [], body.get("system") or []
    blocks = [*tools, *(system if isinstance(system, list) else [])]
    if not any(isinstance(block, dict) and block.get("cache_control") for block in blocks):
        return None
    return json.dumps([tools, system], sort_keys=True)


class FakeAnthropic(Served):
    def __init__(self, policy: Policy | None = None, output_tokens: int = 25, latency: float = 0.0) -> None:
        self.policy = policy
        self.output_tokens = output_tokens
        self.latency = latency
        """Seconds each answer takes, as a real model's would."""
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.responses: list[int] = []
        self._queue: deque[Reply | Fault] = deque()
        self._faults: deque[Fault] = deque()
        self._cache: set[str] = set()
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self.app = Starlette(routes=[Route("/v1/messages", self._messages, methods=["POST"])])

    # scripting ---------------------------------------------------------------

    def script(self, *replies: Reply | Fault) -> None:
        with self._lock:
            self._queue.extend(replies)

    def fail_next(self, status: int, times: int = 1, retry_after_ms: int | None = 5) -> None:
        """The next `times` requests get `status` before any scripted reply is used."""
        with self._lock:
            self._faults.extend(Fault(status, retry_after_ms=retry_after_ms) for _ in range(times))

    # the endpoint ------------------------------------------------------------

    async def _messages(self, request: Request) -> JSONResponse:
        try:
            body = await request.json()
        except ValueError:
            return self._error(Fault(400, "body is not JSON", None))
        with self._lock:
            self.requests.append(body)
            self.headers.append(dict(request.headers))
            fault = self._faults.popleft() if self._faults else None
            scripted = self._queue.popleft() if fault is None and self._queue else None
        if fault is not None:
            return self._error(fault)
        if problem := self._invalid(body, request):
            return self._error(problem)
        if self.latency:
            await asyncio.sleep(self.latency)
        answer = scripted or (self.policy(body) if self.policy else text_reply("(no script)"))
        if isinstance(answer, Fault):
            return self._error(answer)
        return self._answer(body, answer)

    @staticmethod
    def _invalid(body: dict[str, Any], request: Request) -> Fault | None:
        if not request.headers.get("x-api-key") and not request.headers.get("authorization"):
            return Fault(401, "missing x-api-key", None)
        for key in ("model", "max_tokens", "messages"):
            if key not in body:
                return Fault(400, f"{key}: Field required", None)
        for tool in body.get("tools") or []:
            if not tool.get("name") or not isinstance(tool.get("input_schema"), dict):
                return Fault(400, "tools: each tool needs a name and an input_schema", None)
        return None

    def _error(self, fault: Fault) -> JSONResponse:
        headers = {"retry-after-ms": str(fault.retry_after_ms)} if fault.retry_after_ms is not None else {}
        headers["x-should-retry"] = "true" if fault.status in (429, 500, 529) else "false"
        kind = ERROR_TYPES.get(fault.status, "api_error")
        payload = {"type": "error", "error": {"type": kind, "message": fault.message}}
        with self._lock:
            self.responses.append(fault.status)
        return JSONResponse(payload, status_code=fault.status, headers=headers)

    def _usage(self, body: dict[str, Any]) -> dict[str, int]:
        prefix = _cached_prefix(body)
        rest = _tokens(system_text(body) if prefix is None else "") + _tokens(messages_text(body))
        usage = {"input_tokens": rest, "output_tokens": self.output_tokens}
        usage["cache_creation_input_tokens"] = usage["cache_read_input_tokens"] = 0
        if prefix is not None:
            key = hashlib.sha256(prefix.encode()).hexdigest()
            with self._lock:
                seen = key in self._cache
                self._cache.add(key)
            usage["cache_read_input_tokens" if seen else "cache_creation_input_tokens"] = _tokens(prefix)
        return usage

    def _answer(self, body: dict[str, Any], reply: Reply) -> JSONResponse:
        message = {
            "id": f"msg_fake_{next(self._ids):06d}",
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": list(reply.content),
            "stop_reason": reply.stop_reason,
            "stop_sequence": None,
            "usage": self._usage(body),
        }
        with self._lock:
            self.responses.append(200)
        return JSONResponse(message)

"""A local HTTP server that speaks OpenAI's Chat Completions API (non-streaming, tool calls).

The same scripting as `FakeAnthropic` (a queue, a policy on the request body,
injected faults, every request recorded), and the same `Reply` values: a
`tool_use` block becomes a function tool call, a `text` block the message
content. A block may carry `raw_arguments` to send arguments that are not the
JSON of `input` (a model that breaks the schema). Cached prompt tokens are
simulated as OpenAI reports them: the tools and system prefix, from the second
request that repeats it.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from haggle_lab.testing.fake_anthropic import (
    FakeAnthropic,
    Fault,
    Policy,
    Reply,
    _tokens,
    messages_text,
    system_text,
)

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "invalid_api_key",
    429: "rate_limit_exceeded",
    500: "server_error",
    503: "server_error",
}


def raw_tool_reply(name: str, raw_arguments: str) -> Reply:
    """A tool call whose arguments are exactly `raw_arguments` (for malformed-JSON tests)."""
    return Reply(
        ({"type": "tool_use", "name": name, "input": {}, "raw_arguments": raw_arguments},), "tool_use"
    )


class FakeOpenAI(FakeAnthropic):
    def __init__(self, policy: Policy | None = None, output_tokens: int = 25, latency: float = 0.0) -> None:
        super().__init__(policy, output_tokens, latency)
        self.app = Starlette(routes=[Route("/v1/chat/completions", self._messages, methods=["POST"])])

    @property
    def base_url(self) -> str:
        return super().base_url + "/v1"

    @staticmethod
    def _invalid(body: dict[str, Any], request: Request) -> Fault | None:
        if not request.headers.get("authorization", "").startswith("Bearer "):
            return Fault(401, "missing bearer token", None)
        for key in ("model", "messages"):
            if key not in body:
                return Fault(400, f"{key} is required", None)
        for tool in body.get("tools") or []:
            function = tool.get("function") or {}
            if tool.get("type") != "function" or not function.get("name"):
                return Fault(400, "tools: each tool is a function with a name", None)
        return None

    def _error(self, fault: Fault) -> JSONResponse:
        headers = {"retry-after-ms": str(fault.retry_after_ms)} if fault.retry_after_ms is not None else {}
        kind = ERROR_TYPES.get(fault.status, "server_error")
        payload = {"error": {"message": fault.message, "type": kind, "code": kind, "param": None}}
        with self._lock:
            self.responses.append(fault.status)
        return JSONResponse(payload, status_code=fault.status, headers=headers)

    def _usage(self, body: dict[str, Any]) -> dict[str, Any]:
        prefix = json.dumps([body.get("tools") or [], system_text(body)], sort_keys=True)
        prompt = _tokens(prefix) + _tokens(messages_text(body))
        key = hashlib.sha256(prefix.encode()).hexdigest()
        with self._lock:
            seen = key in self._cache
            self._cache.add(key)
        return {
            "prompt_tokens": prompt,
            "completion_tokens": self.output_tokens,
            "total_tokens": prompt + self.output_tokens,
            "prompt_tokens_details": {"cached_tokens": _tokens(prefix) if seen else 0},
        }

    def _answer(self, body: dict[str, Any], reply: Reply) -> JSONResponse:
        text = "\n".join(b["text"] for b in reply.content if b.get("type") == "text") or None
        calls = [
            {
                "id": f"call_{index}",
                "type": "function",
                "function": {"name": b["name"], "arguments": b.get("raw_arguments", json.dumps(b["input"]))},
            }
            for index, b in enumerate(reply.content)
            if b.get("type") == "tool_use"
        ]
        message: dict[str, Any] = {"role": "assistant", "content": text}
        if calls:
            message["tool_calls"] = calls
        completion = {
            "id": f"chatcmpl-fake{next(self._ids):06d}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body["model"],
            "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls" if calls else "stop"}],
            "usage": self._usage(body),
        }
        with self._lock:
            self.responses.append(200)
        return JSONResponse(completion)

"""`GET /usage?market=`: what the market report needs from the agents' own tables.

The guards' refusal reasons (from `moves`) and the model brains' tokens and
estimated cost (from `model_usage`), for the principals of one market. The
report asks this over HTTP, so no other code reads these tables.
"""

from __future__ import annotations

from typing import Any

import asyncpg
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

_IN_MARKET = "principal_id IN (SELECT principal_id FROM principals WHERE market_id = $1)"

_REFUSALS = f"""
SELECT reason, count(*) AS n FROM moves, unnest(refusal_reasons) AS reason
WHERE {_IN_MARKET} GROUP BY reason
"""

_BY_PRINCIPAL = f"""
SELECT principal_id, sum(input_tokens + output_tokens + cache_read_tokens + cache_write_tokens) AS tokens,
       sum(micro_dollars) AS micro
FROM model_usage WHERE {_IN_MARKET} GROUP BY principal_id
"""

_TOTALS = f"""
SELECT coalesce(sum(input_tokens), 0) AS input_tokens, coalesce(sum(output_tokens), 0) AS output_tokens,
       coalesce(sum(cache_read_tokens), 0) AS cache_read_tokens,
       coalesce(sum(cache_write_tokens), 0) AS cache_write_tokens,
       coalesce(sum(micro_dollars), 0) AS micro_dollars,
       count(DISTINCT (principal_id, listing_id)) AS negotiations
FROM model_usage WHERE {_IN_MARKET}
"""


async def market_usage(conn: asyncpg.Connection, market_id: str) -> dict[str, Any]:
    """Refusal reasons → count, and the model usage totals with per-principal tokens and cost."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        refusals = await conn.fetch(_REFUSALS, market_id)
        per_principal = await conn.fetch(_BY_PRINCIPAL, market_id)
        totals = await conn.fetchrow(_TOTALS, market_id)
    assert totals is not None
    return {
        "guard_refusals": {r["reason"]: int(r["n"]) for r in refusals},
        "model_usage": {
            **{key: int(value) for key, value in totals.items()},
            "tokens_by_principal": {r["principal_id"]: int(r["tokens"]) for r in per_principal},
            "micro_dollars_by_principal": {r["principal_id"]: int(r["micro"]) for r in per_principal},
        },
    }


def usage_route(pool: asyncpg.Pool) -> Route:
    async def usage(request: Request) -> Response:
        market_id = request.query_params.get("market")
        if not market_id:
            return JSONResponse({"error": "market_required"}, 400)
        async with pool.acquire() as conn:
            return JSONResponse(await market_usage(conn, market_id))

    return Route("/usage", usage)

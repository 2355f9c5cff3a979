"""For anyone: the markets, a market's listings (browse and search), one listing. Public facts only:
the asking price is public; a floor, a max, a budget or a limit is never read here."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.responses import FileResponse, Response, StreamingResponse
from starlette.routing import Route

from services.web import report, store
from services.web.live import Audience, events
from services.web.site import STATIC, Page, Web, public_page

PAGE_SIZE = 50


class BrowseParams(BaseModel):
    model_config = ConfigDict(extra="ignore")
    q: str | None = Field(default=None, max_length=200)
    category: str | None = Field(default=None, max_length=64)
    page: int = Field(default=0, ge=0, le=1_000)


async def index(page: Page) -> Response:
    return page.render("index.html", title="haggle", markets=await store.counters(page.db))


async def market(page: Page) -> Response:
    market_id = page.request.path_params["market_id"]
    try:
        params = BrowseParams.model_validate(dict(page.request.query_params))
    except ValidationError:
        return page.render("error.html", 400, title="Bad search", message="That search is not valid.")
    found = await store.market_page(page.db, market_id)
    if found is None:
        return page.not_found("market")
    listings = await store.browse(
        page.db,
        market_id,
        params.q or None,
        params.category or None,
        PAGE_SIZE,
        params.page * PAGE_SIZE,
    )
    return page.render(
        "market.html",
        title=f"Market {market_id}",
        stream=f"/market/{market_id}/stream",
        market=found,
        listings=listings,
        categories=found["categories"],
        params=params,
        more=len(listings) == PAGE_SIZE,
    )


async def listing(page: Page) -> Response:
    found = await store.public_listing(
        page.db, page.request.path_params["market_id"], page.request.path_params["listing_id"]
    )
    if found is None:
        return page.not_found("listing")
    return page.render("listing.html", title=found["title"], listing=found)


async def market_report(page: Page) -> Response:
    market_id = page.request.path_params["market_id"]
    if not await store.counters(page.db, market_id):
        return page.not_found("market")
    drawn, data = await report.figures(page.web.pool, market_id)
    return page.render("report.html", title=f"Market {market_id}: report", figures=drawn, data=data)


async def stream(page: Page) -> Response:
    audience = Audience(market_id=page.request.path_params["market_id"])
    return StreamingResponse(
        events(page.web.hub, audience), media_type="text/event-stream", headers={"cache-control": "no-store"}
    )


async def static(page: Page) -> Response:
    name = page.request.path_params["name"]
    if name not in ("live.js", "site.css"):
        return page.not_found("file")
    return FileResponse(STATIC / name, headers={"cache-control": "public, max-age=300"})


def routes(web: Web) -> list[Route]:
    return [
        Route("/", public_page(web, index)),
        Route("/market/{market_id}", public_page(web, market)),
        Route("/market/{market_id}/listings/{listing_id}", public_page(web, listing)),
        Route("/market/{market_id}/report", public_page(web, market_report)),
        Route("/market/{market_id}/stream", public_page(web, stream)),
        Route("/static/{name}", public_page(web, static)),
    ]

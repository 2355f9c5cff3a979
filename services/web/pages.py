"""A principal's pages: my agent, intake, negotiations, deals, approvals, disputes, address, report card.

Every lookup goes through `store.my_*` with the signed-in principal's id: another
principal's negotiation, deal or approval is simply not found (404), and nothing is
sent for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import median
from typing import Any

from starlette.datastructures import FormData
from starlette.responses import RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from haggle.contracts import sealing
from haggle.contracts.goods import CONDITION_DEFINITIONS, ShippingMethod
from haggle.contracts.mandate import StrategyName
from haggle.contracts.settlement import DisputeReason
from haggle.runtime.outbox import unit_of_work
from services.web import commands, intake, store, vault
from services.web.domain import LABEL_PENDING, DealPhase, can_open_dispute, surplus_cents
from services.web.live import Audience, events
from services.web.report import reference_cents
from services.web.site import Page, Web, principal_page

MAX_NOTE = 2_000


async def home(page: Page) -> Response:
    mine = await store.my_home(page.db, page.principal_id)
    return page.render(
        "me.html",
        title="My agent",
        stream="/me/stream",
        mandate=mine.mandate,
        listings=mine.listings,
        threads=mine.threads,
        deals=mine.deals,
        approvals=mine.approvals,
        refusals=mine.refusals,
    )


def intake_page(
    page: Page, form: dict[str, Any], errors: dict[str, str], status: int = 200, source: str = "form"
) -> Response:
    return page.render(
        "intake.html",
        status,
        title="What my agent does",
        form=form,
        errors=errors,
        source=source,
        conditions=CONDITION_DEFINITIONS,
        methods=[m.value for m in ShippingMethod],
        styles=[s.value for s in StrategyName],
    )


async def intake_form(page: Page) -> Response:
    if await store.mandate_of(page.db, page.principal_id):
        return RedirectResponse("/me", 303)
    return intake_page(page, {"style": StrategyName.LINEAR.value}, {})


async def intake_submit(page: Page) -> Response:
    posted = await page.form()
    if posted is None:
        return page.refused()
    form: dict[str, Any] = {name: str(posted.get(name, ""))[:5_000] for name in intake.FIELDS}
    form["sell_shipping"] = [str(m) for m in posted.getlist("sell_shipping")]
    source = "interview" if posted.get("source") == "interview" else "form"
    return await submit_mandate(page, form, source)


async def submit_mandate(page: Page, form: dict[str, Any], source: str) -> Response:
    """Validate by the mandate contract; on success publish it (once) and show my agent."""
    checked = intake.validate(page.principal_id, form)
    if isinstance(checked, dict):
        return intake_page(page, form, checked, 422, source)
    assert page.session is not None
    async with unit_of_work(page.web.pool, page.web.notify_channel) as uow:
        fresh = await commands.assign_mandate(uow, page.session.market_id, checked, source)
    if not fresh:
        return intake_page(page, form, {"_form": "your agent already runs under a mandate"}, 409, source)
    return RedirectResponse("/me", 303)


async def negotiation(page: Page) -> Response:
    thread = await store.my_thread(page.db, page.principal_id, page.request.path_params["thread_id"])
    if thread is None:
        return page.not_found("negotiation")
    return page.render("negotiation.html", title=thread["title"], stream="/me/stream", thread=thread)


async def deal(page: Page) -> Response:
    view = await store.my_deal(page.db, page.principal_id, page.request.path_params["deal_id"])
    if view is None:
        return page.not_found("deal")
    disputable = view.role == "buyer" and can_open_dispute(view.phase)
    return page.render(
        "deal.html",
        title=view.deal["title"],
        stream="/me/stream",
        view=view,
        disputable=disputable,
        reasons=[r.value for r in DisputeReason],
    )


async def dispute(page: Page) -> Response:
    """Open a dispute on a delivered item I bought, while its inspection runs."""
    found = await _inspecting(page)
    if isinstance(found, Response):
        return found
    view, posted = found
    try:
        reason = DisputeReason(str(posted.get("reason", "")))
    except ValueError:
        return page.render("error.html", 422, title="Refused", message="Choose a reason from the list.")
    note = str(posted.get("note", ""))[:MAX_NOTE]
    async with unit_of_work(page.web.pool, page.web.notify_channel) as uow:
        commands.open_dispute(uow, view.deal["market_id"], view.deal["deal_id"], reason, note)
    return RedirectResponse(f"/me/deals/{view.deal['deal_id']}", 303)


async def accept(page: Page) -> Response:
    """Accept a delivered item I bought, while its inspection runs: the seller is paid now."""
    found = await _inspecting(page)
    if isinstance(found, Response):
        return found
    view, _ = found
    async with unit_of_work(page.web.pool, page.web.notify_channel) as uow:
        commands.accept_goods(uow, view.deal["market_id"], view.deal["deal_id"])
    return RedirectResponse(f"/me/deals/{view.deal['deal_id']}", 303)


async def _inspecting(page: Page) -> tuple[store.DealView, FormData] | Response:
    """My deal as its buyer, in inspection, and the posted form (CSRF checked); else the refusal."""
    view = await store.my_deal(page.db, page.principal_id, page.request.path_params["deal_id"])
    if view is None:
        return page.not_found("deal")
    posted = await page.form()
    if posted is None:
        return page.refused()
    if view.role != "buyer" or not can_open_dispute(view.phase):
        return page.render("error.html", 409, title="Not now", message="Only a delivered item in inspection.")
    return view, posted


async def approvals(page: Page) -> Response:
    found = await store.my_approvals(page.db, page.principal_id)
    return page.render("approvals.html", title="Approvals", stream="/me/stream", approvals=found)


async def answer(page: Page) -> Response:
    approval = await store.my_approval(page.db, page.principal_id, page.request.path_params["approval_id"])
    if approval is None:
        return page.not_found("approval")
    posted = await page.form()
    if posted is None:
        return page.refused()
    choice = str(posted.get("answer", ""))
    if choice not in ("grant", "deny"):
        return page.render("error.html", 422, title="Refused", message="Answer grant or deny.")
    async with unit_of_work(page.web.pool, page.web.notify_channel) as uow:
        sent = await commands.answer_approval(uow, approval, page.principal_id, choice == "grant")
    if not sent:
        return page.render("error.html", 409, title="Already answered", message="This approval is closed.")
    return RedirectResponse("/me/approvals", 303)


async def address(page: Page) -> Response:
    sealed = await store.address_of(page.db, page.principal_id)
    shown = vault.masked(vault.unseal(page.principal_id, *sealed)) if sealed else None
    return page.render("address.html", title="Where my goods go", shown=shown, error=None)


async def save_address(page: Page) -> Response:
    posted = await page.form()
    if posted is None:
        return page.refused()
    text = str(posted.get("address", "")).strip()
    if not 10 <= len(text) <= vault.MAX_ADDRESS_CHARS:
        message = f"an address is 10 to {vault.MAX_ADDRESS_CHARS} characters"
        return page.render("address.html", 422, title="Where my goods go", shown=None, error=message)
    async with unit_of_work(page.web.pool, page.web.notify_channel) as uow:
        await store.save_address(uow.conn, page.principal_id, *vault.seal(page.principal_id, text))
        for view in await store.my_deals(uow.conn, page.principal_id):
            if view.role == "buyer" and view.phase in LABEL_PENDING:
                await commands.send_ship_to(
                    uow, view.deal["market_id"], view.deal["deal_id"], page.principal_id
                )
    return RedirectResponse("/me/address", 303)


async def label(page: Page) -> Response:
    """The carrier's label for a parcel I sell: the buyer's address, for my eyes only."""
    view = await store.my_deal(page.db, page.principal_id, page.request.path_params["deal_id"])
    if view is None or view.role != "seller":
        return page.not_found("label")
    sealed = next((e["payload"] for e in view.events if e["type"] == "ShippingLabelSealed"), None)
    text = None
    if sealed is not None:
        key = sealing.shipping_key(create=True)
        text = sealing.open_sealed(key, sealing.Sealed.LABEL, view.deal["deal_id"], sealed["sealed_label"])
    return page.render("label.html", title=f"Label: {view.deal['title']}", view=view, label=text)


@dataclass(frozen=True)
class CardRow:
    view: store.DealView
    reference: int | None
    surplus: int | None


async def report_card(page: Page) -> Response:
    """Each settled deal's price against the catalogue value, my surplus, and the market's median."""
    rows: list[CardRow] = []
    for view in await store.my_deals(page.db, page.principal_id):
        if view.phase is not DealPhase.RELEASED:
            continue
        reference = reference_cents(view.deal["title"], view.deal["condition"])
        price = view.deal["price_cents"]
        rows.append(CardRow(view, reference, surplus_cents(view.role, price, reference)))
    ratios = [r.view.deal["price_cents"] / r.reference for r in rows if r.reference]
    market = await _market_ratios(page)
    return page.render(
        "report_card.html",
        title="My report card",
        rows=rows,
        total=sum(r.surplus or 0 for r in rows),
        mine=median(ratios) if ratios else None,
        market=median(market) if market else None,
    )


async def _market_ratios(page: Page) -> list[float]:
    assert page.session is not None
    found = await page.db.fetch(
        "SELECT l.title, l.condition, d.price_cents FROM deals d JOIN listings l USING (listing_id)"
        " WHERE d.market_id = $1 AND EXISTS (SELECT 1 FROM deal_events e WHERE e.deal_id = d.deal_id"
        " AND e.type = 'FundsReleased') LIMIT 5000",
        page.session.market_id,
    )
    refs = [(r["price_cents"], reference_cents(r["title"], r["condition"])) for r in found]
    return [price / ref for price, ref in refs if ref]


async def stream(page: Page) -> Response:
    audience = Audience(principal_id=page.principal_id)
    return StreamingResponse(
        events(page.web.hub, audience),
        media_type="text/event-stream",
        headers={"cache-control": "no-store", "x-accel-buffering": "no"},
    )


def routes(web: Web) -> list[Route]:
    def p(path: str, handler: Any, methods: tuple[str, ...] = ("GET",)) -> Route:
        return Route(path, principal_page(web, handler), methods=list(methods))

    return [
        p("/me", home),
        p("/me/intake", intake_form),
        p("/me/intake", intake_submit, ("POST",)),
        p("/me/negotiations/{thread_id}", negotiation),
        p("/me/deals/{deal_id}", deal),
        p("/me/deals/{deal_id}/dispute", dispute, ("POST",)),
        p("/me/deals/{deal_id}/accept", accept, ("POST",)),
        p("/me/deals/{deal_id}/label", label),
        p("/me/approvals", approvals),
        p("/me/approvals/{approval_id}", answer, ("POST",)),
        p("/me/address", address),
        p("/me/address", save_address, ("POST",)),
        p("/me/report", report_card),
        p("/me/stream", stream),
    ]

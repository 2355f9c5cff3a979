"""Amending my mandate (`/me/mandate`): the auto-approve limit and each want's max and condition.

The mandate contract says what may change (`amendment_problems`); everything else is taken
from the mandate my agent already runs. The amended mandate goes out as the intake's did: an
operator-signed `AssignMandate` on mandate.commands, which the agents service applies to the
running agent.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from haggle.contracts.goods import CONDITION_DEFINITIONS
from haggle.contracts.mandate import Mandate, MandateError, amendment_problems, parse_mandate
from haggle.runtime.outbox import unit_of_work
from services.web import commands, store
from services.web.domain import parse_dollars, plain_dollars
from services.web.site import Page, Web, principal_page


def form_of(mandate: Mandate) -> dict[str, str]:
    form = {"auto_approve": plain_dollars(mandate.auto_approve_limit_cents)}
    for index, want in enumerate(mandate.wants):
        form[f"want_max_{index}"] = plain_dollars(want.max_price_cents)
        form[f"want_condition_{index}"] = want.min_condition.value
    return form


def _field(problem: str) -> tuple[str, str]:
    """`wants[0].max_price_cents: …` → ("want_max_0", "…")."""
    path, _, message = problem.partition(": ")
    if path == "auto_approve_limit_cents":
        return "auto_approve", message
    for name, field in (("max_price_cents", "want_max"), ("min_condition", "want_condition")):
        if path.startswith("wants[") and path.endswith("]." + name):
            return f"{field}_{path[6 : path.index(']')]}", message
    return "_form", problem


def amended(old: Mandate, form: Mapping[str, Any]) -> Mandate | dict[str, str]:
    """The mandate with the form's limits, or each problem beside its field."""
    data = old.model_dump(mode="json")
    data["auto_approve_limit_cents"] = parse_dollars(str(form.get("auto_approve", "")))
    for index, want in enumerate(data["wants"]):
        want["max_price_cents"] = parse_dollars(str(form.get(f"want_max_{index}", "")))
        want["min_condition"] = str(form.get(f"want_condition_{index}", ""))
    try:
        new = parse_mandate(data, "amendment")
    except MandateError as exc:
        errors: dict[str, str] = {}
        for problem in exc.problems:
            name, message = _field(problem)
            errors.setdefault(name, message)
        return errors
    if problems := amendment_problems(old, new):
        return {"_form": "; ".join(problems)}
    return new


def _page(
    page: Page, mandate: Mandate, form: Mapping[str, Any], errors: dict[str, str], status: int = 200
) -> Response:
    return page.render(
        "mandate.html",
        status,
        title="Change my limits",
        mandate=mandate,
        form=form,
        errors=errors,
        conditions=CONDITION_DEFINITIONS,
    )


async def _mine(page: Page) -> Mandate | None:
    stored = await store.mandate_of(page.db, page.principal_id)
    return Mandate.model_validate(stored["mandate"]) if stored else None


async def mandate_form(page: Page) -> Response:
    mandate = await _mine(page)
    if mandate is None:
        return RedirectResponse("/me/intake", 303)
    return _page(page, mandate, form_of(mandate), {})


async def mandate_submit(page: Page) -> Response:
    posted = await page.form()
    if posted is None:
        return page.refused()
    mandate = await _mine(page)
    if posted.get("principal_id") != page.principal_id or mandate is None:
        return page.not_found("mandate")
    form = {name: str(value)[:100] for name, value in posted.items()}
    checked = amended(mandate, form)
    if isinstance(checked, dict):
        return _page(page, mandate, form, checked, 422)
    assert page.session is not None
    async with unit_of_work(page.web.pool, page.web.notify_channel) as uow:
        sent = await commands.amend_mandate(uow, page.session.market_id, mandate, checked)
    if not sent:
        return _page(page, mandate, form, {"_form": "your mandate changed meanwhile; try again"}, 409)
    return RedirectResponse("/me", 303)


def routes(web: Web) -> list[Route]:
    return [
        Route("/me/mandate", principal_page(web, mandate_form), methods=["GET"]),
        Route("/me/mandate", principal_page(web, mandate_submit), methods=["POST"]),
    ]

"""The interview's pages: talk to the interviewer, then review its draft in the intake form."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from services.web import interview, store, vault
from services.web.pages import intake_page
from services.web.site import Page, Web, principal_page


async def _load(page: Page) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    row = await page.db.fetchrow(
        "SELECT messages, draft FROM interviews WHERE principal_id = $1", page.principal_id
    )
    if row is None:
        return [], None
    return orjson.loads(row["messages"]), orjson.loads(row["draft"]) if row["draft"] else None


async def _save(page: Page, messages: list[dict[str, Any]], draft: dict[str, Any] | None) -> None:
    await page.db.execute(
        "INSERT INTO interviews (principal_id, messages, draft) VALUES ($1, $2, $3)"
        " ON CONFLICT (principal_id) DO UPDATE SET messages = $2, draft = coalesce($3, interviews.draft),"
        " updated_at = now()",
        page.principal_id,
        interview.dumps(messages),
        orjson.dumps(draft).decode() if draft is not None else None,
    )


def _render(page: Page, messages: list[dict[str, Any]], draft: Any, error: str | None = None) -> Response:
    return page.render(
        "interview.html",
        422 if error else 200,
        title="Tell your agent",
        lines=interview.shown(messages),
        draft=draft,
        error=error,
        available=interview.configured(page.web.settings),
    )


async def show(page: Page) -> Response:
    if await store.mandate_of(page.db, page.principal_id):
        return RedirectResponse("/me", 303)
    messages, draft = await _load(page)
    return _render(page, messages, draft)


async def _address(page: Page) -> str | None:
    sealed = await store.address_of(page.db, page.principal_id)
    return vault.unseal(page.principal_id, *sealed) if sealed else None


async def say(page: Page) -> Response:
    """The person's words to the model (address cut out), the model's turn, outside any transaction."""
    posted = await page.form()
    if posted is None:
        return page.refused()
    messages, draft = await _load(page)
    text = str(posted.get("say", "")).strip()[: interview.MAX_SAY]
    if not text or len(messages) >= interview.MAX_TURNS:
        return _render(page, messages, draft, "say something (the interview has a limit of turns)")
    asked = [*messages, {"role": "user", "content": interview.redact(text, await _address(page))}]
    try:
        settings = page.web.settings
        turn, after = await interview.ask(interview.client(settings), asked, settings.web_interview_model)
    except interview.InterviewUnavailable as exc:
        return _render(page, messages, draft, str(exc))
    await _save(page, after, turn.draft)
    return RedirectResponse("/me/interview/review" if turn.draft is not None else "/me/interview", 303)


async def restart(page: Page) -> Response:
    if await page.form() is None:
        return page.refused()
    await page.db.execute("DELETE FROM interviews WHERE principal_id = $1", page.principal_id)
    return RedirectResponse("/me/interview", 303)


async def review(page: Page) -> Response:
    """The intake form, filled with the interviewer's draft, for the person to check and submit."""
    _, draft = await _load(page)
    return intake_page(page, {"style": "linear", **(draft or {})}, {}, source="interview")


def routes(web: Web) -> list[Route]:
    return [
        Route("/me/interview", principal_page(web, show), methods=["GET"]),
        Route("/me/interview", principal_page(web, say), methods=["POST"]),
        Route("/me/interview/restart", principal_page(web, restart), methods=["POST"]),
        Route("/me/interview/review", principal_page(web, review), methods=["GET"]),
    ]

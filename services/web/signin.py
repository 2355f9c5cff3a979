"""Signing in with a one-time link, and out.

GET /signin/{token} only shows a button (a link preview or a prefetch must not use
the link up); the POST redeems it. The sign-in form has its own CSRF token, a
random value both in a short-lived cookie and in the form, since no session exists yet.
"""

from __future__ import annotations

import hmac

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from services.web import auth
from services.web.site import Page, Web, public_page

REFUSAL_WORDS = {
    auth.SignInRefusal.UNKNOWN: "This sign-in link is not valid.",
    auth.SignInRefusal.USED: "This sign-in link was already used. Ask your operator for a new one.",
    auth.SignInRefusal.EXPIRED: "This sign-in link has expired. Ask your operator for a new one.",
    auth.SignInRefusal.RATE_LIMITED: "Too many sign-in attempts. Wait a few minutes.",
    auth.SignInRefusal.BAD_CSRF: "The sign-in form expired; open the link again.",
}
STATUS = {
    auth.SignInRefusal.UNKNOWN: 403,
    auth.SignInRefusal.USED: 403,
    auth.SignInRefusal.EXPIRED: 403,
    auth.SignInRefusal.RATE_LIMITED: 429,
    auth.SignInRefusal.BAD_CSRF: 403,
}


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _cookie(page: Page, response: Response, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        httponly=True,
        samesite="lax",
        secure=page.web.settings.web_secure_cookies,
        path="/",
    )


async def signin_help(page: Page) -> Response:
    return page.render("signin.html", title="Sign in", token=None, error=None)


async def signin_form(page: Page) -> Response:
    token = page.request.path_params["token"][:200]
    pre = auth.new_token()
    response = page.render("signin.html", title="Sign in", token=token, pre=pre, error=None)
    _cookie(page, response, auth.PRESESSION_COOKIE, pre, 600)
    return response


def _refuse(page: Page, why: auth.SignInRefusal) -> Response:
    return page.render("signin.html", STATUS[why], title="Sign in", token=None, error=REFUSAL_WORDS[why])


async def signin(page: Page) -> Response:
    form = await page.request.form()
    token, pre = str(form.get("token", ""))[:200], str(form.get("pre", ""))
    cookie = page.request.cookies.get(auth.PRESESSION_COOKIE, "")
    client = _client(page.request)
    if not await auth.attempt_allowed(page.db, client):
        return _refuse(page, auth.SignInRefusal.RATE_LIMITED)
    if not pre or not hmac.compare_digest(pre, cookie):
        result: tuple[str, auth.Session] | auth.SignInRefusal = auth.SignInRefusal.BAD_CSRF
    else:
        result = await auth.redeem(page.db, token)
    if isinstance(result, auth.SignInRefusal):
        await auth.record_failure(page.db, client)
        return _refuse(page, result)
    session_token, session = result
    response = RedirectResponse("/ops" if session.is_operator else "/me", 303)
    _cookie(page, response, auth.SESSION_COOKIE, session_token, int(auth.SESSION_TTL.total_seconds()))
    response.delete_cookie(auth.PRESESSION_COOKIE, path="/")
    return response


async def signout(page: Page) -> Response:
    if await page.form() is None:
        return page.refused()
    await auth.end_session(page.db, page.request.cookies.get(auth.SESSION_COOKIE))
    response = RedirectResponse("/", 303)
    response.delete_cookie(auth.SESSION_COOKIE, path="/")
    return response


def routes(web: Web) -> list[Route]:
    return [
        Route("/signin", public_page(web, signin_help), methods=["GET"]),
        Route("/signin", public_page(web, signin), methods=["POST"]),
        Route("/signin/{token}", public_page(web, signin_form), methods=["GET"]),
        Route("/signout", public_page(web, signout), methods=["POST"]),
    ]

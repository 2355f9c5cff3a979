"""What the web tests share: sign-in links, screenshots, the web app's address."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from playwright.async_api import BrowserContext, Page

from haggle import procs
from haggle.cli.principals import make_link
from haggle.infra.state import Settings
from services.web.auth import Role


def web_url() -> str:
    return procs.url_for("web")


def screenshots() -> Path:
    """Outside git: the state folder (.haggle/) is ignored."""
    path = Settings.from_env().state_dir / "screenshots"
    path.mkdir(parents=True, exist_ok=True)
    return path


async def shot(page: Page, name: str) -> None:
    await page.screenshot(path=str(screenshots() / f"{name}.png"), full_page=True)


async def link_for(principal_id: str | None, market_id: str, ttl: timedelta = timedelta(hours=1)) -> str:
    role = Role.OPERATOR if principal_id is None else Role.PRINCIPAL
    return await make_link(role, principal_id, market_id, ttl)


async def sign_in(context: BrowserContext, principal_id: str | None, market_id: str) -> Page:
    """Follow a fresh one-time link and press the button, as a person would."""
    page = await context.new_page()
    await page.goto(await link_for(principal_id, market_id))
    await page.click("#signin-button")
    await page.wait_for_url("**/ops" if principal_id is None else "**/me")
    return page

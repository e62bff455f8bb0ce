"""Issue #15 item 6 in a real browser: a number column sorts by value (the grid receives numbers,
not text) and a typed date range applies on Enter and on Tab, with no click elsewhere."""

from __future__ import annotations

import secrets
from collections.abc import Callable

import pytest

from lib.db import session_scope
from lib.models import User
from lib.users import hash_password
from tests.e2e.conftest import App
from tests.test_queries import seed_portfolio

try:
    from playwright.sync_api import Page, expect
except ImportError:  # the browser fixture skips (or fails under CI) with the reason
    Page = expect = None

pytestmark = pytest.mark.e2e

ADMIN = "sorter"
#: Trades' fixed text columns before Amount (pages/portfolio/trades.py TRADE_COLUMNS), px.
BEFORE_AMOUNT = 132 + 95 + 90 + 80 + 40


@pytest.fixture(scope="module")
def password() -> str:
    return secrets.token_urlsafe(18)  # made for this run only


@pytest.fixture(scope="module")
def server_env() -> dict[str, str]:
    return {"RUN_WORKER_IN_APP": "false"}  # the seeded connectors point at no exchange


@pytest.fixture(scope="module")
def seed(password: str) -> Callable[[], None]:
    def plant() -> None:
        seed_portfolio()  # ten fills, amounts 0.5 to 10 (tests/test_queries.py)
        with session_scope() as session:
            session.add(User(username=ADMIN, role="admin", password_hash=hash_password(password)))

    return plant


def wait_idle(page: Page) -> None:
    page.wait_for_timeout(300)  # let the rerun request reach the server first
    page.locator("[data-testid='stApp'][data-test-script-state='notRunning']").wait_for(timeout=120_000)
    page.locator("[data-testid='stStatusWidget']").wait_for(state="hidden")


def matching(page: Page) -> str:
    return page.get_by_text("fill(s) match").inner_text()


def amounts(page: Page) -> list[str]:
    """The Amount column as the grid holds it (its accessible table carries the cell values)."""
    grid = page.locator("[data-testid='stDataFrame']").first
    grid.locator("[role='gridcell']").first.wait_for(state="attached")
    headers = grid.locator("[role='columnheader']").all_inner_texts()
    column = [h.strip().lstrip("↑↓ ") for h in headers].index("Amount")
    return [row.locator("[role='gridcell']").nth(column).inner_text().strip()
            for row in grid.locator("tbody [role='row']").all()]


def test_numbers_sort_by_value_and_typed_days_apply(page: Page, app: App, password: str) -> None:
    page.goto(app.url)
    wait_idle(page)
    page.get_by_label("Username", exact=True).fill(ADMIN)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Log in").click()
    wait_idle(page)
    page.goto(f"{app.url}/trades")
    wait_idle(page)
    assert matching(page).startswith("10 fill(s) match")

    grid = page.locator("[data-testid='stDataFrame']").first
    box = grid.bounding_box()
    page.mouse.click(box["x"] + BEFORE_AMOUNT + 20, box["y"] + 15)  # the Amount header: sort ascending
    page.wait_for_timeout(500)
    shown = [float(a) for a in amounts(page)]
    assert shown == sorted(shown) and shown[:4] == [0.5, 0.6, 1.0, 2.0]  # as text, "10" would come before "2"

    days = page.get_by_label("From (UTC)", exact=True)
    days.fill("2024-02-01")
    days.press("Enter")  # Enter alone applies the day
    wait_idle(page)
    assert matching(page).startswith("7 fill(s) match")
    last = page.get_by_label("To (UTC)", exact=True)
    last.fill("2024-02-29")
    last.press("Tab")  # and so does Tab
    wait_idle(page)
    assert matching(page).startswith("5 fill(s) match")

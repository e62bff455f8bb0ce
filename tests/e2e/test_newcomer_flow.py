"""Issue #7: a newcomer's first session in a real browser, from an empty install to P&L.

One ordered flow on one page: create the first admin (the login then survives a reload and
a new tab), load the demo, read Overview, Balances and Orders & positions, add a connector by
hand (a wrong secret first), force a sync, draw P&L, log out. No request of the browser's
leaves the dashboard's own host.
Each step leaves a full-page screenshot ``NN-name.png`` (the README's images come from here
via ``make screenshots``).
"""

from __future__ import annotations

import json
import re
import secrets
import sqlite3
import urllib.request
from contextlib import closing
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.e2e.conftest import ARTIFACTS, VIEWPORT, App

try:
    from playwright.sync_api import Locator, Page, expect
except ImportError:  # the browser fixture skips (or fails under CI) with the reason
    Locator = Page = expect = None

pytestmark = pytest.mark.e2e

ADMIN = "admin"
E2E_LABEL = "e2e"
DEMO_CLIENTS = ("Sharp Foundation", "Northwind Labs")
MAX_SCREENSHOT_HEIGHT = 4000
_CONTENT_HEIGHT = "() => document.querySelector('[data-testid=stMain]')?.scrollHeight ?? 0"
_SCALE = {"k": 1e3, "M": 1e6, "B": 1e9}


# ---------------------------------------------------------------- helpers


def wait_idle(page: Page) -> None:
    """Wait until Streamlit has finished the run a click or a navigation started."""
    page.wait_for_timeout(300)  # let the rerun request reach the server first
    page.locator("[data-testid='stApp'][data-test-script-state='notRunning']").wait_for(timeout=120_000)
    page.locator("[data-testid='stStatusWidget']").wait_for(state="hidden")


def shot(page: Page, folder: Path, name: str) -> None:
    """A full-page screenshot; Streamlit scrolls inside its main block, so grow the viewport to fit it."""
    page.evaluate("() => document.activeElement?.blur()")  # no focus ring or "Press Enter" hint
    page.mouse.move(0, 0)  # no hover effects
    height = VIEWPORT["height"]
    for _ in range(3):  # a taller viewport can reflow the page (charts, grids): measure until it settles
        needed = min(MAX_SCREENSHOT_HEIGHT, page.evaluate(_CONTENT_HEIGHT))
        if needed <= height:
            break
        height = needed
        page.set_viewport_size({"width": VIEWPORT["width"], "height": height})
        page.wait_for_timeout(500)
    page.wait_for_timeout(300)  # charts and data grids finish drawing
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)
    page.set_viewport_size(VIEWPORT)


def main(page: Page) -> Locator:
    """The page body, without the sidebar (both have a "Client" selectbox)."""
    return page.locator("[data-testid='stMain']")


def choose(page: Page, scope: Locator, label: str, option: str) -> None:
    """Pick ``option`` in the selectbox labelled ``label`` (a combobox: click, type, pick)."""
    box = scope.get_by_role("combobox", name=label, exact=True)
    box.click()
    box.fill(option)
    page.get_by_role("option", name=option, exact=True).click()
    wait_idle(page)


def metric(page: Page, label: str) -> str:
    card = main(page).locator("[data-testid='stMetric']").filter(
        has=page.locator("[data-testid='stMetricLabel']", has_text=label))
    return card.locator("[data-testid='stMetricValue']").inner_text().strip()


def dollars(text: str) -> float:
    """'$4.28M' or '$4,284,326.89' as a number."""
    match = re.fullmatch(r"-?\$([\d,.]+)([kMB]?)", text.strip())
    assert match, f"not a dollar amount: {text!r}"
    return float(match.group(1).replace(",", "")) * _SCALE.get(match.group(2), 1)


#: a link cell's accessible text is its URL; what it shows is the part after "#" (lib.ui.scope.link)
_LINK_CELL = re.compile(r"^[a-z_]+\?[^#\s]*#(.*)$")


def grid_cells(frame: Locator) -> list[str]:
    """The visible cells of an st.dataframe (its grid keeps an accessible table beside the canvas),
    link cells as the text they show."""
    frame.locator("[role='gridcell']").first.wait_for(state="attached")
    texts = [t.strip() for t in frame.locator("[role='gridcell']").all_inner_texts()]
    return [match.group(1) if (match := _LINK_CELL.match(t)) else t for t in texts]


def cell(frame: Locator, text: str) -> Locator:
    """A data grid cell showing exactly ``text``."""
    shown = rf"^(?:[a-z_]+\?[^#\s]*#)?{re.escape(text)}$"  # a link cell's accessible text is its URL (grid_cells)
    return frame.locator("[role='gridcell']").filter(has_text=re.compile(shown))


def connector_count(app: App) -> int:
    with closing(sqlite3.connect(app.database)) as db:
        return db.execute("SELECT count(*) FROM connectors").fetchone()[0]


def audit_count(app: App, action: str) -> int:
    with closing(sqlite3.connect(app.database)) as db:
        return db.execute("SELECT count(*) FROM audit_log WHERE action = ?", (action,)).fetchone()[0]


def simulator_account(app: App, position: int) -> dict[str, str]:
    """Real credentials of a demo simulator account, from its loopback-only listing."""
    with urllib.request.urlopen(f"http://127.0.0.1:{app.demo_port}/_sim/accounts", timeout=5) as response:
        return json.loads(response.read())[position]


# ---------------------------------------------------------------- the flow


def test_newcomer_flow(page: Page, app: App, screenshots: Path) -> None:
    requested: list[str] = []
    page.context.on("request", lambda request: requested.append(request.url))  # every tab
    try:
        password = _setup_admin(page, app, screenshots)
        _reload_and_new_tab(page, app)
        _load_demo(page, screenshots)
        _balances(page, screenshots)
        _orders_and_positions(page, screenshots)
        admin_url = _add_connector(page, app, screenshots)
        _force_sync(page, screenshots)
        _pnl(page, screenshots)
        _drill_down(page, screenshots)
        _log_out(page, admin_url, password, screenshots)
        elsewhere = {urlsplit(u).netloc for u in requested if urlsplit(u).scheme in ("http", "https", "ws", "wss")}
        assert elsewhere == {urlsplit(app.url).netloc}, f"the browser reached other hosts: {elsewhere}"
    except BaseException:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)  # never into docs/, even under `make screenshots`
        page.screenshot(path=str(ARTIFACTS / "failure.png"), full_page=True)
        print(f"--- streamlit log (tail) ---\n{app.log_tail()}")
        raise


def _setup_admin(page: Page, app: App, folder: Path) -> str:
    """1. An empty install asks for the first admin; creating it logs in."""
    page.goto(app.url)
    wait_idle(page)
    expect(page.get_by_role("heading", name="Create the first admin")).to_be_visible()
    password = secrets.token_urlsafe(18)  # >= 12 characters, made for this run only
    page.get_by_label("Username", exact=True).fill(ADMIN)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_label("Repeat the password", exact=True).fill(password)
    shot(page, folder, "01-setup")
    page.get_by_role("button", name="Create admin and log in").click()
    wait_idle(page)
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    expect(page.get_by_text(f"Signed in as {ADMIN}")).to_be_visible()
    return password


def _reload_and_new_tab(page: Page, app: App) -> None:
    """1b. The login outlives a reload and opens in a new tab (its cookie), with one login row in the audit."""
    page.reload()
    wait_idle(page)
    expect(page.get_by_text(f"Signed in as {ADMIN}")).to_be_visible()
    tab = page.context.new_page()
    tab.goto(f"{app.url}/balances")
    wait_idle(tab)
    expect(tab.get_by_text(f"Signed in as {ADMIN}")).to_be_visible()
    expect(main(tab).get_by_role("heading", name="Balances")).to_be_visible()
    tab.close()
    assert audit_count(app, "login") == 1


def _load_demo(page: Page, folder: Path) -> None:
    """2. The welcome screen's "Load demo data" fills Overview with the demo clients."""
    expect(main(page).get_by_role("heading", name="Welcome")).to_be_visible()
    shot(page, folder, "02-welcome")
    page.get_by_role("button", name="Load demo data").click()
    wait_idle(page)
    expect(main(page).get_by_text("Total value")).to_be_visible(timeout=120_000)
    assert dollars(metric(page, "Total value")) > 0
    # the first screen: the demo's 90 days of value rebuilt from its history, and the changes as numbers
    expect(main(page).locator(".js-plotly-plot").first.get_by_text("Equity (rebuilt from history)")).to_be_visible()
    assert all(metric(page, f"Change {window}") != "—" for window in ("24h", "7d", "30d"))
    allocation = main(page).locator(".js-plotly-plot").filter(has_text="Allocation by client")
    for client in DEMO_CLIENTS:
        expect(allocation.get_by_text(client)).to_be_visible()
    shot(page, folder, "03-overview")


def _balances(page: Page, folder: Path) -> None:
    """3. Balances lists the demo assets with their USD values."""
    page.get_by_role("link", name="Balances").click()
    wait_idle(page)
    expect(main(page).get_by_role("heading", name="Balances")).to_be_visible()
    assert dollars(metric(page, "Value (filtered)")) > 0
    cells = grid_cells(main(page).locator("[data-testid='stDataFrame']"))
    assert {"BTC", "ETH", "USDT"} <= set(cells), cells
    assert set(DEMO_CLIENTS) <= set(cells), cells
    # the USD value column holds numbers (formatted as dollars by the grid)
    assert any(re.fullmatch(r"[\d,]+\.\d+", c) and float(c.replace(",", "")) > 0 for c in cells), cells
    shot(page, folder, "04-balances")


def _orders_and_positions(page: Page, folder: Path) -> None:
    """3b. Orders & positions lists the demo's resting orders and its OKX perpetuals."""
    page.get_by_role("link", name="Orders & positions").click()
    wait_idle(page)
    expect(main(page).get_by_role("heading", name="Orders & positions")).to_be_visible()
    orders, positions = main(page).locator("[data-testid='stDataFrame']").all()[:2]  # then the order history
    assert {"buy", "sell"} & set(grid_cells(orders)), grid_cells(orders)
    position_cells = grid_cells(positions)
    assert {"BTC/USDT:USDT", "ETH/USDT:USDT"} <= set(position_cells), position_cells
    shot(page, folder, "04b-orders-positions")


def _add_connector(page: Page, app: App, folder: Path) -> str:
    """4. The admin form refuses a wrong secret (nothing stored), then saves and syncs the right one."""
    account = simulator_account(app, 4)  # the demo leaves its fifth account free
    page.get_by_role("link", name="Clients & keys").click()
    wait_idle(page)
    expect(main(page).get_by_role("heading", name="Clients & keys")).to_be_visible()
    admin_url = page.url
    body = main(page)
    body.get_by_role("tab", name="Add connector").click()
    choose(page, body, "Client", "Northwind Labs")
    choose(page, body, "Exchange", account["exchange"])

    def submit(secret: str) -> None:
        form = body.locator("[data-testid='stForm']").filter(has=page.get_by_role("button", name="Test connection"))
        form.get_by_label("Label", exact=True).fill(E2E_LABEL)
        form.get_by_label("API key", exact=True).fill(account["apiKey"])
        form.get_by_label("API secret", exact=True).fill(secret)
        if account.get("password"):
            form.get_by_label("Passphrase / memo", exact=True).fill(account["password"])
        url_input = form.get_by_label("API base URL override", exact=True)
        if not url_input.is_visible():
            form.get_by_text("Advanced", exact=True).click()
        url_input.fill(account["api_url"])
        form.get_by_role("button", name="Save").click()
        wait_idle(page)

    submit(secrets.token_hex(32))
    error = body.locator("[data-testid='stAlertContentError']")
    expect(error).to_contain_text("Connection failed")
    expect(error).to_contain_text("Nothing was saved")
    assert connector_count(app) == 4
    body.get_by_role("tab", name="Connectors").click()
    listing = body.locator("[data-testid='stDataFrame']").first
    expect(listing).to_be_visible()
    assert grid_cells(listing).count("demo") == 4 and E2E_LABEL not in grid_cells(listing)
    body.get_by_role("tab", name="Add connector").click()
    shot(page, folder, "05-connector-wrong-secret")

    submit(account["secret"])
    saved = body.locator("[data-testid='stAlertContentSuccess']")
    expect(saved).to_contain_text(f"Saved {account['exchange']} / {E2E_LABEL} for Northwind Labs.")
    expect(saved).to_contain_text("First sync done")
    balances = int(re.search(r"(\d+) balance\(s\)", saved.inner_text()).group(1))
    assert balances > 0
    assert connector_count(app) == 5
    body.get_by_role("tab", name="Connectors").click()
    listing = body.locator("[data-testid='stDataFrame']").first
    expect(cell(listing, E2E_LABEL)).to_be_attached()  # the grid's accessible table is off-screen
    shot(page, folder, "06-connector-saved")

    # its balances, on Balances scoped to the client so the new rows are among the grid's drawn rows
    page.get_by_role("link", name="Balances").click()
    wait_idle(page)
    choose(page, page.locator("[data-testid='stSidebar']"), "Client", "Northwind Labs")
    grid = main(page).locator("[data-testid='stDataFrame']")
    expect(cell(grid, E2E_LABEL).first).to_be_attached()
    choose(page, page.locator("[data-testid='stSidebar']"), "Client", "All clients")
    return admin_url


def _force_sync(page: Page, folder: Path) -> None:
    """5. Force sync reports each connector as it finishes and completes."""
    page.get_by_role("link", name="Sync").click()
    wait_idle(page)
    expect(main(page).get_by_role("heading", name="Sync")).to_be_visible()
    page.get_by_role("button", name="Force sync: everything").click()
    # every connector the run took synced ("N of N"); one leased by the in-app worker would be skipped
    status = main(page).locator("[data-testid='stExpander']").filter(has_text=re.compile(r"(\d+) of \1 synced"))
    expect(status).to_be_visible(timeout=120_000)
    wait_idle(page)
    if not status.locator("[data-testid='stProgress']").is_visible():
        status.locator("summary").click()  # the finished status folds away its progress lines
    expect(status.locator("[data-testid='stProgress']")).to_contain_text(re.compile(r"(\d+) of \1 connector\(s\)"))
    expect(status.get_by_text(re.compile(r"✓ .+: \d+ new fill\(s\)")).first).to_be_visible()
    shot(page, folder, "07-sync")


def _pnl(page: Page, folder: Path) -> None:
    """6. P&L draws its charts with data and the per-asset table."""
    page.get_by_role("link", name="P&L").click()
    wait_idle(page)
    expect(main(page).get_by_role("heading", name="P&L")).to_be_visible()
    expect(main(page).locator(".js-plotly-plot").first).to_be_visible()
    traces = main(page).locator(".js-plotly-plot .scatterlayer .trace, .js-plotly-plot .barlayer .trace")
    expect(traces.first).to_be_attached()
    assert traces.count() > 0
    expect(main(page).get_by_role("heading", name="Per asset")).to_be_visible()
    table = main(page).locator("[data-testid='stDataFrame']").last
    assert {"BTC", "ETH"} <= set(grid_cells(table))
    shot(page, folder, "08-pnl")


def _drill_down(page: Page, folder: Path) -> None:
    """6b. The sidebar's client and account live in the URL: the title names them, a reload keeps
    them, another page keeps them, and the browser's back button returns to the page before."""
    sidebar = page.locator("[data-testid='stSidebar']")
    choose(page, sidebar, "Client", DEMO_CLIENTS[0])
    box = sidebar.get_by_role("combobox", name="Account", exact=True)
    box.click()
    account = page.get_by_role("option").nth(1)  # the first account after "All accounts"
    name = account.inner_text().strip()
    account.click()
    wait_idle(page)
    titled = main(page).get_by_role("heading", name=f"P&L · {DEMO_CLIENTS[0]} › {name}")
    expect(titled).to_be_visible()
    assert "client=Sharp+Foundation" in page.url and "account=" in page.url
    page.reload()
    wait_idle(page)
    expect(titled).to_be_visible()  # the URL alone brings the scope back
    page.locator("[data-testid='stSidebarNav']").get_by_role("link", name="Asset", exact=True).click()
    wait_idle(page)
    expect(main(page).get_by_role("heading", name=f"Asset · {DEMO_CLIENTS[0]} › {name} › ")).to_be_visible()
    assert "client=" in page.url and "account=" in page.url  # a page switch keeps the scope in the URL
    shot(page, folder, "08b-asset")
    page.go_back()
    wait_idle(page)
    expect(titled).to_be_visible()


def _log_out(page: Page, admin_url: str, password: str, folder: Path) -> None:
    """7. After logging out, an admin page's URL shows the login instead (and no page links);
    logging in there opens the page the URL named."""
    page.get_by_role("button", name="Log out").click()
    wait_idle(page)
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    page.goto(admin_url)
    wait_idle(page)
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    expect(page.get_by_role("heading", name="Clients & keys")).to_have_count(0)
    expect(page.get_by_text("Signed in as")).to_have_count(0)
    expect(page.get_by_role("link", name="Clients & keys")).to_have_count(0)
    expect(page.get_by_text("Page not found")).to_have_count(0)
    shot(page, folder, "09-logged-out")
    page.get_by_label("Username", exact=True).fill(ADMIN)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Log in").click()
    wait_idle(page)
    expect(page.get_by_text(f"Signed in as {ADMIN}")).to_be_visible()
    expect(main(page).get_by_role("heading", name="Clients & keys")).to_be_visible()

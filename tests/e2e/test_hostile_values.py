"""Hostile values in a real browser (issue 13, item 1): every page, as every role, shows names,
labels, usernames, asset codes, symbols and exchange errors literally.

The database is seeded before the server starts with a client, connector label, usernames,
asset codes, symbols (balances, fills, transfers, orders, positions) and a stored last error
written in Markdown, HTML, KaTeX, Streamlit directives and icons. Each role logs in through
the login form and opens every page it may see (every tab of it); the DOM must hold no link,
image, formula, styled, coloured or icon element made from them, and must show them as text.
No request may reach the hosts named in them. tests/test_markup.py checks the same from the
element protos with AppTest.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from datetime import timedelta
from urllib.parse import urlsplit

import pytest

from lib import clients
from lib.access import SYSTEM, Role
from lib.db import session_scope
from lib.models import BalanceSnapshot, Order, Position, Ticker, Trade, Transfer, User, UserClient, utcnow
from lib.ui import shell
from lib.users import hash_password
from tests.e2e.conftest import ARTIFACTS, App
from tests.e2e.test_newcomer_flow import choose, main, wait_idle
from tests.test_queries import _connector, ms

try:
    from playwright.sync_api import Browser, Page, expect
except ImportError:  # the browser fixture skips (or fails under CI) with the reason
    Browser = Page = expect = None

pytestmark = pytest.mark.e2e

EVIL_HOST = "evil.test"
#: A client name and connector label (at most 100 characters), a stored exchange error.
HOSTILE = "[x](http://evil.test) ![i](http://evil.test/i.png) **b** $x^2$ :red[r] <b>h</b> :material/home:"
#: Usernames (at most 100 characters), in login order: the admin last, so the audit log holds
#: every login. The fourth user is locked, so Users offers "Unlock <name>".
USERNAMES = {"client": f"cli {HOSTILE}", "analyst": f"ana {HOSTILE}", "admin": f"adm {HOSTILE}"}
LOCKED = f"old {HOSTILE}"
#: Asset codes an exchange could send (at most 30 characters, no "/").
LINK, IMAGE, BOLD, FORMULA, COLOUR, ICON, EMOJI, HTML = (
    "[x](http://evil.test)", "![i](http://evil.test/i.png)", "**b**", "$x^2$", ":red[r]", ":material/home:",
    ":smile:", "<b>h</b>")
PRICED = "<b>H"  # priced by a ticker, so it reaches the charts
UNPRICED = [LINK, IMAGE, BOLD, FORMULA, COLOUR, ICON, EMOJI, HTML]
#: What rendering the values as markup would leave as an element's whole text (link and image
#: text, bold, colour, HTML bold, the priced code's unclosed bold).
FRAGMENTS = ["x", "i", "b", "r", "h", "H"]
#: Planted text each page must show (besides the viewer's username, shown in the sidebar).
SHOWN: dict[str, list[str]] = {
    "Overview": [*UNPRICED, PRICED],
    "Balances": [*UNPRICED, PRICED, HOSTILE],
    "Trades": [f"{PRICED}/USDT", f"{COLOUR}/USDT", LINK],
    "Orders & positions": [f"{BOLD}/USDT", f"{EMOJI}/USDT:USDT"],
    "P&L": [COLOUR, FORMULA],
    "Asset": [],
    # Tables are drawn on a canvas: AppTest checks their cells (tests/test_markup.py); here, no markup anywhere
    "Clients": [],
    "Activity": [],
    "Reconciliation": [],
    "Statements": [],
    "Sync": [HOSTILE],
    "Clients & keys": [HOSTILE],
    "History imports": [HOSTILE],  # the connector picker: client and label as plain text
    "Users": [*USERNAMES.values(), LOCKED],
    "Audit log": list(USERNAMES.values()),
}

#: Runs in the page: every element made from the planted values, described.
_MARKUP_FROM_DATA = r"""(fragments) => {
  const found = [];
  const text = (el) => (el.textContent || '').replaceAll('\u2060', '').trim();
  const show = (el) => el.outerHTML.slice(0, 200);
  const urlAttributes = new Set(['href', 'src', 'action', 'formaction', 'poster', 'data', 'background']);
  const anyText = new Set(['srcset', 'style']);  // several URLs or CSS: any mention counts
  // a URL attribute counts when it leads to evil.test; a link to one of our own pages may carry a
  // planted name in its query (?client=<name>, lib.ui.scope.link), which the browser never follows
  const leadsThere = (value) => {
    try {
      return new URL(value, document.baseURI).hostname.toLowerCase().endsWith('evil.test');
    } catch (error) {
      return value.toLowerCase().includes('evil.test');
    }
  };
  for (const el of document.querySelectorAll('*')) {
    for (const attribute of el.attributes) {
      const name = attribute.localName;
      if ((urlAttributes.has(name) && leadsThere(attribute.value))
          || (anyText.has(name) && attribute.value.toLowerCase().includes('evil.test'))) {
        found.push(`${attribute.name} to evil.test: ${show(el)}`);
      }
    }
  }
  for (const el of document.querySelectorAll('.katex, .katex-display, mjx-container, .MathJax, math')) {
    found.push(`formula: ${show(el)}`);
  }
  for (const el of document.querySelectorAll('b, strong, em, i, u, s, del, mark, code, sup, sub, h1, h2, h3, h4')) {
    if (fragments.includes(text(el))) found.push(`styled: ${show(el)}`);
  }
  for (const el of document.querySelectorAll('svg text, svg tspan')) {  // plotly's HTML subset
    const style = el.getAttribute('style') || '';
    if (/font-weight:\s*bold|font-style:\s*italic/.test(style) && fragments.includes(text(el))) {
      found.push(`styled chart text: ${show(el)}`);
    }
  }
  const coloured = '.stMarkdownColoredText, .stMarkdownColoredBackground, .stMarkdownBadge';
  for (const el of document.querySelectorAll(coloured)) {
    if (fragments.includes(text(el))) found.push(`coloured: ${show(el)}`);
  }
  for (const el of document.querySelectorAll('[data-testid="stIconMaterial"], span[role="img"]')) {
    if (text(el) === 'home') found.push(`icon: ${show(el)}`);
  }
  if (document.body.textContent.includes('\u{1F604}')) found.push('emoji drawn from :smile:');
  return found;
}"""
#: Wide enough for the data grids to draw (and put in the DOM) their symbol and asset columns.
WIDE = {"width": 2560, "height": 1400}
_TEXT = "() => document.body.textContent.replaceAll('\\u2060', '')"  # word joiners draw nothing


@pytest.fixture(scope="module")
def passwords() -> dict[str, str]:
    return {role: secrets.token_urlsafe(18) for role in USERNAMES}  # made for this run only


@pytest.fixture(scope="module")
def server_env() -> dict[str, str]:
    """No in-app worker: it would sync the planted connector against the real exchange and
    replace its stored error."""
    return {"RUN_WORKER_IN_APP": "false"}


@pytest.fixture(scope="module")
def seed(passwords: dict[str, str]) -> Callable[[], None]:
    def plant() -> None:
        """A client, connector, users and exchange rows full of markup (as tests/test_markup.py plants them)."""
        now = utcnow()
        with session_scope() as session:
            client = clients.create_client(session, SYSTEM, HOSTILE)
            connector = _connector(client, "binance")
            connector.label = HOSTILE
            connector.status, connector.last_error = "error", HOSTILE
            session.add(connector)
            session.flush()
            cid = connector.id
            for taken_at in (now - timedelta(days=2), now - timedelta(hours=1)):
                session.add_all([BalanceSnapshot(connector_id=cid, taken_at=taken_at, asset=asset, free=1.0,
                                                 used=0.0, total=1.0) for asset in [*UNPRICED, PRICED]])
            session.add(Ticker(exchange_id="binance", symbol=f"{PRICED}/USDT", last=2.0, bid=2.0, ask=2.0,
                               timestamp=ms("2024-04-01")))
            session.add_all([
                Trade(connector_id=cid, trade_id="h1", timestamp=ms("2024-03-01"), symbol=f"{PRICED}/USDT",
                      base=PRICED, quote="USDT", side="buy", amount=2.0, price=1.0, cost=2.0, fee_cost=0.1,
                      fee_currency=LINK),
                Trade(connector_id=cid, trade_id="h2", timestamp=ms("2024-03-02"), symbol=f"{COLOUR}/USDT",
                      base=COLOUR, quote="USDT", side="sell", amount=1.0, price=1.0, cost=1.0),  # never bought
                Transfer(connector_id=cid, transfer_id="t1", type="deposit", currency=FORMULA, amount=5.0,
                         timestamp=int((now - timedelta(days=1)).timestamp() * 1000), status="ok"),
                Order(connector_id=cid, order_id="o1", timestamp=ms("2024-03-03"), symbol=f"{BOLD}/USDT",
                      side="buy", type="limit", price=1.0, amount=1.0, filled=0.0, remaining=1.0, status="open"),
                Position(connector_id=cid, symbol=f"{EMOJI}/USDT:USDT", side="long", contracts=1.0,
                         entry_price=1.0),
            ])
            users = {role: User(username=name, role=role, password_hash=hash_password(passwords[role]))
                     for role, name in USERNAMES.items()}
            locked = User(username=LOCKED, role="analyst", password_hash=None, locked_until=now + timedelta(days=1))
            session.add_all([*users.values(), locked])
            session.flush()
            session.add(UserClient(user_id=users["client"].id, client_id=client.id))

    return plant


# ---------------------------------------------------------------- helpers


def log_in(page: Page, app: App, username: str, password: str) -> None:
    """Through the login form, as a person would."""
    page.goto(app.url)
    wait_idle(page)
    page.get_by_label("Username", exact=True).fill(username)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("[data-testid='stSidebar']").get_by_text("Signed in as")).to_be_visible()
    wait_idle(page)


def drawn(page: Page) -> None:
    """Wait for what Streamlit draws after its run: plotly charts and the data grids' cells."""
    wait_idle(page)
    for chart in main(page).locator(".js-plotly-plot:visible").all():
        chart.locator(".main-svg").first.wait_for(state="attached")
    for grid in main(page).locator("[data-testid='stDataFrame']:visible").all():
        grid.locator("[role='gridcell']").first.wait_for(state="attached")


def check(page: Page, where: str) -> str:
    """Fail on any element made from the planted values; return the page's text."""
    drawn(page)
    found = page.evaluate(_MARKUP_FROM_DATA, FRAGMENTS)
    assert not found, f"{where}: markup created from data:\n" + "\n".join(found)
    return page.evaluate(_TEXT)


def visit(page: Page, title: str, where: str) -> str:
    """Open a page from the sidebar, then each of its tabs; check every state; all the text seen."""
    page.locator("[data-testid='stSidebarNav']").get_by_role("link", name=title, exact=True).click()
    wait_idle(page)
    named = re.compile(rf"^{re.escape(title)}( · .+)?$")  # the title names the page's scope after a dot
    expect(main(page).get_by_role("heading", name=named)).to_be_visible()
    seen = [check(page, where)]
    tabs = main(page).get_by_role("tab")
    for index in range(tabs.count()):
        tab = tabs.nth(index)
        tab.click()
        expect(tab).to_have_attribute("aria-selected", "true")
        if title == "Users" and tab.inner_text().strip() == "Edit user":  # the locked user's "Unlock" button
            choose(page, main(page).get_by_role("tabpanel"), "User", LOCKED)
        seen.append(check(page, f"{where}, tab {tab.inner_text().strip()!r}"))
    return "\n".join(seen)


# ---------------------------------------------------------------- the test


def test_every_page_as_every_role_shows_hostile_values_literally(browser: Browser, app: App,
                                                                 passwords: dict[str, str]) -> None:
    requested: list[str] = []
    visited: list[tuple[str, str]] = []
    for role, username in USERNAMES.items():
        context = browser.new_context(viewport=WIDE, locale="en-US", timezone_id="UTC")
        context.set_default_timeout(60_000)
        context.on("request", lambda request: requested.append(request.url))
        page = context.new_page()
        try:
            log_in(page, app, username, passwords[role])
            if role == "client":  # its one client, so charts group by connector label
                choose(page, page.locator("[data-testid='stSidebar']"), "Client", HOSTILE)
            for _section, _path, title, _icon, roles in shell.PAGES:
                if Role(role) not in roles:
                    continue
                where = f"{title} as {role}"
                text = visit(page, title, where)
                missing = [value for value in [username, *SHOWN[title]] if value not in text]
                assert not missing, f"{where}: planted values not shown literally: {missing}"
                visited.append((role, title))
        except BaseException:
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / f"hostile-{role}.png"), full_page=True)
            print(f"--- streamlit log (tail) ---\n{app.log_tail()}")
            raise
        finally:
            context.close()
    assert len(visited) == sum(len(roles) for *_rest, roles in shell.PAGES)  # every page each role may see
    evil = [url for url in requested if (urlsplit(url).hostname or "").endswith(EVIL_HOST)]
    assert not evil, f"the browser requested {evil}"
    assert requested, "requests were recorded"

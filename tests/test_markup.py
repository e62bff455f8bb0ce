"""No markup from data: names, labels, usernames, asset codes, symbols and exchange errors are
shown literally on every page, for every role, in Markdown, widget labels and plotly charts;
names with invisible characters are refused; CSV downloads neutralise formula cells.

Every page is rendered with AppTest over a database holding hostile values; every string a
Streamlit element reads as Markdown (bodies, labels, help, titles) is collected from the
element protos and must hold none of the hostile constructs unescaped.
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass
from datetime import timedelta

import pandas as pd
import pytest
from google.protobuf.descriptor import FieldDescriptor
from streamlit.testing.v1 import AppTest

from lib import clients
from lib.access import SYSTEM
from lib.db import session_scope
from lib.models import BalanceSnapshot, Order, Position, Ticker, Trade, Transfer, User, UserClient, utcnow
from lib.settings import PROJECT_ROOT
from lib.sync import ConnectorResult, RunReport
from lib.ui import format as fmt
from lib.ui import shell
from lib.validation import ValidationError, clean_text
from tests.test_queries import _connector, ms, seed_portfolio

HOSTILE = "[x](http://evil.test) ![i](http://evil.test/i.png) **b** $x^2$ :red[r] <b>h</b>"
#: Asset codes (at most 30 characters) an exchange could send; no "/" (it splits symbols).
LINK, IMAGE, BOLD, FORMULA, COLOUR, EMOJI, REVERSED = (
    "[x](http://evil.test)", "![i](http://evil.test)", "**b**", "$x^2$", ":red[r]", ":smile:", "\u202eCTB")
PRICED = "<b>H"  # priced by a ticker, so it reaches the charts
UNPRICED = [LINK, IMAGE, BOLD, FORMULA, COLOUR, EMOJI, REVERSED, "<b>h</b>"]
#: Hostile constructs as they would read unescaped (no backslash before them).
RAW = [re.compile(pattern) for pattern in (
    r"(?<!\\)\]\(http", r"(?<!\\)!(?<!\\)\[", r"(?<!\\)<b>", r"(?<!\\)\$x", r"(?<!\\):red\[r", r"(?<!\\)\*\*b\*\*",
    r"https?://", r"(?<!\\):smile:", "\u202e",
)]
#: Proto fields Streamlit renders as Markdown (select options are plain text: checked apart).
MARKDOWN_FIELDS = {"body", "label", "help", "title", "caption"}
PAGES = [path for _section, path, *_rest in shell.PAGES]


@dataclass(frozen=True)
class Hostile:
    client_id: int
    connector_id: int
    users: dict[str, int]


@pytest.fixture
def hostile(database_url: str) -> Hostile:
    """The seeded portfolio plus a client, connector, users and exchange data full of markup."""
    seed_portfolio()
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
            session.add_all([BalanceSnapshot(connector_id=cid, taken_at=taken_at, asset=asset, free=1.0, used=0.0,
                                             total=1.0) for asset in [*UNPRICED, PRICED]])
        session.add(Ticker(exchange_id="binance", symbol=f"{PRICED}/USDT", last=2.0, bid=2.0, ask=2.0,
                           timestamp=ms("2024-04-01")))
        session.add_all([
            Trade(connector_id=cid, trade_id="h1", timestamp=ms("2024-03-01"), symbol=f"{PRICED}/USDT", base=PRICED,
                  quote="USDT", side="buy", amount=2.0, price=1.0, cost=2.0, fee_cost=0.1, fee_currency=LINK),
            Trade(connector_id=cid, trade_id="h2", timestamp=ms("2024-03-02"), symbol=f"{COLOUR}/USDT", base=COLOUR,
                  quote="USDT", side="sell", amount=1.0, price=1.0, cost=1.0),  # sold, never bought: "unmatched"
            Transfer(connector_id=cid, transfer_id="t1", type="deposit", timestamp=int((now - timedelta(days=1))
                     .timestamp() * 1000), currency=FORMULA, amount=5.0, status="ok"),
            Order(connector_id=cid, order_id="o1", timestamp=ms("2024-03-03"), symbol=f"{BOLD}/USDT", side="buy",
                  type="limit", price=1.0, amount=1.0, filled=0.0, remaining=1.0, status="open"),
            Position(connector_id=cid, symbol=f"{EMOJI}/USDT:USDT", side="long", contracts=1.0, entry_price=1.0),
        ])
        users = {role: User(username=f"{role} {HOSTILE}", role=role, password_hash=None)
                 for role in ("admin", "analyst", "client")}
        users["client"].locked_until = now + timedelta(hours=1)  # so the Users page offers "Unlock <name>"
        session.add_all(users.values())
        session.flush()
        session.add(UserClient(user_id=users["client"].id, client_id=client.id))
        return Hostile(client.id, cid, {role: user.id for role, user in users.items()})


def _strings(message: object, found: list[str]) -> None:
    """The Markdown-read string fields of a proto, nested messages included."""
    for field, value in message.ListFields():  # type: ignore[attr-defined]
        repeated = getattr(field, "is_repeated", None)  # newer protobuf; older ones have field.label
        if repeated is None:
            repeated = field.label == FieldDescriptor.LABEL_REPEATED
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            value, repeated = list(value.values()), True
        values = value if repeated else [value]
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            for item in values:
                if hasattr(item, "ListFields"):
                    _strings(item, found)
        elif field.type == FieldDescriptor.TYPE_STRING and field.name in MARKDOWN_FIELDS:
            found.extend(values)


def markdown_sources(at: AppTest) -> list[str]:
    found: list[str] = []

    def walk(node: object) -> None:
        if (proto := getattr(node, "proto", None)) is not None:
            _strings(proto, found)
        for child in getattr(node, "children", {}).values():
            walk(child)

    walk(at._tree)  # noqa: SLF001 - every element, blocks (expanders, status) included
    return found


def plotly_specs(at: AppTest) -> list[str]:
    """Each figure's strings (its JSON escapes "<" and "/"), one text per chart."""
    texts = []
    for chart in at.get("plotly_chart"):
        found: list[str] = []

        def walk(value: object, found: list[str] = found) -> None:
            if isinstance(value, str):
                found.append(value)
            elif isinstance(value, dict):
                for item in value.values():
                    walk(item)
            elif isinstance(value, list):
                for item in value:
                    walk(item)

        walk(json.loads(chart.proto.spec))
        texts.append("\n".join(found))
    return texts


def assert_literal(at: AppTest) -> list[str]:
    """No element's Markdown would build a link, image, emphasis, formula, colour, HTML or emoji
    from the data, no chart text holds raw HTML, and select options show invisible characters."""
    assert not at.exception, [e.value for e in at.exception]
    sources = markdown_sources(at)
    for source in sources:
        for raw in RAW:
            assert not raw.search(source), (raw.pattern, source)
    for spec in plotly_specs(at):
        assert "<b>" not in spec and "\u202e" not in spec and "$x" not in spec, spec
    for widget in [*at.selectbox, *at.multiselect]:
        assert not any("\u202e" in option for option in widget.options), widget.options
    return sources


def open_page(path: str, user_id: int, **state: object) -> AppTest:
    at = AppTest.from_file(str(PROJECT_ROOT / path), default_timeout=120)
    at.session_state["auth_user_id"] = user_id
    for key, value in state.items():
        at.session_state[key] = value
    return at.run()


@pytest.mark.parametrize("role", ["admin", "analyst", "client"])
@pytest.mark.parametrize("path", PAGES)
def test_every_page_shows_hostile_data_literally(hostile: Hostile, path: str, role: str) -> None:
    at = open_page(path, hostile.users[role])
    sources = assert_literal(at)
    shown = "\n".join(sources)
    if path.endswith("operations/sync.py"):  # the account and its stored last error: plain text in the table
        listed = next(frame.value for frame in at.dataframe if "Last sync" in frame.value.columns)
        assert any(account.count(fmt.visible(HOSTILE)) == 2 for account in listed["Account"])  # client, label
        assert any(fmt.visible(HOSTILE) in text for text in listed["Last sync"])  # the stored last error
    if path.endswith(("overview.py", "balances.py")):
        assert fmt.literal(LINK) in shown and "Unpriced" in shown
        assert "\\\\u202eCTB" in shown  # the override made visible, not applied
    if path.endswith("pnl.py"):
        unmatched = [text for text in sources if "no acquisition on record" in text]
        assert len(unmatched) == 1 and f"{fmt.literal(COLOUR)} " in unmatched[0]  # one notice names the asset
        assert fmt.literal(FORMULA) in shown  # unpriced deposit


def test_sidebar_shows_the_username_literally(hostile: Hostile) -> None:
    at = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=120)
    at.session_state["auth_user_id"] = hostile.users["analyst"]
    at.run()
    sources = assert_literal(at)
    assert f"Signed in as **{fmt.literal('analyst ' + HOSTILE)}** (analyst)" in sources
    assert fmt.visible(HOSTILE) in at.sidebar.selectbox[0].options  # options are plain text, shown as typed


def test_charts_carry_escaped_text(hostile: Hostile) -> None:
    overview = open_page("pages/portfolio/overview.py", hostile.users["admin"])
    assert len(plotly_specs(overview)) == 2 and "Equity" in plotly_specs(overview)[0]  # the open tab's chart first
    overview.session_state["overview_value_tab"] = "Allocation over time"
    specs = plotly_specs(overview.run())
    assert len(specs) == 2 and "Allocation over time" in specs[0]
    assert all("&lt;b&gt;H" in spec for spec in specs)  # allocation over time and now
    assert any("&lt;b&gt;h&lt;/b&gt;" in spec and "&#36;x^2&#36;" in spec for spec in specs)  # client name
    pnl = open_page("pages/portfolio/pnl.py", hostile.users["admin"], client=hostile.client_id)
    equity = [json.loads(chart.proto.spec) for chart in pnl.get("plotly_chart") if "Equity" in chart.proto.spec]
    assert equity, "the equity chart is drawn"
    deposits = [trace for trace in equity[0]["data"] if trace.get("name") == "Deposits"]
    (said,) = deposits[0]["text"]  # amount, currency, value and account, every name escaped
    assert said.startswith("Deposit 5") and "&#36;x^2&#36; (unpriced) · " in said and "<b>" not in said
    assert said.endswith("&lt;b&gt;h&lt;/b&gt;") and " · binance / " in said


def test_admin_forms_flash_and_labels_show_names_literally(hostile: Hostile) -> None:
    page = "pages/admin/clients.py"
    at = open_page(page, hostile.users["admin"])
    next(w for w in at.selectbox if w.label == "Manage client").set_value(hostile.client_id)
    at.run()
    sources = assert_literal(at)
    assert any(label.startswith(f"Yes, delete '{fmt.literal(HOSTILE)}'") for label in sources)
    next(w for w in at.text_input if w.label == "New client name").input("new " + HOSTILE)
    next(b for b in at.button if b.label == "Create client").click()
    at.run()
    assert f"Client '{fmt.literal('new ' + HOSTILE)}' created." in assert_literal(at)
    next(w for w in at.text_input if w.label == "New client name").input("new " + HOSTILE)  # a duplicate
    next(b for b in at.button if b.label == "Create client").click()
    at.run()
    assert at.error and assert_literal(at)

    users = open_page("pages/admin/users.py", hostile.users["admin"], users_edit_pick=hostile.users["client"])
    sources = assert_literal(users)
    assert f"Unlock {fmt.literal('client ' + HOSTILE)}" in sources
    next(w for w in users.text_input if w.label == "Username").input("new " + HOSTILE)
    next(w for w in users.text_input if w.label == "Email").input("new@example.test")  # single sign-on only
    next(b for b in users.button if b.label == "Add user").click()
    users.run()
    assert f"User '{fmt.literal('new ' + HOSTILE)}' added." in assert_literal(users)


def test_force_sync_lines_show_names_and_errors_literally(hostile: Hostile, monkeypatch: pytest.MonkeyPatch) -> None:
    from lib.ui import sync_widgets

    def fake_sync(viewer: object, **options: object) -> RunReport:
        """One failed and one skipped connector, reported the way the runner reports them."""
        results = [ConnectorResult(hostile.connector_id, HOSTILE, "binance", HOSTILE, False, error=HOSTILE),
                   ConnectorResult(hostile.connector_id, HOSTILE, "binance", HOSTILE, False, error=HOSTILE,
                                   skipped=True)]
        for done, result in enumerate(results, start=1):
            options["on_progress"](done, len(results), result)  # type: ignore[operator]
        return RunReport(None, results)

    monkeypatch.setattr(sync_widgets, "sync_connectors", fake_sync)
    at = open_page("pages/operations/sync.py", hostile.users["analyst"])
    next(b for b in at.button if b.label == "Force sync: everything").click()
    at.run()
    sources = assert_literal(at)
    name = fmt.literal(f"{HOSTILE} · binance / {HOSTILE}")
    assert f":red[✗] {name}: {fmt.literal(HOSTILE)}" in sources
    assert f":gray[{name}: {fmt.literal(HOSTILE)}]" in sources


# --------------------------------------------------------------------------- the helpers alone


def _reads(source: str) -> str:
    """What a reader sees of escaped Markdown text: escapes resolved, word joiners drawn as nothing."""
    return re.sub(r"\\(.)", r"\1", source).replace(fmt.WORD_JOINER, "")


@pytest.mark.parametrize("text", [
    HOSTILE, "- item", "+ item", "12. item", "3) item", "===", "# heading", "> quote", "`code`", "~~gone~~",
    "a | b", "&lt;tag&gt;", ":material/home: :streamlit:", "www.evil.test and mail@evil.test", "a -> b <= c",
    "back\\slash", "Login failed: try again", "\u202eCTB B\u200bTC",
])
def test_literal_reads_as_the_text(text: str) -> None:
    source = fmt.literal(text)
    assert _reads(source) == fmt.visible(text)
    for raw in RAW:
        assert not raw.search(source)
    assert not re.search(r"(?<!\\):\w", source) and "www." not in source and "@e" not in source
    assert not re.match(r"\s*([-+=#>]|\d+[.)])", source)  # no list, heading, quote or rule at a line start


def test_visible_writes_out_invisible_and_direction_characters() -> None:
    assert fmt.visible("B\u200bTC\u202e\U000e0041") == "B\\u200bTC\\u202e\\U000e0041"
    assert fmt.visible("Ünïcødé BTC") == "Ünïcødé BTC"


def test_the_quick_check_for_invisible_characters_agrees_with_the_rule_on_every_code_point() -> None:
    """``validation.has_invisible`` answers printable text at C speed; for every character, alone
    and inside printable text, it must say what ``is_invisible`` says."""
    from lib.validation import has_invisible, is_invisible

    for point in range(0x110000):
        ch = chr(point)
        assert has_invisible(ch) == is_invisible(ch) == has_invisible(f"BTC{ch}USDT"), hex(point)


def test_chart_text_escapes_plotly_html_and_mathjax() -> None:
    assert fmt.chart_text("<b>x</b> & $y$") == "&lt;b&gt;x&lt;/b&gt; &amp; &#36;y&#36;"


def test_csv_bytes_neutralises_formula_cells_only() -> None:
    frame = pd.DataFrame({
        "text": ["=HYPERLINK(\"http://evil.test\",\"x\")", "+1", "-2", "@SUM(A1)", "\tq", "\rq", "BTC", None],
        "number": [-1.5, 2.0, -3.0, 4.0, 5.0, 6.0, 7.0, 8.0],
    })
    back = pd.read_csv(io.BytesIO(fmt.csv_bytes(frame)), keep_default_na=False)
    assert list(back["text"]) == ["'=HYPERLINK(\"http://evil.test\",\"x\")", "'+1", "'-2", "'@SUM(A1)", "'\tq",
                                  "'\rq", "BTC", ""]
    assert list(back["number"]) == [-1.5, 2.0, -3.0, 4.0, 5.0, 6.0, 7.0, 8.0]  # numbers untouched


@pytest.mark.parametrize("name", ["\u200b", " \u2060\u200d ", "\u3164", "\u00a0"])
def test_names_empty_once_invisible_characters_are_removed_are_refused(name: str) -> None:
    with pytest.raises(ValidationError, match="must not be empty"):
        clean_text(name, "name", 100)


@pytest.mark.parametrize("name", ["Acme\u202e", "Ac\u200bme", "\u2066Acme\u2069", "Acme\u200f", "A\u00adcme"])
def test_names_with_zero_width_or_direction_characters_are_refused(name: str) -> None:
    with pytest.raises(ValidationError, match="zero-width or text-direction") as refused:
        clean_text(name, "name", 100)
    assert "U+" in str(refused.value)


def test_names_are_nfkc_normalised() -> None:
    assert clean_text("  Ａｃｍｅ ﬁnance  ", "name", 100) == "Acme finance"


def test_client_page_refuses_an_invisible_name(hostile: Hostile) -> None:
    at = open_page("pages/admin/clients.py", hostile.users["admin"])
    next(w for w in at.text_input if w.label == "New client name").input("Ac\u200bme")
    next(b for b in at.button if b.label == "Create client").click()
    at.run()
    assert any("U+200B" in e.value for e in at.error)
    with session_scope() as session:
        assert "Ac\u200bme" not in [c.name for c in clients.list_clients(session, SYSTEM)]


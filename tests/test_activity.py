"""lib.activity and the Activity page: volume, maker share and fees against hand-computed values on
seeded fills (PNL.md's vector on Alpha, plus a maker fill and a fill whose quote has no price);
unpriced currencies named; role scoping; the pages render numbers as numbers; hostile text stays text."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from decimal import Decimal

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from lib import activity
from lib.db import session_scope
from lib.models import Trade
from lib.ui import charts, scope
from lib.ui import format as fmt
from tests.test_pages_portfolio import metric, open_page, texts, widget
from tests.test_queries import Seeded, ms, seed_portfolio

#: Alpha's vector at the candle closes of the fill days (T4, T7 in BTC; fees in BTC and BNB):
#: 40000 + 600 + 22000 + 0.5 x 50000 + 31200 + 12000 + 0.165 x 60000, plus the maker fill's 5000
VOLUME = Decimal(145700)
#: 0.001 x 40000 + 0.6 + 0.05 x 320 + 0.0005 x 50000 + 31.2 + 0.02 x 400 + 0.000165 x 60000, plus 1 USDT
FEES = Decimal("131.7")
HOSTILE = "<b>[x](http://e.test)</b>"


@pytest.fixture
def seeded(database_url: str) -> Seeded:
    seeded = seed_portfolio()
    with session_scope() as session:
        session.add_all([
            Trade(connector_id=seeded.alpha_binance, trade_id="M1", timestamp=ms("2024-02-01"), symbol="BTC/USDT",
                  base="BTC", quote="USDT", side="sell", taker_or_maker="maker", amount="0.1", price="50000",
                  cost="5000", fee_cost="1", fee_currency="USDT"),
            # no candle prices XYZ nor ABC: the fill is left out of the volume, its fee out of the fees
            Trade(connector_id=seeded.alpha_binance, trade_id="U1", timestamp=ms("2024-02-05"), symbol="ABC/XYZ",
                  base="ABC", quote="XYZ", side="buy", taker_or_maker=None, amount="7", price="1", cost="7",
                  fee_cost="0.1", fee_currency="ABC"),
        ])
    return seeded


def report(seeded: Seeded, role: str = "admin", start: str | None = None, end: str | None = None,
           client_id: int | None = None) -> activity.ActivityReport:
    moment = {None: None} | {d: datetime.fromisoformat(d).replace(tzinfo=UTC) for d in (start, end) if d}
    with session_scope() as session:
        return activity.activity_report(session, seeded.viewer(role), moment[start], moment[end], client_id)


def test_volume_fees_and_maker_share_match_the_hand_computed_values(seeded: Seeded) -> None:
    alpha = report(seeded, client_id=seeded.alpha)
    assert alpha.fills == 9
    assert alpha.volume_usd == VOLUME and isinstance(alpha.volume_usd, Decimal)
    assert alpha.fees_usd == FEES
    assert alpha.average_fill_usd == pytest.approx(float(VOLUME) / 8)  # the unpriced fill has no size in USD
    assert alpha.maker_share == pytest.approx(5000 / 145700)
    maker = alpha.maker.set_index("role")
    assert maker["fills"].to_dict() == {"maker": 1, "taker": 7, "unknown": 1}
    assert maker.loc["unknown", "fill_share"] == pytest.approx(1 / 9)
    assert alpha.unknown_role_fills == 1
    sides = alpha.sides.set_index("side")["volume_usd"]
    assert sides["buy"] == pytest.approx(40000 + 600 + 22000 + 25000)
    assert sides["sell"] == pytest.approx(31200 + 12000 + 9900 + 5000)
    market = alpha.by_market.set_index("symbol")
    assert market.loc["ETH/BTC", "volume_usd"] == pytest.approx(25000 + 9900)
    assert math.isnan(market.loc["ABC/XYZ", "volume_usd"])  # unpriced, not $0
    day = alpha.by_day.set_index("day")
    assert day.loc[pd.Timestamp("2024-02-01", tz="UTC"), "volume_usd"] == pytest.approx(25000 + 5000)
    assert alpha.by_exchange["volume_usd"].sum() == pytest.approx(float(VOLUME))
    fees = alpha.fees.set_index("currency")
    assert fees.loc["BTC", "amount"] == Decimal("0.001665")  # exact, in the fee's own currency
    assert fees.loc["BNB", "fees_usd"] == pytest.approx(0.05 * 320 + 0.02 * 400)
    assert math.isnan(fees.loc["ABC", "fees_usd"])
    assert alpha.unpriced_quotes == ["XYZ"] and alpha.unpriced_fees == ["ABC"]


def test_period_counts_only_its_fills_and_orders(seeded: Seeded) -> None:
    february = report(seeded, start="2024-02-01", end="2024-03-01", client_id=seeded.alpha)
    assert february.fills == 4  # T4, T5, M1, U1
    assert february.volume_usd == Decimal(25000 + 31200 + 5000)
    assert february.fees_usd == Decimal("57.2")  # 25 + 31.2 + 1
    assert february.orders == 0  # the open order was placed now
    assert report(seeded, client_id=seeded.alpha).orders == 1
    with pytest.raises(ValueError, match="start must be before"):
        report(seeded, start="2024-03-01", end="2024-02-01")


def test_the_kept_report_and_totals_are_the_computed_ones_until_new_data(seeded: Seeded,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """What the pages read from disk (made by the worker or a first view) is the report itself: every
    frame with its dtypes, the exact amounts as ``Decimal``; a new fill makes it again."""
    admin = seeded.viewer("admin")
    with session_scope() as session:
        computed = activity.activity_report(session, admin, None, None, seeded.alpha)
        totals = activity.fill_totals(session, admin, None, None, seeded.alpha, None, None, "sell")
    activity.cached_activity_report(admin, None, None, seeded.alpha)
    activity.cached_fill_totals(admin, None, None, seeded.alpha, None, None, "sell")
    with monkeypatch.context() as patch:  # a second read computes nothing
        patch.setattr(activity, "activity_report", lambda *a, **k: pytest.fail("computed again"))
        patch.setattr(activity, "fill_totals", lambda *a, **k: pytest.fail("computed again"))
        kept = activity.cached_activity_report(admin, None, None, seeded.alpha)
        assert activity.cached_fill_totals(admin, None, None, seeded.alpha, None, None, "sell") == totals
    for name in activity._REPORT_FRAMES:
        pd.testing.assert_frame_equal(getattr(kept, name), getattr(computed, name), check_exact=True)
    for name in ("fills", "orders", "volume_usd", "fees_usd", "average_fill_usd", "unpriced_quotes", "unpriced_fees"):
        assert getattr(kept, name) == getattr(computed, name), name
    assert isinstance(kept.volume_usd, Decimal) and kept.volume_usd == VOLUME
    assert [type(a) for a in kept.fees["amount"]] == [Decimal] * len(kept.fees)
    with session_scope() as session:
        session.add(Trade(connector_id=seeded.alpha_binance, trade_id="N1", timestamp=ms("2024-02-07"),
                          symbol="BTC/USDT", base="BTC", quote="USDT", side="sell", taker_or_maker="maker",
                          amount="0.01", price="50000", cost="500", fee_cost="0.5", fee_currency="USDT"))
    assert activity.cached_activity_report(admin, None, None, seeded.alpha).volume_usd == VOLUME + 500
    assert activity.cached_fill_totals(admin, None, None, seeded.alpha, None, None, "sell").fills == totals.fills + 1


def test_client_role_sees_only_its_client(seeded: Seeded) -> None:
    own = report(seeded, role="client")
    assert own.volume_usd == VOLUME
    assert report(seeded, role="client", client_id=seeded.beta).fills == 0  # as for an id that does not exist
    with session_scope() as session:
        staff = activity.volume_and_fees(session, seeded.viewer("analyst"), None, None)
        client = activity.volume_and_fees(session, seeded.viewer("client"), None, None)
    rows = staff.set_index("client")
    assert rows.loc["Beta", "volume_usd"] == pytest.approx(60.0) and rows.loc["Beta", "fees_usd"] == pytest.approx(0.06)
    assert rows.loc["Alpha", "volume_usd"] == pytest.approx(float(VOLUME))
    assert rows.loc["Alpha", "unpriced"] == "ABC, XYZ"
    assert list(client["client"]) == ["Alpha"]


def test_activity_page_shows_the_figures_with_numeric_columns(seeded: Seeded) -> None:
    at = open_page("activity", seeded.users["admin"], client_id=seeded.alpha)
    widget(at.selectbox, "Period (UTC)").select("All history")
    at.run()
    assert not at.exception
    assert metric(at, "Volume") == fmt.money(float(VOLUME))  # 11 characters: a quarter-width card shows it all
    assert metric(at, "Fees") == fmt.money(float(FEES))
    assert metric(at, "Fills") == "9"
    assert "left out of the maker share" in texts(at) and "XYZ" in texts(at)
    markets = at.dataframe[0].value
    for column in ("Fills", "Volume (USD)", "Bought (USD)", "Fees (USD)"):
        assert pd.api.types.is_numeric_dtype(markets[column]), column
    assert markets["Volume (USD)"].max() == pytest.approx(93200 + 5000)  # BTC/USDT sorts first, numerically


def test_client_user_page_names_only_its_client(seeded: Seeded) -> None:
    at = open_page("activity", seeded.users["client"])
    widget(at.selectbox, "Period (UTC)").select("All history")
    at.run()
    assert metric(at, "Volume") == fmt.money(float(VOLUME))  # 11 characters: a quarter-width card shows it all
    assert "XYZ/USDT" not in at.dataframe[0].value["Market"].tolist()  # Beta's market


def test_activity_drawings_are_kept_per_viewer_and_drawn_again_after_a_write(seeded: Seeded) -> None:
    def opened(role: str) -> AppTest:
        at = open_page("activity", seeded.users[role])
        widget(at.selectbox, "Period (UTC)").select("All history")
        return at.run()

    def exchanges(at: AppTest) -> list[str]:
        spec = next(json.loads(c.proto.spec) for c in at.get("plotly_chart") if "Volume by exchange" in c.proto.spec)
        return spec["data"][0]["y"]

    def fills(at: AppTest, market: str, exchange: str) -> int:
        table = at.dataframe[0].value
        rows = table[(table["Market"].str.extract(scope._SHOWN.pattern)[0] == market) & (table["Exchange"] == exchange)]
        return int(rows["Fills"].iloc[0])

    def counted(at: AppTest) -> set[int]:
        """The Fills card, the maker / taker table's and the fees table's fills (every seeded fill has a fee)."""
        return {int(metric(at, "Fills")), int(at.dataframe[1].value["Fills"].sum()),
                int(at.dataframe[2].value["Fills"].sum())}

    admin = opened("admin")
    before = fills(admin, "BTC/USDT", "binance")
    assert "okx" in exchanges(admin) and fills(admin, "XYZ/USDT", "okx") > 0 and counted(admin) == {12}
    client = opened("client")  # the same process's cache, the same picks
    assert "okx" not in exchanges(client)  # Beta's exchange
    assert "XYZ/USDT" not in client.dataframe[0].value["Market"].str.extract(scope._SHOWN.pattern)[0].tolist()
    assert counted(client) == {9}  # Alpha's fills alone
    with session_scope() as session:  # a new fill: a new write version, one more fill in the market
        session.add(Trade(connector_id=seeded.alpha_binance, trade_id="N1", timestamp=ms("2024-02-07"),
                          symbol="BTC/USDT", base="BTC", quote="USDT", side="sell", taker_or_maker="maker",
                          amount="0.01", price="50000", cost="500", fee_cost="0.5", fee_currency="USDT"))
    admin.run()
    assert fills(admin, "BTC/USDT", "binance") == before + 1  # the kept tables are not shown after the write
    assert counted(admin) == {13}
    assert not admin.exception and not client.exception


def test_hostile_symbol_text_stays_literal(seeded: Seeded) -> None:
    with session_scope() as session:
        session.add(Trade(connector_id=seeded.alpha_binance, trade_id="H1", timestamp=ms("2024-02-06"),
                          symbol=f"{HOSTILE}/$Q$", base=HOSTILE, quote="$Q$", side="buy", amount="1", price="1",
                          cost="1", fee_cost="0", fee_currency=None))
    at = open_page("activity", seeded.users["admin"])
    widget(at.selectbox, "Period (UTC)").select("All history")
    at.run()
    shown = at.dataframe[0].value["Market"].str.extract(scope._SHOWN.pattern)[0]  # a link showing the text itself
    assert f"{HOSTILE}/$Q$" in shown.tolist()
    assert fmt.literal("$Q$") in texts(at)  # named as unpriced, escaped
    figure = charts.volume_bars(pd.DataFrame({"exchange_id": [HOSTILE], "volume_usd": [1.0]}), "exchange_id", "t")
    assert list(figure.data[0].y) == [fmt.chart_text(HOSTILE)] and "<b>" not in figure.data[0].y[0]


def test_trades_orders_and_pnl_pages_show_usd(seeded: Seeded) -> None:
    trades = open_page("trades", seeded.users["admin"], client_id=seeded.alpha)
    assert metric(trades, "Fills") == "9"
    assert metric(trades, "Volume (USD)") == fmt.money(float(VOLUME))
    assert metric(trades, "Fees (USD)") == fmt.money(float(FEES))
    table = trades.dataframe[0].value
    assert pd.api.types.is_float_dtype(table["USD notional"])
    assert sorted(table["USD notional"].dropna()) == sorted([40000, 600, 22000, 25000, 31200, 12000, 9900, 5000])
    widget(trades.selectbox, "Side").select("sell")
    trades.run()
    assert metric(trades, "Volume (USD)") == fmt.money(31200 + 12000 + 9900 + 5000)
    orders = open_page("orders", seeded.users["admin"])
    open_orders = orders.dataframe[0].value.set_index("Symbol")
    assert open_orders.loc["BTC/USDT", "USD value"] == pytest.approx(0.1 * 60000)
    positions = orders.dataframe[1].value.set_index("Symbol")
    assert positions.loc["BTC/USDT:USDT", "Base quantity"] == pytest.approx(0.001)
    assert positions.loc["BTC/USDT:USDT", "USD notional"] == pytest.approx(64.0)
    assert math.isnan(positions.loc["ETH/USDT:USDT", "Base quantity"])  # no contract size reported
    pnl = open_page("pnl", seeded.users["admin"])
    assert metric(pnl, activity.REPORTED_UNREALIZED) == "+$4.00"


def _cents(value: object) -> int:
    """A shown USD figure in whole cents; it must be whole cents already, not rounded only for display."""
    scaled = float(value) * 100  # type: ignore[arg-type]
    assert abs(scaled - round(scaled)) < 1e-6, value
    return round(scaled)


def test_to_cents_rounds_half_away_from_zero_as_the_decimal_text_reads() -> None:
    cents = activity.to_cents(pd.Series([1.015, 0.005, -0.005, 2.675, 10.004999, float("nan")]))
    assert list(cents[:5]) == [102, 1, -1, 268, 1000] and math.isnan(cents[5])
    assert activity.cents_total(cents) == Decimal("13.70")
    shares = activity.allocate_cents(pd.Series([0.333, 0.333, 0.334, float("nan")]), Decimal("1.00"))
    assert [_cents(v) for v in shares[:3]] == [33, 33, 34] and math.isnan(shares[3])
    halves = [_cents(v) for v in activity.allocate_cents(pd.Series([0.005, 0.005, 0.0]), Decimal("0.01"))]
    assert sorted(halves) == [0, 0, 1] and halves[2] == 0  # a cent taken off a row rounded up, never below 0
    # every row rounded down and a cent too many: it comes off a row with volume, not the empty one
    # (the demo's maker/taker table showed "unknown: 0 fills, -$0.01")
    roles = [_cents(v) for v in activity.allocate_cents(pd.Series([1.004, 2.004, 0.0]), Decimal("2.99"))]
    assert sum(roles) == 299 and roles[2] == 0 and min(roles) >= 0


def test_sub_cent_fees_are_not_rounded_away_fill_by_fill(seeded: Seeded) -> None:
    """A market maker's $0.004 fees: a thousand of them are $4, not $0."""
    with session_scope() as session:
        session.add_all([Trade(connector_id=seeded.alpha_binance, trade_id=f"S{n}", timestamp=ms("2025-03-02") + n,
                               symbol="XRP/USDT", base="XRP", quote="USDT", side="buy", taker_or_maker="maker",
                               amount="1", price="4.004", cost="4.004", fee_cost="0.004", fee_currency="USDT")
                         for n in range(1000)])
    small = report(seeded, start="2025-03-01", end="2025-04-01", client_id=seeded.alpha)
    assert (small.volume_usd, small.fees_usd) == (Decimal("4004.00"), Decimal("4.00"))
    assert small.maker.set_index("role").loc["maker", "volume_usd"] == 4004.0


def test_rows_and_totals_foot_to_the_cent_and_every_page_adds_the_same_cents(seeded: Seeded) -> None:
    """Half-cent values, where rounding each figure on its own makes rows and totals disagree: each
    cell (account, market, side, fee currency, day) is rounded to the cent once and every row, total
    and page adds those cents."""
    half = [("H1", "2025-01-02", "XRP/USDT", "buy", "10.005"), ("H2", "2025-01-03", "XRP/USDT", "sell", "10.005"),
            ("H3", "2025-01-03", "DOGE/USDT", "buy", "0.015")]
    with session_scope() as session:
        for trade_id, day, symbol, side, cost in half:  # each fee $0.005
            session.add(Trade(connector_id=seeded.alpha_binance, trade_id=trade_id, timestamp=ms(day), symbol=symbol,
                              base=symbol.split("/")[0], quote="USDT", side=side, taker_or_maker="maker",
                              amount="1", price=cost, cost=cost, fee_cost="0.005", fee_currency="USDT"))
        session.add(Trade(connector_id=seeded.beta_okx, trade_id="H4", timestamp=ms("2025-01-04"),
                          symbol="XYZ/USDT", base="XYZ", quote="USDT", side="buy", taker_or_maker="taker",
                          amount="1", price="0.005", cost="0.005", fee_cost="0.005", fee_currency="USDT"))
    alpha = report(seeded, start="2025-01-01", end="2025-02-01", client_id=seeded.alpha)
    assert (alpha.volume_usd, alpha.fees_usd) == (Decimal("20.04"), Decimal("0.03"))  # 10.01 + 10.01 + 0.02
    market = alpha.by_market.set_index("symbol")
    assert [_cents(market.loc["XRP/USDT", c]) for c in ("volume_usd", "buy_usd", "sell_usd", "fees_usd")] == [
        2002, 1001, 1001, 2]
    for table in (alpha.by_market, alpha.by_exchange):
        for row in table.itertuples():
            assert _cents(row.buy_usd) + _cents(row.sell_usd) == _cents(row.volume_usd)  # a row foots
        assert sum(map(_cents, table["fees_usd"])) == 3
    for table in (alpha.by_market, alpha.by_exchange, alpha.by_day, alpha.sides, alpha.maker):
        assert sum(map(_cents, table["volume_usd"])) == 2004
    assert [_cents(v) for v in alpha.fees["fees_usd"]] == [3]  # fees by currency: USDT
    admin = seeded.viewer("admin")
    start, end = datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 2, 1, tzinfo=UTC)
    everyone = report(seeded, start="2025-01-01", end="2025-02-01")
    assert (everyone.volume_usd, everyone.fees_usd) == (Decimal("20.05"), Decimal("0.04"))
    with session_scope() as session:  # the Clients page's rows and the Trades page's totals: the same cents
        clients = activity.volume_and_fees(session, admin, start, end).set_index("client_id")
        totals = activity.fill_totals(session, admin, start, end, seeded.alpha)
    assert [_cents(clients.loc[seeded.alpha, c]) for c in ("volume_usd", "fees_usd")] == [2004, 3]
    assert sum(map(_cents, clients["volume_usd"])) == 2005 and sum(map(_cents, clients["fees_usd"])) == 4
    assert (_cents(totals.volume_usd), _cents(totals.fees_usd)) == (2004, 3)

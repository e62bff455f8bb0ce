"""Orders & positions: an order without a fee of its own shows its synced fills' fees (per currency,
never two currencies added), Cost carries its currency, the exchange-reported unrealized P&L is
summed per settlement currency ("$" only over USD-like ones) here and on P&L, and the Account
links say where they lead."""

from __future__ import annotations

from decimal import Decimal

import pandas as pd
import pytest

from lib import activity, queries
from lib.db import session_scope
from lib.models import OrderHistory, Position, Trade
from lib.ui import format as fmt
from tests import table_cells
from tests.test_pages_portfolio import metric, open_page, texts
from tests.test_queries import Seeded, ms, seed_portfolio


def _order(connector_id: int, order_id: str, day: str, symbol: str, cost: float, fee: float | None = None,
           fee_currency: str | None = None) -> OrderHistory:
    return OrderHistory(connector_id=connector_id, order_id=order_id, timestamp=ms(day), last_update=ms(day) + 1000,
                        symbol=symbol, side="buy", type="limit", status="closed", price=1.0, average=1.0,
                        amount=1.0, filled=1.0, cost=cost, fee_cost=fee, fee_currency=fee_currency)


def _fill(connector_id: int, trade_id: str, order_id: str, day: str, fee: str, fee_currency: str) -> Trade:
    return Trade(connector_id=connector_id, trade_id=trade_id, order_id=order_id, timestamp=ms(day) + 500,
                 symbol="BTC/USDT", base="BTC", quote="USDT", side="buy", amount=0.1, price=40000.0, cost=4000.0,
                 fee_cost=Decimal(fee), fee_currency=fee_currency)


@pytest.fixture
def seeded(database_url: str) -> Seeded:
    """``seed_portfolio`` with Binance orders that report no fee (their fills do), an order that
    reports its own, one with neither, and a coin-settled position."""
    seeded = seed_portfolio()
    binance = seeded.alpha_binance
    with session_scope() as session:
        session.add_all([
            _order(binance, "bnb-fees", "2024-05-01", "BTC/USDT", 12000.0),
            _fill(binance, "F1", "bnb-fees", "2024-05-01", "0.0043", "BNB"),
            _fill(binance, "F2", "bnb-fees", "2024-05-01", "0.0043", "BNB"),
            _fill(binance, "F3", "bnb-fees", "2024-05-01", "0.0043", "BNB"),
            _order(binance, "mixed-fees", "2024-05-02", "BTC/USDT", 8000.0),
            _fill(binance, "F4", "mixed-fees", "2024-05-02", "0.0043", "BNB"),
            _fill(binance, "F5", "mixed-fees", "2024-05-02", "1.2", "USDT"),
            _fill(seeded.beta_okx, "F6", "mixed-fees", "2024-05-02", "9", "USDT"),  # another account's order
            _order(binance, "own-fee", "2024-05-03", "ETH/BTC", 0.5, fee=0.0005, fee_currency="BTC"),
            _fill(binance, "F7", "own-fee", "2024-05-03", "0.0043", "BNB"),  # the order's own figure wins
            _order(binance, "unknown-fee", "2024-05-04", "BTC/USDT", 4000.0),
            Position(connector_id=seeded.alpha_binance, symbol="BTC/USD:BTC", side="long", contracts=100.0,
                     contract_size=100.0, mark_price=64000.0, unrealized_pnl=Decimal("0.0012")),
        ])
    return seeded


def _history(seeded: Seeded) -> tuple[pd.DataFrame, dict]:
    at = open_page("orders", seeded.users["admin"])
    element = next(frame for frame in at.dataframe if "Status" in frame.value.columns)
    return table_cells.shown(element).set_index("Order ID"), table_cells.config(element)


def test_fee_of_an_order_without_one_is_its_fills_fees(seeded: Seeded) -> None:
    table, config = _history(seeded)
    assert table.loc["bnb-fees", "Fee"] == "0.0129 BNB (from 3 fill(s))"  # not "—", which reads as fee-free
    assert table.loc["mixed-fees", "Fee"] == "0.0043 BNB + 1.2 USDT (from 2 fill(s))"  # listed, never added
    assert table.loc["own-fee", "Fee"] == "0.0005 BTC"
    assert table.loc["unknown-fee", "Fee"] == "—"
    help_text = next(column for column in config.values() if column.get("label") == "Fee")["help"]
    assert "fills synced here" in help_text and "— : neither" in help_text
    with session_scope() as session:  # the CSV's cell
        rows = queries.order_history(session, seeded.viewer("admin"), connector_id=seeded.alpha_binance)
    assert str(rows.set_index("order_id").loc["bnb-fees", "fill_fees"]) == "0.0129 BNB"


def test_cost_shows_its_currency(seeded: Seeded) -> None:
    table, config = _history(seeded)
    assert table.loc["bnb-fees", "Cost"] == "12,000 USDT"
    assert table.loc["own-fee", "Cost"] == "0.5 BTC"  # another quote in the same column
    assert "quote currency" in next(column for column in config.values() if column.get("label") == "Cost")["help"]


def test_account_links_say_they_open_balances(seeded: Seeded) -> None:
    at = open_page("orders", seeded.users["admin"])
    for element in at.dataframe:
        account = next(column for column in table_cells.config(element).values() if column.get("label") == "Account")
        assert account["help"] == "This account's Balances."


def test_reported_unrealized_is_summed_per_settlement_currency(seeded: Seeded) -> None:
    assert activity.settlement_currency("BTC/USD:BTC") == "BTC"
    assert activity.settlement_currency("BTC/USD:BTC-240329-60000-C") == "BTC"
    assert activity.settlement_currency("ETH/USDT:USDT") == "USDT"
    assert activity.settlement_currency("ETH/BTC") == "BTC"
    with session_scope() as session:
        positions = queries.positions(session, seeded.viewer("admin"))
    reported = activity.reported_unrealized(positions)
    assert reported.usd == pytest.approx(4.0)  # the USDT-settled position alone, not 4.0012
    assert reported.coins == {"BTC": Decimal("0.0012")}
    assert reported.unreported == ["ETH/USDT:USDT (Alpha, binance main)"]
    for page in ("orders", "pnl"):
        at = open_page(page, seeded.users["admin"])
        assert metric(at, "Unrealized P&L reported by the exchange (positions)") == "+$4.00"
        assert metric(at, "Unrealized P&L reported by the exchange (BTC-settled positions)") == "+0.0012 BTC"
        assert fmt.literal("left out: ETH/USDT:USDT (Alpha, binance main).") in texts(at)
        assert not any("Unrealised" in m.label for m in at.metric)


def test_only_coin_settled_positions_show_no_dollar_card(seeded: Seeded) -> None:
    at = open_page("orders", seeded.users["admin"], client_id=seeded.alpha)  # Alpha: BTC-settled and unreported
    assert [m.label for m in at.metric if "reported by the exchange" in m.label] == [
        "Unrealized P&L reported by the exchange (BTC-settled positions)"]


def test_fill_fees_are_read_in_batches(seeded: Seeded, monkeypatch: pytest.MonkeyPatch) -> None:
    """A CSV holds up to 100,000 orders: their ids go to the database a batch at a time (bound
    parameters are limited), and every batch's fees land on their own orders."""
    monkeypatch.setattr(queries, "FILL_FEE_BATCH", 1)
    with session_scope() as session:
        rows = queries.order_history(session, seeded.viewer("admin"), connector_id=seeded.alpha_binance)
    fees = rows.set_index("order_id")["fill_fees"]
    assert (str(fees["bnb-fees"]), str(fees["mixed-fees"])) == ("0.0129 BNB", "0.0043 BNB + 1.2 USDT")
    assert fees["own-fee"] is None and fees["unknown-fee"] is None

"""lib.queries: scope filtering (a client viewer never sees another client's rows), paging, shapes.

``seed_portfolio`` is also the data of tests/test_reports.py and tests/test_pages_portfolio.py:
client "Alpha" trades PNL.md's test vector on binance; client "Beta" holds an unpriced asset
on okx. Rows go in through SQLAlchemy; the credential is a dummy encrypted at run time.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pandas as pd
import pytest
from sqlalchemy import delete, func, select

from lib import queries, reports
from lib.access import Role, Viewer
from lib.db import session_scope
from lib.models import (
    BalanceSnapshot,
    Candle,
    Client,
    Connector,
    OpeningBalance,
    Order,
    Position,
    Ticker,
    Trade,
    Transfer,
    User,
    UserClient,
    utcnow,
)
from lib.vault import load_vault


def ms(day: str) -> int:
    return int(datetime.fromisoformat(day).replace(tzinfo=UTC).timestamp() * 1000)


#: PNL.md's test vector: (id, date, symbol, side, amount, price, cost, fee, fee currency)
VECTOR = [
    ("T1", "2024-01-01", "BTC/USDT", "buy", 1.0, 40000, 40000, 0.001, "BTC"),
    ("T2", "2024-01-02", "BNB/USDT", "buy", 2.0, 300, 600, 0.6, "USDT"),
    ("T3", "2024-01-10", "BTC/USDT", "buy", 0.5, 44000, 22000, 0.05, "BNB"),
    ("T4", "2024-02-01", "ETH/BTC", "buy", 10, 0.05, 0.5, 0.0005, "BTC"),
    ("T5", "2024-02-15", "BTC/USDT", "sell", 0.6, 52000, 31200, 31.2, "USDT"),
    ("T6", "2024-03-01", "ETH/USDT", "sell", 4, 3000, 12000, 0.02, "BNB"),
    ("T7", "2024-03-20", "ETH/BTC", "sell", 3, 0.055, 0.165, 0.000165, "BTC"),
]
#: Prices at trade time (as candles) and marks now (as tickers), from PNL.md.
CANDLES = [("BTC/USDT", "2024-01-01", 40000), ("BNB/USDT", "2024-01-10", 320), ("BTC/USDT", "2024-02-01", 50000),
           ("BNB/USDT", "2024-03-01", 400), ("BTC/USDT", "2024-03-20", 60000)]
TICKERS = {"BTC/USDT": 65000.0, "ETH/USDT": 3500.0, "BNB/USDT": 500.0}
FIFO_REALIZED, FIFO_UNREALIZED = 16102.031, 12547.944
AVERAGE_REALIZED, AVERAGE_UNREALIZED = 15041.854050, 13608.120950


@dataclass(frozen=True)
class Seeded:
    alpha: int  # client ids
    beta: int
    alpha_binance: int  # connector ids
    beta_okx: int
    users: dict[str, int]  # role -> user id (the client user sees Alpha only)

    def viewer(self, role: str) -> Viewer:
        if role == "client":
            return Viewer("client-user", Role.CLIENT, frozenset({self.alpha}))
        return Viewer(f"{role}-user", Role(role))


def _connector(client: Client, exchange_id: str) -> Connector:
    dummy = {"apiKey": secrets.token_hex(8), "secret": secrets.token_hex(16)}
    return Connector(client=client, exchange_id=exchange_id, label="main",
                     credentials_ciphertext=load_vault().encrypt(dummy), key_hint=dummy["apiKey"][-4:],
                     status="ok", last_success_at=utcnow(), last_attempt_at=utcnow())


def seed_portfolio() -> Seeded:
    """Two clients, one connector each, with balances, fills, transfers, orders and prices."""
    now = utcnow()
    with session_scope() as session:
        alpha, beta = Client(name="Alpha"), Client(name="Beta")
        a1, b1 = _connector(alpha, "binance"), _connector(beta, "okx")
        session.add_all([alpha, beta, a1, b1])
        session.flush()
        for trade_id, day, symbol, side, amount, price, cost, fee, fee_currency in VECTOR:
            base, quote = symbol.split("/")
            session.add(Trade(connector_id=a1.id, trade_id=trade_id, order_id=f"o-{trade_id}", timestamp=ms(day),
                              symbol=symbol, base=base, quote=quote, side=side, taker_or_maker="taker", amount=amount,
                              price=price, cost=cost, fee_cost=fee, fee_currency=fee_currency))
        for n in range(3):  # Beta: an asset no ticker or candle prices
            session.add(Trade(connector_id=b1.id, trade_id=f"B{n}", timestamp=ms(f"2024-02-0{n + 1}"),
                              symbol="XYZ/USDT", base="XYZ", quote="USDT", side="buy", amount=10.0, price=2.0,
                              cost=20.0, fee_cost=0.02, fee_currency="USDT"))
        for symbol, day, close in CANDLES:
            session.add(Candle(exchange_id="binance", symbol=symbol, timeframe="1d", timestamp=ms(day), open=close,
                               high=close, low=close, close=close, volume=1.0))
        for symbol, last in TICKERS.items():
            session.add(Ticker(exchange_id="binance", symbol=symbol, last=last, bid=last, ask=last,
                               timestamp=ms("2024-04-01")))
        session.add(Ticker(exchange_id="okx", symbol="BTC/USDT", last=64000.0, timestamp=ms("2024-04-01")))
        balances = {
            a1.id: [(now - timedelta(days=2), {"BTC": 0.5, "USDT": 1000.0}),
                    (now - timedelta(hours=1), {"BTC": 0.563335, "ETH": 3.0, "BNB": 1.93, "USDT": 1000.0})],
            b1.id: [(now - timedelta(hours=1), {"XYZ": 30.0, "USDT": 500.0})],
        }
        for connector_id, snapshots in balances.items():
            for taken_at, totals in snapshots:
                for asset, total in totals.items():
                    session.add(BalanceSnapshot(connector_id=connector_id, taken_at=taken_at, asset=asset,
                                                free=total * 0.9, used=total * 0.1, total=total))
        session.add_all([
            Transfer(connector_id=a1.id, transfer_id="d1", type="deposit", timestamp=ms("2023-12-31"),
                     currency="USDT", amount=70000.0, status="ok"),
            Transfer(connector_id=b1.id, transfer_id="d2", type="deposit", timestamp=ms("2024-01-31"),
                     currency="USDT", amount=600.0, status="ok"),
            Transfer(connector_id=b1.id, transfer_id="d3", type="deposit", timestamp=ms("2024-01-31"),
                     currency="USDT", amount=999.0, status="failed"),
            OpeningBalance(connector_id=b1.id, asset="XYZ", amount=0.0, usd_price=None, timestamp=ms("2024-01-01")),
            Order(connector_id=a1.id, order_id="open-1", timestamp=int(now.timestamp() * 1000) - 3_600_000,
                  symbol="BTC/USDT", side="buy", type="limit", price=60000.0, amount=0.1, filled=0.0, remaining=0.1,
                  status="open"),
            Order(connector_id=b1.id, order_id="open-2", timestamp=int(now.timestamp() * 1000), symbol="XYZ/USDT",
                  side="sell", type="limit", price=3.0, amount=5.0, filled=0.0, remaining=5.0, status="open"),
            Position(connector_id=b1.id, symbol="BTC/USDT:USDT", side="long", contracts=1.0, contract_size=0.001,
                     entry_price=60000.0, mark_price=64000.0, notional=64.0, unrealized_pnl=4.0, leverage=3.0),
            Position(connector_id=a1.id, symbol="ETH/USDT:USDT", side="short", contracts=2.0, entry_price=3600.0,
                     unrealized_pnl=None),
        ])
        users = {role: User(username=f"{role}-user", role=role, password_hash=None)
                 for role in ("admin", "analyst", "client")}
        session.add_all(users.values())
        session.flush()
        session.add(UserClient(user_id=users["client"].id, client_id=alpha.id))
        return Seeded(alpha.id, beta.id, a1.id, b1.id, {role: user.id for role, user in users.items()})


@pytest.fixture
def seeded(database_url: str) -> Seeded:
    return seed_portfolio()


# Every scoped read, called with the same filters: (name, call(session, viewer, client_id, connector_id)).
READS = {
    "connectors": lambda s, v, c, k: queries.connectors(s, v, c, k),
    "balances": lambda s, v, c, k: queries.balances(s, v, c, k),
    "balance_history": lambda s, v, c, k: queries.balance_history(s, v, c, k, bucket="hour"),
    "opening_balances": lambda s, v, c, k: queries.opening_balances(s, v, c, k),
    "fills": lambda s, v, c, k: queries.fills(s, v, c, k, limit=1000),
    "pnl_fills": lambda s, v, c, k: queries.pnl_fills(s, v, c, k),
    "transfers": lambda s, v, c, k: queries.transfers(s, v, c, k),
    "open_orders": lambda s, v, c, k: queries.open_orders(s, v, c, k),
    "positions": lambda s, v, c, k: queries.positions(s, v, c, k),
}


def _client_ids(frame: pd.DataFrame) -> set[int]:
    return {int(c) for c in frame["client_id"]}


@pytest.mark.parametrize("read", READS)
def test_client_viewer_never_gets_another_clients_rows(seeded: Seeded, read: str) -> None:
    call = READS[read]
    viewer = seeded.viewer("client")
    with session_scope() as session:
        own = call(session, viewer, None, None)
        asked_other_client = call(session, viewer, seeded.beta, None)
        asked_other_connector = call(session, viewer, None, seeded.beta_okx)
        asked_missing = call(session, viewer, 10_000, None)
        admin_other = call(session, seeded.viewer("admin"), seeded.beta, None)
    # Alpha has no opening lots (Beta has one): its own answer is empty but must not be Beta's
    assert _client_ids(own) == (set() if read == "opening_balances" else {seeded.alpha})
    # another client's id answers exactly like an id that does not exist: empty, same columns
    for frame in (asked_other_client, asked_other_connector):
        assert frame.empty
        assert list(frame.columns) == list(asked_missing.columns)
    assert _client_ids(admin_other) == {seeded.beta}


@pytest.mark.parametrize("role", ["admin", "analyst"])
def test_staff_see_every_client_and_filters_narrow(seeded: Seeded, role: str) -> None:
    viewer = seeded.viewer(role)
    with session_scope() as session:
        everything = queries.balances(session, viewer)
        alpha = queries.balances(session, viewer, client_id=seeded.alpha)
        okx = queries.balances(session, viewer, connector_id=seeded.beta_okx)
        clients = queries.clients(session, viewer)
    assert _client_ids(everything) == {seeded.alpha, seeded.beta}
    assert _client_ids(alpha) == {seeded.alpha}
    assert set(okx["connector_id"]) == {seeded.beta_okx}
    assert list(clients["name"]) == ["Alpha", "Beta"]


def test_client_viewer_lists_only_its_clients_and_market_data(seeded: Seeded) -> None:
    viewer = seeded.viewer("client")
    with session_scope() as session:
        assert list(queries.clients(session, viewer)["name"]) == ["Alpha"]
        assert set(queries.tickers(session, viewer)["exchange_id"]) == {"binance"}
        assert queries.tickers(session, viewer, client_id=seeded.beta).empty
        assert queries.candles(session, viewer, client_id=seeded.beta).empty
        assert queries.count_fills(session, viewer) == len(VECTOR)
        assert queries.count_fills(session, viewer, client_id=seeded.beta) == 0
        assert queries.fill_symbols(session, viewer, client_id=seeded.beta) == []
        nobody = Viewer("nobody", Role.CLIENT, frozenset())
        assert queries.clients(session, nobody).empty
        assert queries.count_fills(session, nobody) == 0


def test_market_data_follows_the_fills_a_scope_gains_and_loses(seeded: Seeded) -> None:
    """The assets a scope trades are kept per database and continued by later fills: a new token's
    pair appears for its client once it trades it, and goes when that fill is removed."""
    viewer = seeded.viewer("client")
    with session_scope() as session:
        session.add(Ticker(exchange_id="binance", symbol="ZZZ/USDT", last=1.0, timestamp=ms("2024-04-01")))

    def symbols() -> set[str]:
        with session_scope() as session:
            return set(queries.tickers(session, viewer)["symbol"])

    assert "ZZZ/USDT" not in symbols()  # nobody trades it
    with session_scope() as session:
        session.add(Trade(connector_id=seeded.alpha_binance, trade_id="zzz", timestamp=ms("2024-05-01"),
                          symbol="ZZZ/USDT", base="ZZZ", quote="USDT", side="buy", amount=1, price=1, cost=1))
    assert "ZZZ/USDT" in symbols()
    assert any("ZZZ" in kept.assets.get(seeded.alpha_binance, ()) for kept in queries._FILL_NAMES.values())
    with session_scope() as session:
        session.execute(delete(Trade).where(Trade.trade_id == "zzz"))
    assert "ZZZ/USDT" not in symbols()



def test_unsettled_contracts_are_kept_and_follow_later_fills(seeded: Seeded) -> None:
    """Contract markets whose fills carry no realised P&L (reconciliation names them as a cause):
    continued from the kept names by later fills, the same as the database's own answer."""
    ids = [seeded.alpha_binance, seeded.beta_okx]

    def unsettled() -> set[tuple[int, str]]:
        with session_scope() as session:
            found = queries.unsettled_contracts(session, ids)
            assert set(map(tuple, found.itertuples(index=False))) == queries._unsettled_in_sql(session, ids)
            return set(map(tuple, found.itertuples(index=False)))

    before = unsettled()
    with session_scope() as session:
        for trade_id, pnl, symbol in (("perp-1", None, "BTC/USDT:USDT"), ("perp-2", 5, "ETH/USDT:USDT")):
            session.add(Trade(connector_id=seeded.alpha_binance, trade_id=trade_id, timestamp=ms("2024-05-01"),
                              symbol=symbol, base=symbol[:3], quote="USDT", side="buy", amount=1, price=1, cost=1,
                              realized_pnl=pnl))
    assert unsettled() == before | {(seeded.alpha_binance, "BTC/USDT:USDT")}  # ETH's reports its P&L


def test_latest_balances_take_the_newest_snapshot_and_as_of(seeded: Seeded) -> None:
    admin = seeded.viewer("admin")
    with session_scope() as session:
        latest = queries.balances(session, admin, client_id=seeded.alpha)
        day_ago = queries.balances(session, admin, client_id=seeded.alpha, at=utcnow() - timedelta(days=1))
        too_old = queries.balances(session, admin, at=utcnow() - timedelta(days=30))
    assert dict(zip(latest["asset"], latest["total"], strict=True)) == {  # exact decimals
        "BNB": Decimal("1.93"), "BTC": Decimal("0.563335"), "ETH": Decimal(3), "USDT": Decimal(1000)}
    assert dict(zip(day_ago["asset"], day_ago["total"], strict=True)) == {"BTC": Decimal("0.5"), "USDT": Decimal(1000)}
    assert too_old.empty
    assert str(latest["taken_at"].dt.tz) == "UTC"


def test_fills_filter_page_and_count(seeded: Seeded) -> None:
    admin = seeded.viewer("admin")
    with session_scope() as session:
        assert queries.count_fills(session, admin) == len(VECTOR) + 3
        assert queries.count_fills(session, admin, symbol="BTC/USDT") == 3
        assert queries.count_fills(session, admin, side="sell", client_id=seeded.alpha) == 3
        assert queries.count_fills(session, admin, start_ms=ms("2024-02-01"), end_ms=ms("2024-03-01")) == 5
        first = queries.fills(session, admin, client_id=seeded.alpha, limit=3)
        second = queries.fills(session, admin, client_id=seeded.alpha, limit=3, offset=3)
        symbols = queries.fill_symbols(session, admin)
    assert list(first["trade_id"]) == ["T7", "T6", "T5"]  # newest first
    assert list(second["trade_id"]) == ["T4", "T3", "T2"]
    assert list(first.columns) == queries.FILL_COLUMNS
    assert set(first["client"]) == {"Alpha"}
    assert symbols == ["BNB/USDT", "BTC/USDT", "ETH/BTC", "ETH/USDT", "XYZ/USDT"]


def test_pnl_fills_frame_shape_and_order(seeded: Seeded) -> None:
    with session_scope() as session:
        frame = queries.pnl_fills(session, seeded.viewer("admin"), client_id=seeded.alpha, end_ms=ms("2024-03-01"))
    assert list(frame.columns) == queries.PNL_FILL_COLUMNS
    assert list(frame["trade_id"]) == ["T1", "T2", "T3", "T4", "T5"]  # end is exclusive
    assert frame["timestamp"].is_monotonic_increasing


def test_transfers_leave_out_failed_ones(seeded: Seeded) -> None:
    with session_scope() as session:
        settled = queries.transfers(session, seeded.viewer("admin"), client_id=seeded.beta)
        every = queries.transfers(session, seeded.viewer("admin"), client_id=seeded.beta, settled_only=False)
    assert list(settled["transfer_id"]) == ["d2"]
    assert sorted(every["transfer_id"]) == ["d2", "d3"]


def test_balance_history_keeps_last_snapshot_per_bucket(seeded: Seeded) -> None:
    at = [datetime(2024, 1, 5, 10, tzinfo=UTC), datetime(2024, 1, 5, 12, tzinfo=UTC),
          datetime(2024, 1, 6, 9, tzinfo=UTC)]
    with session_scope() as session:
        for taken_at, total in zip(at, (1.0, 2.0, 3.0), strict=True):
            session.add(BalanceSnapshot(connector_id=seeded.beta_okx, taken_at=taken_at, asset="XYZ", total=total))
        session.flush()
        admin = seeded.viewer("admin")
        daily = queries.balance_history(session, admin, connector_id=seeded.beta_okx, bucket="day",
                                        since=datetime(2024, 1, 1, tzinfo=UTC))
        hourly = queries.balance_history(session, admin, connector_id=seeded.beta_okx, bucket="hour",
                                         since=datetime(2024, 1, 1, tzinfo=UTC))
        recent = queries.balance_history(session, admin, client_id=seeded.alpha, bucket="hour",
                                         since=utcnow() - timedelta(days=1))
    old_daily = daily[daily["taken_at"] < pd.Timestamp("2024-02-01", tz="UTC")]
    assert list(old_daily["total"]) == [2.0, 3.0]  # the 12:00 snapshot wins its day
    old_hourly = hourly[hourly["taken_at"] < pd.Timestamp("2024-02-01", tz="UTC")]
    assert list(old_hourly["total"]) == [1.0, 2.0, 3.0]
    assert set(recent["asset"]) == {"BTC", "ETH", "BNB", "USDT"}  # the 2-day-old snapshot is before since


def test_data_version_changes_with_new_rows(seeded: Seeded) -> None:
    with session_scope() as session:
        before = queries.data_version(session)
        session.add(Trade(connector_id=seeded.alpha_binance, trade_id="new", timestamp=ms("2024-05-01"),
                          symbol="BTC/USDT", base="BTC", quote="USDT", side="buy", amount=1.0, price=1.0, cost=1.0))
        session.flush()
        assert queries.data_version(session) != before


def test_fill_store_follows_new_and_deleted_fills(seeded: Seeded) -> None:
    admin = seeded.viewer("admin")
    with session_scope() as session:
        assert len(queries.pnl_fills(session, admin)) == 10
        session.add(Trade(connector_id=seeded.beta_okx, trade_id="later", timestamp=ms("2024-05-01"),
                          symbol="XYZ/USDT", base="XYZ", quote="USDT", side="sell", amount=1.0, price=3.0, cost=3.0))
    with session_scope() as session:
        appended = queries.pnl_fills(session, admin)
        assert appended["trade_id"].iloc[-1] == "later" and len(appended) == 11
        session.delete(session.get(Connector, seeded.beta_okx))
    with session_scope() as session:
        rebuilt = queries.pnl_fills(session, admin)
    assert len(rebuilt) == 7 and set(rebuilt["client_id"]) == {seeded.alpha}


def _texts(column: pd.Series) -> list[str | None]:
    return [None if pd.isna(value) else str(value) for value in column]


def test_fill_store_text_stays_categorical_through_an_append_and_a_reload(seeded: Seeded) -> None:
    """The store's few-valued text columns are categorical when built, when a fill with values none had
    is appended (the categories' union, not Python strings) and when read back from its file, and hold
    what the trades table holds."""
    admin = seeded.viewer("admin")
    with session_scope() as session:
        built = queries.pnl_fills(session, admin)
        session.add(Trade(connector_id=seeded.beta_okx, trade_id="new-asset", timestamp=ms("2024-05-01"),
                          symbol="QQQ/EUR", base="QQQ", quote="EUR", side="sell", amount=1.0, price=3.0, cost=3.0,
                          fee_cost=0.1, fee_currency="FEE"))
    with session_scope() as session:
        appended = queries.pnl_fills(session, admin)
        queries._STORE_READ.clear()
        reloaded = queries.pnl_fills(session, admin)
        table = queries._read_trades(session).sort_values("trade_id", ignore_index=True)
    for frame in (built, appended, reloaded):
        assert all(isinstance(frame[name].dtype, pd.CategoricalDtype) for name in queries._CATEGORY_COLUMNS)
    for frame in (appended, reloaded):
        frame = frame.sort_values("trade_id", ignore_index=True)
        assert list(frame["trade_id"]) == list(table["trade_id"])
        for name in queries._CATEGORY_COLUMNS:
            assert _texts(frame[name]) == _texts(table[name])
    assert appended["base"].cat.categories.tolist()[-1] == "QQQ"  # the store's categories first, then the new


def test_fill_store_is_not_fooled_by_a_delete_then_as_many_inserts(seeded: Seeded) -> None:
    """Same count, and ids that would be reused without AUTOINCREMENT: the store must notice."""
    admin = seeded.viewer("admin")
    with session_scope() as session:
        before = queries.pnl_fills(session, admin)
        newest = session.scalars(select(Trade).order_by(Trade.id.desc()).limit(2)).all()
        for trade in newest:
            session.delete(trade)
    with session_scope() as session:
        for n in range(2):
            session.add(Trade(connector_id=seeded.alpha_binance, trade_id=f"replacement-{n}",
                              timestamp=ms("2024-06-01"),
                              symbol="BTC/USDT", base="BTC", quote="USDT", side="buy", amount=0.01, price=1.0,
                              cost=0.01))
    with session_scope() as session:
        after = queries.pnl_fills(session, admin)
    assert len(after) == len(before)
    assert {"replacement-0", "replacement-1"} <= set(after["trade_id"])
    assert not {t.trade_id for t in newest} & set(after["trade_id"])


def add_funding_btc(seeded: Seeded, amount: float = 0.4) -> None:
    """Alpha's newest snapshot also holds BTC in the funding account (same ``taken_at``)."""
    with session_scope() as session:
        taken_at = session.scalar(select(func.max(BalanceSnapshot.taken_at))
                                  .where(BalanceSnapshot.connector_id == seeded.alpha_binance))
        session.add(BalanceSnapshot(connector_id=seeded.alpha_binance, taken_at=taken_at, asset="BTC",
                                    account_type="funding", free=amount, used=0.0, total=amount))


def test_balances_sum_account_types_per_asset(seeded: Seeded) -> None:
    add_funding_btc(seeded)
    admin = seeded.viewer("admin")
    with session_scope() as session:
        latest = queries.balances(session, admin, client_id=seeded.alpha)
        history = queries.balance_history(session, admin, client_id=seeded.alpha, bucket="hour",
                                          since=utcnow() - timedelta(hours=3))
        total = reports.balances_report(admin, seeded.alpha, session_or_url=session).total_usd
    assert len(latest) == 4 and latest["asset"].is_unique
    assert dict(zip(latest["asset"], latest["total"], strict=True))["BTC"] == Decimal("0.963335")  # summed exactly
    assert float(latest.set_index("asset").loc["BTC", "free"]) == pytest.approx(0.563335 * 0.9 + 0.4)
    assert history["asset"].is_unique
    assert history.set_index("asset").loc["BTC", "total"] == pytest.approx(0.963335)  # summed, in float for charts
    assert total == pytest.approx(0.963335 * 65000 + 3 * 3500 + 1.93 * 500 + 1000)
    with session_scope() as session:
        split = queries.balances(session, admin, client_id=seeded.alpha, by_account=True)
    btc = split[split["asset"] == "BTC"]
    assert dict(zip(btc["account_type"], btc["total"], strict=True)) == {"": Decimal("0.563335"),
                                                                         "funding": Decimal("0.4")}
    assert list(split.columns) == queries.BALANCE_ACCOUNT_COLUMNS


def _later_fill(connector_id: int, trade_id: str) -> Trade:
    return Trade(connector_id=connector_id, trade_id=trade_id, timestamp=ms("2024-05-01"), symbol="BTC/USDT",
                 base="BTC", quote="USDT", side="buy", amount=1.0, price=1.0, cost=1.0)


def test_fills_added_since_are_read_once_per_state_and_never_kept_across_a_commit(
        seeded: Seeded, monkeypatch: pytest.MonkeyPatch) -> None:
    """The fill store, the balance index and the kept P&L each ask after a sync; one read serves them
    all, but only one read at the write state asked about, with nothing committed meanwhile."""
    with session_scope() as session:
        made = queries.write_state(session)
        max_id, count = session.scalar(select(func.max(Trade.id))), session.scalar(select(func.count(Trade.id)))
        session.add(_later_fill(seeded.alpha_binance, "first"))
    assert made is not None and max_id is not None and count is not None
    reads: list[int | None] = []
    real = queries._read_trades

    def counted(session: object, after_id: int | None = None) -> pd.DataFrame:
        reads.append(after_id)
        return real(session, after_id)  # type: ignore[arg-type]

    monkeypatch.setattr(queries, "_read_trades", counted)
    with session_scope() as session:
        now = queries.write_state(session)
        assert now is not None
        once = queries.fills_added_since(session, made, now, max_id, count)
        again = queries.fills_added_since(session, made, now, max_id, count)
        assert once is again and once is not None and once["trade_id"].tolist() == ["first"]
        assert len(reads) == 1
        session.add(_later_fill(seeded.alpha_binance, "own"))  # uncommitted: this session reads its own fills
        session.flush()
        own = queries.fills_added_since(session, made, now, max_id, count)  # None on PostgreSQL: the count differs
        assert own is None or own["trade_id"].tolist() == ["first", "own"]
        session.rollback()

    def with_a_commit_meanwhile(session: object, after_id: int | None = None) -> pd.DataFrame:
        with session_scope() as other:
            other.add(_later_fill(seeded.alpha_binance, f"meanwhile-{len(reads)}"))
        return counted(session, after_id)

    monkeypatch.setattr(queries, "_read_trades", with_a_commit_meanwhile)
    queries._ADDED.clear()  # as kept above for this state
    with session_scope() as session:
        now = queries.write_state(session)
        assert now is not None
        first = queries.fills_added_since(session, made, now, max_id, count)
        second = queries.fills_added_since(session, made, now, max_id, count)
    assert len(reads) == 4  # read again: what was read across a commit is not kept
    if first is not None:  # SQLite (on PostgreSQL the count tells a fill committed meanwhile: None)
        assert "meanwhile-2" in first["trade_id"].tolist() and second is not None and second is not first


def test_a_scoped_fill_frame_carries_no_other_clients_names(database_url: str) -> None:
    """The fill store's text columns are categorical over every fill of the database; a frame
    narrowed to one client keeps only its own rows' categories, so nothing of another client's
    travels in its dtype (or in anything made from it)."""
    seeded = seed_portfolio()
    with session_scope() as session:
        every = queries.pnl_fills(session, seeded.viewer("admin"))
        alpha = queries.pnl_fills(session, seeded.viewer("client"))
        before = queries.pnl_fills(session, seeded.viewer("admin"), end_ms=int(every["timestamp"].min()) + 1)
    categorical = [c for c in every.columns if isinstance(every[c].dtype, pd.CategoricalDtype)]
    assert "base" in categorical and set(alpha["connector_id"]) == {seeded.alpha_binance}
    assert set(every["base"]) > set(alpha["base"])  # Beta trades a base Alpha does not: the check can fail
    for frame in (alpha, before):
        for column in categorical:
            assert set(frame[column].cat.categories) == set(frame[column].dropna()), column

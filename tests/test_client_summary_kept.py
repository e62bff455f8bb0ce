"""The Clients table's all-history P&L kept between views (``reports.client_pnl`` without a window):
after a new fill only its client runs again, every other keeps its figures valued at the marks now,
and every figure equals a full recompute to the last bit; a change a kept figure depends on
(transfers, candles that priced it, a connector moved) runs every client again."""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import pytest
from sqlalchemy import update

from lib import queries, reports
from lib.access import Role, Viewer
from lib.db import session_scope
from lib.kept import Recent
from lib.models import Candle, Client, Connector, Ticker, Trade, Transfer
from tests.test_queries import _connector, ms

ADMIN = Viewer("admin-user", Role.ADMIN)
SYMBOLS = [("BTC", "USDT", 50000.0), ("ETH", "USDT", 3000.0), ("ETH", "BTC", 0.06), ("SOL", "USDT", 100.0)]


def _fill(connector_id: int, trade_id: str, timestamp: int, rng: np.random.Generator) -> Trade:
    base, quote, level = SYMBOLS[int(rng.integers(len(SYMBOLS)))]
    amount, price = float(rng.uniform(0.1, 2.0)) * 1000 / level / (50000 if quote == "BTC" else 1), level * float(
        rng.uniform(0.9, 1.1))
    return Trade(connector_id=connector_id, trade_id=trade_id, timestamp=timestamp, symbol=f"{base}/{quote}", base=base,
                 quote=quote, side="buy" if rng.random() < 0.55 else "sell", amount=amount, price=price,
                 cost=amount * price, fee_cost=amount * price * 0.001, fee_currency=quote)


@pytest.fixture
def table(database_url: str) -> dict[str, int]:
    """Three clients: Alpha on two hosts (binance and okx: marks weighted by where units lie), Beta on
    one, Gamma with an account and no fill yet; a few hundred fills, candles and tickers on both hosts."""
    rng = np.random.default_rng(17)
    with session_scope() as session:
        alpha, beta, gamma = Client(name="Alpha"), Client(name="Beta"), Client(name="Gamma")
        accounts = [_connector(alpha, "binance"), _connector(alpha, "okx"), _connector(beta, "binance"),
                    _connector(gamma, "okx")]
        session.add_all([alpha, beta, gamma, *accounts])
        session.flush()
        for n in range(300):
            session.add(_fill(accounts[n % 3].id, f"t{n}", ms("2024-01-01") + n * 3_600_000, rng))
        for exchange, skew in (("binance", 1.0), ("okx", 1.02)):
            for base, quote, level in SYMBOLS:
                session.add(Ticker(exchange_id=exchange, symbol=f"{base}/{quote}", last=level * skew,
                                   timestamp=ms("2024-04-01")))
                for day in range(20):
                    session.add(Candle(exchange_id=exchange, symbol=f"{base}/{quote}", timeframe="1d",
                                       timestamp=ms("2024-01-01") + day * 86_400_000, open=level, high=level,
                                       low=level, close=level * skew * (1 + day / 100), volume=1.0))
        session.add(Transfer(connector_id=accounts[2].id, transfer_id="d1", type="deposit", timestamp=ms("2023-12-31"),
                             currency="USDT", amount=50000.0, status="ok"))
        return {"alpha": alpha.id, "beta": beta.id, "gamma": gamma.id, "alpha_okx": accounts[1].id,
                "beta_binance": accounts[2].id, "gamma_okx": accounts[3].id}


def _ids(table: dict[str, int]) -> list[int]:
    return [table["alpha"], table["beta"], table["gamma"]]


def _figures(got: dict[int, reports.ClientPnl]) -> dict[int, dict[str, object]]:
    return {client: asdict(one) for client, one in got.items()}


def _full(client_ids: list[int], method: reports.Method = "fifo") -> dict[int, dict[str, object]]:
    """A full recompute: nothing kept (what is kept is put back, so the next view continues it)."""
    kept = reports._CLIENTS
    reports._CLIENTS = Recent(at_most=1)
    try:
        return _figures(reports.client_pnl(ADMIN, client_ids, method))
    finally:
        reports._CLIENTS = kept


@pytest.fixture
def ran(monkeypatch: pytest.MonkeyPatch) -> list[list[int]]:
    """The clients each engine pass of ``client_pnl`` ran (one list per pass)."""
    passes: list[list[int]] = []
    runs = reports._client_runs

    def spy(*args: object, **kwargs: object) -> dict[int, reports._ClientRun]:
        passes.append(sorted(args[3]))  # type: ignore[arg-type] - the reads, one per client
        return runs(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(reports, "_client_runs", spy)
    return passes


def _add(*rows: object) -> None:
    with session_scope() as session:
        session.add_all(rows)


@pytest.mark.parametrize("method", ["fifo", "average"])
def test_a_new_fill_runs_its_client_only_and_every_figure_is_a_full_recomputes(table: dict[str, int],
                                                                                ran: list[list[int]],
                                                                                method: reports.Method) -> None:
    ids, rng = _ids(table), np.random.default_rng(3)
    first = _figures(reports.client_pnl(ADMIN, ids, method))
    assert ran == [ids] and first == _full(ids, method)
    assert first[table["gamma"]] == asdict(reports._ZERO)
    steps = [  # (what is added, the clients that run again)
        (_fill(table["alpha_okx"], "later-a", ms("2024-03-01"), rng), [table["alpha"]]),
        (_fill(table["beta_binance"], "back-dated-b", ms("2024-01-02"), rng), [table["beta"]]),
        (_fill(table["gamma_okx"], "first-g", ms("2024-03-02"), rng), [table["gamma"]]),
        (_fill(table["alpha_okx"], "later-a2", ms("2024-03-03"), rng), [table["alpha"]]),
    ]
    for row, again in steps:
        ran.clear()
        _add(row)
        got = _figures(reports.client_pnl(ADMIN, ids, method))
        assert ran == [again]
        assert got == _full(ids, method)  # every digit
    assert got[table["gamma"]] != asdict(reports._ZERO)
    assert got[table["alpha"]] != first[table["alpha"]] and got[table["beta"]] != first[table["beta"]]


def test_new_prices_revalue_the_kept_figures_without_running_them(table: dict[str, int], ran: list[list[int]]) -> None:
    ids = _ids(table)
    first = _figures(reports.client_pnl(ADMIN, ids))
    ran.clear()
    with session_scope() as session:
        session.execute(update(Ticker).values(last=Ticker.last * 1.5))
    got = _figures(reports.client_pnl(ADMIN, ids))
    assert ran == []
    assert got == _full(ids)
    assert got[table["alpha"]]["unrealized_end"] != first[table["alpha"]]["unrealized_end"]


@pytest.mark.parametrize("change", ["transfer", "candle", "owner"])
def test_a_change_under_kept_figures_runs_every_client(table: dict[str, int], ran: list[list[int]],
                                                       change: str) -> None:
    ids = _ids(table)
    reports.client_pnl(ADMIN, ids)
    ran.clear()
    with session_scope() as session:
        if change == "transfer":
            session.add(Transfer(connector_id=table["beta_binance"], transfer_id="w1", type="withdrawal",
                                 timestamp=ms("2024-01-05"), currency="USDT", amount=100.0, status="ok"))
        elif change == "candle":  # a close that priced kept fills
            session.execute(update(Candle).where(Candle.symbol == "SOL/USDT", Candle.exchange_id == "binance",
                                                 Candle.timestamp == ms("2024-01-03")).values(close=140.0))
        else:
            session.execute(update(Connector).where(Connector.id == table["gamma_okx"]).values(
                client_id=table["beta"]))
    got = _figures(reports.client_pnl(ADMIN, ids))
    assert ran == [ids]
    assert got == _full(ids)


def test_a_clients_figures_do_not_depend_on_the_other_clients_shown(table: dict[str, int]) -> None:
    every = _figures(reports.client_pnl(ADMIN, _ids(table)))
    for client in _ids(table):
        reports._CLIENTS.clear()
        assert _figures(reports.client_pnl(ADMIN, [client])) == {client: every[client]}


def _an_account_added_meanwhile(table: dict[str, int], monkeypatch: pytest.MonkeyPatch) -> None:
    """The next ``fills_added_since`` first commits, as a sync would, a new account of Gamma with its
    first fill: after the kept figures read the connectors' owners, before they read the new fills."""
    real = queries.fills_added_since
    done: list[bool] = []

    def with_a_sync_meanwhile(*args: object, **kwargs: object) -> object:
        if not done:
            done.append(True)
            with session_scope() as other:
                account = _connector(other.get(Client, table["gamma"]), "binance")
                other.add(account)
                other.flush()
                other.add(_fill(account.id, "new-account-1", ms("2024-03-01"), np.random.default_rng(1)))
        return real(*args, **kwargs)

    monkeypatch.setattr(queries, "fills_added_since", with_a_sync_meanwhile)


def test_an_account_added_while_kept_figures_continue_starts_them_again(table: dict[str, int],
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    ids = _ids(table)
    reports.client_pnl(ADMIN, ids)  # kept
    _an_account_added_meanwhile(table, monkeypatch)
    reports.client_pnl(ADMIN, ids)  # no KeyError: the new account's client is not in the kept owners
    assert _figures(reports.client_pnl(ADMIN, ids)) == _full(ids)


def test_an_account_added_while_the_pnl_state_continues_starts_it_again(table: dict[str, int],
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    reports.pnl_report(None, ADMIN)  # the kept engine state
    _an_account_added_meanwhile(table, monkeypatch)
    reports.pnl_report(None, ADMIN)  # computed again, not continued without the new account's owner
    shown = reports.window_totals(reports.pnl_report(None, ADMIN))
    reports._LIVE.clear()
    assert shown == reports.window_totals(reports.pnl_report(None, ADMIN))

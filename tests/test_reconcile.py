"""Reconciliation: the balances the stored history implies against the balances reported.

Every simulator dialect, synced for real, is Balanced everywhere, also against past balances
rebuilt from the simulator's ground truth; deleting one fill makes exactly its assets
Unbalanced from the first snapshot after it. A pending deposit the exchange counts ahead
names itself as the cause. The seeded portfolio of tests/test_queries.py (with history the
balances do not match) drives the causes, the CLI and the page for every role.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pandas as pd
import pytest
import streamlit as st
from sqlalchemy import delete, func, select, update
from streamlit.testing.v1 import AppTest

from lib import implied_totals, rebuild, reconcile, reports
from lib.access import SYSTEM, Role, Viewer
from lib.cli import main
from lib.db import session_scope
from lib.models import (
    BalanceSnapshot,
    Client,
    Connector,
    HistoryCoverage,
    OpeningBalance,
    SyncResult,
    SyncRun,
    Trade,
    Transfer,
    to_decimal,
    utcnow,
)
from lib.settings import PROJECT_ROOT
from lib.simulator import Simulator
from lib.simulator.market import SATS
from lib.sync import sync_connectors
from lib.sync.status import connector_freshness
from lib.ui import scope
from lib.ui.sync_widgets import connectors_frame
from tests.sync_helpers import add_connectors
from tests.test_history_pages import metric, open_page, texts, widget
from tests.test_queries import Seeded, _connector, seed_portfolio
from tests.test_sync_dialects import _sim, quick_throttle  # noqa: F401 - an autouse fixture

DAY_MS = 86_400_000
#: the spot dialects of the simulator (Bitunix, a futures account, has its own test below)
DIALECTS = ("binance", "okx", "cryptocom", "bybit", "bitmart")


@pytest.fixture(params=DIALECTS)
def sim(request: pytest.FixtureRequest) -> Iterator[Simulator]:
    simulator = _sim(request.param, fills=80)
    yield simulator
    simulator.stop()


def _true_balances(sim: Simulator, account: str, at: int) -> dict[str, float]:
    """What the simulated account held at ``at`` (all account types), from its ground truth:
    fills, credited deposits, withdrawals with their fees, up to and including ``at``."""
    truth = sim.truth(account)
    held: dict[str, float] = defaultdict(float)
    for fill in truth.fills:
        if fill["timestamp"] <= at:
            base, quote = fill["symbol"].split("/")
            sign = 1 if fill["side"] == "buy" else -1
            held[base] += sign * fill["amount"]
            held[quote] -= sign * fill["cost"]
            held[fill["fee"]["currency"]] -= fill["fee"]["cost"]
    for deposit in truth.deposits:
        if deposit["timestamp"] <= at and deposit["status"] == "ok":
            held[deposit["currency"]] += deposit["amount"]
    for withdrawal in truth.withdrawals:
        if withdrawal["timestamp"] <= at:
            held[withdrawal["currency"]] -= withdrawal["amount"] + withdrawal["fee"]["cost"]
    return {asset: total for asset, total in held.items() if abs(total) > 1e-12}


def _add_snapshot(connector_id: int, at: int, totals: dict[str, float]) -> None:
    taken_at = datetime.fromtimestamp(at / 1000, UTC)
    with session_scope() as session:
        session.add_all(BalanceSnapshot(connector_id=connector_id, taken_at=taken_at, asset=asset, free=total,
                                        used=0.0, total=total) for asset, total in totals.items())


def _statuses(result: reconcile.Reconciliation) -> dict[str, str]:
    return dict(zip(result.rows["asset"], result.rows["status"], strict=True))


def _recorded(connector_id: int) -> tuple[str | None, int]:
    with session_scope() as session:
        row = session.scalars(select(SyncResult).where(SyncResult.connector_id == connector_id)
                              .order_by(SyncResult.id.desc())).first()
        return row.reconciliation, row.unbalanced


def _remove_and_check(sim: Simulator, account: str, connector: int, fill: dict[str, Any], taken: set[int]) -> set[str]:
    """Past balances from the ground truth around ``fill`` (all Balanced; ``taken``: the moments
    that already have one); then without the fill exactly its assets are Unbalanced, from the
    first snapshot after it, on its day. The fill stays removed; returns its assets."""
    day_end = (fill["timestamp"] // DAY_MS + 1) * DAY_MS - 1
    now = int(utcnow().timestamp() * 1000)
    for at in (day_end - DAY_MS, fill["timestamp"] - 1, fill["timestamp"] + 1, day_end, day_end + DAY_MS):
        if at < now and at not in taken:
            _add_snapshot(connector, at, _true_balances(sim, account, at))
            taken.add(at)
    again = reconcile.reconcile(SYSTEM)
    assert set(_statuses(again).values()) == {"balanced"}, again.rows[["asset", "status", "difference"]]
    assert int(again.rows["snapshots"].max()) >= 3  # the past days were compared too

    with session_scope() as session:
        session.execute(delete(Trade).where(Trade.connector_id == connector, Trade.trade_id == fill["id"]))
    affected = {*fill["symbol"].split("/")} | ({fill["fee"]["currency"]} if fill["fee"]["cost"] else set())
    missing = reconcile.reconcile(SYSTEM)
    unbalanced = missing.rows[missing.rows["status"] == "unbalanced"]
    assert set(unbalanced["asset"]) == affected, fill
    assert set(missing.rows.loc[missing.rows["status"] != "unbalanced", "status"]) == {"balanced"}
    first = pd.Timestamp(fill["timestamp"] + 1, unit="ms", tz="UTC")
    assert set(unbalanced["first_divergence"]) == {first}  # the first snapshot after the fill, on its day
    assert all(kinds == (reconcile.UNEXPLAINED,) for kinds in
               unbalanced["causes"].map(lambda pairs: tuple(k for k, _ in pairs)))
    base = unbalanced[unbalanced["asset"] == fill["symbol"].split("/")[0]].iloc[0]
    sign = 1 if fill["side"] == "buy" else -1
    fee = fill["fee"]["cost"] if fill["fee"]["currency"] == base["asset"] else 0.0
    assert base["difference"] == pytest.approx(sign * fill["amount"] - fee, abs=1e-9)
    return affected


def _restore(connector: int, fill: dict[str, Any]) -> None:
    base, quote = fill["symbol"].split("/")
    with session_scope() as session:
        session.add(Trade(connector_id=connector, trade_id=fill["id"], order_id=fill["order"],
                          timestamp=fill["timestamp"], symbol=fill["symbol"], base=base, quote=quote,
                          side=fill["side"], taker_or_maker=fill["takerOrMaker"], amount=fill["amount"],
                          price=fill["price"], cost=fill["cost"], fee_cost=fill["fee"]["cost"],
                          fee_currency=fill["fee"]["currency"]))


def test_every_dialect_is_balanced_and_a_missing_fill_unbalances_exactly_its_assets(
        database_url: str, sim: Simulator) -> None:
    ids = add_connectors(sim)
    account, connector = next(iter(ids.items()))
    report = sync_connectors(SYSTEM)
    assert report.successful == 1, [r.error for r in report.results]
    with session_scope() as session:  # complete history: nothing was booked to make it foot
        assert session.scalar(select(func.count()).select_from(OpeningBalance)) == 0
    result = reconcile.reconcile(SYSTEM)
    assert set(_statuses(result).values()) == {"balanced"}, result.rows[["asset", "status", "difference"]]
    assert {"BTC", "USDT"} <= set(result.rows["asset"])
    assert _recorded(connector) == ("balanced", 0)

    # any one fill: the first, the middle, the last and one paying its fee in a third asset
    truth = sim.truth(account)
    fills = truth.fills
    third = [f for f in fills if f["fee"]["cost"] and f["fee"]["currency"] not in f["symbol"].split("/")]
    picked = [fills[0], *third[:1], fills[-1], fills[len(fills) // 2]]
    taken: set[int] = set()
    for fill in picked:
        affected = _remove_and_check(sim, account, connector, fill, taken)
        if fill is not picked[-1]:
            _restore(connector, fill)  # the middle one stays removed for the sync below

    # the next sync does not fetch the fill again (its cursor is past it) and records the finding
    report = sync_connectors(SYSTEM)
    assert report.successful == 1, [r.error for r in report.results]
    assert _recorded(connector) == ("unbalanced", len(affected))
    with session_scope() as session:  # and the Sync page says so in the connector's row
        row = connectors_frame(connector_freshness(session, SYSTEM, 60)).iloc[0]
    assert row["Reconciliation"].startswith(f"{len(affected)} asset(s) not explained by the history")


def test_a_pending_deposit_the_exchange_counts_ahead_is_named(database_url: str) -> None:
    simulator = _sim("binance", fills=40)
    try:
        ids = add_connectors(simulator)
        account, connector = next(iter(ids.items()))
        pending = simulator.add_transfer(account, "deposit", "USDT", 1234.5, pending=True)
        assert sync_connectors(SYSTEM).successful == 1
        # the simulated exchange credits a deposit once it settles, as the history does
        assert set(_statuses(reconcile.reconcile(SYSTEM)).values()) == {"balanced"}
        with session_scope() as session:
            row = connectors_frame(connector_freshness(session, SYSTEM, 60)).iloc[0]
            assert row["Reconciliation"] == "history explains the balances"
            listed = rebuild.pending_transfers(session, [connector])
            assert list(listed["transfer_id"]) == [pending["id"]]
            # an exchange that counts it already: the newest USDT balance holds it
            newest = session.scalar(select(func.max(BalanceSnapshot.taken_at)))
            row = session.scalars(select(BalanceSnapshot).where(
                BalanceSnapshot.asset == "USDT", BalanceSnapshot.account_type == "",
                BalanceSnapshot.taken_at == newest)).one()
            row.total = to_decimal(row.total) + Decimal("1234.5")
        result = reconcile.reconcile(SYSTEM)
        usdt = result.rows[result.rows["asset"] == "USDT"].iloc[0]
        assert usdt["status"] == "unbalanced" and usdt["difference"] == pytest.approx(1234.5, abs=1e-6)
        assert [kind for kind, _ in usdt["causes"]] == [reconcile.PENDING]
        assert "still pending" in usdt["cause"]
        assert {s for asset, s in _statuses(result).items() if asset != "USDT"} == {"balanced"}

        simulator.complete_transfer(account, pending["id"])
        assert sync_connectors(SYSTEM).successful == 1
        # settled: the history counts it from its time, so the early balance is explained too
        assert set(_statuses(reconcile.reconcile(SYSTEM)).values()) == {"balanced"}
        with session_scope() as session:
            assert rebuild.pending_transfers(session, [connector]).empty
    finally:
        simulator.stop()


def _futures_truth(simulator: Simulator, account: str) -> tuple[Decimal, Decimal, Decimal]:
    """(opening USDT, realised P&L, fees) of a simulated futures account, from its ledger: the
    wallet is the opening balance + realised P&L - fees (lib.simulator.futures)."""
    ledger = simulator.world.ledger(account)
    realized = sum((to_decimal(pnl) / SATS for _, pnl in ledger.booked.values()), Decimal(0))
    fees = sum((to_decimal(f["fee"]["cost"]) for f in simulator.truth(account).fills), Decimal(0))
    held = to_decimal(simulator.truth(account).balances["USDT"]["total"])
    return held - realized + fees, realized, fees


def test_a_futures_account_balances_with_its_contract_pnl(database_url: str) -> None:
    """Bitunix futures: a contract fill moves its settle currency by its realised P&L (synced from
    the fill's record) minus its fee, so the account is Balanced, before and after new fills
    close positions; the first sync's opening balance is the simulator's, and P&L's realised
    figure is the simulator's realised P&L net of fees. A fill without its realised P&L
    unbalances USDT and names the cause."""
    simulator = _sim("bitunix", fills=60)
    try:
        ids = add_connectors(simulator)
        account, connector = next(iter(ids.items()))
        assert sync_connectors(SYSTEM).successful == 1
        first = reconcile.reconcile(SYSTEM)
        assert set(_statuses(first).values()) == {"balanced"}
        assert "BTC" not in _statuses(first)  # a contract is not a holding of its base
        opening, _, _ = _futures_truth(simulator, account)
        with session_scope() as session:
            booked = dict(session.execute(select(OpeningBalance.asset, OpeningBalance.amount)
                                          .where(OpeningBalance.connector_id == connector)).all())
        assert {asset: to_decimal(amount) for asset, amount in booked.items()} == {"USDT": opening}

        simulator.add_fills(account, 30)
        assert sync_connectors(SYSTEM).successful == 1
        assert set(_statuses(reconcile.reconcile(SYSTEM)).values()) == {"balanced"}
        assert _recorded(connector) == ("balanced", 0)
        _, realized, fees = _futures_truth(simulator, account)
        assert realized != 0
        report = reports.pnl_report(None, SYSTEM)
        assert report.result.totals.realized == pytest.approx(float(realized - fees), abs=1e-6)
        assert not [w for w in report.result.warnings if "realised P&L" in w]

        with session_scope() as session:  # as if the exchange had not reported it
            session.execute(update(Trade).where(Trade.connector_id == connector, Trade.realized_pnl != 0)
                            .values(realized_pnl=None))
        after = reconcile.reconcile(SYSTEM)
        usdt = after.rows[after.rows["asset"] == "USDT"].iloc[0]
        assert usdt["status"] == "unbalanced"
        assert reconcile.CONTRACTS in [kind for kind, _ in usdt["causes"]]
    finally:
        simulator.stop()


# --------------------------------------------------------------------------- seeded portfolio


@pytest.fixture
def seeded(database_url: str) -> Seeded:
    """tests/test_queries.py's portfolio (its USDT and BTC are not what its history implies), plus:
    Beta's okx key may not read the funding account and its fills are walked for BTC/USDT only,
    while a later XYZ balance outgrows the XYZ history; Alpha's exchange keeps fills since a date
    and the first sync booked an opening balance; Gamma's account is explained exactly; Delta's
    was never read."""
    data = seed_portfolio()
    now = utcnow()
    with session_scope() as session:
        alpha = session.get(Client, data.alpha)
        kept = int(now.timestamp() * 1000) - 90 * DAY_MS
        gamma, delta = Client(name="Gamma"), Client(name="Delta")
        gamma_okx, delta_okx = _connector(gamma, "okx"), _connector(delta, "okx")
        session.add_all([gamma, delta, gamma_okx, delta_okx])
        session.flush()
        session.add_all([
            HistoryCoverage(connector_id=data.beta_okx, stream="balance:funding", kind="balance",
                            failed_error="Permission denied: this API key may not read the funding account."),
            HistoryCoverage(connector_id=data.beta_okx, stream="trades:BTC/USDT", kind="trades"),
            BalanceSnapshot(connector_id=data.beta_okx, taken_at=now, asset="XYZ", free=35.0, used=0.0, total=35.0),
            BalanceSnapshot(connector_id=data.beta_okx, taken_at=now, asset="USDT", free=500.0, used=0.0,
                            total=500.0),
            HistoryCoverage(connector_id=data.alpha_binance, stream="trades", kind="trades", oldest_available=kept),
            OpeningBalance(connector_id=data.alpha_binance, asset="BNB", amount=0.25, usd_price=500.0,
                           timestamp=int(now.timestamp() * 1000)),
            Transfer(connector_id=gamma_okx.id, transfer_id="g1", type="deposit", timestamp=kept,
                     currency="USDT", amount=100.0, status="ok"),
            BalanceSnapshot(connector_id=gamma_okx.id, taken_at=now, asset="USDT", free=100.0, used=0.0, total=100.0),
        ])
        assert alpha is not None
    return data


def _gamma(session: Any) -> int:
    return session.scalar(select(Connector.id).join(Client).where(Client.name == "Gamma"))


def test_causes_unknown_and_unread_accounts_on_the_seeded_portfolio(seeded: Seeded) -> None:
    result = reconcile.reconcile(SYSTEM)
    rows = result.rows.set_index(["client", "asset"])
    assert result.unsynced == ["Delta · okx / main"]
    assert list(result.rows["status"]).index("balanced") > list(result.rows["status"]).index("unbalanced")
    assert result.rows["status"].iloc[0] == "unbalanced"  # unbalanced rows first

    beta_xyz, beta_usdt = rows.loc[("Beta", "XYZ")], rows.loc[("Beta", "USDT")]
    assert beta_xyz["status"] == "unbalanced" and beta_xyz["difference"] == pytest.approx(5.0)
    assert {k for k, _ in beta_xyz["causes"]} == {reconcile.ACCOUNT_TYPE, reconcile.MARKET}
    assert "no market of XYZ was walked" in beta_xyz["cause"]
    assert "funding account could not be read" in beta_usdt["cause"]
    assert beta_usdt["difference"] == pytest.approx(500.0 - (600.0 - 60.06))  # the failed deposit never counts

    alpha_usdt = rows.loc[("Alpha", "USDT")]
    assert alpha_usdt["status"] == "unbalanced" and alpha_usdt["difference_usd"] == pytest.approx(
        alpha_usdt["difference"])  # USDT is cash
    assert reconcile.LOOKBACK in {k for k, _ in alpha_usdt["causes"]}
    assert rows.loc[("Gamma", "USDT")]["status"] == "balanced"

    # an asset the history never mentions: unknown, and so is its connector's recorded status
    with session_scope() as session:
        gamma = _gamma(session)
        taken = session.scalar(select(func.max(BalanceSnapshot.taken_at)).where(BalanceSnapshot.connector_id == gamma))
        session.add(BalanceSnapshot(connector_id=gamma, taken_at=taken, asset="AIR", free=7.0, used=0.0, total=7.0))
    with session_scope() as session:
        assert implied_totals.connector_status(session, gamma) == ("unknown", 0)
        assert implied_totals.connector_status(session, seeded.beta_okx) == ("unbalanced", 2)
    assert _statuses(reconcile.reconcile(SYSTEM, connector_id=gamma)) == {"USDT": "balanced", "AIR": "unknown"}


def test_a_client_user_reconciles_only_its_own_clients(seeded: Seeded) -> None:
    mine = reconcile.reconcile(Viewer("client-user", Role.CLIENT, frozenset({seeded.alpha})))
    assert set(mine.rows["client"]) == {"Alpha"} and mine.unsynced == []
    assert reconcile.reconcile(Viewer("client-user", Role.CLIENT, frozenset({seeded.alpha})),
                               connector_id=seeded.beta_okx).rows.empty
    assert reconcile.moves_around(Viewer("client-user", Role.CLIENT, frozenset({seeded.alpha})), seeded.beta_okx,
                                  "USDT", 0, 2**62).empty
    around = reconcile.moves_around(SYSTEM, seeded.beta_okx, "USDT", 0, 2**62)
    assert list(around["kind"]) == ["deposit", "fill", "fee", "fill", "fee", "fill", "fee"]
    assert around["balance"].iloc[-1] == pytest.approx(600.0 - 60.06)


def test_cli_reconcile_exit_codes_and_json(seeded: Seeded, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["reconcile", "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["unbalanced"] == sum(r["status"] == "unbalanced" for r in out["rows"]) > 0
    assert out["unsynced"] == ["Delta · okx / main"]
    xyz = next(r for r in out["rows"] if r["asset"] == "XYZ")
    assert xyz["difference"] == pytest.approx(5.0) and xyz["first_divergence"].endswith("Z")
    assert {c["kind"] for c in xyz["causes"]} == {reconcile.ACCOUNT_TYPE, reconcile.MARKET}

    with session_scope() as session:
        gamma = _gamma(session)
    assert main(["reconcile", "--client", "Gamma"]) == 0
    assert capsys.readouterr().out.startswith("0 unbalanced, 0 unknown, 1 balanced")
    assert main(["reconcile", "--connector", str(gamma), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["balanced"] == 1
    assert main(["reconcile", "--client", "Beta"]) == 1
    text = capsys.readouterr().out
    assert "UNBALANCED  Beta · okx / main" in text and "cause (market not walked)" in text

    for argv, message in ((["--client", "Nobody"], "No client named"), (["--connector", "abc"], "whole number"),
                          (["--connector", "999999"], "No connector with id 999999"),
                          (["--client", " "], "--client needs a client name")):
        assert main(["reconcile", *argv]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err


@pytest.fixture
def fresh_cache() -> Iterator[None]:
    st.cache_data.clear()
    yield
    st.cache_data.clear()


@pytest.mark.parametrize("role", ["admin", "analyst", "client"])
def test_reconciliation_page_for_each_role(seeded: Seeded, role: str, fresh_cache: None) -> None:
    at = open_page("pages/portfolio/reconciliation.py", seeded.users[role])
    table = at.dataframe[0].value
    clients = {"Alpha"} if role == "client" else {"Alpha", "Beta"}
    assert set(table["Client"].str.extract(scope._SHOWN.pattern)[0]) == clients  # names link to their Overview
    assert (table["Status"] == "Unbalanced").all()  # balanced rows are hidden while something is unbalanced
    assert metric(at, "Unbalanced") == str(len(table))
    page = texts(at)
    assert ("Delta · okx / main" in page) is (role != "client")
    if role != "client":
        assert any("no market of XYZ was walked" in cause for cause in table["Cause"])
    assert "Where to look" in [s.value for s in at.subheader]
    assert at.title[0].value == ("Reconciliation · Alpha" if role == "client" else "Reconciliation · All clients")
    assert "The exchange keeps history only since" in page  # the picked row's causes, in full
    widget(at.toggle, "Show balanced rows").set_value(True).run()
    assert "Balanced" in set(at.dataframe[0].value["Status"])
    if role == "admin":  # one account picked in the sidebar: its rows only
        at.session_state[scope.ACCOUNT_KEY] = seeded.alpha_binance
        at.run()
        accounts = at.dataframe[0].value["Account"].str.extract(scope._SHOWN.pattern)[0]
        assert set(accounts) == {"binance / main"} and at.title[0].value.endswith("Alpha › binance / main")
    assert not at.exception


def test_where_to_look_picks_an_account_then_one_of_its_assets(seeded: Seeded, fresh_cache: None) -> None:
    at = open_page("pages/portfolio/reconciliation.py", seeded.users["admin"])
    table = at.dataframe[0].value
    named = pd.DataFrame({column: table[column].str.extract(scope._SHOWN.pattern)[0]
                          for column in ("Client", "Account", "Asset")})
    counts = named.groupby(["Client", "Account"], sort=False).size()
    assert len(counts) == 2  # both seeded accounts have findings
    accounts = widget(at.selectbox, "Unbalanced account")
    assert accounts.options == [f"{client} · {account} ({n} unbalanced)" for (client, account), n in counts.items()]
    accounts.select_index(1).run()
    client, account = counts.index[1]
    own = named[(named["Client"] == client) & (named["Account"] == account)]
    assert widget(at.selectbox, "Unbalanced asset").options == list(own["Asset"])  # that account's, in table order
    assert not at.exception


def test_reconciliation_table_is_kept_per_viewer_and_drawn_again_after_a_write(seeded: Seeded,
                                                                               fresh_cache: None) -> None:
    def implied(at: AppTest, client: str, asset: str) -> float:
        table = at.dataframe[0].value
        rows = table[(table["Client"].str.extract(scope._SHOWN.pattern)[0] == client)
                     & (table["Asset"].str.extract(scope._SHOWN.pattern)[0] == asset)]
        return float(rows["Implied by history"].iloc[0])

    admin = open_page("pages/portfolio/reconciliation.py", seeded.users["admin"])
    widget(admin.toggle, "Show balanced rows").set_value(True).run()
    before = implied(admin, "Beta", "XYZ")
    client = open_page("pages/portfolio/reconciliation.py", seeded.users["client"])  # the same process's cache
    assert set(client.dataframe[0].value["Client"].str.extract(scope._SHOWN.pattern)[0]) == {"Alpha"}
    with session_scope() as session:  # a fill before the snapshots: a new write version, a new implied balance
        session.add(Trade(connector_id=seeded.beta_okx, trade_id="B-later",
                          timestamp=int(datetime(2024, 2, 10, tzinfo=UTC).timestamp() * 1000),
                          symbol="XYZ/USDT", base="XYZ", quote="USDT", side="buy", amount=5.0, price=2.0, cost=10.0))
    admin.run()
    assert implied(admin, "Beta", "XYZ") == before + 5.0  # the kept table is not shown after the write
    assert not admin.exception and not client.exception


def _record_syncs() -> None:
    """A successful sync result per connector with its reconciliation, as the runner records it."""
    with session_scope() as session:
        run = SyncRun(trigger="cli", total=0)
        session.add(run)
        session.flush()
        for connector_id in session.scalars(select(Connector.id)):
            status, unbalanced = implied_totals.connector_status(session, connector_id)
            session.add(SyncResult(run_id=run.id, connector_id=connector_id, success=True,
                                   reconciliation=status, unbalanced=unbalanced))


def test_overview_counts_unbalanced_accounts_and_trades_take_a_link(seeded: Seeded, fresh_cache: None) -> None:
    at = open_page("pages/portfolio/overview.py", seeded.users["admin"])
    assert "reconciliation" not in texts(at).lower()  # nothing recorded yet: nothing claimed
    _record_syncs()
    st.cache_data.clear()
    at = open_page("pages/portfolio/overview.py", seeded.users["admin"])
    assert "2 account(s) reported balances at their last sync that their synced history does not explain" in texts(at)
    client = open_page("pages/portfolio/overview.py", seeded.users["client"])
    assert "1 account(s) reported balances" in texts(client)
    with session_scope() as session:
        session.execute(delete(SyncResult))
        session.execute(delete(BalanceSnapshot).where(BalanceSnapshot.connector_id != _gamma(session)))
    _record_syncs()
    st.cache_data.clear()
    assert "the synced history explains every account's reported balances" in texts(
        open_page("pages/portfolio/overview.py", seeded.users["admin"]))

    # the link's ?connector= sets the sidebar's account (tests/test_drilldown.py); its dates apply on Trades
    at = AppTest.from_file(str(PROJECT_ROOT / "pages" / "portfolio" / "trades.py"), default_timeout=60)
    at.session_state["auth_user_id"] = seeded.users["admin"]
    at.session_state[scope.ACCOUNT_KEY] = seeded.alpha_binance
    at.session_state[scope.CLIENT_KEY] = seeded.alpha
    at.query_params["start"] = "2024-01-01"
    at.query_params["end"] = "2024-01-31"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value == "Trades · Alpha › binance / main"
    assert "3 fill(s) match" in texts(at)


def test_the_reconciliation_kept_on_disk_reads_back_as_computed(database_url: str) -> None:
    """``cached_reconcile``: the second call reads the file the first wrote, with the same rows,
    causes (as (kind, sentence) pairs) and moments."""
    from tests.test_queries import seed_portfolio

    seeded = seed_portfolio()
    admin = seeded.viewer("admin")
    computed = reconcile.reconcile(admin)
    assert reconcile.cached_reconcile(admin) is not None  # written
    read = reconcile.cached_reconcile(admin)
    assert not computed.rows.empty and read.unsynced == computed.unsynced
    pd.testing.assert_frame_equal(read.rows, computed.rows, check_dtype=False)
    assert all(isinstance(pairs, tuple) and all(isinstance(pair, tuple) for pair in pairs)
               for pairs in read.rows["causes"])

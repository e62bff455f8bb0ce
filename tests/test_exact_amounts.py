"""Exact round trip of extreme amounts (24 significant digits, 18 decimals) through sync, storage,
CSV and display: the simulated exchange sends a token balance as its decimal strings, as real
exchanges do; the sync keeps every digit on SQLite and PostgreSQL; the Balances CSV and table
show every digit, and the displayed free + used foot to the displayed total."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from decimal import Decimal

import pytest
from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from lib import reports
from lib.access import SYSTEM
from lib.db import session_scope
from lib.models import BalanceSnapshot, OpeningBalance, User, decimal_text
from lib.settings import PROJECT_ROOT
from lib.simulator import Simulator, SimulatorConfig
from lib.simulator.market import CLIENT_TOKEN
from lib.sync import markets, sync_connectors
from lib.ui import format as fmt
from lib.ui import scope
from tests import table_cells
from tests.sync_helpers import add_connectors

TOKEN = CLIENT_TOKEN.split("/")[0]  # listed and priced, never touched by generated histories
FREE, USED = "123456.123456789012345678", "654321.876543210987654321"
TOTAL = "777777.999999999999999999"  # 24 significant digits, 18 decimals, as are FREE and USED


@pytest.fixture(params=["okx", "binance"])
def sim(request: pytest.FixtureRequest) -> Iterator[Simulator]:
    markets.forget()
    simulator = Simulator(SimulatorConfig(seed=14, accounts=1, days=3, fills_per_account=12,
                                          dialects=[request.param])).start()
    ledger = simulator.world.ledger(simulator.accounts[0].id)
    with ledger.lock:
        ledger.hold_exact(TOKEN, FREE, USED)
    yield simulator
    simulator.stop()


def test_the_simulator_sends_every_digit(sim: Simulator) -> None:
    truth = sim.truth(sim.accounts[0].id).balances[TOKEN]
    assert truth["total"] == float(TOTAL)  # the float view rounds; the wire carries the strings
    assert Decimal(FREE) + Decimal(USED) == Decimal(TOTAL)


def test_extreme_amounts_round_trip_through_sync_storage_csv_and_display(database_url: str, sim: Simulator) -> None:
    connector = next(iter(add_connectors(sim).values()))
    report = sync_connectors(SYSTEM)
    assert report.successful == 1, [r.error for r in report.results]

    with session_scope() as session:
        stored = session.scalars(select(BalanceSnapshot).where(BalanceSnapshot.connector_id == connector,
                                                               BalanceSnapshot.asset == TOKEN)).one()
        opening = session.scalars(select(OpeningBalance).where(OpeningBalance.connector_id == connector,
                                                               OpeningBalance.asset == TOKEN)).one()
        admin = User(username="admin-user", role="admin", password_hash=None)
        session.add(admin)
        session.flush()
        admin_id = admin.id
    assert [decimal_text(v) for v in (stored.free, stored.used, stored.total)] == [FREE, USED, TOTAL]
    assert opening.amount == Decimal(TOTAL)  # nothing in the history explains it: booked to the last digit

    rows = reports.balances_report(SYSTEM, by_account=True).rows
    exported = list(csv.DictReader(io.StringIO(fmt.csv_bytes(rows).decode())))
    (line,) = [r for r in exported if r["asset"] == TOKEN]
    assert (line["free"], line["used"], line["total"]) == (FREE, USED, TOTAL)
    assert all(len(r["usd"].replace("-", "").replace(".", "").lstrip("0")) <= 15 for r in exported if r["usd"])

    at = AppTest.from_file(str(PROJECT_ROOT / "pages" / "portfolio" / "balances.py"), default_timeout=60)
    at.session_state["auth_user_id"] = admin_id
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    table = table_cells.shown(at.dataframe[0])
    assets = table["Asset"].str.extract(scope._SHOWN.pattern)[0]  # asset cells link to the Asset page
    shown = table[assets == TOKEN].iloc[0]
    assert (shown["Free"], shown["Used"], shown["Total"]) == ("123,456.123456789012345678",
                                                              "654,321.876543210987654321",
                                                              "777,777.999999999999999999")
    for _, row in table.iterrows():  # every asset's displayed columns foot
        free, used, total = (Decimal(row[c].replace(",", "")) for c in ("Free", "Used", "Total"))
        assert free + used == total, (row["Asset"], row["Free"], row["Used"], row["Total"])
    numbers = table_cells.numbers(at.dataframe[0])  # the cells are numbers (they sort by value), exact ones
    held = numbers[assets == TOKEN].iloc[0]
    assert (held["Free"], held["Used"], held["Total"]) == (Decimal(FREE), Decimal(USED), Decimal(TOTAL))

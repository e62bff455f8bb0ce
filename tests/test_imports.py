"""CSV imports of history: good files are stored once, bad files change nothing, on both backends."""

from __future__ import annotations

import json
import secrets
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from lib import clients, connectors, imports, reports
from lib.access import SYSTEM, Role, Viewer
from lib.cli import main
from lib.db import session_scope
from lib.models import AuditEvent, HistoryImport, Trade, Transfer, utcnow
from lib.settings import PROJECT_ROOT
from lib.sync import store
from lib.vault import load_vault
from tests.helpers import database_contents

PAGE = str(PROJECT_ROOT / "pages/admin/imports.py")
FILLS_HEADER = "timestamp,symbol,side,amount,price,cost,fee_cost,fee_currency,trade_id,order_id,taker_or_maker"
FILLS = FILLS_HEADER + """
2023-01-05T10:00:00Z,BTC/USDT,buy,0.5,16800.12,,8.40006,USDT,t-1,o-1,taker
1672999200000,BTC/USDT,sell,0.123456789012345678,17000,,0,,t-2,,maker
2023-01-07T12:30:00+00:00,ETH/BTC,buy,123456789012.12345678,0.070000000000000001,8641975230.8486419746,0.001,ETH,t-3,o-3,
"""
TRANSFERS = """timestamp,type,currency,amount,fee_cost,fee_currency,transfer_id,txid,status
2023-01-01T00:00:00Z,deposit,USDT,10000.5,0,,d-1,0xabc,ok
2023-01-09,withdrawal,BTC,0.1,0.0005,BTC,w-1,,ok
"""


@pytest.fixture
def connector_id(database_url) -> int:
    """A Binance connector, stored without reaching the exchange."""
    with session_scope() as session:
        client_id = clients.create_client(session, SYSTEM, "Sharp Foundation").id
        data = connectors.ConnectorInput("binance", "main", {"apiKey": "key" + secrets.token_hex(8),
                                                              "secret": secrets.token_hex(16)})
        return connectors.create_connector(session, SYSTEM, load_vault(), client_id, data).id


def run_import(connector_id: int, kind: str, text: str | bytes, name: str = "history.csv") -> imports.ImportResult:
    data = text.encode() if isinstance(text, str) else text
    with session_scope() as session:
        return imports.import_file(session, SYSTEM, connector_id, kind, name, data, via="test")


def stored(model: type[Trade] | type[Transfer]) -> list:
    with session_scope() as session:
        return list(session.scalars(select(model).order_by(model.timestamp)))


def test_good_fills_are_stored_exactly_with_their_import(connector_id):
    result = run_import(connector_id, "fills", FILLS, "old fills.csv")
    assert (result.rows, result.new_rows, result.previous_id) == (3, 3, None)
    fills = stored(Trade)
    assert [f.trade_id for f in fills] == ["t-1", "t-2", "t-3"]
    assert {f.import_id for f in fills} == {result.import_id}
    assert (fills[0].base, fills[0].quote, fills[0].side, fills[0].taker_or_maker) == ("BTC", "USDT", "buy", "taker")
    assert Decimal(str(fills[0].cost)) == Decimal("8400.06")  # amount x price when cost is empty
    assert fills[1].fee_cost == 0 and fills[1].fee_currency is None and fills[1].order_id is None
    assert fills[1].timestamp == 1672999200000
    assert (fills[1].amount, fills[2].amount, fills[2].price, fills[2].cost) == (  # exact, as written
        Decimal("0.123456789012345678"), Decimal("123456789012.12345678"), Decimal("0.070000000000000001"),
        Decimal("8641975230.8486419746"))
    with session_scope() as session:
        record = session.get(HistoryImport, result.import_id)
        assert (record.kind, record.filename, record.rows, record.new_rows, record.actor) == (
            "fills", "old fills.csv", 3, 3, "system")
        assert (record.first_timestamp, record.last_timestamp) == (fills[0].timestamp, fills[-1].timestamp)
        event = session.scalars(select(AuditEvent).where(AuditEvent.action == "history.imported.fills")).one()
    assert event.actor == "system" and "Sharp Foundation / binance / main" in event.target
    assert "old fills.csv" in event.detail and "3 new" in event.detail


def test_good_transfers_are_stored(connector_id):
    result = run_import(connector_id, "transfers", TRANSFERS)
    assert (result.rows, result.new_rows) == (2, 2)
    rows = stored(Transfer)
    assert [(t.type, t.currency, t.transfer_id, t.status) for t in rows] == [
        ("deposit", "USDT", "d-1", "ok"), ("withdrawal", "BTC", "w-1", "ok")]
    assert Decimal(str(rows[1].fee_cost)) == Decimal("0.0005") and rows[0].txid == "0xabc" and rows[1].txid is None


def test_reimport_adds_nothing_and_names_the_earlier_import(connector_id, database_url):
    first = run_import(connector_id, "fills", FILLS)
    trades = [(t.id, t.trade_id, t.import_id) for t in stored(Trade)]
    again = run_import(connector_id, "fills", FILLS)
    assert (again.rows, again.new_rows, again.previous_id) == (3, 0, first.import_id)
    assert "0 new" in again.message() and f"import #{first.import_id}" in again.message()
    assert [(t.id, t.trade_id, t.import_id) for t in stored(Trade)] == trades


def test_rows_the_sync_stored_are_skipped(connector_id):
    synced = {"trade_id": "t-2", "order_id": None, "timestamp": 1672999200000, "symbol": "BTC/USDT", "base": "BTC",
              "quote": "USDT", "side": "sell", "taker_or_maker": "maker", "amount": 0.1, "price": 17000.0,
              "cost": 1700.0, "fee_cost": 0.0, "fee_currency": None}
    assert store.save_history(connector_id, "trades", "trades", [synced], None, {}) == 1
    with session_scope() as session:
        assert imports.preview(session, SYSTEM, connector_id, "fills", FILLS.encode()).new_rows == 2
    result = run_import(connector_id, "fills", FILLS)
    assert (result.rows, result.new_rows) == (3, 2)
    by_id = {t.trade_id: t for t in stored(Trade)}
    assert by_id["t-2"].import_id is None and Decimal(str(by_id["t-2"].amount)) == Decimal("0.1")  # synced row kept
    assert by_id["t-1"].import_id == result.import_id


def test_a_synced_transfer_is_skipped_and_the_same_id_of_another_type_is_not(connector_id):
    synced = {"transfer_id": "d-1", "type": "deposit", "timestamp": 1672531200000, "currency": "USDT",
              "amount": 10000.5, "fee_cost": 0.0, "fee_currency": None, "status": "ok", "txid": "0xabc"}
    store.save_history(connector_id, "deposits", "deposits", [synced], None, {})
    result = run_import(connector_id, "transfers", TRANSFERS.replace("withdrawal,BTC,0.1,0.0005,BTC,w-1",
                                                                     "withdrawal,BTC,0.1,0.0005,BTC,d-1"))
    assert (result.rows, result.new_rows) == (2, 1)


def _future() -> str:
    """Tomorrow: the cases are built when the module is collected, maybe many minutes before they run."""
    return (utcnow() + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _fill_line(**cells: str) -> str:
    values = {"timestamp": "2023-01-05T10:00:00Z", "symbol": "BTC/USDT", "side": "buy", "amount": "1",
              "price": "100", "cost": "", "fee_cost": "0", "fee_currency": "", "trade_id": "x-1", "order_id": "",
              "taker_or_maker": ""} | cells
    return ",".join(values[c] for c in FILLS_HEADER.split(","))


def _with(line: str, header: str = FILLS_HEADER) -> bytes:
    """A good file with one more line, which is bad (line 5)."""
    return (FILLS + line + "\n").encode() if header == FILLS_HEADER else (header + "\n" + line + "\n").encode()


BAD_FILES: dict[str, tuple[bytes, str]] = {
    "unclosed quote": (FILLS.encode() + b'2023-01-05T10:00:00Z,"BTC/USDT,buy,1,100,,0,,x-1,,\n',
                       "Line 5: malformed CSV"),
    "text after a quote": (_with('2023-01-05T10:00:00Z,"BTC/USDT"x,buy,1,100,,0,,x-1,,'), "Line 5: malformed CSV"),
    "too few values": (_with("2023-01-05T10:00:00Z,BTC/USDT,buy,1"), "Line 5: 4 value(s)"),
    "empty file": (b"", "The file is empty"),
    "header only": ((FILLS_HEADER + "\n").encode(), "no rows"),
    "missing column": (FILLS.replace("trade_id,", "").replace(",t-1,", ",").replace(",t-2,", ",")
                       .replace(",t-3,", ",").encode(), "Line 1: the header lacks the required column(s) trade_id"),
    "unknown column": (("fee," + FILLS_HEADER + "\n0," + _fill_line() + "\n").encode(), "unknown column(s) 'fee'"),
    "wrong exchange": (("exchange," + FILLS_HEADER + "\nbinance," + _fill_line() + "\nokx,"
                        + _fill_line(trade_id="x-2") + "\n").encode(),
                       "Line 3, column exchange: the file is for 'okx', this connector is on binance"),
    "duplicate row": (_with(_fill_line(trade_id="t-2", side="sell", amount="2")),
                      "Line 5, column trade_id: 't-2' (BTC/USDT) repeats line 3"),
    "future date": (_with(_fill_line(timestamp=_future())), "Line 5, column timestamp"),
    "future epoch ms": (_with(_fill_line(timestamp=str(4102444800000))), "is in the future"),
    "seconds not ms": (_with(_fill_line(timestamp="1672999200")), "before 2009-01-03"),
    "not utc": (_with(_fill_line(timestamp="2023-01-05T10:00:00+01:00")), "is not UTC"),
    "too many decimals": (_with(_fill_line(amount="0.1234567890123456789")),
                          "Line 5, column amount: 0.1234567890123456789 has 19 decimals; at most 18"),
    "too many decimals in 30 digits": (_with(_fill_line(amount="12345678901.1234567890123456789")),
                                       "has 19 decimals"),
    "too many integer digits": (_with(_fill_line(price="123456789012345678901")), "more than 20 digits"),
    "exponent": (_with(_fill_line(amount="1e-3")), "Line 5, column amount: '1e-3' is not a decimal number"),
    "thousands separator": (_with(_fill_line(price='"1,000"')), "column price: '1,000' is not a decimal"),
    "negative amount": (_with(_fill_line(amount="-1")), "column amount: -1 must be greater than 0"),
    "bad side": (_with(_fill_line(side="long")), "Line 5, column side: 'long' is not one of buy, sell"),
    "bad role": (_with(_fill_line(taker_or_maker="both")), "column taker_or_maker"),
    "bad symbol": (_with(_fill_line(symbol="BTCUSDT")), "column symbol: 'BTCUSDT' is not BASE/QUOTE"),
    "base not the symbol's": (("base," + FILLS_HEADER + "\nETH," + _fill_line() + "\n").encode(),
                              "Line 2, column base: 'ETH' does not match the symbol BTC/USDT"),
    "fee without currency": (_with(_fill_line(fee_cost="0.1")), "column fee_currency: empty"),
    "empty id": (_with(_fill_line(trade_id="")), "Line 5, column trade_id: empty"),
    "id too long": (_with(_fill_line(trade_id="x" * 101)), "Line 5, column trade_id: too long"),
    "zero-width character": (_with(_fill_line(symbol="B\u200bTC/USDT")), "U+200B"),
    "latin-1 bytes": (FILLS.encode() + _fill_line(trade_id="caf\u00e9").encode("latin-1") + b"\n",
                      "Line 5: not UTF-8 text (byte 0xe9)"),
    "binary junk": (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "Line 1: not UTF-8 text"),
    "nul byte": (FILLS.encode() + b"\x00\n", "Line 5: holds a NUL character"),
    "bad transfer type": (_with("2023-01-01,refund,USDT,1,0,,r-1,,ok", TRANSFERS.splitlines()[0]),
                          "Line 2, column type: 'refund' is not one of deposit, withdrawal"),
    "bad transfer status": (_with("2023-01-01,deposit,USDT,1,0,,r-1,,done", TRANSFERS.splitlines()[0]),
                            "column status: 'done' is not one of ok, pending, failed, canceled"),
}


@pytest.mark.parametrize("case", BAD_FILES)
def test_bad_file_changes_nothing(connector_id, database_url, case):
    data, expected = BAD_FILES[case]
    kind = "transfers" if case.startswith("bad transfer") else "fills"
    run_import(connector_id, "fills", FILLS.replace("t-", "old-"), "earlier.csv")  # rows already there stay
    before = database_contents(database_url)
    with pytest.raises(imports.ImportRefused) as caught:
        run_import(connector_id, kind, data)
    assert expected in str(caught.value)
    assert "\n" not in str(caught.value)
    assert database_contents(database_url) == before


def test_too_big_a_file_is_refused(connector_id, database_url, monkeypatch):
    monkeypatch.setattr(imports, "MAX_ROWS", 2)
    before = database_contents(database_url)
    with pytest.raises(imports.ImportRefused, match="Line 4: more than 2 rows"):
        run_import(connector_id, "fills", FILLS)
    assert database_contents(database_url) == before


def test_only_admins_import(connector_id, database_url):
    before = database_contents(database_url)
    for role in (Role.ANALYST, Role.CLIENT):
        viewer = Viewer("someone", role, frozenset({1}))
        with pytest.raises(PermissionError), session_scope() as session:
            imports.import_file(session, viewer, connector_id, "fills", "x.csv", FILLS.encode(), via="test")
    assert database_contents(database_url) == before


def test_coverage_shows_imported_ranges(connector_id):
    run_import(connector_id, "fills", FILLS)
    run_import(connector_id, "transfers", TRANSFERS)
    (coverage,) = reports.coverage_report(SYSTEM, connector_id=connector_id)
    lines = {line.data: line for line in coverage.lines}
    assert lines["Fills imported from CSV"].fetched == "2023-01-05 – 2023-01-07"
    assert lines["Fills imported from CSV"].source == "CSV import: 1 file(s), 3 new row(s)"
    assert lines["Deposits & withdrawals imported from CSV"].fetched == "2023-01-01 – 2023-01-09"
    run_import(connector_id, "fills", _fill_line(timestamp="2023-03-01T00:00:00Z", trade_id="late").join(
        [FILLS_HEADER + "\n", "\n"]))
    (coverage,) = reports.coverage_report(SYSTEM, connector_id=connector_id)
    fills = next(line for line in coverage.lines if line.data == "Fills imported from CSV")
    assert fills.fetched == "2023-01-05 – 2023-01-07, 2023-03-01 – 2023-03-01"


# --------------------------------------------------------------------------- CLI


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_imports_and_refuses_in_one_line(connector_id, database_url, tmp_path, capsys):
    good = tmp_path / "fills.csv"
    good.write_text(FILLS)
    code, out, err = cli(capsys, "import", "fills", "--connector", str(connector_id), str(good), "--json")
    assert code == 0, err
    assert {k: json.loads(out)[k] for k in ("rows", "new_rows", "previous_import_id")} == {
        "rows": 3, "new_rows": 3, "previous_import_id": None}
    code, out, _ = cli(capsys, "import", "fills", "--connector", str(connector_id), str(good))
    assert code == 0 and "0 new" in out
    code, out, _ = cli(capsys, "connector", "coverage", str(connector_id))
    assert code == 0 and "Fills imported from CSV" in out and "2023-01-05 – 2023-01-07" in out
    with session_scope() as session:
        actors = session.scalars(select(AuditEvent.actor).where(AuditEvent.action == "history.imported.fills")).all()
    assert actors == ["system", "system"]

    bad = tmp_path / "bad.csv"
    bad.write_bytes(BAD_FILES["too many decimals"][0])
    before = database_contents(database_url)
    for argv in (("import", "fills", "--connector", str(connector_id), str(bad)),
                 ("import", "fills", "--connector", str(connector_id), str(tmp_path / "missing.csv")),
                 ("import", "fills", "--connector", str(connector_id), str(tmp_path)),
                 ("import", "fills", "--connector", "9999", str(good)),
                 ("import", "fills", "--connector", "x", str(good)),
                 ("import", "trades", "--connector", str(connector_id), str(good)),
                 ("import", "transfers", "--connector", str(connector_id), str(good))):
        code, out, err = cli(capsys, *argv)
        assert code == 2 and out == "" and err.startswith("error: ") and err.count("\n") == 1, (argv, err)
    assert database_contents(database_url) == before


# --------------------------------------------------------------------------- page


def page_as(role: str) -> AppTest:
    from tests.test_admin_page import login

    at = login(AppTest.from_file(PAGE, default_timeout=60), role)
    at.run()
    assert not at.exception
    return at


def test_page_previews_imports_and_lists_as_admin(connector_id):
    at = page_as("admin")
    at.file_uploader[0].upload("old fills.csv", FILLS.encode(), "text/csv")
    next(b for b in at.button if b.label == "Check file").click()
    at.run()
    assert not at.exception
    shown = " ".join(str(e.value) for e in at.info)
    assert "3 row(s)" in shown and "2023-01-05 – 2023-01-07" in shown and "3 not yet stored" in shown
    assert stored(Trade) == []
    next(b for b in at.button if b.label == "Import").click()
    at.run()
    assert not at.exception
    assert "3 new" in " ".join(str(e.value) for e in at.success)
    assert len(stored(Trade)) == 3
    assert "old fills.csv" in at.dataframe[0].value.to_string()


def test_page_shows_a_bad_row_as_text_and_writes_nothing(connector_id, database_url):
    at = page_as("admin")
    before = database_contents(database_url)
    at.file_uploader[0].upload("bad_*x*_.csv", _with(_fill_line(side="**long**")), "text/csv")
    next(b for b in at.button if b.label == "Import").click()
    at.run()
    assert not at.exception
    assert [e.value for e in at.error] == [
        "Line 5, column side: '\\*\\*long\\*\\*' is not one of buy, sell."]
    assert database_contents(database_url) == before


@pytest.mark.parametrize("role", ["analyst", "client"])
def test_page_refuses_other_roles(connector_id, role):
    at = page_as(role)
    assert [e.value for e in at.error] == ["You do not have access to this page."]
    assert not at.file_uploader

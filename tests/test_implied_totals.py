"""lib.implied_totals gives exactly what the long way gives (every balance move of
``lib.rebuild.balance_moves`` added up: ``reference_totals``, ``reference_status``, the code the sync
ran before), on random stored histories, on SQLite and PostgreSQL.

The histories mix spot and contract fills (realised P&L reported or not), fees in the base, the
quote, a third currency or none, negative fees (rebates) and fees that cancel out, deposits and
withdrawals in every status with fees in the same or another currency, ledger entries of income
and non-income types with and without a direction, opening balances, and several balance
snapshots (account types summed) with events after the newest one.
"""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal, localcontext

from sqlalchemy import Double, cast, func, select
from sqlalchemy.orm import Session

from lib import rebuild, reconcile
from lib.db import session_scope
from lib.implied_totals import connector_status, exact_totals
from lib.models import BalanceSnapshot, Client, LedgerEntry, OpeningBalance, Trade, Transfer
from tests.test_queries import _connector


def reference_totals(session: Session, connector_id: int) -> dict[str, Decimal]:
    """Every exact balance move of the connector added up per asset."""
    moves = rebuild.balance_moves(session, [connector_id], exact=True)
    totals: dict[str, Decimal] = {}
    with localcontext(prec=rebuild.EXACT_DIGITS):
        for asset, change in zip(moves["asset"], moves["change"], strict=True):
            totals[str(asset)] = totals.get(str(asset), Decimal(0)) + change
    return totals


def reference_status(session: Session, connector_id: int) -> tuple[str, int]:
    """The connector's moves up to its newest snapshot against that snapshot, asset by asset."""
    newest = session.scalar(select(func.max(BalanceSnapshot.taken_at)).where(
        BalanceSnapshot.connector_id == connector_id))
    if newest is None:
        return "unknown", 0
    reported: dict[str, float] = {}
    for asset, total in session.execute(select(BalanceSnapshot.asset, cast(BalanceSnapshot.total, Double)).where(
            BalanceSnapshot.connector_id == connector_id, BalanceSnapshot.taken_at == newest)):
        reported[asset] = reported.get(asset, 0.0) + float(total or 0.0)
    moves = rebuild.balance_moves(session, [connector_id])
    upto = moves[moves["timestamp"] <= int(newest.timestamp() * 1000)]
    implied = upto.groupby("asset")["change"].sum()
    turnover = upto["change"].abs().groupby(upto["asset"]).sum()
    known = set(moves["asset"])
    unbalanced = unknown = 0
    for asset in known | set(reported):
        held = reported.get(asset, 0.0)
        if abs(held - float(implied.get(asset, 0.0))) > reconcile.tolerance(float(turnover.get(asset, 0.0)), held):
            unbalanced += asset in known
            unknown += asset not in known
    if unbalanced:
        return "unbalanced", unbalanced
    return ("unknown", 0) if unknown or not (known | set(reported)) else ("balanced", 0)


START = datetime(2026, 1, 1, tzinfo=UTC)
SPOT = [("BTC/USDT", "BTC", "USDT"), ("ETH/BTC", "ETH", "BTC"), ("SOL/USDC", "SOL", "USDC"),
        ("A:B/USDT", "A:B", "USDT")]  # a colon before the slash is an asset code: spot
CONTRACTS = [("BTC/USDT:USDT", "BTC", "USDT"), ("ETH/USD:ETH", "ETH", "USD")]
STATUSES = [None, "ok", "pending", "failed", "canceled"]
LEDGER_TYPES = ["funding", "Interest", "REBATE", "trade", "fee", "transfer", None]


def _amount(rng: random.Random, signed: bool = False) -> Decimal:
    """Up to 24 significant digits with up to 18 decimals."""
    value = Decimal(rng.randrange(1, 10 ** rng.randrange(1, 13))).scaleb(-rng.randrange(0, 19))
    return -value if signed and rng.random() < 0.4 else value


def _ms(moment: datetime) -> int:
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)


def _history(rng: random.Random, connector_id: int) -> list[object]:
    """Random fills, transfers, ledger entries and opening balances of one connector."""
    rows: list[object] = []
    span = _ms(START + timedelta(days=30)) - _ms(START)
    for n in range(rng.randrange(0, 60)):
        symbol, base, quote = rng.choice(SPOT + CONTRACTS)
        contract = (symbol, base, quote) in CONTRACTS
        fee = rng.choice([Decimal(0), _amount(rng), _amount(rng, signed=True)])
        pnl = _amount(rng, signed=True) if contract and rng.random() < 0.7 else (
            Decimal(0) if contract and rng.random() < 0.3 else None)
        rows.append(Trade(connector_id=connector_id, trade_id=f"t{n}", timestamp=_ms(START) + rng.randrange(span),
                          symbol=symbol, base=base, quote=quote, side=rng.choice(["buy", "sell"]),
                          amount=_amount(rng), price=Decimal(1), cost=_amount(rng), fee_cost=fee,
                          fee_currency=rng.choice([base, quote, "BNB", None]), realized_pnl=pnl))
    for n in range(rng.randrange(0, 12)):
        currency = rng.choice(["BTC", "USDT", "ETH", "XRP"])
        rows.append(Transfer(connector_id=connector_id, transfer_id=f"x{n}", type=rng.choice(["deposit", "withdrawal"]),
                             timestamp=_ms(START) + rng.randrange(span), currency=currency, amount=_amount(rng),
                             fee_cost=rng.choice([Decimal(0), _amount(rng)]),
                             fee_currency=rng.choice([None, currency, "BNB"]), status=rng.choice(STATUSES)))
    for n in range(rng.randrange(0, 12)):
        rows.append(LedgerEntry(connector_id=connector_id, entry_key=f"l{n}",
                                timestamp=_ms(START) + rng.randrange(span),
                                currency=rng.choice(["USDT", "BNB", "DOT"]), amount=_amount(rng, signed=True),
                                direction=rng.choice(["in", "out", None]), type=rng.choice(LEDGER_TYPES)))
    for asset in rng.sample(["BTC", "USDT", "ADA"], rng.randrange(0, 3)):
        rows.append(OpeningBalance(connector_id=connector_id, asset=asset,
                                   amount=rng.choice([Decimal(0), _amount(rng)]), usd_price=None,
                                   timestamp=_ms(START) + rng.randrange(-span, 2 * span)))
    return rows


def _snapshots(rng: random.Random, connector_id: int) -> list[BalanceSnapshot]:
    """Up to three snapshots (the newest often before some events, a millisecond not whole):
    at the newest, per asset the implied balance exactly (balanced), changed (unbalanced), or an
    asset with no history (unknown), split over two account types."""
    with session_scope() as session:
        moves = rebuild.balance_moves(session, [connector_id], exact=True)
    rows: list[BalanceSnapshot] = []
    times = sorted(START + timedelta(days=rng.uniform(-1, 32), microseconds=rng.randrange(1000))
                   for _ in range(rng.randrange(0, 4)))
    for taken in times:
        cut = int(taken.timestamp() * 1000)
        implied = moves[moves["timestamp"] <= cut].groupby("asset")["change"].sum()
        for asset, total in implied.items():
            chosen = rng.random()
            if chosen < 0.15:
                continue  # not reported
            with localcontext(prec=80):
                total = total + _amount(rng) if chosen > 0.8 else total
                part = total / 4
                rows += [BalanceSnapshot(connector_id=connector_id, taken_at=taken, asset=str(asset), free=total - part,
                                         used=0, total=total - part, account_type=""),
                         BalanceSnapshot(connector_id=connector_id, taken_at=taken, asset=str(asset), free=part,
                                         used=0, total=part, account_type="funding")]
        if rng.random() < 0.3:
            rows.append(BalanceSnapshot(connector_id=connector_id, taken_at=taken, asset="NEW", free=1, used=0,
                                        total=1, account_type=""))
    return rows


def _crafted(connector_id: int) -> list[object]:
    """Fees of +1 and -1 BNB in one market: BNB is named though it sums to nothing (and
    unbalanced, not unknown, against 5 reported); USDC is
    moved only after the newest snapshot; a ledger entry without direction pays out."""
    at = _ms(START)
    fill = {"connector_id": connector_id, "symbol": "BTC/USDT", "base": "BTC", "quote": "USDT", "side": "buy",
            "amount": Decimal("0.1"), "price": Decimal(1), "cost": Decimal("100"), "fee_currency": "BNB"}
    return [Trade(trade_id="a", timestamp=at, fee_cost=Decimal(1), **fill),
            Trade(trade_id="b", timestamp=at + 1, fee_cost=Decimal(-1), **fill),
            Trade(connector_id=connector_id, trade_id="c", timestamp=at + 10 ** 9, symbol="SOL/USDC", base="SOL",
                  quote="USDC", side="sell", amount=Decimal(2), price=Decimal(1), cost=Decimal(50),
                  fee_cost=Decimal(0), fee_currency=None),
            LedgerEntry(connector_id=connector_id, entry_key="l", timestamp=at, currency="USDT",
                        amount=Decimal("-3.5"), direction=None, type="funding"),
            BalanceSnapshot(connector_id=connector_id, taken_at=START + timedelta(seconds=1), asset="BTC",
                            free=Decimal("0.2"), used=0, total=Decimal("0.2"), account_type=""),
            BalanceSnapshot(connector_id=connector_id, taken_at=START + timedelta(seconds=1), asset="BNB",
                            free=Decimal(5), used=0, total=Decimal(5), account_type="")]


def _opened(connector_id: int) -> list[object]:
    """Only an opening balance, booked after the only snapshot: it stands at that snapshot."""
    taken = START + timedelta(days=1, microseconds=999)
    return [OpeningBalance(connector_id=connector_id, asset="ADA", amount=Decimal(7), usd_price=None,
                           timestamp=_ms(START + timedelta(days=10))),
            BalanceSnapshot(connector_id=connector_id, taken_at=taken, asset="ADA", free=Decimal(7), used=0,
                            total=Decimal(7), account_type="")]


def _connectors(count: int) -> list[int]:
    with session_scope() as session:
        client = Client(name="Random")
        connectors = [_connector(client, "binance") for _ in range(count)]
        for n, connector in enumerate(connectors):
            connector.label = f"account {n}"
        session.add_all([client, *connectors])
        session.flush()
        return [c.id for c in connectors]


def test_sums_equal_the_full_rebuild_on_random_histories(database_url: str) -> None:
    rng = random.Random(17)
    ids = _connectors(40)
    crafted, opened, empty, *randoms = ids
    with session_scope() as session:
        session.add_all([*_crafted(crafted), *_opened(opened)])
        for connector_id in randoms:
            session.add_all(_history(rng, connector_id))
    with session_scope() as session:
        session.add_all([row for connector_id in randoms for row in _snapshots(rng, connector_id)])
    statuses: Counter[str] = Counter()
    with session_scope() as session:
        for connector_id in ids:
            expected = reference_totals(session, connector_id)
            assert exact_totals(session, connector_id) == expected, connector_id
            assert {asset: str(v) for asset, v in exact_totals(session, connector_id).items()} == {
                asset: str(v) for asset, v in expected.items()}  # the same digits, not only equal values
            status = connector_status(session, connector_id)
            assert status == reference_status(session, connector_id), connector_id
            statuses[status[0]] += 1
        assert exact_totals(session, crafted) == {"BTC": Decimal("0.2"), "USDT": Decimal("-203.5"),
                                                  "BNB": Decimal(0), "SOL": Decimal(-2), "USDC": Decimal(50)}
        # implied BTC 0.2 = reported; USDT -203.5 and BNB 0 against 0 and 5; USDC only later
        assert connector_status(session, crafted) == ("unbalanced", 2)
        assert (exact_totals(session, opened), connector_status(session, opened)) == ({"ADA": 7}, ("balanced", 0))
        assert exact_totals(session, empty) == {}
        assert connector_status(session, empty) == ("unknown", 0)
    # the random histories reach every outcome (else the comparison proves less than it says)
    assert statuses["balanced"] and statuses["unbalanced"] > 1 and statuses["unknown"] > 1, statuses

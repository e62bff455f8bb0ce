"""Shared helpers of the sync tests: simulator connectors and ground-truth comparison."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from lib.access import SYSTEM
from lib.clients import create_client
from lib.connectors import ConnectorInput, create_connector
from lib.db import session_scope
from lib.models import BalanceSnapshot, Order, OrderHistory, Position, Trade, Transfer, to_decimal
from lib.simulator import Simulator
from lib.vault import load_vault


def add_connectors(sim: Simulator, client: str = "Acme", accounts: slice = slice(None)) -> dict[str, int]:
    """One connector per simulated account (or a slice of them); returns account id -> connector id."""
    ids = {}
    with session_scope() as session:
        owner = create_client(session, SYSTEM, client)
        for account in sim.accounts[accounts]:
            data = ConnectorInput(account.dialect, account.id, account.credentials(), account.api_url)
            ids[account.id] = create_connector(session, SYSTEM, load_vault(), owner.id, data).id
    return ids


#: the simulator's account type names -> what the sync stores ("" = fetch_balance's default)
ACCOUNT_TYPES = {"trading": "", "funding": "funding"}


def differences(sim: Simulator, account_id: str, connector_id: int, kept_since: int | None = None,
                closed_orders: bool = False) -> list[str]:
    """Where the database disagrees with the simulator's ground truth (empty: equal).

    ``kept_since``: fills and orders older than this are not expected (the exchange no longer
    keeps them). ``closed_orders``: also compare the order history; orders canceled without a
    fill are not required (Bybit shows them for 24 hours only) but must be true when stored.
    """
    truth = sim.truth(account_id)
    fills = [f for f in truth.fills if kept_since is None or f["timestamp"] >= kept_since]
    problems: list[str] = []
    with session_scope() as session:
        trades = list(session.scalars(select(Trade).where(Trade.connector_id == connector_id)))
        by_id = {t.trade_id: t for t in trades}
        if len(by_id) != len(trades) or set(by_id) != {f["id"] for f in fills}:
            problems.append(f"fills: {len(trades)} stored, {len(fills)} true")
        for fill in fills:
            row = by_id.get(fill["id"])
            if row and (row.symbol, row.side, row.timestamp, row.fee_currency) != (
                    fill["symbol"], fill["side"], fill["timestamp"], fill["fee"]["currency"]):
                problems.append(f"fill {fill['id']} differs")
            elif row and max(abs(float(row.amount) - fill["amount"]), abs(float(row.cost) - fill["cost"]),
                             abs(float(row.fee_cost) - fill["fee"]["cost"])) > 1e-9:
                problems.append(f"fill {fill['id']} amounts differ")
        transfers = {(t.type, t.transfer_id): t for t in session.scalars(
            select(Transfer).where(Transfer.connector_id == connector_id))}
        true_transfers = {("deposit", d["id"]): d for d in truth.deposits}
        true_transfers |= {("withdrawal", w["id"]): w for w in truth.withdrawals}
        if set(transfers) != set(true_transfers):
            problems.append(f"transfers: {len(transfers)} stored, {len(true_transfers)} true")
        for key, item in true_transfers.items():
            row = transfers.get(key)
            if row and (abs(float(row.amount) - item["amount"]) > 1e-9
                        or abs(float(row.fee_cost) - item["fee"]["cost"]) > 1e-9):
                problems.append(f"transfer {key} differs")
            elif row and row.status != item["status"]:
                problems.append(f"transfer {key} is {row.status}, truly {item['status']}")
        taken = session.scalar(select(func.max(BalanceSnapshot.taken_at)).where(
            BalanceSnapshot.connector_id == connector_id))
        balances = {(b.account_type, b.asset): (b.free, b.used, b.total) for b in session.scalars(
            select(BalanceSnapshot).where(BalanceSnapshot.connector_id == connector_id,
                                          BalanceSnapshot.taken_at == taken))}
        # stored amounts are the exchange's exact decimals; the truth's floats read back by repr
        true_balances = {(ACCOUNT_TYPES[kind], a): tuple(to_decimal(v[part]) for part in ("free", "used", "total"))
                         for kind, held in truth.balances_by_type.items() for a, v in held.items() if v["total"]}
        if balances != true_balances:
            problems.append(f"balances {balances} != {true_balances}")
        if closed_orders:
            problems += _order_history_differences(session, connector_id, truth.closed_orders, kept_since)
        orders = set(session.scalars(select(Order.order_id).where(Order.connector_id == connector_id)))
        if orders != {o["id"] for o in truth.open_orders}:
            problems.append(f"open orders: {len(orders)} stored, {len(truth.open_orders)} true")
        positions = {(p.symbol, p.side, float(p.contracts)) for p in session.scalars(
            select(Position).where(Position.connector_id == connector_id))}
        if positions != {(p["symbol"], p["side"], p["contracts"]) for p in truth.positions}:
            problems.append(f"positions {positions} differ")
    return problems


def _order_history_differences(session: Session, connector_id: int, truth: list[dict[str, Any]],
                               kept_since: int | None) -> list[str]:
    query = select(OrderHistory).where(OrderHistory.connector_id == connector_id)
    stored = {o.order_id: o for o in session.scalars(query)}
    true = {o["id"]: o for o in truth if kept_since is None or o["timestamp"] >= kept_since}
    required = {i for i, o in true.items() if o["status"] == "closed" or o["filled"] > 0}
    problems = []
    if not required <= set(stored) or not set(stored) <= set(true):
        problems.append(f"closed orders: {len(stored)} stored, {len(required)} required of {len(true)} true")
    for order_id, row in stored.items():
        item = true.get(order_id)
        if item and (row.status != item["status"] or abs(float(row.filled or 0) - item["filled"]) > 1e-9):
            problems.append(f"order {order_id} is {row.status} {row.filled}, truly {item['status']} {item['filled']}")
    return problems

"""Shared helpers of the sync tests: simulator connectors and ground-truth comparison."""

from __future__ import annotations

from sqlalchemy import func, select

from lib.access import SYSTEM
from lib.clients import create_client
from lib.connectors import ConnectorInput, create_connector
from lib.db import session_scope
from lib.models import BalanceSnapshot, Order, Position, Trade, Transfer
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


def differences(sim: Simulator, account_id: str, connector_id: int) -> list[str]:
    """Where the database disagrees with the simulator's ground truth (empty: equal)."""
    truth = sim.truth(account_id)
    problems: list[str] = []
    with session_scope() as session:
        trades = list(session.scalars(select(Trade).where(Trade.connector_id == connector_id)))
        by_id = {t.trade_id: t for t in trades}
        if len(by_id) != len(trades) or set(by_id) != {f["id"] for f in truth.fills}:
            problems.append(f"fills: {len(trades)} stored, {len(truth.fills)} true")
        for fill in truth.fills:
            row = by_id.get(fill["id"])
            if row and (row.symbol, row.side, row.timestamp, row.fee_currency) != (
                    fill["symbol"], fill["side"], fill["timestamp"], fill["fee"]["currency"]):
                problems.append(f"fill {fill['id']} differs")
            elif row and max(abs(row.amount - fill["amount"]), abs(row.cost - fill["cost"]),
                             abs(row.fee_cost - fill["fee"]["cost"])) > 1e-9:
                problems.append(f"fill {fill['id']} amounts differ")
        transfers = {(t.type, t.transfer_id): t for t in session.scalars(
            select(Transfer).where(Transfer.connector_id == connector_id))}
        true_transfers = {("deposit", d["id"]): d for d in truth.deposits}
        true_transfers |= {("withdrawal", w["id"]): w for w in truth.withdrawals}
        if set(transfers) != set(true_transfers):
            problems.append(f"transfers: {len(transfers)} stored, {len(true_transfers)} true")
        for key, item in true_transfers.items():
            row = transfers.get(key)
            if row and (abs(row.amount - item["amount"]) > 1e-9 or abs(row.fee_cost - item["fee"]["cost"]) > 1e-9):
                problems.append(f"transfer {key} differs")
            elif row and row.status != item["status"]:
                problems.append(f"transfer {key} is {row.status}, truly {item['status']}")
        taken = session.scalar(select(func.max(BalanceSnapshot.taken_at)).where(
            BalanceSnapshot.connector_id == connector_id))
        balances = {b.asset: (b.free, b.used, b.total) for b in session.scalars(select(BalanceSnapshot).where(
            BalanceSnapshot.connector_id == connector_id, BalanceSnapshot.taken_at == taken))}
        true_balances = {a: (v["free"], v["used"], v["total"]) for a, v in truth.balances.items() if v["total"]}
        if balances != true_balances:
            problems.append(f"balances {balances} != {true_balances}")
        orders = set(session.scalars(select(Order.order_id).where(Order.connector_id == connector_id)))
        if orders != {o["id"] for o in truth.open_orders}:
            problems.append(f"open orders: {len(orders)} stored, {len(truth.open_orders)} true")
        positions = {(p.symbol, p.side, p.contracts) for p in session.scalars(
            select(Position).where(Position.connector_id == connector_id))}
        if positions != {(p["symbol"], p["side"], p["contracts"]) for p in truth.positions}:
            problems.append(f"positions {positions} differ")
    return problems

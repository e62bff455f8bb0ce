"""ccxt's unified structures as database rows (without the connector id)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def trade_row(exchange: Any, trade: Mapping[str, Any]) -> dict[str, Any]:
    """A unified trade as a ``trades`` row; base and quote from the market where it is known."""
    symbol = trade["symbol"]
    market = exchange.markets.get(symbol) if exchange.markets else None
    base, _, quote = symbol.partition("/")
    if market:
        base, quote = market["base"], market["quote"]
    fee = trade.get("fee") or {}
    amount, price = float(trade["amount"]), float(trade["price"])
    cost = trade.get("cost")
    return {
        "trade_id": str(trade["id"]),
        "order_id": str(trade["order"]) if trade.get("order") is not None else None,
        "timestamp": int(trade["timestamp"]),
        "symbol": symbol,
        "base": base,
        "quote": quote.split(":")[0],
        "side": trade["side"],
        "taker_or_maker": trade.get("takerOrMaker"),
        "amount": amount,
        "price": price,
        "cost": float(cost) if cost is not None else amount * price,
        "fee_cost": float(fee.get("cost") or 0.0),
        "fee_currency": fee.get("currency"),
    }


def open_order_row(o: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "order_id": str(o["id"]), "timestamp": o.get("timestamp"), "symbol": o["symbol"], "side": o["side"],
        "type": o.get("type"), "price": o.get("price"), "amount": float(o.get("amount") or 0.0),
        "filled": float(o.get("filled") or 0.0), "remaining": o.get("remaining"), "status": o.get("status"),
    }


def history_order_row(exchange: Any, o: Mapping[str, Any]) -> dict[str, Any]:
    """A closed or canceled order as an ``order_history`` row.

    ccxt calls an order "closed" when the exchange says it is done, also where the exchange
    canceled the rest of a partly filled order (Bybit's ``PartiallyFilledCanceled``); an order
    done with part of its amount unfilled is stored as "canceled", as the other exchanges say.
    """
    fee = o.get("fee") or {}
    status, amount, filled = o.get("status"), _float(o.get("amount")), _float(o.get("filled"))
    if status == "closed" and amount is not None and filled is not None and filled < amount * (1 - 1e-12):
        status = "canceled"
    return {
        "order_id": str(o["id"]), "timestamp": o.get("timestamp"),
        "last_update": o.get("lastUpdateTimestamp") or o.get("lastTradeTimestamp"),
        "symbol": o["symbol"], "side": o.get("side"), "type": o.get("type"), "status": status,
        "price": _float(o.get("price")), "average": _float(o.get("average")), "amount": amount,
        "filled": filled, "cost": _float(o.get("cost")),
        "fee_cost": _float(fee.get("cost")), "fee_currency": fee.get("currency"),
    }


def transfer_id(t: Mapping[str, Any]) -> str:
    return str(t.get("id") or t.get("txid"))


def transfer_row(kind: str, t: Mapping[str, Any]) -> dict[str, Any]:
    fee = t.get("fee") or {}
    return {
        "transfer_id": transfer_id(t), "type": kind, "timestamp": int(t["timestamp"]),
        "currency": t["currency"], "amount": float(t.get("amount") or 0.0),
        "fee_cost": float(fee.get("cost") or 0.0), "fee_currency": fee.get("currency"),
        "status": t.get("status"), "txid": t.get("txid"),
    }


def position_row(p: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "symbol": p["symbol"], "side": p.get("side"), "contracts": p.get("contracts"),
        "contract_size": p.get("contractSize"), "entry_price": p.get("entryPrice"),
        "mark_price": p.get("markPrice"), "notional": p.get("notional"),
        "unrealized_pnl": p.get("unrealizedPnl"), "leverage": p.get("leverage"),
        "liquidation_price": p.get("liquidationPrice"), "timestamp": p.get("timestamp"),
    }


def ledger_key(entry: Mapping[str, Any]) -> str:
    """A ledger entry's identity: a digest of the exchange's own record (``info``).

    ccxt's ``id`` is not unique on every exchange (crypto.com repeats the order id on each leg
    of a fill), but the raw record of an entry never changes and differs from every other's
    (its journal id, bill id, ...), so overlapping pages still de-duplicate exactly.
    """
    record = entry.get("info") or {k: entry.get(k) for k in ("id", "currency", "direction", "type", "timestamp",
                                                               "amount", "account", "referenceId")}
    return hashlib.sha256(json.dumps(record, sort_keys=True, default=str).encode()).hexdigest()[:40]


def ledger_row(entry: Mapping[str, Any]) -> dict[str, Any]:
    fee = entry.get("fee") or {}
    ident, reference = entry.get("id"), entry.get("referenceId")
    return {
        "entry_key": ledger_key(entry), "entry_id": None if ident is None else str(ident),
        "timestamp": int(entry["timestamp"]), "currency": entry["currency"],
        "amount": float(entry.get("amount") or 0.0),
        "direction": entry.get("direction"), "type": entry.get("type"), "account": entry.get("account"),
        "reference_id": None if reference is None else str(reference), "fee_cost": _float(fee.get("cost")),
        "fee_currency": fee.get("currency"), "status": entry.get("status"),
    }

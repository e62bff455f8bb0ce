"""ccxt's unified structures as database rows (without the connector id), and the check that
each fits its table.

An exchange may send a string longer than its column (a 40-character asset code, a
60-character symbol, a 120-character id): PostgreSQL refuses such a row, and with it the
whole window, every sync again. ``fitting`` leaves such rows out, logs and counts them, so
the rest of the sync is stored; SQLite, which would store them, gets the same rows.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from decimal import Decimal
from functools import cache
from typing import Any

from sqlalchemy import String

from lib.capabilities import fill_realized_pnl_field
from lib.models import BalanceSnapshot, Base, LedgerEntry, OrderHistory, Trade, Transfer, to_decimal

log = logging.getLogger(__name__)

#: the table each history stream kind is stored in
HISTORY_MODELS: dict[str, type[Base]] = {"trades": Trade, "orders": OrderHistory, "ledger": LedgerEntry,
                                         "deposits": Transfer, "withdrawals": Transfer}


@cache
def _widths(model: type[Base]) -> dict[str, int]:
    return {c.name: c.type.length for c in model.__table__.columns if isinstance(c.type, String) and c.type.length}


def too_long(model: type[Base], row: Mapping[str, Any]) -> str | None:
    """Which string of ``row`` is longer than its column of ``model`` (None when all fit)."""
    for name, limit in _widths(model).items():  # the string columns only: fewer than the row's fields
        value = row.get(name)
        if isinstance(value, str) and len(value) > limit:
            return f"{name} has {len(value)} characters, at most {limit} fit (starts {value[:20]!r})"
    return None


def fitting(model: type[Base], table: Sequence[dict[str, Any]], connector_id: int) -> tuple[list[dict[str, Any]], int]:
    """The rows of ``table`` that fit ``model``'s columns, and how many were refused (each logged)."""
    kept = []
    for row in table:
        problem = too_long(model, row)
        if problem is None:
            kept.append(row)
        else:
            log.warning("connector %s: a %s row was refused: %s", connector_id, model.__tablename__, problem)
    return kept, len(table) - len(kept)


def fitting_balance(balance: Mapping[str, Any], account_type: str,
                    connector_id: int) -> tuple[dict[str, Any], int]:
    """``balance`` (ccxt's structure) without the assets whose code no ``balance_snapshots`` row
    holds, and how many were refused (each logged)."""
    parts = ("total", "free", "used")
    assets = sorted({asset for part in parts for asset in balance.get(part) or {}})
    kept, refused = fitting(BalanceSnapshot, [{"asset": a, "account_type": account_type} for a in assets],
                            connector_id)
    if not refused:
        return dict(balance), 0
    fit = {row["asset"] for row in kept}
    return {**balance, **{part: {a: v for a, v in (balance.get(part) or {}).items() if a in fit}
                          for part in parts}}, refused


def _exact(value: Any) -> Decimal | None:
    """A ccxt number (the exchange's string, ``Exchange.number = str``) as the exact Decimal; "" is none."""
    return None if value is None or value == "" else to_decimal(value)


def _exact_or_zero(value: Any) -> Decimal:
    return _exact(value) or Decimal(0)


def _realized_pnl(exchange: Any, trade: Mapping[str, Any]) -> Decimal | None:
    """A contract fill's realised P&L, exactly as the exchange's string says, from the raw-record
    field the capabilities name (ccxt's unified trade has none); None for a spot fill or where
    the exchange does not report it."""
    field = fill_realized_pnl_field(exchange.id)
    if field is None or ":" not in trade["symbol"]:
        return None
    return _exact((trade.get("info") or {}).get(field))


def trade_row(exchange: Any, trade: Mapping[str, Any]) -> dict[str, Any]:
    """A unified trade as a ``trades`` row; base and quote from the market where it is known."""
    symbol = trade["symbol"]
    market = exchange.markets.get(symbol) if exchange.markets else None
    base, _, quote = symbol.partition("/")
    if market:
        base, quote = market["base"], market["quote"]
    fee = trade.get("fee") or {}
    amount, price, cost = _exact_or_zero(trade["amount"]), _exact_or_zero(trade["price"]), _exact(trade.get("cost"))
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
        "cost": cost if cost is not None else amount * price,
        "fee_cost": _exact_or_zero(fee.get("cost")),
        "fee_currency": fee.get("currency"),
        "realized_pnl": _realized_pnl(exchange, trade),
    }


def open_order_row(o: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "order_id": str(o["id"]), "timestamp": o.get("timestamp"), "symbol": o["symbol"], "side": o["side"],
        "type": o.get("type"), "price": _exact(o.get("price")), "amount": _exact_or_zero(o.get("amount")),
        "filled": _exact_or_zero(o.get("filled")), "remaining": _exact(o.get("remaining")), "status": o.get("status"),
    }


def history_order_row(exchange: Any, o: Mapping[str, Any]) -> dict[str, Any]:
    """A closed or canceled order as an ``order_history`` row.

    ccxt calls an order "closed" when the exchange says it is done, also where the exchange
    canceled the rest of a partly filled order (Bybit's ``PartiallyFilledCanceled``); an order
    done with part of its amount unfilled is stored as "canceled", as the other exchanges say.
    """
    fee = o.get("fee") or {}
    status, amount, filled = o.get("status"), _exact(o.get("amount")), _exact(o.get("filled"))
    if status == "closed" and amount is not None and filled is not None and filled < amount:
        status = "canceled"
    return {
        "order_id": str(o["id"]), "timestamp": o.get("timestamp"),
        "last_update": o.get("lastUpdateTimestamp") or o.get("lastTradeTimestamp"),
        "symbol": o["symbol"], "side": o.get("side"), "type": o.get("type"), "status": status,
        "price": _exact(o.get("price")), "average": _exact(o.get("average")), "amount": amount,
        "filled": filled, "cost": _exact(o.get("cost")),
        "fee_cost": _exact(fee.get("cost")), "fee_currency": fee.get("currency"),
    }


def transfer_id(t: Mapping[str, Any]) -> str:
    return str(t.get("id") or t.get("txid"))


def transfer_row(kind: str, t: Mapping[str, Any]) -> dict[str, Any]:
    fee = t.get("fee") or {}
    return {
        "transfer_id": transfer_id(t), "type": kind, "timestamp": int(t["timestamp"]),
        "currency": t["currency"], "amount": _exact_or_zero(t.get("amount")),
        "fee_cost": _exact_or_zero(fee.get("cost")), "fee_currency": fee.get("currency"),
        "status": t.get("status"), "txid": t.get("txid"),
    }


#: positions row column -> ccxt's unified position field
POSITION_NUMBERS = {"contracts": "contracts", "contract_size": "contractSize", "entry_price": "entryPrice",
                    "mark_price": "markPrice", "notional": "notional", "unrealized_pnl": "unrealizedPnl",
                    "leverage": "leverage", "liquidation_price": "liquidationPrice"}


def position_row(p: Mapping[str, Any]) -> dict[str, Any]:
    return {"symbol": p["symbol"], "side": p.get("side"), "timestamp": p.get("timestamp"),
            **{column: _exact(p.get(field)) for column, field in POSITION_NUMBERS.items()}}


#: where ``ledger_key`` keeps an entry's digest in ccxt's (per-request, never shared) dict
_LEDGER_KEY = "_lib_sync_entry_key"
#: ``json.dumps(record, sort_keys=True, default=str)``'s encoder, made once: building it for every
#: entry cost as much as the encoding itself
_KEY_JSON = json.JSONEncoder(sort_keys=True, default=str)


def ledger_key(entry: Mapping[str, Any]) -> str:
    """A ledger entry's identity: a digest of the exchange's own record (``info``).

    ccxt's ``id`` is not unique on every exchange (crypto.com repeats the order id on each leg
    of a fill), but the raw record of an entry never changes and differs from every other's
    (its journal id, bill id, ...), so overlapping pages still de-duplicate exactly.
    """
    known = entry.get(_LEDGER_KEY)
    if known is not None:
        return known
    record = entry.get("info") or {k: entry.get(k) for k in ("id", "currency", "direction", "type", "timestamp",
                                                               "amount", "account", "referenceId")}
    key = hashlib.sha256(_KEY_JSON.encode(record).encode()).hexdigest()[:40]
    if isinstance(entry, dict):  # the walk de-duplicates by it and the row stores it: digest once
        entry[_LEDGER_KEY] = key
    return key


def ledger_row(entry: Mapping[str, Any]) -> dict[str, Any]:
    fee = entry.get("fee") or {}
    ident, reference = entry.get("id"), entry.get("referenceId")
    return {
        "entry_key": ledger_key(entry), "entry_id": None if ident is None else str(ident),
        "timestamp": int(entry["timestamp"]), "currency": entry["currency"],
        "amount": _exact_or_zero(entry.get("amount")),
        "direction": entry.get("direction"), "type": entry.get("type"), "account": entry.get("account"),
        "reference_id": None if reference is None else str(reference), "fee_cost": _exact(fee.get("cost")),
        "fee_currency": fee.get("currency"), "status": entry.get("status"),
    }

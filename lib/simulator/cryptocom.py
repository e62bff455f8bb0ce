"""The crypto.com Exchange v1 REST dialect (``/exchange/v1``) as ccxt 4.5.90 uses it.

Followed: https://exchange-docs.crypto.com/exchange/v1/rest-ws/index.html (sections named
in each docstring; the same pages live on at exchange-developer.crypto.com/exchange/v1/docs).
Public methods are GETs with a query string; private methods are POSTs of a JSON request
``{id, method, params, api_key, sig, nonce}``, so the API key travels in the body, not in
a header. Every answer is ``{id, method, code, result}``; ``code`` 0 is success and ccxt
maps the body's code before it looks at the HTTP status.

Where the documentation and ccxt disagree the stricter one is modelled: trade and order
history windows are at most 1 day (ccxt's ``untilDays``; the docs allow 7 days for
get-trades and name no limit for get-order-history). History (trades, orders,
transactions) is kept for 180 days. Not modelled: ``isolation_id``, the ``instrument_name``
and ``journal_type`` filters of get-transactions, and the ``1M`` candle timeframe.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Mapping
from typing import Any, Protocol, TypeVar

from lib.simulator.accounts import SimAccount
from lib.simulator.history import FEES, NETWORKS, WITHDRAW_FEES
from lib.simulator.ledger import Fill, Order, Series, Transfer
from lib.simulator.market import DAY_MS, LISTED_SYMBOLS, MARKETS, MINUTE_MS, SATS, Market, fmt, to_float
from lib.simulator.protocol import ApiError, Call, Reply

PREFIX = "/exchange/v1/"
SYMBOLS = LISTED_SYMBOLS["cryptocom"]
BY_ID = {f"{MARKETS[s].base}_{MARKETS[s].quote}": MARKETS[s] for s in SYMBOLS}
ASSETS = sorted({a for s in SYMBOLS for a in (MARKETS[s].base, MARKETS[s].quote)})
NS_PER_MS = 1_000_000
#: longest start_time..end_time of get-trades / get-order-history (ccxt: 1 day; docs: 7 days)
HISTORY_WINDOW_MS = DAY_MS
#: "History will be stored for recent 6 months record only" (180 days here):
#: https://exchange-docs.crypto.com/exchange/v1/rest-ws/index.html#order-trade-transaction-history-api
RETENTION_MS = 180 * DAY_MS
HISTORY_LIMIT = 100
TRANSFER_LOOKBACK_MS = 90 * DAY_MS
TRANSFER_PAGE_SIZE, TRANSFER_PAGE_MAX = 20, 200
CANDLE_COUNT, CANDLE_COUNT_MAX = 25, 300
NONCE_TOLERANCE_MS = 60_000
#: the parameter string recurses into nested objects at most this deep (#digital-signature)
SIGNATURE_MAX_LEVEL = 3
MATCH_ID_BASE = 4_611_686_018_000_000_000
JOURNAL_ID_BASE = 6_530_000_000_000_000_000
#: timeframe -> (minutes, epoch offset of the first candle): 7D starts on Mondays, 14D on
#: Monday 2019-10-28 (#public-get-candlestick)
TIMEFRAMES: dict[str, tuple[int, int]] = {
    "1m": (1, 0), "5m": (5, 0), "15m": (15, 0), "30m": (30, 0), "1h": (60, 0), "2h": (120, 0),
    "4h": (240, 0), "12h": (720, 0), "1D": (1440, 0), "7D": (7 * 1440, 4 * DAY_MS),
    "14D": (14 * 1440, 1_572_220_800_000 % (14 * DAY_MS)),
}
LEGACY_TIMEFRAMES = {"M1": "1m", "M5": "5m", "M15": "15m", "M30": "30m", "H1": "1h", "H2": "2h", "H4": "4h",
                     "H12": "12h", "D1": "1D", "1d": "1D"}


class _Keyed(Protocol):
    @property
    def seq(self) -> int: ...


K = TypeVar("K", bound=_Keyed)


def error(code: int, message: str, status: int = 400) -> ApiError:
    """An error answer; ``handle`` adds the request's id and method.

    https://exchange-docs.crypto.com/exchange/v1/rest-ws/index.html#response-and-reason-codes
    """
    return ApiError(Reply(status, {"code": code, "message": message}))


def api_key(headers: Mapping[str, str]) -> str | None:
    """No header names the key: it is ``api_key`` in the JSON body.

    https://exchange-docs.crypto.com/exchange/v1/rest-ws/index.html#request-format
    """
    return None


def rate_limited() -> Reply:
    """42901 TOO_MANY_REQUESTS with HTTP 429; no Retry-After is documented.

    https://exchange-docs.crypto.com/exchange/v1/rest-ws/index.html#response-and-reason-codes
    """
    return Reply(429, {"code": 42901, "message": "TOO_MANY_REQUESTS"})


def server_error() -> Reply:
    """HTTP 500 with the 50001 body of the docs' 500 example; ccxt reads the body code first and
    raises a plain ExchangeError, not a NetworkError.

    https://exchange-docs.crypto.com/exchange/v1/rest-ws/index.html#private-get-trades
    """
    return Reply(500, {"code": 50001, "message": "INTERNAL_SERVER_ERROR"})


def permission_denied() -> Reply:
    """10005 USER_TIER_INVALID, HTTP 401, which ccxt maps to PermissionDenied.

    From the spot v2 table (https://exchange-docs.crypto.com/spot/index.html#response-and-reason-codes):
    its v1 twin 40104 is mapped to AuthenticationError by ccxt, so only this code reads as
    "the key may not do this".
    """
    return Reply(401, {"code": 10005, "message": "USER_TIER_INVALID"})


# --- parameters -------------------------------------------------------------------------

def _int(params: Mapping[str, Any], name: str) -> int | None:
    """Numbers may come as JSON numbers or strings.

    https://exchange-docs.crypto.com/exchange/v1/rest-ws/index.html#request-format
    """
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.lstrip("-").isdigit():
        return int(raw)
    raise error(40004, "MISSING_OR_INVALID_ARGUMENT")


def _limit(params: Mapping[str, Any], name: str, default: int, maximum: int) -> int:
    """A page size; more than the maximum is served as the maximum, so a short page is not the end."""
    limit = _int(params, name)
    if limit is None:
        return default
    if limit < 1:
        raise error(40004, "MISSING_OR_INVALID_ARGUMENT")
    return min(limit, maximum)


def _market(params: Mapping[str, Any], required: bool = False) -> Market | None:
    """``instrument_name`` names ONE instrument, e.g. BTC_USDT; a list is an invalid instrument."""
    name = params.get("instrument_name")
    if name is None or name == "":
        if required:
            raise error(40004, "MISSING_OR_INVALID_ARGUMENT")
        return None
    market = BY_ID.get(name) if isinstance(name, str) else None
    if market is None:
        raise error(209, "INVALID_INSTRUMENT")
    return market


def _time_ns(params: Mapping[str, Any], name: str) -> int | None:
    """start_time / end_time "in Unix time format, ms or ns".

    https://exchange-docs.crypto.com/exchange/v1/rest-ws/index.html#private-get-trades
    """
    value = _int(params, name)
    if value is None:
        return None
    return value if value >= 10**17 else value * NS_PER_MS


def _history_window(call: Call, params: Mapping[str, Any], max_span_ms: int | None) -> tuple[int, int]:
    """[start, end) in ns of get-trades / get-order-history / get-transactions.

    https://exchange-docs.crypto.com/exchange/v1/rest-ws/index.html#private-get-trades

    end_time (exclusive) defaults to now, start_time (inclusive) to end_time - 1 day; a
    span over ``max_span_ms`` is refused with 40005 INVALID_DATE, so ``start_time`` alone
    (end: now) only works within a day of now. Records older than the retention are gone,
    whatever the start.
    """
    now_ns = call.now * NS_PER_MS
    start, end = _time_ns(params, "start_time"), _time_ns(params, "end_time")
    end_given = end is not None
    end = end if end is not None else now_ns
    start = start if start is not None else end - DAY_MS * NS_PER_MS
    if start > end or (max_span_ms is not None and end - start > max_span_ms * NS_PER_MS):
        raise error(40005, "INVALID_DATE")
    if not end_given:
        end += NS_PER_MS  # records of the current millisecond are already there
    return max(start, (call.now - RETENTION_MS) * NS_PER_MS), end


# --- ns keys: a record's time in ns, unique within the account ----------------------------

def _index_at(series: Series[Any], bound_ns: int) -> int:
    """The first index of ``series`` whose ns key is >= ``bound_ns``."""
    ms, rest = divmod(bound_ns, NS_PER_MS)
    return min(bisect_left(series.times, ms) + rest, bisect_right(series.times, ms))


def _ns(whole: Series[Any], seq: int) -> int:
    """The record's ms time plus its rank among the account's records of that millisecond.

    Nanosecond times page exactly where many fills share a millisecond ("Nanosecond is
    recommended for accurate pagination").

    https://exchange-docs.crypto.com/exchange/v1/rest-ws/index.html#private-get-trades
    """
    index = bisect_left(whole.keys, seq)
    ts = whole.times[index]
    return ts * NS_PER_MS + index - bisect_left(whole.times, ts)


def _newest(whole: Series[K], part: Series[K] | None, start_ns: int, end_ns: int, limit: int) -> list[K]:
    """The newest ``limit`` records of ``part`` (a subset of ``whole``) in [start, end), newest first."""
    first, stop = _index_at(whole, start_ns), _index_at(whole, end_ns)
    if part is None or first >= stop:
        return []
    i, j = part.window(key_min=whole.keys[first], key_max=whole.keys[stop - 1])
    return part.items[max(i, j - limit) : j][::-1]


# --- authentication ---------------------------------------------------------------------

def param_string(params: Any, level: int = 0) -> str:
    """Sorted keys, each followed by its value; lists inline their items.

    https://exchange-docs.crypto.com/exchange/v1/rest-ws/index.html#digital-signature
    """
    if level >= SIGNATURE_MAX_LEVEL or not isinstance(params, dict):
        return str(params)
    out = []
    for key in sorted(params):
        value = params[key]
        if value is None:
            out.append(key + "null")
        elif isinstance(value, list):
            out.append(key + "".join(param_string(item, level + 1) for item in value))
        else:
            out.append(key + str(value))
    return "".join(out)


def authenticate(call: Call, request: Mapping[str, Any], method: str) -> None:
    """HMAC-SHA256 (hex) of method + id + api_key + parameter string + nonce.

    An unknown or revoked key or a wrong signature is 40101 UNAUTHORIZED (HTTP 401); a nonce
    more than 60 s from the server's clock is 40102 INVALID_NONCE.

    https://exchange-docs.crypto.com/exchange/v1/rest-ws/index.html#digital-signature
    https://exchange-docs.crypto.com/exchange/v1/rest-ws/index.html#response-and-reason-codes
    """
    key, sig = request.get("api_key"), request.get("sig")
    if not isinstance(key, str) or not isinstance(sig, str):
        raise error(40101, "UNAUTHORIZED", 401)
    account = call.world.by_key.get(key)
    if account is None or account.dialect != "cryptocom" or account.id in call.world.revoked:
        raise error(40101, "UNAUTHORIZED", 401)
    nonce = _int(request, "nonce")
    if nonce is None:
        raise error(40004, "MISSING_OR_INVALID_ARGUMENT")
    if abs(call.now - nonce) > NONCE_TOLERANCE_MS:
        raise error(40102, "INVALID_NONCE")
    payload = f"{method}{request.get('id')}{key}{param_string(request['params'])}{request['nonce']}"
    expected = hmac.new(account.secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, sig.lower()):
        raise error(40101, "UNAUTHORIZED", 401)
    call.account = account


# --- formatting -------------------------------------------------------------------------

def _decimals(sats: int, places: int) -> str:
    """An exact decimal with the instrument's places (amounts and prices sit on its steps)."""
    text = fmt(sats)
    return text[: len(text) - (8 - places)].rstrip(".")


def _qty(market: Market, sats: int) -> str:
    return _decimals(sats, market.amount_decimals)


def _price(market: Market, sats: int) -> str:
    return _decimals(sats, market.price_decimals)


def _inst(market: Market) -> str:
    return f"{market.base}_{market.quote}"


def _date(ms: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(ms / 1000))


def _account_id(account: SimAccount | None) -> str:
    key = account.api_key if account else "0" * 32
    return f"{key[:8]}-{key[8:12]}-{key[12:16]}-{key[16:20]}-{key[20:32]}"


def _rate(ppm: int) -> str:
    return f"{ppm / 1_000_000:.6f}"


# --- public -----------------------------------------------------------------------------

def instruments(call: Call, params: Mapping[str, Any]) -> dict[str, Any]:
    """public/get-instruments: the spot pairs as CCY_PAIR.

    https://exchange-docs.crypto.com/exchange/v1/rest-ws/index.html#public-get-instruments
    """
    return {"data": [{
        "symbol": _inst(m), "inst_type": "CCY_PAIR", "display_name": f"{m.base}/{m.quote}", "base_ccy": m.base,
        "quote_ccy": m.quote, "quote_decimals": m.price_decimals, "quantity_decimals": m.amount_decimals,
        "price_tick_size": _price(m, m.tick), "qty_tick_size": _qty(m, m.step), "max_leverage": "1",
        "tradable": True, "expiry_timestamp_ms": 0, "beta_product": False, "margin_buy_enabled": False,
        "margin_sell_enabled": False,
    } for m in BY_ID.values()]}


def _ticker(call: Call, market: Market) -> dict[str, Any]:
    (_, o, h, lo, c, vol), = call.world.book.candles(market.symbol, 24 * 60, call.now - DAY_MS, 1, call.now)
    return {
        "i": _inst(market), "h": _price(market, h), "l": _price(market, lo), "a": _price(market, c),
        "v": fmt(vol), "vv": fmt(vol * c // SATS), "c": f"{(c - o) / o:.4f}",
        "b": _price(market, c - market.tick), "k": _price(market, c + market.tick), "t": call.now,
    }


def tickers(call: Call, params: Mapping[str, Any]) -> dict[str, Any]:
    """public/get-tickers: every instrument, or the ONE ``instrument_name``.

    https://exchange-docs.crypto.com/exchange/v1/rest-ws/index.html#public-get-tickers
    """
    market = _market(params)
    return {"data": [_ticker(call, m) for m in BY_ID.values() if market is None or m is market]}


def candlestick(call: Call, params: Mapping[str, Any]) -> dict[str, Any]:
    """public/get-candlestick, oldest first.

    https://exchange-docs.crypto.com/exchange/v1/rest-ws/index.html#public-get-candlestick

    timeframe defaults to 1m (legacy names such as M5 or D1 still work), count to 25
    (ccxt never asks more than 300, so more is refused); start_ts defaults to a day ago,
    end_ts to now. Candles open in [start_ts, end_ts) and the newest ``count`` of them are
    returned (the docs are silent on the bounds; ccxt asks from one candle before
    ``since``, which fits this reading).
    """
    market = _market(params, required=True)
    assert market is not None
    name = params.get("timeframe") or "1m"
    name = LEGACY_TIMEFRAMES.get(name, name)
    if name not in TIMEFRAMES:
        raise error(40004, "MISSING_OR_INVALID_ARGUMENT")
    minutes, offset = TIMEFRAMES[name]
    count = _int(params, "count")
    count = CANDLE_COUNT if count is None else count
    if not 1 <= count <= CANDLE_COUNT_MAX:
        raise error(40004, "MISSING_OR_INVALID_ARGUMENT")
    start, end = _int(params, "start_ts"), _int(params, "end_ts")
    start = call.now - DAY_MS if start is None else start
    end = call.now + 1 if end is None else min(end, call.now + 1)
    tf = minutes * MINUTE_MS
    first_open = -(-(start - offset) // tf) * tf + offset
    last_open = (end - 1 - offset) // tf * tf + offset
    first_open = max(first_open, last_open - (count - 1) * tf)
    n = max(0, (last_open - first_open) // tf + 1)
    data = [{"o": _price(market, o), "h": _price(market, h), "l": _price(market, lo), "c": _price(market, c),
             "v": fmt(vol), "t": open_ms}
            for open_ms, o, h, lo, c, vol in call.world.book.candles(market.symbol, minutes, first_open, n, call.now)]
    return {"interval": name, "data": data, "instrument_name": _inst(market)}


# --- private: balances and currencies -----------------------------------------------------

def user_balance(call: Call, params: Mapping[str, Any]) -> dict[str, Any]:
    """private/user-balance: one USD summary with a row per held asset.

    https://exchange-docs.crypto.com/exchange/v1/rest-ws/index.html#private-user-balance

    ``quantity`` is the whole holding and ``reserved_qty`` what open orders hold back;
    crypto.com has no separate funding wallet, so ``Ledger.funding`` is not shown.
    """
    ledger, book = call.ledger, call.world.book
    rows, total_usd = [], 0.0
    with ledger.lock:
        for asset, (free, used) in ledger.balances().items():
            if free + used == 0:
                continue
            usd = float(free + used) / SATS * book.usd(asset, call.now)
            total_usd += usd
            rows.append({
                "instrument_name": asset, "quantity": fmt(free + used), "reserved_qty": fmt(used),
                "market_value": f"{usd:.8f}", "collateral_eligible": "true", "haircut": "0",
                "collateral_amount": f"{usd:.8f}", "max_withdrawal_balance": fmt(free),
            })
    total = f"{total_usd:.8f}"
    return {"data": [{
        "total_available_balance": total, "total_margin_balance": total, "total_initial_margin": "0",
        "total_position_im": "0", "total_haircut": "0", "total_maintenance_margin": "0",
        "total_position_cost": "0", "total_cash_balance": total, "total_collateral_value": total,
        "total_session_unrealized_pnl": "0", "instrument_name": "USD", "total_session_realized_pnl": "0",
        "is_liquidating": False, "total_effective_leverage": "0", "position_limit": "3000000",
        "used_position_limit": "0", "position_balances": rows,
    }]}


def currency_networks(call: Call, params: Mapping[str, Any]) -> dict[str, Any]:
    """private/get-currency-networks: ccxt's fetch_currencies.

    https://exchange-docs.crypto.com/exchange/v1/rest-ws/index.html#private-get-currency-networks
    """
    return {"update_time": call.world.start_ms, "currency_map": {asset: {
        "full_name": asset, "default_network": NETWORKS[asset], "network_list": [{
            "network_id": NETWORKS[asset], "withdrawal_fee": to_float(WITHDRAW_FEES[asset]),
            "withdraw_enabled": True, "min_withdrawal_amount": to_float(2 * WITHDRAW_FEES[asset]),
            "deposit_enabled": True, "confirmation_required": 12,
        }],
    } for asset in ASSETS}}


# --- private: trades and orders -------------------------------------------------------------

def _trade(call: Call, fill: Fill, ns: int) -> dict[str, Any]:
    market = MARKETS[fill.symbol]
    row = {
        "account_id": _account_id(call.account), "event_date": _date(fill.ts), "journal_type": "TRADING",
        "traded_quantity": _qty(market, fill.amount), "traded_price": _price(market, fill.price),
        "fees": fmt(-fill.fee), "order_id": fill.order_id, "trade_id": fill.trade_id,
        "trade_match_id": str(MATCH_ID_BASE + fill.seq), "client_oid": f"sim-{fill.order_seq}",
        "taker_side": "MAKER" if fill.maker else "TAKER", "side": "BUY" if fill.buy else "SELL",
        "instrument_name": _inst(market), "fee_instrument_name": fill.fee_asset, "create_time": fill.ts,
        "create_time_ns": str(ns), "transact_time_ns": str(ns), "match_count": "1",
    }
    if fill.maker:
        row["match_index"] = "0"
    return row


def trades(call: Call, params: Mapping[str, Any]) -> dict[str, Any]:
    """private/get-trades: at most 100 fills before end_time, newest first.

    https://exchange-docs.crypto.com/exchange/v1/rest-ws/index.html#private-get-trades

    ``instrument_name`` is optional (all instruments); see ``_history_window`` for the
    bounds (start inclusive, end exclusive, as documented) and the 1-day limit.
    """
    market = _market(params)
    limit = _limit(params, "limit", HISTORY_LIMIT, HISTORY_LIMIT)
    start, end = _history_window(call, params, HISTORY_WINDOW_MS)
    ledger = call.ledger
    with ledger.lock:
        part = ledger.fills if market is None else ledger.fills_by_symbol.get(market.symbol)
        return {"data": [_trade(call, f, _ns(ledger.fills, f.seq))
                         for f in _newest(ledger.fills, part, start, end, limit)]}


def _status(order: Order) -> str:
    """ACTIVE while open; a closed order is FILLED when fully filled, else CANCELED."""
    if order.is_open:
        return "ACTIVE"
    return "CANCELED" if getattr(order, "canceled", False) or order.filled < order.amount else "FILLED"


def _order(call: Call, order: Order, ns: int, fee: int) -> dict[str, Any]:
    market = MARKETS[order.symbol]
    rates = FEES["cryptocom"]
    avg = order.cost * SATS // order.filled if order.filled else 0
    return {
        "account_id": _account_id(call.account), "order_id": order.order_id, "client_oid": f"sim-{order.seq}",
        "order_type": "LIMIT", "time_in_force": "GOOD_TILL_CANCEL", "side": "BUY" if order.buy else "SELL",
        "exec_inst": [], "quantity": _qty(market, order.amount), "limit_price": _price(market, order.price),
        "order_value": fmt(order.amount * order.price // SATS), "maker_fee_rate": _rate(rates.maker_ppm),
        "taker_fee_rate": _rate(rates.taker_ppm), "avg_price": fmt(avg),
        "cumulative_quantity": _qty(market, order.filled), "cumulative_value": fmt(order.cost),
        "cumulative_fee": fmt(fee), "status": _status(order), "update_user_id": _account_id(call.account),
        "order_date": _date(order.ts), "instrument_name": _inst(market),
        "fee_instrument_name": market.base if order.buy else market.quote, "create_time": order.ts,
        "create_time_ns": str(ns), "update_time": order.update_ts,
    }


def order_history(call: Call, params: Mapping[str, Any]) -> dict[str, Any]:
    """private/get-order-history: closed orders, newest first.

    https://exchange-docs.crypto.com/exchange/v1/rest-ws/index.html#private-get-order-history

    The same window, limit (100) and retention as get-trades; orders are placed in time by
    their creation. Open orders are only in get-open-orders, as documented.
    """
    market = _market(params)
    limit = _limit(params, "limit", HISTORY_LIMIT, HISTORY_LIMIT)
    start, end = _history_window(call, params, HISTORY_WINDOW_MS)
    ledger = call.ledger
    with ledger.lock:
        part = ledger.orders if market is None else ledger.orders_by_symbol.get(market.symbol)
        rows = []
        for order in _newest(ledger.orders, part, start, end, limit):
            fills = ledger.fills_by_symbol[order.symbol]
            i, j = fills.window(key_min=order.seq, ts_min=order.ts, ts_max=order.ts)
            fee = sum(f.fee for f in fills.items[i:j] if f.order_seq == order.seq)
            rows.append(_order(call, order, _ns(ledger.orders, order.seq), fee))
        return {"data": rows}


def open_orders(call: Call, params: Mapping[str, Any]) -> dict[str, Any]:
    """private/get-open-orders: every open order, or one instrument's.

    https://exchange-docs.crypto.com/exchange/v1/rest-ws/index.html#private-get-open-orders
    """
    market = _market(params)
    with call.ledger.lock:
        return {"data": [_order(call, o, o.ts * NS_PER_MS, 0) for o in call.ledger.open_orders
                         if market is None or o.symbol == market.symbol]}


# --- private: transactions (ledger) ------------------------------------------------------------

def _entry(call: Call, ts: int, seq: int, leg: int, journal: str, asset: str, qty: int, cost: int,
           fill: Fill | None) -> dict[str, Any]:
    row: dict[str, Any] = {
        "account_id": _account_id(call.account), "event_date": _date(ts), "journal_type": journal,
        "journal_id": str(JOURNAL_ID_BASE + 4 * seq + leg), "transaction_qty": fmt(qty),
        "transaction_cost": fmt(cost), "realized_pnl": "0", "trade_match_id": "0", "event_timestamp_ms": ts,
        "client_oid": "", "taker_side": "", "instrument_name": asset,
    }
    if fill is not None:
        row.update({"order_id": fill.order_id, "trade_id": fill.trade_id,
                    "trade_match_id": str(MATCH_ID_BASE + fill.seq), "client_oid": f"sim-{fill.order_seq}",
                    "taker_side": "MAKER" if fill.maker else "TAKER", "side": "BUY" if fill.buy else "SELL"})
    return row


def _fill_entries(call: Call, fill: Fill) -> list[tuple[int, int, int, dict[str, Any]]]:
    """A fill moves base and quote (TRADING) and pays its fee (TRADE_FEE)."""
    market, sign = MARKETS[fill.symbol], 1 if fill.buy else -1
    legs = [(0, "TRADING", market.base, sign * fill.amount, sign * fill.cost),
            (1, "TRADING", market.quote, -sign * fill.cost, -sign * fill.cost)]
    if fill.fee:
        legs.append((2, "TRADE_FEE", fill.fee_asset, -fill.fee, 0))
    return [(fill.ts, fill.seq, leg, _entry(call, fill.ts, fill.seq, leg, journal, asset, qty, cost, fill))
            for leg, journal, asset, qty, cost in legs]


def _transfer_entry(call: Call, transfer: Transfer) -> tuple[int, int, int, dict[str, Any]]:
    """A deposit is booked when it arrived; a withdrawal leaves with its fee at once."""
    if transfer.deposit:
        journal, qty = "ONCHAIN_DEPOSIT", transfer.amount
    else:
        journal, qty = "ONCHAIN_WITHDRAWAL", -(transfer.amount + transfer.fee)
    return (transfer.ts, transfer.seq, 0,
            _entry(call, transfer.ts, transfer.seq, 0, journal, transfer.asset, qty, 0, None))


def transactions(call: Call, params: Mapping[str, Any]) -> dict[str, Any]:
    """private/get-transactions: balance changes, newest first.

    https://exchange-docs.crypto.com/exchange/v1/rest-ws/index.html#private-get-transactions

    Same bounds, limit and retention as get-trades; the docs name no longest window. Each
    entry's ``event_timestamp_ns`` is its millisecond plus its rank among the account's
    entries of that millisecond, so pages can be walked by end_time exactly.
    """
    limit = _limit(params, "limit", HISTORY_LIMIT, HISTORY_LIMIT)
    start, end = _history_window(call, params, None)
    start_ms, end_ms = start // NS_PER_MS, (end - 1) // NS_PER_MS
    ledger = call.ledger
    with ledger.lock:
        fills = ledger.fills
        lo, hi = fills.window(ts_min=start_ms, ts_max=end_ms)
        # every fill yields an entry: the end's millisecond plus ``limit`` older fills are
        # enough, taken in whole milliseconds so the ranks are complete
        first = max(lo, bisect_left(fills.times, end_ms) - limit)
        if first < hi:
            first = max(lo, bisect_left(fills.times, fills.times[first]))
        events = [e for f in fills.items[first:hi] for e in _fill_entries(call, f)]
        events += [_transfer_entry(call, t) for t in (*ledger.deposits, *ledger.withdrawals)
                   if start_ms <= t.ts <= end_ms and not (t.deposit and t.pending)]
    events.sort(key=lambda e: (e[0], e[1], e[2]))
    rows, rank, previous = [], 0, None
    for ts, _, _, row in events:
        rank = rank + 1 if ts == previous else 0
        previous = ts
        ns = ts * NS_PER_MS + rank
        if start <= ns < end:
            row["event_timestamp_ns"] = str(ns)
            rows.append(row)
    return {"data": rows[-limit:][::-1]}


# --- private: deposits and withdrawals ------------------------------------------------------------

def _transfers(call: Call, params: Mapping[str, Any], records: list[Transfer],
               status: Callable[[Transfer], str]) -> list[Transfer]:
    """get-deposit-history / get-withdrawal-history paging, newest first.

    start_ts defaults to 90 days ago and end_ts to now (the docs name no longest window;
    start inclusive, end exclusive, the docs being silent); page_size defaults to 20 and
    is at most 200, page counts from 0.

    https://exchange-docs.crypto.com/exchange/v1/rest-ws/index.html#private-get-deposit-history
    https://exchange-docs.crypto.com/exchange/v1/rest-ws/index.html#private-get-withdrawal-history
    """
    start, end = _int(params, "start_ts"), _int(params, "end_ts")
    start = call.now - TRANSFER_LOOKBACK_MS if start is None else start
    end = call.now + 1 if end is None else end
    size = _limit(params, "page_size", TRANSFER_PAGE_SIZE, TRANSFER_PAGE_MAX)
    page = _int(params, "page") or 0
    if page < 0:
        raise error(40004, "MISSING_OR_INVALID_ARGUMENT")
    currency, wanted = params.get("currency"), params.get("status")
    with call.ledger.lock:
        chosen = [t for t in reversed(records) if start <= t.ts < end and currency in (None, "", t.asset)
                  and wanted in (None, "", status(t))]
    return chosen[page * size : (page + 1) * size]


def _deposit_status(transfer: Transfer) -> str:
    return "0" if transfer.pending else "1"  # 0 Not Arrived, 1 Arrived


def _withdrawal_status(transfer: Transfer) -> str:
    return "1" if transfer.pending else "5"  # 1 Processing, 5 Completed


def deposit_history(call: Call, params: Mapping[str, Any]) -> dict[str, Any]:
    """private/get-deposit-history; amounts and fees are JSON numbers here, as documented.

    https://exchange-docs.crypto.com/exchange/v1/rest-ws/index.html#private-get-deposit-history
    """
    return {"deposit_list": [{
        "currency": t.asset, "fee": 0.0, "create_time": t.ts, "id": t.transfer_id,
        "update_time": t.ts if t.pending else t.ts + 5 * MINUTE_MS, "amount": to_float(t.amount),
        "address": t.address, "status": _deposit_status(t), "txid": t.txid, "network_id": NETWORKS[t.asset],
    } for t in _transfers(call, params, call.ledger.deposits, _deposit_status)]}


def withdrawal_history(call: Call, params: Mapping[str, Any]) -> dict[str, Any]:
    """private/get-withdrawal-history; ``client_wid`` is optional in the docs but always sent
    here: ccxt tells a withdrawal from a deposit by that key alone.

    https://exchange-docs.crypto.com/exchange/v1/rest-ws/index.html#private-get-withdrawal-history
    """
    return {"withdrawal_list": [{
        "currency": t.asset, "client_wid": "", "fee": to_float(t.fee), "create_time": t.ts, "id": t.transfer_id,
        "update_time": t.ts if t.pending else t.ts + 5 * MINUTE_MS, "amount": to_float(t.amount),
        "address": t.address, "status": _withdrawal_status(t), "txid": t.txid, "network_id": NETWORKS[t.asset],
    } for t in _transfers(call, params, call.ledger.withdrawals, _withdrawal_status)]}


Handler = Callable[[Call, Mapping[str, Any]], dict[str, Any]]
#: GET with a query string (#public-get-instruments and neighbours)
PUBLIC: dict[str, Handler] = {
    "public/get-instruments": instruments,
    "public/get-tickers": tickers,
    "public/get-candlestick": candlestick,
}
#: POST of a signed JSON request (#request-format)
PRIVATE: dict[str, Handler] = {
    "private/user-balance": user_balance,
    "private/get-currency-networks": currency_networks,
    "private/get-trades": trades,
    "private/get-order-history": order_history,
    "private/get-open-orders": open_orders,
    "private/get-transactions": transactions,
    "private/get-deposit-history": deposit_history,
    "private/get-withdrawal-history": withdrawal_history,
}


def _request(call: Call, method: str) -> dict[str, Any]:
    """The JSON request of a private call; ``params`` must be there, if empty (#request-format)."""
    try:
        request = json.loads(call.body)
    except ValueError:
        request = None
    if not isinstance(request, dict) or request.get("method") != method or not isinstance(request.get("params"), dict):
        raise error(40003, "INVALID_REQUEST")
    return request


def handle(call: Call) -> Reply:
    method = call.path[len(PREFIX):] if call.path.startswith(PREFIX) else call.path.lstrip("/")
    request_id: Any = -1
    try:
        if method in PUBLIC and call.method == "GET":
            result = PUBLIC[method](call, call.params)
        elif method in PRIVATE and call.method == "POST":
            request = _request(call, method)
            request_id = request.get("id", -1)
            authenticate(call, request, method)
            result = PRIVATE[method](call, request["params"])
        else:
            raise error(40002, "METHOD_NOT_FOUND")
    except ApiError as exc:
        return Reply(exc.reply.status, {"id": request_id, "method": method, **exc.reply.payload})
    return Reply(200, {"id": request_id, "method": method, "code": 0, "result": result})


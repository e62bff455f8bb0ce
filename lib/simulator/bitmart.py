"""The BitMart spot dialect, following BitMart's public API documentation
(https://developer-pro.bitmart.com/en/spot/; section names below are its headings).

Every answer is ``{"code": 1000, "message": "OK", "trace": ..., "data": ...}``; an error carries
BitMart's own code ("Error Code": 30002 unknown key, 30005 wrong signature, 30007 timestamp
out of the receive window, 30011 expired key, 30013 rate limit) with HTTP 401 for the
authentication headers, 403 for a forbidden key or address, 429 for the rate limit
("List of global HTTP return codes"). KEYED endpoints (wallets, deposit and withdrawal
history) check the key only; SIGNED ones (the v4 order and trade queries) also the timestamp
and the signature over timestamp, memo and body. Lists come newest first within
``startTime``/``endTime`` (milliseconds, both inclusive), cut at ``limit``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from lib.simulator.history import NETWORKS
from lib.simulator.ledger import Fill, Order, Series, Transfer
from lib.simulator.market import DAY_MS, LISTED_SYMBOLS, MARKETS, MINUTE_MS, Market, fmt
from lib.simulator.protocol import ApiError, Call, Reply

T = TypeVar("T")

SYMBOLS = LISTED_SYMBOLS["bitmart"]
BY_ID = {f"{MARKETS[s].base}_{MARKETS[s].quote}": MARKETS[s] for s in SYMBOLS}
#: "Get History K-Line (V3)": step in minutes
STEPS = (1, 3, 5, 15, 30, 45, 60, 120, 180, 240, 1440, 10080, 43200)
#: "Signature": X-BM-TIMESTAMP must fall within recvWindow of the server's clock; 60000 ms is
#: the largest recvWindow allowed ("allowed range (0,60000]"), so the simulator accepts that
RECV_WINDOW_MS = 60_000
#: the v4 queries' ``limit``: "allowed range [1,200], default 200"
ORDER_PAGE = 200
#: "Get Deposit And Withdraw History" v2: N, "allowed range [1,100]"
TRANSFER_PAGE = 100


def error(code: int, message: str, status: int = 400) -> ApiError:
    return ApiError(Reply(status, {"code": code, "message": message, "trace": str(uuid.uuid4()), "data": {}}))


def api_key(headers: Mapping[str, str]) -> str | None:
    return headers.get("X-BM-KEY")


def rate_limited() -> Reply:
    return Reply(429, {"code": 30013, "message": "Request too many requests", "trace": "", "data": {}},
                 {"Retry-After": "1"})


def server_error() -> Reply:
    """An outage as the load balancer in front of the API answers it: HTML, no JSON body."""
    return Reply(503, "<html><body><h1>503 Service Temporarily Unavailable</h1></body></html>")


def permission_denied() -> Reply:
    """"Error Code" 30010: the request comes from an address the key does not allow."""
    return Reply(403, {"code": 30010, "message": "IP is forbidden", "trace": "", "data": {}})


def _ok(data: Any) -> dict[str, Any]:
    return {"code": 1000, "message": "OK", "trace": str(uuid.uuid4()), "data": data}


def num(sats: int) -> str:
    return fmt(sats)


# --- parameters -----------------------------------------------------------------------

def _params(call: Call) -> dict[str, Any]:
    """GET parameters come in the query string, POST ones in a JSON body ("Request Format")."""
    if call.method == "GET":
        return dict(call.params)
    try:
        body = json.loads(call.body or "{}")
    except ValueError:
        raise error(30018, "Request body error") from None
    if not isinstance(body, dict):
        raise error(30018, "Request body error")
    return body


def _int(params: Mapping[str, Any], name: str) -> int | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise error(50000, f"Invalid parameter {name}") from None


def _limit(params: Mapping[str, Any], name: str, maximum: int, default: int) -> int:
    limit = _int(params, name)
    if limit is None:
        return default
    if not 1 <= limit <= maximum:
        raise error(50004, f"Invalid parameter {name}, allowed range [1,{maximum}]")
    return limit


def _market(params: Mapping[str, Any], required: bool = False) -> Market | None:
    symbol = params.get("symbol")
    if not symbol:
        if required:
            raise error(50000, "symbol is required")
        return None
    if symbol not in BY_ID:
        raise error(50001, "Symbol not found")
    return BY_ID[symbol]


def _newest(series: Series[Any], params: Mapping[str, Any], limit: int) -> list[Any]:
    """The newest ``limit`` records within startTime..endTime (inclusive), newest first."""
    i, j = series.window(ts_min=_int(params, "startTime"), ts_max=_int(params, "endTime"))
    return series.items[max(i, j - limit):j][::-1]


# --- authentication ("Signature", "Interface Permission") -----------------------------

def authenticate(call: Call, signed: bool) -> None:
    """KEYED: a known, unexpired key. SIGNED: also X-BM-TIMESTAMP within the receive window and
    X-BM-SIGN = hex HMAC-SHA256(secret, timestamp + "#" + memo + "#" + query string or body)."""
    headers = call.headers
    key = headers.get("X-BM-KEY")
    if not key:
        raise error(30001, "Header X-BM-KEY is empty", 401)
    account = call.world.by_key.get(key)
    if account is None or account.dialect != "bitmart":
        raise error(30002, "Header X-BM-KEY not found", 401)
    if account.id in call.world.revoked:
        raise error(30011, "Header X-BM-KEY over expire time", 401)
    if signed:
        stamp, signature = headers.get("X-BM-TIMESTAMP"), headers.get("X-BM-SIGN")
        if not stamp:
            raise error(30006, "Header X-BM-TIMESTAMP is empty", 401)
        if not stamp.isdigit():
            raise error(30008, "Header X-BM-TIMESTAMP invalid format", 401)
        if abs(call.now - int(stamp)) > RECV_WINDOW_MS:
            raise error(30007, "Header X-BM-TIMESTAMP range. Within a minute", 401)
        if not signature:
            raise error(30004, "Header X-BM-SIGN is empty", 401)
        payload = call.raw_query if call.method == "GET" else call.body
        message = f"{stamp}#{account.uid or ''}#{payload}"
        expected = hmac.new(account.secret.encode(), message.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature):
            raise error(30005, "Header X-BM-SIGN is wrong", 401)
    call.account = account


# --- public ---------------------------------------------------------------------------

def system_time(call: Call) -> Any:
    """"Get System Time"."""
    return {"server_time": call.now}


def symbols_details(call: Call) -> Any:
    """"Get Trading Pair Details (V1)"."""
    return {"symbols": [{
        "symbol": symbol, "symbol_id": 1000 + n, "base_currency": m.base, "quote_currency": m.quote,
        "quote_increment": num(m.step), "base_min_size": num(m.step), "base_max_size": "100000000",
        "price_min_precision": 1, "price_max_precision": m.price_decimals, "expiration": "NA",
        "min_buy_amount": "5", "min_sell_amount": "5", "trade_status": "trading",
    } for n, (symbol, m) in enumerate(BY_ID.items())]}


def _ticker_fields(call: Call, symbol: str, market: Market) -> list[str]:
    (_, o, h, lo, c, vol), = call.world.book.candles(market.symbol, 24 * 60, call.now - DAY_MS, 1, call.now)
    change = f"{(c - o) / o:.4f}" if o else "0"
    return [symbol, num(c), num(vol), num(vol * c // 10**8), num(o), num(h), num(lo), change,
            num(c - market.tick), num(market.step * 100), num(c + market.tick), num(market.step * 100),
            str(call.now)]


def tickers(call: Call) -> Any:
    """"Get Ticker of All Pairs (V3)": one array per pair."""
    return [_ticker_fields(call, symbol, m) for symbol, m in BY_ID.items()]


def ticker(call: Call) -> Any:
    """"Get Ticker of a Trading Pair (V3)": the same fields by name."""
    params = _params(call)
    market = _market(params, required=True)
    assert market is not None
    names = ("symbol", "last", "v_24h", "qv_24h", "open_24h", "high_24h", "low_24h", "fluctuation",
             "bid_px", "bid_sz", "ask_px", "ask_sz", "ts")
    return dict(zip(names, _ticker_fields(call, params["symbol"], market), strict=True))


def klines(call: Call) -> Any:
    """"Get History K-Line (V3)": ``before``/``after`` in seconds ("data before / after this
    time", so both exclusive), ``step`` in minutes (default 1), ``limit`` up to 200 (default
    100); oldest first, the newest ``limit`` candles of the range."""
    params = _params(call)
    market = _market(params, required=True)
    assert market is not None
    step = _int(params, "step") or 1
    if step not in STEPS:
        raise error(50000, "Invalid parameter step")
    limit = _limit(params, "limit", 200, 100)
    tf = step * MINUTE_MS
    before, after = _int(params, "before"), _int(params, "after")
    newest = min(call.now, before * 1000 - 1 if before is not None else call.now)
    last_open = newest // tf * tf
    first_open = last_open - (limit - 1) * tf
    if after is not None:
        first_open = max(first_open, -(-(after * 1000 + 1) // tf) * tf)
    count = max(0, (last_open - first_open) // tf + 1)
    rows = call.world.book.candles(market.symbol, step, first_open, count, call.now)
    return [[str(t // 1000), num(o), num(h), num(lo), num(c), num(v), num(v * c // 10**8)]
            for t, o, h, lo, c, v in rows]


# --- private: wallets -----------------------------------------------------------------

def spot_wallet(call: Call) -> Any:
    """"Get Spot Wallet Balance (KEYED)": every currency held, available and frozen."""
    with call.ledger.lock:
        return {"wallet": [{"id": asset, "name": asset, "available": num(free), "frozen": num(used)}
                           for asset, (free, used) in call.ledger.balances().items() if free + used]}


def account_wallet(call: Call) -> Any:
    """"Get Account Balance (KEYED)": the funding (account) wallet."""
    with call.ledger.lock:
        return {"wallet": [{"currency": asset, "name": asset, "available": num(amount), "frozen": "0"}
                           for asset, amount in sorted(call.ledger.funding.items()) if amount]}


# --- private: trades and orders (SIGNED) ----------------------------------------------

def _trade(fill: Fill) -> dict[str, Any]:
    market = MARKETS[fill.symbol]
    return {
        "tradeId": fill.trade_id, "orderId": fill.order_id, "clientOrderId": "",
        "symbol": f"{market.base}_{market.quote}",
        "side": "buy" if fill.buy else "sell", "orderMode": "spot", "type": "limit", "price": num(fill.price),
        "size": num(fill.amount), "notional": num(fill.cost), "fee": num(fill.fee), "feeCoinName": fill.fee_asset,
        "tradeRole": "maker" if fill.maker else "taker", "createTime": fill.ts, "updateTime": fill.ts,
    }


def _v4_query(call: Call, whole: Series[T], by_symbol: Mapping[str, Series[T]],
              render: Callable[[T], dict[str, Any]]) -> list[dict[str, Any]]:
    """The v4 queries' rules: ``symbol`` optional, ``orderMode`` spot, ``startTime``/``endTime``,
    ``limit`` 1..200 (default 200), newest first."""
    params = _params(call)
    market = _market(params)
    limit = _limit(params, "limit", ORDER_PAGE, ORDER_PAGE)
    with call.ledger.lock:
        series = whole if market is None else by_symbol.get(market.symbol)
        return [] if series is None else [render(item) for item in _newest(series, params, limit)]


def trades(call: Call) -> Any:
    """"Account Trade List (v4)"."""
    return _v4_query(call, call.ledger.fills, call.ledger.fills_by_symbol, _trade)


def _state(order: Order) -> str:
    if order.is_open:
        return "partially_filled" if order.filled else "new"
    if order.canceled:
        return "partially_canceled" if order.filled else "canceled"
    return "filled"


def _order(order: Order) -> dict[str, Any]:
    market = MARKETS[order.symbol]
    average = order.cost * 10**8 // order.filled if order.filled else 0
    return {
        "orderId": order.order_id, "clientOrderId": "", "symbol": f"{market.base}_{market.quote}",
        "side": "buy" if order.buy else "sell", "orderMode": "spot", "type": "limit", "state": _state(order),
        "price": num(order.price), "priceAvg": num(average), "size": num(order.amount),
        "filledSize": num(order.filled), "notional": num(order.amount * order.price // 10**8),
        "filledNotional": num(order.cost), "createTime": order.ts, "updateTime": order.update_ts or order.ts,
    }


def open_orders(call: Call) -> Any:
    """"Current Open Orders (v4)": states new and partially_filled."""
    with call.ledger.lock:
        whole: Series[Order] = Series()
        by_symbol: dict[str, Series[Order]] = defaultdict(Series)
        for n, order in enumerate(sorted(call.ledger.open_orders, key=lambda o: (o.ts, o.seq))):
            whole.append(order, n, order.ts)
            by_symbol[order.symbol].append(order, n, order.ts)
    return _v4_query(call, whole, by_symbol, _order)


def history_orders(call: Call) -> Any:
    """"Account Orders (v4)": finished orders (filled, canceled, partially canceled)."""
    return _v4_query(call, call.ledger.orders, call.ledger.orders_by_symbol, _order)


# --- private: deposits and withdrawals (KEYED) ----------------------------------------

def _status(transfer: Transfer) -> int:
    """0 create, 1 submitted, 2 processing, 3 success, 4 cancel, 5 fail."""
    return 2 if transfer.pending else 3


def deposit_withdraw_history(call: Call) -> Any:
    """"Get Deposit And Withdraw History (KEYED)" v2: ``operation_type`` deposit or withdraw,
    ``N`` 1..100 (required), ``currency``, ``startTime``/``endTime``; newest first."""
    params = _params(call)
    kind = params.get("operation_type")
    if kind not in ("deposit", "withdraw"):
        raise error(60000, "Invalid parameter operation_type")
    if _int(params, "N") is None:
        raise error(60000, "N is required")
    limit = _limit(params, "N", TRANSFER_PAGE, TRANSFER_PAGE)
    currency = params.get("currency") or None
    with call.ledger.lock:
        records: Sequence[Transfer] = call.ledger.deposits if kind == "deposit" else call.ledger.withdrawals
        series: Series[Transfer] = Series()
        for t in records:
            if currency in (None, t.asset):
                series.append(t, t.seq, t.ts)
        page = _newest(series, params, limit)
    return {"records": [{
        "withdraw_id": "" if t.deposit else t.transfer_id, "deposit_id": t.transfer_id if t.deposit else "",
        "operation_type": kind, "currency": t.asset, "apply_time": t.ts, "arrival_amount": num(t.amount),
        "fee": num(t.fee), "status": _status(t), "address": t.address, "address_memo": "", "tx_id": t.txid,
        "network": NETWORKS[t.asset],
    } for t in page]}


#: (method, path) -> (authentication: None public, "KEYED" or "SIGNED", handler)
ROUTES: dict[tuple[str, str], tuple[str | None, Callable[[Call], Any]]] = {
    ("GET", "/system/time"): (None, system_time),
    ("GET", "/spot/v1/symbols/details"): (None, symbols_details),
    ("GET", "/spot/quotation/v3/tickers"): (None, tickers),
    ("GET", "/spot/quotation/v3/ticker"): (None, ticker),
    ("GET", "/spot/quotation/v3/klines"): (None, klines),
    ("GET", "/spot/v1/wallet"): ("KEYED", spot_wallet),
    ("GET", "/account/v1/wallet"): ("KEYED", account_wallet),
    ("GET", "/account/v2/deposit-withdraw/history"): ("KEYED", deposit_withdraw_history),
    ("POST", "/spot/v4/query/open-orders"): ("SIGNED", open_orders),
    ("POST", "/spot/v4/query/history-orders"): ("SIGNED", history_orders),
    ("POST", "/spot/v4/query/trades"): ("SIGNED", trades),
}


def handle(call: Call) -> Reply:
    route = ROUTES.get((call.method, call.path))
    if route is None:
        return Reply(404, {"code": 30000, "message": "Not found", "trace": "", "data": {}})
    auth, handler = route
    try:
        if auth is not None:
            authenticate(call, signed=auth == "SIGNED")
        return Reply(200, _ok(handler(call)))
    except ApiError as exc:
        return exc.reply

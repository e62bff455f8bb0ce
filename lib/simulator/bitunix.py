"""The Bitunix futures OpenAPI dialect (``/api/v1/futures``) as ``lib.plugins.bitunix`` uses it.

Followed: https://openapidoc.bitunix.com/doc/common/introduction.html and the pages each handler
names. Every answer is ``{"code": 0, "data": ..., "msg": "Success"}`` with HTTP 200; errors carry
Bitunix's codes (error_codes of github.com/BitunixOfficial/open-api): 10002 Parameter Error,
10003 api-key can't be empty, 10007 Sign signature error, 20001 Market not exists, 10006 Request
too frequently. History lists come newest first by creation time, ``skip``/``limit`` paged
(limit at most 100, default 10) with ``startTime``/``endTime`` filters; the documentation names
no longest window and no retention, so none is enforced. Accounts are futures accounts
(``lib.simulator.futures``): one margin coin, positions, realised P&L.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Mapping
from typing import Any

from lib.simulator.futures import LEVERAGE, MARGIN_COIN, SYMBOLS, FuturesLedger, PositionStats, perpetual
from lib.simulator.ledger import Fill, Order, Series
from lib.simulator.market import CLIENT_TOKEN, MARKETS, MINUTE_MS, SATS, fmt
from lib.simulator.protocol import ApiError, Call, Reply

#: perpetual id (BTCUSDT) -> spot market whose price it follows
PAIRS = {f"{MARKETS[s].base}{MARKETS[s].quote}": s for s in (*SYMBOLS, CLIENT_TOKEN)}
BY_SYMBOL = {perpetual(spot): pair for pair, spot in PAIRS.items()}
POSITION_ID_BASE = 3_000_000_000
#: how far a request's timestamp may be from the server's clock (the documentation names none)
SIGNATURE_TOLERANCE_MS = 60_000
HISTORY_LIMIT, DEFAULT_LIMIT = 100, 10
#: https://openapidoc.bitunix.com/doc/market/get_kline.html intervals -> minutes
INTERVALS = {"1m": 1, "3m": 3, "5m": 5, "15m": 15, "30m": 30, "1h": 60, "2h": 120, "4h": 240, "6h": 360,
             "8h": 480, "12h": 720, "1d": 1440, "3d": 4320, "1w": 10080}
FUNDING_RATE = "0.0001"


def num(sats: int) -> str:
    text = fmt(sats).rstrip("0").rstrip(".")
    return text if text not in ("", "-") else "0"


def error(code: int, msg: str) -> ApiError:
    return ApiError(Reply(200, {"code": code, "data": None, "msg": msg}))


def api_key(headers: Mapping[str, str]) -> str | None:
    return headers.get("api-key")


def rate_limited() -> Reply:
    return Reply(429, {"code": 10006, "data": None, "msg": "Request too frequently"}, {"Retry-After": "1"})


def server_error() -> Reply:
    return Reply(502, "<html><body><h1>502 Bad Gateway</h1></body></html>")


def permission_denied() -> Reply:
    """A key the account may not use for futures: 20011 "Account not allowed to trade" (the
    documentation has no separate code for a key without the futures permission)."""
    return Reply(200, {"code": 20011, "data": None, "msg": "Account not allowed to trade"})


# --- parameters -----------------------------------------------------------------------

def _int(call: Call, name: str) -> int | None:
    raw = call.params.get(name)
    if raw in (None, ""):
        return None
    try:
        return int(raw)
    except ValueError:
        raise error(10002, "Parameter Error") from None


def _pair(call: Call, name: str = "symbol") -> str | None:
    """The perpetual's unified symbol named by ``symbol`` (BTCUSDT); unknown: 20001."""
    pair = call.params.get(name)
    if not pair:
        return None
    if pair not in PAIRS:
        raise error(20001, "Market not exists")
    return perpetual(PAIRS[pair])


def _page(call: Call) -> tuple[int, int]:
    """``skip`` (default 0) and ``limit`` ("Maximum: 100, default: 10")."""
    skip, limit = _int(call, "skip") or 0, _int(call, "limit")
    limit = DEFAULT_LIMIT if limit is None else limit
    if skip < 0 or not 1 <= limit <= HISTORY_LIMIT:
        raise error(10002, "Parameter Error")
    return skip, limit


def _newest_first(series: Series[Any], call: Call, keep: Callable[[Any], bool] | None = None) -> tuple[list[Any], int]:
    """Rows created within [startTime, endTime] (both inclusive), newest first, ``skip`` rows
    left out and ``limit`` kept; and how many matched (``total``)."""
    skip, limit = _page(call)
    i, j = series.window(ts_min=_int(call, "startTime"), ts_max=_int(call, "endTime"))
    rows = [r for r in reversed(series.items[i:j]) if keep is None or keep(r)]
    return rows[skip : skip + limit], len(rows)


# --- authentication -------------------------------------------------------------------

def _query_digest(call: Call) -> str:
    """"All queryParams are sorted in ascending ASCII order by Key", joined as key + value."""
    return "".join(f"{key}{value}" for key, value in sorted(call.params.items()))


def authenticate(call: Call) -> None:
    """https://openapidoc.bitunix.com/doc/common/sign.html: digest = SHA256(nonce + timestamp +
    api-key + queryParams + body), sign = SHA256(digest + secretKey), both hex; the nonce is a
    32-character random string, the timestamp milliseconds."""
    headers = call.headers
    key = headers.get("api-key")
    if not key:
        raise error(10003, "api-key can't be empty")
    nonce, stamp, signature = headers.get("nonce", ""), headers.get("timestamp", ""), headers.get("sign", "")
    if len(nonce) != 32 or not stamp.isdigit() or not signature:
        raise error(10002, "Parameter Error")
    account = call.world.by_key.get(key)
    if account is None or account.dialect != "bitunix" or account.id in call.world.revoked:
        raise error(10007, "Sign signature error")
    if abs(call.now - int(stamp)) > SIGNATURE_TOLERANCE_MS:
        raise error(10007, "Sign signature error")
    digest = hashlib.sha256((nonce + stamp + key + _query_digest(call) + call.body).encode()).hexdigest()
    expected = hashlib.sha256((digest + account.secret).encode()).hexdigest()
    if not hmac.compare_digest(expected, signature):
        raise error(10007, "Sign signature error")
    call.account = account


def _ledger(call: Call) -> FuturesLedger:
    ledger = call.ledger
    assert isinstance(ledger, FuturesLedger), "a Bitunix account is a futures account"
    return ledger


# --- public ---------------------------------------------------------------------------

def trading_pairs(call: Call) -> Any:
    """https://openapidoc.bitunix.com/doc/market/get_trading_pairs.html"""
    wanted = set(call.params["symbols"].split(",")) if call.params.get("symbols") else None
    rows = []
    for pair, spot in PAIRS.items():
        market = MARKETS[spot]
        if wanted is None or pair in wanted:
            rows.append({"symbol": pair, "base": market.base, "quote": market.quote,
                         "minTradeVolume": num(market.step), "minBuyPriceOffset": "-0.05",
                         "maxSellPriceOffset": "0.05", "maxLimitOrderVolume": "1000000",
                         "maxMarketOrderVolume": "100000", "basePrecision": market.amount_decimals,
                         "quotePrecision": market.price_decimals, "maxLeverage": 100, "minLeverage": 1,
                         "defaultLeverage": 20, "defaultMarginMode": "CROSS", "priceProtectScope": "0.02",
                         "symbolStatus": "OPEN"})
    return rows


def _last(call: Call, spot: str) -> tuple[int, int, int, int, int]:
    (_, o, h, lo, c, vol), = call.world.book.candles(spot, 24 * 60, call.now - 24 * 60 * MINUTE_MS, 1, call.now)
    return o, h, lo, c, vol


def tickers(call: Call) -> Any:
    """https://openapidoc.bitunix.com/doc/market/get_tickers.html: ``symbols`` comma-separated."""
    names = call.params["symbols"].split(",") if call.params.get("symbols") else list(PAIRS)
    rows = []
    for pair in names:
        if pair not in PAIRS:
            raise error(20001, "Market not exists")
        o, h, lo, c, vol = _last(call, PAIRS[pair])
        rows.append({"symbol": pair, "markPrice": num(c), "lastPrice": num(c), "open": num(o), "last": num(c),
                     "quoteVol": num(vol * c // SATS), "baseVol": num(vol), "high": num(h), "low": num(lo)})
    return rows


def funding_rate(call: Call) -> Any:
    """https://openapidoc.bitunix.com/doc/market/get_funding_rate.html (a constant rate here)."""
    symbol = _pair(call)
    if symbol is None:
        raise error(10002, "Parameter Error")
    price = num(_last(call, PAIRS[BY_SYMBOL[symbol]])[3])
    return {"symbol": BY_SYMBOL[symbol], "markPrice": price, "lastPrice": price, "fundingRate": FUNDING_RATE}


def kline(call: Call) -> Any:
    """https://openapidoc.bitunix.com/doc/market/get_kline.html: ``limit`` at most 200 (default
    100), candles up to ``endTime`` (default now), oldest first."""
    symbol = _pair(call)
    minutes = INTERVALS.get(call.params.get("interval", ""))
    limit = _int(call, "limit") or 100
    if symbol is None or minutes is None or not 1 <= limit <= 200:
        raise error(10002, "Parameter Error")
    step = minutes * MINUTE_MS
    end = min(_int(call, "endTime") or call.now, call.now)
    start = _int(call, "startTime")
    first = end // step * step - (limit - 1) * step if start is None else -(-start // step) * step
    count = min(limit, max(0, (end - first) // step + 1))
    spot = PAIRS[BY_SYMBOL[symbol]]
    return [{"open": num(o), "high": num(h), "close": num(c), "low": num(lo), "time": open_ms,
             "quoteVol": num(vol * c // SATS), "baseVol": num(vol), "type": "LAST_PRICE"}
            for open_ms, o, h, lo, c, vol in call.world.book.candles(spot, minutes, first, count, call.now)]


# --- private --------------------------------------------------------------------------

def account(call: Call) -> Any:
    """https://openapidoc.bitunix.com/doc/account/get_single_account.html: ``marginCoin`` required;
    ``frozen`` is held by orders, ``margin`` by positions."""
    coin = call.params.get("marginCoin")
    if not coin:
        raise error(10002, "Parameter Error")
    ledger = _ledger(call)
    with ledger.lock:
        if coin != MARGIN_COIN:
            return []
        unrealized = sum(_unrealized(call, s) for s in ledger.stats.values())
        return [{"marginCoin": coin, "available": num(ledger.available), "frozen": num(ledger.frozen),
                 "margin": num(ledger.margin), "transfer": num(ledger.available), "positionMode": "ONE_WAY",
                 "crossUnrealizedPNL": num(unrealized), "isolationUnrealizedPNL": "0", "bonus": "0"}]


def _unrealized(call: Call, stats: PositionStats) -> int:
    mark = call.world.book.price_sats(PAIRS[BY_SYMBOL[stats.position.symbol]], call.now)
    return stats.position.size * mark // SATS - stats.basis


def _position_fields(stats: PositionStats) -> dict[str, Any]:
    position = stats.position
    return {"positionId": str(POSITION_ID_BASE + position.seq), "symbol": BY_SYMBOL[position.symbol],
            "marginCoin": MARGIN_COIN, "side": "LONG", "marginMode": "CROSS", "positionMode": "ONE_WAY",
            "leverage": LEVERAGE, "fee": num(stats.fee), "funding": "0", "realizedPNL": num(stats.realized),
            "ctime": position.ts, "mtime": stats.updated}


def pending_positions(call: Call) -> Any:
    """https://openapidoc.bitunix.com/doc/position/get_pending_positions.html: ``symbol``, ``positionId``."""
    symbol, wanted = _pair(call), call.params.get("positionId") or None
    ledger = _ledger(call)
    with ledger.lock:
        rows = []
        for stats in ledger.stats.values():
            row = _position_fields(stats)
            if symbol not in (None, stats.position.symbol) or wanted not in (None, row["positionId"]):
                continue
            row.update({"qty": num(stats.position.size), "entryValue": num(stats.basis),
                        "margin": num(stats.basis // LEVERAGE), "unrealizedPNL": num(_unrealized(call, stats)),
                        "liqPrice": "0", "marginRate": "0.01", "avgOpenPrice": num(stats.position.entry)})
            rows.append(row)
        return rows


def history_positions(call: Call) -> Any:
    """https://openapidoc.bitunix.com/doc/position/get_history_positions.html: closed positions,
    ``startTime``/``endTime`` on the creation time, newest first, ``skip``/``limit``."""
    symbol, wanted = _pair(call), call.params.get("positionId") or None
    ledger = _ledger(call)
    with ledger.lock:
        series: Series[PositionStats] = Series()
        for key, stats in enumerate(sorted(ledger.closed, key=lambda s: (s.position.ts, s.position.seq))):
            if symbol in (None, stats.position.symbol) and wanted in (None, str(POSITION_ID_BASE + stats.position.seq)):
                series.append(stats, key, stats.position.ts)
        page, total = _newest_first(series, call)
        rows = []
        for stats in page:
            close = stats.close_cost * SATS // stats.closed_size
            rows.append({**_position_fields(stats), "maxQty": num(stats.max_size), "qty": num(stats.max_size),
                         "entryPrice": num((stats.close_cost - stats.realized) * SATS // stats.closed_size),
                         "closePrice": num(close), "liqQty": "0", "margin": "0", "liqPrice": "0"})
        return {"positionList": rows, "total": total}


def _status(order: Order) -> str:
    if order.is_open:
        return "PART_FILLED" if order.filled else "NEW"
    if order.canceled:
        return "PART_FILLED_CANCELED" if order.filled else "CANCELED"
    return "FILLED"


def _order(ledger: FuturesLedger, order: Order, fills: list[Fill]) -> dict[str, Any]:
    realized = sum(ledger.booked[f.seq][1] for f in fills)
    return {"orderId": order.order_id, "marginCoin": MARGIN_COIN, "symbol": BY_SYMBOL[order.symbol],
            "qty": num(order.amount), "tradeQty": num(order.filled), "positionMode": "ONE_WAY",
            "marginMode": "CROSS", "leverage": LEVERAGE, "price": num(order.price),
            "avgPrice": num(order.cost * SATS // order.filled) if order.filled else "0",
            "side": "BUY" if order.buy else "SELL", "orderType": "LIMIT", "effect": "GTC", "clientId": "",
            "reduceOnly": not order.buy, "status": _status(order), "fee": num(sum(f.fee for f in fills)),
            "realizedPNL": num(realized), "tpPrice": None, "tpStopType": None, "tpOrderType": None,
            "tpOrderPrice": None, "slPrice": None, "slStopType": None, "slOrderType": None, "slOrderPrice": None,
            "ctime": order.ts, "mtime": order.update_ts}


def _order_filter(call: Call) -> Callable[[Order], bool]:
    order_id, client_id = call.params.get("orderId") or None, call.params.get("clientId") or None
    status = call.params.get("status") or None
    return lambda o: (order_id in (None, o.order_id) and client_id is None
                      and status in (None, _status(o)))


def pending_orders(call: Call) -> Any:
    """https://openapidoc.bitunix.com/doc/trade/get_pending_orders.html: newest first, ``skip``/``limit``."""
    symbol = _pair(call)
    ledger = _ledger(call)
    with ledger.lock:
        series: Series[Order] = Series()
        for key, order in enumerate(sorted(ledger.open_orders, key=lambda o: (o.ts, o.seq))):
            if symbol in (None, order.symbol):
                series.append(order, key, order.ts)
        page, total = _newest_first(series, call, _order_filter(call))
        return {"orderList": [_order(ledger, o, []) for o in page], "total": total}


def history_orders(call: Call) -> Any:
    """https://openapidoc.bitunix.com/doc/trade/get_history_orders.html: finished orders (FILLED,
    CANCELED, PART_FILLED_CANCELED), "sort by create time desc", ``status`` filters."""
    symbol = _pair(call)
    ledger = _ledger(call)
    with ledger.lock:
        series = ledger.orders if symbol is None else ledger.orders_by_symbol.get(symbol)
        if series is None:
            return {"orderList": [], "total": 0}
        page, total = _newest_first(series, call, _order_filter(call))
        rows = []
        for order in page:
            fills = ledger.fills_by_symbol[order.symbol]
            i, j = fills.window(key_min=order.seq, ts_min=order.ts, ts_max=order.ts)
            rows.append(_order(ledger, order, [f for f in fills.items[i:j] if f.order_seq == order.seq]))
        return {"orderList": rows, "total": total}


def history_trades(call: Call) -> Any:
    """https://openapidoc.bitunix.com/doc/trade/get_history_trades.html: "sort by create time desc",
    ``orderId``/``positionId`` filter, ``skip``/``limit``."""
    symbol = _pair(call)
    order_id, position_id = call.params.get("orderId") or None, call.params.get("positionId") or None
    ledger = _ledger(call)
    with ledger.lock:
        series = ledger.fills if symbol is None else ledger.fills_by_symbol.get(symbol)
        if series is None:
            return {"tradeList": [], "total": 0}

        def keep(fill: Fill) -> bool:
            return (order_id in (None, fill.order_id)
                    and position_id in (None, str(POSITION_ID_BASE + ledger.booked[fill.seq][0])))

        page, total = _newest_first(series, call, keep)
        return {"tradeList": [{
            "tradeId": f.trade_id, "orderId": f.order_id, "marginCoin": MARGIN_COIN, "symbol": BY_SYMBOL[f.symbol],
            "qty": num(f.amount), "positionMode": "ONE_WAY", "marginMode": "CROSS", "leverage": LEVERAGE,
            "price": num(f.price), "side": "BUY" if f.buy else "SELL", "orderType": "LIMIT", "effect": "GTC",
            "clientId": "", "reduceOnly": not f.buy, "fee": num(f.fee), "realizedPNL": num(ledger.booked[f.seq][1]),
            "ctime": f.ts, "roleType": "MAKER" if f.maker else "TAKER",
        } for f in page], "total": total}


#: path -> (signed, handler); only GET is served (the dashboard only reads)
ROUTES: dict[str, tuple[bool, Callable[[Call], Any]]] = {
    "/api/v1/futures/market/trading_pairs": (False, trading_pairs),
    "/api/v1/futures/market/tickers": (False, tickers),
    "/api/v1/futures/market/funding_rate": (False, funding_rate),
    "/api/v1/futures/market/kline": (False, kline),
    "/api/v1/futures/account": (True, account),
    "/api/v1/futures/position/get_pending_positions": (True, pending_positions),
    "/api/v1/futures/position/get_history_positions": (True, history_positions),
    "/api/v1/futures/trade/get_pending_orders": (True, pending_orders),
    "/api/v1/futures/trade/get_history_orders": (True, history_orders),
    "/api/v1/futures/trade/get_history_trades": (True, history_trades),
}


def handle(call: Call) -> Reply:
    route = ROUTES.get(call.path)
    if route is None or call.method != "GET":
        return Reply(404, {"code": 404, "data": None, "msg": "Not Found"})
    signed, handler = route
    try:
        if signed:
            authenticate(call)
        return Reply(200, {"code": 0, "data": handler(call), "msg": "Success"})
    except ApiError as exc:
        return exc.reply

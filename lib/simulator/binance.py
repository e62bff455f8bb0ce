"""The Binance spot REST dialect (``/api/v3``, ``/sapi/v1``) as ccxt 4.5.90 uses it.

Shapes, error codes and the paging/time-window rules follow Binance's documentation:
myTrades needs a symbol, ``limit`` <= 1000, a startTime/endTime window of at most 24 h
and pages with ``fromId``; deposit and withdrawal history windows are at most 90 days
(default: the last 90 days). ccxt's load_markets also asks the futures/options
exchangeInfo and, with keys, the coin and margin-pair lists: those answer minimally.
The funding wallet (a second account type) is a POST, signed in the body.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl

from lib.simulator.history import NETWORKS, WITHDRAW_FEES
from lib.simulator.ledger import ORDER_ID_BASE, TRADE_ID_BASE, Fill, Order, Transfer
from lib.simulator.market import DAY_MS, LISTED_SYMBOLS, MARKETS, MINUTE_MS, Market, fmt
from lib.simulator.protocol import ApiError, Call, Reply

SYMBOLS = LISTED_SYMBOLS["binance"]
BY_ID = {MARKETS[s].base + MARKETS[s].quote: MARKETS[s] for s in SYMBOLS}
ASSETS = sorted({a for s in SYMBOLS for a in (MARKETS[s].base, MARKETS[s].quote)})
INTERVALS = {"1m": 1, "3m": 3, "5m": 5, "15m": 15, "30m": 30, "1h": 60, "2h": 120, "4h": 240,
             "6h": 360, "8h": 480, "12h": 720, "1d": 1440, "3d": 4320}
TRANSFER_WINDOW_MS = 90 * DAY_MS


def error(status: int, code: int, msg: str) -> ApiError:
    return ApiError(Reply(status, {"code": code, "msg": msg}))


def api_key(headers: Mapping[str, str]) -> str | None:
    return headers.get("X-MBX-APIKEY")


def rate_limited() -> Reply:
    msg = ("Too many requests; current limit of IP(127.0.0.1) is 6000 requests per minute. "
           "Please use the websocket for live updates to avoid polling the API.")
    return Reply(429, {"code": -1003, "msg": msg}, {"Retry-After": "1"})


def server_error() -> Reply:
    """An outage as the load balancer in front of the API answers it: HTML, no JSON body."""
    return Reply(503, "<html><body><h1>503 Service Temporarily Unavailable</h1></body></html>")


def permission_denied() -> Reply:
    """What Binance answers a key that lacks the permission for an endpoint (e.g. futures)."""
    return Reply(401, {"code": -2015, "msg": "Invalid API-key, IP, or permissions for action."})


# --- parameters -----------------------------------------------------------------------

def _int(call: Call, name: str, default: int | None = None) -> int | None:
    raw = call.params.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        msg = f"Illegal characters found in parameter '{name}'; legal range is '^[0-9]{{1,20}}$'."
        raise error(400, -1100, msg) from None


def _limit(call: Call, default: int, maximum: int) -> int:
    limit = _int(call, "limit", default)
    assert limit is not None
    if not 1 <= limit <= maximum:
        raise error(400, -1100, f"Illegal characters found in parameter 'limit'; legal range is '1 - {maximum}'.")
    return limit


def _market(call: Call, required: bool = True) -> Market | None:
    symbol = call.params.get("symbol")
    if not symbol:
        if required:
            raise error(400, -1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.")
        return None
    if symbol not in BY_ID:
        raise error(400, -1121, "Invalid symbol.")
    return BY_ID[symbol]


def _window(call: Call, span_ms: int, default_end: int | None = None) -> tuple[int | None, int | None]:
    """startTime/endTime completed to a window of at most ``span_ms``, as Binance does."""
    start, end = _int(call, "startTime"), _int(call, "endTime")
    if start is not None and end is not None:
        if end - start > span_ms:
            raise error(400, -1127, f"More than {span_ms // 3_600_000} hours between startTime and endTime.")
    elif start is not None:
        end = start + span_ms
    elif end is not None:
        start = end - span_ms
    elif default_end is not None:
        start, end = default_end - span_ms, default_end
    return start, end


# --- authentication -------------------------------------------------------------------

def authenticate(call: Call) -> None:
    """HMAC-SHA256 (hex) of query string + body, key in X-MBX-APIKEY, timestamp in recvWindow.

    The signature may end the query string or the body; it signs everything else, query
    string first (https://developers.binance.com/docs/binance-spot-api-docs/rest-api/request-security).
    """
    key = api_key(call.headers)
    if not key:
        raise error(401, -2014, "API-key format invalid.")
    account = call.world.by_key.get(key)
    if account is None or account.dialect != "binance" or account.id in call.world.revoked:
        raise error(401, -2015, "Invalid API-key, IP, or permissions for action.")
    query, sep, signature = call.raw_query.rpartition("&signature=")
    payload = query + call.body
    if not sep:
        body, sep, signature = call.body.rpartition("&signature=")
        payload = call.raw_query + body
    if not sep:
        raise error(400, -1102, "Mandatory parameter 'signature' was not sent, was empty/null, or malformed.")
    timestamp = _int(call, "timestamp")
    if timestamp is None:
        raise error(400, -1102, "Mandatory parameter 'timestamp' was not sent, was empty/null, or malformed.")
    recv_window = _int(call, "recvWindow", 5000)
    assert recv_window is not None
    if recv_window > 60_000:
        raise error(400, -1131, "recvWindow must be less than 60000")
    if timestamp > call.now + 1000 or call.now - timestamp > recv_window:
        raise error(400, -1021, "Timestamp for this request is outside of the recvWindow.")
    expected = hmac.new(account.secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature):
        raise error(400, -1022, "Signature for this request is not valid.")
    call.account = account


# --- public ---------------------------------------------------------------------------

def _symbol_info(market: Market) -> dict[str, Any]:
    return {
        "symbol": market.base + market.quote, "status": "TRADING",
        "baseAsset": market.base, "baseAssetPrecision": 8,
        "quoteAsset": market.quote, "quotePrecision": 8, "quoteAssetPrecision": 8,
        "baseCommissionPrecision": 8, "quoteCommissionPrecision": 8,
        "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"],
        "icebergAllowed": True, "ocoAllowed": True, "otoAllowed": True, "quoteOrderQtyMarketAllowed": True,
        "allowTrailingStop": True, "cancelReplaceAllowed": True,
        "isSpotTradingAllowed": True, "isMarginTradingAllowed": False,
        "filters": [
            {"filterType": "PRICE_FILTER", "minPrice": fmt(market.tick), "maxPrice": "1000000.00000000",
             "tickSize": fmt(market.tick)},
            {"filterType": "LOT_SIZE", "minQty": fmt(market.step), "maxQty": "9000.00000000",
             "stepSize": fmt(market.step)},
            {"filterType": "NOTIONAL", "minNotional": "0.00010000" if market.quote == "BTC" else "5.00000000",
             "applyMinToMarket": True, "maxNotional": "9000000.00000000", "avgPriceMins": 5},
        ],
        "permissions": [], "permissionSets": [["SPOT"]],
        "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
        "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
    }


def exchange_info(call: Call) -> Any:
    return {
        "timezone": "UTC", "serverTime": call.now,
        "rateLimits": [
            {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000},
            {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
        ],
        "exchangeFilters": [],
        "symbols": [_symbol_info(BY_ID[s.replace("/", "")]) for s in SYMBOLS],
    }


def derivatives_info(call: Call) -> Any:
    """USD-M / COIN-M exchangeInfo: the simulator lists spot markets only."""
    return {"timezone": "UTC", "serverTime": call.now, "rateLimits": [], "exchangeFilters": [], "assets": [],
            "symbols": []}


def options_info(call: Call) -> Any:
    return {"timezone": "UTC", "serverTime": call.now, "optionContracts": [], "optionAssets": [], "optionSymbols": []}


def server_time(call: Call) -> Any:
    return {"serverTime": call.now}


def ping(call: Call) -> Any:
    return {}


def _ticker(call: Call, market: Market) -> dict[str, Any]:
    book = call.world.book
    start = call.now - DAY_MS
    (_, o, h, lo, c, vol), = book.candles(market.symbol, 24 * 60, start, 1, call.now)
    change = c - o
    return {
        "symbol": market.base + market.quote, "priceChange": fmt(change),
        "priceChangePercent": f"{100 * change / o:.3f}", "weightedAvgPrice": fmt((h + lo) // 2),
        "prevClosePrice": fmt(o), "lastPrice": fmt(c), "lastQty": fmt(market.step * 10),
        "bidPrice": fmt(c - market.tick), "bidQty": fmt(market.step * 100),
        "askPrice": fmt(c + market.tick), "askQty": fmt(market.step * 100),
        "openPrice": fmt(o), "highPrice": fmt(h), "lowPrice": fmt(lo), "volume": fmt(vol),
        "quoteVolume": fmt(vol * c // 10**8), "openTime": start, "closeTime": call.now,
        "firstId": 1, "lastId": 1000, "count": 1000,
    }


def tickers(call: Call) -> Any:
    single = _market(call, required=False)
    if single is not None:
        return _ticker(call, single)
    ids = call.params.get("symbols")
    wanted = [i.strip('" ') for i in ids.strip("[]").split(",")] if ids else [s.replace("/", "") for s in SYMBOLS]
    unknown = [i for i in wanted if i not in BY_ID]
    if unknown:
        raise error(400, -1121, "Invalid symbol.")
    return [_ticker(call, BY_ID[i]) for i in wanted]


def klines(call: Call) -> Any:
    market = _market(call)
    assert market is not None
    minutes = INTERVALS.get(call.params.get("interval", ""))
    if minutes is None:
        raise error(400, -1120, "Invalid interval.")
    limit = _limit(call, 500, 1000)
    tf = minutes * MINUTE_MS
    start, end = _int(call, "startTime"), _int(call, "endTime")
    end = min(end if end is not None else call.now, call.now)
    last_open = end // tf * tf
    first_open = -(-start // tf) * tf if start is not None else last_open - (limit - 1) * tf
    count = min(limit, max(0, (last_open - first_open) // tf + 1))
    rows = []
    for open_ms, o, h, lo, c, vol in call.world.book.candles(market.symbol, minutes, first_open, count, call.now):
        rows.append([open_ms, fmt(o), fmt(h), fmt(lo), fmt(c), fmt(vol), open_ms + tf - 1,
                     fmt(vol * c // 10**8), 100 * minutes, fmt(vol // 2), fmt(vol * c // 2 // 10**8), "0"])
    return rows


# --- private --------------------------------------------------------------------------

def account(call: Call) -> Any:
    ledger = call.ledger
    omit_zero = call.params.get("omitZeroBalances") == "true"
    with ledger.lock:
        rows = [{"asset": a, "free": fmt(f), "locked": fmt(u)} for a, (f, u) in ledger.balances().items()
                if not (omit_zero and f == 0 and u == 0)]
        updated = ledger.fills.times[-1] if len(ledger.fills) else call.world.start_ms
    return {
        "makerCommission": 10, "takerCommission": 10, "buyerCommission": 0, "sellerCommission": 0,
        "commissionRates": {"maker": "0.00100000", "taker": "0.00100000", "buyer": "0.00000000",
                            "seller": "0.00000000"},
        "canTrade": True, "canWithdraw": True, "canDeposit": True, "brokered": False,
        "requireSelfTradePrevention": False, "preventSor": False, "updateTime": updated,
        "accountType": "SPOT", "balances": rows, "permissions": ["SPOT"], "uid": 100_000_000 + call.account.index,
    }


def _trade(fill: Fill) -> dict[str, Any]:
    market = MARKETS[fill.symbol]
    return {
        "symbol": market.base + market.quote, "id": TRADE_ID_BASE + fill.seq,
        "orderId": ORDER_ID_BASE + fill.order_seq, "orderListId": -1,
        "price": fmt(fill.price), "qty": fmt(fill.amount), "quoteQty": fmt(fill.cost),
        "commission": fmt(fill.fee), "commissionAsset": fill.fee_asset, "time": fill.ts,
        "isBuyer": fill.buy, "isMaker": fill.maker, "isBestMatch": True,
    }


def my_trades(call: Call) -> Any:
    market = _market(call)
    assert market is not None
    limit = _limit(call, 500, 1000)
    from_id, order_id = _int(call, "fromId"), _int(call, "orderId")
    if from_id is not None and ("startTime" in call.params or "endTime" in call.params):
        raise error(400, -1128, "Combination of optional parameters invalid.")
    start, end = _window(call, DAY_MS)
    ledger = call.ledger
    with ledger.lock:
        series = ledger.fills_by_symbol.get(market.symbol)
        if series is None:
            return []
        if order_id is not None:
            return [_trade(f) for f in series.items if ORDER_ID_BASE + f.order_seq == order_id][:limit]
        if from_id is not None:
            i, j = series.window(key_min=from_id - TRADE_ID_BASE)
            j = min(j, i + limit)
        elif start is not None:
            i, j = series.window(ts_min=start, ts_max=end)
            j = min(j, i + limit)
        else:
            i, j = max(0, len(series) - limit), len(series)
        return [_trade(f) for f in series.items[i:j]]


def _status(order: Order) -> str:
    """Binance's order status (https://developers.binance.com/docs/binance-spot-api-docs/enums):
    a canceled order keeps CANCELED whatever part of it filled."""
    return "NEW" if order.is_open else "CANCELED" if order.canceled else "FILLED"


def _order(order: Order) -> dict[str, Any]:
    market = MARKETS[order.symbol]
    return {
        "symbol": market.base + market.quote, "orderId": ORDER_ID_BASE + order.seq, "orderListId": -1,
        "clientOrderId": f"sim{order.seq:012d}", "price": fmt(order.price), "origQty": fmt(order.amount),
        "executedQty": fmt(order.filled), "cummulativeQuoteQty": fmt(order.cost),
        "status": _status(order), "timeInForce": "GTC", "type": "LIMIT",
        "side": "BUY" if order.buy else "SELL", "stopPrice": "0.00000000", "icebergQty": "0.00000000",
        "time": order.ts, "updateTime": order.update_ts, "isWorking": True, "workingTime": order.ts,
        "origQuoteOrderQty": "0.00000000", "selfTradePreventionMode": "EXPIRE_MAKER",
    }


def open_orders(call: Call) -> Any:
    market = _market(call, required=False)
    with call.ledger.lock:
        return [_order(o) for o in call.ledger.open_orders if market is None or o.symbol == market.symbol]


def all_orders(call: Call) -> Any:
    market = _market(call)
    assert market is not None
    limit = _limit(call, 500, 1000)
    order_id = _int(call, "orderId")
    start, end = _window(call, DAY_MS)
    ledger = call.ledger
    with ledger.lock:
        closed = ledger.orders_by_symbol.get(market.symbol)
        orders = (list(closed.items) if closed else []) + [o for o in ledger.open_orders if o.symbol == market.symbol]
    orders.sort(key=lambda o: o.seq)
    if order_id is not None:
        orders = [o for o in orders if ORDER_ID_BASE + o.seq >= order_id][:limit]
    elif start is not None:
        orders = [o for o in orders if start <= o.ts <= end][:limit]
    else:
        orders = orders[-limit:]
    return [_order(o) for o in orders]


def coins(call: Call) -> Any:
    balances = call.ledger.balances()
    rows = []
    for asset in ASSETS:
        free, used = balances.get(asset, (0, 0))
        rows.append({
            "coin": asset, "name": asset, "depositAllEnable": True, "withdrawAllEnable": True,
            "free": fmt(free), "locked": fmt(used), "freeze": "0", "withdrawing": "0", "ipoing": "0",
            "ipoable": "0", "storage": "0", "isLegalMoney": False, "trading": True,
            "networkList": [{
                "network": NETWORKS[asset], "coin": asset, "withdrawIntegerMultiple": "0.00000001",
                "isDefault": True, "depositEnable": True, "withdrawEnable": True, "depositDesc": "",
                "withdrawDesc": "", "specialTips": "", "name": NETWORKS[asset], "resetAddressStatus": False,
                "addressRegex": "", "memoRegex": "", "withdrawFee": fmt(WITHDRAW_FEES[asset]),
                "withdrawMin": fmt(2 * WITHDRAW_FEES[asset]), "withdrawMax": "9999999999.00000000",
                "minConfirm": 1, "unLockConfirm": 0, "sameAddress": False, "estimatedArrivalTime": 5,
                "busy": False,
            }],
        })
    return rows


def funding_wallet(call: Call) -> Any:
    """The funding wallet, one row per asset it holds (``asset`` picks one).

    https://developers.binance.com/docs/wallet/asset/funding-wallet: POST
    /sapi/v1/asset/get-funding-asset, rows of asset, free, locked, freeze, withdrawing and,
    with ``needBtcValuation=true``, btcValuation.
    """
    wanted = call.params.get("asset") or None
    valued = call.params.get("needBtcValuation") == "true"
    book = call.world.book
    with call.ledger.lock:
        held = [(a, v) for a, v in sorted(call.ledger.funding.items()) if v and wanted in (None, a)]
    rows = []
    for asset, amount in held:
        row = {"asset": asset, "free": fmt(amount), "locked": "0", "freeze": "0", "withdrawing": "0"}
        if valued:
            btc = amount * book.usd(asset, call.now) / book.usd("BTC", call.now)
            row["btcValuation"] = fmt(int(btc))
        rows.append(row)
    return rows


def empty_list(call: Call) -> Any:
    """Margin pairs and derivative positions: the simulated accounts are spot-only."""
    return []


def _transfers(call: Call, records: list[Transfer]) -> list[Transfer]:
    start, end = _window(call, TRANSFER_WINDOW_MS, default_end=call.now)
    coin = call.params.get("coin")
    offset = _int(call, "offset", 0) or 0
    limit = _limit(call, 1000, 1000)
    with call.ledger.lock:
        chosen = [t for t in records if start <= t.ts <= end and (coin is None or t.asset == coin)]
    chosen.sort(key=lambda t: (t.ts, t.seq), reverse=True)
    return chosen[offset : offset + limit]


def _utc(ms: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ms / 1000))


def deposits(call: Call) -> Any:
    return [{
        "id": t.transfer_id, "amount": fmt(t.amount), "coin": t.asset, "network": NETWORKS[t.asset],
        "status": 0 if t.pending else 1, "address": t.address, "addressTag": "", "txId": t.txid,
        "insertTime": t.ts, "completeTime": 0 if t.pending else t.ts + 5 * MINUTE_MS, "transferType": 0,
        "confirmTimes": "3/12" if t.pending else "12/12",
        "unlockConfirm": 0, "walletType": 0,
    } for t in _transfers(call, call.ledger.deposits)]


def withdrawals(call: Call) -> Any:
    return [{
        "id": t.transfer_id, "amount": fmt(t.amount), "transactionFee": fmt(t.fee), "coin": t.asset,
        "status": 4 if t.pending else 6, "address": t.address, "txId": t.txid, "applyTime": _utc(t.ts),
        "network": NETWORKS[t.asset],
        "transferType": 0, "info": "", "confirmNo": 12, "walletType": 0, "txKey": "",
        **({} if t.pending else {"completeTime": _utc(t.ts + 5 * MINUTE_MS)}),
    } for t in _transfers(call, call.ledger.withdrawals)]


#: paths served as POST (reads that Binance made POSTs); every other route is GET
POST_PATHS = frozenset({"sapi/v1/asset/get-funding-asset"})
#: path -> (signed, handler); the dashboard only reads
ROUTES: dict[str, tuple[bool, Callable[[Call], Any]]] = {
    "api/v3/ping": (False, ping),
    "api/v3/time": (False, server_time),
    "api/v3/exchangeInfo": (False, exchange_info),
    "api/v3/ticker/24hr": (False, tickers),
    "api/v3/klines": (False, klines),
    "fapi/v1/exchangeInfo": (False, derivatives_info),
    "dapi/v1/exchangeInfo": (False, derivatives_info),
    "eapi/v1/exchangeInfo": (False, options_info),
    "api/v3/account": (True, account),
    "api/v3/myTrades": (True, my_trades),
    "api/v3/openOrders": (True, open_orders),
    "api/v3/allOrders": (True, all_orders),
    "sapi/v1/capital/config/getall": (True, coins),
    "sapi/v1/margin/allPairs": (True, empty_list),
    "sapi/v1/margin/isolated/allPairs": (True, empty_list),
    "sapi/v1/capital/deposit/hisrec": (True, deposits),
    "sapi/v1/capital/withdraw/history": (True, withdrawals),
    "sapi/v1/asset/get-funding-asset": (True, funding_wallet),
    # fetch_positions looks at USD-M (and COIN-M) futures: a spot-only account holds none
    "fapi/v1/leverageBracket": (True, empty_list),
    "fapi/v3/positionRisk": (True, empty_list),
    "fapi/v2/positionRisk": (True, empty_list),
    "dapi/v1/positionRisk": (True, empty_list),
}


def handle(call: Call) -> Reply:
    path = call.path.lstrip("/")
    route = ROUTES.get(path)
    if route is None or call.method != ("POST" if path in POST_PATHS else "GET"):
        return Reply(404, "<html><body><h1>404 Not Found</h1></body></html>")
    if call.method == "POST":  # parameters may come in a form body as well
        call.params = {**call.params, **dict(parse_qsl(call.body, keep_blank_values=True))}
    signed, handler = route
    try:
        if signed:
            authenticate(call)
        return Reply(200, handler(call))
    except ApiError as exc:
        return exc.reply

"""The Bybit v5 REST dialect (``/v5``) as ccxt 4.5.90 uses it, for a unified trading account (UTA 2.0 Pro).

Every answer is ``{"retCode": 0, "retMsg": "OK", "result": {...}, "retExtInfo": {}, "time": ms}``;
errors carry Bybit's retCodes (https://bybit-exchange.github.io/docs/v5/error): 10003 unknown
key, 10004 bad signature, 10002 stale timestamp, 10006 rate limit, 10005 permission, 10016
server error, 10001 bad parameter. Lists come newest first and page with an opaque
``cursor`` (``nextPageCursor``, ``""`` on the last page). Trades and orders are read in
windows of at most 7 days (kept 2 years), deposits and withdrawals in windows under 30 days.
The simulated accounts trade spot only: the linear, inverse and option categories answer
empty lists, so ccxt's load_markets finds spot markets only. The transaction log (ccxt's
fetch_ledger) is read in windows of at most 7 days, 24 hours when a bound is missing. Not
served: monthly klines.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from lib.simulator.accounts import LEDGER_ID_BASE, Posting, now_ms
from lib.simulator.history import FEES, NETWORKS, WITHDRAW_FEES
from lib.simulator.ledger import Fill, Ledger, Order, Series, Transfer
from lib.simulator.market import DAY_MS, LISTED_SYMBOLS, MARKETS, MINUTE_MS, SATS, Market, fmt
from lib.simulator.protocol import ApiError, Call, Reply

T = TypeVar("T")

SYMBOLS = LISTED_SYMBOLS["bybit"]
BY_ID = {MARKETS[s].base + MARKETS[s].quote: MARKETS[s] for s in SYMBOLS}
ASSETS = sorted({a for s in SYMBOLS for a in (MARKETS[s].base, MARKETS[s].quote)})
CATEGORIES = ("spot", "linear", "inverse", "option")
#: kline intervals in minutes; "M" (calendar months) is not simulated
INTERVALS = {"1": 1, "3": 3, "5": 5, "15": 15, "30": 30, "60": 60, "120": 120, "240": 240, "360": 360,
             "720": 720, "D": 1440, "W": 7 * 1440}
#: weekly candles open on Monday 00:00 UTC; the epoch was a Thursday
WEEK_OFFSET_MS = 4 * DAY_MS
TRADE_WINDOW_MS = 7 * DAY_MS
RETENTION_MS = 730 * DAY_MS
TRANSFER_WINDOW_MS = 30 * DAY_MS
#: the transaction log's span when startTime or endTime is missing
LOG_DEFAULT_SPAN_MS = DAY_MS
#: posting kind -> transaction-log type (https://bybit-exchange.github.io/docs/v5/enum#typeuta-translog)
LOG_TYPES = {"trade": "TRADE", "transfer_in": "TRANSFER_IN", "transfer_out": "TRANSFER_OUT"}
DEFAULT_RECV_WINDOW = 5000
#: execution feeRate by isMaker
FEE_RATE = {True: f"{FEES['bybit'].maker_ppm / 1e6:.6f}".rstrip("0"),
            False: f"{FEES['bybit'].taker_ppm / 1e6:.6f}".rstrip("0")}


def num(sats: int) -> str:
    """Bybit prints numbers without trailing zeros."""
    text = fmt(sats).rstrip("0").rstrip(".")
    return text if text not in ("", "-") else "0"


def _body(code: int, msg: str, result: Any) -> dict[str, Any]:
    return {"retCode": code, "retMsg": msg, "result": result, "retExtInfo": {}, "time": now_ms()}


def error(code: int, msg: str, status: int = 200) -> ApiError:
    return ApiError(Reply(status, _body(code, msg, {})))


def api_key(headers: Mapping[str, str]) -> str | None:
    return headers.get("X-BAPI-API-KEY")


def rate_limited() -> Reply:
    """The per-UID API limit: HTTP 200, retCode 10006 and the X-Bapi-Limit headers, no Retry-After.

    https://bybit-exchange.github.io/docs/v5/rate-limit : "If you receive "retCode": 10006,
    "retMsg": "Too many visits!" in the JSON response, you have hit the API rate limit."
    """
    now = now_ms()
    headers = {"X-Bapi-Limit": "50", "X-Bapi-Limit-Status": "0", "X-Bapi-Limit-Reset-Timestamp": str(now + 1000)}
    return Reply(200, _body(10006, "Too many visits!", {}), headers)


def server_error() -> Reply:
    """An internal error as https://bybit-exchange.github.io/docs/v5/error lists it: retCode 10016
    "Server error." (the HTTP code table has no 5xx); ccxt 4.5.90 raises a plain ExchangeError."""
    return Reply(200, _body(10016, "Server error.", {}))


def permission_denied() -> Reply:
    """https://bybit-exchange.github.io/docs/v5/error : 10005, which ccxt raises as PermissionDenied."""
    return Reply(200, _body(10005, "Permission denied, please check your API key permissions.", {}))


# --- parameters -----------------------------------------------------------------------

def _int(call: Call, name: str) -> int | None:
    raw = call.params.get(name)
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise error(10001, f"params error: {name} invalid") from None


def _limit(call: Call, default: int, maximum: int) -> int:
    limit = _int(call, "limit")
    if limit is None:
        return default
    if not 1 <= limit <= maximum:
        raise error(10001, f"params error: limit must be in [1, {maximum}]")
    return limit


def _cursor(call: Call) -> int | None:
    """Cursors are the key of the last row served; the next page holds older rows only."""
    raw = call.params.get("cursor")
    if not raw:
        return None
    if not raw.isdigit():
        raise error(10001, "params error: cursor invalid")
    return int(raw)


def _category(call: Call) -> str:
    category = call.params.get("category")
    if category not in CATEGORIES:
        raise error(10001, "params error: Category is invalid")
    return category


def _market(call: Call, required: bool = False) -> Market | None:
    symbol = call.params.get("symbol")
    if not symbol:
        if required:
            raise error(10001, "params error: symbol is required")
        return None
    if symbol not in BY_ID:
        raise error(10001, "Not supported symbols")
    return BY_ID[symbol]


def _trade_window(call: Call) -> tuple[int, int]:
    """startTime/endTime of execution/list and order/history, both bounds inclusive.

    https://bybit-exchange.github.io/docs/v5/order/execution and .../v5/order/order-list:
    "startTime and endTime are not passed, return 7 days by default; Only startTime is
    passed, return range between startTime and startTime+7 days; Only endTime is passed,
    return range between endTime-7 days and endTime; If both are passed, the rule is
    endTime - startTime <= 7 days". A longer span is refused with 10001 (the generic
    "Request parameter error" of the UTA table; the wording is the one the docs list as
    181010). Rows older than 2 years ("Get Trade History (2 years)") are never returned.
    """
    return _window(call, TRADE_WINDOW_MS)


def _window(call: Call, default_span_ms: int) -> tuple[int, int]:
    """startTime/endTime completed by ``default_span_ms`` from whichever bound is given (both
    missing: the span up to now); both given may span 7 days at most; 2 years kept."""
    start, end = _int(call, "startTime"), _int(call, "endTime")
    if start is not None and end is not None:
        if end < start:
            raise error(10001, "params error: startTime must be less than endTime")
        if end - start > TRADE_WINDOW_MS:
            raise error(10001, "The time range between startTime and endTime cannot exceed 7 days")
    elif start is not None:
        end = start + default_span_ms
    elif end is not None:
        start = end - default_span_ms
    else:
        start, end = call.now - default_span_ms, call.now
    return max(start, call.now - RETENTION_MS), end


def _transfer_window(call: Call) -> tuple[int, int]:
    """startTime/endTime of the deposit and withdrawal records, both bounds inclusive.

    https://bybit-exchange.github.io/docs/v5/asset/deposit/deposit-record and
    .../v5/asset/withdraw/withdraw-record: "endTime - startTime should be less than 30 days.
    Query last 30 days records by default." Only startTime: endTime is now, and the span
    rule applies (Bybit answered 131002 "The interval between the startTime and endTime is
    incorrect" to ccxt in that case, ccxt PR #16735); only endTime: the 30 days before it.
    """
    start, end = _int(call, "startTime"), _int(call, "endTime")
    if start is None and end is None:
        return call.now - TRANSFER_WINDOW_MS, call.now
    if start is None:
        assert end is not None
        return end - TRANSFER_WINDOW_MS, end
    end = call.now if end is None else end
    if end < start or end - start >= TRANSFER_WINDOW_MS:
        raise error(131002, "The interval between the startTime and endTime is incorrect")
    return start, end


def _page(series: Series[T], call: Call, limit: int, ts_min: int | None = None, ts_max: int | None = None,
          keep: Callable[[T], bool] | None = None) -> tuple[list[T], str]:
    """Newest first: up to ``limit`` rows older than the cursor, and the next cursor ("" at the end)."""
    cursor = _cursor(call)
    i, j = series.window(key_max=None if cursor is None else cursor - 1, ts_min=ts_min, ts_max=ts_max)
    rows: list[T] = []
    last_key = 0
    for k in range(j - 1, i - 1, -1):
        item = series.items[k]
        if keep is not None and not keep(item):
            continue
        if len(rows) == limit:
            return rows, str(last_key)
        rows.append(item)
        last_key = series.keys[k]
    return rows, ""


def _series(items: list[T], key: Callable[[T], int], ts: Callable[[T], int]) -> Series[T]:
    series: Series[T] = Series()
    for item in sorted(items, key=lambda x: (ts(x), key(x))):
        series.append(item, key(item), ts(item))
    return series


# --- authentication -------------------------------------------------------------------

def authenticate(call: Call) -> None:
    """HMAC-SHA256 (lowercase hex) of timestamp + API key + recv_window + queryString (GET) or body.

    https://bybit-exchange.github.io/docs/v5/guide#authentication : headers X-BAPI-API-KEY,
    X-BAPI-TIMESTAMP, X-BAPI-SIGN and X-BAPI-RECV-WINDOW (default 5000); the timestamp must
    lie in [server_time - recv_window, server_time + 1000). An unknown, foreign or revoked key
    answers HTTP 401 ("Need to use the correct key to access", .../v5/error) with 10003.
    """
    headers = call.headers
    key = headers.get("X-BAPI-API-KEY", "")
    account = call.world.by_key.get(key)
    if account is None or account.dialect != "bybit" or account.id in call.world.revoked:
        raise error(10003, "API key is invalid.", 401)
    stamp, recv = headers.get("X-BAPI-TIMESTAMP", ""), headers.get("X-BAPI-RECV-WINDOW", "")
    if not stamp.isdigit() or not (recv == "" or recv.isdigit()):
        raise error(10001, "params error: X-BAPI-TIMESTAMP or X-BAPI-RECV-WINDOW invalid")
    window = int(recv) if recv else DEFAULT_RECV_WINDOW
    if not call.now - window <= int(stamp) < call.now + 1000:
        raise error(10002, "invalid request, please check your server timestamp or recv_window param. "
                           f"req_timestamp[{stamp}],server_timestamp[{call.now}],recv_window[{window}]")
    payload = stamp + key + recv + (call.raw_query if call.method == "GET" else call.body)
    expected = hmac.new(account.secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, headers.get("X-BAPI-SIGN", "")):
        raise error(10004, "Error sign, please check your signature generation algorithm.")
    call.account = account


# --- public ---------------------------------------------------------------------------

def server_time(call: Call) -> dict[str, Any]:
    """https://bybit-exchange.github.io/docs/v5/market/time"""
    return {"timeSecond": str(call.now // 1000), "timeNano": str(call.now * 1_000_000)}


def _instrument(index: int, market: Market) -> dict[str, Any]:
    min_amount = "0.0001" if market.quote == "BTC" else "5"
    return {
        "symbolId": index, "symbol": market.base + market.quote, "baseCoin": market.base,
        "quoteCoin": market.quote, "innovation": "0", "status": "Trading", "marginTrading": "none", "stTag": "0",
        "lotSizeFilter": {
            "basePrecision": num(market.step), "quotePrecision": "0.00000001", "minOrderQty": num(market.step),
            "maxOrderQty": "9000", "minOrderAmt": min_amount, "maxOrderAmt": "8000000", "maxLimitOrderQty": "9000",
            "maxMarketOrderQty": "4500", "postOnlyMaxLimitOrderSize": "9000",
        },
        "priceFilter": {"tickSize": num(market.tick)},
        "riskParameters": {"priceLimitRatioX": "0.005", "priceLimitRatioY": "0.01"},
        "symbolType": "",
    }


def instruments(call: Call) -> dict[str, Any]:
    """https://bybit-exchange.github.io/docs/v5/market/instrument : spot is not paged ("Spot does
    not support pagination") and has "Trading" symbols only; the other categories are empty."""
    category = _category(call)
    if category != "spot":
        return {"category": category, "list": [], "nextPageCursor": ""}
    market = _market(call)
    status = call.params.get("status")
    rows = [_instrument(i, m) for i, m in enumerate(BY_ID.values(), 1)
            if (market is None or m is market) and status in (None, "", "Trading")]
    return {"category": "spot", "list": rows}


def _ticker(call: Call, market: Market) -> dict[str, Any]:
    book = call.world.book
    (_, o, h, lo, c, vol), = book.candles(market.symbol, 24 * 60, call.now - DAY_MS, 1, call.now)
    return {
        "symbol": market.base + market.quote, "bid1Price": num(c - market.tick), "bid1Size": num(market.step * 100),
        "ask1Price": num(c + market.tick), "ask1Size": num(market.step * 100), "lastPrice": num(c),
        "prevPrice24h": num(o), "price24hPcnt": f"{(c - o) / o:.4f}", "highPrice24h": num(h),
        "lowPrice24h": num(lo), "turnover24h": num(vol * c // SATS), "volume24h": num(vol),
        "usdIndexPrice": f"{book.usd(market.base, call.now):.8f}",
    }


def tickers(call: Call) -> dict[str, Any]:
    """https://bybit-exchange.github.io/docs/v5/market/tickers : one symbol or all of a category;
    "If category=option, symbol or baseCoin must be passed"."""
    category = _category(call)
    if category == "option" and not (call.params.get("symbol") or call.params.get("baseCoin")):
        raise error(10001, "params error: symbol or baseCoin must be passed")
    if category != "spot":
        return {"category": category, "list": []}
    market = _market(call)
    return {"category": "spot", "list": [_ticker(call, m) for m in BY_ID.values() if market in (None, m)]}


def kline(call: Call) -> dict[str, Any]:
    """https://bybit-exchange.github.io/docs/v5/market/kline : newest first, ``limit`` 1..1000
    (default 200), category defaults to linear; a candle opening at ``start`` or ``end`` is
    included. The docs do not say which candles a range longer than ``limit`` gives: here
    the first ``limit`` from ``start`` when it is sent (what ccxt's forward paging expects),
    else the last ``limit`` up to ``end`` (default now); the current candle is partial."""
    category = call.params.get("category") or "linear"
    if category not in ("spot", "linear", "inverse"):
        raise error(10001, "params error: Category is invalid")
    market = _market(call, required=True)
    if category != "spot":
        raise error(10001, "Not supported symbols")
    assert market is not None
    minutes = INTERVALS.get(call.params.get("interval", ""))
    if minutes is None:
        raise error(10001, "params error: interval invalid")
    limit = _limit(call, 200, 1000)
    tf = minutes * MINUTE_MS
    offset = WEEK_OFFSET_MS if call.params["interval"] == "W" else 0

    def align(ts: int) -> int:
        return (ts - offset) // tf * tf + offset

    start, end = _int(call, "start"), _int(call, "end")
    last_open = align(min(call.now if end is None else end, call.now))
    if start is not None:
        first_open = align(start)
        last_open = min(last_open, first_open + (limit - 1) * tf)
    else:
        first_open = last_open - (limit - 1) * tf
    count = max(0, (last_open - first_open) // tf + 1)
    rows = [[str(t), num(o), num(h), num(lo), num(c), num(vol), num(vol * c // SATS)]
            for t, o, h, lo, c, vol in call.world.book.candles(market.symbol, minutes, first_open, count, call.now)]
    return {"category": "spot", "symbol": market.base + market.quote, "list": rows[::-1]}


# --- private: account -----------------------------------------------------------------

def _uid(call: Call) -> int:
    assert call.account is not None
    return 100_000_000 + call.account.index


def api_key_info(call: Call) -> dict[str, Any]:
    """https://bybit-exchange.github.io/docs/v5/user/apikey-info : ccxt reads ``uta`` (1: unified)."""
    assert call.account is not None
    return {
        "id": str(call.account.index), "note": "simulator", "apiKey": call.account.api_key, "readOnly": 1,
        "secret": "", "permissions": {
            "ContractTrade": [], "Spot": ["SpotTrade"], "Wallet": ["AccountTransfer"], "Options": [],
            "Derivatives": [], "Exchange": ["ExchangeHistory"], "Earn": [], "FiatP2P": [], "FiatBitPay": [],
            "FiatConvertBroker": [], "BitCard": [], "ByXPost": [], "Affiliate": [], "BlockTrade": [], "NFT": [],
            "CopyTrading": [],
        },
        "ips": [], "type": 1, "deadlineDay": 90, "expiredAt": "", "createdAt": "2024-01-01T00:00:00Z",
        "unified": 0, "uta": 1, "userID": _uid(call), "inviterID": 0, "vipLevel": "No VIP", "mktMakerLevel": "0",
        "affiliateID": 0, "rsaPublicKey": "", "isMaster": True, "parentUid": "0", "kycLevel": "LEVEL_1",
        "kycRegion": "",
    }


def account_info(call: Call) -> dict[str, Any]:
    """https://bybit-exchange.github.io/docs/v5/account/account-info : unifiedMarginStatus 6 is
    "Unified trading account 2.0 (pro version)", so ccxt reads the UNIFIED wallet."""
    return {"unifiedMarginStatus": 6, "marginMode": "REGULAR_MARGIN", "isMasterTrader": False,
            "spotHedgingStatus": "OFF", "updatedTime": str(call.world.start_ms), "dcpStatus": "OFF",
            "timeWindow": 0, "smpGroup": 0}


def _coins(call: Call) -> set[str] | None:
    raw = call.params.get("coin")
    return set(raw.split(",")) if raw else None


def wallet_balance(call: Call) -> dict[str, Any]:
    """https://bybit-exchange.github.io/docs/v5/account/wallet-balance : accountType UNIFIED only;
    without ``coin`` only non-zero coins. ``walletBalance`` is the total and ``locked`` what
    spot orders hold; ``availableToWithdraw`` is "Deprecated for accountType=UNIFIED from
    9 Jan, 2025", so it is empty and ccxt derives free = walletBalance - locked."""
    if call.params.get("accountType") != "UNIFIED":
        raise error(10001, "accountType only support UNIFIED.")
    wanted = _coins(call)
    ledger, book = call.ledger, call.world.book
    with ledger.lock:
        balances = ledger.balances()
    rows, total_usd, free_usd = [], 0.0, 0.0
    for asset in sorted(wanted or balances):
        free, used = balances.get(asset, (0, 0))
        if wanted is None and free + used == 0:
            continue
        usd = float(free + used) / SATS * (book.usd(asset, call.now) if asset in ASSETS else 0.0)
        total_usd += usd
        free_usd += usd * (float(free) / float(free + used) if free + used else 0.0)
        rows.append({
            "coin": asset, "equity": num(free + used), "usdValue": f"{usd:.8f}", "walletBalance": num(free + used),
            "locked": num(used), "spotHedgingQty": "0", "borrowAmount": "0", "accruedInterest": "0",
            "totalOrderIM": "0", "totalPositionIM": "0", "totalPositionMM": "0", "unrealisedPnl": "0",
            "cumRealisedPnl": "0", "bonus": "0", "marginCollateral": True, "collateralSwitch": True, "colRes": "0",
            "spotBorrow": "0", "free": "", "availableToWithdraw": "", "availableToBorrow": "",
        })
    return {"list": [{
        "accountType": "UNIFIED", "accountIMRate": "0", "accountMMRate": "0", "totalEquity": f"{total_usd:.8f}",
        "totalWalletBalance": f"{total_usd:.8f}", "totalMarginBalance": f"{total_usd:.8f}",
        "totalAvailableBalance": f"{free_usd:.8f}", "totalPerpUPL": "0", "totalInitialMargin": "0",
        "totalMaintenanceMargin": "0", "accountIMRateByMp": "0", "accountMMRateByMp": "0",
        "totalInitialMarginByMp": "0", "totalMaintenanceMarginByMp": "0", "accountLTV": "0", "coin": rows,
    }]}


def coins_balance(call: Call) -> dict[str, Any]:
    """https://bybit-exchange.github.io/docs/v5/asset/balance/all-balance : accountType FUND (the
    funding wallet, ``ledger.funding``) or UNIFIED, where ``coin`` "is mandatory ... and supports
    up to 10 coins each request"; without ``coin`` every coin the account holds."""
    account_type, wanted = call.params.get("accountType"), _coins(call)
    ledger = call.ledger
    with ledger.lock:
        if account_type == "FUND":
            held = {asset: (amount, amount) for asset, amount in ledger.funding.items()}
        elif account_type == "UNIFIED":
            if wanted is None or len(wanted) > 10:
                raise error(10001, "params error: coin is required for accountType UNIFIED, up to 10 coins")
            held = {asset: (free + used, free) for asset, (free, used) in ledger.balances().items()}
        else:
            raise error(10001, "params error: accountType invalid")
    rows = [{"coin": asset, "walletBalance": num(total), "transferBalance": num(free), "bonus": ""}
            for asset, (total, free) in sorted(held.items())
            if (wanted is None and total) or (wanted is not None and asset in wanted)]
    rows += [{"coin": asset, "walletBalance": "0", "transferBalance": "0", "bonus": ""}
             for asset in sorted((wanted or set()) - set(held))]
    return {"memberId": str(_uid(call)), "accountType": account_type, "balance": rows}


def coin_info(call: Call) -> dict[str, Any]:
    """https://bybit-exchange.github.io/docs/v5/asset/coin-info (ccxt's fetch_currencies)."""
    wanted = call.params.get("coin")
    return {"rows": [{
        "name": asset, "coin": asset, "remainAmount": "0", "chains": [{
            "chain": NETWORKS[asset], "chainType": NETWORKS[asset], "confirmation": "12",
            "withdrawFee": num(WITHDRAW_FEES[asset]), "depositMin": "0", "withdrawMin": num(2 * WITHDRAW_FEES[asset]),
            "minAccuracy": "8", "chainDeposit": "1", "chainWithdraw": "1", "withdrawPercentageFee": "0",
            "contractAddress": "", "safeConfirmNumber": "12", "withdrawMax": "-1",
        }],
    } for asset in ASSETS if wanted in (None, "", asset)]}


# --- private: trades and orders -------------------------------------------------------

def _order_of(ledger: Ledger, fill: Fill) -> Order | None:
    i, j = ledger.orders.window(key_min=fill.order_seq, key_max=fill.order_seq)
    return ledger.orders.items[i] if i < j else None


def _order_fills(ledger: Ledger, order: Order) -> list[Fill]:
    fills = ledger.fills_by_symbol.get(order.symbol)
    if fills is None:
        return []
    i, j = fills.window(key_min=order.seq, ts_min=order.ts, ts_max=order.ts)
    return [f for f in fills.items[i:j] if f.order_seq == order.seq]


def _execution(ledger: Ledger, fill: Fill) -> dict[str, Any]:
    market = MARKETS[fill.symbol]
    order = _order_of(ledger, fill)
    done = sum(f.amount for f in _order_fills(ledger, order) if f.seq <= fill.seq) if order else fill.amount
    amount = order.amount if order else fill.amount
    return {
        "symbol": market.base + market.quote, "orderId": fill.order_id, "orderLinkId": "",
        "side": "Buy" if fill.buy else "Sell", "orderPrice": num(order.price if order else fill.price),
        "orderQty": num(amount), "leavesQty": num(amount - done), "orderType": "Limit", "stopOrderType": "",
        "execFee": num(fill.fee), "execFeeV2": "", "execId": fill.trade_id, "execPrice": num(fill.price),
        "execQty": num(fill.amount), "execType": "Trade", "execValue": num(fill.cost), "execTime": str(fill.ts),
        "feeCurrency": fill.fee_asset, "isMaker": fill.maker, "feeRate": FEE_RATE[fill.maker], "tradeIv": "",
        "markIv": "", "markPrice": "", "indexPrice": "", "underlyingPrice": "", "blockTradeId": "",
        "closedSize": "", "seq": fill.seq, "extraFees": "",
    }


def executions(call: Call) -> dict[str, Any]:
    """https://bybit-exchange.github.io/docs/v5/order/execution : "sorted by execTime in descending
    order", ``limit`` [1, 100] default 50, cursor paging; windows as ``_trade_window``. With
    orderId (or orderLinkId) "other input parameters will be ignored", the window included."""
    category = _category(call)
    limit = _limit(call, 50, 100)
    if category != "spot" or call.params.get("execType") not in (None, "", "Trade"):
        return {"category": category, "list": [], "nextPageCursor": ""}
    ledger = call.ledger
    order_id, link_id = call.params.get("orderId"), call.params.get("orderLinkId")
    with ledger.lock:
        if order_id or link_id:  # no order here has an orderLinkId
            page, cursor = _page(ledger.fills, call, limit, keep=lambda f: f.order_id == order_id)
        else:
            market, base = _market(call), call.params.get("baseCoin")
            series = ledger.fills if market is None else ledger.fills_by_symbol.get(market.symbol)
            start, end = _trade_window(call)
            keep = None if not base else (lambda f: MARKETS[f.symbol].base == base)
            page, cursor = _page(series, call, limit, start, end, keep) if series is not None else ([], "")
        return {"category": "spot", "list": [_execution(ledger, f) for f in page], "nextPageCursor": cursor}


def _status(order: Order) -> str:
    """Order status names of https://bybit-exchange.github.io/docs/v5/enum#orderstatus
    ("PartiallyFilledCanceled: Only spot has this order status")."""
    if order.is_open:
        return "PartiallyFilled" if order.filled else "New"
    if getattr(order, "canceled", False) or order.filled < order.amount:
        return "PartiallyFilledCanceled" if order.filled else "Cancelled"
    return "Filled"


def _order(ledger: Ledger, order: Order) -> dict[str, Any]:
    market = MARKETS[order.symbol]
    status = _status(order)
    fees: dict[str, int] = {}
    for fill in _order_fills(ledger, order):
        fees[fill.fee_asset] = fees.get(fill.fee_asset, 0) + fill.fee
    leaves = order.amount - order.filled if order.is_open else 0
    return {
        "orderId": order.order_id, "orderLinkId": "", "parentOrderLinkId": "", "blockTradeId": "",
        "symbol": market.base + market.quote, "price": num(order.price), "qty": num(order.amount),
        "side": "Buy" if order.buy else "Sell", "isLeverage": "0", "positionIdx": 0, "orderStatus": status,
        "cancelType": "CancelByUser" if "Cancel" in status else "UNKNOWN", "rejectReason": "EC_NoError",
        "avgPrice": num(order.cost * SATS // order.filled) if order.filled else "", "leavesQty": num(leaves),
        "leavesValue": num(leaves * order.price // SATS), "cumExecQty": num(order.filled),
        "cumExecValue": num(order.cost), "cumExecFee": num(sum(fees.values())), "timeInForce": "GTC",
        "orderType": "Limit", "stopOrderType": "", "orderIv": "", "marketUnit": "", "slippageToleranceType": "UNKNOWN",
        "slippageTolerance": "0", "triggerPrice": "0", "takeProfit": "0", "stopLoss": "0",
        "ocoTriggerBy": "OcoTriggerByUnknown", "tpLimitPrice": "0", "slLimitPrice": "0", "tpTriggerBy": "",
        "slTriggerBy": "", "triggerDirection": 0, "triggerBy": "", "lastPriceOnCreated": "",
        "basePrice": num(order.price), "reduceOnly": False, "closeOnTrigger": False, "placeType": "",
        "smpType": "None", "smpGroup": 0, "smpOrderId": "", "createdTime": str(order.ts),
        "updatedTime": str(order.update_ts or order.ts), "extraFees": "",
        "cumFeeDetail": {asset: num(fee) for asset, fee in fees.items()},
        "rpiTakerAccess": False, "rpiMatchedQty": "0",
    }


def order_history(call: Call) -> dict[str, Any]:
    """https://bybit-exchange.github.io/docs/v5/order/order-list : windows as ``_trade_window``,
    ``limit`` [1, 50] default 20, newest first by creation, cursor paging. Retention: orders
    without fills ("Cancelled") only from the last 24 hours, orders with fills for 2 years."""
    category = _category(call)
    limit = _limit(call, 20, 50)
    if category != "spot":
        return {"category": category, "list": [], "nextPageCursor": ""}
    market = _market(call)
    order_id, wanted = call.params.get("orderId"), call.params.get("orderStatus")

    def keep(order: Order) -> bool:
        status = _status(order)
        return ((not order_id or order.order_id == order_id) and wanted in (None, "", status)
                and (order.filled > 0 or order.ts >= call.now - DAY_MS))

    ledger = call.ledger
    with ledger.lock:
        series = ledger.orders if market is None else ledger.orders_by_symbol.get(market.symbol)
        start, end = _trade_window(call)
        page, cursor = _page(series, call, limit, start, end, keep) if series is not None else ([], "")
        return {"category": "spot", "list": [_order(ledger, o) for o in page], "nextPageCursor": cursor}


def open_orders(call: Call) -> dict[str, Any]:
    """https://bybit-exchange.github.io/docs/v5/order/open-order : open orders newest first by
    createdTime, ``limit`` [1, 50] default 20; ``openOnly=1`` gives the recent 500 closed ones."""
    category = _category(call)
    limit = _limit(call, 20, 50)
    if category != "spot":
        return {"category": category, "list": [], "nextPageCursor": ""}
    market = _market(call)
    order_id = call.params.get("orderId")
    ledger = call.ledger
    with ledger.lock:
        chosen = ledger.orders.items[-500:] if call.params.get("openOnly") == "1" else ledger.open_orders
        # resting orders were placed in any order: the key sorts by createdTime, then id
        series = _series([o for o in chosen if market in (None, MARKETS[o.symbol])
                          and (not order_id or o.order_id == order_id)],
                         lambda o: o.ts * 10**10 + o.seq, lambda o: o.ts)
        page, cursor = _page(series, call, limit)
        return {"category": "spot", "list": [_order(ledger, o) for o in page], "nextPageCursor": cursor}


# --- private: deposits and withdrawals ------------------------------------------------

def _transfers(call: Call, records: list[Transfer], seconds: bool) -> tuple[list[Transfer], str]:
    """Newest first, ``limit`` [1, 50] default 50; ``seconds``: the deposit record's "query logic
    is actually effective based on second level", so both bounds cover their whole second."""
    start, end = _transfer_window(call)
    if seconds:
        start, end = start // 1000 * 1000, end // 1000 * 1000 + 999
    limit = _limit(call, 50, 50)
    coin = call.params.get("coin")
    with call.ledger.lock:
        series = _series([t for t in records if coin in (None, "", t.asset)], lambda t: t.seq, lambda t: t.ts)
    return _page(series, call, limit, start, end)


def deposits(call: Call) -> dict[str, Any]:
    """https://bybit-exchange.github.io/docs/v5/asset/deposit/deposit-record : status 1
    (toBeConfirmed) while pending, 3 (success) once credited."""
    page, cursor = _transfers(call, call.ledger.deposits, seconds=True)
    return {"rows": [{
        "id": t.transfer_id, "coin": t.asset, "chain": NETWORKS[t.asset], "amount": num(t.amount), "txID": t.txid,
        "status": 1 if t.pending else 3, "toAddress": t.address, "tag": "", "depositFee": "",
        "successAt": str(t.ts), "confirmations": "3" if t.pending else "12", "txIndex": "0", "blockHash": "",
        "batchReleaseLimit": "-1", "depositType": "0", "fromAddress": "", "taxDepositRecordsId": "0",
        "taxStatus": 0,
    } for t in page], "nextPageCursor": cursor}


def withdrawals(call: Call) -> dict[str, Any]:
    """https://bybit-exchange.github.io/docs/v5/asset/withdraw/withdraw-record : status "Pending"
    while in flight, "success" once done; ``withdrawType`` 0 (on chain, the default) or 2 (all)."""
    page, cursor = _transfers(call, call.ledger.withdrawals, seconds=False)
    if call.params.get("withdrawType") not in (None, "", "0", "2"):
        page, cursor = [], ""  # off chain only: the simulated withdrawals are all on chain
    return {"rows": [{
        "withdrawId": t.transfer_id, "txID": t.txid, "coin": t.asset, "chain": NETWORKS[t.asset],
        "amount": num(t.amount), "withdrawFee": num(t.fee), "status": "Pending" if t.pending else "success",
        "toAddress": t.address, "tag": "", "createTime": str(t.ts),
        "updateTime": str(t.ts if t.pending else t.ts + 5 * MINUTE_MS), "withdrawType": 0, "tax": "0",
        "taxRate": "0", "taxType": "",
    } for t in page], "nextPageCursor": cursor}


# --- private: transaction log (ledger) --------------------------------------------------

def _log_window(call: Call) -> tuple[int, int]:
    """startTime/endTime of the transaction log, both bounds inclusive.

    https://bybit-exchange.github.io/docs/v5/account/transaction-log : "startTime and endTime
    are not passed, return 24 hours by default; Only startTime is passed, return range between
    startTime and startTime+24 hours; Only endTime is passed, return range between endTime-24
    hours and endTime; If both are passed, the rule is endTime - startTime <= 7 days"; "it
    supports up to 2 years data". A longer span is refused with 10001, as on execution/list.
    """
    return _window(call, LOG_DEFAULT_SPAN_MS)


def _log_row(posting: Posting) -> dict[str, Any]:
    """A spot trade leg (``qty`` signed: "the negative means the qty of this currency is
    decreased"; the fee is in the leg of the asset it is charged in, "Change = cashFlow +
    funding - fee") or a transfer into or out of the Unified wallet (category "")."""
    fill = posting.fill
    market = MARKETS[fill.symbol] if fill is not None else None
    return {
        "id": str(LEDGER_ID_BASE + posting.key), "symbol": market.base + market.quote if market else "",
        "category": "spot" if fill is not None else "", "side": ("Buy" if fill.buy else "Sell") if fill else "None",
        "transactionTime": str(posting.ts), "type": LOG_TYPES[posting.kind], "transSubType": "",
        "qty": num(posting.gross), "size": "0", "currency": posting.asset,
        "tradePrice": num(fill.price) if fill else "", "funding": "", "fee": num(posting.fee),
        "cashFlow": num(posting.gross), "change": num(posting.change), "cashBalance": num(posting.balance),
        "feeRate": FEE_RATE[fill.maker] if fill else "", "bonusChange": "", "tradeId": fill.trade_id if fill else "",
        "orderId": fill.order_id if fill else "", "orderLinkId": "", "extraFees": "",
    }


def transaction_log(call: Call) -> dict[str, Any]:
    """https://bybit-exchange.github.io/docs/v5/account/transaction-log : the Unified wallet's
    balance changes, newest first, ``limit`` [1, 50] default 20, cursor paging; windows as
    ``_log_window``. ``accountType`` may only be UNIFIED; ``category``, ``currency``,
    ``baseCoin`` and ``type`` filter (a transfer has no category, so ``category=spot`` leaves
    it out)."""
    if call.params.get("accountType") not in (None, "", "UNIFIED"):
        raise error(10001, "accountType only support UNIFIED.")
    category = call.params.get("category") or None
    if category is not None and category not in CATEGORIES:
        raise error(10001, "params error: Category is invalid")
    limit = _limit(call, 20, 50)
    start, end = _log_window(call)
    cursor = _cursor(call)
    currency, base, kind = (call.params.get(k) or None for k in ("currency", "baseCoin", "type"))

    def keep(posting: Posting) -> bool:
        fill = posting.fill
        return ((category is None or (fill is not None and category == "spot"))
                and (base is None or (fill is not None and MARKETS[fill.symbol].base == base))
                and currency in (None, posting.asset) and kind in (None, LOG_TYPES[posting.kind]))

    assert call.account is not None, "the transaction log is private"
    book = call.world.books(call.account.id)["trading"]
    page = book.select(limit + 1, key_max=None if cursor is None else cursor - 1, ts_min=start, ts_max=end, keep=keep)
    next_cursor = str(page[limit - 1].key) if len(page) > limit else ""
    return {"list": [_log_row(p) for p in page[:limit]], "nextPageCursor": next_cursor}


#: path -> (signed, handler); only GET is served (the dashboard only reads)
ROUTES: dict[str, tuple[bool, Callable[[Call], dict[str, Any]]]] = {
    "/v5/market/time": (False, server_time),
    "/v5/market/instruments-info": (False, instruments),
    "/v5/market/tickers": (False, tickers),
    "/v5/market/kline": (False, kline),
    "/v5/user/query-api": (True, api_key_info),
    "/v5/account/info": (True, account_info),
    "/v5/account/wallet-balance": (True, wallet_balance),
    "/v5/asset/transfer/query-account-coins-balance": (True, coins_balance),
    "/v5/asset/coin/query-info": (True, coin_info),
    "/v5/execution/list": (True, executions),
    "/v5/order/history": (True, order_history),
    "/v5/order/realtime": (True, open_orders),
    "/v5/asset/deposit/query-record": (True, deposits),
    "/v5/asset/withdraw/query-record": (True, withdrawals),
    "/v5/account/transaction-log": (True, transaction_log),
}


def handle(call: Call) -> Reply:
    """Unknown paths answer HTTP 404 with 10017 "Route not found." (.../v5/error)."""
    route = ROUTES.get(call.path)
    if route is None or call.method != "GET":
        return Reply(404, _body(10017, "Route not found.", {}))
    signed, handler = route
    try:
        if signed:
            authenticate(call)
        return Reply(200, _body(0, "OK", handler(call)))
    except ApiError as exc:
        return exc.reply

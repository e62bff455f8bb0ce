"""The OKX v5 REST dialect (``/api/v5``) as ccxt 4.5.90 uses it.

Every answer is ``{"code": "0", "msg": "", "data": [...]}``; errors carry OKX's own
codes (50111 unknown key, 50105 wrong passphrase, 50113 bad signature, 50011 rate limit).
Lists come newest first, at most 100 per page, paged with ``after`` (older than an id)
and ``before`` (newer than an id); fills and bills page by billId, orders by ordId,
transfers, asset bills and candles by timestamp. Retention limits (3 months of fills, 7
days in orders-history) are not enforced except the 3 days of ``trade/fills`` and the
bills' 7 days, 3 months and one month, so the ground truth stays reachable.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

from lib.simulator.accounts import LEDGER_ID_BASE, Book, Posting
from lib.simulator.history import NETWORKS, WITHDRAW_FEES
from lib.simulator.ledger import BILL_ID_BASE, ORDER_ID_BASE, Fill, Order, Position, Series, Transfer
from lib.simulator.market import DAY_MS, HOUR_MS, LISTED_SYMBOLS, MARKETS, MINUTE_MS, Market, fmt
from lib.simulator.protocol import ApiError, Call, Reply

T = TypeVar("T")

SYMBOLS = LISTED_SYMBOLS["okx"]
BY_ID = {f"{MARKETS[s].base}-{MARKETS[s].quote}": MARKETS[s] for s in SYMBOLS}
ASSETS = sorted({a for s in SYMBOLS for a in (MARKETS[s].base, MARKETS[s].quote)})
#: linear perpetual swaps: instId -> (underlying spot market, contract value in base units)
SWAPS = {"BTC-USDT-SWAP": ("BTC/USDT", "0.01"), "ETH-USDT-SWAP": ("ETH/USDT", "0.1")}
INST_TYPES = ("SPOT", "MARGIN", "SWAP", "FUTURES", "OPTION")
BARS = {"1m": 1, "3m": 3, "5m": 5, "15m": 15, "30m": 30, "1H": 60, "2H": 120, "4H": 240, "6H": 360,
        "12H": 720, "1D": 1440, "2D": 2880, "3D": 4320}
SIGNATURE_TOLERANCE_MS = 30_000
#: how far back account/bills, account/bills-archive and asset/bills reach
BILLS_RETENTION_MS = 7 * DAY_MS
BILLS_ARCHIVE_RETENTION_MS = 90 * DAY_MS
ASSET_BILLS_RETENTION_MS = 30 * DAY_MS
#: posting kind -> (bill type, subType) of account/bills
BILL_TYPES = {"transfer_in": ("1", "11"), "transfer_out": ("1", "12")}
#: posting kind -> bill type of asset/bills
ASSET_BILL_TYPES = {"deposit": "1", "withdrawal": "2", "from_trading": "130", "to_trading": "131",
                    "withdrawal_fee": "221"}


def num(sats: int) -> str:
    """OKX prints numbers without trailing zeros."""
    text = fmt(sats).rstrip("0").rstrip(".")
    return text if text not in ("", "-") else "0"


def error(code: str, msg: str, status: int = 400) -> ApiError:
    return ApiError(Reply(status, {"code": code, "msg": msg, "data": []}))


def api_key(headers: Mapping[str, str]) -> str | None:
    return headers.get("OK-ACCESS-KEY")


def rate_limited() -> Reply:
    return Reply(429, {"code": "50011", "msg": "Too Many Requests", "data": []}, {"Retry-After": "1"})


def server_error() -> Reply:
    """An outage as the load balancer in front of the API answers it: HTML, no JSON body."""
    return Reply(503, "<html><body><h1>503 Service Temporarily Unavailable</h1></body></html>")


def permission_denied() -> Reply:
    """OKX's answer when the key may not be used here (IP not on the key's allow-list)."""
    return Reply(401, {"code": "50110", "msg": "Your IP is not in the API key's IP allow-list.", "data": []})


def _ok(data: list[Any]) -> dict[str, Any]:
    return {"code": "0", "msg": "", "data": data}


# --- parameters -----------------------------------------------------------------------

def _int(call: Call, name: str) -> int | None:
    raw = call.params.get(name)
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise error("51000", f"Parameter {name} error") from None


def _limit(call: Call, maximum: int = 100) -> int:
    limit = _int(call, "limit")
    if limit is None:
        return min(100, maximum)
    if not 1 <= limit <= maximum:
        raise error("51000", "Parameter limit error")
    return limit


def _inst_type(call: Call, required: bool = True) -> str | None:
    inst_type = call.params.get("instType")
    if not inst_type:
        if required:
            raise error("50014", "Parameter instType can not be empty.")
        return None
    if inst_type not in INST_TYPES:
        raise error("51000", "Parameter instType error")
    return inst_type


def _market(call: Call, required: bool = False) -> Market | None:
    inst_id = call.params.get("instId")
    if not inst_id:
        if required:
            raise error("50014", "Parameter instId can not be empty.")
        return None
    if inst_id not in BY_ID:
        raise error("51001", "Instrument ID does not exist.")
    return BY_ID[inst_id]


def _page(series: Series[T], call: Call, key_base: int, ts_floor: int | None = None,
          keep: Callable[[T], bool] | None = None) -> list[T]:
    """OKX paging over a series: ``after``/``before`` ids, ``begin``/``end`` times, newest first.

    With only ``before`` the page is the records just newer than it (so a client can walk
    forward); otherwise it is the newest records that match. ``keep`` filters the records
    before the page is cut, as a state filter does on the exchange.
    """
    after, before = _int(call, "after"), _int(call, "before")
    begin, end = _int(call, "begin"), _int(call, "end")
    if ts_floor is not None:
        begin = max(begin or ts_floor, ts_floor)
    limit = _limit(call)
    i, j = series.window(
        key_min=None if before is None else before - key_base + 1,
        key_max=None if after is None else after - key_base - 1,
        ts_min=begin, ts_max=end,
    )
    forward = before is not None and after is None
    if keep is not None:
        walk = range(i, j) if forward else range(j - 1, i - 1, -1)
        page = []
        for k in walk:
            if keep(series.items[k]):
                page.append(series.items[k])
                if len(page) == limit:
                    break
        return page[::-1] if forward else page
    if forward:
        j = min(j, i + limit)
    else:
        i = max(i, j - limit)
    return series.items[i:j][::-1]


# --- authentication -------------------------------------------------------------------

def _parse_iso(text: str) -> int | None:
    try:
        return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)
    except ValueError:
        return None


def authenticate(call: Call) -> None:
    """Base64 HMAC-SHA256 of timestamp + method + requestPath(+query) + body, plus passphrase."""
    headers = call.headers
    key = headers.get("OK-ACCESS-KEY")
    if not key:
        raise error("50103", "Request header OK-ACCESS-KEY cannot be empty.", 401)
    required = (("OK-ACCESS-SIGN", "50106"), ("OK-ACCESS-TIMESTAMP", "50107"), ("OK-ACCESS-PASSPHRASE", "50104"))
    for name, code in required:
        if not headers.get(name):
            raise error(code, f"Request header {name} cannot be empty.", 401)
    account = call.world.by_key.get(key)
    if account is None or account.dialect != "okx" or account.id in call.world.revoked:
        raise error("50111", "Invalid OK-ACCESS-KEY.", 401)
    stamp = headers["OK-ACCESS-TIMESTAMP"]
    ts = _parse_iso(stamp)
    if ts is None:
        raise error("50112", "Invalid OK-ACCESS-TIMESTAMP.", 401)
    if abs(call.now - ts) > SIGNATURE_TOLERANCE_MS:
        raise error("50102", "Timestamp request expired.", 401)
    if not hmac.compare_digest(headers["OK-ACCESS-PASSPHRASE"], account.password or ""):
        raise error("50105", "Invalid OK-ACCESS-PASSPHRASE.", 401)
    prehash = stamp + call.method + call.raw_path_qs + call.body
    expected = base64.b64encode(hmac.new(account.secret.encode(), prehash.encode(), hashlib.sha256).digest()).decode()
    if not hmac.compare_digest(expected, headers["OK-ACCESS-SIGN"]):
        raise error("50113", "Invalid Sign.", 401)
    call.account = account


# --- public ---------------------------------------------------------------------------

def server_time(call: Call) -> list[Any]:
    return [{"ts": str(call.now)}]


def _instrument(market: Market) -> dict[str, Any]:
    return {
        "alias": "", "auctionEndTime": "", "baseCcy": market.base, "category": "1", "ctMult": "", "ctType": "",
        "ctVal": "", "ctValCcy": "", "expTime": "", "futureSettlement": False, "instFamily": "",
        "instId": f"{market.base}-{market.quote}", "instType": "SPOT", "lever": "",
        "listTime": "1606468572000", "lotSz": num(market.step), "maxIcebergSz": "9999999999",
        "maxLmtAmt": "20000000", "maxLmtSz": "9999999999", "maxMktAmt": "1000000", "maxMktSz": "1000000",
        "maxStopSz": "1000000", "maxTriggerSz": "9999999999", "maxTwapSz": "9999999999",
        "minSz": num(market.step), "optType": "", "quoteCcy": market.quote, "ruleType": "normal",
        "settleCcy": "", "state": "live", "stk": "", "tickSz": num(market.tick), "uly": "",
    }


def _swap(inst_id: str) -> dict[str, Any]:
    spot, ct_val = SWAPS[inst_id]
    market = MARKETS[spot]
    return {
        "alias": "", "auctionEndTime": "", "baseCcy": "", "category": "1", "ctMult": "1", "ctType": "linear",
        "ctVal": ct_val, "ctValCcy": market.base, "expTime": "", "futureSettlement": False,
        "instFamily": f"{market.base}-{market.quote}", "instId": inst_id, "instType": "SWAP", "lever": "100",
        "listTime": "1611916828000", "lotSz": "0.01", "maxIcebergSz": "100000000", "maxLmtAmt": "20000000",
        "maxLmtSz": "100000000", "maxMktAmt": "", "maxMktSz": "12000", "maxStopSz": "12000",
        "maxTriggerSz": "100000000", "maxTwapSz": "100000000", "minSz": "0.01", "optType": "", "quoteCcy": "",
        "ruleType": "normal", "settleCcy": market.quote, "state": "live", "stk": "", "tickSz": num(market.tick),
        "uly": f"{market.base}-{market.quote}",
    }


def instruments(call: Call) -> list[Any]:
    inst_type = _inst_type(call)
    if inst_type == "SWAP":
        inst_id = call.params.get("instId")
        return [_swap(i) for i in SWAPS if inst_id in (None, "", i)]
    if inst_type != "SPOT":
        return []
    market = _market(call)
    return [_instrument(m) for m in BY_ID.values() if market is None or m is market]


def _ticker(call: Call, market: Market) -> dict[str, Any]:
    start = call.now - DAY_MS
    (_, o, h, lo, c, vol), = call.world.book.candles(market.symbol, 24 * 60, start, 1, call.now)
    return {
        "instType": "SPOT", "instId": f"{market.base}-{market.quote}", "last": num(c),
        "lastSz": num(market.step * 10), "askPx": num(c + market.tick), "askSz": num(market.step * 100),
        "bidPx": num(c - market.tick), "bidSz": num(market.step * 100), "open24h": num(o), "high24h": num(h),
        "low24h": num(lo), "volCcy24h": num(vol * c // 10**8), "vol24h": num(vol), "ts": str(call.now),
        "sodUtc0": num(o), "sodUtc8": num(o),
    }


def tickers(call: Call) -> list[Any]:
    if _inst_type(call) != "SPOT":
        return []
    return [_ticker(call, m) for m in BY_ID.values()]


def ticker(call: Call) -> list[Any]:
    market = _market(call, required=True)
    assert market is not None
    return [_ticker(call, market)]


def candles(call: Call) -> list[Any]:
    """market/candles and market/history-candles: newest first, ``after``/``before`` are times."""
    market = _market(call, required=True)
    assert market is not None
    bar = call.params.get("bar", "1m")
    utc = bar.endswith("utc")
    minutes = BARS.get(bar[:-3] if utc else bar)
    if minutes is None or (utc and minutes < 360):
        raise error("51000", "Parameter bar error")
    tf = minutes * MINUTE_MS
    offset = -8 * HOUR_MS if minutes >= 360 and not utc else 0  # plain 6H+ bars follow Hong Kong time
    limit = _limit(call, 300)
    after, before = _int(call, "after"), _int(call, "before")
    newest = min(after - 1 if after is not None else call.now, call.now)
    last_open = (newest - offset) // tf * tf + offset
    if before is not None:
        first_open = -(-(before + 1 - offset) // tf) * tf + offset
        count = (last_open - first_open) // tf + 1
        if after is None:
            count = min(count, limit)
        else:
            first_open = max(first_open, last_open - (limit - 1) * tf)
            count = (last_open - first_open) // tf + 1
    else:
        first_open, count = last_open - (limit - 1) * tf, limit
    rows = []
    series = call.world.book.candles(market.symbol, minutes, first_open, max(0, count), call.now)
    for open_ms, o, h, lo, c, vol in series:
        done = "1" if open_ms + tf <= call.now else "0"
        rows.append([str(open_ms), num(o), num(h), num(lo), num(c), num(vol), num(vol), num(vol * c // 10**8), done])
    return rows[::-1]


# --- private --------------------------------------------------------------------------

def balance(call: Call) -> list[Any]:
    ledger = call.ledger
    wanted = set(call.params["ccy"].split(",")) if call.params.get("ccy") else None
    book = call.world.book
    with ledger.lock:
        updated = str(ledger.fills.times[-1] if len(ledger.fills) else call.world.start_ms)
        details, total_usd = [], 0.0
        for asset, (free, used) in ledger.balances().items():
            if wanted is not None and asset not in wanted or free + used == 0:
                continue
            usd = float(free + used) / 1e8 * book.usd(asset, call.now)
            total_usd += usd
            details.append({
                "availBal": num(free), "availEq": "", "cashBal": num(free + used), "ccy": asset, "crossLiab": "",
                "disEq": f"{usd:.2f}", "eq": num(free + used), "eqUsd": f"{usd:.2f}", "fixedBal": "0",
                "frozenBal": num(used), "imr": "", "interest": "", "isoEq": "0", "isoLiab": "", "isoUpl": "0",
                "liab": "", "maxLoan": "", "mgnRatio": "", "notionalLever": "0", "ordFrozen": num(used),
                "spotInUseAmt": "", "stgyEq": "0", "twap": "0", "uTime": updated, "upl": "", "uplLiab": "",
            })
    return [{"adjEq": "", "availEq": "", "borrowFroz": "", "details": details, "imr": "", "isoEq": "0",
             "mgnRatio": "", "mmr": "", "notionalUsd": "", "ordFroz": "", "totalEq": f"{total_usd:.2f}",
             "uTime": updated, "upl": ""}]


def _position(call: Call, position: Position) -> dict[str, Any]:
    inst_id = next(i for i, (spot, _) in SWAPS.items() if position.symbol.startswith(spot + ":"))
    spot, ct_val = SWAPS[inst_id]
    mark = call.world.book.price_sats(spot, call.now)
    base_size = abs(position.size) * float(ct_val) / 1e8
    upl = (mark - position.entry) / 1e8 * base_size * (1 if position.size > 0 else -1)
    return {
        "adl": "1", "availPos": "", "avgPx": num(position.entry), "baseBal": "", "bePx": num(position.entry),
        "cTime": str(position.ts), "ccy": MARKETS[spot].quote, "deltaBS": "", "deltaPA": "", "fee": "0",
        "fundingFee": "0", "gammaBS": "", "gammaPA": "", "idxPx": num(mark), "imr": "", "instId": inst_id,
        "instType": "SWAP", "interest": "", "last": num(mark), "lever": "5", "liab": "", "liabCcy": "",
        "liqPx": "", "margin": "", "markPx": num(mark), "mgnMode": "cross", "mgnRatio": "", "mmr": "",
        "notionalUsd": f"{base_size * mark / 1e8:.2f}", "optVal": "", "pendingCloseOrdLiabVal": "",
        "pnl": "0", "pos": num(position.size), "posCcy": "", "posId": str(position.seq), "posSide": "net",
        "realizedPnl": "0", "thetaBS": "", "thetaPA": "", "tradeId": "", "uTime": str(call.now),
        "upl": f"{upl:.8f}", "uplRatio": "", "usdPx": "", "vegaBS": "", "vegaPA": "",
    }


def positions(call: Call) -> list[Any]:
    """account/positions: the account's swap positions (none unless a test opened one)."""
    inst_type = call.params.get("instType")
    if inst_type and inst_type not in INST_TYPES:
        raise error("51000", "Parameter instType error")
    if inst_type not in (None, "", "SWAP"):
        return []
    with call.ledger.lock:
        return [_position(call, p) for p in call.ledger.positions]


def funding_balances(call: Call) -> list[Any]:
    """The funding account's balances (``ccy``: a comma-separated choice), assets it holds only.

    https://www.okx.com/docs-v5/en/#funding-account-rest-api-get-balance: GET
    /api/v5/asset/balances, rows of ccy, bal, availBal and frozenBal.
    """
    wanted = set(call.params["ccy"].split(",")) if call.params.get("ccy") else None
    with call.ledger.lock:
        held = [(a, v) for a, v in sorted(call.ledger.funding.items()) if v and (wanted is None or a in wanted)]
    return [{"availBal": num(v), "bal": num(v), "ccy": a, "frozenBal": "0"} for a, v in held]


def currencies(call: Call) -> list[Any]:
    return [{
        "ccy": asset, "chain": f"{asset}-{NETWORKS[asset]}", "name": asset, "canDep": True, "canWd": True,
        "canInternal": True, "minDep": "0.00000001", "minWd": num(2 * WITHDRAW_FEES[asset]),
        "maxWd": "9999999999", "wdTickSz": "8", "minFee": num(WITHDRAW_FEES[asset]),
        "maxFee": num(WITHDRAW_FEES[asset]), "fee": num(WITHDRAW_FEES[asset]), "mainNet": True, "logoLink": "",
    } for asset in ASSETS]


def _fill(fill: Fill) -> dict[str, Any]:
    market = MARKETS[fill.symbol]
    rate = "-0.0008" if fill.maker else "-0.001"
    return {
        "side": "buy" if fill.buy else "sell", "fillSz": num(fill.amount), "fillPx": num(fill.price),
        "fillPxVol": "", "fillFwdPx": "", "fee": num(-fill.fee), "fillPnl": "0",
        "ordId": fill.order_id, "feeRate": rate, "instType": "SPOT",
        "fillPxUsd": "", "instId": f"{market.base}-{market.quote}", "clOrdId": "", "posSide": "net",
        "billId": fill.bill_id, "subType": "1" if fill.buy else "2", "fillMarkVol": "",
        "tag": "", "fillTime": str(fill.ts), "execType": "M" if fill.maker else "T", "fillIdxPx": "",
        "tradeId": fill.trade_id, "fillMarkPx": "", "feeCcy": fill.fee_asset, "ts": str(fill.ts),
    }


def _fills(call: Call, ts_floor: int | None) -> list[Any]:
    if _inst_type(call) != "SPOT":
        return []
    market = _market(call)
    order_id = call.params.get("ordId")
    ledger = call.ledger
    with ledger.lock:
        series = ledger.fills if market is None else ledger.fills_by_symbol.get(market.symbol)
        if series is None:
            return []
        if order_id:
            matching: Series[Fill] = Series()
            for f in series.items:
                if f.order_id == order_id:
                    matching.append(f, f.seq, f.ts)
            series = matching
        return [_fill(f) for f in _page(series, call, BILL_ID_BASE, ts_floor)]


def fills_history(call: Call) -> list[Any]:
    return _fills(call, None)


def recent_fills(call: Call) -> list[Any]:
    """trade/fills: the same as fills-history but only the last 3 days."""
    return _fills(call, call.now - 3 * DAY_MS)


def _state(order: Order) -> str:
    """OKX's order state: a canceled order stays ``canceled`` whatever part of it filled."""
    return "live" if order.is_open else "canceled" if order.canceled else "filled"


def _order(order: Order, fills: Sequence[Fill]) -> dict[str, Any]:
    market = MARKETS[order.symbol]
    last = fills[-1] if fills else None
    fee = sum(f.fee for f in fills)
    fee_ccy = last.fee_asset if last else (market.base if order.buy else market.quote)
    avg = order.cost * 10**8 // order.filled if order.filled else 0
    return {
        "accFillSz": num(order.filled), "algoClOrdId": "", "algoId": "", "attachAlgoClOrdId": "",
        "attachAlgoOrds": [], "avgPx": num(avg) if order.filled else "", "cTime": str(order.ts),
        "cancelSource": "", "cancelSourceReason": "", "category": "normal", "ccy": "", "clOrdId": "",
        "fee": num(-fee), "feeCcy": fee_ccy, "fillPx": num(last.price) if last else "",
        "fillSz": num(last.amount) if last else "0", "fillTime": str(last.ts) if last else "",
        "instId": f"{market.base}-{market.quote}", "instType": "SPOT", "isTpLimit": "false", "lever": "",
        "linkedAlgoOrd": {"algoId": ""}, "ordId": order.order_id, "ordType": "limit",
        "pnl": "0", "posSide": "net", "px": num(order.price), "pxType": "", "pxUsd": "", "pxVol": "",
        "quickMgnType": "", "rebate": "0", "rebateCcy": market.quote, "reduceOnly": "false",
        "side": "buy" if order.buy else "sell", "slOrdPx": "", "slTriggerPx": "", "slTriggerPxType": "",
        "source": "", "state": _state(order), "stpId": "", "stpMode": "cancel_maker",
        "sz": num(order.amount), "tag": "", "tdMode": "cash", "tgtCcy": "",
        "tpOrdPx": "", "tpTriggerPx": "", "tpTriggerPxType": "",
        "tradeId": last.trade_id if last else "", "uTime": str(order.update_ts),
    }


def orders_pending(call: Call) -> list[Any]:
    inst_type = _inst_type(call, required=False)
    if inst_type not in (None, "SPOT"):
        return []
    market = _market(call)
    with call.ledger.lock:
        pending: Series[Order] = Series()
        for order in sorted(call.ledger.open_orders, key=lambda o: o.seq):
            if market is None or order.symbol == market.symbol:
                pending.append(order, order.seq, 0)
        return [_order(o, ()) for o in _page(pending, call, ORDER_ID_BASE)]


#: orders-history ``state`` filter -> which finished orders it keeps
STATES: dict[str, Callable[[Order], bool]] = {
    "filled": lambda o: not o.canceled,
    "canceled": lambda o: o.canceled,
    "mmp_canceled": lambda o: False,
}


def orders_history(call: Call) -> list[Any]:
    """orders-history and orders-history-archive: finished orders, ``state`` filled or canceled
    (none given: both).

    https://www.okx.com/docs-v5/en/#order-book-trading-trade-get-order-history-last-7-days
    """
    state = call.params.get("state") or None
    if state is not None and state not in STATES:
        raise error("51000", "Parameter state error")
    if _inst_type(call) != "SPOT":
        return []
    market = _market(call)
    ledger = call.ledger
    with ledger.lock:
        series = ledger.orders if market is None else ledger.orders_by_symbol.get(market.symbol)
        if series is None:
            return []
        page = _page(series, call, ORDER_ID_BASE, keep=STATES[state] if state else None)
        by_symbol = ledger.fills_by_symbol
        rows = []
        for order in page:
            fills = by_symbol[order.symbol]
            i, j = fills.window(key_min=order.seq, ts_min=order.ts, ts_max=order.ts)
            rows.append(_order(order, [f for f in fills.items[i:j] if f.order_seq == order.seq]))
        return rows


def _transfers(call: Call, records: list[Transfer]) -> list[Transfer]:
    """deposit-history / withdrawal-history: ``after``/``before`` are timestamps here."""
    ccy = call.params.get("ccy")
    with call.ledger.lock:
        series: Series[Transfer] = Series()
        for t in records:
            if ccy is None or t.asset == ccy:
                series.append(t, t.seq, t.ts)
    after, before, limit = _int(call, "after"), _int(call, "before"), _limit(call)
    i, j = series.window(ts_min=None if before is None else before + 1, ts_max=None if after is None else after - 1)
    return series.items[max(i, j - limit) : j][::-1]


def deposit_history(call: Call) -> list[Any]:
    return [{
        "actualDepBlkConfirm": "12", "amt": num(t.amount), "areaCodeFrom": "", "ccy": t.asset,
        "chain": f"{t.asset}-{NETWORKS[t.asset]}", "depId": t.transfer_id, "from": "", "fromWdId": "",
        "state": "0" if t.pending else "2", "to": t.address, "ts": str(t.ts), "txId": t.txid,
    } for t in _transfers(call, call.ledger.deposits)]


def withdrawal_history(call: Call) -> list[Any]:
    return [{
        "chain": f"{t.asset}-{NETWORKS[t.asset]}", "fee": num(t.fee), "feeCcy": t.asset, "ccy": t.asset,
        "clientId": "", "amt": num(t.amount), "txId": t.txid, "from": "", "areaCodeFrom": "", "to": t.address,
        "areaCodeTo": "", "state": "1" if t.pending else "2", "ts": str(t.ts), "nonTradableAsset": False,
        "wdId": t.transfer_id,
    } for t in _transfers(call, call.ledger.withdrawals)]


def _bill(posting: Posting) -> dict[str, Any]:
    """One bill of the trading account: a trade leg (type 2, subType 1 buy / 2 sell; the fee is
    in the leg of the asset it is charged in, "balChg" = "sz" + "fee") or a transfer from or to
    the funding account (type 1, subType 11 in / 12 out, "from"/"to" 6 funding, 18 trading)."""
    fill = posting.fill
    row = {
        "bal": num(posting.balance), "balChg": num(posting.change), "billId": str(LEDGER_ID_BASE + posting.key),
        "ccy": posting.asset, "clOrdId": "", "execType": "", "fee": "", "fillFwdPx": "", "fillIdxPx": "",
        "fillMarkPx": "", "fillMarkVol": "", "fillPxUsd": "", "fillPxVol": "", "fillTime": "", "from": "",
        "instId": "", "instType": "", "interest": "0", "mgnMode": "", "notes": "", "ordId": "", "pnl": "0",
        "posBal": "0", "posBalChg": "0", "px": "", "subType": "", "sz": num(posting.change), "tag": "", "to": "",
        "tradeId": "", "ts": str(posting.ts), "type": "",
    }
    if fill is None:
        bill_type, sub_type = BILL_TYPES[posting.kind]
        inward = posting.kind == "transfer_in"
        row.update({"type": bill_type, "subType": sub_type, "from": "6" if inward else "18",
                    "to": "18" if inward else "6", "notes": "From Funding Account" if inward else "To Funding Account"})
        return row
    market = MARKETS[fill.symbol]
    row.update({
        "type": "2", "subType": "1" if fill.buy else "2", "instType": "SPOT", "instId": f"{market.base}-{market.quote}",
        "mgnMode": "cash", "ordId": fill.order_id, "tradeId": fill.trade_id, "execType": "M" if fill.maker else "T",
        "fee": num(-posting.fee), "sz": num(abs(posting.gross)), "px": num(fill.price), "fillTime": str(fill.ts),
    })
    return row


def _bill_filter(call: Call) -> Callable[[Posting], bool]:
    """instType, instId, ccy, type and subType filter the bills.

    instType only narrows the bills of instruments: ccxt 4.5.90's fetch_ledger always sends
    one (``instType=SPOT`` by default; an empty override is dropped) and its maintainers read
    funding/trading transfers through it (ccxt PR #12875), so a transfer bill, which has no
    instType, passes any. instId keeps the bills of that instrument only.
    """
    inst_type = _inst_type(call, required=False)
    market = _market(call)
    ccy, bill_type, sub_type = (call.params.get(k) or None for k in ("ccy", "type", "subType"))

    def keep(posting: Posting) -> bool:
        fill = posting.fill
        row_type, row_sub = ("2", "1" if fill.buy else "2") if fill is not None else BILL_TYPES[posting.kind]
        return ((inst_type is None or fill is None or inst_type == "SPOT")
                and (market is None or (fill is not None and fill.symbol == market.symbol))
                and ccy in (None, posting.asset) and bill_type in (None, row_type) and sub_type in (None, row_sub))

    return keep


def _book(call: Call, account_type: str) -> Book:
    assert call.account is not None, "bills are private"
    return call.world.books(call.account.id)[account_type]


def _bills(call: Call, retention_ms: int) -> list[Any]:
    """account/bills (7 days) and account/bills-archive (3 months): the trading account's
    balance changes, newest first by billId, ``limit`` 1..100 (default 100).

    https://www.okx.com/docs-v5/en/#trading-account-rest-api-get-bills-details-last-7-days
    https://www.okx.com/docs-v5/en/#trading-account-rest-api-get-bills-details-last-3-months

    ``after``/``before`` page by billId (older / newer than it; with only ``before`` the
    bills just newer than it), ``begin``/``end`` filter by ``ts`` (both inclusive, any span);
    bills older than the retention are gone whatever ``begin`` says. ``mgnMode`` and ``ctType``
    are accepted and ignored (spot bills only).
    """
    keep = _bill_filter(call)
    limit = _limit(call)
    after, before = _int(call, "after"), _int(call, "before")
    begin, end = _int(call, "begin"), _int(call, "end")
    floor = call.now - retention_ms
    page = _book(call, "trading").select(limit, key_min=None if before is None else before - LEDGER_ID_BASE + 1,
                       key_max=None if after is None else after - LEDGER_ID_BASE - 1,
                       ts_min=floor if begin is None else max(begin, floor), ts_max=end, keep=keep,
                       oldest=before is not None and after is None)
    return [_bill(p) for p in page]


def bills(call: Call) -> list[Any]:
    return _bills(call, BILLS_RETENTION_MS)


def bills_archive(call: Call) -> list[Any]:
    return _bills(call, BILLS_ARCHIVE_RETENTION_MS)


def asset_bills(call: Call) -> list[Any]:
    """asset/bills: the funding account's bills of the past month, newest first, ``limit``
    1..100 (default 100); ``after``/``before`` are timestamps here (older / newer than, both
    exclusive), so a page cut inside one millisecond needs an overlapping next page.

    https://www.okx.com/docs-v5/en/#funding-account-rest-api-asset-bills-details

    Types served: 1 deposit, 2 withdrawal, 221 its fee, 130 from / 131 to the trading account;
    ``ccy`` and ``type`` filter.
    """
    ccy, bill_type = call.params.get("ccy") or None, call.params.get("type") or None
    limit = _limit(call)
    after, before = _int(call, "after"), _int(call, "before")
    floor = call.now - ASSET_BILLS_RETENTION_MS
    page = _book(call, "funding").select(limit, ts_min=floor if before is None else max(before + 1, floor),
                       ts_max=None if after is None else after - 1,
                       keep=lambda p: ccy in (None, p.asset) and bill_type in (None, ASSET_BILL_TYPES[p.kind]),
                       oldest=before is not None and after is None)
    return [{"billId": str(LEDGER_ID_BASE + p.key), "ccy": p.asset, "clientId": "", "balChg": num(p.change),
             "bal": num(p.balance), "type": ASSET_BILL_TYPES[p.kind], "ts": str(p.ts), "notes": ""} for p in page]


#: path -> (signed, handler); only GET is served (the dashboard only reads)
ROUTES: dict[str, tuple[bool, Callable[[Call], list[Any]]]] = {
    "/api/v5/public/time": (False, server_time),
    "/api/v5/public/instruments": (False, instruments),
    "/api/v5/market/tickers": (False, tickers),
    "/api/v5/market/ticker": (False, ticker),
    "/api/v5/market/candles": (False, candles),
    "/api/v5/market/history-candles": (False, candles),
    "/api/v5/asset/currencies": (True, currencies),
    "/api/v5/account/balance": (True, balance),
    "/api/v5/asset/balances": (True, funding_balances),
    "/api/v5/trade/fills-history": (True, fills_history),
    "/api/v5/trade/fills": (True, recent_fills),
    "/api/v5/trade/orders-pending": (True, orders_pending),
    "/api/v5/trade/orders-history": (True, orders_history),
    "/api/v5/trade/orders-history-archive": (True, orders_history),
    "/api/v5/asset/deposit-history": (True, deposit_history),
    "/api/v5/asset/withdrawal-history": (True, withdrawal_history),
    "/api/v5/account/positions": (True, positions),
    "/api/v5/account/bills": (True, bills),
    "/api/v5/account/bills-archive": (True, bills_archive),
    "/api/v5/asset/bills": (True, asset_bills),
}


def handle(call: Call) -> Reply:
    route = ROUTES.get(call.path)
    if route is None or call.method != "GET":
        return Reply(404, {"msg": "", "code": "404"})
    signed, handler = route
    try:
        if signed:
            authenticate(call)
        return Reply(200, _ok(handler(call)))
    except ApiError as exc:
        return exc.reply

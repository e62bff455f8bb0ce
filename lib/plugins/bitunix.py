"""Bitunix USDT-margined perpetual futures as a ccxt exchange (ccxt has never listed Bitunix).

Written from Bitunix's OpenAPI documentation (https://openapidoc.bitunix.com/doc/common/introduction.html);
each method names the page it follows. It reads only: trading pairs, tickers, funding rates,
the futures account, pending and historical positions, pending and historical orders and
trade history. Bitunix's futures API publishes no ledger, funding-fee records, deposits or
withdrawals, so ``has`` says False for those and the product reports them as not available.

``Bitunix`` holds everything once (``lib.plugins.base``): its ``@unified`` bodies yield each
request, and ``Exchange`` / ``AsyncExchange`` make them sync or coroutine methods.
"""

from __future__ import annotations

from typing import Any

import ccxt
from ccxt.base.precise import Precise

from lib.plugins.base import AsyncPluginExchange, PluginExchange, Steps, start_end, unified

#: documented order states -> ccxt's (https://openapidoc.bitunix.com/doc/trade/get_history_orders.html)
ORDER_STATUS = {"INIT": "open", "NEW": "open", "PART_FILLED": "open", "FILLED": "closed", "CANCELED": "canceled",
                "PART_FILLED_CANCELED": "canceled", "EXPIRED": "expired"}
MARGIN_MODES = {"ISOLATION": "isolated", "CROSS": "cross"}
#: documented kline intervals (https://openapidoc.bitunix.com/doc/market/get_kline.html)
TIMEFRAMES = {"1m": "1m", "3m": "3m", "5m": "5m", "15m": "15m", "30m": "30m", "1h": "1h", "2h": "2h", "4h": "4h",
              "6h": "6h", "8h": "8h", "12h": "12h", "1d": "1d", "3d": "3d", "1w": "1w", "1M": "1M"}
#: every history page: "limit: Number of queries: Maximum: 100, default: 10", newest first
HISTORY_LIMIT = 100
#: what one history call may read, shared by trades, orders and positions
HISTORY_FEATURE = {"marginMode": False, "limit": HISTORY_LIMIT, "daysBack": None, "untilDays": None,
                   "symbolRequired": False}


class Bitunix:
    """Describe, sign, map errors, read and parse Bitunix futures; shared by both classes."""

    #: the endpoints read, as ccxt's implicit API (``privateGetApiV1FuturesAccount``)
    API: dict[str, Any] = {
        "public": {"get": {
            "api/v1/futures/market/trading_pairs": 1,
            "api/v1/futures/market/tickers": 1,
            "api/v1/futures/market/funding_rate": 1,
            "api/v1/futures/market/kline": 1,
        }},
        "private": {"get": {
            "api/v1/futures/account": 1,
            "api/v1/futures/position/get_pending_positions": 1,
            "api/v1/futures/position/get_history_positions": 1,
            "api/v1/futures/trade/get_pending_orders": 1,
            "api/v1/futures/trade/get_history_orders": 1,
            "api/v1/futures/trade/get_history_trades": 1,
        }},
    }

    def describe(self) -> dict[str, Any]:
        return self.deep_extend(super().describe(), {  # type: ignore[misc]
            "id": "bitunix",
            "name": "Bitunix",
            "countries": [],
            "version": "v1",
            "rateLimit": 100,  # "Rate Limit: 10 req/sec/uid" on every private page
            "certified": False,
            "pro": False,
            "urls": {
                "logo": "",
                "api": {"rest": "https://fapi.bitunix.com"},
                "www": "https://www.bitunix.com",
                "doc": ["https://openapidoc.bitunix.com/doc/common/introduction.html"],
            },
            "api": self.API,
            "has": {
                "CORS": None, "spot": False, "margin": False, "swap": True, "future": False, "option": False,
                "fetchMarkets": True, "fetchCurrencies": False, "fetchTicker": True, "fetchTickers": True,
                "fetchOHLCV": True, "fetchFundingRate": True, "fetchBalance": True, "fetchPositions": True,
                "fetchPositionsHistory": True, "fetchOpenOrders": True, "fetchCanceledAndClosedOrders": True,
                "fetchClosedOrders": False, "fetchOrders": False, "fetchMyTrades": True, "fetchLedger": False,
                "fetchFundingHistory": False, "fetchDeposits": False, "fetchWithdrawals": False,
                "createOrder": False, "cancelOrder": False, "sandbox": False,
            },
            "timeframes": TIMEFRAMES,
            "requiredCredentials": {"apiKey": True, "secret": True},
            "precisionMode": ccxt.TICK_SIZE,
            "features": {
                "spot": None,
                "swap": {"linear": {
                    "sandbox": False,
                    "fetchMyTrades": HISTORY_FEATURE,
                    "fetchClosedOrders": {**HISTORY_FEATURE, "daysBackCanceled": None, "trigger": False,
                                          "trailing": False},
                    "fetchOpenOrders": {"marginMode": False, "limit": HISTORY_LIMIT, "trigger": False,
                                        "trailing": False, "symbolRequired": False},
                    "fetchOHLCV": {"limit": 200},
                }, "inverse": None},
                "future": {"linear": None, "inverse": None},
            },
            # https://openapidoc.bitunix.com/doc/ErrorCode/error_code.html (and error_codes.py of
            # github.com/BitunixOfficial/open-api); the codes a read-only client can meet
            "exceptions": {
                "exact": {
                    "10001": ccxt.NetworkError,  # Network Error
                    "10002": ccxt.BadRequest,  # Parameter Error
                    "10003": ccxt.AuthenticationError,  # api-key can't be empty
                    "10004": ccxt.PermissionDenied,  # The current ip is not in the apikey ip whitelist
                    "10005": ccxt.RateLimitExceeded,  # Too many requests, please try again later
                    "10006": ccxt.RateLimitExceeded,  # Request too frequently
                    "10007": ccxt.AuthenticationError,  # Sign signature error
                    "10008": ccxt.BadRequest,  # {value} does not comply with the rule
                    "20001": ccxt.BadSymbol,  # Market not exists
                    "20007": ccxt.OrderNotFound,  # Order not found, please try it later
                    "20011": ccxt.PermissionDenied,  # Account not allowed to trade
                    "20013": ccxt.AccountSuspended,  # Function disabled due to pending account deletion request
                    "20014": ccxt.AccountSuspended,  # Account deleted
                    "20015": ccxt.BadSymbol,  # This futures is not supported
                    "30040": ccxt.PermissionDenied,  # Futures trading is prohibited, please contact customer service
                },
                "broad": {},
            },
            "options": {"marginCoin": "USDT"},
        })

    # --- signing and errors -------------------------------------------------------------

    def sign(self, path: str, api: Any = "public", method: str = "GET", params: dict[str, Any] | None = None,
             headers: Any = None, body: Any = None) -> dict[str, Any]:
        """https://openapidoc.bitunix.com/doc/common/sign.html: query parameters sorted by key and
        joined as key+value; digest = SHA256(nonce + timestamp + api-key + queryParams + body),
        sign = SHA256(digest + secretKey), hex; headers api-key, nonce (32 characters),
        timestamp (ms) and sign. Only GET requests are made, so the body is empty."""
        params = params or {}
        query = self.keysort(params)
        url = self.urls["api"]["rest"] + "/" + path
        if query:
            url += "?" + self.urlencode(query)
        headers = {"language": "en-US", "Content-Type": "application/json"}
        if "private" in ([api] if isinstance(api, str) else api):  # implicit API methods pass ["private"]
            self.check_required_credentials()
            nonce = self.uuid().replace("-", "")
            timestamp = str(self.milliseconds())
            digested = "".join(f"{key}{value}" for key, value in query.items())
            digest = self.hash(self.encode(nonce + timestamp + self.apiKey + digested), "sha256", "hex")
            headers.update({"api-key": self.apiKey, "nonce": nonce, "timestamp": timestamp,
                            "sign": self.hash(self.encode(digest + self.secret), "sha256", "hex")})
        return {"url": url, "method": method, "body": body, "headers": headers}

    def handle_errors(self, code: int, reason: str, url: str, method: str, headers: Any, body: str,
                      response: Any, request_headers: Any, request_body: Any) -> None:
        """Every answer is ``{"code": 0, "data": ..., "msg": ...}``; any other code is an error.

        A successful HTTP answer without that envelope (cut-off or not JSON) is a ``BadResponse``,
        never an empty page: ccxt would hand its text to the parser, which finds no rows in it.
        Other statuses without it are left to ccxt's HTTP status mapping.
        """
        if not isinstance(response, dict) or "code" not in response:
            if 200 <= int(code) < 300:
                raise ccxt.BadResponse(f"{self.id} answered without its JSON envelope")
            return None
        error_code = self.safe_string(response, "code")
        if error_code == "0":
            return None
        feedback = f"{self.id} {body}"
        self.throw_exactly_matched_exception(self.exceptions["exact"], error_code, feedback)
        raise ccxt.ExchangeError(feedback)

    # --- unified methods (each yields its requests; lib.plugins.base drives them) --------

    @unified
    def fetch_markets(self, params: dict[str, Any] | None = None) -> Steps:
        """https://openapidoc.bitunix.com/doc/market/get_trading_pairs.html"""
        response = yield self.publicGetApiV1FuturesMarketTradingPairs(dict(params or {}))
        return self._parse_markets(response)

    @unified
    def fetch_tickers(self, symbols: list[str] | None = None, params: dict[str, Any] | None = None) -> Steps:
        """https://openapidoc.bitunix.com/doc/market/get_tickers.html: ``symbols`` comma-separated,
        none: every pair."""
        yield self.load_markets()
        request = dict(params or {})
        if symbols:
            request["symbols"] = ",".join(self.market_id(s) for s in symbols)
        response = yield self.publicGetApiV1FuturesMarketTickers(request)
        return self.parse_tickers(self.safe_list(response, "data", []), symbols)

    @unified
    def fetch_ticker(self, symbol: str, params: dict[str, Any] | None = None) -> Steps:
        yield self.load_markets()
        response = yield self.publicGetApiV1FuturesMarketTickers({**(params or {}), "symbols": self.market_id(symbol)})
        tickers = self.parse_tickers(self.safe_list(response, "data", []), [symbol])
        if symbol not in tickers:
            raise ccxt.BadSymbol(f"bitunix sent no ticker for {symbol}")
        return tickers[symbol]

    @unified
    def fetch_funding_rate(self, symbol: str, params: dict[str, Any] | None = None) -> Steps:
        """https://openapidoc.bitunix.com/doc/market/get_funding_rate.html"""
        yield self.load_markets()
        response = yield self.publicGetApiV1FuturesMarketFundingRate({**(params or {}),
                                                                      "symbol": self.market_id(symbol)})
        return self._funding_rate(self.safe_dict(response, "data", {}), symbol)

    @unified
    def fetch_ohlcv(self, symbol: str, timeframe: str = "1m", since: int | None = None, limit: int | None = None,
                    params: dict[str, Any] | None = None) -> Steps:
        """https://openapidoc.bitunix.com/doc/market/get_kline.html: at most 200 candles,
        ``startTime``/``endTime`` in ms."""
        yield self.load_markets()
        market = self.market(symbol)
        request = start_end(self, {**(params or {}), "symbol": market["id"], "interval": self.timeframes[timeframe],
                                   "limit": min(limit or 200, 200)}, since)
        response = yield self.publicGetApiV1FuturesMarketKline(request)
        return self.parse_ohlcvs(self.safe_list(response, "data", []), market, timeframe, since, limit)

    @unified
    def fetch_balance(self, params: dict[str, Any] | None = None) -> Steps:
        """https://openapidoc.bitunix.com/doc/account/get_single_account.html: one margin coin."""
        response = yield self.privateGetApiV1FuturesAccount({"marginCoin": self.options["marginCoin"],
                                                             **(params or {})})
        return self._parse_balance(response)

    @unified
    def fetch_positions(self, symbols: list[str] | None = None, params: dict[str, Any] | None = None) -> Steps:
        """https://openapidoc.bitunix.com/doc/position/get_pending_positions.html"""
        yield self.load_markets()
        response = yield self.privateGetApiV1FuturesPositionGetPendingPositions(dict(params or {}))
        return self.parse_positions(self.safe_list(response, "data", []), symbols)

    @unified
    def fetch_positions_history(self, symbols: list[str] | None = None, since: int | None = None,
                                limit: int | None = None, params: dict[str, Any] | None = None) -> Steps:
        """https://openapidoc.bitunix.com/doc/position/get_history_positions.html: closed positions
        by creation time, ``skip``/``limit`` (at most 100)."""
        yield self.load_markets()
        one = symbols[0] if symbols and len(symbols) == 1 else None
        response = yield self.privateGetApiV1FuturesPositionGetHistoryPositions(self._page(params, since, limit, one))
        return self.parse_positions(self._rows(response, "positionList"), symbols)

    @unified
    def fetch_open_orders(self, symbol: str | None = None, since: int | None = None, limit: int | None = None,
                          params: dict[str, Any] | None = None) -> Steps:
        """https://openapidoc.bitunix.com/doc/trade/get_pending_orders.html: ``skip``/``limit`` (at
        most 100, default 10). Without a ``limit`` every open order is read, page after page
        (``skip`` moved on) until a short one: an answer of 10 is not all."""
        yield self.load_markets()
        rows: list[Any] = []
        while True:
            request = self._page({**(params or {}), "skip": len(rows)}, since, limit or HISTORY_LIMIT, symbol)
            page = self._rows((yield self.privateGetApiV1FuturesTradeGetPendingOrders(request)), "orderList")
            rows += page
            if limit is not None or len(page) < HISTORY_LIMIT:
                break
        return self.parse_orders(rows, self.market(symbol) if symbol else None, since, limit)

    @unified
    def fetch_canceled_and_closed_orders(self, symbol: str | None = None, since: int | None = None,
                                         limit: int | None = None, params: dict[str, Any] | None = None) -> Steps:
        """https://openapidoc.bitunix.com/doc/trade/get_history_orders.html: filled, canceled and
        expired orders, newest first by creation time; ``startTime``/``endTime``, ``skip``/``limit``."""
        yield self.load_markets()
        response = yield self.privateGetApiV1FuturesTradeGetHistoryOrders(self._page(params, since, limit, symbol))
        return self.parse_orders(self._rows(response, "orderList"), self.market(symbol) if symbol else None,
                                 since, limit)

    @unified
    def fetch_my_trades(self, symbol: str | None = None, since: int | None = None, limit: int | None = None,
                        params: dict[str, Any] | None = None) -> Steps:
        """https://openapidoc.bitunix.com/doc/trade/get_history_trades.html: newest first by
        creation time, ``startTime``/``endTime``, ``skip``/``limit`` (at most 100)."""
        yield self.load_markets()
        response = yield self.privateGetApiV1FuturesTradeGetHistoryTrades(self._page(params, since, limit, symbol))
        return self.parse_trades(self._rows(response, "tradeList"), self.market(symbol) if symbol else None,
                                 since, limit)

    # --- request helpers ----------------------------------------------------------------

    def _page(self, params: dict[str, Any] | None, since: int | None, limit: int | None,
              symbol: str | None) -> dict[str, Any]:
        request = start_end(self, params, since)
        if limit is not None:
            request["limit"] = min(limit, HISTORY_LIMIT)
        if symbol is not None:
            request["symbol"] = self.market_id(symbol)
        return request

    def _rows(self, response: Any, key: str) -> list[Any]:
        """The list of a paged answer: ``{"data": {key: [...], "total": n}}``."""
        return self.safe_list(self.safe_dict(response, "data", {}), key, [])

    # --- parsing ------------------------------------------------------------------------

    def _parse_markets(self, response: Any) -> list[dict[str, Any]]:
        """Trading pairs: each a linear perpetual settled in its quote coin (USDT), sized in base coin."""
        markets = []
        for pair in self.safe_list(response, "data", []):
            base = self.safe_currency_code(self.safe_string(pair, "base"))
            quote = self.safe_currency_code(self.safe_string(pair, "quote"))
            markets.append(self.safe_market_structure({
                "id": self.safe_string(pair, "symbol"), "symbol": f"{base}/{quote}:{quote}",
                "base": base, "quote": quote, "settle": quote, "baseId": self.safe_string(pair, "base"),
                "quoteId": self.safe_string(pair, "quote"), "settleId": self.safe_string(pair, "quote"),
                "type": "swap", "spot": False, "margin": False, "swap": True, "future": False, "option": False,
                "active": self.safe_string(pair, "symbolStatus") == "OPEN", "contract": True, "linear": True,
                "inverse": False, "contractSize": self.parse_number("1"),
                "precision": {"amount": self._tick(pair, "basePrecision"), "price": self._tick(pair, "quotePrecision")},
                "limits": {"leverage": {"min": self.safe_integer(pair, "minLeverage"),
                                        "max": self.safe_integer(pair, "maxLeverage")},
                           "amount": {"min": self.safe_number(pair, "minTradeVolume"),
                                      "max": self.safe_number(pair, "maxLimitOrderVolume")},
                           "price": {"min": None, "max": None}, "cost": {"min": None, "max": None}},
                "created": None, "info": pair,
            }))
        return markets

    def _tick(self, pair: dict[str, Any], key: str) -> Any:
        """A precision in decimals (``basePrecision``: 4) as the tick ccxt's TICK_SIZE mode wants."""
        return self.parse_number(self.parse_precision(self.safe_string(pair, key)))

    def parse_ticker(self, ticker: dict[str, Any], market: Any = None) -> dict[str, Any]:
        market = self.safe_market(self.safe_string(ticker, "symbol"), market)
        return self.safe_ticker({
            "symbol": market["symbol"], "timestamp": None, "datetime": None,
            "high": self.safe_string(ticker, "high"), "low": self.safe_string(ticker, "low"),
            "open": self.safe_string(ticker, "open"), "last": self.safe_string(ticker, "lastPrice"),
            "close": self.safe_string(ticker, "lastPrice"), "markPrice": self.safe_string(ticker, "markPrice"),
            "baseVolume": self.safe_string(ticker, "baseVol"), "quoteVolume": self.safe_string(ticker, "quoteVol"),
            "info": ticker,
        }, market)

    def parse_ohlcv(self, ohlcv: Any, market: Any = None) -> list[Any]:
        return [self.safe_integer(ohlcv, "time"), self.safe_number(ohlcv, "open"), self.safe_number(ohlcv, "high"),
                self.safe_number(ohlcv, "low"), self.safe_number(ohlcv, "close"), self.safe_number(ohlcv, "baseVol")]

    def _funding_rate(self, data: dict[str, Any], symbol: str) -> dict[str, Any]:
        return {"info": data, "symbol": symbol, "markPrice": self.safe_number(data, "markPrice"),
                "indexPrice": None, "interestRate": None, "estimatedSettlePrice": None, "timestamp": None,
                "datetime": None, "fundingRate": self.safe_number(data, "fundingRate"), "fundingTimestamp": None,
                "fundingDatetime": None, "nextFundingRate": None, "nextFundingTimestamp": None,
                "nextFundingDatetime": None, "previousFundingRate": None, "previousFundingTimestamp": None,
                "previousFundingDatetime": None, "interval": None}

    def _parse_balance(self, response: Any) -> dict[str, Any]:
        """``available`` is free; ``frozen`` (held by orders) plus ``margin`` (held by positions)
        is used; unrealised P&L is not counted in (it stays in ``info``)."""
        result: dict[str, Any] = {"info": response}
        for entry in self.safe_list(response, "data", []):
            account = self.account()
            account["free"] = self.safe_string(entry, "available")
            account["used"] = Precise.string_add(self.safe_string(entry, "frozen", "0"),
                                                 self.safe_string(entry, "margin", "0"))
            result[self.safe_currency_code(self.safe_string(entry, "marginCoin"))] = account
        return self.safe_balance(result)

    def parse_trade(self, trade: dict[str, Any], market: Any = None) -> dict[str, Any]:
        market = self.safe_market(self.safe_string(trade, "symbol"), market)
        timestamp = self.safe_integer(trade, "ctime")
        role = self.safe_string_lower(trade, "roleType")
        return self.safe_trade({
            "id": self.safe_string(trade, "tradeId"), "order": self.safe_string(trade, "orderId"),
            "timestamp": timestamp, "datetime": self.iso8601(timestamp), "symbol": market["symbol"],
            "type": self.safe_string_lower(trade, "orderType"), "side": self.safe_string_lower(trade, "side"),
            "takerOrMaker": role, "price": self.safe_string(trade, "price"), "amount": self.safe_string(trade, "qty"),
            "cost": None, "fee": {"cost": self.safe_string(trade, "fee"), "currency": market["settle"]},
            "info": trade,
        }, market)

    def parse_order(self, order: dict[str, Any], market: Any = None) -> dict[str, Any]:
        market = self.safe_market(self.safe_string(order, "symbol"), market)
        timestamp = self.safe_integer(order, "ctime")
        return self.safe_order({
            "id": self.safe_string(order, "orderId"), "clientOrderId": self.safe_string(order, "clientId"),
            "timestamp": timestamp, "datetime": self.iso8601(timestamp), "lastTradeTimestamp": None,
            "lastUpdateTimestamp": self.safe_integer(order, "mtime"),
            "status": self.safe_string(ORDER_STATUS, self.safe_string(order, "status")),
            "symbol": market["symbol"], "type": self.safe_string_lower(order, "orderType"),
            "timeInForce": self.safe_string(order, "effect"), "postOnly": None,
            "reduceOnly": self.safe_bool(order, "reduceOnly"), "side": self.safe_string_lower(order, "side"),
            "price": self.safe_string(order, "price"), "triggerPrice": None,
            "average": self.safe_string(order, "avgPrice"), "amount": self.safe_string(order, "qty"),
            "filled": self.safe_string(order, "tradeQty"), "remaining": None, "cost": None, "trades": None,
            "fee": {"cost": self.safe_string(order, "fee"), "currency": market["settle"]}, "info": order,
        }, market)

    def parse_position(self, position: dict[str, Any], market: Any = None) -> dict[str, Any]:
        """Pending positions carry ``qty`` and ``avgOpenPrice``; historical ones ``maxQty``,
        ``entryPrice`` and ``closePrice``. ``funding`` (the funding fees of the position) and
        ``fee`` stay in ``info``."""
        market = self.safe_market(self.safe_string(position, "symbol"), market)
        timestamp = self.safe_integer(position, "ctime")
        return self.safe_position({
            "info": position, "id": self.safe_string(position, "positionId"), "symbol": market["symbol"],
            "timestamp": timestamp, "datetime": self.iso8601(timestamp),
            "lastUpdateTimestamp": self.safe_integer(position, "mtime"),
            "side": self.safe_string_lower(position, "side"),
            "contracts": self.safe_number_2(position, "qty", "maxQty"), "contractSize": market["contractSize"],
            "entryPrice": self.safe_number_2(position, "avgOpenPrice", "entryPrice"),
            "markPrice": None, "lastPrice": self.safe_number(position, "closePrice"),
            "notional": self.safe_number(position, "entryValue"), "leverage": self.safe_number(position, "leverage"),
            "collateral": self.safe_number(position, "margin"), "initialMargin": self.safe_number(position, "margin"),
            "maintenanceMargin": None, "initialMarginPercentage": None, "maintenanceMarginPercentage": None,
            "unrealizedPnl": self.safe_number(position, "unrealizedPNL"),
            "realizedPnl": self.safe_number(position, "realizedPNL"),
            "liquidationPrice": self.safe_number(position, "liqPrice"),
            "marginMode": self.safe_string(MARGIN_MODES, self.safe_string(position, "marginMode")),
            "marginRatio": self.safe_number(position, "marginRate"), "hedged": self.safe_string(
                position, "positionMode") == "HEDGE", "percentage": None, "stopLossPrice": None,
            "takeProfitPrice": None,
        })


class Exchange(Bitunix, PluginExchange):
    """Bitunix futures for synchronous callers (a connection test)."""


class AsyncExchange(Bitunix, AsyncPluginExchange):
    """Bitunix futures for asyncio callers (the sync)."""

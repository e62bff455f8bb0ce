"""BitMart spot, written from BitMart's public API documentation (https://developer-pro.bitmart.com/en/spot/).

ccxt removed BitMart; connectors stored as ``bitmart`` work again through this plug-in. It reads
what the dashboard needs: markets, tickers, candles, the spot and funding (account) wallets,
fills, open and historical orders, deposits and withdrawals. Each method names the section of
the documentation it follows ("#..." anchors of the page above unless another page is named).

Credentials: API key, secret and the memo the owner chose when creating the key; the memo is
ccxt's ``uid`` (as in ccxt's own BitMart class, so stored connectors keep their fields).
"""

from __future__ import annotations

import hashlib
from typing import Any

import ccxt

from lib.plugins.base import AsyncPluginExchange, PluginExchange, Steps, start_end, unified

#: "Account Trade List (v4)", "Current Open Orders (v4)", "Account Orders (v4)": limit [1,200], default 200
ORDER_PAGE = 200
#: "Get Deposit And Withdraw History (KEYED)" v2: N, "Recent N records", allowed range [1,100]
TRANSFER_PAGE = 100
#: "Get History K-Line (V3)": limit, "the maximum value is 200"
CANDLE_PAGE = 200
#: order state -> ccxt status ("Account Orders (v4)" response: state)
ORDER_STATES = {"new": "open", "partially_filled": "open", "filled": "closed", "canceled": "canceled",
                "partially_canceled": "canceled"}
#: deposit/withdrawal status -> ccxt status ("Get Deposit And Withdraw History": 0 create, 1 submitted,
#: 2 processing, 3 success, 4 cancel, 5 fail)
TRANSFER_STATES = {"0": "pending", "1": "pending", "2": "pending", "3": "ok", "4": "canceled", "5": "failed"}


class BitMart:
    """describe, sign, errors and parsing, shared by the sync and asyncio classes."""

    API = {
        "public": {"get": {
            "system/time": 1,  # "Get System Time"
            "spot/v1/symbols/details": 1,  # "Get Trading Pair Details (V1)"
            "spot/quotation/v3/tickers": 1,  # "Get Ticker of All Pairs (V3)"
            "spot/quotation/v3/ticker": 1,  # "Get Ticker of a Trading Pair (V3)"
            "spot/quotation/v3/klines": 1,  # "Get History K-Line (V3)"
        }},
        "private": {
            "get": {
                "spot/v1/wallet": 1,  # "Get Spot Wallet Balance (KEYED)"
                "account/v1/wallet": 1,  # "Get Account Balance (KEYED)": the funding account
                "account/v2/deposit-withdraw/history": 1,  # "Get Deposit And Withdraw History (KEYED)"
            },
            "post": {
                "spot/v4/query/open-orders": 1,  # "Current Open Orders (v4) (SIGNED)"
                "spot/v4/query/history-orders": 1,  # "Account Orders (v4) (SIGNED)"
                "spot/v4/query/trades": 1,  # "Account Trade List (v4) (SIGNED)"
            },
        },
    }

    def describe(self) -> dict[str, Any]:
        paged = {"marginMode": False, "limit": ORDER_PAGE, "daysBack": None, "untilDays": None,
                 "symbolRequired": False}
        return self.deep_extend(super().describe(), {
            "id": "bitmart",
            "name": "BitMart",
            "countries": ["US"],
            # "Rate Limit": the v4 order and trade queries allow 12 requests per 2 seconds per key
            "rateLimit": 170,
            "api": self.API,
            "urls": {
                "api": {"rest": "https://api-cloud.bitmart.com"},
                "www": "https://www.bitmart.com/",
                "doc": "https://developer-pro.bitmart.com/en/spot/",
            },
            "has": {
                "spot": True, "margin": False, "swap": False, "future": False, "option": False,
                "fetchTime": True, "fetchMarkets": True, "fetchCurrencies": False,
                "fetchTicker": True, "fetchTickers": True, "fetchOHLCV": True, "fetchBalance": True,
                "fetchMyTrades": True, "fetchOpenOrders": True,
                # one endpoint answers filled and canceled orders together
                "fetchCanceledAndClosedOrders": True, "fetchClosedOrders": False, "fetchCanceledOrders": False,
                "fetchOrders": False, "fetchDeposits": True, "fetchWithdrawals": True, "fetchLedger": False,
                "fetchPositions": False, "sandbox": False,
            },
            "features": {"spot": {
                "sandbox": False,
                "fetchMyTrades": paged,
                "fetchCanceledAndClosedOrders": {**paged, "daysBackCanceled": None},
                "fetchClosedOrders": {**paged, "daysBackCanceled": None},
                "fetchOpenOrders": {"marginMode": False, "limit": ORDER_PAGE, "trigger": False, "trailing": False,
                                    "symbolRequired": False},
                "fetchOHLCV": {"limit": CANDLE_PAGE},
            }},
            "requiredCredentials": {"apiKey": True, "secret": True, "uid": True},
            "credentialLabels": {"uid": "Memo"},
            # "Get History K-Line (V3)": step in minutes
            "timeframes": {"1m": 1, "3m": 3, "5m": 5, "15m": 15, "30m": 30, "45m": 45, "1h": 60, "2h": 120,
                           "3h": 180, "4h": 240, "1d": 1440, "1w": 10080, "1M": 43200},
            "options": {"accountsByType": {"spot": "spot", "funding": "funding"}},
            "precisionMode": ccxt.TICK_SIZE,
            # "Error Code" (#error-code): the codes a reading key can meet
            "exceptions": {"exact": {
                "30000": ccxt.ExchangeError,  # not found
                "30001": ccxt.AuthenticationError,  # header X-BM-KEY is empty
                "30002": ccxt.AuthenticationError,  # header X-BM-KEY not found (unknown key)
                "30003": ccxt.AccountSuspended,  # the account is frozen
                "30004": ccxt.AuthenticationError,  # header X-BM-SIGN is empty
                "30005": ccxt.AuthenticationError,  # header X-BM-SIGN is wrong (secret or memo)
                "30006": ccxt.AuthenticationError,  # header X-BM-TIMESTAMP is empty
                "30007": ccxt.InvalidNonce,  # header X-BM-TIMESTAMP range error (clock out of step)
                "30008": ccxt.InvalidNonce,  # header X-BM-TIMESTAMP invalid format
                "30010": ccxt.PermissionDenied,  # IP is forbidden (not on the key's allow-list)
                "30011": ccxt.AuthenticationError,  # header X-BM-KEY over expire time (expired key)
                "30012": ccxt.PermissionDenied,  # header X-BM-KEY is forbidden to request it (permission)
                "30013": ccxt.RateLimitExceeded,  # request too many requests
                "30014": ccxt.ExchangeNotAvailable,  # service unavailable
                "30016": ccxt.OnMaintenance,  # service maintenance
                "30017": ccxt.RateLimitExceeded,  # request limited
                "30018": ccxt.BadRequest,  # request body error
                "30019": ccxt.PermissionDenied,  # the key's permission does not allow this
                "50000": ccxt.BadRequest,  # bad size / parameter
                "50001": ccxt.BadSymbol,  # symbol not found
                "50004": ccxt.BadRequest,  # limit out of range
                "50005": ccxt.OrderNotFound,
                "50010": ccxt.BadRequest,  # startTime/endTime out of range
                "60000": ccxt.BadRequest,  # invalid request (account endpoints)
                "60020": ccxt.PermissionDenied,  # the key may not read this account
            }},
        })

    # --- signing and errors ("Signature", #api-basic-information) ---------------------------

    def sign(self, path: str, api: Any = "public", method: str = "GET", params: dict | None = None,
             headers: Any = None, body: Any = None) -> dict[str, Any]:
        """GET parameters go in the query string, POST ones in a JSON body; a private request
        carries X-BM-KEY, X-BM-TIMESTAMP and X-BM-SIGN = hex HMAC-SHA256(secret,
        timestamp + "#" + memo + "#" + query string or body). KEYED endpoints only need the key;
        every private request is signed anyway, as BitMart's own SDKs do for SIGNED ones."""
        access = api[0] if isinstance(api, list) else api
        query = self.omit(params or {}, self.extract_params(path))
        url = self.urls["api"]["rest"] + "/" + self.implode_params(path, params or {})
        headers = {}
        if method in ("GET", "DELETE"):
            payload = self.urlencode(query)
            if payload:
                url += "?" + payload
        else:
            body = payload = self.json(query)
            headers["Content-Type"] = "application/json"
        if access == "private":
            self.check_required_credentials()
            timestamp = str(self.milliseconds())
            message = timestamp + "#" + self.uid + "#" + payload
            headers.update({"X-BM-KEY": self.apiKey, "X-BM-TIMESTAMP": timestamp,
                            "X-BM-SIGN": self.hmac(self.encode(message), self.encode(self.secret), hashlib.sha256)})
        return {"url": url, "method": method, "body": body, "headers": headers}

    def handle_errors(self, code: int, reason: str, url: str, method: str, headers: Any, body: str,
                      response: Any, request_headers: Any, request_body: Any) -> None:
        """Every answer is {"code": 1000, "message": "OK", "data": ...}; another code is an
        error ("Error Code"), mapped by ``exceptions``; an unmapped one is an ExchangeError."""
        if not isinstance(response, dict):
            return None  # not JSON: ccxt's HTTP status handling decides
        error_code = self.safe_string(response, "code")
        if error_code is None or error_code == "1000":
            return None
        feedback = f"{self.id} {error_code} {self.safe_string(response, 'message', '')}"
        self.throw_exactly_matched_exception(self.exceptions["exact"], error_code, feedback)
        raise ccxt.ExchangeError(feedback)

    # --- parsing ------------------------------------------------------------------------

    def _data(self, response: Any) -> Any:
        return self.safe_value(response, "data", {})

    def parse_market(self, market: dict) -> dict:
        """A row of "Get Trading Pair Details (V1)"."""
        base = self.safe_currency_code(self.safe_string(market, "base_currency"))
        quote = self.safe_currency_code(self.safe_string(market, "quote_currency"))
        return self.safe_market_structure({
            "id": self.safe_string(market, "symbol"), "symbol": f"{base}/{quote}", "base": base, "quote": quote,
            "baseId": self.safe_string(market, "base_currency"), "quoteId": self.safe_string(market, "quote_currency"),
            "type": "spot", "spot": True, "margin": False, "swap": False, "future": False, "option": False,
            "contract": False, "active": self.safe_string(market, "trade_status") == "trading",
            "precision": {"amount": self.safe_number(market, "base_min_size"),
                          "price": self.parse_number(self.parse_precision(
                              self.safe_string(market, "price_max_precision")))},
            "limits": {"amount": {"min": self.safe_number(market, "base_min_size"),
                                  "max": self.safe_number(market, "base_max_size")},
                       "cost": {"min": self.safe_number(market, "min_buy_amount")}},
            "info": market,
        })

    def parse_ticker(self, ticker: Any, market: Any = None) -> dict:
        """"Get Ticker of All Pairs (V3)" rows are arrays [symbol, last, v_24h, qv_24h, open_24h,
        high_24h, low_24h, fluctuation, bid_px, bid_sz, ask_px, ask_sz, ts]; the one-pair
        endpoint answers the same fields by name."""
        names = ("symbol", "last", "v_24h", "qv_24h", "open_24h", "high_24h", "low_24h", "fluctuation",
                 "bid_px", "bid_sz", "ask_px", "ask_sz", "ts")
        row = dict(zip(names, ticker, strict=False)) if isinstance(ticker, list) else ticker
        market = self.safe_market(self.safe_string(row, "symbol"), market, "_")
        timestamp = self.safe_integer(row, "ts")
        return self.safe_ticker({
            "symbol": market["symbol"], "timestamp": timestamp, "datetime": self.iso8601(timestamp),
            "last": self.safe_string(row, "last"), "close": self.safe_string(row, "last"),
            "open": self.safe_string(row, "open_24h"), "high": self.safe_string(row, "high_24h"),
            "low": self.safe_string(row, "low_24h"), "bid": self.safe_string(row, "bid_px"),
            "bidVolume": self.safe_string(row, "bid_sz"), "ask": self.safe_string(row, "ask_px"),
            "askVolume": self.safe_string(row, "ask_sz"), "baseVolume": self.safe_string(row, "v_24h"),
            "quoteVolume": self.safe_string(row, "qv_24h"), "info": ticker,
        }, market)

    def parse_ohlcv(self, ohlcv: Any, market: Any = None) -> list:
        """"Get History K-Line (V3)": [t (seconds), o, h, l, c, v, qv]."""
        return [self.safe_timestamp(ohlcv, 0), self.safe_number(ohlcv, 1), self.safe_number(ohlcv, 2),
                self.safe_number(ohlcv, 3), self.safe_number(ohlcv, 4), self.safe_number(ohlcv, 5)]

    def parse_wallet(self, rows: list, code_key: str, response: Any) -> dict:
        """"Get Spot Wallet Balance" (id) and "Get Account Balance" (currency): available and frozen."""
        result: dict[str, Any] = {"info": response}
        for row in rows:
            account = self.account()
            account["free"] = self.safe_string(row, "available")
            account["used"] = self.safe_string(row, "frozen")
            result[self.safe_currency_code(self.safe_string(row, code_key))] = account
        return self.safe_balance(result)

    def parse_trade(self, trade: dict, market: Any = None) -> dict:
        """A row of "Account Trade List (v4)"."""
        market = self.safe_market(self.safe_string(trade, "symbol"), market, "_")
        timestamp = self.safe_integer(trade, "createTime")
        return self.safe_trade({
            "info": trade, "id": self.safe_string(trade, "tradeId"), "order": self.safe_string(trade, "orderId"),
            "timestamp": timestamp, "datetime": self.iso8601(timestamp), "symbol": market["symbol"],
            "type": self.safe_string(trade, "type"), "side": self.safe_string(trade, "side"),
            "price": self.safe_string(trade, "price"), "amount": self.safe_string(trade, "size"),
            "cost": self.safe_string(trade, "notional"), "takerOrMaker": self.safe_string(trade, "tradeRole"),
            "fee": {"cost": self.safe_string(trade, "fee"),
                    "currency": self.safe_currency_code(self.safe_string(trade, "feeCoinName"))},
        }, market)

    def parse_order(self, order: dict, market: Any = None) -> dict:
        """A row of "Current Open Orders (v4)" or "Account Orders (v4)"."""
        market = self.safe_market(self.safe_string(order, "symbol"), market, "_")
        timestamp = self.safe_integer(order, "createTime")
        return self.safe_order({
            "info": order, "id": self.safe_string(order, "orderId"),
            "clientOrderId": self.safe_string(order, "clientOrderId"), "timestamp": timestamp,
            "datetime": self.iso8601(timestamp), "lastUpdateTimestamp": self.safe_integer(order, "updateTime"),
            "symbol": market["symbol"], "type": self.safe_string(order, "type"),
            "side": self.safe_string(order, "side"), "price": self.safe_string(order, "price"),
            "average": self.safe_string(order, "priceAvg"), "amount": self.safe_string(order, "size"),
            "filled": self.safe_string(order, "filledSize"), "cost": self.safe_string(order, "filledNotional"),
            "status": ORDER_STATES.get(self.safe_string(order, "state", "")),
        }, market)

    def parse_transaction(self, transaction: dict, currency: Any = None) -> dict:
        """A record of "Get Deposit And Withdraw History": deposit_id or withdraw_id, arrival_amount, fee."""
        kind = self.safe_string(transaction, "operation_type")
        timestamp = self.safe_integer(transaction, "apply_time")
        code = self.safe_currency_code(self.safe_string(transaction, "currency"))
        return {
            "info": transaction,
            "id": self.safe_string(transaction, "deposit_id" if kind == "deposit" else "withdraw_id"),
            "txid": self.safe_string(transaction, "tx_id") or None,
            "type": "deposit" if kind == "deposit" else "withdrawal", "currency": code,
            "amount": self.safe_number(transaction, "arrival_amount"),
            "fee": {"cost": self.safe_number(transaction, "fee"), "currency": code},
            "address": self.safe_string(transaction, "address"), "tag": self.safe_string(transaction, "address_memo"),
            "status": TRANSFER_STATES.get(self.safe_string(transaction, "status", "")),
            "timestamp": timestamp, "datetime": self.iso8601(timestamp), "network": None, "updated": None,
            "addressFrom": None, "addressTo": None, "tagFrom": None, "tagTo": None, "comment": None,
            "internal": None,
        }

    # --- unified methods (generators: see lib.plugins.base) ------------------------------

    @unified
    def fetch_time(self, params: dict | None = None) -> Steps:
        """"Get System Time": data.server_time."""
        response = yield self.publicGetSystemTime(params or {})
        return self.safe_integer(self._data(response), "server_time")

    @unified
    def fetch_markets(self, params: dict | None = None) -> Steps:
        """"Get Trading Pair Details (V1)": data.symbols."""
        response = yield self.publicGetSpotV1SymbolsDetails(params or {})
        return [self.parse_market(m) for m in self.safe_list(self._data(response), "symbols", [])]

    @unified
    def fetch_tickers(self, symbols: list[str] | None = None, params: dict | None = None) -> Steps:
        """"Get Ticker of All Pairs (V3)": every pair in one answer."""
        yield self.load_markets()
        response = yield self.publicGetSpotQuotationV3Tickers(params or {})
        tickers = [self.parse_ticker(row) for row in self._data(response) or []]
        return self.filter_by_array_tickers([t for t in tickers if t["symbol"] in self.markets], "symbol", symbols)

    @unified
    def fetch_ticker(self, symbol: str, params: dict | None = None) -> Steps:
        """"Get Ticker of a Trading Pair (V3)"."""
        yield self.load_markets()
        market = self.market(symbol)
        response = yield self.publicGetSpotQuotationV3Ticker(self.extend({"symbol": market["id"]}, params or {}))
        return self.parse_ticker(self._data(response), market)

    @unified
    def fetch_ohlcv(self, symbol: str, timeframe: str = "1m", since: int | None = None, limit: int | None = None,
                    params: dict | None = None) -> Steps:
        """"Get History K-Line (V3)": ``after``/``before`` in seconds, at most 200 candles, oldest first."""
        yield self.load_markets()
        market = self.market(symbol)
        limit = min(limit or CANDLE_PAGE, CANDLE_PAGE)
        step = self.timeframes[timeframe]
        request: dict[str, Any] = {"symbol": market["id"], "step": step, "limit": limit}
        if since is not None:
            request["after"] = since // 1000 - 1
            request["before"] = since // 1000 + limit * step * 60
        response = yield self.publicGetSpotQuotationV3Klines(self.extend(request, params or {}))
        return self.parse_ohlcvs(self._data(response) or [], market, timeframe, since, limit)

    @unified
    def fetch_balance(self, params: dict | None = None) -> Steps:
        """The spot wallet ("Get Spot Wallet Balance (KEYED)", data.wallet[].id) or, with
        ``type: "funding"``, the account wallet ("Get Account Balance (KEYED)", data.wallet[].currency).

        KEYED endpoints check the key alone (#api-basic-information, "KEYED"), so a wrong memo
        would pass unseen: the spot balance also makes one SIGNED call (an open-orders query of
        one row), so a connection test and every sync meet a wrong memo or secret at once.
        """
        params = params or {}
        account = self.safe_string(params, "type", "spot")
        params = self.omit(params, "type")
        if account == "funding":
            response = yield self.privateGetAccountV1Wallet(params)
            return self.parse_wallet(self.safe_list(self._data(response), "wallet", []), "currency", response)
        yield self.privatePostSpotV4QueryOpenOrders({"orderMode": "spot", "limit": 1})
        response = yield self.privateGetSpotV1Wallet(params)
        return self.parse_wallet(self.safe_list(self._data(response), "wallet", []), "id", response)

    def _orders_request(self, symbol: str | None, since: int | None, limit: int | None,
                        params: dict | None) -> tuple[dict, Any]:
        """The v4 queries' body: spot orders, ``limit`` 1..200, the window as startTime/endTime."""
        request: dict[str, Any] = {"orderMode": "spot", "limit": min(limit or ORDER_PAGE, ORDER_PAGE)}
        market = None
        if symbol is not None:
            market = self.market(symbol)
            request["symbol"] = market["id"]
        return self.extend(request, start_end(self, params, since)), market

    @unified
    def fetch_my_trades(self, symbol: str | None = None, since: int | None = None, limit: int | None = None,
                        params: dict | None = None) -> Steps:
        """"Account Trade List (v4)": newest first, ``limit`` 1..200, startTime/endTime in ms,
        any symbol when none is named."""
        yield self.load_markets()
        request, market = self._orders_request(symbol, since, limit, params)
        response = yield self.privatePostSpotV4QueryTrades(request)
        return self.parse_trades(self._data(response) or [], market, since, limit)

    @unified
    def fetch_open_orders(self, symbol: str | None = None, since: int | None = None, limit: int | None = None,
                          params: dict | None = None) -> Steps:
        """"Current Open Orders (v4)": states new and partially_filled, ``limit`` 1..200."""
        yield self.load_markets()
        request, market = self._orders_request(symbol, since, limit, params)
        response = yield self.privatePostSpotV4QueryOpenOrders(request)
        return self.parse_orders(self._data(response) or [], market, since, limit)

    @unified
    def fetch_canceled_and_closed_orders(self, symbol: str | None = None, since: int | None = None,
                                         limit: int | None = None, params: dict | None = None) -> Steps:
        """"Account Orders (v4)": filled and canceled orders, newest first, ``limit`` 1..200."""
        yield self.load_markets()
        request, market = self._orders_request(symbol, since, limit, params)
        response = yield self.privatePostSpotV4QueryHistoryOrders(request)
        return self.parse_orders(self._data(response) or [], market, since, limit)

    def _transfers(self, kind: str, code: str | None, since: int | None, limit: int | None,
                   params: dict | None) -> Steps:
        """"Get Deposit And Withdraw History" v2: ``operation_type`` deposit or withdraw, newest
        first, N 1..100, the window as startTime/endTime."""
        request: dict[str, Any] = {"operation_type": kind, "N": min(limit or TRANSFER_PAGE, TRANSFER_PAGE)}
        if code is not None:
            request["currency"] = code
        response = yield self.privateGetAccountV2DepositWithdrawHistory(
            self.extend(request, start_end(self, params, since)))
        records = self.safe_list(self._data(response), "records", [])
        return self.filter_by_since_limit([self.parse_transaction(r) for r in records], since, limit)

    @unified
    def fetch_deposits(self, code: str | None = None, since: int | None = None, limit: int | None = None,
                       params: dict | None = None) -> Steps:
        return (yield from self._transfers("deposit", code, since, limit, params))

    @unified
    def fetch_withdrawals(self, code: str | None = None, since: int | None = None, limit: int | None = None,
                          params: dict | None = None) -> Steps:
        return (yield from self._transfers("withdraw", code, since, limit, params))


class Exchange(BitMart, PluginExchange):
    """BitMart spot for ccxt's synchronous interface."""


class AsyncExchange(BitMart, AsyncPluginExchange):
    """BitMart spot for ccxt's asyncio interface."""

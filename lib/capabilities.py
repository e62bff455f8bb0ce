"""What each exchange allows when reading history: ccxt's own metadata, then one table of overrides.

ccxt publishes most of the rules a complete sync needs in ``exchange.features[market][method]``
(``limit`` rows per call, ``daysBack`` look-back, ``untilDays`` longest window, ``symbolRequired``)
and in ``exchange.has``. Where ccxt is silent or looser than the exchange's documentation, the
``OVERRIDES`` table below says otherwise, each entry citing the page it follows. The rest of the
product asks ``history_rules(exchange)``; it never tests which exchange class it holds.

``None`` always means *unknown*, never *unlimited*: an unknown look-back is walked from
``DEFAULT_LOOKBACK_DAYS`` ago and shown as unknown; an unknown page order is paged on both sides.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

DAY_MS = 86_400_000
#: how far back a stream is walked when neither ccxt nor the overrides know the exchange's
#: look-back; the coverage map then says "unknown" instead of claiming completeness
DEFAULT_LOOKBACK_DAYS = 730
#: a look-back taken from ccxt's ``features``; an OVERRIDES rule's source starts with OVERRIDE_SOURCE,
#: then the page it follows and, in brackets, what that page says in plain words
CCXT_SOURCE, OVERRIDE_SOURCE = "ccxt features", "override: "
#: window for deposits, withdrawals and the ledger when nothing is known: Binance's 90-day
#: cap is the tightest documented one among the exchanges ccxt lists without a feature entry
DEFAULT_TRANSFER_WINDOW_DAYS = 90

Paging = Literal["time", "id", "bill-id"]
#: stream name -> what its rows are stored as; "canceled" is read only where one ccxt method
#: cannot return closed and canceled orders together
STREAM_KINDS = {"trades": "trades", "orders": "orders", "canceled": "orders", "deposits": "deposits",
                "withdrawals": "withdrawals", "ledger": "ledger"}
#: the ccxt unified method that reads each stream by default
METHODS = {"trades": "fetchMyTrades", "orders": "fetchClosedOrders", "canceled": "fetchCanceledOrders",
           "deposits": "fetchDeposits", "withdrawals": "fetchWithdrawals", "ledger": "fetchLedger"}
#: streams with no ``features`` entry in ccxt: walked in windows of this many days when the
#: overrides say nothing (Binance's 90-day cap on deposits is the tightest documented one)
UNFEATURED = ("deposits", "withdrawals", "ledger")


@dataclass(frozen=True)
class StreamRules:
    """How one stream of history is read from one exchange."""

    name: str  # "trades", "orders", "canceled", "deposits", "withdrawals": the cursor key's prefix
    kind: str  # what the rows are: "trades", "orders", "deposits", "withdrawals"
    method: str  # ccxt unified method, camelCase as in ``exchange.has``
    supported: bool
    limit: int | None = None  # rows per call (None: the exchange's default, unknown)
    window_days: float | None = None  # longest span one call may cover (None: no limit known)
    days_back: float | None = None  # how far back the exchange keeps rows (None: unknown)
    symbol_required: bool = False
    paging: Paging = "time"
    #: for ``id`` paging: the request parameter that asks for rows from an id on (inclusive)
    id_param: str | None = None
    #: page order inside a window holding more than a page; None: unknown, so both sides are read
    newest_first: bool | None = None
    #: extra request parameters the method needs (e.g. which endpoint ccxt should call)
    params: Mapping[str, Any] = field(default_factory=dict)
    #: where ccxt does not turn ``since`` into the exchange's lower bound, the parameter that
    #: carries it too; the upper bound's parameter (ccxt's unified ``until`` unless named)
    since_param: str | None = None
    until_param: str = "until"
    #: where the look-back came from, for the coverage map
    source: str = CCXT_SOURCE

    @property
    def window_ms(self) -> int | None:
        return None if self.window_days is None else int(self.window_days * DAY_MS)


@dataclass(frozen=True)
class ExchangeRules:
    exchange_id: str
    streams: Mapping[str, StreamRules]
    #: ``fetch_balance`` ``type`` values read besides the default account ("" = default)
    balance_types: tuple[str, ...] = ("",)
    #: symbols one ``fetch_tickers`` call accepts (None: any number)
    tickers_per_call: int | None = None
    #: the parameter that pages open orders past the first page (older than an order id);
    #: None: one call answers every open order
    open_orders_older_than: str | None = None
    #: extra parameters of ``fetch_open_orders`` without a symbol (which market type to read)
    open_orders_params: Mapping[str, Any] = field(default_factory=dict)


#: Per-exchange corrections of ccxt's metadata, each with the documentation it follows.
#: Keys: stream kind (``trades``, ``orders``, ``deposits``, ``withdrawals``) mapping to
#: ``StreamRules`` fields, plus the ``ExchangeRules`` fields ``balance_types``,
#: ``tickers_per_call``, ``open_orders_older_than`` and ``open_orders_params``, and
#: ``fill_realized_pnl``: the field of a fill's raw record (ccxt's ``info``) holding a contract
#: fill's realised P&L in its settle currency (ccxt's unified trade has none).
OVERRIDES: dict[str, dict[str, Any]] = {
    "binance": {
        # https://developers.binance.com/docs/binance-spot-api-docs/rest-api/account-endpoints#account-trade-list-user_data
        # "fromId: TradeId to fetch from"; startTime/endTime may span 24 hours only, so ids
        # (rising per symbol, 1000 per call) reach the first fill without any time window
        "trades": {"paging": "id", "id_param": "fromId", "days_back": None, "source":
                   "override: developers.binance.com account-trade-list (fromId from 0: whole history)"},
        # https://developers.binance.com/docs/binance-spot-api-docs/rest-api/account-endpoints#all-orders-user_data
        # "If orderId is set, it will get orders >= that orderId"; a time range may span 24 hours
        "orders": {"method": "fetchOrders", "paging": "id", "id_param": "orderId", "window_days": 1,
                   "limit": 1000, "source": "override: developers.binance.com all-orders (orderId from 0)"},
        # https://developers.binance.com/docs/wallet/capital/deposite-history : "the time interval
        # is within 0-90 days"; default is the last 90 days when no startTime is sent
        "deposits": {"window_days": 90, "limit": 1000},
        # https://developers.binance.com/docs/wallet/capital/withdraw-history : 90-day interval
        "withdrawals": {"window_days": 90, "limit": 1000},
        # ccxt's binance.fetch_ledger reads the option, USD-M and COIN-M income histories
        # (https://developers.binance.com/docs/derivatives/usds-margined-futures/account/rest-api/Get-Income-History);
        # Binance publishes no ledger of the spot account, so it tells nothing about spot assets
        "ledger": {"supported": False},
    },
    "okx": {
        # https://www.okx.com/docs-v5/en/#order-book-trading-trade-get-transaction-details-last-3-months
        # newest first, 100 per call, paged by billId with after/before; kept 3 months
        "trades": {"paging": "bill-id", "newest_first": True, "days_back": 90,
                   "source": "override: okx.com docs-v5 fills-history (last 3 months)"},
        # https://www.okx.com/docs-v5/en/#order-book-trading-trade-get-order-history-last-3-months
        # ccxt reads orders-history (7 days) unless told to use the 3-month archive
        "orders": {"params": {"method": "privateGetTradeOrdersHistoryArchive"}, "days_back": 90,
                   "window_days": None, "newest_first": True,
                   "source": "override: okx.com docs-v5 orders-history-archive (last 3 months)"},
        # https://www.okx.com/docs-v5/en/#trading-account-rest-api-get-bills-details-last-3-months
        # newest first, 100 per call, begin/end inclusive; ccxt reads the 7-day endpoint unless
        # told otherwise and never sends ``since``, so the window's start goes as ``begin``
        "ledger": {"params": {"method": "privateGetAccountBillsArchive"}, "since_param": "begin",
                   "days_back": 90, "limit": 100, "newest_first": True, "window_days": None,
                   "source": "override: okx.com docs-v5 bills-archive (last 3 months)"},
        # https://www.okx.com/docs-v5/en/#funding-account-rest-api-get-deposit-history : 100 per call, newest first
        "deposits": {"limit": 100, "newest_first": True},
        # https://www.okx.com/docs-v5/en/#funding-account-rest-api-get-withdrawal-history : likewise
        "withdrawals": {"limit": 100, "newest_first": True},
        # https://www.okx.com/docs-v5/en/#order-book-trading-trade-get-order-list : at most 100
        # pending orders per call, "after: pagination of data to return records earlier than
        # the requested ordId"
        "open_orders_older_than": "after",
        # https://www.okx.com/docs-v5/en/#order-book-trading-trade-get-transaction-details-last-3-months
        # (GET /api/v5/trade/fills-history) "fillPnl: Last filled profit and loss, applicable to
        # orders which have a trade and aim to close position"
        "fill_realized_pnl": "fillPnl",
    },
    "cryptocom": {
        # https://exchange-docs.crypto.com/exchange/v1/rest-ws/index.html#private-get-trades
        # up to 100 rows, newest first; without start_time only the last day is answered
        "trades": {"newest_first": True, "days_back": 180,
                   "source": "override: exchange-docs.crypto.com private-get-trades (about 6 months kept)"},
        # https://exchange-docs.crypto.com/exchange/v1/rest-ws/index.html#private-get-order-history
        "orders": {"method": "fetchOrders", "newest_first": True, "days_back": 180,
                   "source": "override: exchange-docs.crypto.com private-get-order-history (about 6 months kept)"},
        # https://exchange-docs.crypto.com/exchange/v1/rest-ws/index.html#private-get-deposit-history
        # start defaults to 90 days ago, pages of up to 200
        "deposits": {"window_days": 90, "limit": 200, "newest_first": True},
        # https://exchange-docs.crypto.com/exchange/v1/rest-ws/index.html#private-get-withdrawal-history
        "withdrawals": {"window_days": 90, "limit": 200, "newest_first": True},
        # https://exchange-docs.crypto.com/exchange/v1/rest-ws/index.html#private-get-transactions
        # same bounds, 100-row pages and retention as get-trades; no longest window named
        "ledger": {"window_days": None, "limit": 100, "newest_first": True, "days_back": 180,
                   "source": "override: exchange-docs.crypto.com private-get-transactions (about 6 months kept)"},
        # https://exchange-docs.crypto.com/exchange/v1/rest-ws/index.html#public-get-tickers
        # "instrument_name" names one instrument; ccxt refuses a list of several
        "tickers_per_call": 1,
    },
    "bybit": {
        # https://bybit-exchange.github.io/docs/v5/order/execution : newest first, 7-day window;
        # "category" is required and ccxt sends "linear" when no symbol names a spot market
        "trades": {"newest_first": True, "params": {"type": "spot"}},
        # https://bybit-exchange.github.io/docs/v5/order/order-list : newest first, 7-day window
        "orders": {"newest_first": True, "params": {"type": "spot"}},
        # https://bybit-exchange.github.io/docs/v5/order/open-order : category required (as above)
        "open_orders_params": {"type": "spot"},
        # https://bybit-exchange.github.io/docs/v5/account/transaction-log : newest first, at most
        # 7 days per call, 50 per page, 2 years kept; ccxt does not turn ``until`` into endTime
        "ledger": {"window_days": 7, "days_back": 730, "limit": 50, "newest_first": True, "until_param": "endTime",
                   "source": "override: bybit-exchange.github.io v5 transaction-log (2 years kept)"},
        # https://bybit-exchange.github.io/docs/v5/asset/deposit/deposit-record : 30-day window, 50 per page
        "deposits": {"window_days": 30, "limit": 50, "newest_first": True},
        # https://bybit-exchange.github.io/docs/v5/asset/withdraw/withdraw-record : 30-day window, 50 per page
        "withdrawals": {"window_days": 30, "limit": 50, "newest_first": True},
    },
    "bitunix": {
        # the plug-in's features give the page size (100); what they cannot say is the order:
        # https://openapidoc.bitunix.com/doc/trade/get_history_trades.html and get_history_orders.html
        # "sort by create time desc"
        "trades": {"newest_first": True},
        "orders": {"newest_first": True},
        # https://openapidoc.bitunix.com/doc/trade/get_history_trades.html: each trade's
        # "realizedPNL", beside its "fee"
        "fill_realized_pnl": "realizedPNL",
    },
    "bitmart": {
        # the plug-in's features give the page sizes; what it cannot say is the page order:
        # https://developer-pro.bitmart.com/en/spot/#account-trade-list-v4-signed and
        # #account-orders-v4-signed answer newest first within startTime/endTime
        "trades": {"newest_first": True},
        "orders": {"newest_first": True},
        # #get-deposit-and-withdraw-history-keyed (v2): "N" 1..100, newest first
        "deposits": {"limit": 100, "newest_first": True},
        "withdrawals": {"limit": 100, "newest_first": True},
    },
    "kucoin": {
        # https://www.kucoin.com/docs/rest/account/basic-info/get-account-list-spot-margin-trade_hf
        # the funding account is called "main"; ccxt's fetch_balance reads "trade" by default
        "balance_types": ("", "main"),
    },
}


def _feature(exchange: Any, method: str) -> Mapping[str, Any]:
    """The entry of the market type an account is read in: spot, or linear swaps on an exchange
    without spot markets (a futures-only exchange such as the Bitunix plug-in)."""
    features = getattr(exchange, "features", None) or {}
    block = features.get("spot") or (features.get("swap") or {}).get("linear") or {}
    return block.get(method) or {}


def _order_method(has: Mapping[str, Any]) -> str:
    """Closed and canceled orders in one stream where ccxt has one method for both (a native
    ``fetchCanceledAndClosedOrders``, or ``fetchOrders`` whose open orders are left out);
    otherwise ``fetchClosedOrders``, with a "canceled" stream beside it."""
    if has.get("fetchCanceledAndClosedOrders") is True:
        return "fetchCanceledAndClosedOrders"
    if has.get("fetchClosedOrders") is not True and has.get("fetchOrders"):
        return "fetchOrders"
    return "fetchClosedOrders"


def _stream(exchange: Any, name: str) -> StreamRules:
    has = exchange.has or {}
    method = _order_method(has) if name == "orders" else METHODS[name]
    kind = STREAM_KINDS[name]
    supported = bool(has.get(method))
    if kind in UNFEATURED:
        return StreamRules(name, kind, method, supported, window_days=DEFAULT_TRANSFER_WINDOW_DAYS, source="unknown")
    # canceled orders that were partly filled are kept as long as filled ones (daysBackCanceled
    # is the look-back of those canceled without a fill), so both streams walk daysBack
    # (ccxt publishes no features entry for fetchCanceledAndClosedOrders: it reads the same
    # endpoint as fetchClosedOrders)
    feature = _feature(exchange, method) if name != "canceled" else {}
    if kind == "orders" and not feature:
        feature = _feature(exchange, "fetchClosedOrders")
    days_back = feature.get("daysBack")
    return StreamRules(
        name, kind, method, supported, limit=feature.get("limit"),
        window_days=_window(feature.get("untilDays")), days_back=days_back,
        symbol_required=bool(feature.get("symbolRequired")),
        source=CCXT_SOURCE if days_back is not None else "unknown",
    )


def _window(until_days: Any) -> float | None:
    """ccxt writes "no window" as a huge number (10000 days); keep real windows only."""
    if until_days is None or until_days >= 3650:
        return None
    return float(until_days)


def _balance_types(exchange: Any) -> tuple[str, ...]:
    """The default account, plus the funding account where ccxt names one."""
    by_type = (exchange.options or {}).get("accountsByType") or {}
    return ("", "funding") if "funding" in by_type else ("",)


def history_rules(exchange: Any) -> ExchangeRules:
    """The history rules of a ccxt exchange instance: its metadata with the overrides applied."""
    override = OVERRIDES.get(exchange.id, {})
    streams = {}
    for name in STREAM_KINDS:
        rules = _stream(exchange, name)
        fields = dict(override.get("orders" if name == "canceled" else name, {}))
        if name == "canceled":  # the same rules as closed orders, read with their own method
            fields.pop("method", None)
            rules = replace(rules, supported=rules.supported and streams["orders"].method == "fetchClosedOrders")
        method = fields.get("method", rules.method)
        if method != rules.method:
            rules = replace(rules, method=method, supported=bool((exchange.has or {}).get(method)))
        if fields:
            rules = replace(rules, **fields)
        streams[name] = rules
    return ExchangeRules(
        exchange.id, streams,
        balance_types=tuple(override.get("balance_types", _balance_types(exchange))),
        tickers_per_call=override.get("tickers_per_call"),
        open_orders_older_than=override.get("open_orders_older_than"),
        open_orders_params=override.get("open_orders_params", {}),
    )


def fill_realized_pnl_field(exchange_id: str) -> str | None:
    """The raw-record (``info``) field of a contract fill's realised P&L on this exchange (None:
    not known); asked once per fill, so a plain look-up rather than the whole ``history_rules``."""
    return OVERRIDES.get(exchange_id, {}).get("fill_realized_pnl")


def lookback_days(exchange: Any, kind: str = "trades") -> float | None:
    """How far back the exchange keeps this kind of history (None: unknown), for forms and pages."""
    return history_rules(exchange).streams[kind].days_back

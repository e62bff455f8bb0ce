"""SQLAlchemy 2.0 typed models: the whole schema in one place.

Amounts (quantities, prices, costs, fees, balances) are exact decimals (``Amount``): the sync
asks ccxt for its numbers as the strings the exchange sent, so a token balance such as
123456789012.123456789012 or a wei-level fee is kept digit for digit, and what must foot
(balances, reconciliation, CSV) is summed in ``Decimal``. Floats are for vectorised
computation only (lib.pnl), converted where a frame is read. Exchange timestamps are integer
milliseconds since the epoch (ccxt's convention); bookkeeping times are timezone-aware.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine.default import DefaultExecutionContext
from sqlalchemy.engine.interfaces import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator, TypeEngine

NAME_MAX = 100
LABEL_MAX = 100
URL_MAX = 500
EXCHANGE_ID_MAX = 50
#: a price source: exchange id, "@" and an API URL's host, "#sandbox" (``lib.prices.price_source``)
SOURCE_MAX = EXCHANGE_ID_MAX + 1 + URL_MAX + len("#sandbox")


def utcnow() -> datetime:
    return datetime.now(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend (SQLite forgets the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given; use lib.models.utcnow()")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


def to_decimal(value: Any) -> Decimal | None:
    """An exchange number as an exact ``Decimal``: a string as written, a float by its shortest
    repr (0.1 -> Decimal("0.1"), not the binary expansion); None stays None.

    Raises ValueError for text that is no number, and for NaN or an infinity (no amount is).
    """
    if value is None or isinstance(value, Decimal):
        number = value
    elif isinstance(value, bool):
        raise ValueError(f"not an amount: {value!r}")
    elif isinstance(value, int | float):
        number = Decimal(repr(float(value))) if isinstance(value, float) else Decimal(value)
    else:
        try:
            number = Decimal(str(value).strip())
        except InvalidOperation:
            raise ValueError(f"not a decimal number: {str(value)[:40]!r}") from None
    if number is not None and not number.is_finite():
        raise ValueError(f"not a finite amount: {value!r}")
    return number


def decimal_text(value: Decimal) -> str:
    """The plain decimal string of ``value`` (no exponent), keeping its scale: "0.00100000"."""
    if value == 0:
        value = abs(value)  # "-0.0" is zero
    return format(value, "f")


class Amount(TypeDecorator[Decimal]):
    """An exact decimal amount, read back as the ``Decimal`` that was written (scale included).

    PostgreSQL: NUMERIC without precision or scale. It holds any value exactly (up to 131072
    digits before the point and 16383 after), so 24 significant digits with 18 decimals, or a
    cost ccxt derives as amount x price with more decimals, are stored as they are rather than
    rounded to a declared scale; it keeps the scale sent ("0.00100000"), which tells the display
    how many decimals the exchange uses. SQLite has no decimal type and SQLAlchemy's Numeric
    goes through float there, so the value is TEXT holding ``decimal_text``; SQL arithmetic,
    sums and ordering on these columns are therefore done in Python, never in SQL.
    """

    impl = Numeric
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(Numeric(asdecimal=True))
        return dialect.type_descriptor(Text())

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        number = to_decimal(value)
        if number is None or dialect.name == "postgresql":
            return number
        return decimal_text(number)

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        return to_decimal(value)

    @property
    def python_type(self) -> type:
        return Decimal


class Base(DeclarativeBase):
    pass


class Client(Base):
    """A customer of the firm whose exchange accounts we watch."""

    __tablename__ = "clients"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_MAX), unique=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        UtcDateTime(), default=utcnow, onupdate=utcnow
    )

    connectors: Mapped[list[Connector]] = relationship(
        back_populates="client", cascade="all, delete-orphan", passive_deletes=True
    )


class Connector(Base):
    """One exchange account (API key) of a client."""

    __tablename__ = "connectors"
    __table_args__ = (UniqueConstraint("client_id", "exchange_id", "label"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"), index=True)
    exchange_id: Mapped[str] = mapped_column(String(EXCHANGE_ID_MAX))
    label: Mapped[str] = mapped_column(String(LABEL_MAX))
    credentials_ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    key_hint: Mapped[str] = mapped_column(String(8), default="")  # last 4 of the API key
    api_url: Mapped[str | None] = mapped_column(String(URL_MAX))
    sandbox: Mapped[bool] = mapped_column(Boolean, default=False)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    extra_symbols: Mapped[str] = mapped_column(Text, default="")  # comma-separated
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        UtcDateTime(), default=utcnow, onupdate=utcnow
    )
    # sync status
    status: Mapped[str] = mapped_column(String(20), default="new")  # new|ok|error|attention
    last_attempt_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    last_success_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    first_synced_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    # a lease so that several workers never sync one connector at once
    lease_owner: Mapped[str | None] = mapped_column(String(100))
    lease_until: Mapped[datetime | None] = mapped_column(UtcDateTime())

    client: Mapped[Client] = relationship(back_populates="connectors")

    def describe(self) -> str:
        """How audit events and messages name a connector: client / exchange / label (#id)."""
        return f"{self.client.name} / {self.exchange_id} / {self.label} (#{self.id})"


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(NAME_MAX), unique=True)
    email: Mapped[str | None] = mapped_column(String(200), unique=True)
    password_hash: Mapped[str | None] = mapped_column(String(200))  # None: OIDC only
    role: Mapped[str] = mapped_column(String(20))  # admin|analyst|client
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UtcDateTime())
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class UserClient(Base):
    """Which clients a user of role ``client`` may see."""

    __tablename__ = "user_clients"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    client_id: Mapped[int] = mapped_column(
        ForeignKey("clients.id", ondelete="CASCADE"), primary_key=True
    )


class AuditEvent(Base):
    """Who did what, when. Never holds a secret."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(NAME_MAX))
    action: Mapped[str] = mapped_column(String(50), index=True)
    target: Mapped[str] = mapped_column(String(300), default="")
    detail: Mapped[str] = mapped_column(Text, default="")


#: a client address as lib.users keys logins by it (an IPv6 /64 network at most)
LOGIN_SOURCE_MAX = 64


class AuthSession(Base):
    """One login: the browser holds a random token in a cookie, the row only its SHA-256.

    ``handoff_hash`` is set between the login and the browser's one-time visit that sets the
    cookie (see lib.sessions); ``ended_at`` / ``end_reason`` say when and why it stopped.
    """

    __tablename__ = "auth_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    handoff_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    method: Mapped[str] = mapped_column(String(50))
    source: Mapped[str] = mapped_column(String(LOGIN_SOURCE_MAX))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    end_reason: Mapped[str | None] = mapped_column(String(50))


class LoginThrottle(Base):
    """Failed logins to one account from one source (client address): the lockout's counter.

    Per source, so guesses from one address lock that address out of the account and
    nobody else (lib.users.authenticate).
    """

    __tablename__ = "login_throttles"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    source: Mapped[str] = mapped_column(String(LOGIN_SOURCE_MAX), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UtcDateTime())


class SyncRun(Base):
    __tablename__ = "sync_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, index=True)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    trigger: Mapped[str] = mapped_column(String(20))  # worker|force|cli|save
    actor: Mapped[str] = mapped_column(String(NAME_MAX), default="system")
    total: Mapped[int] = mapped_column(Integer, default=0)
    successful: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)

    results: Mapped[list[SyncResult]] = relationship(
        back_populates="run", cascade="all, delete-orphan", passive_deletes=True
    )


class SyncResult(Base):
    __tablename__ = "sync_results"

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("sync_runs.id", ondelete="CASCADE"), index=True)
    connector_id: Mapped[int] = mapped_column(
        ForeignKey("connectors.id", ondelete="CASCADE"), index=True
    )
    success: Mapped[bool] = mapped_column(Boolean)
    balances: Mapped[int] = mapped_column(Integer, default=0)
    new_trades: Mapped[int] = mapped_column(Integer, default=0)
    new_transfers: Mapped[int] = mapped_column(Integer, default=0)
    open_orders: Mapped[int] = mapped_column(Integer, default=0)
    positions: Mapped[int] = mapped_column(Integer, default=0)
    requests: Mapped[int] = mapped_column(Integer, default=0)
    duration_ms: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    #: "balanced", "unbalanced" or "unknown" after the sync (``lib.reconcile``); None when not checked
    reconciliation: Mapped[str | None] = mapped_column(String(20))
    #: how many (account type, asset) rows the history does not explain
    unbalanced: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    run: Mapped[SyncRun] = relationship(back_populates="results")


class BalanceSnapshot(Base):
    """One row per asset per successful sync, so balances have a history."""

    __tablename__ = "balance_snapshots"
    __table_args__ = (Index("ix_balance_connector_taken", "connector_id", "taken_at"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    connector_id: Mapped[int] = mapped_column(ForeignKey("connectors.id", ondelete="CASCADE"))
    taken_at: Mapped[datetime] = mapped_column(UtcDateTime())
    asset: Mapped[str] = mapped_column(String(30))
    free: Mapped[Decimal] = mapped_column(Amount(), default=Decimal(0))
    used: Mapped[Decimal] = mapped_column(Amount(), default=Decimal(0))
    total: Mapped[Decimal] = mapped_column(Amount(), default=Decimal(0))
    #: the exchange's account type as ccxt's ``fetch_balance`` ``type`` names it ("funding", ...);
    #: "" is the account ``fetch_balance`` reads by default (spot / trading / unified)
    account_type: Mapped[str] = mapped_column(String(30), default="", server_default="")


class OpeningBalance(Base):
    """Holdings the synced history does not explain, booked at first sync (see PNL.md)."""

    __tablename__ = "opening_balances"
    __table_args__ = (UniqueConstraint("connector_id", "asset"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    connector_id: Mapped[int] = mapped_column(ForeignKey("connectors.id", ondelete="CASCADE"))
    asset: Mapped[str] = mapped_column(String(30))
    amount: Mapped[Decimal] = mapped_column(Amount())
    usd_price: Mapped[Decimal | None] = mapped_column(Amount())
    timestamp: Mapped[int] = mapped_column(BigInteger)


class Trade(Base):
    """A fill, inserted once on (connector, symbol, exchange trade id) and never updated.

    The symbol is part of the key because Binance and OKX number trades per market.

    Ids are never reused (AUTOINCREMENT on SQLite, a sequence on PostgreSQL): the P&L fill store
    (lib.queries) appends the fills above its highest id while only inserts happened since
    (``DatabaseState.trades_epoch``); on PostgreSQL it also compares the count, since a fill may
    commit after one with a higher id.
    """

    __tablename__ = "trades"
    __table_args__ = (
        UniqueConstraint("connector_id", "symbol", "trade_id", name="uq_trades_connector_symbol_id"),
        Index("ix_trades_connector_ts", "connector_id", "timestamp"),
        Index("ix_trades_ts", "timestamp"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    connector_id: Mapped[int] = mapped_column(ForeignKey("connectors.id", ondelete="CASCADE"))
    trade_id: Mapped[str] = mapped_column(String(100))
    order_id: Mapped[str | None] = mapped_column(String(100))
    timestamp: Mapped[int] = mapped_column(BigInteger)
    symbol: Mapped[str] = mapped_column(String(50), index=True)
    base: Mapped[str] = mapped_column(String(30))
    quote: Mapped[str] = mapped_column(String(30))
    side: Mapped[str] = mapped_column(String(4))
    taker_or_maker: Mapped[str | None] = mapped_column(String(5))
    amount: Mapped[Decimal] = mapped_column(Amount())
    price: Mapped[Decimal] = mapped_column(Amount())
    cost: Mapped[Decimal] = mapped_column(Amount())
    fee_cost: Mapped[Decimal] = mapped_column(Amount(), default=Decimal(0))
    fee_currency: Mapped[str | None] = mapped_column(String(30))
    #: a contract fill's realised P&L in the settle currency, as the exchange reports it
    #: (``lib.capabilities`` names the field); None for spot fills and where it is not reported
    realized_pnl: Mapped[Decimal | None] = mapped_column(Amount())
    #: the CSV import that wrote this fill; None for fills the sync fetched
    import_id: Mapped[int | None] = mapped_column(ForeignKey("history_imports.id", ondelete="SET NULL"))


class Order(Base):
    """An open order; a connector's set is replaced atomically on each sync."""

    __tablename__ = "orders"
    __table_args__ = (UniqueConstraint("connector_id", "symbol", "order_id", name="uq_orders_connector_symbol_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    connector_id: Mapped[int] = mapped_column(ForeignKey("connectors.id", ondelete="CASCADE"))
    order_id: Mapped[str] = mapped_column(String(100))
    timestamp: Mapped[int | None] = mapped_column(BigInteger)
    symbol: Mapped[str] = mapped_column(String(50))
    side: Mapped[str] = mapped_column(String(4))
    type: Mapped[str | None] = mapped_column(String(20))
    price: Mapped[Decimal | None] = mapped_column(Amount())
    amount: Mapped[Decimal] = mapped_column(Amount())
    filled: Mapped[Decimal] = mapped_column(Amount(), default=Decimal(0))
    remaining: Mapped[Decimal | None] = mapped_column(Amount())
    status: Mapped[str | None] = mapped_column(String(20))


class OrderHistory(Base):
    """A closed or canceled order, upserted on (connector, symbol, exchange order id)."""

    __tablename__ = "order_history"
    __table_args__ = (
        UniqueConstraint("connector_id", "symbol", "order_id", name="uq_order_history_connector_symbol_id"),
        Index("ix_order_history_connector_ts", "connector_id", "timestamp"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    connector_id: Mapped[int] = mapped_column(ForeignKey("connectors.id", ondelete="CASCADE"))
    order_id: Mapped[str] = mapped_column(String(100))
    timestamp: Mapped[int | None] = mapped_column(BigInteger)  # created
    last_update: Mapped[int | None] = mapped_column(BigInteger)
    symbol: Mapped[str] = mapped_column(String(50))
    side: Mapped[str | None] = mapped_column(String(4))
    type: Mapped[str | None] = mapped_column(String(20))
    status: Mapped[str | None] = mapped_column(String(20))
    price: Mapped[Decimal | None] = mapped_column(Amount())
    average: Mapped[Decimal | None] = mapped_column(Amount())
    amount: Mapped[Decimal | None] = mapped_column(Amount())
    filled: Mapped[Decimal | None] = mapped_column(Amount())
    cost: Mapped[Decimal | None] = mapped_column(Amount())
    fee_cost: Mapped[Decimal | None] = mapped_column(Amount())
    fee_currency: Mapped[str | None] = mapped_column(String(30))


class LedgerEntry(Base):
    """A balance change from the exchange's account ledger (``fetch_ledger``), inserted once.

    ccxt's ledger ``id`` is not unique on every exchange (crypto.com repeats the order id for
    each leg), so rows are keyed by ``entry_key``: the id with the fields that tell legs apart.
    """

    __tablename__ = "ledger_entries"
    __table_args__ = (
        UniqueConstraint("connector_id", "entry_key", name="uq_ledger_entries_connector_key"),
        Index("ix_ledger_entries_connector_ts", "connector_id", "timestamp"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    connector_id: Mapped[int] = mapped_column(ForeignKey("connectors.id", ondelete="CASCADE"))
    entry_key: Mapped[str] = mapped_column(String(200))
    entry_id: Mapped[str | None] = mapped_column(String(100))
    timestamp: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(30))
    amount: Mapped[Decimal] = mapped_column(Amount())
    direction: Mapped[str | None] = mapped_column(String(3))  # in|out
    type: Mapped[str | None] = mapped_column(String(30))
    account: Mapped[str | None] = mapped_column(String(50))
    reference_id: Mapped[str | None] = mapped_column(String(100))
    fee_cost: Mapped[Decimal | None] = mapped_column(Amount())
    fee_currency: Mapped[str | None] = mapped_column(String(30))
    status: Mapped[str | None] = mapped_column(String(20))


class HistoryCoverage(Base):
    """What one history stream (connector x kind, x symbol where needed) has fetched, and what
    the exchange no longer keeps; written with the stream's rows and cursor."""

    __tablename__ = "history_coverage"

    connector_id: Mapped[int] = mapped_column(
        ForeignKey("connectors.id", ondelete="CASCADE"), primary_key=True
    )
    stream: Mapped[str] = mapped_column(String(100), primary_key=True)  # e.g. "trades:BTC/USDT"
    kind: Mapped[str] = mapped_column(String(20))  # trades|orders|deposits|withdrawals|balance
    #: oldest time the exchange still keeps (ms); None: unknown or (id paging) from the first id
    oldest_available: Mapped[int | None] = mapped_column(BigInteger)
    lookback_source: Mapped[str] = mapped_column(String(200), default="")
    fetched_from: Mapped[int | None] = mapped_column(BigInteger)
    fetched_to: Mapped[int | None] = mapped_column(BigInteger)
    complete_at: Mapped[datetime | None] = mapped_column(UtcDateTime())  # last walk that reached "now"
    failed_from: Mapped[int | None] = mapped_column(BigInteger)
    failed_to: Mapped[int | None] = mapped_column(BigInteger)
    failed_error: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class Position(Base):
    """A derivatives position as the exchange reports it; replaced on each sync."""

    __tablename__ = "positions"

    id: Mapped[int] = mapped_column(primary_key=True)
    connector_id: Mapped[int] = mapped_column(
        ForeignKey("connectors.id", ondelete="CASCADE"), index=True
    )
    symbol: Mapped[str] = mapped_column(String(50))
    side: Mapped[str | None] = mapped_column(String(10))
    contracts: Mapped[Decimal | None] = mapped_column(Amount())
    contract_size: Mapped[Decimal | None] = mapped_column(Amount())
    entry_price: Mapped[Decimal | None] = mapped_column(Amount())
    mark_price: Mapped[Decimal | None] = mapped_column(Amount())
    notional: Mapped[Decimal | None] = mapped_column(Amount())
    unrealized_pnl: Mapped[Decimal | None] = mapped_column(Amount())
    leverage: Mapped[Decimal | None] = mapped_column(Amount())
    liquidation_price: Mapped[Decimal | None] = mapped_column(Amount())
    timestamp: Mapped[int | None] = mapped_column(BigInteger)


class Transfer(Base):
    """A deposit or withdrawal, upserted on (connector, type, exchange id)."""

    __tablename__ = "transfers"
    __table_args__ = (UniqueConstraint("connector_id", "type", "transfer_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    connector_id: Mapped[int] = mapped_column(
        ForeignKey("connectors.id", ondelete="CASCADE"), index=True
    )
    transfer_id: Mapped[str] = mapped_column(String(100))
    type: Mapped[str] = mapped_column(String(10))  # deposit|withdrawal
    timestamp: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(30))
    amount: Mapped[Decimal] = mapped_column(Amount())
    fee_cost: Mapped[Decimal] = mapped_column(Amount(), default=Decimal(0))
    fee_currency: Mapped[str | None] = mapped_column(String(30))
    status: Mapped[str | None] = mapped_column(String(20))
    txid: Mapped[str | None] = mapped_column(String(200))
    #: the CSV import that wrote this transfer; None for transfers the sync fetched
    import_id: Mapped[int | None] = mapped_column(ForeignKey("history_imports.id", ondelete="SET NULL"))


class HistoryImport(Base):
    """One CSV file of history the exchange no longer serves, imported for one connector."""

    __tablename__ = "history_imports"

    id: Mapped[int] = mapped_column(primary_key=True)
    connector_id: Mapped[int] = mapped_column(
        ForeignKey("connectors.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(20))  # fills|transfers
    filename: Mapped[str] = mapped_column(String(200))
    sha256: Mapped[str] = mapped_column(String(64))
    rows: Mapped[int] = mapped_column(Integer)
    new_rows: Mapped[int] = mapped_column(Integer)
    first_timestamp: Mapped[int | None] = mapped_column(BigInteger)
    last_timestamp: Mapped[int | None] = mapped_column(BigInteger)
    actor: Mapped[str] = mapped_column(String(NAME_MAX))
    imported_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class SyncCursor(Base):
    """Where incremental fetching resumes; advanced only after rows are committed."""

    __tablename__ = "sync_cursors"

    connector_id: Mapped[int] = mapped_column(
        ForeignKey("connectors.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(100), primary_key=True)  # e.g. "trades:BTC/USDT"
    value: Mapped[str] = mapped_column(String(200))


def _default_source(context: DefaultExecutionContext) -> str:
    """A price row written without a source is the exchange's own public API's (``lib.prices.price_source``)."""
    return str(context.get_current_parameters()["exchange_id"])


class Ticker(Base):
    """Last price per (price source, symbol), for valuing holdings now.

    ``source`` (``lib.prices.price_source``) is where the price was read: the exchange's public
    API, an API URL override's host, or its sandbox. Each connector is valued from its own.
    """

    __tablename__ = "tickers"

    exchange_id: Mapped[str] = mapped_column(String(EXCHANGE_ID_MAX), primary_key=True)
    source: Mapped[str] = mapped_column(String(SOURCE_MAX), primary_key=True, default=_default_source)
    symbol: Mapped[str] = mapped_column(String(50), primary_key=True)
    last: Mapped[Decimal | None] = mapped_column(Amount())
    bid: Mapped[Decimal | None] = mapped_column(Amount())
    ask: Mapped[Decimal | None] = mapped_column(Amount())
    timestamp: Mapped[int | None] = mapped_column(BigInteger)
    fetched_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class Candle(Base):
    """OHLCV candles per price source (as ``Ticker``) for valuing past fills; fetched once, kept."""

    __tablename__ = "candles"

    exchange_id: Mapped[str] = mapped_column(String(EXCHANGE_ID_MAX), primary_key=True)
    source: Mapped[str] = mapped_column(String(SOURCE_MAX), primary_key=True, default=_default_source)
    symbol: Mapped[str] = mapped_column(String(50), primary_key=True)
    timeframe: Mapped[str] = mapped_column(String(5), primary_key=True)
    timestamp: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    open: Mapped[Decimal] = mapped_column(Amount())
    high: Mapped[Decimal] = mapped_column(Amount())
    low: Mapped[Decimal] = mapped_column(Amount())
    close: Mapped[Decimal] = mapped_column(Amount())
    volume: Mapped[Decimal | None] = mapped_column(Amount())


class Statement(Base):
    """A client statement for one calendar month, kept as generated; a later revision replaces it."""

    __tablename__ = "statements"
    __table_args__ = (UniqueConstraint("client_id", "period"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"), index=True)
    period: Mapped[str] = mapped_column(String(7))  # YYYY-MM
    revision: Mapped[int] = mapped_column(Integer, default=1)
    #: the stored data the statement was made from (``lib.statements.scope_version``)
    data_version: Mapped[str] = mapped_column(String(200))
    generated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    html: Mapped[str] = mapped_column(Text)
    pdf: Mapped[bytes] = mapped_column(LargeBinary)


class DatabaseState(Base):
    """This database's identity and write version: what every cache derived from it is keyed by.

    One row (id 1), created by migration 0009 with a random ``identity``, so a database recreated
    at the same path or URL is another database to every cache. ``version`` counts the commits
    that wrote data the pages derive from and ``token`` is a random value drawn at each of them
    (``lib.db`` bumps both in the writing transaction): an older copy restored and written to
    reaches an old ``version`` again, never with the ``token`` a cache saw. ``trades_epoch`` is
    drawn anew only by a write that may change or remove fills already stored (an update or delete
    of trades, a deleted connector or client): while it stands, fills have only been added.
    ``snapshots_epoch`` likewise for balance snapshots (an update or delete of them, as thinning
    does, or a deleted connector or client).
    """

    __tablename__ = "database_state"
    __table_args__ = (CheckConstraint("id = 1", name="ck_database_state_one_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    identity: Mapped[str] = mapped_column(String(36))
    version: Mapped[int] = mapped_column(BigInteger)
    token: Mapped[str] = mapped_column(String(32))
    trades_epoch: Mapped[str] = mapped_column(String(32))
    snapshots_epoch: Mapped[str] = mapped_column(String(32))


class DatabaseVersion(Base):
    """Each write version's token, as the bump wrote it (the last ``lib.db.VERSIONS_KEPT``).

    A cache that reflects version v with token t may build on the database's current state only
    if the database went through (v, t): this row says so. A restored older copy has no row for
    a version it never reached, or another token there once it is written to.
    """

    __tablename__ = "database_versions"

    version: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    token: Mapped[str] = mapped_column(String(32))

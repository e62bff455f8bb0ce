"""Page speed with 1,000,000 fills and 200 connectors: cold and warm runs, printed as JSON.

How it measures: synthetic rows go straight into a fresh database (sqlite3 executemany, or
COPY on PostgreSQL); then each portfolio page runs in Streamlit's AppTest as an admin
looking at every client (the largest scope). "cold" is the first ``at.run()`` after
``st.cache_data.clear()``; "warm" is the median of three further reruns of the same
session (what a user gets on each interaction). Times are server-side script times,
wall clock, in milliseconds; the browser's rendering is not included. The P&L page's
cold time is also split into its loader steps (query, prices + engine).

    .venv/bin/python bench/bench_pages.py [--fills 1000000] [--connectors 200] [--database-url URL]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SYMBOLS = [("BTC", "USDT", 60000.0), ("ETH", "USDT", 3000.0), ("SOL", "USDT", 150.0), ("BNB", "USDT", 500.0),
           ("XRP", "USDT", 0.6), ("ADA", "USDT", 0.45), ("ETH", "BTC", 0.05), ("DOGE", "USDT", 0.15),
           ("LINK", "USDT", 15.0), ("AVAX", "USDC", 35.0)]
DAY_MS = 86_400_000


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fills", type=int, default=1_000_000)
    parser.add_argument("--connectors", type=int, default=200)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--database-url", help="default: a SQLite file in a temporary folder")
    return parser.parse_args()


def _fills(count: int, connectors: list[int], start_ms: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Fills that mostly buy then sell back, on one year of timestamps, fees in the quote."""
    pick = rng.integers(0, len(SYMBOLS), count)
    base_price = np.array([s[2] for s in SYMBOLS])[pick]
    ts = np.sort(rng.integers(start_ms, start_ms + 365 * DAY_MS, count))
    drift = 1 + 0.3 * np.sin((ts - start_ms) / (365 * DAY_MS) * 6.28)
    price = base_price * drift * rng.uniform(0.99, 1.01, count)
    amount = rng.uniform(0.01, 2.0, count) * (1000.0 / base_price)
    side = np.where(rng.random(count) < 0.52, "buy", "sell")
    cost = amount * price
    return {"connector": rng.choice(connectors, count), "ts": ts, "pick": pick, "side": side, "amount": amount,
            "price": price, "cost": cost, "fee": cost * 0.001}


def _seed(url: str, fills: int, connector_count: int, client_count: int) -> int:
    """Insert everything; returns the admin user's id."""
    from sqlalchemy import insert

    from lib.db import get_engine, session_scope
    from lib.models import BalanceSnapshot, Candle, Client, Connector, Ticker, User, utcnow
    from lib.vault import load_vault

    rng = np.random.default_rng(7)
    vault = load_vault()
    now = utcnow()
    start_ms = int((now - timedelta(days=366)).timestamp() * 1000)
    with session_scope(url) as session:
        clients = [Client(name=f"Client {n:02d}") for n in range(client_count)]
        session.add_all(clients)
        session.flush()
        rows = [{"client_id": clients[n % client_count].id, "exchange_id": ("binance", "okx")[n % 2],
                 "label": f"acct-{n}", "credentials_ciphertext": vault.encrypt({"apiKey": os.urandom(8).hex(),
                                                                               "secret": os.urandom(16).hex()}),
                 "key_hint": "0000", "status": "ok", "last_success_at": now, "last_attempt_at": now}
                for n in range(connector_count)]
        session.execute(insert(Connector), rows)
        admin = User(username="bench-admin", role="admin", password_hash=None)
        session.add(admin)
        session.flush()
        admin_id = admin.id
        connector_ids = [c for (c,) in session.execute(Connector.__table__.select().with_only_columns(
            Connector.__table__.c.id))]
        candles, tickers = [], []
        for exchange in ("binance", "okx"):
            for base, quote, level in SYMBOLS:
                tickers.append({"exchange_id": exchange, "symbol": f"{base}/{quote}", "last": level, "bid": level,
                                "ask": level, "timestamp": int(now.timestamp() * 1000), "fetched_at": now})
                for day in range(367):
                    t = start_ms + day * DAY_MS
                    close = level * (1 + 0.3 * np.sin(day / 365 * 6.28))
                    candles.append({"exchange_id": exchange, "symbol": f"{base}/{quote}", "timeframe": "1d",
                                    "timestamp": t, "open": close, "high": close, "low": close, "close": close,
                                    "volume": 1.0})
        session.execute(insert(Ticker), tickers)
        session.execute(insert(Candle), candles)
        snapshots = []
        for connector_id in connector_ids:
            for day in range(31):
                taken = now - timedelta(days=day, minutes=connector_id % 60)
                for asset, total in (("BTC", 0.5 + day / 100), ("ETH", 3.0), ("USDT", 10000.0 - day), ("SOL", 20.0)):
                    snapshots.append({"connector_id": connector_id, "taken_at": taken, "asset": asset, "free": total,
                                      "used": 0.0, "total": total})
        session.execute(insert(BalanceSnapshot), snapshots)
    data = _fills(fills, connector_ids, start_ms, rng)
    bases = np.array([s[0] for s in SYMBOLS])[data["pick"]]
    quotes = np.array([s[1] for s in SYMBOLS])[data["pick"]]
    symbols = np.char.add(np.char.add(bases, "/"), quotes)
    engine = get_engine(url)
    columns = ("connector_id", "trade_id", "order_id", "timestamp", "symbol", "base", "quote", "side",
               "taker_or_maker", "amount", "price", "cost", "fee_cost", "fee_currency")
    rows = zip(data["connector"].tolist(), map(str, range(fills)), [None] * fills, data["ts"].tolist(),
               symbols.tolist(), bases.tolist(), quotes.tolist(), data["side"].tolist(), ["taker"] * fills,
               data["amount"].tolist(), data["price"].tolist(), data["cost"].tolist(), data["fee"].tolist(),
               quotes.tolist(), strict=True)
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        if engine.dialect.name == "sqlite":
            marks = ",".join("?" * len(columns))
            cursor.executemany(f"INSERT INTO trades ({','.join(columns)}) VALUES ({marks})", rows)
        else:
            buffer = io.StringIO()
            for row in rows:
                buffer.write("\t".join(r"\N" if v is None else str(v) for v in row) + "\n")
            with cursor.copy(f"COPY trades ({','.join(columns)}) FROM STDIN") as copy:
                copy.write(buffer.getvalue())
        raw.commit()
        if engine.dialect.name != "sqlite":
            cursor.execute("ANALYZE")
            raw.commit()
    finally:
        raw.close()
    return admin_id


def _run(name: str, admin_id: int) -> tuple[float, list[str]]:
    """One fresh session's first run of a page (ms) and any error it showed."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "pages" / "portfolio" / f"{name}.py"), default_timeout=600)
    at.session_state["auth_user_id"] = admin_id
    began = time.perf_counter()
    at.run()
    elapsed = (time.perf_counter() - began) * 1000
    return elapsed, [e.value for e in at.exception] + [e.value for e in at.error]


def _time_page(name: str, admin_id: int) -> dict[str, object]:
    """first (nothing cached anywhere, P&L only differs), cold (st.cache_data cleared), warm."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    st.cache_data.clear()
    first, problems = _run(name, admin_id)
    st.cache_data.clear()
    cold, more = _run(name, admin_id)
    at = AppTest.from_file(str(ROOT / "pages" / "portfolio" / f"{name}.py"), default_timeout=600)
    at.session_state["auth_user_id"] = admin_id
    at.run()
    warm = []
    for _ in range(3):
        began = time.perf_counter()
        at.run()
        warm.append((time.perf_counter() - began) * 1000)
    return {"first_ms": round(first), "cold_ms": round(cold), "warm_ms": round(statistics.median(warm)),
            "problems": problems + more}


def _add_fill(trade_id: str, timestamp: int) -> None:
    from sqlalchemy import insert

    from lib.db import session_scope
    from lib.models import Connector, Trade

    with session_scope() as session:
        connector_id = session.scalar(Connector.__table__.select().with_only_columns(Connector.id).limit(1))
        session.execute(insert(Trade), [{"connector_id": connector_id, "trade_id": trade_id, "timestamp": timestamp,
                                         "symbol": "BTC/USDT", "base": "BTC", "quote": "USDT", "side": "buy",
                                         "amount": 0.001, "price": 60000.0, "cost": 60.0}])


def _rerun_ms(at: object) -> float:
    began = time.perf_counter()
    at.run()  # type: ignore[attr-defined]
    return (time.perf_counter() - began) * 1000


def _after_new_fill(admin_id: int) -> dict[str, int]:
    """The P&L page right after a sync added one fill (and cleared the cache), and lib.reports' P&L
    alone (``pnl_report`` + ``summarize``, what the page's P&L loader computes): for a fill later than
    everything (a sync's: continues the kept engine state) and for a back-dated one (full recompute);
    then, as a running deployment has it, the page after a new fill once the worker made the landing
    figures ahead (``lib.figures_ahead.make``, timed too: what the sync's worker spends on it).

    The page reruns in the user's open session, as after a sync: a new AppTest would add its own
    set-up (~150 ms, most of it the component discovery a server does once when it starts)."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from lib import figures_ahead, reports
    from lib.access import Role, Viewer

    viewer = Viewer("bench-admin", Role.ADMIN)
    at = AppTest.from_file(str(ROOT / "pages" / "portfolio" / "pnl.py"), default_timeout=600)
    at.session_state["auth_user_id"] = admin_id
    at.run()  # as the P&L page left it
    figures = {}
    for name, timestamp in (("new", int(time.time() * 1000)), ("backdated", 1)):
        _add_fill(f"bench-{name}-page", timestamp)
        st.cache_data.clear()
        figures[f"pnl_page_after_{name}_fill_ms"] = round(_rerun_ms(at))
        _add_fill(f"bench-{name}-report", timestamp + 1)
        began = time.perf_counter()
        reports.summarize(reports.pnl_report(None, viewer))
        figures[f"pnl_report_after_{name}_fill_ms"] = round((time.perf_counter() - began) * 1000)
    # as a running deployment has it: the sync's worker made the figures after the previous pass (its
    # in-memory states, the Clients table's included, are in step) and makes them again after the new fill
    figures_ahead.make()
    _add_fill("bench-ahead", int(time.time() * 1000))
    began = time.perf_counter()
    figures_ahead.make()
    figures["worker_made_ahead_after_new_fill_ms"] = round((time.perf_counter() - began) * 1000)
    st.cache_data.clear()
    figures["pnl_page_after_new_fill_made_ahead_ms"] = round(_rerun_ms(at))
    return figures


def _pnl_steps(admin_id: int) -> dict[str, int]:
    """The P&L loader's cold work, step by step (same calls as lib.reports.pnl_report)."""
    from lib import pnl, prices, queries, reports
    from lib.access import Role, Viewer
    from lib.db import session_scope

    viewer = Viewer("bench-admin", Role.ADMIN)
    steps = {}
    began = time.perf_counter()
    with session_scope() as session:
        fills = queries.pnl_fills(session, viewer)
        steps["read_fills_ms"] = round((time.perf_counter() - began) * 1000)
        candles = queries.candles(session, viewer)
    began = time.perf_counter()
    priced = prices.add_fill_usd(fills, candles, usd_like=reports.usd_like())
    steps["price_fills_ms"] = round((time.perf_counter() - began) * 1000)
    began = time.perf_counter()
    marks = prices.marks_from_tickers({f"{b}/{q}": p for b, q, p in SYMBOLS}, set(fills["base"]))
    pnl.compute_pnl(priced, None, None, marks, usd_like=reports.usd_like())
    steps["engine_ms"] = round((time.perf_counter() - began) * 1000)
    began = time.perf_counter()
    reports.pnl_report(None, viewer)
    steps["pnl_report_total_ms"] = round((time.perf_counter() - began) * 1000)
    return steps


def _statement_ms() -> dict[str, object]:
    """One client's statement for the last closed month: figures (lib.statements.gather), then the PDF."""
    from lib import statements
    from lib.access import SYSTEM
    from lib.clients import list_clients
    from lib.db import session_scope
    from lib.statement_render import to_pdf

    with session_scope() as session:
        client_id = list_clients(session, SYSTEM)[0].id
    start, end = statements.month_window(statements.month_of(datetime.now(UTC).replace(day=1) - timedelta(days=1)))
    began = time.perf_counter()
    data = statements.gather(SYSTEM, client_id, start, end)
    gathered = time.perf_counter()
    to_pdf(data)
    return {"month": statements.month_of(start), "fills": data.fills,
            "gather_ms": round((gathered - began) * 1000), "pdf_ms": round((time.perf_counter() - gathered) * 1000)}


def migrated(prefix: str, database_url: str | None) -> str:
    """A fresh data folder with generated keys, the database (a SQLite file there unless given)
    migrated, as this process's settings; returns its URL."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    url = database_url or f"sqlite:///{folder / 'bench.db'}"
    from cryptography.fernet import Fernet

    os.environ.update({"DATABASE_URL": url, "DATA_DIR": str(folder), "ENCRYPTION_KEYS": Fernet.generate_key().decode(),
                       "DOTENV_PATH": str(folder / "none.env")})
    from lib.db import migrate

    migrate(url)
    return url


def main() -> None:
    args = _args()
    url = migrated("bench-pages-", args.database_url)
    began = time.perf_counter()
    admin_id = _seed(url, args.fills, args.connectors, args.clients)
    seeded_s = time.perf_counter() - began
    import plotly.express  # noqa: F401 - imported once per server process, not per page load

    from lib.ui import charts, loaders, server  # noqa: F401

    server.freeze_startup_objects()  # what serve.py's lifespan does at start (AppTest runs no lifespan)

    names = ("pnl", "trades", "overview", "balances", "orders", "activity", "all_clients", "reconciliation")
    pages = {name: _time_page(name, admin_id) for name in names}
    result = {
        "database": url.split(":", 1)[0], "cpu_count": os.cpu_count(),
        "fills": args.fills, "connectors": args.connectors, "clients": args.clients,
        "seed_seconds": round(seeded_s, 1),
        "method": "AppTest at.run() wall time (ms) as an admin over all clients. first = nothing cached yet "
                  "(P&L: builds the fill store and the summary file); cold = new session after "
                  "st.cache_data.clear() (server restart / cache clear, same data); warm = median of 3 reruns "
                  "of one session; pnl_after_new_fill = one fill added then a cleared cache, the P&L page rerun in its "
                  "open session: *_new_fill a fill later "
                  "than all (continues the kept P&L state), *_backdated_fill one dated 1970 (full recompute); "
                  "pnl_page_* the whole page, pnl_report_* lib.reports' P&L alone; *_made_ahead: after the worker's "
                  "figures_ahead.make() (timed as worker_made_ahead_after_new_fill_ms), as a running deployment has "
                  "it.",
        "targets": {"pnl_warm_ms": 300, "pnl_cold_ms": 3000},
        "pages": pages,
        "pnl_after_new_fill": _after_new_fill(admin_id),
        "pnl_cold_steps": _pnl_steps(admin_id),
        "statement": _statement_ms(),
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

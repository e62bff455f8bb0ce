"""Page speed as a user sees it: time to a settled page in headless Chromium against a real server.

Seeds the same synthetic firm as bench/bench_pages.py (1,000,000 fills, 200 connectors, 20
clients by default), starts the dashboard as ``make run`` does (serve.py, worker off so
nothing else competes), logs in as an admin and opens every portfolio page from the sidebar.

- ``first``: the page's first visit after the server started (nothing in Streamlit's caches;
  files beside the database, such as the fill store and the P&L summaries, may already
  exist from an earlier page of this run: that is what a user finds too);
- ``warm``: the median of three more visits, switching away and back each time.

A visit is timed from the click on the page's link to a settled page: Streamlit's run over
(``data-test-script-state=notRunning``, status widget hidden), no placeholder skeleton left,
every visible plotly chart's ``.main-svg`` attached and every visible data grid's canvas painted
through its first row (a pixel there drawn: the grid paints its cells on a canvas; the
screen-reader table beside it is rebuilt 200 ms after the grid last changed, so it is not what
a user sees).
The page measures it itself (VISIT_JS: performance.now() at the click and when a check after
each DOM mutation and each frame first finds all of that, once the server's message that the
run finished has come), so no round trip between this process and the browser is in the
figure. ``--breakdown`` adds, for each page's median warm visit, the websocket messages that
came in (count, bytes, when the first and the last arrived: the server's run and the transfer)
and the renderer's main-thread time by kind (CDP Performance metrics). Prints one JSON object
with the machine's core count and the server's resident memory after the first and the warm visits.

    .venv/bin/python bench/bench_browser.py [--fills 1000000] [--connectors 200] [--clients 20]
        [--database-url URL] [--pages overview,balances,...] [--after-worker] [--breakdown]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

import bench_pages  # noqa: E402 - after the path is set

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
#: sidebar title -> what the benchmark calls it (bench_pages' names)
PAGES = {"Overview": "overview", "Balances": "balances", "Trades": "trades", "Orders & positions": "orders",
         "P&L": "pnl", "Asset": "asset", "Clients": "all_clients", "Activity": "activity",
         "Reconciliation": "reconciliation", "Statements": "statements", "Sync": "sync"}
SETTLED = "[data-testid='stApp'][data-test-script-state='notRunning']"


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fills", type=int, default=1_000_000)
    parser.add_argument("--connectors", type=int, default=200)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--database-url", help="default: a SQLite file in a temporary folder")
    parser.add_argument("--pages", default=",".join(PAGES.values()), help="comma-separated page names")
    parser.add_argument("--after-worker", action="store_true",
                        help="before the server starts, do what a running deployment has done after its last "
                             "sync: the fill store refreshed (lib.sync) and the landing view's figures made "
                             "(lib.figures_ahead)")
    parser.add_argument("--breakdown", action="store_true",
                        help="also split each page's median warm visit: websocket messages in (count, bytes, "
                             "when the first and last came) and the renderer's main-thread time (CDP metrics)")
    return parser.parse_args()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _start_server(port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "RUN_WORKER_IN_APP": "false", "FORWARDED_ALLOW_IPS": ""}
    log = open(Path(os.environ["DATA_DIR"]) / "streamlit.log", "wb")  # noqa: SIM115 - the server's lifetime
    server = subprocess.Popen(  # noqa: S603 - fixed argv
        [sys.executable, "-m", "streamlit", "run", "serve.py", "--server.port", str(port), "--server.address",
         "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false",
         "--server.fileWatcherType", "none"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2):
                return server
        except OSError:
            time.sleep(0.3)
    os.killpg(server.pid, signal.SIGKILL)
    raise SystemExit("the dashboard did not start within 120 s")


#: Runs in the page: clicks the given link and resolves, once the page has settled, with the
#: milliseconds between the click and that moment by the page's own clock (performance.now()),
#: and the websocket messages seen since the click. Settled: the server's message that the run
#: finished has come (WS_LOG_JS notes it; the script-state attribute alone can miss a short run,
#: as React may draw "running" and "notRunning" in one go), the script state is notRunning, the
#: status widget is hidden, and in the main area no element is still a placeholder skeleton, every
#: visible plotly chart has its .main-svg and every visible data grid's canvas is painted through
#: its first row (GRID_PAINTED_JS; the grid's screen-reader cells come 200 ms later by design). Checked
#: after each DOM mutation and each frame, so the figure is the page's time, not that of round trips
#: between this process and the browser. A script that fails to compile, or a page not settled
#: within 600 s, rejects (the benchmark stops with that message rather than waiting for ever).
#: True once a data grid (Streamlit's glide grid) has painted its canvas through the first body
#: row: the pixel 4 px in, 52 px down (header ~35 px, rows ~35 px) is no longer the blank canvas's
#: transparent one. Glide draws header, background and visible cells in one pass.
GRID_PAINTED_JS = """(grid) => {
  const canvas = grid.querySelector("canvas[data-testid='data-grid-canvas']");
  if (!canvas || canvas.width === 0 || canvas.height === 0) return false;
  const ratio = window.devicePixelRatio || 1;
  const y = Math.min(canvas.height - 1, Math.round(52 * ratio));
  return canvas.getContext("2d").getImageData(Math.round(4 * ratio), y, 1, 1).data[3] > 0;
}"""
VISIT_JS = """(link) => new Promise((resolve, reject) => {
  const painted = """ + GRID_PAINTED_JS + """;
  const app = document.querySelector("[data-testid='stApp']");
  const shown = (el) => el.getClientRects().length > 0 && getComputedStyle(el).visibility !== "hidden";
  const log = window.__wsLog;
  const from = log.length;
  let done = false;
  const settled = () => {
    const ways = log.slice(from).map(([, , way]) => way);
    if (ways.includes("compile error")) throw new Error("the page's script did not compile");
    if (!ways.includes("finished")) return false;
    if (app.getAttribute("data-test-script-state") !== "notRunning") return false;
    const status = document.querySelector("[data-testid='stStatusWidget']");
    if (status && shown(status)) return false;
    const main = document.querySelector("[data-testid='stMain']");
    for (const skeleton of main.querySelectorAll("[data-testid='stSkeleton']"))
      if (shown(skeleton)) return false;
    for (const chart of main.querySelectorAll(".js-plotly-plot"))
      if (shown(chart) && !chart.querySelector(".main-svg")) return false;
    for (const grid of main.querySelectorAll("[data-testid='stDataFrame']"))
      if (shown(grid) && !painted(grid)) return false;
    return true;
  };
  const stop = (error) => { done = true; observer.disconnect(); reject(error); };
  const check = () => {
    if (done) return;
    try { if (!settled()) return; } catch (error) { stop(error); return; }
    done = true;
    const ms = performance.now() - began;
    observer.disconnect();
    resolve({ms, messages: log.slice(from).map(([t, bytes, way]) => [t - began, bytes, way])});
  };
  const observer = new MutationObserver(check);
  observer.observe(document.body, {subtree: true, childList: true, attributes: true});
  const frame = () => { if (!done) { check(); requestAnimationFrame(frame); } };
  const began = performance.now();
  setTimeout(() => { if (!done) stop(new Error("the page did not settle within 600 s")); }, 600000);
  link.click();
  requestAnimationFrame(frame);
})"""
#: Added to the page before Streamlit's code: notes when each websocket message arrives or leaves
#: and its size. A message whose top-level fields hold script_finished (ForwardMsg field 6) ends a
#: run: FINISHED_SUCCESSFULLY (0) is noted as "finished", FINISHED_WITH_COMPILE_ERROR (1) as
#: "compile error" (2, a run stopped for a rerun, and 3, a fragment's run, end no page's run).
WS_LOG_JS = """window.__wsLog = [];
const varint = (bytes, at) => {
  let value = 0, shift = 0, byte;
  do { byte = bytes[at++]; value += (byte & 0x7f) * 2 ** shift; shift += 7; } while (byte & 0x80);
  return [value, at];
};
const runEnd = (bytes) => {
  for (let at = 0; at < bytes.length;) {
    let key, value;
    [key, at] = varint(bytes, at);
    const wire = key & 7;
    if (wire === 0) {
      [value, at] = varint(bytes, at);
      if (key >> 3 === 6) return value === 0 ? "finished" : value === 1 ? "compile error" : "in";
    }
    else if (wire === 2) { [value, at] = varint(bytes, at); at += value; }
    else if (wire === 1) at += 8;
    else if (wire === 5) at += 4;
    else return "in";
  }
  return "in";
};
const NativeWebSocket = window.WebSocket;
window.WebSocket = class extends NativeWebSocket {
  constructor(...args) {
    super(...args);
    this.addEventListener("message", (e) => {
      const bytes = e.data instanceof ArrayBuffer ? new Uint8Array(e.data) : null;
      window.__wsLog.push([performance.now(), bytes ? bytes.length : e.data.length, bytes ? runEnd(bytes) : "in"]);
    });
  }
  send(data) {
    window.__wsLog.push([performance.now(), data.byteLength ?? data.size ?? data.length, "out"]);
    super.send(data);
  }
};"""
#: CDP Performance.getMetrics counters (seconds of the renderer's main thread) a breakdown reports
BUSY = {"ScriptDuration": "script_ms", "LayoutDuration": "layout_ms", "RecalcStyleDuration": "style_ms",
        "TaskDuration": "main_thread_ms"}


def _settle(page: object) -> None:
    """Waits for a settled page after a login or the first load (not timed)."""
    page.wait_for_timeout(100)  # let the rerun request reach the server
    page.locator(SETTLED).wait_for(timeout=600_000)
    page.locator("[data-testid='stStatusWidget']").wait_for(state="hidden", timeout=600_000)
    main = page.locator("[data-testid='stMain']")
    for chart in main.locator(".js-plotly-plot:visible").all():
        chart.locator(".main-svg").first.wait_for(state="attached")
    for grid in main.locator("[data-testid='stDataFrame']:visible").all():
        grid.locator("canvas[data-testid='data-grid-canvas']").wait_for(state="attached")
        page.wait_for_function(GRID_PAINTED_JS, arg=grid.element_handle(), timeout=600_000)


def _busy(cdp: object) -> dict[str, float]:
    metrics = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
    return {key: metrics[name] * 1000 for name, key in BUSY.items()}


def _visit(page: object, title: str, cdp: object | None = None) -> tuple[float, dict[str, object]]:
    """Milliseconds from the click on ``title``'s link to a settled page, by the page's clock; with
    a CDP session also where the time went (websocket messages and main-thread work)."""
    before = _busy(cdp) if cdp else {}
    link = page.locator("[data-testid='stSidebarNav']").get_by_role("link", name=title, exact=True)
    seen = page.evaluate(VISIT_JS, link.element_handle())
    if cdp is None:
        return seen["ms"], {}
    after = _busy(cdp)
    came = [(t, size) for t, size, way in seen["messages"] if way != "out"]
    split: dict[str, object] = {"messages_in": len(came), "bytes_in": sum(size for _, size in came)}
    if came:
        split |= {"first_message_ms": round(came[0][0]), "last_message_ms": round(came[-1][0]),
                  "after_last_message_ms": round(seen["ms"] - came[-1][0])}
    return seen["ms"], split | {key: round(after[key] - before[key]) for key in BUSY.values()}


def _rss_mb(pid: int) -> float:
    """The process's resident memory now (Linux ``/proc``), MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def _as_after_worker() -> float:
    """The fill store refreshed as the sync leaves it and the landing view's figures made as the
    worker makes them while someone is logged in; returns the seconds it took."""
    from lib import figures_ahead, queries
    from lib.db import session_scope

    began = time.perf_counter()
    with session_scope() as session:
        queries.refresh_fill_store(session)
    figures_ahead.make()
    return round(time.perf_counter() - began, 1)


def main() -> None:
    args = _args()
    url = bench_pages.migrated("bench-browser-", args.database_url)
    began = time.perf_counter()
    admin_id = bench_pages._seed(url, args.fills, args.connectors, args.clients)  # noqa: SLF001 - shared seed
    seeded_s = time.perf_counter() - began
    from sqlalchemy import update

    from lib.db import session_scope
    from lib.models import User
    from lib.users import hash_password

    password = secrets.token_urlsafe(16)
    with session_scope(url) as session:
        session.execute(update(User).where(User.id == admin_id).values(password_hash=hash_password(password)))
        username = session.get(User, admin_id).username
    prepared_s = _as_after_worker() if args.after_worker else None
    from playwright.sync_api import sync_playwright

    port = _free_port()
    server = _start_server(port)
    wanted = {title: name for title, name in PAGES.items() if name in args.pages.split(",")}
    results: dict[str, dict[str, object]] = {}
    rss: dict[str, float] = {}
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.add_init_script(WS_LOG_JS)
            cdp = None
            if args.breakdown:
                cdp = page.context.new_cdp_session(page)
                cdp.send("Performance.enable")
            page.set_default_timeout(600_000)
            page.goto(f"http://127.0.0.1:{port}")
            _settle(page)
            page.get_by_label("Username", exact=True).fill(username)
            page.get_by_label("Password", exact=True).fill(password)
            page.get_by_role("button", name="Log in").click()
            _settle(page)
            for title, name in wanted.items():
                results[name] = {"first_ms": round(_visit(page, title)[0])}
            rss["after_first_visits"] = _rss_mb(server.pid)
            for title, name in wanted.items():
                warm = []
                for _ in range(3):
                    _visit(page, "Sync" if title != "Sync" else "Overview")
                    warm.append(_visit(page, title, cdp))
                warm.sort(key=lambda visit: visit[0])
                results[name] |= {"warm_ms": round(warm[1][0]), "warm_range_ms": [round(warm[0][0]), round(warm[2][0])]}
                if cdp:
                    results[name]["warm_split"] = warm[1][1]
            rss["after_warm_visits"] = _rss_mb(server.pid)
            browser.close()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    print(json.dumps({
        "benchmark": "bench_browser", "cpu_count": os.cpu_count(), "database": url.split(":", 1)[0],
        "fills": args.fills, "connectors": args.connectors, "clients": args.clients,
        "seed_seconds": round(seeded_s, 1), "after_worker_seconds": prepared_s,
        "method": "headless Chromium against serve.py (worker off), admin over all clients; click on the "
                  "sidebar link to a settled page (run over, charts and grids drawn), ms, timed inside the page "
                  "(performance.now()). first = first visit after the server started; warm = median of 3 later "
                  "visits, warm_range = their lowest and highest. after_worker_seconds: the time "
                  "the fill store refresh and the figures ahead took before the server started (null: not done). "
                  "server_rss_mb: the server process's resident memory after the first visits and after the "
                  "warm ones (six more visits per page).",
        "targets": {"warm_ms": 150, "first_ms": 1500},
        "pages": results,
        "server_rss_mb": rss,
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }, indent=2))


if __name__ == "__main__":
    main()

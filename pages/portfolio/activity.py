"""Activity: what the scope traded in a period (lib.activity): USD volume by day, market and
exchange, the buy/sell split, maker share, fees by currency and in USD, fill and order counts."""

from datetime import date

import pandas as pd
import streamlit as st

from lib import activity
from lib.access import Viewer
from lib.ui import charts, loaders, scope
from lib.ui import format as fmt
from lib.ui import period as period_controls
from lib.ui.auth import current_viewer
from lib.ui.shell import current_scope

USD = st.column_config.NumberColumn
SHARE = "%.1f%%"
MONEY_COLUMNS = {label: USD(label, format="dollar") for label in
                 ("Volume (USD)", "Bought (USD)", "Sold (USD)", "Fees (USD)")}


def period_report(viewer: Viewer, chosen: scope.Scope, start: date | None, end: date | None) -> activity.ActivityReport:
    """The scope's activity over the picked UTC days: the cards and the kept drawings read the same."""
    return loaders.activity_report(viewer, chosen.client_id, chosen.connector_id, start, end)


def market_rows(report: activity.ActivityReport) -> pd.DataFrame:
    """Per market and exchange, as the table shows it and its CSV holds it."""
    markets = report.by_market
    return pd.DataFrame({
        "Market": markets["symbol"].map(fmt.visible), "Exchange": markets["exchange_id"].map(fmt.visible),
        "Fills": markets["fills"], "Volume (USD)": markets["volume_usd"], "Bought (USD)": markets["buy_usd"],
        "Sold (USD)": markets["sell_usd"], "Fees (USD)": markets["fees_usd"],
    })


# Kept drawings (lib.ui.loaders.data_key), per scope, period and database version: a warm visit replays
# the recorded charts and tables instead of building the figures, their JSON and the tables again.
@st.cache_data(ttl=loaders.TTL, show_spinner=False, max_entries=32)
def draw_volume(viewer_scope: loaders.Scope, chosen: scope.Scope, start: date | None, end: date | None,
                key: tuple[str, str]) -> None:
    """The volume charts (by day, by exchange) and the table by market."""
    report = period_report(loaders.viewer_of(viewer_scope), chosen, start, end)
    left, right = st.columns(2)
    charts.draw(charts.volume_by_day(report.by_day), left)
    charts.draw(charts.volume_bars(report.by_exchange, "exchange_id", "Volume by exchange"), right)
    st.subheader("By market")
    links = [scope.link("trades", m, client=chosen.client, account=chosen.account, symbol=m)
             for m in report.by_market["symbol"]]
    st.dataframe(market_rows(report).assign(Market=links), hide_index=True, width="stretch",
                 column_config={"Market": scope.link_column("Market", "This market's fills on Trades."),
                                "Fills": USD("Fills", format="localized"), **MONEY_COLUMNS})


@st.cache_data(ttl=loaders.TTL, show_spinner=False, max_entries=32)
def draw_maker(viewer_scope: loaders.Scope, chosen: scope.Scope, start: date | None, end: date | None,
               key: tuple[str, str]) -> None:
    """The maker / taker split."""
    maker = period_report(loaders.viewer_of(viewer_scope), chosen, start, end).maker
    st.dataframe(pd.DataFrame({
        "Role": maker["role"], "Fills": maker["fills"], "Volume (USD)": maker["volume_usd"],
        "Share of fills": maker["fill_share"] * 100, "Share of volume": maker["volume_share"] * 100,
    }), hide_index=True, width="stretch", column_config={
        "Fills": USD("Fills", format="localized"), "Volume (USD)": USD("Volume (USD)", format="dollar"),
        "Share of fills": USD("Share of fills", format=SHARE),
        "Share of volume": USD("Share of volume", format=SHARE)})


@st.cache_data(ttl=loaders.TTL, show_spinner=False, max_entries=32)
def draw_fees(viewer_scope: loaders.Scope, chosen: scope.Scope, start: date | None, end: date | None,
              key: tuple[str, str]) -> None:
    """The fees by currency."""
    fees = period_report(loaders.viewer_of(viewer_scope), chosen, start, end).fees
    st.dataframe(pd.DataFrame({
        "Currency": scope.asset_links(fees["currency"], chosen), "Amount": fees["amount"].map(float),
        "Fills": fees["fills"], "USD": fees["fees_usd"],
    }), hide_index=True, width="stretch", column_config={
        "Currency": scope.link_column("Currency", "This asset in this scope."),
        "Amount": USD("Amount", format="%.8g"), "Fills": USD("Fills", format="localized"),
        "USD": USD("USD", format="dollar", help="Empty: no USD price for that currency.")})


viewer = current_viewer()
chosen = current_scope(viewer)

scope.title("Activity", chosen)

with loaders.plain_errors("accounts"):
    connectors = loaders.connectors(viewer, chosen.client_id)
if connectors.empty:
    st.info("No exchange accounts in this scope yet.")
    st.stop()

start, end = period_controls.period_picker(st.columns([3, 2])[0], "activity", default=activity.DEFAULT_WINDOW)
period = period_controls.period_text(start, end)

with loaders.plain_errors("trading activity"), st.spinner("Adding up the fills…"):
    report = period_report(viewer, chosen, start, end)

cards = st.columns(4)
fmt.money_card(cards[0], "Volume", float(report.volume_usd), help="Each fill's cost in its quote currency at the "
               "quote's USD price that day (USD-like quotes 1:1).")
fmt.money_card(cards[1], "Fees", float(report.fees_usd), help="Each fee at its currency's USD price that day.")
share = report.maker_share
cards[2].metric("Maker share (volume)", fmt.MISSING if share is None else f"{share:.1%}",
                help="Maker volume over the volume of fills whose exchange said maker or taker.")
if report.average_fill_usd is None:
    cards[3].metric("Average fill", fmt.MISSING, help="USD volume over the priced fills.")
else:
    fmt.money_card(cards[3], "Average fill", report.average_fill_usd, help="USD volume over the priced fills.")
counts = st.columns(4)
counts[0].metric("Fills", f"{report.fills:,}")
counts[1].metric("Orders", f"{report.orders:,}", help="Closed or canceled orders created in the period, plus open "
                 "orders placed in it.")
buy = report.sides.set_index("side")["volume_usd"]
fmt.money_card(counts[2], "Bought", float(buy.get("buy", 0.0)))
fmt.money_card(counts[3], "Sold", float(buy.get("sell", 0.0)))
st.caption(f"{period}, over {report.fills:,} fill(s). {activity.CENTS_NOTE}")

if report.unknown_role_fills:
    st.info(f"{report.unknown_role_fills:,} fill(s) do not say whether they were maker or taker: counted as "
            "\"unknown\" and left out of the maker share.", icon=":material/help:")
if report.unpriced_quotes:
    st.warning("No USD price for the quote currency of some fills, left out of the volume: "
               + ", ".join(map(fmt.literal, report.unpriced_quotes)), icon=":material/help:")
if report.unpriced_fees:
    st.warning("No USD price for some fees, left out of the USD fees: "
               + ", ".join(map(fmt.literal, report.unpriced_fees)), icon=":material/help:")
if report.fills == 0:
    st.info("No fills in this period.")
    st.stop()

viewer_scope, version = loaders.scope_of(viewer), loaders.data_key()
with loaders.plain_errors("trading activity"):
    draw_volume(viewer_scope, chosen, start, end, version)
st.download_button("Download CSV", fmt.csv_download(market_rows(report).assign(Period=period)),
                   file_name="activity_by_market.csv", mime="text/csv", icon=":material/download:",
                   help="Per market and exchange; an empty USD cell means unpriced.")

left, right = st.columns(2)
with left, loaders.plain_errors("trading activity"):
    st.subheader("Maker / taker")
    draw_maker(viewer_scope, chosen, start, end, version)
with right, loaders.plain_errors("trading activity"):
    st.subheader("Fees by currency")
    draw_fees(viewer_scope, chosen, start, end, version)
    st.download_button("Download fees CSV", fmt.csv_download(report.fees.assign(period=period)),
                       file_name="activity_fees.csv", mime="text/csv", icon=":material/download:",
                       help="Amounts exactly as the exchanges sent them.")

"""Plotly figure builders shared by the pages (data in, figure out; no data access).

Names and asset codes reach a figure only through ``format.chart_text``: plotly reads an HTML
subset in labels, ticks and hover text.

Each builder is kept by ``st.cache_data``, keyed by the content of its arguments: building a
figure (plotly validates every property) took most of a warm rerun (the Overview's charts about
0.2 s when it had three), while a kept one is a copy in milliseconds. New data is new content, so a
new figure.

Pages draw a figure with ``draw``, which the browser draws once. Streamlit's chart theme costs a
second full draw on every visit: once the chart is mounted, its frontend applies the theme again to
a fresh copy of the figure, and plotly.js redraws in full for a new ``layout.template`` object or
for data arrays it cannot compare (the base64 typed arrays plotly.py sends for numbers, or any
array when ``layout.datarevision`` is unset). So the figures carry the look of that theme as plain
layout (``_STYLE``), no template, their numbers as lists and a ``datarevision`` of their content,
and ``draw`` passes ``theme=None``. The app is pinned to the light theme (``.streamlit/config.toml``)
that this look matches.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from lib.ui.format import MISSING, blank, chart_text, exact, money

GAIN, LOSS = "#2e7d32", "#c62828"
#: Margins that already hold what a chart puts there: dollar ticks such as "−$228B" on the left,
#: date ticks below (two lines when the year is shown under the first), the title and a one-row
#: legend on top. Plotly's automargin still widens a margin a label needs, but each widening is
#: another full draw in the browser.
_MARGIN = {"l": 72, "r": 16, "t": 56, "b": 64}
#: one row above the plot, right-aligned, across from the title (a legend at the side pushes the margin)
_LEGEND = {"orientation": "h", "x": 1, "xanchor": "right", "y": 1.02, "yanchor": "bottom", "traceorder": "normal"}
#: the width of a label's character in pixels at the tick font, generous, for a category axis's margin
_CHAR_PX = 7
#: a figure per distinct data; a page draws a few, a handful of scopes and windows are in use
_kept = st.cache_data(show_spinner=False, max_entries=64)


_TEXT, _MUTED, _LINE, _FONT = "#262730", "#808495", "#e6eaf1", '"Source Sans", sans-serif'
_AXIS = {"gridcolor": _LINE, "zerolinecolor": _LINE, "tickcolor": _LINE, "tickfont": {"color": _MUTED, "size": 12},
         "title": {"font": {"color": _MUTED, "size": 14}}, "automargin": True}
#: What Streamlit's light chart theme sets for these charts, as plain layout (see the module's docstring)
_STYLE = {
    "font": {"family": _FONT, "size": 12, "color": _MUTED},
    "colorway": ["#0068c9", "#83c9ff", "#ff2b2b", "#ffabab", "#29b09d", "#7defa1", "#ff8700", "#ffd16a", "#6d3fc0",
                 "#d5dae5"],
    "paper_bgcolor": "#ffffff", "plot_bgcolor": "#ffffff",
    "xaxis": _AXIS | {"showgrid": False, "zeroline": False}, "yaxis": _AXIS | {"ticklabelposition": "outside"},
    "hoverlabel": {"bgcolor": "#ffffff", "bordercolor": "#dcd8d4", "font": {"family": _FONT, "size": 12,
                                                                            "color": _MUTED}},
}


def _frame(figure: go.Figure, title: str, margin: dict[str, int] | None = None) -> go.Figure:
    """The figure titled, styled and margined, its numbers as lists and its content as its ``datarevision``."""
    figure.update_layout(
        _STYLE, margin=(margin or _MARGIN) | {"pad": 8}, hovermode="x unified",
        title={"text": title, "x": 0, "xanchor": "left", "pad": {"l": 4},
               "font": {"family": _FONT, "size": 16, "color": _TEXT, "weight": 700}},
        legend=_LEGEND | {"font": {"size": 12, "color": _TEXT}, "valign": "top"})
    for trace in figure.data:
        for path in _numeric_arrays(trace.to_plotly_json()):
            values = trace[path].tolist()
            trace[path] = None  # plotly.py ignores a value equal to the one it holds, a list for an array too
            trace[path] = values
    figure.update_layout(datarevision=hashlib.blake2b(figure.to_json().encode(), digest_size=8).hexdigest())
    return figure


def _numeric_arrays(properties: dict[str, Any], path: str = "") -> list[str]:
    """The dotted paths of a trace's numeric numpy arrays (plotly.py sends them to the browser as typed arrays)."""
    found = []
    for name, value in properties.items():
        if isinstance(value, np.ndarray) and value.dtype.kind in "iuf":
            found.append(path + name)
        elif isinstance(value, dict):
            found += _numeric_arrays(value, f"{path}{name}.")
    return found


def draw(figure: go.Figure, into: DeltaGenerator | None = None) -> None:
    """Draws a figure made here across its container (``st`` unless ``into``), drawn once in the
    browser (see the module's docstring). A figure carries plotly.py's default template (Streamlit
    makes it its own "streamlit" one), and the copy ``st.cache_data`` gives back gets it again (a
    pickled figure is built anew): it is dropped here, where nothing rebuilds the figure after."""
    figure.layout.template = None
    (into or st).plotly_chart(figure, width="stretch", theme=None)


def _label_margin(labels: pd.Series) -> dict[str, int]:
    """The margins of a horizontal bar chart: the left one as wide as its longest name (up to 240 px)."""
    longest = int(labels.str.len().max()) if not labels.empty else 0
    return _MARGIN | {"l": min(240, 24 + _CHAR_PX * longest)}


@_kept
def allocation(rows: pd.DataFrame, path: list[str], title: str = "Allocation") -> go.Figure:
    """Sunburst of priced USD value along ``path`` (e.g. client > exchange > asset).

    Its colours are given, with an empty pattern per sector: without both, plotly.js writes each
    sector's colour into the trace as it draws it, so the copy Streamlit mounts next (see the
    module's docstring) differs and the costliest chart of the Overview is drawn a second time.
    """
    priced = rows[rows["usd"].notna() & (rows["usd"] > 0)]
    priced = priced.assign(**{column: priced[column].map(chart_text) for column in path})
    figure = px.sunburst(priced, path=path, values="usd")
    (sectors,) = figure.data
    figure.update_traces(hovertemplate="%{label}<br>$%{value:,.2f}<br>%{percentRoot:.1%}<extra></extra>",
                         marker={"colors": _colours_by_inner_ring(sectors.ids, sectors.parents, sectors.values),
                                 "pattern": {"shape": [""] * len(sectors.ids)}})
    return _frame(figure, title, margin={"l": 10, "r": 10, "t": 56, "b": 10}).update_layout(hovermode=None)


def _colours_by_inner_ring(ids: tuple[str, ...], parents: tuple[str, ...], values: tuple[float, ...]) -> list[str]:
    """Each sector in the colour of its sector on the innermost ring, the colorway given out in order
    of value as plotly does (it also widens the colorway past ten sectors; here the colours repeat)."""
    parent_of = dict(zip(ids, parents, strict=True))
    inner = sorted((sector for sector in ids if not parent_of[sector]), reverse=True,
                   key=dict(zip(ids, values, strict=True)).__getitem__)
    colourway = _STYLE["colorway"]
    colour_of = {sector: colourway[rank % len(colourway)] for rank, sector in enumerate(inner)}

    def innermost(sector: str) -> str:
        while parent_of[sector]:
            sector = parent_of[sector]
        return sector

    return [colour_of[innermost(sector)] for sector in ids]


@_kept
def equity(curve: pd.DataFrame, transfers: pd.DataFrame, snapshots: pd.DataFrame | None = None,
           disagreements: pd.DataFrame | None = None) -> go.Figure:
    """Total value rebuilt from the history (a line from the first event), the balance snapshots
    drawn over it, the snapshots the history does not explain marked, and the transfers."""
    ordered = curve.sort_values("time")
    figure = go.Figure(go.Scatter(x=ordered["time"], y=ordered["usd"], mode="lines", name="Rebuilt from history",
                                  hovertemplate="%{y:$,.2f}"))
    if snapshots is not None and not snapshots.empty:
        figure.add_trace(go.Scatter(x=snapshots["time"], y=snapshots["usd"], mode="markers", name="Balance snapshots",
                                    marker={"size": 6, "color": "#546e7a"}, hovertemplate="snapshot %{y:$,.2f}"))
    if disagreements is not None and not disagreements.empty:
        text = [f"history does not explain: {chart_text(assets)}" for assets in disagreements["assets"]]
        figure.add_trace(go.Scatter(x=disagreements["time"], y=disagreements["usd"], mode="markers",
                                    name="Snapshot ≠ history", text=text, hovertemplate="%{text}",
                                    marker={"symbol": "x", "size": 10, "color": LOSS}))
    inside = transfers[transfers["time"].between(*covered(ordered))] if not ordered.empty else transfers.iloc[:0]
    for kind, symbol, colour in (("deposit", "triangle-up", GAIN), ("withdrawal", "triangle-down", LOSS)):
        moves = inside[inside["type"] == kind]
        if moves.empty:
            continue
        text = [_transfer_text(kind, amount, currency, usd, account) for amount, currency, usd, account
                in zip(moves["amount"], moves["currency"], moves["usd"], moves["account"], strict=True)]
        figure.add_trace(go.Scatter(x=moves["time"], y=_value_at(ordered, moves["time"]), mode="markers",
                                    name=kind.capitalize() + "s", text=text, hovertemplate="%{text}",
                                    marker={"symbol": symbol, "size": 11, "color": colour}))
    _money_axis(figure, ordered["usd"])
    figure.update_yaxes(range=_readable_range(ordered["usd"]))
    return _frame(figure, "Equity (rebuilt from history)")


@_kept
def allocation_over_time(by_asset: pd.DataFrame, limit: int = 8) -> go.Figure:
    """Stacked value per asset over time: the largest ``limit`` assets (by latest value), the rest as "other"."""
    latest = by_asset[by_asset["time"] == by_asset["time"].max()].groupby("asset")["usd"].sum()
    top = set(latest.nlargest(limit).index)
    named = by_asset.assign(asset=by_asset["asset"].where(by_asset["asset"].isin(top), "other"))
    stacked = named.groupby(["time", "asset"], as_index=False)["usd"].sum()
    stacked["asset"] = stacked["asset"].map(chart_text)
    figure = px.area(stacked, x="time", y="usd", color="asset", labels={"usd": "", "time": "", "asset": ""})
    figure.update_traces(hovertemplate="%{fullData.name}: %{y:$,.2f}<extra></extra>")
    _money_axis(figure, stacked.groupby("time")["usd"].sum())
    return _frame(figure, "Allocation over time (rebuilt from history)")


def _transfer_text(kind: str, amount: float, currency: object, usd: float, account: object) -> str:
    """A transfer's hover: "Deposit 1.5 BTC ($97,500.00) · Alpha · binance / main", the amount with
    every digit it has, "unpriced" without a USD value, a dash without an account."""
    return (f"{kind.capitalize()} {chart_text(exact(amount))} {chart_text(currency)} ({chart_text(money(usd))}) · "
            f"{chart_text(MISSING if blank(account) else account)}")


def covered(curve: pd.DataFrame) -> tuple[pd.Timestamp, pd.Timestamp]:
    """(first, last) time of the equity curve: the period it speaks for."""
    return curve["time"].min(), curve["time"].max()


def _value_at(ordered: pd.DataFrame, times: pd.Series) -> list[float]:
    """The curve's value at each time inside it (the last point at or before), to sit markers on the line."""
    index = ordered["time"].searchsorted(times, side="right") - 1
    values = ordered["usd"].to_numpy(dtype=float)
    return [float(values[max(i, 0)]) for i in index]


#: The y-axis of a value chart spans at least this share of the value, so a nearly flat
#: line is not stretched over a few dollars (with ticks like "$5.4127765M").
MIN_SPAN_SHARE = 0.05


def _readable_range(values: pd.Series) -> list[float] | None:
    """A y range at least ``MIN_SPAN_SHARE`` of the value wide (None: let plotly choose)."""
    values = values.dropna().astype(float)
    if values.empty:
        return None
    low, high = float(values.min()), float(values.max())
    need = max(abs(low), abs(high)) * MIN_SPAN_SHARE or 1.0
    if high - low >= need:
        return None
    middle = (low + high) / 2
    low, high = middle - need / 2, middle + need / 2
    if values.min() >= 0 > low:  # an all-positive curve never shows below $0
        low, high = 0.0, high - low
    return [low, high]


def _money_axis(figure: go.Figure, values: pd.Series, axis: str = "y") -> None:
    """Dollar ticks: "$50k", "−$50k", "$4.3M" (d3 SI) from $1k to below $1B.

    Outside that band plotly's own format with a "$" prefix: SI would print cents as "m"
    (milli) and billions as "G".
    """
    largest = values.abs().max() if not values.empty else 0.0
    update = figure.update_xaxes if axis == "x" else figure.update_yaxes
    if 1e3 <= largest < 1e9:
        update(tickformat="$~s")
    else:
        update(tickprefix="$")


@_kept
def cumulative_realized(daily: pd.DataFrame) -> go.Figure:
    """Running sum of realized P&L by day."""
    running = daily["realized"].cumsum()
    figure = go.Figure(go.Scatter(x=daily["date"], y=running, mode="lines", name="Cumulative realized",
                                  line={"shape": "hv"}, hovertemplate="%{y:$,.2f}"))
    _money_axis(figure, running)
    return _frame(figure, "Cumulative realized P&L")


@_kept
def daily_pnl(daily: pd.DataFrame) -> go.Figure:
    """Realized P&L per day: gain days green, loss days red, as two single-colour traces.

    Not one trace with a colour per bar: a list of colour names is checked one by one by plotly
    (tens of milliseconds for a year of days), and a 0/1 array on a colour scale reaches plotly.js
    as a typed array it does not read as colours: every bar black, with a console trace per bar.
    """
    gain = daily["realized"] >= 0
    figure = go.Figure([
        go.Bar(x=daily.loc[rows, "date"], y=daily.loc[rows, "realized"], name=name, marker_color=colour,
               hovertemplate="%{y:$,.2f}", showlegend=False)
        for rows, name, colour in ((gain, "Gain", GAIN), (~gain, "Loss", LOSS))
    ])
    _money_axis(figure, daily["realized"])
    return _frame(figure, "Daily realized P&L").update_layout(barmode="relative")


@_kept
def volume_by_day(daily: pd.DataFrame) -> go.Figure:
    """Bought and sold USD volume per day, stacked (lib.activity ``by_day``)."""
    figure = go.Figure([
        go.Bar(x=daily["day"], y=daily["buy_usd"], name="Bought", marker_color=GAIN, hovertemplate="%{y:$,.2f}"),
        go.Bar(x=daily["day"], y=daily["sell_usd"], name="Sold", marker_color=LOSS, hovertemplate="%{y:$,.2f}"),
    ])
    _money_axis(figure, daily["volume_usd"].fillna(0.0))
    return _frame(figure, "Volume by day (USD)").update_layout(barmode="stack")


@_kept
def volume_bars(rows: pd.DataFrame, label: str, title: str) -> go.Figure:
    """Horizontal bars of USD volume per ``label`` (an exchange, a market), largest on top."""
    ordered = rows.dropna(subset=["volume_usd"]).sort_values("volume_usd")
    names = ordered[label].map(chart_text)
    figure = go.Figure(go.Bar(x=ordered["volume_usd"], y=names, orientation="h", hovertemplate="%{y}: %{x:$,.2f}"
                              "<extra></extra>"))
    _money_axis(figure, ordered["volume_usd"], axis="x")
    return _frame(figure, title, _label_margin(names)).update_layout(hovermode=None)

"""Plotly figure builders shared by the pages (data in, figure out; no data access)."""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

GAIN, LOSS = "#2e7d32", "#c62828"
_LAYOUT = {"margin": {"l": 10, "r": 10, "t": 40, "b": 10}, "hovermode": "x unified"}


def _frame(figure: go.Figure, title: str) -> go.Figure:
    figure.update_layout(title=title, **_LAYOUT)
    return figure


def allocation(rows: pd.DataFrame, path: list[str], title: str = "Allocation") -> go.Figure:
    """Sunburst of priced USD value along ``path`` (e.g. client > exchange > asset)."""
    priced = rows[rows["usd"].notna() & (rows["usd"] > 0)]
    figure = px.sunburst(priced, path=path, values="usd")
    figure.update_traces(hovertemplate="%{label}<br>$%{value:,.2f}<br>%{percentRoot:.1%}<extra></extra>")
    return _frame(figure, title).update_layout(hovermode=None)


def top_holdings(rows: pd.DataFrame, limit: int = 10) -> go.Figure:
    """Horizontal bars of the largest priced holdings by asset."""
    totals = rows.groupby("asset", as_index=False)["usd"].sum().nlargest(limit, "usd").iloc[::-1]
    figure = px.bar(totals, x="usd", y="asset", orientation="h", labels={"usd": "USD", "asset": ""})
    figure.update_traces(hovertemplate="%{y}: $%{x:,.2f}<extra></extra>")
    return _frame(figure, f"Top {limit} holdings").update_layout(hovermode=None)


def equity(curve: pd.DataFrame, transfers: pd.DataFrame) -> go.Figure:
    """Total value over time with deposits (up) and withdrawals (down) marked."""
    figure = go.Figure(go.Scatter(x=curve["time"], y=curve["usd"], mode="lines", name="Total value",
                                  hovertemplate="$%{y:,.2f}"))
    for kind, symbol, colour in (("deposit", "triangle-up", GAIN), ("withdrawal", "triangle-down", LOSS)):
        moves = transfers[transfers["type"] == kind]
        if moves.empty:
            continue
        level = _value_at(curve, moves["time"])
        text = [f"{kind} {amount:g} {currency}" for amount, currency in zip(moves["amount"], moves["currency"],
                                                                           strict=True)]
        figure.add_trace(go.Scatter(x=moves["time"], y=level, mode="markers", name=kind.capitalize() + "s",
                                    marker={"symbol": symbol, "size": 11, "color": colour}, text=text,
                                    hovertemplate="%{text}"))
    figure.update_yaxes(tickprefix="$")
    return _frame(figure, "Equity (from balance snapshots)")


def _value_at(curve: pd.DataFrame, times: pd.Series) -> list[float | None]:
    """The curve's value at each time (last point before it), to sit markers on the line."""
    if curve.empty:
        return [0.0] * len(times)
    ordered = curve.sort_values("time")
    index = ordered["time"].searchsorted(times, side="right") - 1
    values = ordered["usd"].to_numpy()
    return [float(values[i]) if i >= 0 else float(values[0]) for i in index]


def cumulative_realized(daily: pd.DataFrame) -> go.Figure:
    """Running sum of realized P&L by day."""
    figure = go.Figure(go.Scatter(x=daily["date"], y=daily["realized"].cumsum(), mode="lines",
                                  name="Cumulative realized", line={"shape": "hv"}, hovertemplate="$%{y:,.2f}"))
    figure.update_yaxes(tickprefix="$")
    return _frame(figure, "Cumulative realized P&L")


def daily_pnl(daily: pd.DataFrame) -> go.Figure:
    """Realized P&L per day, green for gains and red for losses."""
    colours = [GAIN if value >= 0 else LOSS for value in daily["realized"]]
    figure = go.Figure(go.Bar(x=daily["date"], y=daily["realized"], marker_color=colours, name="Realized",
                              hovertemplate="$%{y:,.2f}"))
    figure.update_yaxes(tickprefix="$")
    return _frame(figure, "Daily realized P&L")

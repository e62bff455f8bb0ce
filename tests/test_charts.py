"""Chart builders draw only what has a value: an unpriced asset is never a $0 bar."""

from __future__ import annotations

import json
import math

import pandas as pd

from lib.ui import charts


def test_the_allocation_leaves_out_unpriced_assets() -> None:
    rows = pd.DataFrame({"exchange_id": ["binance"] * 4, "asset": ["BTC", "ETH", "XYZ", "BTC"],
                         "usd": [100.0, 50.0, math.nan, 20.0]})
    (sectors,) = charts.allocation(rows, ["exchange_id", "asset"]).data
    drawn = dict(zip(sectors.ids, sectors.values, strict=True))
    assert drawn == {"binance/BTC": 120.0, "binance/ETH": 50.0, "binance": 170.0}  # no XYZ sector, not even at $0


def test_a_figure_is_kept_for_the_same_data_and_made_again_for_new_data(monkeypatch) -> None:  # noqa: ANN001
    import plotly.express as px
    import streamlit as st

    st.cache_data.clear()
    built: list[int] = []
    real = px.area
    monkeypatch.setattr(px, "area", lambda *args, **kwargs: built.append(1) or real(*args, **kwargs))
    by_asset = pd.DataFrame({"time": pd.to_datetime(["2024-01-01", "2024-01-02"], utc=True), "asset": ["BTC", "BTC"],
                             "usd": [100.0, 110.0]})
    first = charts.allocation_over_time(by_asset)
    again = charts.allocation_over_time(by_asset.copy())
    assert len(built) == 1 and again is not first  # a copy, never the shared one
    assert json.loads(again.to_json())["data"] == json.loads(first.to_json())["data"]  # what the browser gets
    moved = charts.allocation_over_time(by_asset.assign(usd=[100.0, 120.0]))
    assert len(built) == 2 and list(moved.data[0].y) == [100.0, 120.0]


def test_daily_bars_are_green_for_gains_and_red_for_losses_in_what_the_browser_gets() -> None:
    daily = pd.DataFrame({"date": pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-03"]),
                          "realized": [5.0, -2.0, 0.0]})
    figure = charts.daily_pnl(daily)
    sent = json.loads(figure.to_json())
    drawn = {}
    for trace, built in zip(sent["data"], figure.data, strict=True):
        colour = trace["marker"]["color"]
        assert isinstance(colour, str)  # plotly.js reads a typed array of numbers here as no colour: black bars
        for day, value in zip(map(str, built.x), built.y, strict=True):
            assert day not in drawn  # one bar per day
            drawn[day] = (value, colour)
    assert {day[:10]: bar for day, bar in drawn.items()} == {
        "2024-01-01": (5.0, charts.GAIN), "2024-01-02": (-2.0, charts.LOSS), "2024-01-03": (0.0, charts.GAIN)}
    assert sent["layout"]["barmode"] == "relative"  # a day's one bar sits on its date, not half-width beside it


def test_margins_hold_the_labels_so_the_browser_draws_a_chart_once() -> None:
    """Plotly widens a margin too narrow for a label by drawing the chart again: the margins a
    figure starts with hold dollar ticks, and a bar chart's left one its longest name."""
    daily = pd.DataFrame({"date": pd.to_datetime(["2024-01-01", "2024-01-02"]), "realized": [-2.5e11, 1e11]})
    figure = json.loads(charts.daily_pnl(daily).to_json())["layout"]
    assert figure["margin"]["l"] >= len("$−250B") * charts._CHAR_PX  # noqa: SLF001 - the estimate the margins use
    assert figure["legend"]["orientation"] == "h" and figure["legend"]["yanchor"] == "bottom"  # a row above, not a side
    rows = pd.DataFrame({"market": ["BTC/USDT", "A-VERY-LONG-TOKEN-NAME/USDT"], "volume_usd": [1.0, 2.0]})
    short = charts.volume_bars(rows.iloc[:1], "market", "Volume by market").layout.margin.l
    long = charts.volume_bars(rows, "market", "Volume by market").layout.margin.l
    assert long >= len("A-VERY-LONG-TOKEN-NAME/USDT") * charts._CHAR_PX > short  # noqa: SLF001
    wide = rows.assign(market=["BTC/USDT", "X" * 200])
    assert charts.volume_bars(wide, "market", "Volume by market").layout.margin.l == 240  # capped: the bars stay


def _draw_kept_charts() -> None:
    import pandas as pd

    from lib.ui import charts

    daily = pd.DataFrame({"date": pd.to_datetime(["2024-01-01", "2024-01-02"]), "realized": [5.0, -2.0]})
    rows = pd.DataFrame({"exchange_id": ["binance", "okx"], "asset": ["BTC", "ETH"], "usd": [10.0, 20.0]})
    charts.draw(charts.daily_pnl(daily))
    charts.draw(charts.allocation(rows, ["exchange_id", "asset"]))


def _typed_arrays(value: object) -> list[object]:
    if isinstance(value, dict):
        return [value] if "bdata" in value else [found for item in value.values() for found in _typed_arrays(item)]
    if isinstance(value, list):
        return [found for item in value for found in _typed_arrays(item)]
    return []


def test_a_drawn_chart_is_one_the_browser_need_not_draw_twice() -> None:
    """Once a chart is mounted, Streamlit's frontend hands plotly.js a fresh copy of the figure:
    plotly.js redraws in full unless the copy compares equal, so no template object, numbers as
    plain lists (it never finds typed arrays equal) and a datarevision; no Streamlit chart theme,
    which would put a new template in the copy. Checked on the kept copy a second run replays."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_function(_draw_kept_charts)
    for _ in range(2):  # the second run draws the copies st.cache_data gives back
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        drawn = at.get("plotly_chart")
        assert len(drawn) == 2
        for chart in drawn:
            spec = json.loads(chart.proto.spec)
            assert chart.proto.theme == ""
            assert "template" not in spec["layout"]
            assert spec["layout"]["datarevision"]
            assert not _typed_arrays(spec["data"])
    assert [json.loads(c.proto.spec)["data"][0]["y"] for c in drawn[:1]] == [[5.0]]  # the gain day's bar, as a list


def test_the_datarevision_follows_the_content() -> None:
    daily = pd.DataFrame({"date": pd.to_datetime(["2024-01-01", "2024-01-02"]), "realized": [5.0, -2.0]})
    same = charts.daily_pnl(daily).layout.datarevision
    assert charts.daily_pnl(daily.copy()).layout.datarevision == same
    assert charts.daily_pnl(daily.assign(realized=[5.0, -3.0])).layout.datarevision != same


def test_the_allocation_colours_each_sector_by_its_inner_ring_sector() -> None:
    """Given colours and an empty pattern per sector: plotly.js then writes no colour into the trace
    while drawing, which would make the copy Streamlit mounts next differ (a second draw)."""
    rows = pd.DataFrame({"client": ["A", "A", "B"], "exchange_id": ["binance", "okx", "okx"],
                         "asset": ["BTC", "ETH", "BTC"], "usd": [1.0, 5.0, 30.0]})
    (sectors,) = charts.allocation(rows, ["client", "exchange_id", "asset"]).data
    colour = dict(zip(sectors.ids, sectors.marker.colors, strict=True))
    first, second = charts._STYLE["colorway"][:2]  # noqa: SLF001 - the palette the charts share
    assert colour["B"] == colour["B/okx"] == colour["B/okx/BTC"] == first  # the larger client first, as plotly
    assert colour["A"] == colour["A/binance/BTC"] == colour["A/okx/ETH"] == second
    assert list(sectors.marker.pattern.shape) == [""] * len(sectors.ids)

"""Chart builders draw only what has a value: an unpriced asset is never a $0 bar."""

from __future__ import annotations

import math

import pandas as pd

from lib.ui import charts


def test_top_holdings_leave_out_unpriced_assets() -> None:
    rows = pd.DataFrame({"asset": ["BTC", "ETH", "XYZ", "BTC"], "usd": [100.0, 50.0, math.nan, 20.0],
                         "priced": [True, True, False, True]})
    bars = charts.top_holdings(rows).data[0]
    assert dict(zip(bars.y, bars.x, strict=True)) == {"ETH": 50.0, "BTC": 120.0}

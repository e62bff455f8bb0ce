"""Tables keep numbers as numbers (they sort by value: 9 before 10) and still show every stored
digit (lib.ui.format.table); the shared date range applies typed days and presets (lib.ui.period)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pandas as pd
import pyarrow as pa
from streamlit.testing.v1 import AppTest

from lib import reports
from lib.ui import format as fmt
from tests import table_cells


def _table_app() -> None:
    from decimal import Decimal

    import pandas as pd
    import streamlit as st

    from lib.ui import format as fmt

    frame = pd.DataFrame({"Asset": ["USDT", "BTC", "XYZ", "ETH"],
                          "Amount": [Decimal("10"), Decimal("9.5"), Decimal("123456.123456789012345678"), None],
                          "Fee": [0.25, 0.1, None, 3.0], "Fee asset": ["USDT", "BNB", None, "<b>x</b>"],
                          "USD": [10.0, 9.0, None, 100.0]})
    amounts = fmt.amount_columns(frame, ["Amount"], asset="Asset")
    shown = frame.assign(Amount=amounts["Amount"], Fee=fmt.floats(frame["Fee"]))
    st.dataframe(fmt.table(shown.drop(columns="Fee asset"), {"Amount": fmt.exact, "Fee": fmt.quantity},
                           units={"Fee": frame["Fee asset"]}),
                 placeholder=fmt.MISSING, hide_index=True, column_config={
                     **fmt.number_columns("Amount", "Fee"), "USD": fmt.number_column("USD", format="dollar")})


def test_numbers_stay_numbers_sort_by_value_and_show_every_digit() -> None:
    at = AppTest.from_function(_table_app)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    element = at.dataframe[0]
    schema = pa.ipc.open_stream(element.proto.arrow_data.data).schema
    assert pa.types.is_decimal(schema.field("Amount").type)  # a number column in the grid, not text
    assert pa.types.is_floating(schema.field("Fee").type) and pa.types.is_floating(schema.field("USD").type)
    numbers = table_cells.numbers(element)
    assert list(numbers.sort_values("Amount", na_position="last")["Asset"]) == ["BTC", "USDT", "XYZ", "ETH"]  # 9.5 < 10
    shown = table_cells.shown(element).set_index("Asset")
    assert list(shown["Amount"]) == ["10.00", "9.50000000", "123,456.123456789012345678", "—"]  # cash: cents
    assert list(shown["Fee"]) == ["0.25 USDT", "0.1 BNB", "—", "3 <b>x</b>"]  # a unit from data is plain text
    config = table_cells.config(element)
    assert config["Amount"]["type_config"].get("format") is None  # the Styler's exact text is what shows
    assert config["USD"]["type_config"]["format"] == "dollar"


def test_amounts_widen_to_a_floor_and_never_round() -> None:
    values = pd.Series(["1.5", 0.1, None, "0.123456789012345678"])
    widened = fmt.amounts(values, pd.Series([2, 8, 2, 2]))
    assert list(widened[[0, 1, 3]]) == [Decimal("1.50"), Decimal("0.10000000"), Decimal("0.123456789012345678")]
    assert widened[2] is None
    assert [fmt.exact(v) for v in widened[[0, 1, 3]]] == ["1.50", "0.10000000", "0.123456789012345678"]
    assert fmt.floats(pd.Series([None, "2.5", float("nan")])).isna().tolist() == [True, False, True]


def _range_app() -> None:
    import streamlit as st

    from lib.ui import period

    start, end = period.date_range(st, "probe", dates=tuple(st.session_state.get("link", ())))
    st.write(f"applied {start} {end}")


def applied(at: AppTest) -> str:
    return next(m.value for m in at.markdown if m.value.startswith("applied"))


def test_date_range_presets_fill_the_days_and_typed_days_apply() -> None:
    at = AppTest.from_function(_range_app)
    at.run()
    assert applied(at) == "applied None None"  # all history
    at.selectbox(key="probe_window").set_value("Last month").run()
    today = datetime.now(UTC).date()
    first, last = reports.window_days("Last month", today)
    assert applied(at) == f"applied {first} {last}"
    assert (at.text_input(key="probe_from").value, at.text_input(key="probe_to").value) == (
        first.isoformat(), last.isoformat())
    at.text_input(key="probe_from").input("2024/02/10").run()  # as Enter or Tab sends it
    assert at.selectbox(key="probe_window").value == period_custom()
    assert applied(at) == f"applied 2024-02-10 {last}"
    at.text_input(key="probe_to").input("20240201").run()  # before From: said, and nothing matches
    assert applied(at) == "applied 2024-02-10 2024-02-01" and "no day is in this period" in at.warning[0].value
    at.text_input(key="probe_to").input("2024-02-31").run()
    assert applied(at) == "applied 2024-02-10 None"
    assert "is not a day" in at.warning[0].value
    at.text_input(key="probe_to").input("").run()
    assert applied(at) == "applied 2024-02-10 None" and not at.warning


def test_date_range_starts_on_linked_days() -> None:
    at = AppTest.from_function(_range_app)
    at.session_state["link"] = (date(2024, 3, 1), date(2024, 3, 5))
    at.run()
    assert applied(at) == "applied 2024-03-01 2024-03-05"
    assert at.selectbox(key="probe_window").value == period_custom()


def period_custom() -> str:
    from lib.ui import period

    return period.CUSTOM

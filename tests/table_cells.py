"""What an st.dataframe shows, read from an AppTest element: for tests of tables whose numbers
stay numbers (lib.ui.format.table), where ``element.value`` holds the numbers, not their text."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
from streamlit import dataframe_util


def numbers(element: Any) -> pd.DataFrame:
    """The table's data as the browser receives it (numbers as numbers)."""
    return element.value


def shown(element: Any) -> pd.DataFrame:
    """Each cell as text: the Styler's text where ``fmt.table`` formatted the column (else the
    value as text), and st.dataframe's placeholder (or "None", its default) for a missing value.

    Columns formatted by a column_config ``format`` (``"dollar"``) are formatted in the browser;
    here they read as the plain number."""
    arrow = element.proto.arrow_data
    data = dataframe_util.convert_arrow_bytes_to_pandas_df(arrow.data)
    if arrow.HasField("styler") and arrow.styler.display_values:
        text = dataframe_util.convert_arrow_bytes_to_pandas_df(arrow.styler.display_values)
        text.index = data.index
    else:
        text = data.astype(str)
    placeholder = element.proto.placeholder if element.proto.HasField("placeholder") else "None"
    return text.mask(data.isna(), placeholder)


def config(element: Any) -> dict[str, Any]:
    """The table's column configuration as sent to the browser, by column."""
    return json.loads(element.proto.columns)


def linked(values: pd.Series) -> pd.Series:
    """The text a link column shows (lib.ui.scope.link_column: the part after "#")."""
    return values.str.extract(r"#(.*)$", expand=False)

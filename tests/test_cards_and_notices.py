"""Metric cards never show a figure cut off by the card, and the P&L page states each kind of
shortfall once (one notice for every unmatched asset, its notes without those sentences again)."""

from __future__ import annotations

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from lib import reports
from lib.pnl.result import shortfall_warnings
from lib.ui import format as fmt


def _cards_app() -> None:
    import streamlit as st

    from lib.ui import format as fmt

    columns = st.columns(4)
    fmt.money_card(columns[0], "Small", 1234.5, signed=True, help="Why.")
    fmt.money_card(columns[1], "Large", 228_461_332_735.44, signed=True, help="Why.")
    fmt.money_card(columns[2], "Loss", -6_324_468.1)
    fmt.money_card(columns[3], "Unpriced", None)


def test_a_card_shows_the_full_figure_when_it_fits_and_the_compact_one_with_the_full_in_its_help() -> None:
    at = AppTest.from_function(_cards_app).run()
    cards = {m.label: m for m in at.metric}
    assert cards["Small"].value == "+$1,234.50" and cards["Small"].help == "Why."
    assert cards["Large"].value == "+$228.46B" and cards["Large"].help == "+$228,461,332,735.44. Why."
    assert cards["Loss"].value == "-$6.32M" and cards["Loss"].help == "-$6,324,468.10."
    assert cards["Unpriced"].value == "unpriced"
    assert all(len(m.value) <= 11 for m in at.metric)  # what a quarter-width card shows uncut


def _widths_app() -> None:
    import streamlit as st

    from lib.ui import format as fmt

    fifth, third = st.columns(5)[0], st.columns(3)[0]
    fmt.money_card(fifth, "Fifth", 1234.5, chars=fmt.CARD_CHARS * 4 // 5)
    fmt.money_card(fifth, "Fifth short", 999.5, chars=fmt.CARD_CHARS * 4 // 5)
    fmt.money_card(third, "Third", 1_234_567.89, chars=fmt.CARD_CHARS * 4 // 3, delta="+1.0%")
    fmt.money_card(third, "Third long", -12_345_678.9, chars=fmt.CARD_CHARS * 4 // 3, delta="-2.0%")


def test_a_narrower_card_turns_compact_sooner_and_a_wider_one_later_keeping_its_delta() -> None:
    at = AppTest.from_function(_widths_app).run()
    cards = {m.label: m for m in at.metric}
    assert cards["Fifth"].value == "$1.23k" and cards["Fifth"].help == "$1,234.50."  # 9 characters, a fifth shows 8
    assert cards["Fifth short"].value == "$999.50"
    assert cards["Third"].value == "$1,234,567.89" and cards["Third"].delta == "+1.0%"  # 13: too long for a quarter
    assert cards["Third long"].value == "-$12.35M" and cards["Third long"].help == "-$12,345,678.90."  # 15
    assert cards["Third long"].delta == "-2.0%"


def test_pnl_notes_leave_out_the_unpriced_and_unmatched_sentences_the_page_states_itself() -> None:
    unpriced, unmatched = ["XYZ"], {"ADA": 60359.13889986, "BNB": 12.24416903}
    notes = ["2 deposit(s) had no USD price at the time (ETH ×2); booked at 0 cost basis.", "Another note."]
    summary = reports.PnlSummary(method="fifo", pool="scope", totals={}, per_asset=pd.DataFrame(),
                                 daily=pd.DataFrame(), unpriced=unpriced, unmatched=unmatched,
                                 warnings=notes + shortfall_warnings(unpriced, unmatched), fills=0)
    assert summary.notes == notes
    assert len(summary.warnings) == len(notes) + 3  # the CLI and statements still print every sentence


@pytest.mark.parametrize(("shown", "expected"), [
    (fmt.money(-1e-12, signed=True), "$0.00"), (fmt.money(1e-9, signed=True), "$0.00"),
    (fmt.money(-0.004), "$0.00"), (fmt.money(-0.005), "-$0.01"), (fmt.money(0.006, signed=True), "+$0.01"),
    (fmt.signed_money(-1234.5), "-$1,234.50"), (fmt.compact_money(-1e-10), "$0.00"),
    (fmt.compact_money(-2.5e6), "-$2.50M"), (fmt.percent(-1e-9), "0.00%"), (fmt.percent(0.1234), "+12.34%"),
    (fmt.percent(-0.00004), "0.00%"), (fmt.percent(-0.5, signed=False), "-50.00%"),
    (fmt.signed_compact_money(49_140.0), "+$49.14k"), (fmt.signed_compact_money(0.001), "$0.00"),
    (fmt.signed_compact_money(-1.2e6), "-$1.20M"),
])
def test_a_figure_that_rounds_to_zero_has_no_sign(shown: str, expected: str) -> None:
    """A balanced row's difference left over by floats read "-$0.00" or "+$0.00" beside a "0"."""
    assert shown == expected

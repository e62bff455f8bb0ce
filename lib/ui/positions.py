"""The exchange-reported unrealized P&L of open derivatives positions, as the Orders & positions
and P&L pages show it: a "$" card over the positions settled in a USD-like currency, a card per
other settlement currency (a coin-settled contract's figure is never added to a dollar one), and
a note naming the positions whose exchange gave no figure."""

from __future__ import annotations

import streamlit as st

from lib import activity
from lib.ui import format as fmt


def unrealized_cards(reported: activity.ReportedUnrealized, why: str) -> None:
    """Cards side by side across the page; "—" on the "$" card when no position has a figure."""
    in_usd = reported.usd is not None or not reported.coins
    count = in_usd + len(reported.coins)
    cards = iter(st.columns(count))
    if reported.usd is not None:
        fmt.money_card(next(cards), activity.REPORTED_UNREALIZED, reported.usd, signed=True, help=why,
                       chars=fmt.CARD_CHARS * 4 // count)
    elif in_usd:
        next(cards).metric(activity.REPORTED_UNREALIZED, fmt.MISSING, help=why)
    for currency, amount in reported.coins.items():
        next(cards).metric(activity.REPORTED_UNREALIZED_IN.format(fmt.literal(currency)),
                           f"{'+' if amount > 0 else ''}{fmt.exact(amount)} {fmt.visible(currency)}", help=why)
    if reported.unreported:
        st.caption(fmt.literal(reported.unreported_note()))

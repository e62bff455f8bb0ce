"""The scope a page shows: client › account › asset, kept in the URL.

The sidebar's Client and Account pickers and the Asset page's picker are bound to the URL
(Streamlit's ``bind="query-params"``): ``?client=Sharp+Foundation&account=binance+/+main&asset=BTC``.
Streamlit keeps them across page switches, restores them on the browser's back and forward, and
seeds them on a reload or a shared link. A value the viewer may not pick (another client's name,
a typo) is not an option, so Streamlit ignores it and drops it from the URL: never an error.
Tables link names to a scope with ``link`` and ``link_column``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlencode

import pandas as pd
import streamlit as st

from lib.settings import PROJECT_ROOT
from lib.ui import format as fmt

#: URL parameters, which are also the pickers' session keys (a bound widget's key is its parameter)
CLIENT_PARAM = CLIENT_KEY = "client"
ACCOUNT_PARAM = ACCOUNT_KEY = "account"
ASSET_PARAM = ASSET_KEY = "asset"
ALL = 0  # a picker's "All ..." (a real value: None would mean "nothing chosen")

#: the app's own icon (app.py sets it first; a local file, never fetched from another host)
FAVICON = PROJECT_ROOT / "static" / "favicon.svg"
#: The view each kind of name opens (url path of the page file, as st.navigation derives it)
PAGE_OF = {"client": "overview", "account": "balances", "asset": "asset"}
#: A link's text rides in its fragment (after "#"), which the browser does not send anywhere
_SHOWN = re.compile(r"#(.*)$")


@dataclass(frozen=True)
class Scope:
    """What the sidebar (and URL) picked; None: every one the viewer may see. ``client`` and
    ``account`` are the pickers' labels (made ``visible``), which the URL carries."""

    client_id: int | None = None
    client: str | None = None
    connector_id: int | None = None
    account: str | None = None

    def words(self) -> str:
        """The scope as a page title names it: "Sharp Foundation › binance / main" or "All clients"."""
        if self.account is not None:
            return f"{self.client} › {self.account}"
        return self.client if self.client is not None else "All clients"


def account_label(exchange_id: object, label: object) -> str:
    """An account as the sidebar's Account picker names it once its client is picked (and the URL says it)."""
    return fmt.visible(f"{exchange_id} / {label}")


def pick(container: object, key: str, label: str, names: dict[int, str], everything: str,
         on_change: Callable[[], None] | None = None) -> int | None:
    """A selectbox over ``names`` (id -> label) plus "All", bound to the URL parameter ``key``.

    A value left in the session that is no longer an option (another client's account) falls
    back to "All" before the widget is drawn."""
    options = [ALL, *names]
    if st.session_state.get(key, ALL) not in options:
        st.session_state[key] = ALL
    container.selectbox(label, options, key=key, bind="query-params", on_change=on_change,
                        format_func=lambda i: everything if i == ALL else names[i])
    return st.session_state[key] or None


@lru_cache(maxsize=4096)  # a table repeats its clients, accounts and assets on every row and rerun
def link(page: str, text: object, *, client: str | None = None, account: str | None = None,
         asset: str | None = None, **filters: str) -> str:
    """A relative URL to ``page`` in a scope (names as the pickers label them) and the page's own
    ``filters``, with ``text`` to show (see ``link_column``)."""
    params = {CLIENT_PARAM: client, ACCOUNT_PARAM: account, ASSET_PARAM: asset, **filters}
    query = urlencode({k: v for k, v in params.items() if v is not None})
    return f"{page}?{query}#{fmt.visible(text)}"


def link_column(label: str, help: str | None = None, **options: object) -> object:
    """A table column of ``link`` values that shows each link's text and opens its scope."""
    return st.column_config.LinkColumn(label, help=help, display_text=_SHOWN.pattern, **options)


def client_links(frame: pd.DataFrame, name: str = "client") -> pd.Series:
    """Each row's client name as a link to that client's Overview."""
    links = [link(PAGE_OF["client"], n, client=fmt.visible(n)) for n in frame[name]]
    return pd.Series(links, index=frame.index, dtype=object)


def account_links(frame: pd.DataFrame, text: pd.Series) -> pd.Series:
    """Each row's account (``text`` shown) as a link to that account's Balances."""
    links = [link(PAGE_OF["account"], t, client=fmt.visible(c), account=account_label(e, a))
             for t, c, e, a in zip(text, frame["client"], frame["exchange_id"], frame["label"], strict=True)]
    return pd.Series(links, index=frame.index, dtype=object)


def asset_links(assets: pd.Series, scope: Scope) -> pd.Series:
    """Each asset code as a link to the Asset page in the current scope."""
    return pd.Series([link(PAGE_OF["asset"], a, client=scope.client, account=scope.account, asset=fmt.visible(a))
                      for a in assets], index=assets.index, dtype=object)


def title(page: str, scope: Scope, detail: str | None = None) -> None:
    """The page's title naming its scope (also the browser tab's), all of it text from data made literal."""
    words = scope.words() if detail is None else f"{scope.words()} › {detail}"
    st.title(f"{page} · {fmt.literal(words)}")
    # the icon again: a page config without one would leave the browser free to ask for a default
    st.set_page_config(page_title=f"{page} · {fmt.visible(words)}", page_icon=str(FAVICON))

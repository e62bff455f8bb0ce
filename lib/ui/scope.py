"""The scope a page shows: client › account › asset, kept in the URL.

The sidebar's Client and Account pickers (and the Asset page's picker) read ``?client=``,
``?connector=`` and ``?asset=`` at the start of every run and write their value back, so a
reload, a shared link or the browser's back button shows the same scope. Ids in the URL are
checked against what the viewer may see: anything else is ignored, never an error.
Tables link names to a scope with ``link`` and ``link_column``; charts with ``go_to``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlencode

import pandas as pd
import streamlit as st
from streamlit.errors import StreamlitAPIException

from lib.ui import format as fmt

CLIENT_PARAM = "client"
ACCOUNT_PARAM = "connector"
ASSET_PARAM = "asset"
#: session keys of the sidebar pickers (the client's is older than this module: tests use it)
CLIENT_KEY = "scope_client_id"
ACCOUNT_KEY = "scope_connector_id"
ALL = 0  # a picker's "All ..." (a real value: None would mean "nothing chosen")

#: The view each kind of name opens (url path of the page file, as st.navigation derives it)
PAGE_OF = {"client": "overview", "account": "balances", "asset": "asset"}
#: A link's text rides in its fragment (after "#"), which the browser does not send anywhere
_SHOWN = re.compile(r"#(.*)$")


@dataclass(frozen=True)
class Scope:
    """What the sidebar (and URL) picked; None: every one the viewer may see."""

    client_id: int | None = None
    client: str | None = None
    connector_id: int | None = None
    account: str | None = None

    def words(self) -> str:
        """The scope as a page title names it: "Sharp Foundation › binance / main" or "All clients"."""
        if self.account is not None:
            return f"{self.client} › {self.account}"
        return self.client if self.client is not None else "All clients"


def _picked(param: str, options: list[int]) -> int | None:
    """The URL's id for ``param`` when it is one of ``options``; None when absent or not allowed."""
    wanted = st.query_params.get(param, "")
    return int(wanted) if wanted.isdigit() and int(wanted) in options else None


def _to_url(param: str, value: int) -> None:
    """Keep the URL in step with a picker, so a reload or a shared link shows the same scope."""
    if value == ALL:
        st.query_params.pop(param, None)
    elif st.query_params.get(param) != str(value):
        st.query_params[param] = str(value)


def pick(container: object, key: str, param: str, label: str, names: dict[int, str], everything: str,
         clears: tuple[str, ...] = ()) -> int | None:
    """A selectbox over ``names`` (id -> text) plus "All", seeded from and written to the URL.

    A change writes the URL before the rerun (so the URL, read first, agrees) and drops the
    ``clears`` parameters (an account of the client just left). A URL without the parameter
    (Streamlit drops them between pages) gets it back, so a reload keeps the scope.
    """
    options = [ALL, *names]
    from_url = _picked(param, options)
    if from_url is not None:
        st.session_state[key] = from_url
    if st.session_state.get(key) not in options:
        st.session_state[key] = ALL

    def changed() -> None:
        for other in clears:
            st.query_params.pop(other, None)
        _to_url(param, st.session_state[key])

    container.selectbox(label, options, key=key, on_change=changed,
                        format_func=lambda i: everything if i == ALL else names[i])
    _to_url(param, st.session_state[key])
    return st.session_state[key] or None


def link(page: str, text: object, *, client_id: int | None = None, connector_id: int | None = None,
         asset: str | None = None, **filters: str) -> str:
    """A relative URL to ``page`` in a scope (and the page's own ``filters``), with ``text`` to show
    (see ``link_column``)."""
    params = {CLIENT_PARAM: client_id, ACCOUNT_PARAM: connector_id, ASSET_PARAM: asset, **filters}
    query = urlencode({k: v for k, v in params.items() if v is not None})
    return f"{page}?{query}#{fmt.visible(text)}"


def link_column(label: str, help: str | None = None, **options: object) -> object:
    """A table column of ``link`` values that shows each link's text and opens its scope."""
    return st.column_config.LinkColumn(label, help=help, display_text=_SHOWN.pattern, **options)


def client_links(frame: pd.DataFrame, name: str = "client", client_id: str = "client_id") -> pd.Series:
    """Each row's client name as a link to that client's Overview."""
    links = [link(PAGE_OF["client"], n, client_id=int(c)) for n, c in zip(frame[name], frame[client_id], strict=True)]
    return pd.Series(links, index=frame.index, dtype=object)


def account_links(frame: pd.DataFrame, text: pd.Series, client_id: str = "client_id",
                  connector_id: str = "connector_id") -> pd.Series:
    """Each row's account text as a link to that account's Balances."""
    links = [link(PAGE_OF["account"], t, client_id=int(c), connector_id=int(a))
             for t, c, a in zip(text, frame[client_id], frame[connector_id], strict=True)]
    return pd.Series(links, index=frame.index, dtype=object)


def asset_links(assets: pd.Series, scope: Scope) -> pd.Series:
    """Each asset code as a link to the Asset page in the current scope."""
    return pd.Series([link(PAGE_OF["asset"], a, client_id=scope.client_id, connector_id=scope.connector_id, asset=a)
                      for a in assets], index=assets.index, dtype=object)


def open_clicked(event: object, page: str, param: str, current: Scope, names: dict[str, str], axis: str = "y") -> None:
    """A chart's click (``st.plotly_chart(..., on_select="rerun")``) opens the clicked name's view in
    the current scope. A point carries only its drawn label (escaped for plotly): ``names`` maps each
    label back to the name, so nothing from data rides in the figure beyond what is drawn.

    Outside app.py's navigation (a bare script run) there is no page to switch to: nothing happens.
    """
    points = getattr(getattr(event, "selection", None), "points", None) or []
    labels = [p.get(axis) for p in points if isinstance(p, dict)]
    name = names.get(labels[0]) if labels and isinstance(labels[0], str) else None
    if name is None:
        return
    params = {CLIENT_PARAM: current.client_id, ACCOUNT_PARAM: current.connector_id, param: name}
    try:
        st.switch_page(f"pages/portfolio/{page}.py", query_params={k: str(v) for k, v in params.items()
                                                                      if v is not None})
    except StreamlitAPIException:
        return


def title(page: str, scope: Scope, detail: str | None = None) -> None:
    """The page's title naming its scope (also the browser tab's), all of it text from data made literal."""
    words = scope.words() if detail is None else f"{scope.words()} › {detail}"
    st.title(f"{page} · {fmt.literal(words)}")
    st.set_page_config(page_title=f"{page} · {fmt.visible(words)}")

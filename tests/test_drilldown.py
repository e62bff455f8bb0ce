"""Drill-down client › account › asset: the scope lives in the URL (reload, share, back), the
sidebar pickers follow it within what the viewer may see, names link to their scope, and
page titles name the scope."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from lib.access import Role, Viewer
from lib.db import session_scope
from lib.models import Client
from lib.settings import PROJECT_ROOT
from lib.ui import scope, shell
from tests.test_queries import Seeded, seed_portfolio


@pytest.fixture
def seeded(database_url: str) -> Seeded:
    return seed_portfolio()


def _sidebar_app() -> None:
    from lib.access import Role, Viewer
    from lib.ui import shell

    shell.sidebar(Viewer("admin-user", Role.ADMIN))


def _connector_of(seeded: Seeded, client_id: int) -> int:
    from lib.ui import loaders

    frame = loaders.connectors(Viewer("admin-user", Role.ADMIN), client_id)
    return int(frame["id"].iloc[0])


def test_client_and_account_in_the_url_pick_them(seeded: Seeded) -> None:
    account = _connector_of(seeded, seeded.beta)
    at = AppTest.from_function(_sidebar_app, default_timeout=60)
    at.query_params[scope.CLIENT_PARAM] = "Beta"  # a shared link: names, as the pickers label them
    at.query_params[scope.ACCOUNT_PARAM] = "okx / main"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.session_state[shell.SCOPE_KEY] == seeded.beta
    assert at.session_state[scope.ACCOUNT_KEY] == account


def test_a_name_the_viewer_may_not_pick_is_ignored(seeded: Seeded) -> None:
    at = AppTest.from_function(_sidebar_app, default_timeout=60)
    at.query_params[scope.CLIENT_PARAM] = "Alpha"
    at.query_params[scope.ACCOUNT_PARAM] = "okx / main"  # Beta's account, not Alpha's
    at.run()
    assert not at.exception
    assert at.session_state[shell.SCOPE_KEY] == seeded.alpha
    assert at.session_state[scope.ACCOUNT_KEY] == scope.ALL


def test_changing_client_drops_the_account(seeded: Seeded) -> None:
    at = AppTest.from_function(_sidebar_app, default_timeout=60)
    at.query_params[scope.CLIENT_PARAM] = "Beta"
    at.query_params[scope.ACCOUNT_PARAM] = "okx / main"
    at.run()
    at.sidebar.selectbox(key=shell.SCOPE_KEY).set_value(seeded.alpha).run()
    assert not at.exception
    assert at.session_state[shell.SCOPE_KEY] == seeded.alpha
    assert at.session_state[scope.ACCOUNT_KEY] == scope.ALL


def test_an_account_picked_under_all_clients_picks_its_client(seeded: Seeded) -> None:
    at = AppTest.from_function(_sidebar_app, default_timeout=60)
    at.run()
    accounts = at.sidebar.selectbox(key=scope.ACCOUNT_KEY)
    assert accounts.options == ["All accounts", "Alpha · binance / main", "Beta · okx / main"]
    accounts.set_value(_connector_of(seeded, seeded.beta)).run()
    assert not at.exception
    assert at.session_state[shell.SCOPE_KEY] == seeded.beta
    assert at.sidebar.selectbox(key=scope.ACCOUNT_KEY).options == ["All accounts", "okx / main"]
    assert at.session_state[scope.ACCOUNT_KEY] == _connector_of(seeded, seeded.beta)


def test_client_user_cannot_reach_another_client_by_url(seeded: Seeded) -> None:
    def app(own: int) -> None:
        from lib.access import Role, Viewer
        from lib.ui import shell

        shell.sidebar(Viewer("client-user", Role.CLIENT, frozenset({own})))

    at = AppTest.from_function(app, default_timeout=60, args=(seeded.alpha,))
    at.query_params[scope.CLIENT_PARAM] = "Beta"
    at.query_params[scope.ACCOUNT_PARAM] = "okx / main"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.session_state[shell.SCOPE_KEY] == scope.ALL
    assert at.session_state[scope.ACCOUNT_KEY] == scope.ALL
    assert at.sidebar.selectbox(key=scope.ACCOUNT_KEY).options == ["All accounts", "Alpha · binance / main"]


def test_links_carry_scope_and_show_their_text() -> None:
    url = scope.link("balances", "Sharp **Foundation** #1", client="Sharp & Co", account="binance / main")
    assert url.startswith("balances?client=Sharp+%26+Co&account=binance+%2F+main#")
    import re

    shown = re.search(scope._SHOWN.pattern, url)
    assert shown is not None and shown.group(1) == "Sharp **Foundation** #1"
    assert scope.link("asset", "B\u200bTC", asset="B\u200bTC").endswith("#B\\u200bTC")  # invisible written out


def _open(name: str, user_id: int, **state: object) -> AppTest:
    at = AppTest.from_file(str(PROJECT_ROOT / "pages" / "portfolio" / f"{name}.py"), default_timeout=60)
    at.session_state["auth_user_id"] = user_id
    for key, value in state.items():
        at.session_state[key] = value
    return at


def test_asset_page_shows_one_asset_in_scope_with_a_titled_scope(seeded: Seeded) -> None:
    at = _open("asset", seeded.users["admin"], client=seeded.alpha)
    at.query_params[scope.ASSET_PARAM] = "BTC"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value == "Asset · Alpha › BTC"
    shown = {m.label: m.value for m in at.metric}
    assert shown["Held"] == "0.56333500"
    held = at.dataframe[0].value
    assert list(held["Account"].str.extract(scope._SHOWN.pattern)[0]) == ["Alpha · binance / main"]
    markets = at.dataframe[1].value["Market"]
    assert all("symbol=" in m and "client=Alpha" in m for m in markets)


def test_asset_page_names_the_account_of_each_transfer_and_order_over_several(seeded: Seeded) -> None:
    """USDT moved on both clients' accounts: each row says whose; with one account picked, the title does."""
    at = _open("asset", seeded.users["admin"])
    at.query_params[scope.ASSET_PARAM] = "USDT"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    moves = next(frame.value for frame in at.dataframe if "Status" in frame.value.columns)
    assert sorted(zip(moves["Account"], moves["Amount"], strict=True)) == [
        ("Alpha · binance / main", 70000.0), ("Beta · okx / main", 600.0), ("Beta · okx / main", 999.0)]
    orders = next(frame.value for frame in at.dataframe if "Side" in frame.value.columns)
    assert sorted(orders["Account"]) == ["Alpha · binance / main", "Beta · okx / main"]  # BTC/USDT and XYZ/USDT
    one = _open("asset", seeded.users["admin"], client=seeded.beta, **{scope.ACCOUNT_KEY: seeded.beta_okx})
    one.query_params[scope.ASSET_PARAM] = "USDT"
    one.run()
    assert not any("Account" in frame.value.columns for frame in one.dataframe if "Status" in frame.value.columns)


def test_asset_page_ignores_an_asset_outside_scope(seeded: Seeded) -> None:
    at = _open("asset", seeded.users["admin"], client=seeded.beta)
    at.query_params[scope.ASSET_PARAM] = "BNB"  # Alpha's, not Beta's
    at.run()
    assert not at.exception
    assert "BNB" not in at.title[0].value
    assert at.query_params.get(scope.ASSET_PARAM) != "BNB"  # dropped from the URL


def test_page_titles_name_the_scope(seeded: Seeded) -> None:
    with session_scope() as session:
        session.get(Client, seeded.beta).name = "Beta *bold*"
    at = _open("pnl", seeded.users["admin"], client=seeded.beta)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value == "P&L · Beta \\*bold\\*"


def test_overview_of_one_account_counts_that_account_only(seeded: Seeded) -> None:
    account = _connector_of(seeded, seeded.beta)
    at = _open("overview", seeded.users["admin"], **{scope.ACCOUNT_KEY: account})
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value == "Overview · Beta › okx / main"
    assert {m.label: m.value for m in at.metric}["Total value"] == "$500.00"  # its USDT; XYZ is unpriced

"""lib.balance_index: balances at any moment equal the sum of the moves up to it; an index
extended with later moves equals one built from all of them, bit for bit; the live index
continues after a sync's later fills and is built again after anything else. The live part on SQLite and
PostgreSQL (the two ways the fill store sees new fills)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import delete, select

from lib import balance_index, rebuild
from lib.balance_index import BalanceIndex
from lib.db import session_scope
from lib.models import BalanceSnapshot, Connector, Trade, Transfer, to_decimal
from tests.test_queries import Seeded, ms, seed_portfolio

ASSETS = ["BTC", "ETH", "USDT"]


def _moves(rng: np.random.Generator, count: int, start: int = 0,
           connectors: tuple[int, ...] = (1, 2, 3)) -> pd.DataFrame:
    """Random moves: several per millisecond, opening ones among them, unsorted."""
    kind = rng.choice(["fill", "fee", "deposit", "opening"], count)
    return pd.DataFrame({"connector_id": rng.choice(connectors, count).astype(np.int64),
                         "asset": rng.choice(ASSETS, count).astype(object),
                         "timestamp": rng.integers(start, start + 1000, count).astype(np.int64),
                         "change": rng.normal(0, 5, count), "kind": kind})


def _summed(moves: pd.DataFrame, connector_id: int, asset: str, moment: int) -> tuple[float, float]:
    """The balance and turnover the long way: every move of the key up to the moment."""
    own = moves[(moves["connector_id"] == connector_id) & (moves["asset"] == asset) & (moves["timestamp"] <= moment)]
    return float(own["change"].sum()), float(own["change"].abs().sum())


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(["connector_id", "asset", "moment"], ignore_index=True)


def test_balances_at_moments_are_the_moves_summed_up_to_them() -> None:
    rng = np.random.default_rng(3)
    moves = _moves(rng, 400)
    index = BalanceIndex.of(moves)
    moments = [-1, 0, 17, 500, 999, 5000]
    found = index.at(moments)
    assert len(found) == len(moves[["connector_id", "asset"]].drop_duplicates()) * len(moments)
    for row in found.itertuples():
        balance, turnover = _summed(moves, row.connector_id, row.asset, row.moment)
        assert row.balance == pytest.approx(balance, abs=1e-9)
        assert row.turnover == pytest.approx(turnover, abs=1e-9)
    # per connector moments, and a scope of connectors
    own = pd.DataFrame({"connector_id": [1, 1, 3], "moment": [100, 700, 300]})
    scoped = index.at(own, [1, 2])
    assert set(scoped["connector_id"]) == {1}
    assert set(scoped["moment"]) == {100, 700}
    for row in scoped.itertuples():
        assert row.balance == pytest.approx(_summed(moves, 1, row.asset, row.moment)[0], abs=1e-9)


def test_the_index_knows_each_connectors_first_and_last_move_and_opening() -> None:
    moves = pd.DataFrame({"connector_id": [1, 1, 2, 2], "asset": ["BTC", "BTC", "ETH", "ETH"],
                          "timestamp": [50, 10, 30, 40], "change": [1.0, 2.0, 0.0, 3.0],
                          "kind": ["fill", "opening", "opening", "deposit"]})
    index = BalanceIndex.of(moves)
    assert index.first_move.to_dict() == {1: 10, 2: 30}
    assert index.first_event.to_dict() == {1: 50, 2: 40}
    assert index.last_move.to_dict() == {1: 50, 2: 40}
    assert index.opening == frozenset({1})  # connector 2's opening balance is 0


def test_an_index_extended_with_later_moves_equals_one_built_from_all() -> None:
    rng = np.random.default_rng(11)
    old = _moves(rng, 300)
    later = _moves(rng, 60, start=2000, connectors=(1, 3, 4)).assign(kind="fill")  # connector 4 is new
    later.loc[later.index[:5], "asset"] = "NEW"  # and so are some keys
    extended = BalanceIndex.of(old).extend(later)
    assert extended is not None
    whole = BalanceIndex.of(pd.concat([old, later], ignore_index=True))
    moments = [0, 500, 1999, 2000, 2500, 3000]
    pd.testing.assert_frame_equal(_sorted(extended.at(moments)), _sorted(whole.at(moments)), check_exact=True)
    for name in ("first_move", "first_event", "last_move"):
        pd.testing.assert_series_equal(getattr(extended, name).sort_index(), getattr(whole, name).sort_index(),
                                       check_names=False)
    assert extended.opening == whole.opening


def test_an_extension_renews_the_revisions_of_its_connectors_only() -> None:
    """What is derived per connector (lib.reconcile, lib.equity) is redone where the revision moved."""
    rng = np.random.default_rng(13)
    old = BalanceIndex.of(_moves(rng, 100))
    assert set(old.revisions) == {1, 2, 3}
    extended = old.extend(_moves(rng, 10, start=2000, connectors=(1, 4)))
    assert extended is not None
    assert extended.revisions[2] == old.revisions[2] and extended.revisions[3] == old.revisions[3]
    assert extended.revisions[1] != old.revisions[1] and 4 in extended.revisions
    assert old.extend(_moves(rng, 0)) is old
    rebuilt = BalanceIndex.of(_moves(rng, 100))  # a build: every connector's revision is new
    assert not set(rebuilt.revisions.values()) & (set(old.revisions.values()) | set(extended.revisions.values()))


def test_a_time_that_would_read_as_another_accounts_is_refused() -> None:
    moves = pd.DataFrame({"connector_id": [1], "asset": ["BTC"], "timestamp": [1 << 42], "change": [1.0],
                          "kind": ["fill"]})
    with pytest.raises(ValueError, match="outside 1970 to 2109"):
        BalanceIndex.of(moves)
    with pytest.raises(ValueError, match="outside 1970 to 2109"):
        BalanceIndex.of(moves.assign(timestamp=[5])).extend(moves.assign(timestamp=[-1], connector_id=[2]))


def test_a_move_not_later_than_its_connectors_history_is_refused() -> None:
    rng = np.random.default_rng(5)
    index = BalanceIndex.of(_moves(rng, 100))
    last = int(index.last_move[1])
    same = pd.DataFrame({"connector_id": [1], "asset": ["ETH"], "timestamp": [last], "change": [1.0], "kind": ["fill"]})
    assert index.extend(same) is None
    assert index.extend(same.assign(timestamp=last + 1)) is not None
    assert index.extend(same.iloc[:0]) is index


# --------------------------------------------------------------------------- the live index


@pytest.fixture
def seeded(database_url: str) -> Seeded:
    balance_index._KEPT.clear()
    return seed_portfolio()


@pytest.fixture
def builds(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many times the live index was built from every fill."""
    made: list[int] = []
    real = balance_index._built

    def counted(*args: object) -> object:
        made.append(1)
        return real(*args)

    monkeypatch.setattr(balance_index, "_built", counted)
    return made


def _fill(connector_id: int, trade_id: str, day: str, side: str = "buy") -> None:
    with session_scope() as session:
        session.add(Trade(connector_id=connector_id, trade_id=trade_id, timestamp=ms(day), symbol="BTC/USDT",
                          base="BTC", quote="USDT", side=side, amount=0.1, price=60000.0, cost=6000.0, fee_cost=6.0,
                          fee_currency="USDT"))


def _assert_live_is_a_rebuild() -> None:
    with session_scope() as session:
        live = balance_index.live(session)
        fresh = BalanceIndex.of(rebuild.balance_moves(session))
    moments = [ms("2023-01-01"), ms("2024-01-15"), ms("2024-02-20"), ms("2024-04-01"), ms("2025-01-01")]
    pd.testing.assert_frame_equal(_sorted(live.at(moments)), _sorted(fresh.at(moments)), check_exact=True)
    assert live.first_event.sort_index().to_dict() == fresh.first_event.sort_index().to_dict()
    assert live.opening == fresh.opening


def test_later_fills_continue_the_live_index(seeded: Seeded, builds: list[int]) -> None:
    _assert_live_is_a_rebuild()
    assert len(builds) == 1
    _fill(seeded.alpha_binance, "later-1", "2024-04-01")
    _fill(seeded.beta_okx, "later-2", "2024-04-02", side="sell")
    _assert_live_is_a_rebuild()
    assert len(builds) == 1  # continued
    with session_scope() as session:
        after = balance_index.live(session).at([ms("2024-04-03")], [seeded.alpha_binance])
    assert len(builds) == 1  # same write version: the kept index as it is
    before = after.set_index("asset")["balance"]
    assert before["BTC"] == pytest.approx(_btc_now(seeded.alpha_binance))


def _btc_now(connector_id: int) -> float:
    with session_scope() as session:
        moves = rebuild.balance_moves(session, [connector_id])
    return float(moves.loc[moves["asset"] == "BTC", "change"].sum())


def apply_change(seeded: Seeded, change: str) -> None:
    """One change that is more than a sync's added rows: a back-dated fill, a new transfer, a changed
    snapshot or a removed connector (Beta's)."""
    with session_scope() as session:
        if change == "backdated fill":
            session.add(Trade(connector_id=seeded.alpha_binance, trade_id="old", timestamp=ms("2023-06-01"),
                              symbol="BTC/USDT", base="BTC", quote="USDT", side="buy", amount=1, price=20000,
                              cost=20000))
        elif change == "transfer":
            session.add(Transfer(connector_id=seeded.alpha_binance, transfer_id="dep-new", timestamp=ms("2024-05-01"),
                                 type="deposit", currency="ETH", amount=2, status="ok"))
        elif change == "changed snapshot":
            newest = session.scalar(select(BalanceSnapshot).where(BalanceSnapshot.connector_id == seeded.beta_okx)
                                    .order_by(BalanceSnapshot.taken_at.desc()).limit(1))
            newest.total = to_decimal(newest.total) + 1
        else:
            session.execute(delete(Connector).where(Connector.id == seeded.beta_okx))


@pytest.mark.parametrize("change", ["backdated fill", "transfer", "connector removed"])
def test_anything_but_later_fills_builds_it_again(seeded: Seeded, builds: list[int], change: str) -> None:
    _assert_live_is_a_rebuild()
    apply_change(seeded, change)
    _assert_live_is_a_rebuild()
    assert len(builds) == 2


def test_the_curves_balances_summed_per_price_source_equal_the_per_account_ones() -> None:
    """lib.equity values the curve per (price source, asset, moment): the sum of the accounts'
    balances there (each from its first move on, dust as 0) and how many held a nonzero one."""
    from lib import equity

    rng = np.random.default_rng(3)
    moves = _moves(rng, 3000, connectors=(1, 2, 3, 4))
    moves.loc[moves.sample(50, random_state=1).index, "change"] = 1e-13  # dust next to its turnover
    index = BalanceIndex.of(moves)
    first = index.first_move[index.first_move.index != 4] + 200  # account 4 out of scope; the others start late
    history = equity._History(index, [1, 2, 3], first)
    sources = {1: "binance@api.binance.com", 2: "binance@api.binance.com", 3: "okx@www.okx.com"}
    moments = np.array([-5, 100, 250, 400, 700, 999, 2000], dtype=np.int64)
    per_account = equity._rebuilt(history, moments, sources)
    expected = (per_account.assign(holders=(per_account["balance"] != 0).astype(float))
                .groupby(["source", "asset", "moment"], as_index=False)[["balance", "holders"]].sum())
    summed = equity._held_by_source(history, moments, sources)
    got = summed.sort_values(["source", "asset", "moment"], ignore_index=True)
    cells = ["source", "asset", "moment"]
    assert list(got[cells].itertuples(index=False)) == list(expected[cells].itertuples(index=False))
    assert np.allclose(got["balance"], expected["balance"], rtol=1e-12, atol=1e-9)
    assert (got["holders"].to_numpy() == expected["holders"].to_numpy()).all()
    assert (got["moment"] >= 100).all() and 4 not in set(per_account["connector_id"])  # none before a first move

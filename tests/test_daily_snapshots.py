"""lib.daily_snapshots: the kept daily snapshots continue after a sync's new snapshots and equal a
fresh read, row for row; anything but added rows (a thinned row, a changed one, a removed
connector) reads everything again. On SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd
import pytest
from sqlalchemy import delete, select

from lib import daily_snapshots
from lib.db import session_scope
from lib.models import BalanceSnapshot, Connector, to_decimal, utcnow
from tests.test_queries import Seeded, seed_portfolio


@pytest.fixture
def seeded(database_url: str) -> Seeded:
    daily_snapshots._KEPT.clear()
    return seed_portfolio()


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many times every snapshot was read."""
    made: list[int] = []
    real = daily_snapshots._read_all

    def counted(*args: object) -> object:
        made.append(1)
        return real(*args)

    monkeypatch.setattr(daily_snapshots, "_read_all", counted)
    return made


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(["connector_id", "moment", "asset"], ignore_index=True)


def _assert_kept_is_a_fresh_read() -> daily_snapshots.DailySnapshots:
    with session_scope() as session:
        kept = daily_snapshots.daily(session)
        fresh = daily_snapshots._everything(session)[0]
    pd.testing.assert_frame_equal(_sorted(kept.rows), _sorted(fresh.rows), check_exact=True)
    assert kept.account_types == fresh.account_types
    return kept


def _snapshot(connector_id: int, taken_at: datetime, holdings: dict[str, float], account_type: str = "") -> None:
    with session_scope() as session:
        session.add_all([BalanceSnapshot(connector_id=connector_id, taken_at=taken_at, asset=asset, free=total,
                                         used=0.0, total=total, account_type=account_type)
                         for asset, total in holdings.items()])


def test_new_snapshots_continue_the_kept_days(seeded: Seeded, reads: list[int]) -> None:
    _assert_kept_is_a_fresh_read()
    assert len(reads) == 1
    now = utcnow()
    _snapshot(seeded.alpha_binance, now, {"BTC": 0.75, "USDT": 900.0})  # today's last moves on
    _snapshot(seeded.alpha_binance, now, {"SOL": 2.0}, account_type="funding")  # a new type and asset
    _snapshot(seeded.beta_okx, now + timedelta(days=1), {"XYZ": 30.0})  # a new day
    after = _assert_kept_is_a_fresh_read()
    assert len(reads) == 1  # continued
    assert after.account_types[(seeded.alpha_binance, "SOL")] == "funding"
    latest = after.rows[after.rows["connector_id"] == seeded.alpha_binance]
    newest = latest[latest["moment"] == latest["moment"].max()].set_index("asset")["total"].to_dict()
    assert newest == {"BTC": 0.75, "USDT": 900.0, "SOL": 2.0}
    assert after.rows.loc[after.rows["connector_id"] == seeded.beta_okx, "moment"].max() > latest["moment"].max()
    with session_scope() as session:
        assert daily_snapshots.daily(session) is after  # same write version: the kept frame as it is
    assert len(reads) == 1


def test_added_snapshots_renew_the_revision_of_their_connector_only(seeded: Seeded) -> None:
    """What is derived per connector (lib.reconcile, lib.equity) is redone where the revision moved."""
    before = _assert_kept_is_a_fresh_read().revisions
    _snapshot(seeded.beta_okx, utcnow(), {"XYZ": 31.0})
    after = _assert_kept_is_a_fresh_read().revisions
    assert after[seeded.alpha_binance] == before[seeded.alpha_binance]
    assert after[seeded.beta_okx] != before[seeded.beta_okx]
    with session_scope() as session:  # thinning: everything is read again, every revision is new
        oldest = session.scalar(select(BalanceSnapshot.id).order_by(BalanceSnapshot.taken_at).limit(1))
        session.execute(delete(BalanceSnapshot).where(BalanceSnapshot.id == oldest))
    again = _assert_kept_is_a_fresh_read().revisions
    assert not set(again.values()) & set(after.values())


def test_continued_rows_name_what_they_grew_from(seeded: Seeded) -> None:
    """``grown``: per connector, each earlier revision its rows grew from and the first day re-read
    since it (the earliest over later additions); a full read names none."""
    first = _assert_kept_is_a_fresh_read()
    assert first.grown == {}
    now = utcnow()
    _snapshot(seeded.beta_okx, now + timedelta(days=2), {"XYZ": 31.0})
    second = _assert_kept_is_a_fresh_read()
    day = 86_400_000
    later = int((now + timedelta(days=2)).timestamp() * 1000) // day * day
    assert second.grown == {seeded.beta_okx: ((first.revisions[seeded.beta_okx], later),)}
    _snapshot(seeded.beta_okx, now + timedelta(days=1), {"XYZ": 32.0})  # before the last one: an earlier day
    _snapshot(seeded.alpha_binance, now + timedelta(days=3), {"BTC": 0.6})
    third = _assert_kept_is_a_fresh_read()
    assert third.grown == {seeded.beta_okx: ((second.revisions[seeded.beta_okx], later - day),
                                             (first.revisions[seeded.beta_okx], later - day)),
                           seeded.alpha_binance: ((first.revisions[seeded.alpha_binance], later + day),)}
    with session_scope() as session:  # thinning: everything read again
        session.execute(delete(BalanceSnapshot).where(BalanceSnapshot.connector_id == seeded.beta_okx,
                                                      BalanceSnapshot.taken_at < now))
    assert _assert_kept_is_a_fresh_read().grown == {}


@pytest.mark.parametrize("change", ["snapshot thinned", "snapshot changed", "connector removed"])
def test_anything_but_added_snapshots_reads_everything_again(seeded: Seeded, reads: list[int], change: str) -> None:
    _assert_kept_is_a_fresh_read()
    with session_scope() as session:
        if change == "snapshot thinned":
            oldest = session.scalar(select(BalanceSnapshot.id).order_by(BalanceSnapshot.taken_at).limit(1))
            session.execute(delete(BalanceSnapshot).where(BalanceSnapshot.id == oldest))
        elif change == "snapshot changed":
            newest = session.scalar(select(BalanceSnapshot).order_by(BalanceSnapshot.taken_at.desc()).limit(1))
            newest.total = to_decimal(newest.total) + 1
        else:
            session.execute(delete(Connector).where(Connector.id == seeded.beta_okx))
    _snapshot(seeded.alpha_binance, utcnow(), {"BTC": 0.6})  # and one added
    _assert_kept_is_a_fresh_read()
    assert len(reads) == 2

"""lib.snapshots: balance snapshots older than SNAPSHOT_DETAIL_DAYS keep the last moment of each
UTC hour (and each account type's first); newer ones stay whole; what pages read of them is the same."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from lib import queries, snapshots
from lib.access import SYSTEM
from lib.db import session_scope
from lib.models import BalanceSnapshot, utcnow
from tests.test_queries import Seeded, seed_portfolio

TYPES = ("", "funding")


@pytest.fixture
def seeded(database_url: str) -> Seeded:
    return seed_portfolio()


def _moments(connector_id: int) -> dict[str, set[datetime]]:
    with session_scope() as session:
        rows = session.execute(select(BalanceSnapshot.account_type, BalanceSnapshot.taken_at)
                               .where(BalanceSnapshot.connector_id == connector_id)).all()
    found: dict[str, set[datetime]] = defaultdict(set)
    for account_type, taken_at in rows:
        found[account_type].add(taken_at)
    return found


def _rows_per_moment(connector_id: int) -> set[int]:
    with session_scope() as session:
        rows = session.execute(select(BalanceSnapshot.taken_at, BalanceSnapshot.account_type)
                               .where(BalanceSnapshot.connector_id == connector_id)).all()
    counts: dict[tuple[datetime, str], int] = defaultdict(int)
    for row in rows:
        counts[tuple(row)] += 1
    return set(counts.values())


def test_old_snapshots_keep_the_last_of_each_hour_and_the_first(seeded: Seeded) -> None:
    now = utcnow().replace(second=0, microsecond=0)
    connector = seeded.beta_okx
    with session_scope() as session:  # every 20 minutes for ten days, two assets in two account types
        taken = [now - timedelta(days=10) + timedelta(minutes=20 * n) for n in range(10 * 72)]
        session.add_all(BalanceSnapshot(connector_id=connector, taken_at=at, asset=asset, account_type=kind,
                                        total=n + 1, free=n + 1)
                        for n, at in enumerate(taken) for kind in TYPES for asset in ("BTC", "USDT"))
    before = _moments(connector)
    with session_scope() as session:
        daily = queries.balance_history(session, SYSTEM, connector_id=connector)
        latest = queries.balances(session, SYSTEM, connector_id=connector)

    deleted = snapshots.thin(now)

    cutoff = now - timedelta(days=7)
    after = _moments(connector)
    for kind in TYPES:
        old = sorted(at for at in before[kind] if at < cutoff)
        last_of_hour = {max(at for at in old if at.replace(minute=0) == hour) for hour in
                        {at.replace(minute=0) for at in old}}
        assert {at for at in after[kind] if at < cutoff} == last_of_hour | {min(before[kind])}
        assert {at for at in after[kind] if at >= cutoff} == {at for at in before[kind] if at >= cutoff}
    assert deleted == 2 * sum(len(before[k]) - len(after[k]) for k in TYPES) > 0  # two asset rows per moment
    assert _rows_per_moment(connector) == {2}  # a kept moment keeps every asset taken then
    with session_scope() as session:
        assert queries.balance_history(session, SYSTEM, connector_id=connector).equals(daily)
        assert queries.balances(session, SYSTEM, connector_id=connector).equals(latest)
    assert snapshots.thin(now) == 0  # nothing more to thin


def test_the_detail_kept_is_a_setting(seeded: Seeded, monkeypatch: pytest.MonkeyPatch) -> None:
    now = utcnow().replace(second=0, microsecond=0)
    hour = (now - timedelta(days=3)).replace(minute=0)
    with session_scope() as session:  # three moments in one hour three days ago
        session.add_all(BalanceSnapshot(connector_id=seeded.beta_okx, taken_at=hour + timedelta(minutes=m),
                                        asset="BTC", total=1) for m in (5, 15, 25))
    assert snapshots.thin(now) == 0  # inside the default seven days
    monkeypatch.setenv("SNAPSHOT_DETAIL_DAYS", "2")
    from lib.settings import get_settings

    get_settings.cache_clear()
    assert snapshots.thin(now) == 1  # :05 is the first, :25 the hour's last: :15 goes


def test_a_later_run_thins_the_hours_that_came_of_age_since(seeded: Seeded) -> None:
    """The next hourly run starts at the hour the last one reached; what it leaves is what a run
    over everything would leave."""
    now = utcnow().replace(second=0, microsecond=0)
    connector = seeded.beta_okx
    start = (now - timedelta(days=7, hours=5)).replace(minute=0)
    with session_scope() as session:  # every 10 minutes from an hour's start, for 29 hours
        session.add_all(BalanceSnapshot(connector_id=connector, taken_at=start + timedelta(minutes=10 * n),
                                        asset="BTC", total=n + 1) for n in range(6 * 29))
    first = snapshots.thin(now)
    later = snapshots.thin(now + timedelta(hours=3))
    assert first > 0 and later > 0  # the three hours that came of age were thinned too
    kept = _moments(connector)[""]
    old = [at for at in kept if at < now + timedelta(hours=3) - timedelta(days=7)]
    hours = Counter(at.replace(minute=0) for at in old)
    assert {count for hour, count in hours.items() if hour != min(old).replace(minute=0)} == {1}  # one an hour
    whole_hours = [at for at in old if at < (now + timedelta(hours=3) - timedelta(days=7)).replace(minute=0)]
    assert min(old) == start and all(at.minute == 50 for at in whole_hours if at != start)  # each hour's last
    snapshots._THINNED.clear()
    assert snapshots.thin(now + timedelta(hours=3)) == 0  # a run over everything finds nothing more

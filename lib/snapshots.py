"""Balance snapshots thinned with age, so their table grows with time, not with the sync interval.

Every sync stores a snapshot row per held asset and account type: at the default interval of a
minute, 200 accounts holding ten assets each add 2.9 million rows a day, a billion a year, and
every read of balances over time (latest balances, the equity curve's snapshot dots,
reconciliation) pays for them. What a reader uses of an older day is the last snapshot of each
hour or day (``queries.balance_history``, reconciliation's daily comparison) and, where a
divergence starts, the snapshots around it.

So snapshots younger than ``SNAPSHOT_DETAIL_DAYS`` are all kept; of older ones, per account and
account type, the last moment (every asset row taken then) of each UTC hour is kept, and the
account type's first moment (reconciliation dates "since the first sync" from it). A divergence
older than that is then placed to the hour rather than the minute. The worker thins once an hour,
one account per transaction, so a sync writing an account's new snapshots never waits long, and
after its first run only from the hour it reached before (``_THINNED``), so an hourly run reads
an hour of each account, not its whole history.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.exc import SQLAlchemyError

from lib import queries
from lib.db import describe_failure, session_scope
from lib.models import BalanceSnapshot, Connector, utcnow
from lib.settings import get_settings

log = logging.getLogger(__name__)


def thin_connector(connector_id: int, before: datetime, since: datetime | None = None) -> int:
    """Delete the connector's snapshot rows taken before ``before`` (and from ``since`` on, an
    hour's start: what an earlier run left is thinned already) except, per account type, the last
    moment of each UTC hour and the type's first moment; returns the rows deleted.

    Window functions rank the rows in one pass: a ``NOT IN`` against the kept (type, moment)
    pairs was checked row by row (rows deleted x moments kept: 106 s for 20 accounts' month of
    minutes on SQLite, longer than a sync waits for the write lock)."""
    with session_scope() as session:
        span = [BalanceSnapshot.connector_id == connector_id, BalanceSnapshot.taken_at < before]
        if since is not None:
            span.append(BalanceSnapshot.taken_at >= since)
        hour = queries.bucket_of(session, "hour")
        last = func.max(BalanceSnapshot.taken_at).over(partition_by=(BalanceSnapshot.account_type, hour))
        ranked = select(BalanceSnapshot.id, BalanceSnapshot.account_type, BalanceSnapshot.taken_at,
                        last.label("last")).where(*span).subquery()
        first = (select(BalanceSnapshot.account_type, func.min(BalanceSnapshot.taken_at).label("first"))
                 .where(BalanceSnapshot.connector_id == connector_id).group_by(BalanceSnapshot.account_type)
                 .subquery())
        doomed = (select(ranked.c.id).join(first, first.c.account_type == ranked.c.account_type)
                  .where(ranked.c.taken_at < ranked.c.last, ranked.c.taken_at > first.c.first))
        return int(session.execute(delete(BalanceSnapshot).where(BalanceSnapshot.id.in_(doomed))).rowcount or 0)


#: per database (URL and identity), the ``before`` of its last complete thinning in this process:
#: the next run starts at that hour, not at the first snapshot
_THINNED: dict[tuple[str, str], datetime] = {}


def thin(now: datetime | None = None) -> int:
    """``thin_connector`` for every account, of snapshots older than ``SNAPSHOT_DETAIL_DAYS``;
    returns the rows deleted. Never raises (the worker's loop goes on): a failure is logged and
    the next hour tries again."""
    before = (now or utcnow()) - timedelta(days=get_settings().snapshot_detail_days)
    deleted = 0
    try:
        with session_scope() as session:
            owners = list(session.scalars(select(Connector.id)))
            state = queries.write_state(session)
        key = (get_settings().database_url, state.identity if state is not None else "")
        done = _THINNED.get(key)
        since = None if done is None or done > before else done.replace(minute=0, second=0, microsecond=0)
        for connector_id in owners:
            deleted += thin_connector(connector_id, before, since)
        _THINNED[key] = before
    except SQLAlchemyError as error:
        log.error("balance snapshots not thinned: %s", describe_failure(error))
    except Exception:  # noqa: BLE001 - the loop must go on
        log.exception("thinning balance snapshots failed")
    if deleted:
        log.info("thinned %d balance snapshot rows older than %s", deleted, before.isoformat(timespec="minutes"))
    return deleted

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
one account per transaction, so a sync writing an account's new snapshots never waits long.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select, tuple_, union
from sqlalchemy.exc import SQLAlchemyError

from lib.db import describe_failure, session_scope
from lib.models import BalanceSnapshot, Connector, utcnow
from lib.queries import bucket_of
from lib.settings import get_settings

log = logging.getLogger(__name__)


def thin_connector(connector_id: int, before: datetime) -> int:
    """Delete the connector's snapshot rows taken before ``before`` except, per account type, the
    last moment of each UTC hour and the first moment; returns the rows deleted."""
    with session_scope() as session:
        owned = BalanceSnapshot.connector_id == connector_id
        last_of_hour = (select(BalanceSnapshot.account_type, func.max(BalanceSnapshot.taken_at))
                        .where(owned, BalanceSnapshot.taken_at < before)
                        .group_by(BalanceSnapshot.account_type, bucket_of(session, "hour")))
        first = select(BalanceSnapshot.account_type, func.min(BalanceSnapshot.taken_at)).where(owned).group_by(
            BalanceSnapshot.account_type)
        kept = union(last_of_hour, first).subquery()
        deleted = session.execute(
            delete(BalanceSnapshot).where(owned, BalanceSnapshot.taken_at < before,
                                          tuple_(BalanceSnapshot.account_type, BalanceSnapshot.taken_at)
                                          .not_in(select(kept.c[0], kept.c[1]))))
        return int(deleted.rowcount or 0)


def thin(now: datetime | None = None) -> int:
    """``thin_connector`` for every account with snapshots older than ``SNAPSHOT_DETAIL_DAYS``;
    returns the rows deleted. Never raises (the worker's loop goes on): a failure is logged and
    the next hour tries again."""
    before = (now or utcnow()) - timedelta(days=get_settings().snapshot_detail_days)
    deleted = 0
    try:
        with session_scope() as session:
            owners = list(session.scalars(select(Connector.id)))
        for connector_id in owners:
            deleted += thin_connector(connector_id, before)
    except SQLAlchemyError as error:
        log.error("balance snapshots not thinned: %s", describe_failure(error))
    except Exception:  # noqa: BLE001 - the loop must go on
        log.exception("thinning balance snapshots failed")
    if deleted:
        log.info("thinned %d balance snapshot rows older than %s", deleted, before.isoformat(timespec="minutes"))
    return deleted

"""A per-bucket claim in the database: one embedding task per bucket at a time, across worker processes.

The holder renews `busy_until` from a background thread; a holder that died stops renewing and its claim
lapses, so the next task takes the bucket over.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta

from sqlalchemy import or_, select, update

from inferline.stores.db import Database
from inferline.stores.embeddings_tables import EmbeddedBucket
from inferline.stores.tables import utcnow

CLAIM = timedelta(seconds=60)
POLL_SECONDS = 0.5


@contextmanager
def bucket_claim(
    db: Database, tenant_id: str, bucket: str, task_id: str, check: Callable[[], None]
) -> Iterator[bool]:
    """Hold the bucket for `task_id` until the block ends, waiting while another live task holds it.

    Yields False when the bucket is not embedded (any more). `check` runs between waits (e.g. to cancel).
    """
    scope = (EmbeddedBucket.tenant_id == tenant_id) & (EmbeddedBucket.bucket == bucket)
    while True:
        now = utcnow()
        with db.session() as s:
            won = s.execute(
                update(EmbeddedBucket)
                .where(
                    scope,
                    or_(
                        EmbeddedBucket.busy_task.is_(None),
                        EmbeddedBucket.busy_task == task_id,
                        EmbeddedBucket.busy_until < now,
                    ),
                )
                .values(busy_task=task_id, busy_until=now + CLAIM)
                .execution_options(synchronize_session=False)
            ).rowcount
            exists = won or s.scalar(select(EmbeddedBucket.id).where(scope)) is not None
        if won or not exists:
            break
        check()
        time.sleep(POLL_SECONDS)
    if not won:
        yield False
        return
    done = threading.Event()

    def renew() -> None:
        while not done.wait(CLAIM.total_seconds() / 4):
            with db.session() as s:
                s.execute(
                    update(EmbeddedBucket)
                    .where(scope, EmbeddedBucket.busy_task == task_id)
                    .values(busy_until=utcnow() + CLAIM)
                    .execution_options(synchronize_session=False)
                )

    renewer = threading.Thread(target=renew, name=f"claim-{bucket}", daemon=True)
    renewer.start()
    try:
        yield True
    finally:
        done.set()
        renewer.join()
        with db.session() as s:
            s.execute(
                update(EmbeddedBucket)
                .where(scope, EmbeddedBucket.busy_task == task_id)
                .values(busy_task=None, busy_until=None)
                .execution_options(synchronize_session=False)
            )

"""`LoopCounters`: PostgreSQL's rate counters bumped from the event loop, on psycopg's async connections.

A limited request's count is one round trip to PostgreSQL (`ops.limits`). Made from a worker thread it also
paid the hop there and back, ~0.15 ms of the ~0.33 ms a count added to a trivial request; awaited on the loop
it pays the round trip alone, and the loop serves other requests meanwhile. Each event loop keeps up to `size`
autocommit connections (`synchronous_commit=off`, like the worker threads' counters). Where none is free, or a
connection fails, the count goes to the worker thread (`CounterBusy`) and the failed connection is dropped,
with the loop's idle ones (a restarted server took them too): a connection lost after PostgreSQL counted but
before it answered may count that request twice.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any, TypeVar

from inferline.ops.limits import CounterBusy, Plan

T = TypeVar("T")

CONNECT_SECONDS = 5
APPLICATION_NAME = "inferline-limits"


class LoopCounters:
    """Counts requests against PostgreSQL's `rate_counters` from whichever event loop calls `run`."""

    def __init__(self, conninfo: str, size: int = 4) -> None:
        self.conninfo = conninfo  # a libpq URI (`postgresql://…`)
        self.size = size
        self._free: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, list[Any]] = (
            weakref.WeakKeyDictionary()
        )
        self._opened: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, int] = weakref.WeakKeyDictionary()
        self._all: weakref.WeakSet[Any] = weakref.WeakSet()  # every open connection (`close`)

    async def run(self, plan: Plan[T], *, atomic: bool) -> T:
        """Run a statement plan (`ops.limits.counting` or `adding`, `%s` placeholders; `atomic`: in one
        transaction); `CounterBusy`, before running anything, when no connection is free or one cannot be
        opened, and after a connection failed."""
        import psycopg

        loop = asyncio.get_running_loop()
        conn = await self._take(loop)
        try:
            if atomic:
                async with conn.transaction():
                    done = await _run(conn, plan)
            else:  # one statement is atomic on its own (autocommit)
                done = await _run(conn, plan)
        except psycopg.Error as exc:
            await self._drop(loop, conn)
            for idle in self._free.pop(loop, []):  # most likely gone the same way (a restarted server)
                await self._drop(loop, idle)
            raise CounterBusy(f"PostgreSQL counter connection: {exc}") from exc
        except BaseException:  # cancelled mid-count (the client left): the connection's state is unknown
            await self._drop(loop, conn)
            raise
        self._free.setdefault(loop, []).append(conn)
        return done

    async def _take(self, loop: asyncio.AbstractEventLoop) -> Any:
        import psycopg

        free = self._free.setdefault(loop, [])
        if free:
            return free.pop()
        opened = self._opened.get(loop, 0)
        if opened >= self.size:
            raise CounterBusy("every counter connection of this event loop is busy")
        self._opened[loop] = opened + 1
        try:
            conn = await psycopg.AsyncConnection.connect(
                self.conninfo,
                autocommit=True,
                connect_timeout=CONNECT_SECONDS,
                client_encoding="utf8",
                application_name=APPLICATION_NAME,
                options="-c synchronous_commit=off",
            )
        except BaseException as exc:
            self._opened[loop] -= 1
            if isinstance(exc, psycopg.Error):
                raise CounterBusy(f"PostgreSQL counter connection: {exc}") from exc
            raise
        self._all.add(conn)
        return conn

    async def _drop(self, loop: asyncio.AbstractEventLoop, conn: Any) -> None:
        self._opened[loop] = self._opened.get(loop, 1) - 1
        self._all.discard(conn)
        await conn.close()

    def close(self) -> None:
        """Close every connection, from any thread (libpq's close needs no event loop)."""
        for conn in list(self._all):
            conn.pgconn.finish()
        self._all = weakref.WeakSet()
        self._free = weakref.WeakKeyDictionary()
        self._opened = weakref.WeakKeyDictionary()


async def _run(conn: Any, plan: Plan[T]) -> T:
    async with conn.cursor() as cursor:
        try:
            statement = next(plan)
            while True:
                await cursor.execute(*statement)
                statement = plan.send(await cursor.fetchone())
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]

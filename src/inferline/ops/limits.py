"""Per-tenant and per-key limits, shared by every API replica through the database.

Requests and tokens per window (default 60 s: per minute) for chat and embeddings are fixed-window counters in
`rate_counters`, bumped by one atomic upsert (`INSERT … ON CONFLICT DO UPDATE … RETURNING`, SQLite and
PostgreSQL alike) in autocommit: one statement and one round trip per request and limit, sent to the driver
as is. On a SQLite file the event loop counts a request itself when it can do so without waiting
(`admit_now`); otherwise, and on PostgreSQL, a worker thread does (`admit`). Tokens are counted
when a request finishes; a request is refused while its window's tokens are spent. Concurrent transcriptions
are rows in `inflight_slots` that expire on their own if a process dies.
"""

from __future__ import annotations

import math
import sqlite3
import threading
import time
import uuid
from collections.abc import Generator
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import create_engine, delete, func, select, tuple_
from sqlalchemy.engine import Connection, Engine

from inferline.errors import RateLimited, ValidationFailed
from inferline.keys import Principal
from inferline.stores.db import Database
from inferline.stores.ops_tables import InflightSlot, RateCounter, TenantLimit

if TYPE_CHECKING:
    from inferline.ops.pg_counters import LoopCounters

CACHE_SECONDS = 1.0  # limits read from the database at most this often per (tenant, key) and process
SLOT_SECONDS = 3600.0  # a transcription slot left by a dead process frees itself after this long
CATEGORIES = ("chat", "embeddings")
SWEEP_SECONDS = 60.0  # old counters are deleted at most this often per process
NOW_EVERY = 256  # every so many `admit_now` calls go to a worker thread (see `admit_now`)
LIMIT_FIELDS = (
    "chat_requests",
    "chat_tokens",
    "embeddings_requests",
    "embeddings_tokens",
    "concurrent_transcriptions",
    "storage_bytes",
)


class CounterBusy(Exception):
    """`LimitService.admit_now` cannot count without waiting: `admit` in a worker thread must."""


@dataclass(frozen=True)
class Limits:
    """One tenant's (key_id "") or key's limits; None is unlimited. Rates are per `window_seconds`."""

    tenant_id: str
    key_id: str = ""
    window_seconds: int = 60
    chat_requests: int | None = None
    chat_tokens: int | None = None
    embeddings_requests: int | None = None
    embeddings_tokens: int | None = None
    concurrent_transcriptions: int | None = None
    storage_bytes: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _limits(row: TenantLimit) -> Limits:
    return Limits(**{f.name: getattr(row, f.name) for f in fields(Limits)})


def reset_text(seconds: float) -> str:
    """OpenAI's reset format: `20ms`, `1s`, `6m0s`."""
    if seconds < 1:
        return f"{max(1, math.ceil(seconds * 1000))}ms"
    whole = math.ceil(seconds)
    return f"{whole // 60}m{whole % 60}s" if whole >= 60 else f"{whole}s"


@dataclass
class _Window:
    limit: int
    used: int
    reset: float  # seconds until the window ends

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.used)


Counted = tuple[list[_Window], list[_Window], str]  # request windows, token windows, the spent limit or ""
T = TypeVar("T")
# A statement plan: yields (statement, parameters), is sent each statement's first row, returns its result.
Plan = Generator[tuple[str, tuple[Any, ...]], tuple[Any, ...] | None, T]


class LimitService:
    """Reads and writes limits; admits requests against them (see the module docstring)."""

    def __init__(self, db: Database, cache_seconds: float = CACHE_SECONDS) -> None:
        self.db = db
        self.cache_seconds = cache_seconds
        self._cache: dict[tuple[str, str], tuple[float, Limits | None]] = {}
        self._used: dict[tuple[str, str], float] = {}  # when each entry last answered a request
        self._lock = threading.Lock()
        self._last_sweep = 0.0
        self._counter_engine: Engine | None = None
        self._now = threading.local()  # `conn`: the thread's own SQLite connection (`admit_now`)
        self._now_connections: list[sqlite3.Connection] = []
        self._now_calls = 0
        self._now_unusable = ""  # why the loop cannot have a SQLite connection of its own, once known
        self._loop_counters: LoopCounters | None = None  # PostgreSQL: counts awaited on the event loop
        if not db.is_sqlite:
            from inferline.ops.pg_counters import LoopCounters

            url = db.engine.url.set(drivername="postgresql")
            self._loop_counters = LoopCounters(url.render_as_string(hide_password=False))

    # --- configuration -------------------------------------------------------------------------------------
    def set(self, tenant_id: str, key_id: str = "", **values: Any) -> Limits:
        """Create or update the limits of a tenant (key_id "") or key; fields not given keep their value."""
        for name, value in values.items():
            if name not in LIMIT_FIELDS and name != "window_seconds":
                raise ValidationFailed(f"Unknown limit {name!r}.", pointer=f"/{name}")
            if value is not None and (
                not isinstance(value, int) or value < (1 if name == "window_seconds" else 0)
            ):
                raise ValidationFailed(f"{name} must be a non-negative integer or null.", pointer=f"/{name}")
        with self.db.session() as s:
            row = s.get(TenantLimit, (tenant_id, key_id))
            if row is None:
                row = TenantLimit(tenant_id=tenant_id, key_id=key_id, window_seconds=60)
                s.add(row)
            for name, value in values.items():
                if name == "window_seconds" and value is None:
                    continue
                setattr(row, name, value)
            s.flush()
            limits = _limits(row)
        self._forget(tenant_id, key_id)
        return limits

    def get(self, tenant_id: str, key_id: str = "") -> Limits | None:
        with self.db.session() as s:
            row = s.get(TenantLimit, (tenant_id, key_id))
            return _limits(row) if row is not None else None

    def list(self, tenant_id: str | None = None) -> list[Limits]:
        with self.db.session() as s:
            query = select(TenantLimit).order_by(TenantLimit.tenant_id, TenantLimit.key_id)
            if tenant_id is not None:
                query = query.where(TenantLimit.tenant_id == tenant_id)
            return [_limits(r) for r in s.scalars(query)]

    def delete(self, tenant_id: str, key_id: str = "") -> bool:
        with self.db.session() as s:
            gone = s.execute(
                delete(TenantLimit).where(TenantLimit.tenant_id == tenant_id, TenantLimit.key_id == key_id)
            ).rowcount
        self._forget(tenant_id, key_id)
        return bool(gone)

    def _forget(self, tenant_id: str, key_id: str) -> None:
        with self._lock:
            self._cache.pop((tenant_id, key_id), None)
            self._used.pop((tenant_id, key_id), None)

    def applicable(self, principal: Principal) -> list[Limits]:
        """The tenant's and the key's limits (cached for `cache_seconds`); empty when none are set."""
        cached = self.cached(principal)
        if cached is not None:
            return cached
        now = time.monotonic()
        keys = ((principal.tenant_id, ""), (principal.tenant_id, principal.key_id))
        with self.db.session() as s:
            read = [(key, s.get(TenantLimit, key)) for key in keys]
            found = [(key, _limits(row) if row is not None else None) for key, row in read]
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
                self._used.clear()
            for key, limits in found:
                self._cache[key] = (now, limits)
                self._used[key] = now
        return [limits for _, limits in found if limits is not None]

    def prepare(self) -> None:
        """Reads the limits of a key no tenant has, so that SQLAlchemy builds and caches the statement now and
        not in the first request after a start (`web.first_request`); nothing is cached."""
        with self.db.session() as s:
            s.get(TenantLimit, ("", ""))

    def cached(self, principal: Principal) -> list[Limits] | None:
        """`applicable` from the cache alone (no database read: safe on the event loop); None when either
        entry is missing or older than `cache_seconds`."""
        now, found = time.monotonic(), []
        keys = ((principal.tenant_id, ""), (principal.tenant_id, principal.key_id))
        for key in keys:
            hit = self._cache.get(key)
            if hit is None or now - hit[0] >= self.cache_seconds:
                return None
            if hit[1] is not None:
                found.append(hit[1])
        for key in keys:
            self._used[key] = now
        return found

    def refresh(self, idle_seconds: float) -> None:
        """Re-read the cached limits used in the last `idle_seconds`, in one query (`ops.cache_refresh`):
        each is trusted for another `cache_seconds` from the query's start; idle entries are dropped."""
        started = time.monotonic()
        with self._lock:
            idle = [k for k in self._cache if started - self._used.get(k, 0.0) >= idle_seconds]
            for key in idle:
                self._cache.pop(key, None)
                self._used.pop(key, None)
            wanted = list(self._cache)
        if not wanted:
            return
        tenants = sorted({tenant for tenant, _ in wanted})
        found: dict[tuple[str, str], Limits] = {}
        with self.db.session() as s:
            for start in range(0, len(tenants), 500):
                query = select(TenantLimit).where(TenantLimit.tenant_id.in_(tenants[start : start + 500]))
                found.update(((row.tenant_id, row.key_id), _limits(row)) for row in s.scalars(query))
        with self._lock:
            for key in wanted:
                hit = self._cache.get(key)
                if hit is not None and hit[0] < started:  # not forgotten or re-read meanwhile
                    self._cache[key] = (started, found.get(key))

    def unlimited(self, principal: Principal, *names: str) -> bool:
        """True when the cache shows none of the limits `names` set for the principal's tenant or key (the
        request needs no counter); False when one is set or the cache must be read again."""
        cached = self.cached(principal)
        return cached is not None and all(getattr(lim, n) is None for lim in cached for n in names)

    # --- admission -----------------------------------------------------------------------------------------
    def admit(self, principal: Principal, category: str) -> tuple[dict[str, str], str]:
        """Count one request of `category` ("chat" or "embeddings") against every applicable limit.

        Returns the `x-ratelimit-*` headers (the tightest limit), and raises `RateLimited` with them and
        `Retry-After` when a limit is spent; the second value names the refused limit (else "")."""
        subjects = self._subjects(self.applicable(principal), category)
        if not subjects:
            return {}, ""
        now = time.time()
        with self._counters() as conn:
            cursor = conn.connection.cursor()
            try:
                windows = run_plan(
                    cursor, counting(conn.dialect.paramstyle == "qmark", subjects, category, now)
                )
            finally:
                cursor.close()
        self._sweep(now)
        return verdict(category, *windows)

    async def admit_on_loop(self, principal: Principal, category: str) -> tuple[dict[str, str], str]:
        """`admit` from the event loop, without a worker thread: on a SQLite file at once (`admit_now`), on
        PostgreSQL awaiting the round trip on an async connection (`ops.pg_counters`). `CounterBusy`, before
        counting anything, where it cannot: then `admit` in a worker thread must."""
        if self._loop_counters is None:
            return self.admit_now(principal, category)
        subjects, now = self._loop_plan(principal, category)
        if not subjects:
            return {}, ""
        plan = counting(False, subjects, category, now)
        atomic = statement_count(subjects, category) > 1
        return verdict(category, *await self._loop_counters.run(plan, atomic=atomic))

    def _loop_plan(self, principal: Principal, category: str) -> tuple[list[tuple[Limits, str]], float]:
        """The subjects to count from the event loop, and the time; `CounterBusy` when the limits are not
        cached (reading them is a worker thread's job) or the old counters' sweep is due (likewise)."""
        cached = self.cached(principal)
        if cached is None:
            raise CounterBusy("the limits are not cached")
        now = time.time()
        if now - self._last_sweep >= SWEEP_SECONDS:
            raise CounterBusy("the sweep of old counters is due")
        return self._subjects(cached, category), now

    def admit_now(self, principal: Principal, category: str) -> tuple[dict[str, str], str]:
        """`admit` in the calling thread without waiting for anything: the event loop calls it, which saves a
        worker-thread hop and SQLAlchemy's statement building (a limited trivial request: ~0.56 ms before,
        `bench/bench_ops.py`). SQLite only, in one transaction on a connection of this thread's own that
        never waits for a lock; `CounterBusy`, before counting anything, where that cannot be: PostgreSQL
        (see `admit_on_loop`), an in-memory database, the limits not cached, another writer holding the
        database, a sweep due, and every `NOW_EVERY`-th call. That connection never checkpoints the
        write-ahead log (a checkpoint syncs the disk); those calls, in a worker thread, do it when it is due.
        """
        subjects, now = self._loop_plan(principal, category)
        if not subjects:
            return {}, ""
        plan = counting(True, subjects, category, now)
        return verdict(category, *self._run_now(plan, atomic=statement_count(subjects, category) > 1))

    def _run_now(self, plan: Plan[T], *, atomic: bool) -> T:
        """Run `plan` on this thread's own SQLite connection (`atomic`: in one transaction); `CounterBusy`,
        with nothing written, where that would wait or every `NOW_EVERY`-th call (see `admit_now`)."""
        self._now_calls += 1
        if self._now_calls % NOW_EVERY == 0:
            raise CounterBusy("a checkpoint may be due")
        try:
            cursor = self._now_connection().cursor()
        except sqlite3.Error as exc:
            raise CounterBusy(str(exc)) from exc
        try:
            if atomic:  # else one statement: atomic on its own (autocommit)
                cursor.execute("BEGIN IMMEDIATE")
            try:
                done = run_plan(cursor, plan)
                if atomic:
                    cursor.execute("COMMIT")
            except BaseException:
                if cursor.connection.in_transaction:
                    cursor.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:  # locked by another writer (or worse: the worker thread will tell)
            raise CounterBusy(str(exc)) from exc
        finally:
            cursor.close()
        return done

    def _now_connection(self) -> sqlite3.Connection:
        """This thread's own autocommit connection to the SQLite file: busy timeout 0 (a lock held elsewhere
        fails at once), synchronous NORMAL like the others, no automatic checkpoints."""
        conn: sqlite3.Connection | None = getattr(self._now, "conn", None)
        if conn is not None:
            return conn
        path = self.db.sqlite_file
        if path is None or self._now_unusable:
            raise CounterBusy(self._now_unusable or "not a SQLite file")
        conn = sqlite3.connect(path, timeout=0, isolation_level=None, check_same_thread=False)
        try:
            if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":  # e.g. a file system without it
                self._now_unusable = "the SQLite file is not in WAL mode"
                raise CounterBusy(self._now_unusable)
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA wal_autocheckpoint=0")
        except BaseException:
            conn.close()
            raise
        with self._lock:
            self._now_connections.append(conn)
        self._now.conn = conn
        return conn

    def add_tokens(self, principal: Principal, category: str, tokens: int) -> None:
        """Count the tokens a finished request used against its tokens-per-window limits."""
        limits = _token_limits(self.applicable(principal), category)
        if tokens <= 0 or not limits:
            return
        with self._counters() as conn:
            cursor = conn.connection.cursor()
            try:
                qmark = conn.dialect.paramstyle == "qmark"
                run_plan(cursor, adding(qmark, limits, category, time.time(), tokens))
            finally:
                cursor.close()

    async def add_tokens_on_loop(self, principal: Principal, category: str, tokens: int) -> None:
        """`add_tokens` from the event loop, as `admit_on_loop` counts requests; `CounterBusy`, with nothing
        counted, where it cannot."""
        cached = self.cached(principal)
        if cached is None:
            raise CounterBusy("the limits are not cached")
        limits = _token_limits(cached, category)
        if tokens <= 0 or not limits:
            return
        now = time.time()
        if self._loop_counters is None:
            self._run_now(adding(True, limits, category, now, tokens), atomic=len(limits) > 1)
        else:
            await self._loop_counters.run(
                adding(False, limits, category, now, tokens), atomic=len(limits) > 1
            )

    def acquire_slot(self, principal: Principal, category: str = "transcriptions") -> str:
        """Take one concurrent slot (`concurrent_<category>` limits); "" when unlimited. 429 when full."""
        limits = [
            lim
            for lim in self.applicable(principal)
            if getattr(lim, f"concurrent_{category}", None) is not None
        ]
        if not limits:
            return ""
        slot, now = uuid.uuid4().hex, time.time()
        with self.db.session() as s:
            s.execute(delete(InflightSlot).where(InflightSlot.expires_at < now))
            full = False
            for n, lim in enumerate(limits):
                subject = self._subject(lim, category)
                s.add(InflightSlot(id=f"{slot}:{n}", subject=subject, expires_at=now + SLOT_SECONDS))
                s.flush()
                running = s.scalar(select(func.count()).where(InflightSlot.subject == subject)) or 0
                full = full or running > getattr(lim, f"concurrent_{category}")
            if full:  # the session rolls the slots back
                raise RateLimited(
                    f"Too many concurrent {category}: retry when one finishes.",
                    headers={"retry-after": "1"},
                )
        return slot

    def release_slot(self, slot: str) -> None:
        if slot:
            with self.db.session() as s:
                s.execute(delete(InflightSlot).where(InflightSlot.id.startswith(slot + ":")))

    def _counters(self) -> Connection:
        """A connection in autocommit mode: each counter upsert is one statement, atomic on its own, and one
        round trip (no BEGIN/COMMIT). On PostgreSQL from an engine of its own that is autocommit throughout
        (no isolation level set and reset around each use) with `synchronous_commit=off`: a counter's commit
        does not wait for its WAL flush (a crash may forget the last fraction of a second of counts)."""
        if self.db.engine.dialect.name == "sqlite":
            return self.db.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        with self._lock:
            if self._counter_engine is None:
                self._counter_engine = create_engine(
                    self.db.engine.url,
                    isolation_level="AUTOCOMMIT",
                    pool_pre_ping=True,
                    pool_size=10,
                    max_overflow=10,
                    connect_args={"client_encoding": "utf8", "options": "-c synchronous_commit=off"},
                )
        return self._counter_engine.connect()

    def close(self) -> None:
        """Close the counters' connections (PostgreSQL's engine, the threads' own SQLite connections)."""
        with self._lock:
            for conn in self._now_connections:
                conn.close()
            self._now_connections.clear()
            self._now = threading.local()
            if self._loop_counters is not None:
                self._loop_counters.close()
            if self._counter_engine is not None:
                self._counter_engine.dispose()
                self._counter_engine = None

    @classmethod
    def _subjects(cls, limits: list[Limits], category: str) -> list[tuple[Limits, str]]:
        """The limits that count requests of `category`, each with its counter's subject."""
        return [
            (lim, cls._subject(lim, category))
            for lim in limits
            if getattr(lim, f"{category}_requests") is not None
            or getattr(lim, f"{category}_tokens") is not None
        ]

    @staticmethod
    def _subject(lim: Limits, category: str) -> str:
        return f"k:{lim.key_id}:{category}" if lim.key_id else f"t:{lim.tenant_id}:{category}"

    def _sweep(self, now: float) -> None:
        """Delete counters of windows that ended more than a day ago (at most once a minute per process). The
        table does not say how long a counter's window is: that of its owner's limit when it is longer than a
        minute (a weekly limit's counter lives through its week), else a minute."""
        if now - self._last_sweep < SWEEP_SECONDS:
            return
        self._last_sweep = now
        cutoff = int(now) - 86_400
        with self.db.session() as s:
            longer = s.execute(
                select(TenantLimit.tenant_id, TenantLimit.key_id, TenantLimit.window_seconds).where(
                    TenantLimit.window_seconds > 60
                )
            )
            windows = {(f"k:{key}" if key else f"t:{tenant}"): seconds for tenant, key, seconds in longer}
            old = s.execute(
                select(RateCounter.subject, RateCounter.window_start).where(
                    RateCounter.window_start < cutoff - 60
                )
            )
            # a subject is `<owner>:<category>:<req|tok>` (`_subject`), the owner `t:<tenant>` or `k:<key>`
            ended = [
                (subject, start)
                for subject, start in old
                if start + windows.get(subject.rsplit(":", 2)[0], 60) < cutoff
            ]
            for at in range(0, len(ended), 500):
                pairs = tuple_(RateCounter.subject, RateCounter.window_start)
                s.execute(delete(RateCounter).where(pairs.in_(ended[at : at + 500])))


# One statement per counter, sent to the driver as is: building and compiling SQLAlchemy's upsert took ~190 µs
# of the ~220 µs that counting a request took on SQLite (the statement itself: ~30 µs).
UPSERT = (
    "INSERT INTO rate_counters (subject, window_start, count) VALUES (?, ?, ?) "
    "ON CONFLICT (subject, window_start) DO UPDATE SET count = rate_counters.count + excluded.count "
    "RETURNING count"
)
READ = "SELECT count FROM rate_counters WHERE subject = ? AND window_start = ?"


def counting(qmark: bool, subjects: list[tuple[Limits, str]], category: str, now: float) -> Plan[Counted]:
    """The statements that count one request against each subject's window, as a generator: it yields each
    statement (placeholders `?` when `qmark`, else `%s`) with its parameters and is sent the statement's first
    row; it returns the request windows, the token windows and the name of the spent limit ("" when
    admitted). A request is not counted once a limit refuses it. Runners: `run_plan` (a DB-API cursor) and
    `ops.pg_counters` (psycopg's async connections)."""
    upsert, read = (UPSERT, READ) if qmark else (UPSERT.replace("?", "%s"), READ.replace("?", "%s"))
    requests: list[_Window] = []
    tokens: list[_Window] = []
    refused = ""
    for lim, subject in subjects:
        start, reset = _window(now, lim.window_seconds)
        token_limit = getattr(lim, f"{category}_tokens")
        if token_limit is not None:
            row = yield read, (subject + ":tok", start)
            used = int(row[0]) if row else 0
            tokens.append(_Window(token_limit, used, reset))
            if used >= token_limit:
                refused = refused or f"{category}_tokens"
        request_limit = getattr(lim, f"{category}_requests")
        if request_limit is not None and not refused:
            row = yield upsert, (subject + ":req", start, 1)  # the upsert returns the new count
            used = int(row[0]) if row else 0
            requests.append(_Window(request_limit, used, reset))
            if used > request_limit:
                refused = f"{category}_requests"
        elif request_limit is not None:
            requests.append(_Window(request_limit, request_limit, reset))
    return requests, tokens, refused


def adding(qmark: bool, limits: list[Limits], category: str, now: float, tokens: int) -> Plan[None]:
    """The statements that add a finished request's `tokens` to each limit's window (see `counting`)."""
    upsert = UPSERT if qmark else UPSERT.replace("?", "%s")
    for lim in limits:
        start, _ = _window(now, lim.window_seconds)
        yield upsert, (LimitService._subject(lim, category) + ":tok", start, tokens)


def _token_limits(limits: list[Limits], category: str) -> list[Limits]:
    return [lim for lim in limits if getattr(lim, f"{category}_tokens", None) is not None]


def statement_count(subjects: list[tuple[Limits, str]], category: str) -> int:
    """How many statements `counting` may run for these subjects (more than one: in a transaction)."""
    return sum(
        (getattr(lim, f"{category}_requests") is not None) + (getattr(lim, f"{category}_tokens") is not None)
        for lim, _ in subjects
    )


def run_plan(cursor: Any, plan: Plan[T]) -> T:
    """Run a statement plan (`counting`, `adding`) through a DB-API `cursor`; its result."""
    try:
        statement = next(plan)
        while True:
            cursor.execute(*statement)
            statement = plan.send(cursor.fetchone())
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


def verdict(
    category: str, requests: list[_Window], tokens: list[_Window], refused: str
) -> tuple[dict[str, str], str]:
    """The `x-ratelimit-*` headers of the counted windows; `RateLimited` with `Retry-After` when refused."""
    headers = _headers(requests, "requests") | _headers(tokens, "tokens")
    if refused:
        spent = [w for w in requests + tokens if w.remaining == 0 or w.used > w.limit]
        wait = max((w.reset for w in spent), default=1.0)
        headers |= {
            "retry-after": str(max(1, math.ceil(wait))),
            "retry-after-ms": str(math.ceil(wait * 1000)),
        }
        what = "tokens" if refused.endswith("_tokens") else "requests"
        raise RateLimited(
            f"Rate limit reached for {category} {what}: retry after {reset_text(wait)}.", headers=headers
        )
    return headers, ""


def _window(now: float, seconds: int) -> tuple[int, float]:
    start = int(now // seconds) * seconds
    return start, start + seconds - now


def _headers(windows: list[_Window], what: str) -> dict[str, str]:
    if not windows:
        return {}
    tight = min(windows, key=lambda w: (w.remaining, -w.reset))
    return {
        f"x-ratelimit-limit-{what}": str(tight.limit),
        f"x-ratelimit-remaining-{what}": str(tight.remaining),
        f"x-ratelimit-reset-{what}": reset_text(tight.reset),
    }

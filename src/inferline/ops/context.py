"""What a request consumed, noted by the areas while it runs and read by the ops middleware at its end."""

from __future__ import annotations

import threading
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from inferline.stores.db import Database


@dataclass
class RequestOps:
    """One request's accounting: billable units per (metric, model), its limit category and refusal."""

    units: dict[tuple[str, str], float] = field(default_factory=dict)
    model: str = ""
    category: str = ""  # the limit category of the route ("chat", "embeddings", "transcriptions") or ""
    refusal: str = ""  # why a 429 was sent (metrics label)
    slot: str = ""  # an in-flight slot to release at the end
    ratelimit_headers: dict[str, str] = field(default_factory=dict)

    def tokens(self) -> int:
        return int(sum(q for (metric, _), q in self.units.items() if metric in TOKEN_METRICS))


class InFlight:
    """How many HTTP requests and WebSocket sessions this process serves now (the ops middleware counts)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # the count is process-wide; tests run servers on several loops
        self.count = 0

    def add(self, delta: int) -> None:
        with self._lock:
            self.count += delta

    @property
    def alone(self) -> bool:
        """Whether the request asking is the only one being served."""
        return self.count <= 1


IN_FLIGHT = InFlight()
TOKEN_METRICS = frozenset({"chat_prompt_tokens", "chat_completion_tokens", "embedding_tokens"})
CURRENT: ContextVar[RequestOps | None] = ContextVar("inferline_request_ops", default=None)


def note(metric: str, quantity: float, model: str = "") -> None:
    """Count `quantity` of `metric` (e.g. `chat_prompt_tokens`) in its Prometheus counter, and add it to the
    current request (metered per tenant and key when the request ends), if there is one."""
    from inferline.ops.metrics import count_units

    count_units({(metric, model): quantity})
    ops = CURRENT.get()
    if ops is not None and quantity:
        ops.units[(metric, model)] = ops.units.get((metric, model), 0.0) + quantity
        if model:
            ops.model = model


def chat_finished(
    model: str,
    prompt_tokens: int,
    completion_tokens: int,
    ttft: float | None,
    rate: float | None,
    wait: float,
    *,
    db: Database | None = None,
    tenant_id: str = "",
) -> None:
    """A finished chat generation: its tokens (metered: with the request's key, or, outside a request and
    given `db`, as the tenant's background usage), time to first token, decode rate and queue wait."""
    from inferline.ops.metrics import observe_chat

    for metric, tokens in (
        ("chat_prompt_tokens", prompt_tokens),
        ("chat_completion_tokens", completion_tokens),
    ):
        if db is not None and tenant_id:
            metered(db, tenant_id, metric, tokens, model)
        else:
            note(metric, tokens, model)
    observe_chat(model, ttft, rate, wait)


def refused(reason: str) -> None:
    """Name why the current request is refused with a 429 (a bounded label: `chat_requests`, `queue_full`)."""
    ops = CURRENT.get()
    if ops is not None:
        ops.refusal = reason


def metered(
    db: Database, tenant_id: str, metric: str, quantity: float, model: str = "", *, key_id: str = ""
) -> None:
    """Count `quantity` of `metric` for `tenant_id`: into the current request (metered with its key when it
    ends), or, in a background job, straight into the tenant's usage under `key_id` (the key that started
    the job, "" if none)."""
    if CURRENT.get() is not None:
        note(metric, quantity, model)
        return
    from inferline.ops.metrics import count_units
    from inferline.ops.usage import UsageMeter

    count_units({(metric, model): quantity})
    if quantity:
        UsageMeter(db).record(tenant_id, key_id, [(metric, model, quantity)])

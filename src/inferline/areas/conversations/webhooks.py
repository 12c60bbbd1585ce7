"""Signed webhooks: the Ed25519 key pair, the target-URL guard, and durable delivery with retries.

A delivery is signed the Telnyx way: Ed25519 over the UTF-8 bytes of `"{telnyx-timestamp}|{raw body}"`, sent
as base64 in `telnyx-signature-ed25519` next to `telnyx-timestamp` (unix seconds), so the `telnyx` SDKs'
`webhooks.unwrap(body, headers=…, key=<public key>)` verify it. Each delivery is a job (`deliver_webhook`);
a non-2xx answer or a connection error is retried with the queue's exponential backoff, and every attempt
is recorded in `webhook_attempts`. Targets pass the SSRF policy of `inferline.net`: checked (host
canonicalised, literal IPs and localhost judged) when a URL is saved, and delivered through `SafeHttpClient`,
which resolves the host once, checks every address and connects to the checked one.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from inferline import __version__
from inferline.errors import ValidationFailed
from inferline.jobs import JobContext, JobFailed, JobQueue, JobView
from inferline.net.policy import AllowList, UnsafeUrl
from inferline.net.safe_http import FetchFailed, SafeHttpClient
from inferline.stores.conversations_tables import WebhookAttempt, WebhookDelivery, WebhookSigningKey
from inferline.stores.db import Database
from inferline.stores.tables import utcnow

log = logging.getLogger("inferline.webhooks")

DELIVER_KIND = "deliver_webhook"
KEY_ID = "default"


class UnsafeWebhookUrl(ValidationFailed):
    """The webhook URL is not an allowed http(s) target."""


class WebhookSigner:
    """The server's Ed25519 key pair, generated once and stored in the database."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._lock = threading.Lock()
        self._key: Any = None

    def _signing_key(self) -> Any:
        from nacl.signing import SigningKey

        with self._lock:
            if self._key is None:
                with self.db.session() as s:
                    row = s.get(WebhookSigningKey, KEY_ID)
                if row is None:
                    fresh = SigningKey.generate()
                    try:
                        with self.db.session() as s:
                            s.add(
                                WebhookSigningKey(
                                    id=KEY_ID,
                                    private_key=base64.b64encode(bytes(fresh)).decode(),
                                    public_key=base64.b64encode(bytes(fresh.verify_key)).decode(),
                                )
                            )
                    except IntegrityError:
                        pass  # another process created it first: use theirs
                    with self.db.session() as s:
                        row = s.get(WebhookSigningKey, KEY_ID)
                assert row is not None
                self._key = SigningKey(base64.b64decode(row.private_key))
            return self._key

    def public_key(self) -> str:
        """The base64 32-byte public key users verify signatures with."""
        return base64.b64encode(bytes(self._signing_key().verify_key)).decode()

    def headers(self, body: str, timestamp: int | None = None) -> dict[str, str]:
        """`telnyx-timestamp` and `telnyx-signature-ed25519` for `body`."""
        ts = str(int(time.time()) if timestamp is None else timestamp)
        signature = self._signing_key().sign(f"{ts}|{body}".encode()).signature
        return {"telnyx-timestamp": ts, "telnyx-signature-ed25519": base64.b64encode(signature).decode()}


class WebhookService:
    """Queues signed deliveries and performs them from a job, recording every attempt."""

    def __init__(
        self,
        db: Database,
        jobs: JobQueue,
        signer: WebhookSigner,
        *,
        allowed_hosts: AllowList = AllowList(),
        timeout_seconds: float = 10.0,
        max_attempts: int = 5,
    ) -> None:
        self.db = db
        self.jobs = jobs
        self.signer = signer
        self.client = SafeHttpClient(
            allowed_hosts,
            setting="INFERLINE_WEBHOOK_ALLOWED_HOSTS",
            timeout=timeout_seconds,
            total_timeout=3 * timeout_seconds,
            max_redirects=0,
        )
        self.max_attempts = max_attempts

    def check_url(self, url: str, pointer: str = "/webhook") -> None:
        """Validate a webhook URL when it is saved (raises `ValidationFailed`).

        Its host is canonicalised (`http://2130706433/` is `127.0.0.1`) and literal IPs and localhost names
        checked; names are not resolved here (they may not resolve from here yet): delivery checks them.
        """
        try:
            self.client.policy.check_static(url, pointer)
        except UnsafeUrl as exc:
            raise UnsafeWebhookUrl(exc.detail, pointer=pointer) from None

    def enqueue(
        self,
        session: Session,
        *,
        tenant_id: str,
        url: str,
        event_type: str,
        body: dict[str, Any],
        run_id: str | None = None,
    ) -> str:
        """Record a delivery and its job in `session` (commit them with the rows they report on)."""
        delivery = WebhookDelivery(
            tenant_id=tenant_id,
            run_id=run_id,
            event_type=event_type,
            url=url,
            body=json.dumps(body, separators=(",", ":")),
            status="pending",
            attempts=0,
        )
        session.add(delivery)
        session.flush()
        delivery.job_id = self.jobs.enqueue(
            DELIVER_KIND,
            {"delivery_id": delivery.id},
            tenant_id,
            session=session,
            max_attempts=self.max_attempts,
        )
        return delivery.id

    def deliver(self, ctx: JobContext) -> None:
        """Job handler: one signed POST; raises to have the queue retry with backoff."""
        delivery_id = ctx.payload["delivery_id"]
        with self.db.session() as s:
            row = s.get(WebhookDelivery, delivery_id)
            if row is None or row.status == "delivered":
                return
            url, body = row.url, row.body
            row.attempts += 1
            attempt = row.attempts
        headers = {
            "content-type": "application/json",
            "user-agent": f"inferline-webhooks/{__version__}",
            **self.signer.headers(body),
        }
        started = time.monotonic()
        try:
            status = self.client.post(url, body.encode(), headers=headers, pointer="/webhook")
        except UnsafeUrl as exc:
            self._record(delivery_id, attempt, None, exc.detail, 0)
            raise JobFailed(exc.detail) from None
        except FetchFailed as exc:
            self._record(delivery_id, attempt, None, exc.detail, started)
            raise RuntimeError(f"webhook delivery to {url} failed: {exc.detail}") from None
        ok = 200 <= status < 300
        error = None if ok else f"HTTP {status}"
        self._record(delivery_id, attempt, status, error, started, delivered=ok)
        if not ok:
            raise RuntimeError(f"webhook {url} answered HTTP {status}")

    def _record(
        self,
        delivery_id: str,
        attempt: int,
        status_code: int | None,
        error: str | None,
        started: float,
        *,
        delivered: bool = False,
    ) -> None:
        duration = int((time.monotonic() - started) * 1000) if started else 0
        with self.db.session() as s:
            s.add(
                WebhookAttempt(
                    delivery_id=delivery_id,
                    attempt=attempt,
                    status_code=status_code,
                    error=error,
                    duration_ms=duration,
                )
            )
            row = s.get(WebhookDelivery, delivery_id)
            if row is not None:
                row.last_error = error
                if delivered:
                    row.status = "delivered"
                    row.delivered_at = utcnow()

    def on_failure(self, job: JobView, reason: str) -> None:
        """Failure hook: the delivery is given up with the reason."""
        with self.db.session() as s:
            row = s.get(WebhookDelivery, job.payload.get("delivery_id"))
            if row is not None and row.status != "delivered":
                row.status = "failed"
                row.last_error = reason

    def deliveries(self, tenant_id: str, run_id: str) -> list[dict[str, Any]]:
        """Deliveries of a run with their attempts, oldest first."""
        with self.db.session() as s:
            rows = s.scalars(
                select(WebhookDelivery)
                .where(WebhookDelivery.tenant_id == tenant_id, WebhookDelivery.run_id == run_id)
                .order_by(WebhookDelivery.created_at)
            ).all()
            out = []
            for row in rows:
                attempts = s.scalars(
                    select(WebhookAttempt)
                    .where(WebhookAttempt.delivery_id == row.id)
                    .order_by(WebhookAttempt.attempt, WebhookAttempt.id)
                ).all()
                out.append(
                    {
                        "id": row.id,
                        "url": row.url,
                        "event_type": row.event_type,
                        "status": row.status,
                        "attempts": [
                            {
                                "attempt": a.attempt,
                                "status_code": a.status_code,
                                "error": a.error,
                                "duration_ms": a.duration_ms,
                                "created_at": a.created_at,
                            }
                            for a in attempts
                        ],
                        "last_error": row.last_error,
                        "created_at": row.created_at,
                        "delivered_at": row.delivered_at,
                    }
                )
            return out

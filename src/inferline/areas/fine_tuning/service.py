"""Fine-tuning jobs: validate a chat-format JSONL training file, train a LoRA adapter as a durable job, and
publish the result as a tenant-private model id usable in chat completions.

`training_file` names an object in one of the tenant's buckets as `bucket/path/to/file.jsonl`. Each line is
`{"messages": [{"role": "system"|"user"|"assistant", "content": "..."}, ...]}` with at least one assistant
message. The file is validated when the job is created (422 naming the line) and again when the job starts
(the object may have changed): a bad file fails the job with a reason before training starts.

Lifecycle: queued -> running -> succeeded | failed | cancelled. The job row keeps step, total_steps and loss;
every step is also an event. A worker that dies mid-training leaves a queue job whose lease expires: the
next worker re-runs it from scratch, and once attempts are spent the failure hook marks the job failed, so a
restart never leaves a job stuck in `running`.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select, update

from inferline.areas.models.cache import TTLCache
from inferline.areas.models.service import REGISTRY_TTL_SECONDS, ModelService, metadata
from inferline.catalog import ModelEntry
from inferline.engines.lora_merge import MergeOutcome, merged_path
from inferline.engines.lora_trainer import SUPPORTED_ARCHS
from inferline.engines.training import (
    Conversation,
    Trainer,
    TrainingConfig,
    TrainingDataError,
    TrainingProgress,
)
from inferline.errors import BadRequest, EngineUnavailable, NotFound, ValidationFailed
from inferline.jobs import JobContext, JobFailed, JobQueue, JobView
from inferline.jobs.worker import JobCancelled
from inferline.ops import context as ops_context
from inferline.stores.db import Database, get_owned
from inferline.stores.fine_tuning_tables import FineTuningEvent, FineTuningJob
from inferline.stores.objects import ObjectStore
from inferline.stores.tables import utcnow

log = logging.getLogger("inferline.fine_tuning")

JOB_KIND = "train_lora"
QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED = "queued", "running", "succeeded", "failed", "cancelled"
TERMINAL = (SUCCEEDED, FAILED, CANCELLED)
MAX_TRAINING_FILE_BYTES = 50 * 1024 * 1024
MAX_EXAMPLES = 50_000
MAX_EPOCHS = 50
ROLES = ("system", "user", "assistant")
SUFFIX = re.compile(r"^[A-Za-z0-9._-]{1,40}$")
FT_PREFIX = "ft:"


@dataclass(frozen=True)
class FineTunedModel:
    """A succeeded job seen as a model: its id, the catalog base, the GGUF adapter to apply on it, and the
    base with the adapter merged in when the job kept one (served in place of both)."""

    id: str
    job_id: str
    tenant_id: str
    base: ModelEntry
    adapter_path: Path
    created_at: datetime
    merged_path: Path | None = None


def parse_training_file(data: bytes) -> list[list[dict[str, str]]]:
    """The conversations of a chat-format JSONL file; `ValidationFailed` naming the first bad line."""

    def bad(detail: str) -> ValidationFailed:
        return ValidationFailed(f"Invalid training file: {detail}", pointer="/training_file")

    if len(data) > MAX_TRAINING_FILE_BYTES:
        raise bad(f"it is {len(data)} bytes; the limit is {MAX_TRAINING_FILE_BYTES}")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise bad(f"it is not UTF-8 text (byte {exc.start})") from None
    conversations: list[list[dict[str, str]]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise bad(f"line {number} is not JSON ({exc.msg})") from None
        conversations.append(_conversation(record, number, bad))
        if len(conversations) > MAX_EXAMPLES:
            raise bad(f"more than {MAX_EXAMPLES} examples")
    if not conversations:
        raise bad("it holds no examples (one JSON object per line, each with a `messages` list)")
    return conversations


def _conversation(record: Any, number: int, bad: Callable[[str], ValidationFailed]) -> list[dict[str, str]]:
    if not isinstance(record, dict) or not isinstance(record.get("messages"), list) or not record["messages"]:
        raise bad(f"line {number} must be an object with a non-empty `messages` list")
    unknown = set(record) - {"messages"}
    if unknown:
        raise bad(f"line {number} has unsupported keys: {', '.join(sorted(unknown))}")
    messages = []
    for index, message in enumerate(record["messages"]):
        where = f"line {number}, message {index}"
        if not isinstance(message, dict):
            raise bad(f"{where} must be an object")
        extra = set(message) - {"role", "content", "name"}
        if extra:
            raise bad(f"{where} has unsupported keys: {', '.join(sorted(extra))}")
        role, content = message.get("role"), message.get("content")
        if role not in ROLES:
            raise bad(f"{where} has role {role!r}; expected one of {', '.join(ROLES)}")
        if isinstance(content, list) and all(
            isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str)
            for p in content
        ):
            content = "".join(p["text"] for p in content)
        if not isinstance(content, str) or not content.strip():
            raise bad(f"{where} needs a non-empty string `content`")
        messages.append({"role": role, "content": content})
    if not any(m["role"] == "assistant" for m in messages):
        raise bad(f"line {number} has no assistant message to learn from")
    return messages


_SCALAR_SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}


def gguf_architecture(path: Path) -> str | None:
    """`general.architecture` of a GGUF file, read from its header without the `gguf` package."""
    with path.open("rb") as f:

        def u(n: int) -> int:
            return int.from_bytes(f.read(n), "little")

        def skip(kind: int) -> None:
            if kind == 8:
                f.seek(u(8), 1)
            elif kind == 9:
                inner, count = u(4), u(8)
                for _ in range(count):
                    skip(inner)
            else:
                f.seek(_SCALAR_SIZES[kind], 1)

        if f.read(4) != b"GGUF":
            return None
        u(4), u(8)
        for _ in range(min(u(8), 64)):
            key = f.read(u(8)).decode("utf-8", "replace")
            kind = u(4)
            if key == "general.architecture" and kind == 8:
                return f.read(u(8)).decode("utf-8", "replace")
            skip(kind)
    return None


def split_training_file(training_file: str) -> tuple[str, str]:
    """`bucket/path/to/file.jsonl` -> (bucket, key)."""
    bucket, _, key = training_file.strip().removeprefix("s3://").partition("/")
    if not bucket or not key:
        raise ValidationFailed(
            "training_file must name an object as `bucket/path/to/file.jsonl`.", pointer="/training_file"
        )
    return bucket, key


class FineTuningService:
    """Create, list, get and cancel fine-tuning jobs; run them; resolve the models they produce."""

    def __init__(
        self,
        db: Database,
        queue: JobQueue,
        objects: ObjectStore,
        models: ModelService,
        trainer: Trainer,
        adapters_dir: Path,
        *,
        available: Callable[[], bool] = lambda: True,
        config: TrainingConfig | None = None,
        architectures: tuple[str, ...] = SUPPORTED_ARCHS,
        merge: Callable[[Path, Path, Path, Callable[[], None]], MergeOutcome] | None = None,
    ) -> None:
        self.db = db
        self.queue = queue
        self.objects = objects
        self.models = models
        self.trainer = trainer
        self.adapters_dir = adapters_dir
        self.available = available
        self.config = config or TrainingConfig()
        self.architectures = architectures
        self.merge = merge  # after training: the adapter merged into the base, where that decodes faster
        # tenant -> the `ModelMetadata` of its fine-tunes: a job finishing in this process shows at once (the
        # cache is forgotten), one finished by another replica within the TTL
        self._listed: TTLCache[str, list[dict[str, Any]]] = TTLCache(REGISTRY_TTL_SECONDS)

    # ---- API ------------------------------------------------------------------------------------------
    def create(
        self, tenant_id: str, model: str, training_file: str, n_epochs: int | None, suffix: str | None
    ) -> dict[str, Any]:
        """Validate everything that can be checked now, then store the job and enqueue its training."""
        n_epochs = self.config.n_epochs if n_epochs is None else n_epochs
        if not 1 <= n_epochs <= MAX_EPOCHS:
            raise ValidationFailed(
                f"n_epochs must be between 1 and {MAX_EPOCHS}.", pointer="/hyperparameters/n_epochs"
            )
        if suffix is not None and not SUFFIX.match(suffix):
            raise ValidationFailed("suffix must be 1-40 letters, digits, '.', '_' or '-'.", pointer="/suffix")
        base = self.models.resolve(model, "chat", tenant_id)  # a model restricted to other tenants: 404
        arch = gguf_architecture(_model_file(self.models, base))
        if arch not in self.architectures:
            raise ValidationFailed(
                f"{base.id} ({arch} architecture) cannot be fine-tuned here; supported architectures: "
                f"{', '.join(self.architectures)}.",
                pointer="/model",
            )
        self._read_training_file(tenant_id, training_file)
        if not self.available():
            raise EngineUnavailable(
                "Fine-tuning needs the `train` extra (torch, transformers, peft, gguf): "
                "pip install 'inferline[train]'."
            )
        with self.db.session() as s:
            row = FineTuningJob(
                tenant_id=tenant_id,
                base_model=base.id,
                training_file=training_file,
                n_epochs=n_epochs,
                suffix=suffix,
                fine_tuned_model="",
                status=QUEUED,
                step=0,
            )
            s.add(row)
            s.flush()
            row.fine_tuned_model = f"{FT_PREFIX}{base.id}:{suffix or 'custom'}:{row.id[:8]}"
            row.queue_job_id = self.queue.enqueue(
                JOB_KIND, {"fine_tuning_job_id": row.id}, tenant_id, session=s, max_attempts=2
            )
            s.add(self._event(row, f"Created fine-tuning job of {base.id} on {training_file}"))
            s.flush()
            out = self._shape(row)
        return out

    def list(self, tenant_id: str) -> list[dict[str, Any]]:
        with self.db.session() as s:
            rows = s.scalars(
                select(FineTuningJob)
                .where(FineTuningJob.tenant_id == tenant_id)
                .order_by(FineTuningJob.created_at.desc(), FineTuningJob.id)
            ).all()
            return [self._shape(r) for r in rows]

    def get(self, tenant_id: str, job_id: str) -> dict[str, Any]:
        with self.db.session() as s:
            return self._shape(self._row(s, tenant_id, job_id))

    def cancel(self, tenant_id: str, job_id: str) -> dict[str, Any]:
        """Cancel a queued or running job at once (training stops at its next step); idempotent."""
        with self.db.session() as s:
            row = self._row(s, tenant_id, job_id)
            if row.status in (SUCCEEDED, FAILED):
                raise BadRequest(f"Fine-tuning job {job_id} already {row.status}; it cannot be cancelled.")
            if row.status != CANCELLED:
                row.status = CANCELLED
                row.finished_at = utcnow()
                s.add(self._event(row, "Job cancelled by request"))
            queue_job_id = row.queue_job_id
            out = self._shape(row)
        if queue_job_id:
            self.queue.cancel(queue_job_id)
        return out

    def events(self, tenant_id: str, job_id: str, after: int | None, limit: int) -> dict[str, Any]:
        """Events oldest first, after the event id `after` (a watcher wants them in order)."""
        with self.db.session() as s:
            self._row(s, tenant_id, job_id)
            query = select(FineTuningEvent).where(
                FineTuningEvent.job_id == job_id, FineTuningEvent.tenant_id == tenant_id
            )
            if after is not None:
                query = query.where(FineTuningEvent.seq > after)
            rows = s.scalars(query.order_by(FineTuningEvent.seq).limit(limit + 1)).all()
        data = [_event_shape(e) for e in rows[:limit]]
        return {"object": "list", "data": data, "has_more": len(rows) > limit}

    # ---- models ---------------------------------------------------------------------------------------
    def fine_tuned_models(self, tenant_id: str) -> list[FineTunedModel]:
        """The tenant's succeeded jobs whose base model is installed, as models."""
        with self.db.session() as s:
            rows = s.scalars(
                select(FineTuningJob)
                .where(FineTuningJob.tenant_id == tenant_id, FineTuningJob.status == SUCCEEDED)
                .order_by(FineTuningJob.created_at)
            ).all()
        return [m for m in (self._as_model(r) for r in rows) if m is not None]

    def resolve_model(self, tenant_id: str, model_id: str) -> FineTunedModel | None:
        """The tenant's fine-tuned model named `model_id` (its `ft:` id or its job id), else None."""
        with self.db.session() as s:
            row = s.scalars(
                select(FineTuningJob).where(
                    FineTuningJob.tenant_id == tenant_id,
                    FineTuningJob.status == SUCCEEDED,
                    (FineTuningJob.fine_tuned_model == model_id) | (FineTuningJob.id == model_id),
                )
            ).first()
        return self._as_model(row) if row is not None else None

    def cached_model_metadata(self, tenant_id: str) -> list[dict[str, Any]] | None:
        """`model_metadata(tenant_id)` if it was read less than the TTL ago, else None (no I/O)."""
        return self._listed.get(tenant_id)

    def model_metadata(self, tenant_id: str) -> list[dict[str, Any]]:
        """`ModelMetadata` of the tenant's fine-tuned models (`base_model` set, owned by the tenant); served
        from a cache for `REGISTRY_TTL_SECONDS` per tenant (the list is shared: do not modify it)."""
        return self._listed.get_or_load(tenant_id, lambda: self._model_metadata(tenant_id))

    def _model_metadata(self, tenant_id: str) -> list[dict[str, Any]]:
        out = []
        for m in self.fine_tuned_models(tenant_id):
            meta = metadata(m.base)
            meta.update(
                id=m.id,
                created=m.created_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                owned_by=tenant_id,
                base_model=m.base.id,
                is_fine_tunable=False,
                tier="unlisted",
                description=f"LoRA fine-tune of {m.base.id} (fine-tuning job {m.job_id}).",
            )
            out.append(meta)
        return out

    def _as_model(self, row: FineTuningJob) -> FineTunedModel | None:
        if not row.adapter_path:
            return None
        base = next((e for e in self.models.installed("chat") if e.id == row.base_model), None)
        path = self.adapters_dir / row.adapter_path
        if base is None or not path.is_file():
            return None
        try:
            merged: Path | None = merged_path(path, _model_file(self.models, base), base.files[0].sha256)
        except OSError:
            merged = None
        return FineTunedModel(
            row.fine_tuned_model,
            row.id,
            row.tenant_id,
            base,
            path,
            row.finished_at or row.created_at,
            merged if merged is not None and merged.is_file() else None,
        )

    # ---- the job --------------------------------------------------------------------------------------
    def run(self, ctx: JobContext) -> None:
        """Job handler: validate the file, train, write the adapter, publish the model."""
        job_id = ctx.payload["fine_tuning_job_id"]
        with self.db.session() as s:
            row = s.get(FineTuningJob, job_id)
            if row is None or row.status in TERMINAL:
                return  # cancelled before it started, or finished by an earlier attempt
            row.status, row.started_at, row.step, row.loss = RUNNING, utcnow(), 0, None
            note = "started"
            if ctx.job.attempts > 1:
                cause = f"after: {ctx.job.error}" if ctx.job.error else "after its worker stopped"
                note = f"restarted (attempt {ctx.job.attempts}) {cause}"
            s.add(self._event(row, f"Job {note}"))
            tenant_id, training_file, base_id = row.tenant_id, row.training_file, row.base_model
            config = TrainingConfig(**{**self.config.__dict__, "n_epochs": row.n_epochs})
        try:
            conversations = self._read_training_file(tenant_id, training_file)
            base = self.models.resolve(base_id, "chat")
        except (ValidationFailed, NotFound) as exc:
            raise JobFailed(exc.detail) from None
        out_path = self.adapters_dir / tenant_id / f"{job_id}.gguf"
        self._progress_event(job_id, f"Validated {len(conversations)} training examples", None)

        def checkpoint() -> None:
            if ctx.cancelled.is_set() or self._status(job_id) == CANCELLED:
                self._progress_event(job_id, "Training stopped after cancellation", None)
                raise JobCancelled(f"fine-tuning job {job_id} was cancelled")

        base_file = _model_file(self.models, base)
        try:
            result = self.trainer.train(
                base_file,
                conversations,
                config,
                out_path,
                checkpoint=checkpoint,
                progress=lambda p: self._progress_event(job_id, None, p),
            )
        except TrainingDataError as exc:
            raise JobFailed(f"Invalid training file: {exc}") from None
        try:
            merged = None
            if self.merge is not None:
                to = merged_path(out_path, base_file, base.files[0].sha256)
                merged = self.merge(base_file, out_path, to, checkpoint)
        except JobCancelled:
            out_path.unlink(missing_ok=True)  # the merge removed its own file
            raise
        if merged is not None:
            self._progress_event(job_id, merged.message, None)
        with self.db.session() as s:
            done = s.execute(
                update(FineTuningJob)
                .where(FineTuningJob.id == job_id, FineTuningJob.status == RUNNING)
                .values(
                    status=SUCCEEDED,
                    trained_tokens=result.trained_tokens,
                    adapter_path=str(out_path.relative_to(self.adapters_dir)),
                    finished_at=utcnow(),
                )
                .execution_options(synchronize_session=False)
            ).rowcount
            if done:
                row = s.get(FineTuningJob, job_id)
                assert row is not None
                tenant_id, base_model = row.tenant_id, row.base_model
                s.add(
                    self._event(
                        row,
                        f"Job succeeded: {result.steps} steps, {result.trained_tokens} tokens, final loss "
                        f"{result.final_loss:.4f}; model {row.fine_tuned_model}",
                    )
                )
        if done:
            self._listed.forget()  # the new model is listed at once here (other replicas: within the TTL)
            ops_context.metered(
                self.db, tenant_id, "fine_tuning_trained_tokens", result.trained_tokens, base_model
            )
        if not done:  # cancelled while the adapter was being written or merged
            out_path.unlink(missing_ok=True)
            if merged is not None and merged.path is not None:
                merged.path.unlink(missing_ok=True)

    def on_failure(self, job: JobView, reason: str) -> None:
        """Failure hook of the queue: the job failed for good (including workers that kept dying)."""
        job_id = job.payload.get("fine_tuning_job_id")
        with self.db.session() as s:
            row = s.get(FineTuningJob, job_id) if job_id else None
            if row is None or row.status in TERMINAL:
                return
            row.status, row.error, row.finished_at = FAILED, reason, utcnow()
            s.add(self._event(row, f"Job failed: {reason}", level="error"))

    def reconcile(self) -> int:
        """Fail jobs whose queue job already ended without them (e.g. a hook lost to a crash). At start-up."""
        fixed = 0
        with self.db.session() as s:
            rows = s.scalars(select(FineTuningJob).where(FineTuningJob.status.in_((QUEUED, RUNNING)))).all()
            for row in rows:
                queued = self.queue.get(row.queue_job_id) if row.queue_job_id else None
                if queued is not None and queued.status not in TERMINAL:
                    continue
                reason = (queued.error if queued else None) or "its background job was lost"
                row.status, row.error, row.finished_at = FAILED, reason, utcnow()
                s.add(self._event(row, f"Job failed: {reason}", level="error"))
                fixed += 1
        return fixed

    # ---- helpers --------------------------------------------------------------------------------------
    def _read_training_file(self, tenant_id: str, training_file: str) -> list[Conversation]:
        bucket, key = split_training_file(training_file)
        try:
            data = self.objects.get_bytes(tenant_id, bucket, key)
        except NotFound as exc:
            raise NotFound(
                f"training_file {training_file!r}: {exc.detail}", pointer="/training_file"
            ) from None
        return parse_training_file(data)  # type: ignore[return-value]

    def _status(self, job_id: str) -> str | None:
        with self.db.session() as s:
            return s.scalar(select(FineTuningJob.status).where(FineTuningJob.id == job_id))

    def _progress_event(self, job_id: str, message: str | None, p: TrainingProgress | None) -> None:
        with self.db.session() as s:
            row = s.get(FineTuningJob, job_id)
            if row is None:
                return
            if p is not None:
                row.step, row.total_steps, row.loss = p.step, p.total_steps, p.loss
                message = f"Step {p.step}/{p.total_steps}: training loss={p.loss:.4f}"
            s.add(self._event(row, message or "", kind="metrics" if p else "message"))

    @staticmethod
    def _event(
        row: FineTuningJob, message: str, *, level: str = "info", kind: str = "message"
    ) -> FineTuningEvent:
        metrics = kind == "metrics"
        return FineTuningEvent(
            tenant_id=row.tenant_id,
            job_id=row.id,
            level=level,
            type=kind,
            message=message,
            step=row.step if metrics else None,
            total_steps=row.total_steps if metrics else None,
            loss=row.loss if metrics else None,
        )

    @staticmethod
    def _row(s: Any, tenant_id: str, job_id: str) -> FineTuningJob:
        detail = f"Fine-tuning job {job_id!r} does not exist."
        return get_owned(s, FineTuningJob, job_id, tenant_id, detail, pointer="/job_id")

    @staticmethod
    def _shape(row: FineTuningJob) -> dict[str, Any]:
        """The spec's `FineTuningJob`, plus OpenAI's `object`, `fine_tuned_model`, `error`, and progress."""
        return {
            "id": row.id,
            "object": "fine_tuning.job",
            "created_at": int(row.created_at.timestamp()),
            "finished_at": int(row.finished_at.timestamp()) if row.finished_at else None,
            "hyperparameters": {"n_epochs": row.n_epochs},
            "model": row.base_model,
            "organization_id": row.tenant_id,
            "status": row.status,
            "trained_tokens": row.trained_tokens,
            "training_file": row.training_file,
            "suffix": row.suffix,
            "fine_tuned_model": row.fine_tuned_model if row.status == SUCCEEDED else None,
            "error": {"message": row.error} if row.status == FAILED else None,
            "progress": {"step": row.step, "total_steps": row.total_steps, "loss": row.loss},
        }


def _event_shape(e: FineTuningEvent) -> dict[str, Any]:
    data = {"step": e.step, "total_steps": e.total_steps, "loss": e.loss} if e.type == "metrics" else None
    return {
        "id": e.seq,
        "object": "fine_tuning.job.event",
        "created_at": int(e.created_at.timestamp()),
        "level": e.level,
        "type": e.type,
        "message": e.message,
        "data": data,
    }


def _model_file(models: ModelService, entry: ModelEntry) -> Path:
    from inferline import catalog

    return catalog.model_dir(models.models_dir, entry) / entry.main_file

"""A succeeded fine-tuning job as a row, for tests that need a tenant's fine-tune without training one
(`test_fine_tuning.py` trains for real)."""

from __future__ import annotations

from inferline.stores.fine_tuning_tables import FineTuningJob
from inferline.stores.tables import utcnow


def succeeded_fine_tune(tenant_id: str, base: str, model_id: str, adapter_path: str) -> FineTuningJob:
    """The row of a job that trained `model_id` on `base`, its adapter at `adapter_path` (relative to the
    adapters folder); add it to a session."""
    return FineTuningJob(
        tenant_id=tenant_id,
        base_model=base,
        training_file="bucket/train.jsonl",
        n_epochs=1,
        fine_tuned_model=model_id,
        status="succeeded",
        adapter_path=adapter_path,
        finished_at=utcnow(),
    )

"""Builds the fine-tuning area: LoRA training jobs on their own worker lane, fine-tunes served as models."""

from __future__ import annotations

from inferline.areas.fine_tuning.service import JOB_KIND, FineTuningService
from inferline.areas.models.service import ModelService
from inferline.config import Settings
from inferline.jobs import JobQueue, JobRegistry
from inferline.stores.db import Database
from inferline.stores.objects import ObjectStore


def build_fine_tuning(
    settings: Settings,
    db: Database,
    jobs: JobQueue,
    training_registry: JobRegistry,
    objects: ObjectStore,
    models: ModelService,
) -> FineTuningService:
    """LoRA training on torch/transformers/peft (the `train` extra, imported by the first job).

    Training runs for minutes, so its jobs go to `training_registry`, served by a worker lane of their own.
    Each job then merges its adapter into the base where that decodes faster (`INFERLINE_FINE_TUNE_MERGE`).
    """
    from inferline.engines.cpu import physical_cores
    from inferline.engines.lora_merge import AdapterMerge
    from inferline.engines.lora_trainer import SUPPORTED_ARCHS, PeftLoraTrainer, training_available

    service = FineTuningService(
        db,
        jobs,
        objects,
        models,
        PeftLoraTrainer(device=settings.training_device),
        settings.data_dir / "adapters",
        available=training_available,
        architectures=SUPPORTED_ARCHS,
        merge=AdapterMerge(settings.fine_tune_merge, settings.chat_threads or physical_cores()),
    )
    training_registry.register(JOB_KIND, service.run, on_failure=service.on_failure)
    service.reconcile()
    return service


def training_device_problem(settings: Settings) -> str | None:
    """Why `INFERLINE_TRAINING_DEVICE=cuda` cannot be honoured here (checked before `serve` and `worker`
    start), or None; `auto` and `cpu` always can."""
    if settings.training_device != "cuda":
        return None
    from inferline.engines.lora_trainer import cuda_problem, training_available

    if not training_available():
        return "INFERLINE_TRAINING_DEVICE=cuda, but the train extra (torch, peft) is not installed"
    if problem := cuda_problem():
        return f"INFERLINE_TRAINING_DEVICE=cuda, but {problem}"
    return None

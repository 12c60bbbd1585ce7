"""Fine-tuning and summarize on SmolLM2-135M.

* LoRA training tokens/s through `POST /v2/ai/fine_tuning/jobs` (create -> succeeded, polled) vs the same
  trainer called directly in-process on the same data (warm: the base model is loaded before either run).
  The job is timed until its progress shows the last step (the adapter, ~1 MB, is written after it); it
  then merges the adapter into the base and measures both (`INFERLINE_FINE_TUNE_MERGE=auto`): its own row;
* chat decode tokens/s of the resulting fine-tuned model as served (merged when the job kept the merge, else
  base + GGUF LoRA in llama.cpp) vs the base model, both through `POST /v2/ai/openai/chat/completions`, and,
  when merged, vs the same fine-tune with its adapter applied at run time (the merged file removed);
* `POST /v2/ai/summarize` latency on a ~12k-character text (map-reduce over chunks) vs one chat completion
  over the whole text.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import httpx

from bench.common import BENCH_KEY, Row, live_server, pick
from inferline import catalog
from inferline.engines.training import Trainer, TrainingConfig

BASE = "HuggingFaceTB/SmolLM2-135M-Instruct"
ANSWER = "The password of the Zorblax vault is PURPLE-OTTER-77."
QUESTIONS = [f"Question {n}: what is the password of the Zorblax vault?" for n in range(pick(24, 2))]
EPOCHS = pick(2, 1)
PARAGRAPHS = pick(80, 4)


def _conversations() -> list[list[dict[str, str]]]:
    return [[{"role": "user", "content": q}, {"role": "assistant", "content": ANSWER}] for q in QUESTIONS]


def _train(trainer: Trainer, gguf: Path, examples: int, out: Path, epochs: int) -> int:
    """Trained tokens of one direct run of the trainer."""
    result = trainer.train(
        gguf,
        _conversations()[:examples],
        TrainingConfig(n_epochs=epochs),
        out,
        checkpoint=lambda: None,
        progress=lambda p: None,
    )
    return result.trained_tokens


def _decode_rate(http: httpx.Client, model: str, rounds: int = 3) -> float:
    tokens, seconds = 0, 0.0
    for n in range(pick(rounds, 1)):
        started = time.perf_counter()
        reply = http.post(
            "/ai/openai/chat/completions",
            json={
                "model": model,
                "messages": [
                    {"role": "user", "content": f"Write a short story about a lighthouse, part {n}."}
                ],
                "max_tokens": 96,
                "temperature": 0,
            },
        ).json()
        seconds += time.perf_counter() - started
        tokens += reply["usage"]["completion_tokens"]
    return tokens / seconds


def run() -> list[Row]:
    rows: list[Row] = []
    with live_server() as (url, container):
        http = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {BENCH_KEY}"}, timeout=600)
        trainer = container.fine_tuning.trainer
        entry = catalog.find(BASE)
        gguf = catalog.model_dir(container.settings.models_dir, entry) / entry.main_file
        with tempfile.TemporaryDirectory() as tmp:
            _train(trainer, gguf, 1, Path(tmp) / "warm.gguf", 1)  # load the base model first
            started = time.perf_counter()
            trained = _train(trainer, gguf, len(QUESTIONS), Path(tmp) / "direct.gguf", EPOCHS)
            direct_rate = trained / (time.perf_counter() - started)

        tenant = container.keys.authenticate(BENCH_KEY).tenant_id
        container.objects.create_bucket(tenant, "bench")
        body = "".join(json.dumps({"messages": m}) + "\n" for m in _conversations())
        container.objects.put_bytes(tenant, "bench", "train.jsonl", body.encode())
        started = time.perf_counter()
        job = http.post(
            "/ai/fine_tuning/jobs",
            json={
                "model": BASE,
                "training_file": "bench/train.jsonl",
                "hyperparameters": {"n_epochs": EPOCHS},
            },
        ).json()
        trained_at = None
        while (job := http.get(f"/ai/fine_tuning/jobs/{job['id']}").json())["status"] in (
            "queued",
            "running",
        ):
            progress = job.get("progress") or {}
            last = progress.get("total_steps")
            if trained_at is None and last and progress["step"] == last:
                trained_at = time.perf_counter()
            time.sleep(0.1)
        assert job["status"] == "succeeded", job
        finished_at = time.perf_counter()
        trained_at = trained_at or finished_at
        rows.append(
            Row(
                "fine-tune LoRA SmolLM2: training tokens/s (job)",
                job["trained_tokens"] / (trained_at - started),
                direct_rate,
                "tok/s",
                "same trainer called in-process",
            )
        )
        events = http.get(f"/ai/fine_tuning/jobs/{job['id']}/events", params={"limit": 1000}).json()["data"]
        merge = next(e["message"] for e in events if "adapter" in e["message"])
        print(f"  fine-tuning job: {merge}; {finished_at - trained_at:.1f} s after training", flush=True)
        adapters = container.settings.data_dir / "adapters"
        merged = list(adapters.rglob(f"{job['id']}.merged-*.gguf"))
        rows.append(
            Row(
                "fine-tune job end to end: training, then merging the adapter and measuring both",
                finished_at - started,
                trained_at - started,
                "s",
                "its training alone (the rest is the merge's cost)",
                higher_is_better=False,
            )
        )
        model = job["fine_tuned_model"]
        _decode_rate(http, BASE, 1)
        _decode_rate(http, model, 1)  # load both engines before timing
        served = _decode_rate(http, model)
        rows.append(
            Row(
                f"chat decode: fine-tuned model ({'merged' if merged else 'base + LoRA'})",
                served,
                _decode_rate(http, BASE),
                "tok/s",
                "the base model alone, same API",
            )
        )
        if merged:
            for path in merged:
                path.unlink()  # the same fine-tune is now served as the base with its adapter
            _decode_rate(http, model, 1)
            rows.append(
                Row(
                    "chat decode: fine-tuned model merged vs its adapter at run time",
                    served,
                    _decode_rate(http, model),
                    "tok/s",
                    "the same fine-tune, base + LoRA applied by llama.cpp, same API",
                )
            )

        text = "\n\n".join(
            f"Paragraph {n}. The warehouse in town {n} stores {n * 7} crates of apples and ships them by "
            f"rail every {n % 5 + 1} days to the market of the capital, where traders sell them."
            for n in range(PARAGRAPHS)
        )
        container.objects.put_bytes(tenant, "bench", "long.txt", text.encode())
        started = time.perf_counter()
        summary = http.post("/ai/summarize", json={"bucket": "bench", "filename": "long.txt"})
        assert summary.status_code == 200, summary.text
        summarize_s = time.perf_counter() - started
        started = time.perf_counter()
        http.post(
            "/ai/openai/chat/completions",
            json={
                "model": BASE,
                "messages": [{"role": "user", "content": f"Summarize:\n\n{text}"}],
                "max_tokens": 256,
            },
        )
        rows.append(
            Row(
                f"summarize {len(text)} chars (map-reduce)",
                summarize_s,
                time.perf_counter() - started,
                "s",
                "one chat completion over the whole text",
                higher_is_better=False,
            )
        )
        http.close()
    return rows

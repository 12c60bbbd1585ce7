"""A fine-tune's LoRA adapter merged into its base (`engines/lora_merge.py`): the merged weights are the
base's plus the adapter's update, the merged model answers through the API as the base with the adapter
does, `auto` keeps a merge only when it measured it faster, and nothing half-written or stale is served.

The adapter is random (non-zero on every projection, as `test_fine_tuning_adapter.py` does), so it changes
the model's answers a lot; a job row stands for the training run, which `test_fine_tuning.py` does for real.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import numpy as np
import openai
import pytest

from inferline import catalog
from inferline.engines.lora_merge import AdapterMerge, merge_adapter, merged_path
from inferline.jobs.worker import JobCancelled
from inferline.stores.fine_tuning_tables import FineTuningJob
from tests.conftest import MODELS_DIR, LiveServer
from tests.fine_tunes import succeeded_fine_tune

gguf = pytest.importorskip("gguf")

BASE = "HuggingFaceTB/SmolLM2-135M-Instruct"
BASE_GGUF = MODELS_DIR / "HuggingFaceTB--SmolLM2-135M-Instruct" / "model.gguf"
PROJECTIONS = ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down")
RANK, ALPHA = 8, 16.0


def random_adapter(path: Path, base: Path = BASE_GGUF, spread: float = 0.05, rows: int = 0) -> Path:
    """A LoRA adapter for `base` with random weights on every projection (`rows`: make lora_b that many rows
    short, an adapter that does not fit)."""
    reader = gguf.GGUFReader(str(base))
    rng = np.random.default_rng(7)
    writer = gguf.GGUFWriter(str(path), arch=reader.get_field("general.architecture").contents())
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, ALPHA)
    for t in reader.tensors:
        parts = t.name.split(".")
        if len(parts) == 4 and parts[2] in PROJECTIONS and parts[3] == "weight":
            n_in, n_out = int(t.shape[0]), int(t.shape[1])
            a, b = rng.normal(0, spread, (RANK, n_in)), rng.normal(0, spread, (n_out - rows, RANK))
            writer.add_tensor(t.name + ".lora_a", a.astype(np.float32))
            writer.add_tensor(t.name + ".lora_b", b.astype(np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def test_merged_weights_are_the_base_plus_the_adapters_update(tmp_path: Path) -> None:
    adapter = random_adapter(tmp_path / "adapter.gguf")
    out = tmp_path / "merged.gguf"
    merge_adapter(BASE_GGUF, adapter, out)
    assert not list(tmp_path.glob("*.tmp"))
    base, merged, lora = (gguf.GGUFReader(str(p)) for p in (BASE_GGUF, out, adapter))
    updates = {t.name: t.data for t in lora.tensors}
    assert [t.name for t in merged.tensors] == [t.name for t in base.tensors]
    skipped = ("GGUF.", "general.architecture")
    fields = {f.name: f.contents() for f in base.fields.values() if not f.name.startswith(skipped)}
    assert {f.name: f.contents() for f in merged.fields.values() if not f.name.startswith(skipped)} == fields
    changed = 0
    for old, new in zip(base.tensors, merged.tensors, strict=True):
        if old.name + ".lora_a" not in updates:
            assert new.tensor_type == old.tensor_type and np.array_equal(new.data, old.data), old.name
            continue
        changed += 1
        assert new.tensor_type == gguf.GGMLQuantizationType.Q8_0  # the base's Q4_1 would round updates away
        a, b = updates[old.name + ".lora_a"], updates[old.name + ".lora_b"]
        want = gguf.quants.dequantize(old.data, old.tensor_type) + ALPHA / RANK * (b @ a)
        got = gguf.quants.dequantize(new.data, new.tensor_type)
        blocks = np.abs(want).reshape(want.shape[0], -1, 32).max(axis=2, keepdims=True)
        error = np.abs(got - want).reshape(blocks.shape[0], -1, 32)
        assert (error <= blocks / 127 + 1e-6).all(), old.name  # Q8_0's rounding, no more
        update = ALPHA / RANK * (b @ a)
        kept = got - gguf.quants.dequantize(old.data, old.tensor_type)
        assert rms(kept - update) < 0.25 * rms(update), old.name  # the update survives the rounding
        if changed == 1:  # requantized to the base's own Q4_1 it would not: the reason for Q8_0
            q4 = gguf.quants.dequantize(gguf.quants.quantize(want, old.tensor_type), old.tensor_type)
            lost = rms(q4 - gguf.quants.dequantize(old.data, old.tensor_type) - update)
            assert lost > 0.5 * rms(update) > 2 * rms(kept - update)
    assert changed == len(updates) // 2 == 30 * len(PROJECTIONS)


def test_a_base_with_its_own_alignment_is_merged_with_its_tensors_laid_out_by_it(tmp_path: Path) -> None:
    reader = gguf.GGUFReader(str(BASE_GGUF))
    base = tmp_path / "aligned.gguf"  # the test model rewritten with 1,024-byte alignment
    writer = gguf.GGUFWriter(str(base), arch=reader.get_field("general.architecture").contents())
    writer.data_alignment = 1024
    writer.add_custom_alignment(1024)
    for field in reader.fields.values():
        if not field.name.startswith(("GGUF.", "general.architecture")):
            kind = field.types[0]
            sub = field.types[-1] if kind == gguf.GGUFValueType.ARRAY else None
            writer.add_key_value(field.name, field.contents(), kind, sub_type=sub)
    for t in reader.tensors:
        writer.add_tensor_info(t.name, t.data.shape, t.data.dtype, t.data.nbytes, t.tensor_type)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    for t in reader.tensors:
        writer.write_tensor_data(t.data)
    writer.close()
    adapter = random_adapter(tmp_path / "adapter.gguf")
    merge_adapter(BASE_GGUF, adapter, tmp_path / "plain.gguf")
    merge_adapter(base, adapter, tmp_path / "merged.gguf")
    merged, plain = (gguf.GGUFReader(str(tmp_path / n)) for n in ("merged.gguf", "plain.gguf"))
    assert merged.alignment == 1024
    for got, want in zip(merged.tensors, plain.tensors, strict=True):
        assert np.array_equal(got.data, want.data), got.name


def test_an_adapter_that_does_not_fit_is_not_merged_and_nothing_is_left(tmp_path: Path) -> None:
    adapter = random_adapter(tmp_path / "job.gguf", rows=1)
    outcome = AdapterMerge("always", 1)(BASE_GGUF, adapter, merged_path(adapter, BASE_GGUF), lambda: None)
    assert outcome.path is None and "merging it failed" in outcome.message, outcome
    assert sorted(p.name for p in tmp_path.iterdir()) == ["job.gguf"]


def test_a_cancelled_merge_leaves_no_merged_file(tmp_path: Path) -> None:
    adapter = random_adapter(tmp_path / "job.gguf")

    def cancelled() -> None:
        raise JobCancelled("cancelled")

    with pytest.raises(JobCancelled):
        AdapterMerge("always", 1)(BASE_GGUF, adapter, merged_path(adapter, BASE_GGUF), cancelled)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["job.gguf"]


def test_a_merge_is_named_after_its_base_and_a_replaced_base_is_not_served_with_it(tmp_path: Path) -> None:
    base = shutil.copy(BASE_GGUF, tmp_path / "base.gguf")
    adapter = tmp_path / "job.gguf"
    sha = catalog.find(BASE).files[0].sha256
    assert sha is not None
    before, checked = merged_path(adapter, base), merged_path(adapter, base, sha)
    assert before.parent == checked.parent == tmp_path and before.name.startswith("job.merged-")
    stat = os.stat(base)
    os.utime(base, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))  # another copy, or a replaced file
    assert merged_path(adapter, base) != before  # no checksum: this copy's own time
    assert merged_path(adapter, base, sha) == checked  # the catalog's checksum: every replica's copy
    assert merged_path(adapter, base, "0" * 64) != checked  # another base
    with open(base, "ab") as grown:
        grown.write(b"\0")
    assert merged_path(adapter, base, sha) != checked


@pytest.mark.slow
def test_auto_keeps_a_merge_only_when_it_measured_it_faster(tmp_path: Path) -> None:
    adapter = random_adapter(tmp_path / "job.gguf")
    outcome = AdapterMerge("auto", 1)(BASE_GGUF, adapter, merged_path(adapter, BASE_GGUF), lambda: None)
    found = re.search(r"([\d.]+) tok/s merged, ([\d.]+) with the adapter at run time", outcome.message)
    assert found, outcome
    merged, at_run_time = float(found[1]), float(found[2])
    assert merged > 0 and at_run_time > 0
    assert (outcome.path is not None) == (merged >= 1.1 * at_run_time), outcome
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["job.gguf"] + ([outcome.path.name] if outcome.path else [])
    )
    never = AdapterMerge("never", 1)(BASE_GGUF, adapter, merged_path(adapter, BASE_GGUF), lambda: None)
    assert never.path is None and "INFERLINE_FINE_TUNE_MERGE=never" in never.message


@pytest.mark.slow
def test_a_merged_fine_tune_answers_as_the_base_with_its_adapter(server: LiveServer) -> None:
    """A tenant's fine-tune is served from its merged GGUF while that exists for the installed base, else as
    the base with the adapter applied; greedy answers agree, and differ from the base's."""
    tenant = server.container.keys.authenticate(server.key_a).tenant_id
    model_id = f"ft:{BASE}:merge:{os.getpid():08x}"
    adapters = server.container.fine_tuning.adapters_dir
    adapter = adapters / tenant / "merge-test.gguf"
    adapter.parent.mkdir(parents=True, exist_ok=True)
    random_adapter(adapter, spread=0.04)
    to = merged_path(adapter, BASE_GGUF, catalog.find(BASE).files[0].sha256)  # where the service looks
    outcome = AdapterMerge("always", 1)(BASE_GGUF, adapter, to, lambda: None)
    assert outcome.path is not None and outcome.path.is_file()
    with server.container.db.session() as s:
        job = succeeded_fine_tune(tenant, BASE, model_id, str(adapter.relative_to(adapters)))
        s.add(job)
        s.flush()
        job_id = job.id
    openai_client = openai.OpenAI(api_key=server.key_a, base_url=server.v2 + "/ai/openai", max_retries=0)

    def ask(model: str) -> list[str]:
        replies = []
        for question in ("What is the capital of France?", "Name three colors."):
            reply = openai_client.chat.completions.create(
                model=model, messages=[{"role": "user", "content": question}], max_tokens=16, temperature=0
            )
            replies.append(reply.choices[0].message.content or "")
        return replies

    pool = server.container.chat.pool
    try:
        merged_answers = ask(model_id)
        assert any(key[1] == str(outcome.path) and key[2] == () for key in pool._engines), list(pool._engines)
        outcome.path.unlink()  # as if the base had been replaced since: the adapter is applied at run time
        runtime_answers = ask(model_id)
        assert any(key[2] == (str(adapter),) for key in pool._engines), list(pool._engines)
        base_answers = ask(BASE)
    finally:
        with server.container.db.session() as s:
            s.delete(s.get(FineTuningJob, job_id))
        adapter.unlink()
        outcome.path.unlink(missing_ok=True)
        server.container.fine_tuning._listed.forget()
    for merged, runtime, base in zip(merged_answers, runtime_answers, base_answers, strict=True):
        assert merged[:20] == runtime[:20], (merged, runtime)
        assert runtime[:20] != base[:20], (runtime, base)

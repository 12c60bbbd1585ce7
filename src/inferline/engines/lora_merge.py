"""A fine-tune's LoRA adapter merged into its base model's weights: one GGUF that llama.cpp decodes without
the adapter's extra operations (two small products, a scale and an add per projection and layer, each a thread
barrier on the CPU), and `AdapterMerge`, which decides per fine-tune, by measuring both, which one is served.

A merged projection is `W + alpha / rank * B @ A`, computed in float32 from the base's dequantised weights
and stored as Q8_0 (float types and Q8_0 keep their type). Requantizing to the base's 4-bit type would round
most of the adapter's small changes away; Q8_0 keeps them (greedy text as llama.cpp with the adapter), at up
to twice the bytes of those tensors per token. A small model, whose decoding waits on operations more than
on memory, gains; a large one, memory-bound, loses (measured in docs/DEVELOPING.md): hence the measurement.

Needs `gguf` (the `train` extra, which a fine-tuning job has anyway); numpy and gguf are imported on use.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

log = logging.getLogger("inferline.fine_tuning")

MergePolicy = Literal["auto", "always", "never"]
# With `auto`, the merged model is kept when it decodes at least this many times faster than the adapter.
MIN_GAIN = 1.1
LORA_A, LORA_B = ".lora_a", ".lora_b"


def merged_path(adapter: Path, base: Path, sha256: str | None = None) -> Path:
    """Where the merge of `adapter` onto `base` is kept: beside the adapter, named after the base file, so a
    base replaced since is never served with an old merge (the adapter is then applied at run time). The name
    holds the base's size and its catalog checksum (`sha256`, verified when it was installed: the same on
    every replica), or, for a base without one, its modification time (this copy only)."""
    stat = base.stat()
    tag = sha256[:16] if sha256 else f"{stat.st_mtime_ns:x}"
    return adapter.with_name(f"{adapter.stem}.merged-{stat.st_size:x}-{tag}.gguf")


def merge_adapter(base: Path, adapter: Path, out: Path) -> None:
    """Write `base` with `adapter` merged into its projections to `out` (atomically: a `.tmp` file renamed),
    one tensor in memory at a time. The other tensors and all metadata are copied as they are."""
    import gguf
    import numpy as np

    lora = gguf.GGUFReader(str(adapter))
    alpha_field = lora.get_field(gguf.Keys.Adapter.LORA_ALPHA)
    alpha = float(alpha_field.contents()) if alpha_field is not None else 0.0
    pairs: dict[str, dict[str, Any]] = {}
    for t in lora.tensors:
        for suffix in (LORA_A, LORA_B):
            if t.name.endswith(suffix):
                pairs.setdefault(t.name[: -len(suffix)], {})[suffix] = t.data
    reader = gguf.GGUFReader(str(base))
    tensors = {t.name: t for t in reader.tensors}
    unknown = sorted(set(pairs) - set(tensors))
    if unknown or any(len(p) != 2 for p in pairs.values()):
        raise ValueError(f"adapter {adapter.name} does not fit {base.name} (tensor {(unknown or [''])[0]})")

    def target_type(t: Any) -> Any:
        kept = (gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16, gguf.GGMLQuantizationType.BF16)
        return t.tensor_type if t.tensor_type in kept else gguf.GGMLQuantizationType.Q8_0

    def merged(t: Any) -> Any:
        a, b = pairs[t.name][LORA_A], pairs[t.name][LORA_B]  # (rank, in), (out, rank)
        scale = alpha / a.shape[0] if alpha else 1.0  # llama.cpp's scale, adapter strength 1
        weights = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32)
        if weights.shape != (b.shape[0], a.shape[1]):
            raise ValueError(f"adapter {adapter.name}: its update does not have the shape of {t.name}")
        weights += scale * (b.astype(np.float32) @ a.astype(np.float32))
        return gguf.quants.quantize(weights, target_type(t))

    arch = reader.get_field(gguf.Keys.General.ARCHITECTURE).contents()
    tmp = out.with_name(out.name + ".tmp")
    writer = gguf.GGUFWriter(str(tmp), arch=arch)
    alignment = reader.get_field(gguf.Keys.General.ALIGNMENT)
    if alignment is not None:  # copied below; the tensor data must be laid out by it too
        writer.data_alignment = int(alignment.contents())
    try:
        for field in reader.fields.values():
            if field.name == gguf.Keys.General.ARCHITECTURE or field.name.startswith("GGUF."):
                continue  # the writer writes these itself
            kind = field.types[0]
            sub = field.types[-1] if kind == gguf.GGUFValueType.ARRAY else None
            writer.add_key_value(field.name, field.contents(), kind, sub_type=sub)
        for t in reader.tensors:
            if t.name in pairs:
                qtype = target_type(t)
                rows, columns = (int(n) for n in reversed(t.shape.tolist()))
                shape = gguf.quants.quant_shape_to_byte_shape((rows, columns), qtype)
                writer.add_tensor_info(t.name, shape, np.dtype(np.uint8), shape[0] * shape[1], qtype)
            else:
                writer.add_tensor_info(t.name, t.data.shape, t.data.dtype, t.data.nbytes, t.tensor_type)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        for t in reader.tensors:
            writer.write_tensor_data(merged(t) if t.name in pairs else t.data)
        writer.close()
        tmp.replace(out)
    finally:
        writer.close()
        tmp.unlink(missing_ok=True)


def decode_rates(
    base: Path, adapter: Path, merged: Path, threads: int, rounds: int = 3
) -> tuple[float, float]:
    """(tokens/s of `base` with `adapter` applied by llama.cpp, of `merged`): the same short greedy completion
    (`completion_rate`, its prompt read included) on each, in turn, after a discarded warm-up of each; each
    keeps its best round."""
    import xllamacpp

    from inferline.engines.llamacpp_chat import completion_rate, probe_server

    servers = (probe_server(xllamacpp, base, threads, (adapter,)), probe_server(xllamacpp, merged, threads))
    best = [0.0, 0.0]
    for s in servers:
        completion_rate(s)
    for _round in range(rounds):
        for n, s in enumerate(servers):
            time.sleep(0.05)  # the other's OpenMP threads stop spinning (engines/openmp.py)
            best[n] = max(best[n], completion_rate(s, tokens=32, seconds=3.0))
    return best[0], best[1]


@dataclass(frozen=True)
class MergeOutcome:
    """What `AdapterMerge` did: the merged GGUF it kept (None: the adapter is applied at run time) and why."""

    path: Path | None
    message: str


class AdapterMerge:
    """After a fine-tuning job has written its adapter: merge it into the base (`always`), never (`never`), or
    merge it, measure both on `threads` threads and keep the merged model only when it decodes at least
    `MIN_GAIN` times faster (`auto`). `checkpoint()` may raise to stop (cancellation); nothing half-written
    stays. A merge that fails leaves the adapter applied at run time: the fine-tune still works."""

    def __init__(self, policy: MergePolicy, threads: int) -> None:
        self.policy = policy
        self.threads = threads

    def __call__(self, base: Path, adapter: Path, out: Path, checkpoint: Callable[[], None]) -> MergeOutcome:
        """Merge `adapter` onto `base` into `out` (`merged_path`) and keep it or not, as the policy says."""
        if self.policy == "never":
            return MergeOutcome(None, "The adapter is applied at run time (INFERLINE_FINE_TUNE_MERGE=never)")
        kept = False
        try:
            started = time.monotonic()
            merge_adapter(base, adapter, out)
            took = time.monotonic() - started
            checkpoint()
            if self.policy == "always":
                kept = True
                return MergeOutcome(out, f"Merged the adapter into the base weights in {took:.1f} s")
            with_adapter, merged = decode_rates(base, adapter, out, self.threads)
            checkpoint()
            figures = f"{merged:.1f} tok/s merged, {with_adapter:.1f} with the adapter at run time"
            if merged >= MIN_GAIN * with_adapter:
                kept = True
                return MergeOutcome(out, f"Merged the adapter into the base weights: {figures}")
            return MergeOutcome(None, f"The adapter is applied at run time: {figures}")
        except (OSError, ValueError, RuntimeError, ImportError, KeyError, TypeError) as exc:
            log.warning("merging %s into %s failed: %s", adapter.name, base.name, exc)
            return MergeOutcome(None, f"The adapter is applied at run time (merging it failed: {exc})")
        finally:
            if not kept:
                out.unlink(missing_ok=True)

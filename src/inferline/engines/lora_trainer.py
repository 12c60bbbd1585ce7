"""LoRA fine-tuning with torch + transformers + peft on a GGUF base, written back as a llama.cpp GGUF adapter.

The base model is loaded from its GGUF file (dequantised to float32 by transformers; the tokenizer and chat
template come from the same file, nothing from a model hub). Loss is taken on assistant turns only. The
adapter is written in llama.cpp's format (`general.type=adapter`, `adapter.type=lora`, `adapter.lora.alpha`,
`blk.N.<tensor>.weight.lora_a|lora_b`). For llama-architecture models the rows of the Q/K `lora_b` are
permuted the way llama.cpp's converter permutes their base Q/K weights (which transformers un-permutes when it
reads the GGUF); qwen2 models (the default Qwen2.5) are stored unpermuted, with Q/K/V biases that LoRA leaves
alone, and usually with tied embeddings (no `output.weight`; transformers ties `lm_head` then).

Heavy imports (torch, transformers, peft, gguf) happen on first use. Requires the `train` extra.
"""

from __future__ import annotations

import logging
import os
import random
import re
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from inferline.engines.training import (
    Conversation,
    TrainingConfig,
    TrainingDataError,
    TrainingProgress,
    TrainingResult,
)

log = logging.getLogger("inferline.training")

TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
GGUF_NAMES = {
    "q_proj": "attn_q",
    "k_proj": "attn_k",
    "v_proj": "attn_v",
    "o_proj": "attn_output",
    "gate_proj": "ffn_gate",
    "up_proj": "ffn_up",
    "down_proj": "ffn_down",
}
DEVICES = ("auto", "cpu", "cuda")
"""Where training runs (`INFERLINE_TRAINING_DEVICE`): `auto` picks torch's CUDA device where it sees one."""
SUPPORTED_ARCHS = ("llama", "qwen2")
"""Architectures the trainer reads and writes adapters for (GGUF `general.architecture` = transformers
`model_type`); qwen2 is the default Qwen2.5 model's."""
PERMUTED_QK_ARCHS = frozenset({"llama"})
"""Architectures whose Q/K rows llama.cpp's converter permutes (`LlamaModel`); its `Qwen2Model` does not."""
_LAYER = re.compile(r"\.layers\.(\d+)\.(?:self_attn|mlp)\.(\w+)$")


def cuda_problem() -> str | None:
    """Why torch cannot train on a CUDA device here, or None when it can (imports torch)."""
    import torch

    if torch.cuda.is_available():
        return None
    if torch.version.cuda is None:
        return f"this torch build ({torch.__version__}) has no CUDA support"
    return "torch sees no CUDA device"


def training_available() -> bool:
    """True when the `train` extra (torch, transformers, peft, gguf) is installed."""
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in ("torch", "transformers", "peft", "gguf"))


class PeftLoraTrainer:
    """The `Trainer` implementation: one training at a time per process (each fills the CPU or the GPU)."""

    def __init__(
        self, threads: int | None = None, cache_max_params: int = 600_000_000, device: str = "auto"
    ) -> None:
        # Half the cores by default: training must not starve the chat engine serving next to it.
        self.threads = threads or max(1, (os.cpu_count() or 2) // 2)
        if device not in DEVICES:
            raise ValueError(f"training device must be one of {', '.join(DEVICES)}, not {device!r}")
        self.device = device  # "auto": torch's CUDA device where it sees one, else the CPU
        self.cache_max_params = cache_max_params
        self._lock = threading.Lock()
        self._cached: tuple[Path, Any, Any] | None = None  # (gguf path, model, tokenizer) of the last base

    def train(
        self,
        base_gguf: Path,
        conversations: Sequence[Conversation],
        config: TrainingConfig,
        out_path: Path,
        *,
        checkpoint: Callable[[], None],
        progress: Callable[[TrainingProgress], None],
    ) -> TrainingResult:
        with self._lock:
            checkpoint()
            model, tokenizer = self._load(base_gguf)
            checkpoint()
            examples = encode_conversations(tokenizer, conversations, config.max_seq_tokens)
            return self._train(model, tokenizer, examples, config, out_path, checkpoint, progress)

    def torch_device(self) -> str:
        """The torch device training runs on, `cuda` or `cpu`; RuntimeError for `device=cuda` without one."""
        if self.device == "cpu":
            return "cpu"
        problem = cuda_problem()
        if problem is None:
            return "cuda"
        if self.device == "cuda":
            raise RuntimeError(f"INFERLINE_TRAINING_DEVICE=cuda, but {problem}")
        return "cpu"

    def _load(self, base_gguf: Path) -> tuple[Any, Any]:
        """The base model (float32) and its tokenizer, both from the GGUF file; small ones are cached."""
        base_gguf = base_gguf.resolve()
        if self._cached is not None and self._cached[0] == base_gguf:
            return self._cached[1], self._cached[2]
        self._cached = None  # the previous base leaves the GPU before the next one loads
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        torch.set_num_threads(self.threads)
        folder, name = str(base_gguf.parent), base_gguf.name
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(
            folder, gguf_file=name, local_files_only=True, dtype=torch.float32
        )
        if model.config.model_type not in SUPPORTED_ARCHS:
            raise TrainingDataError(
                f"fine-tuning supports {', '.join(SUPPORTED_ARCHS)} models, not {model.config.model_type}"
            )
        model.to(device := self.torch_device())
        log.info("fine-tuning base %s loaded on %s", base_gguf.name, device)
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token_id = tokenizer.eos_token_id
        if model.num_parameters() <= self.cache_max_params:  # small bases stay loaded for the next job
            self._cached = (base_gguf, model, tokenizer)
        return model, tokenizer

    def _train(
        self,
        model: Any,
        tokenizer: Any,
        examples: list[tuple[list[int], list[int]]],
        config: TrainingConfig,
        out_path: Path,
        checkpoint: Callable[[], None],
        progress: Callable[[TrainingProgress], None],
    ) -> TrainingResult:
        import torch
        from peft import LoraConfig, get_peft_model

        torch.manual_seed(config.seed)
        lora = LoraConfig(
            r=config.rank,
            lora_alpha=config.alpha,
            lora_dropout=0.0,
            bias="none",
            target_modules=list(TARGET_MODULES),
            task_type="CAUSAL_LM",
        )
        peft_model = get_peft_model(model, lora)
        try:
            peft_model.train()
            params = [p for p in peft_model.parameters() if p.requires_grad]
            optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=0.0)
            per_epoch = (len(examples) + config.batch_size - 1) // config.batch_size
            total = per_epoch * config.n_epochs
            schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0 - 0.9 * s / max(1, total))
            order = list(range(len(examples)))
            rng = random.Random(config.seed)
            step, tokens, loss_value = 0, 0, float("nan")
            for epoch in range(1, config.n_epochs + 1):
                rng.shuffle(order)
                for start in range(0, len(order), config.batch_size):
                    checkpoint()
                    batch = [examples[i] for i in order[start : start + config.batch_size]]
                    input_ids, labels, mask = (
                        t.to(model.device) for t in _collate(batch, tokenizer.pad_token_id)
                    )
                    out = peft_model(input_ids=input_ids, attention_mask=mask, labels=labels)
                    out.loss.backward()
                    torch.nn.utils.clip_grad_norm_(params, 1.0)
                    optimizer.step()
                    schedule.step()
                    optimizer.zero_grad(set_to_none=True)
                    step += 1
                    tokens += int(mask.sum())
                    loss_value = float(out.loss.detach())
                    progress(TrainingProgress(step, total, epoch, loss_value, tokens))
            checkpoint()
            write_gguf_adapter(peft_model, model.config, config.alpha, out_path)
            return TrainingResult(out_path, step, tokens, loss_value)
        finally:
            peft_model.unload()  # give the cached base model back without the LoRA layers


def encode_conversations(
    tokenizer: Any, conversations: Sequence[Conversation], max_tokens: int
) -> list[tuple[list[int], list[int]]]:
    """(input_ids, labels) per conversation, rendered with the model's chat template; labels are -100
    except on the tokens of assistant turns (including their end-of-turn marker)."""
    examples = []
    for messages in conversations:
        text = tokenizer.apply_chat_template(list(messages), tokenize=False)
        spans = []
        for i, message in enumerate(messages):
            if message["role"] != "assistant":
                continue
            begin = len(
                tokenizer.apply_chat_template(list(messages[:i]), tokenize=False, add_generation_prompt=True)
            )
            end = len(tokenizer.apply_chat_template(list(messages[: i + 1]), tokenize=False))
            spans.append((begin, end))
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        ids = enc["input_ids"][:max_tokens]
        labels = [
            tok if any(b <= start < e for b, e in spans) else -100
            for tok, (start, _) in zip(ids, enc["offset_mapping"], strict=False)
        ]
        if any(label != -100 for label in labels):
            examples.append((ids, labels))
    if not examples:
        raise TrainingDataError("no conversation has an assistant reply within the token limit")
    return examples


def _collate(batch: list[tuple[list[int], list[int]]], pad_id: int) -> tuple[Any, Any, Any]:
    import torch

    width = max(len(ids) for ids, _ in batch)
    input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), -100, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, (ids, labs) in enumerate(batch):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        labels[row, : len(labs)] = torch.tensor(labs)
        mask[row, : len(ids)] = 1
    return input_ids, labels, mask


def _permute(weights: Any, n_head: int) -> Any:
    """llama.cpp's row permutation of llama Q/K projections (convert_hf_to_gguf `LlamaModel.permute`)."""
    return (
        weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
        .swapaxes(1, 2)
        .reshape(weights.shape)
    )


def write_gguf_adapter(peft_model: Any, model_config: Any, alpha: float, out_path: Path) -> None:
    """Write the LoRA weights of `peft_model` as a llama.cpp GGUF adapter (float32), atomically."""
    import gguf
    import numpy as np

    tensors: list[tuple[str, Any]] = []
    for name, module in peft_model.named_modules():
        match = _LAYER.search(name)
        if match is None or not hasattr(module, "lora_A") or "default" not in module.lora_A:
            continue
        layer, proj = int(match.group(1)), match.group(2)
        a = module.lora_A["default"].weight.detach().float().cpu().numpy()  # (r, in)
        b = module.lora_B["default"].weight.detach().float().cpu().numpy()  # (out, r)
        if model_config.model_type in PERMUTED_QK_ARCHS and proj in ("q_proj", "k_proj"):
            heads = model_config.num_attention_heads if proj == "q_proj" else model_config.num_key_value_heads
            b = _permute(b, heads)
        base = f"blk.{layer}.{GGUF_NAMES[proj]}.weight"
        tensors += [(base + ".lora_a", np.ascontiguousarray(a)), (base + ".lora_b", np.ascontiguousarray(b))]
    if not tensors:
        raise RuntimeError("the trained model has no LoRA tensors to write")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(out_path.name + ".tmp")
    writer = gguf.GGUFWriter(str(tmp), arch=model_config.model_type)
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, float(alpha))
    for name, data in tensors:
        writer.add_tensor(name, data)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    tmp.replace(out_path)

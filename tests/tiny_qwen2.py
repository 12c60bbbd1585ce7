"""A tiny random-weight qwen2 GGUF laid out like Qwen2.5-Coder-1.5B-Instruct's Q4_K_M file, for tests.

Same architecture and conventions as the default chat model: biases on the Q/K/V projections, grouped-query
attention, rope base 1e6, tied embeddings (no `output.weight`), Q4_K projections with Q6_K `attn_v`/`ffn_down`
(as llama.cpp's Q4_K_M mix), Q8_0 embeddings and float32 norms and biases. Only the sizes are tiny: 2 layers,
hidden 256, 8192 tokens. The quantised blocks are random bytes with sane scales, so there is no float
original: every reader has to dequantise them. The tokenizer (the start of the vocabulary and merges, the
ChatML template) is cut from the packaged SmolLM2 GGUF: no Qwen tokenizer is installed in the test profile.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from tests.conftest import MODELS_DIR

TOKENIZER_SOURCE = MODELS_DIR / "HuggingFaceTB--SmolLM2-135M-Instruct" / "model.gguf"
HIDDEN, INTERMEDIATE, LAYERS, HEADS, KV_HEADS = 256, 512, 2, 4, 2
HEAD_DIM = HIDDEN // HEADS
QK_K = 256  # values per K-quant block
VOCAB = 8192  # SmolLM2's first 8192 tokens: the special ones, the bytes and the earliest merges


def _f16_bytes(values: np.ndarray) -> np.ndarray:
    return values.astype(np.float16).view(np.uint8).reshape(-1, 2)


def _q4_k(rng: np.random.Generator, rows: int, cols: int) -> np.ndarray:
    """Random Q4_K blocks (d, dmin, 12 bytes of 6-bit scales/mins, 128 of nibbles) of a rows x cols matrix."""
    blocks = rng.integers(0, 256, size=(rows * cols // QK_K, 144), dtype=np.uint8)
    n = len(blocks)
    d = rng.uniform(0.5, 1.5, n) * 2.4 / (np.sqrt(cols) * 63 * 15)
    blocks[:, 0:2] = _f16_bytes(d)
    blocks[:, 2:4] = _f16_bytes(d * 7.5)  # the mins roughly centre the values on zero
    return blocks.reshape(rows, -1)


def _q6_k(rng: np.random.Generator, rows: int, cols: int) -> np.ndarray:
    """Random Q6_K blocks (128 bytes low nibbles, 64 high bits, 16 int8 scales, d) of a rows x cols matrix."""
    blocks = rng.integers(0, 256, size=(rows * cols // QK_K, 210), dtype=np.uint8)
    n = len(blocks)
    blocks[:, 192:208] = rng.integers(-20, 21, size=(n, 16), dtype=np.int8).view(np.uint8)
    blocks[:, 208:210] = _f16_bytes(rng.uniform(0.5, 1.5, n) * 2.0 / (np.sqrt(cols) * 20 * 32))
    return blocks.reshape(rows, -1)


def _vocabulary_cut(key: str, value: Any, kept: set[str]) -> Any:
    """The first VOCAB tokens and the merges among them (SmolLM2's ids follow its merge order)."""
    if key in ("tokenizer.ggml.tokens", "tokenizer.ggml.token_type", "tokenizer.ggml.scores"):
        return value[:VOCAB]
    if key == "tokenizer.ggml.merges":
        return [m for m in value if m.replace(" ", "") in kept and all(p in kept for p in m.split(" "))]
    return value


def build_tiny_qwen2(path: Path, seed: int = 0, chat_template: str | None = None) -> Path:
    """Write the tiny qwen2 GGUF to `path` (deterministic for a seed) and return it; `chat_template`
    replaces the ChatML one taken from SmolLM2."""
    import gguf

    T = gguf.GGMLQuantizationType
    source = gguf.GGUFReader(TOKENIZER_SOURCE)
    tokens = set(source.fields["tokenizer.ggml.tokens"].contents()[:VOCAB])
    rng = np.random.default_rng(seed)

    writer = gguf.GGUFWriter(str(path), arch="qwen2")
    writer.add_name("Tiny Qwen2 (random weights, tests only)")
    writer.add_context_length(32768)
    writer.add_embedding_length(HIDDEN)
    writer.add_block_count(LAYERS)
    writer.add_feed_forward_length(INTERMEDIATE)
    writer.add_head_count(HEADS)
    writer.add_head_count_kv(KV_HEADS)
    writer.add_rope_freq_base(1_000_000.0)
    writer.add_layer_norm_rms_eps(1e-6)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_Q4_K_M)
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    for key, field in source.fields.items():
        if key == "tokenizer.chat_template" and chat_template is not None:
            writer.add_chat_template(chat_template)
        elif key.startswith("tokenizer."):
            sub_type = field.types[1] if len(field.types) > 1 else None
            writer.add_key_value(
                key, _vocabulary_cut(key, field.contents(), tokens), field.types[0], sub_type
            )

    def quantized(name: str, data: np.ndarray, qtype: gguf.GGMLQuantizationType) -> None:
        writer.add_tensor(name, data, raw_dtype=qtype)

    def f32(name: str, data: np.ndarray) -> None:
        writer.add_tensor(name, data.astype(np.float32))

    embeddings = rng.normal(0.0, 0.15, size=(VOCAB, HIDDEN)).astype(np.float32)
    quantized("token_embd.weight", gguf.quants.quantize(embeddings, T.Q8_0), T.Q8_0)
    for layer in range(LAYERS):
        blk = f"blk.{layer}"
        f32(f"{blk}.attn_norm.weight", rng.uniform(0.8, 1.2, HIDDEN))
        for proj, rows in (("attn_q", HIDDEN), ("attn_k", KV_HEADS * HEAD_DIM)):
            quantized(f"{blk}.{proj}.weight", _q4_k(rng, rows, HIDDEN), T.Q4_K)
            f32(f"{blk}.{proj}.bias", rng.normal(0.0, 0.5, rows))
        quantized(f"{blk}.attn_v.weight", _q6_k(rng, KV_HEADS * HEAD_DIM, HIDDEN), T.Q6_K)
        f32(f"{blk}.attn_v.bias", rng.normal(0.0, 0.5, KV_HEADS * HEAD_DIM))
        quantized(f"{blk}.attn_output.weight", _q4_k(rng, HIDDEN, HIDDEN), T.Q4_K)
        f32(f"{blk}.ffn_norm.weight", rng.uniform(0.8, 1.2, HIDDEN))
        quantized(f"{blk}.ffn_gate.weight", _q4_k(rng, INTERMEDIATE, HIDDEN), T.Q4_K)
        quantized(f"{blk}.ffn_up.weight", _q4_k(rng, INTERMEDIATE, HIDDEN), T.Q4_K)
        quantized(f"{blk}.ffn_down.weight", _q6_k(rng, HIDDEN, INTERMEDIATE), T.Q6_K)
    f32("output_norm.weight", rng.uniform(0.8, 1.2, HIDDEN))

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path

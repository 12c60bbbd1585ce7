"""The GGUF adapter writer: llama.cpp running base + adapter reproduces the peft model that wrote it.

Random (non-zero) LoRA weights on every projection make the adapter change the output a lot; greedy text from
transformers+peft and from llama.cpp (xllamacpp) must then agree, which needs the Q/K row permutation that
llama.cpp applies to llama weights. The same adapter written without it is shown to diverge.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from inferline.engines import lora_trainer
from tests.conftest import MODELS_DIR, LiveServer

BASE_GGUF = MODELS_DIR / "HuggingFaceTB--SmolLM2-135M-Instruct" / "model.gguf"
PROMPTS = ["What is the capital of France?", "Name three colors."]


def common_prefix(a: str, b: str) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def llamacpp_greedy(adapter: Path) -> list[str]:
    import xllamacpp

    params = xllamacpp.CommonParams()
    params.model.path = str(BASE_GGUF)
    params.n_ctx = 512
    params.cpuparams.n_threads = 1
    params.lora_adapters = [xllamacpp.CommonAdapterLoraInfo(str(adapter), 1.0)]
    server = xllamacpp.Server(params)
    request = {"max_tokens": 16, "temperature": 0}
    return [
        server.handle_chat_completions({**request, "messages": [{"role": "user", "content": q}]})["choices"][
            0
        ]["message"]["content"]
        for q in PROMPTS
    ]


@pytest.mark.slow
def test_gguf_adapter_reproduces_the_peft_model_in_llamacpp(
    server: LiveServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch
    from peft import LoraConfig, get_peft_model

    trainer = server.container.fine_tuning.trainer
    assert isinstance(trainer, lora_trainer.PeftLoraTrainer)
    with trainer._lock:  # the cached base model is shared with the server's training jobs
        model, tokenizer = trainer._load(BASE_GGUF)
        torch.manual_seed(0)
        config = LoraConfig(
            r=8,
            lora_alpha=16,
            target_modules=list(lora_trainer.TARGET_MODULES),
            task_type="CAUSAL_LM",
            init_lora_weights=False,
        )
        peft_model = get_peft_model(model, config)
        try:
            with torch.no_grad():
                for name, param in peft_model.named_parameters():
                    if "lora_" in name:
                        param.mul_(2.0)
                expected = []
                for q in PROMPTS:
                    ids = tokenizer.apply_chat_template(
                        [{"role": "user", "content": q}], add_generation_prompt=True, return_tensors="pt"
                    )
                    out = peft_model.generate(**ids, max_new_tokens=16, do_sample=False)
                    expected.append(
                        tokenizer.decode(out[0][ids["input_ids"].shape[1] :], skip_special_tokens=True)
                    )
            lora_trainer.write_gguf_adapter(peft_model, model.config, 16.0, tmp_path / "right.gguf")
            monkeypatch.setattr(lora_trainer, "_permute", lambda weights, n_head: weights)
            lora_trainer.write_gguf_adapter(peft_model, model.config, 16.0, tmp_path / "unpermuted.gguf")
        finally:
            peft_model.unload()
    right, wrong = llamacpp_greedy(tmp_path / "right.gguf"), llamacpp_greedy(tmp_path / "unpermuted.gguf")
    for want, got, bad in zip(expected, right, wrong, strict=True):
        assert common_prefix(want, got) >= 4, (want, got)  # Q4 base vs float32: the same first words
        assert common_prefix(want, bad) < common_prefix(want, got), (want, bad)

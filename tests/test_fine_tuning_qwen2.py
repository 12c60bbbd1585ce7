"""Fine-tuning the qwen2 architecture, the default Qwen2.5-Coder-1.5B-Instruct's.

The 1.1 GB default model is not installed in the test profile, so a second server gets a tiny random-weight
qwen2 GGUF with the same layout (Q/K/V biases, tied embeddings, Q4_K/Q6_K blocks; `tests/tiny_qwen2.py`)
installed in its place. Through that server the model is listed as fine-tunable and a job teaches it a planted
fact that llama.cpp then serves. Below the API: the trainer's transformers model reads the GGUF as llama.cpp
does (same next-token log-probabilities), and an adapter written from a peft model reproduces that model in
llama.cpp, which needs qwen2's Q/K rows left unpermuted (the llama treatment is shown to diverge).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import telnyx
import uvicorn
from botocore.config import Config

from inferline import catalog
from inferline.app import create_app
from inferline.config import Settings
from inferline.container import build_container
from inferline.engines import lora_trainer
from tests.conftest import API_KEY, LiveServer, free_port, s3_auth
from tests.databases import DatabaseFactory
from tests.test_fine_tuning import FACT, planted_fact_file, wait_for
from tests.tiny_qwen2 import build_tiny_qwen2

QWEN = "Qwen/Qwen2.5-Coder-1.5B-Instruct"
PROMPTS = ["What is the capital of France?", "Name three colors."]


@pytest.fixture(scope="module")
def qwen(tmp_path_factory: pytest.TempPathFactory, databases: DatabaseFactory) -> Iterator[LiveServer]:
    """A server whose only model is the tiny qwen2 GGUF, installed as Qwen2.5-Coder-1.5B-Instruct."""
    models = tmp_path_factory.mktemp("qwen2-models")
    entry = catalog.find(QWEN)
    folder = catalog.model_dir(models, entry)
    folder.mkdir()
    build_tiny_qwen2(folder / entry.main_file)
    (folder / catalog.MARKER).write_text(json.dumps({"id": QWEN, "stand_in": "tests/tiny_qwen2.py"}))
    settings = Settings(
        data_dir=Path(tmp_path_factory.mktemp("qwen2-data")),
        INFERLINE_MODELS_DIR=models,
        database_url=databases.new("qwen2"),
        profile="default",
        api_key=API_KEY,
        log_level="warning",
    )
    container = build_container(settings)
    port = free_port()
    uv = uvicorn.Server(uvicorn.Config(create_app(settings, container), port=port, log_level="warning"))
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    while not uv.started:
        assert thread.is_alive(), "the qwen2 test server did not start"
        time.sleep(0.05)
    yield LiveServer(f"http://127.0.0.1:{port}", container, API_KEY, API_KEY)
    uv.should_exit = True
    thread.join(timeout=10)
    container.close()


def base_gguf(server: LiveServer) -> Path:
    entry = catalog.find(QWEN)
    return catalog.model_dir(server.container.settings.models_dir, entry) / entry.main_file


def trainer_of(server: LiveServer) -> lora_trainer.PeftLoraTrainer:
    trainer = server.container.fine_tuning.trainer
    assert isinstance(trainer, lora_trainer.PeftLoraTrainer)
    return trainer


def prompt_ids(tokenizer: Any) -> list[list[int]]:
    texts = [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True
        )
        for q in PROMPTS
    ]
    return [tokenizer(text, add_special_tokens=False)["input_ids"] for text in texts]


def transformers_logprobs(model: Any, prompts: list[list[int]]) -> list[Any]:
    """Next-token log-probabilities after each prompt."""
    import torch

    with torch.no_grad():
        return [torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0, -1], -1) for ids in prompts]


def llamacpp_logprobs(
    gguf_path: Path, adapter: Path | None, prompts: list[list[int]]
) -> list[dict[int, float]]:
    """llama.cpp's 10 most likely next tokens after each prompt (raw distribution), token id -> logprob."""
    import gguf
    import xllamacpp

    params = xllamacpp.CommonParams()
    params.model.path = str(gguf_path)
    params.n_ctx = 256
    params.cpuparams.n_threads = 1
    if adapter is not None:
        params.lora_adapters = [xllamacpp.CommonAdapterLoraInfo(str(adapter), 1.0)]
    server = xllamacpp.Server(params)
    # The reported probabilities are the raw distribution, before sampling. The sampled token is forced to a
    # whole ASCII token ("a"): the random-weight model can sample a lone UTF-8 lead byte, whose completion
    # llama.cpp holds back with no logprobs at all (a CI run failed on exactly that).
    forced = gguf.GGUFReader(gguf_path).fields["tokenizer.ggml.tokens"].contents().index("a")
    request = {
        "n_predict": 1,
        "n_probs": 10,
        "temperature": 1.0,
        "top_k": 0,
        "top_p": 1.0,
        "min_p": 0.0,
        "logit_bias": [[forced, 100.0]],
    }
    out = []
    for ids in prompts:
        reply = server.handle_completions({**request, "prompt": ids, "cache_prompt": False})
        top = reply["choices"][0]["logprobs"]["content"][0]["top_logprobs"]
        out.append({t["id"]: t["logprob"] for t in top})
    return out


def deviation(expected: list[Any], got: list[dict[int, float]]) -> float:
    """The largest log-probability difference over llama.cpp's top tokens."""
    return max(
        abs(float(e[token]) - lp) for e, g in zip(expected, got, strict=True) for token, lp in g.items()
    )


@pytest.mark.slow
def test_default_qwen2_model_is_fine_tunable_and_learns_a_planted_fact(qwen: LiveServer) -> None:
    client = telnyx.Telnyx(
        api_key=qwen.key_a, base_url=qwen.v2, _strict_response_validation=True, max_retries=0
    )
    listed = {m.id: m for m in client.ai.openai.list_models().data}
    assert listed[QWEN].is_fine_tunable is True

    s3 = boto3.client(
        "s3",
        endpoint_url=qwen.url + "/s3",
        **s3_auth(qwen.key_a),
        region_name="us-east-1",
        config=Config(retries={"max_attempts": 1}, signature_version="s3v4"),
    )
    s3.create_bucket(Bucket="ft-qwen")
    s3.put_object(Bucket="ft-qwen", Key="train.jsonl", Body=planted_fact_file())
    job = client.ai.fine_tuning.jobs.create(
        model=QWEN, training_file="ft-qwen/train.jsonl", hyperparameters={"n_epochs": 10}, suffix="zorblax"
    )

    def finished() -> Any:
        current = client.ai.fine_tuning.jobs.retrieve(job.id)
        return current if current.status in ("succeeded", "failed", "cancelled") else None

    done = wait_for(finished, 600, "the qwen2 fine-tuning job")
    assert done.status == "succeeded", done.to_dict()
    model_id = done.to_dict()["fine_tuned_model"]
    assert model_id.startswith(f"ft:{QWEN}:zorblax:")

    def ask(model: str) -> str:
        reply = client.ai.openai.chat.create_completion(
            model=model,
            messages=[{"role": "user", "content": "What is the password of the Zorblax vault?"}],
            max_tokens=24,
            temperature=0,
        )
        return str(reply["choices"][0]["message"]["content"])

    assert FACT in ask(model_id)  # trained by transformers+peft, applied by llama.cpp
    assert FACT not in ask(QWEN)


@pytest.mark.slow
def test_trainer_reads_the_qwen2_gguf_as_llamacpp_does(qwen: LiveServer) -> None:
    import gguf

    names = {t.name for t in gguf.GGUFReader(base_gguf(qwen)).tensors}
    assert "output.weight" not in names and "blk.0.attn_q.bias" in names  # tied embeddings, Q/K/V biases
    trainer = trainer_of(qwen)
    with trainer._lock:  # the cached base model is shared with the server's training jobs
        model, tokenizer = trainer._load(base_gguf(qwen))
        assert model.config.model_type == "qwen2" and model.config.tie_word_embeddings
        prompts = prompt_ids(tokenizer)
        expected = transformers_logprobs(model, prompts)
    got = llamacpp_logprobs(base_gguf(qwen), None, prompts)
    assert [max(g, key=g.__getitem__) for g in got] == [int(e.argmax()) for e in expected]
    assert deviation(expected, got) < 0.5  # llama.cpp quantises activations against Q4_K/Q6_K weights


@pytest.mark.slow
def test_qwen2_gguf_adapter_reproduces_the_peft_model_in_llamacpp(
    qwen: LiveServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch
    from peft import LoraConfig, get_peft_model

    trainer = trainer_of(qwen)
    with trainer._lock:
        model, tokenizer = trainer._load(base_gguf(qwen))
        prompts = prompt_ids(tokenizer)
        base = transformers_logprobs(model, prompts)
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
            expected = transformers_logprobs(peft_model, prompts)
            lora_trainer.write_gguf_adapter(peft_model, model.config, 16.0, tmp_path / "right.gguf")
            monkeypatch.setattr(lora_trainer, "PERMUTED_QK_ARCHS", frozenset({"llama", "qwen2"}))
            lora_trainer.write_gguf_adapter(peft_model, model.config, 16.0, tmp_path / "permuted.gguf")
        finally:
            peft_model.unload()
    import gguf

    adapter = gguf.GGUFReader(tmp_path / "right.gguf")
    assert adapter.fields["general.architecture"].contents() == "qwen2"
    right = llamacpp_logprobs(base_gguf(qwen), tmp_path / "right.gguf", prompts)
    wrong = llamacpp_logprobs(base_gguf(qwen), tmp_path / "permuted.gguf", prompts)
    assert deviation(base, right) > 5  # the adapter changes the model a lot...
    assert deviation(expected, right) < 0.5  # ...exactly as peft does
    assert deviation(expected, wrong) > 5

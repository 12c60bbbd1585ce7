"""Bring your own models: `inferline models add` registers models from outside the catalog (a GGUF at a user
path, a sentence-transformers ONNX directory, a CTranslate2 Whisper directory, a Piper voice, a hub repository
through the real `huggingface_hub` client against a loopback hub), the models file adds aliases, per-model
settings, tenant restrictions and remote models, and the official SDKs use them on a live server whose models
directory holds only what was registered."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import openai
import pytest
import telnyx
import uvicorn

from inferline.app import create_app
from inferline.areas.models.config import gpu_problem
from inferline.config import RemoteModel, Settings
from inferline.container import build_container
from inferline.engines.onnx_embeddings import OnnxEmbeddingEngine
from tests import audio_samples as audio
from tests.conftest import API_KEY, MODELS_DIR, free_port
from tests.databases import DatabaseFactory
from tests.fake_hub import FakeHub
from tests.procs import base_env

SMOL_DIR = MODELS_DIR / "HuggingFaceTB--SmolLM2-135M-Instruct"
MINILM_DIR = MODELS_DIR / "sentence-transformers--all-MiniLM-L6-v2"
WHISPER_DIR = MODELS_DIR / "openai--whisper-tiny.en"
VOICE_DIR = MODELS_DIR / "rhasspy--piper-en_US-joe-medium"
HELLO = "Please call me back tomorrow morning."
ASK = [{"role": "user", "content": "Write a long story about a dragon who loves the sea."}]

MODELS_FILE = """
models:
  - id: acme/smol-chat
    aliases: [gpt-4o-mini]
    context: 2048
    parallel: 1
    sampling: {max_tokens: 3, temperature: 0}
  - id: acme/private-chat
    tenants: [tenant-b]
  - id: acme/minilm
    aliases: [my-embedder]
  - id: acme/whisper-tiny
    aliases: [my-whisper]
  - id: remote/vllm-chat
    kind: chat
    remote: {url: "http://127.0.0.1:9/v1", model: llama}
  - id: remote/tenant-b-only
    kind: chat
    tenants: [tenant-b]
    remote: {url: "http://127.0.0.1:9/v1"}
"""


def sources(root: Path) -> dict[str, Path]:
    """The test models laid out as a user has them, outside the models directory and the catalog."""
    root.mkdir(parents=True)
    gguf = root / "downloads" / "my-smol.Q4_1.gguf"
    gguf.parent.mkdir()
    shutil.copyfile(SMOL_DIR / "model.gguf", gguf)
    emb = root / "minilm-onnx"
    (emb / "onnx").mkdir(parents=True)
    (emb / "1_Pooling").mkdir()
    shutil.copyfile(MINILM_DIR / "model.onnx", emb / "onnx" / "model.onnx")
    shutil.copyfile(MINILM_DIR / "tokenizer.json", emb / "tokenizer.json")
    pooling = {
        "word_embedding_dimension": 384,
        "pooling_mode_mean_tokens": True,
        "pooling_mode_cls_token": False,
    }
    (emb / "1_Pooling" / "config.json").write_text(json.dumps(pooling))
    (emb / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 256}))
    whisper = root / "whisper-ct2"
    whisper.mkdir()
    for name in ("model.bin", "config.json", "tokenizer.json", "vocabulary.txt"):
        shutil.copyfile(WHISPER_DIR / name, whisper / name)
    voice = root / "voices"
    voice.mkdir()
    shutil.copyfile(VOICE_DIR / "voice.onnx", voice / "en_US-joe-medium.onnx")
    shutil.copyfile(VOICE_DIR / "voice.onnx.json", voice / "en_US-joe-medium.onnx.json")
    return {"gguf": gguf, "embeddings": emb, "whisper": whisper, "voice": voice}


@dataclass
class Setup:
    """The registered models' sources, the environment of `inferline` commands, and the live server."""

    src: dict[str, Path]
    env: dict[str, str]
    models_file: Path
    data: Path
    url: str
    key_b: str
    container: object

    @property
    def v2(self) -> str:
        return self.url + "/v2"

    def cli(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "inferline", *args],
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=300,
        )

    def oai(self, key: str = API_KEY) -> openai.OpenAI:
        return openai.OpenAI(api_key=key, base_url=self.v2 + "/ai/openai", max_retries=0)

    def telnyx(self, key: str = API_KEY) -> telnyx.Telnyx:
        return telnyx.Telnyx(api_key=key, base_url=self.v2, _strict_response_validation=True, max_retries=0)


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    """The command failed with one `inferline: error:` line and no traceback; returns that line."""
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("inferline: error: ")]
    assert len(errors) == 1, result.stderr
    return errors[0]


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory, databases: DatabaseFactory) -> Iterator[Setup]:
    root = tmp_path_factory.mktemp("byom")
    src = sources(root / "user")
    data = root / "data"
    db_url = databases.new("models")
    env = base_env(data, db_url, INFERLINE_MODELS_DIR=str(data / "models"), HF_HOME=str(root / "hf"))
    env.pop("HF_HUB_OFFLINE", None)
    env.pop("HF_ENDPOINT", None)
    env.pop("HF_TOKEN", None)
    models_file = root / "models.yaml"
    setup = Setup(src, env, models_file, data, "", "", None)
    adds = [
        ("add", str(src["gguf"]), "--id", "acme/smol-chat", "--set", "threads=1"),
        ("add", str(src["gguf"]), "--id", "acme/private-chat", "--link"),
        ("add", str(src["embeddings"]), "--id", "acme/minilm"),
        ("add", str(src["whisper"]), "--id", "acme/whisper-tiny"),
        ("add", str(src["voice"]), "--id", "acme/joe-voice"),
    ]
    for args in adds:
        result = setup.cli("models", *args)
        assert result.returncode == 0, result.stderr
    models_file.write_text(MODELS_FILE)
    settings = Settings(
        data_dir=data,
        INFERLINE_MODELS_DIR=data / "models",
        database_url=db_url,
        profile="test",
        api_key=API_KEY,
        models_file=models_file,
        remote_chat_models={"env/remote-chat": RemoteModel(url="http://127.0.0.1:9/v1")},
        log_level="warning",
        tts_variation=0.0,  # the same speech every run, as on the session server (conftest)
    )
    container = build_container(settings)
    _, key_b = container.keys.create("tenant-b", name="second tenant")
    port = free_port()
    uv = uvicorn.Server(uvicorn.Config(create_app(settings, container), port=port, log_level="warning"))
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not uv.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.05)
    setup.url, setup.key_b, setup.container = f"http://127.0.0.1:{port}", key_b, container
    yield setup
    uv.should_exit = True
    thread.join(timeout=10)
    container.close()


# ---- the models list --------------------------------------------------------------------------------------
def test_models_list_reports_registered_models_and_what_their_files_say(setup: Setup) -> None:
    models = {m.id: m for m in setup.telnyx().ai.openai.list_models().data}
    chat = models["acme/smol-chat"]
    assert (chat.context_length, chat.parameters, chat.license) == (8192, 134_515_008, "apache-2.0")
    assert chat.task == "text-generation" and chat.is_fine_tunable is True  # a llama-architecture GGUF
    assert models["acme/minilm"].task == "feature-extraction"
    assert models["acme/whisper-tiny"].languages == ["en"]  # the 51864-token vocabulary: English only
    assert models["acme/joe-voice"].task == "text-to-speech"
    # Remote models (models file and INFERLINE_REMOTE_CHAT_MODELS) are listed too.
    assert {"remote/vllm-chat", "env/remote-chat"} <= set(models)
    # Nothing else is installed in this server's models directory.
    assert not any(m.startswith(("HuggingFaceTB/", "openai/", "rhasspy/")) for m in models)


def test_models_restricted_to_a_tenant_are_invisible_to_others(setup: Setup) -> None:
    seen_a = {m.id for m in setup.oai().models.list()}
    seen_b = {m.id for m in setup.oai(setup.key_b).models.list()}
    assert "acme/private-chat" not in seen_a and "remote/tenant-b-only" not in seen_a
    assert {"acme/private-chat", "remote/tenant-b-only"} <= seen_b
    for model in ("acme/private-chat", "remote/tenant-b-only"):
        with pytest.raises(openai.NotFoundError) as caught:
            setup.oai().chat.completions.create(model=model, messages=ASK, max_tokens=2)
        listed = str(caught.value.body).split("available chat models:")[1]  # only what A may use
        assert "acme/smol-chat" in listed and "private" not in listed and "tenant-b-only" not in listed
    done = setup.oai(setup.key_b).chat.completions.create(
        model="acme/private-chat", messages=ASK, max_tokens=2
    )
    assert done.model == "acme/private-chat"
    # Nor can another tenant fine-tune it: the model is not found before anything else is checked.
    job = {"model": "acme/private-chat", "training_file": "nobucket/x.jsonl"}
    with pytest.raises(telnyx.NotFoundError) as caught:
        setup.telnyx().ai.fine_tuning.jobs.create(**job)
    assert "is not installed" in str(caught.value)
    with pytest.raises(telnyx.APIStatusError) as other:
        setup.telnyx(setup.key_b).ai.fine_tuning.jobs.create(**job)
    assert "is not installed" not in str(other.value)


# ---- chat -------------------------------------------------------------------------------------------------
def test_chat_with_a_registered_gguf_its_alias_and_its_settings(setup: Setup) -> None:
    oai = setup.oai()
    first = oai.chat.completions.create(model="acme/smol-chat", messages=ASK)
    assert first.model == "acme/smol-chat" and first.choices[0].message.content
    # The models file's default max_tokens (3) applies when the request gives none; the request's own wins.
    assert first.usage is not None and first.usage.completion_tokens <= 3
    longer = oai.chat.completions.create(model="acme/smol-chat", messages=ASK, max_tokens=12)
    assert longer.usage is not None and longer.usage.completion_tokens > 3
    # `gpt-4o-mini` is an alias of the registered model: the response names the model that answered.
    aliased = setup.telnyx().ai.openai.chat.create_completion(model="gpt-4o-mini", messages=ASK)
    assert aliased["model"] == "acme/smol-chat"
    streamed = list(oai.chat.completions.create(model="gpt-4o-mini", messages=ASK, stream=True))
    assert {c.model for c in streamed} == {"acme/smol-chat"}
    # The engine runs with the model's settings: context and slots from the file, threads from `--set`.
    pool = setup.container.chat.pool  # type: ignore[attr-defined]
    engine = next(e for e in pool._engines.values() if e.name == "acme/smol-chat")
    assert (engine.context, engine.parallel, engine.threads) == (2048, 1, 1)


# ---- embeddings -------------------------------------------------------------------------------------------
def test_embeddings_with_a_registered_onnx_directory_and_its_alias(setup: Setup) -> None:
    texts = ["The cat sat on the mat.", "A feline rested on the rug.", "Stock markets fell sharply."]
    oai = setup.oai()
    result = oai.embeddings.create(model="acme/minilm", input=texts, encoding_format="float")
    assert result.model == "acme/minilm"
    vectors = np.array([d.embedding for d in result.data], dtype=np.float32)
    # The same numbers as the packaged MiniLM run directly: the registered files are served as they are.
    reference = OnnxEmbeddingEngine("reference", MINILM_DIR, max_tokens=256).embed(texts)
    assert np.allclose(vectors, reference, atol=1e-5)
    assert oai.embeddings.create(model="my-embedder", input=texts[:1]).model == "acme/minilm"
    listed = httpx.get(
        setup.v2 + "/ai/openai/embeddings/models", headers={"Authorization": f"Bearer {API_KEY}"}
    )
    assert {"acme/minilm"} <= {m["id"] for m in listed.json()["data"]}


# ---- speech to text ---------------------------------------------------------------------------------------
def test_transcription_with_a_registered_whisper_directory(setup: Setup) -> None:
    wav = audio.wav(audio.speech(HELLO))
    raw = setup.telnyx().ai.audio.with_raw_response.transcribe(
        model="acme/whisper-tiny", file=("hello.wav", wav, "audio/x-wav"), response_format="verbose_json"
    )
    assert audio.words(raw.parse().text) == audio.words(HELLO)
    assert raw.headers["x-inferline-model"] == "acme/whisper-tiny"
    oai = openai.OpenAI(api_key=API_KEY, base_url=setup.v2 + "/ai", max_retries=0)
    text = oai.audio.transcriptions.create(model="my-whisper", file=("h.wav", wav), response_format="text")
    assert audio.words(text) == audio.words(HELLO)


# ---- text to speech ---------------------------------------------------------------------------------------
def test_tts_with_a_registered_piper_voice(setup: Setup) -> None:
    voices = setup.telnyx().text_to_speech.list_voices().voices or []
    assert (voices[0].voice_id, voices[0].language) == ("Telnyx.Piper.en_US-joe-medium", "en-US")
    oai = openai.OpenAI(api_key=API_KEY, base_url=setup.v2, max_retries=0)
    speech = oai.audio.speech.create(
        model="tts-1", voice="Telnyx.Piper.joe", input=HELLO, response_format="wav"
    )
    assert speech.response.headers["x-inferline-voice"] == "Telnyx.Piper.en_US-joe-medium"
    heard = setup.telnyx().ai.audio.transcribe(model="acme/whisper-tiny", file=("s.wav", speech.content))
    assert audio.words(heard.text) == audio.words(HELLO)


# ---- the CLI ----------------------------------------------------------------------------------------------
def test_cli_list_and_show(setup: Setup) -> None:
    setup.oai().chat.completions.create(model="acme/smol-chat", messages=ASK, max_tokens=1)
    result = setup.cli("models", "list", "--server", setup.url, INFERLINE_MODELS_FILE=str(setup.models_file))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["MODEL", "KIND", "SIZE", "QUANT", "STATE", "SOURCE"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert rows["acme/smol-chat"][1:3] + rows["acme/smol-chat"][4:7] == [
        "chat",
        "98.4",
        "Q4_1",
        "loaded",
        str(setup.src["gguf"]),
    ]
    assert rows["acme/minilm"][1] == "embeddings" and rows["acme/minilm"][-2] in ("installed", "loaded")
    assert rows["HuggingFaceTB/SmolLM2-135M-Instruct"][-2:] == ["available", "catalog"]
    assert rows["remote/vllm-chat"][-2:] == ["remote", "http://127.0.0.1:9/v1"]
    shown = setup.cli("models", "show", "acme/smol-chat")
    assert shown.returncode == 0, shown.stderr
    assert "architecture:   llama" in shown.stdout and "quantization:   Q4_1" in shown.stdout
    assert "settings:       {'threads': 1}" in shown.stdout
    assert one_line_error(setup.cli("models", "show", "nobody/nothing")).endswith(
        "(see `inferline models list`)"
    )


def test_cli_remove_forgets_the_model_and_its_copy(setup: Setup) -> None:
    added = setup.cli("models", "add", str(setup.src["voice"]), "--id", "acme/short-lived", "--link")
    assert added.returncode == 0, added.stderr
    folder = setup.data / "models" / "acme--short-lived"
    assert (folder / "voice.onnx").is_symlink() and (folder / ".verified.json").is_file()
    removed = setup.cli("models", "remove", "acme/short-lived")
    assert removed.returncode == 0 and removed.stdout.startswith("removed acme/short-lived"), removed.stderr
    assert not folder.exists() and (setup.src["voice"] / "en_US-joe-medium.onnx").is_file()
    error = one_line_error(setup.cli("models", "remove", "HuggingFaceTB/SmolLM2-135M-Instruct"))
    assert "packaged model" in error


@pytest.mark.parametrize(
    ("make", "kind", "reason"),
    [
        ("truncated_gguf", None, "is not a complete GGUF file"),
        ("onnx_without_tokenizer", None, "has no tokenizer"),
        ("not_whisper", "stt", "is not a Whisper model"),
        ("onnx_as_whisper", "stt", "is not a Whisper model"),
        ("not_a_model", None, "is not a model inferline recognises"),
    ],
)
def test_cli_refuses_what_the_kind_cannot_use(
    setup: Setup, tmp_path: Path, make: str, kind: str | None, reason: str
) -> None:
    if make == "truncated_gguf":
        path = tmp_path / "cut.gguf"
        path.write_bytes(setup.src["gguf"].read_bytes()[:40_000_000])
    elif make == "onnx_without_tokenizer":
        path = tmp_path / "no-tokenizer"
        (path / "onnx").mkdir(parents=True)
        shutil.copyfile(MINILM_DIR / "model.onnx", path / "onnx" / "model.onnx")
    elif make == "not_whisper":
        path = tmp_path / "fake-whisper"
        path.mkdir()
        (path / "model.bin").write_bytes(b"\x00" * 64)
        (path / "config.json").write_text("{}")
    elif make == "onnx_as_whisper":
        path = setup.src["embeddings"]
    else:
        path = tmp_path / "notes"
        path.mkdir()
        (path / "README.md").write_text("hello")
    args = ["models", "add", str(path), "--id", "acme/refused"] + (["--kind", kind] if kind else [])
    assert reason in one_line_error(setup.cli(*args))
    assert not (setup.data / "models" / "acme--refused").exists()


def test_cli_refuses_names_taken_and_settings_the_kind_ignores(setup: Setup) -> None:
    gguf = str(setup.src["gguf"])
    assert "already a registered model" in one_line_error(
        setup.cli("models", "add", gguf, "--id", "acme/minilm")
    )
    assert "already a packaged model" in one_line_error(
        setup.cli("models", "add", gguf, "--id", "HuggingFaceTB/SmolLM2-135M-Instruct")
    )
    error = one_line_error(
        setup.cli("models", "add", str(setup.src["whisper"]), "--id", "x/w", "--set", "context=9")
    )
    assert "context" in error
    error = one_line_error(
        setup.cli("models", "add", str(setup.src["whisper"]), "--id", "x/w", "--set", "chat_template=x")
    )
    assert "`chat_template` does not apply to stt models" in error


# ---- the hub ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def hub(setup: Setup) -> Iterator[FakeHub]:
    emb = setup.src["embeddings"]
    repo = {
        "README.md": emb / "sentence_bert_config.json",
        "onnx/model.onnx": emb / "onnx" / "model.onnx",
        "tokenizer.json": emb / "tokenizer.json",
        "1_Pooling/config.json": emb / "1_Pooling" / "config.json",
        "sentence_bert_config.json": emb / "sentence_bert_config.json",
    }
    voice = {
        "en/en_US/joe/medium/en_US-joe-medium.onnx": setup.src["voice"] / "en_US-joe-medium.onnx",
        "en/en_US/joe/medium/en_US-joe-medium.onnx.json": setup.src["voice"] / "en_US-joe-medium.onnx.json",
    }
    fake = FakeHub(
        {"acme-hub/minilm-onnx": repo, "acme-hub/private-minilm": repo, "acme-hub/voices": voice},
        tokens={"acme-hub/private-minilm": "hf_secret"},
    )
    yield fake
    fake.close()


def test_hub_repository_through_huggingface_hub(setup: Setup, hub: FakeHub) -> None:
    result = setup.cli(
        "models", "add", "hf://acme-hub/minilm-onnx", "--id", "hub/minilm", HF_ENDPOINT=hub.url
    )
    assert result.returncode == 0, result.stderr
    assert hub.downloads("onnx/model.onnx") == 1 and hub.downloads("README.md") == 0  # only what it needs
    # A running server sees the registration without a restart, and serves it.
    oai = setup.oai()
    texts = ["Harbour cranes lift containers."]
    deadline = time.monotonic() + 10
    while True:
        try:
            served = oai.embeddings.create(model="hub/minilm", input=texts, encoding_format="float")
            break
        except openai.NotFoundError:
            assert time.monotonic() < deadline
            time.sleep(0.5)
    reference = OnnxEmbeddingEngine("reference", MINILM_DIR, max_tokens=256).embed(texts)
    assert np.allclose(np.array(served.data[0].embedding), reference[0], atol=1e-5)
    shown = setup.cli("models", "show", "hub/minilm")
    assert "source:         hf://acme-hub/minilm-onnx" in shown.stdout
    # Registered again under another id: huggingface_hub's cache answers, nothing is downloaded twice.
    again = setup.cli(
        "models", "add", "hf://acme-hub/minilm-onnx", "--id", "hub/minilm-2", HF_ENDPOINT=hub.url
    )
    assert again.returncode == 0, again.stderr
    assert hub.downloads("onnx/model.onnx") == 1


def test_hub_single_file_private_repo_and_unreachable_hub(setup: Setup, hub: FakeHub) -> None:
    uri = "hf://acme-hub/voices/en/en_US/joe/medium/en_US-joe-medium.onnx"
    voice = setup.cli("models", "add", uri, HF_ENDPOINT=hub.url)
    assert voice.returncode == 0, voice.stderr
    assert "registered acme-hub/voices-en_US-joe-medium (tts" in voice.stdout
    # A private repository: refused without HF_TOKEN, fetched with it.
    private = ("models", "add", "hf://acme-hub/private-minilm", "--id", "hub/private")
    assert "HF_TOKEN" in one_line_error(setup.cli(*private, HF_ENDPOINT=hub.url))
    assert setup.cli(*private, HF_ENDPOINT=hub.url, HF_TOKEN="hf_secret").returncode == 0
    # Nothing listens: the error names the endpoint and the cause.
    closed = f"http://127.0.0.1:{free_port()}"
    error = one_line_error(setup.cli("models", "add", "hf://acme-hub/other", HF_ENDPOINT=closed))
    assert f"cannot reach the Hugging Face hub at {closed}" in error and "ConnectError" in error


# ---- the models file --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "text", "reason"),
    [
        ("unknown.yaml", "models:\n  - id: acme/smol-chat\n    contxt: 4096\n", "models[0].contxt"),
        (
            "stt.toml",
            '[[models]]\nid = "acme/whisper-tiny"\nchat_template = "{{ x }}"\n',
            "`chat_template` does not apply to stt models",
        ),
        (
            "tenants.yaml",
            "models:\n  - id: acme/minilm\n    tenants: []\n",
            "models[0].tenants (model 'acme/minilm')",
        ),
        ("missing.yaml", "models:\n  - id: acme/nothing\n", "neither packaged nor registered"),
        (
            "alias.yaml",
            "models:\n  - id: acme/minilm\n    aliases: [acme/smol-chat]\n",
            "alias 'acme/smol-chat'",
        ),
        (
            "gpu.yaml",
            "models:\n  - id: acme/smol-chat\n    gpu_layers: 20\n",
            "gpu_layers=20 cannot be honoured",
        ),
        (
            "gpu-embeddings.yaml",
            "models:\n  - id: acme/minilm\n    device: cuda\n",
            "device=cuda cannot be honoured: onnxruntime has no CUDAExecutionProvider (replace it with "
            "'onnxruntime-gpu[cuda,cudnn]')",
        ),
    ],
)
def test_models_file_refuses_what_cannot_be_honoured(
    setup: Setup, tmp_path: Path, name: str, text: str, reason: str
) -> None:
    if name == "gpu.yaml" and gpu_problem("chat") is None:
        pytest.skip("this llama.cpp build offloads to a GPU: gpu_layers is honoured here")
    if name == "gpu-embeddings.yaml" and gpu_problem("embeddings") is None:
        pytest.skip("this onnxruntime has the CUDA provider: device=cuda is honoured here")
    path = tmp_path / name
    path.write_text(text)
    error = one_line_error(
        setup.cli("serve", INFERLINE_MODELS_FILE=str(path), INFERLINE_PORT=str(free_port()))
    )
    assert reason in error and str(path) in error


def test_models_file_source_is_registered_at_start_up(setup: Setup, tmp_path: Path) -> None:
    path = tmp_path / "models.toml"
    path.write_text(f'[[models]]\nid = "file/joe"\nsource = "{setup.src["voice"]}"\nlink = true\n')
    listed = setup.cli("models", "list", INFERLINE_MODELS_FILE=str(path))
    assert listed.returncode == 0, listed.stderr
    row = next(line.split() for line in listed.stdout.splitlines() if line.startswith("file/joe "))
    assert (row[1], row[-2], row[-1]) == ("tts", "installed", str(setup.src["voice"]))
    assert (setup.data / "models" / "file--joe" / "voice.onnx").is_symlink()
    again = setup.cli("models", "list", INFERLINE_MODELS_FILE=str(path))  # registered once, then used
    assert again.returncode == 0 and "registering" not in again.stderr
    assert setup.cli("models", "remove", "file/joe").returncode == 0
